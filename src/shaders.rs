//! The WGSL kernel sources, embedded at build time from `shaders/`, and their compile-time
//! defines.

use std::borrow::Cow;
use std::fmt;

use anyhow::{Result, bail};

/// One WGSL file.
#[derive(Debug)]
pub struct ShaderSource {
    /// File name under `shaders/`; also the pipeline-cache key.
    pub name: &'static str,
    /// The file after the snippets it includes.
    pub source: &'static str,
    /// The snippets of `shaders/lib/` prepended to the file, in order.
    pub libs: &'static [&'static str],
    /// The compile-time defines the source uses, with their default values.
    pub defines: &'static [Define],
}

/// How a define is declared in front of a shader's source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DefineKind {
    /// `alias NAME = VALUE;`: a type, such as a storage type.
    Alias,
    /// `const NAME = VALUE;`: a constant expression.
    Const,
}

/// A compile-time define a shader uses, and its value in the default variant.
#[derive(Debug)]
pub struct Define {
    pub name: &'static str,
    pub kind: DefineKind,
    pub default: &'static str,
}

/// A kernel variant: the defines whose values differ from the shader's defaults, as
/// `NAME=VALUE` sorted by name (empty for the default variant). Part of the pipeline-cache key.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Defines(Vec<(&'static str, String)>);

impl Defines {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// `[NAME=VALUE,...]`, or nothing for the default variant (kernel labels).
impl fmt::Display for Defines {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return Ok(());
        }
        let pairs: Vec<String> = self.0.iter().map(|(k, v)| format!("{k}={v}")).collect();
        write!(f, "[{}]", pairs.join(","))
    }
}

impl ShaderSource {
    /// The variant with these `(NAME, VALUE)` defines. Each name must be one of the shader's
    /// defines, and a value is one WGSL type or expression (no `;`, braces or comments).
    pub fn variant(&self, set: &[(&str, &str)]) -> Result<Defines> {
        let mut out: Vec<(&'static str, String)> = Vec::with_capacity(set.len());
        for &(name, value) in set {
            let value = value.trim();
            let Some(define) = self.defines.iter().find(|d| d.name == name) else {
                bail!("shader {} has no define {name}", self.name);
            };
            let allowed = |c: char| c.is_ascii_alphanumeric() || " _.,<>()+-*".contains(c);
            if value.is_empty() || !value.chars().all(allowed) {
                bail!(
                    "shader {}: define {name} = {value:?} is not one WGSL term",
                    self.name
                );
            }
            if out.iter().any(|(n, _)| *n == name) {
                bail!("shader {}: define {name} given twice", self.name);
            }
            if value != define.default {
                out.push((define.name, value.to_string()));
            }
        }
        out.sort_unstable();
        Ok(Defines(out))
    }

    /// The source naga and wgpu compile for `defines`: one declaration per define of the
    /// shader, then the snippets and the file. Unchanged for a shader without defines.
    pub fn text(&self, defines: &Defines) -> Cow<'static, str> {
        if self.defines.is_empty() {
            return Cow::Borrowed(self.source);
        }
        let mut text = String::new();
        for define in self.defines {
            let value = defines
                .0
                .iter()
                .find(|(n, _)| *n == define.name)
                .map_or(define.default, |(_, v)| v.as_str());
            let keyword = match define.kind {
                DefineKind::Alias => "alias",
                DefineKind::Const => "const",
            };
            text.push_str(&format!("{keyword} {} = {value};\n", define.name));
        }
        text.push_str(self.source);
        Cow::Owned(text)
    }
}

/// Each shader is its file under `shaders/`, after the shared snippets of `shaders/lib/` it
/// names (WGSL has no includes; the snippets hold the code several kernels share). A snippet
/// may use the snippets named before it and what its `// needs:` header lines declare, which
/// the including shader provides. A shader with variants declares its defines after `with`:
/// `X => "x.wgsl" ["lib.wgsl"] with &[Define { name: "STORE_T", kind: DefineKind::Alias,
/// default: "f32" }]` (launchers then pick values in `Dispatch::defines`).
macro_rules! shaders {
    (@defines) => { &[] };
    (@defines $defines:expr) => { $defines };
    ($($ident:ident => $file:literal $([$($lib:literal),*])? $(with $defines:expr)?),* $(,)?) => {
        $(
            pub static $ident: ShaderSource = ShaderSource {
                name: $file,
                source: concat!(
                    $($(include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/shaders/lib/", $lib)), "\n",)*)?
                    include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/shaders/", $file))
                ),
                libs: &[$($($lib),*)?],
                defines: shaders!(@defines $($defines)?),
            };
        )*
        /// Every shader, for validation and tooling.
        pub static ALL: &[&ShaderSource] = &[$(&$ident),*];
    };
}

shaders! {
    ACTIVATION => "activation.wgsl" ["gelu.wgsl", "index.wgsl"],
    ADAMW => "adamw.wgsl" ["index.wgsl"],
    ATTENTION => "attention.wgsl",
    COPY => "copy.wgsl" ["index.wgsl"],
    DROPOUT => "dropout.wgsl" ["dropout_hash.wgsl", "index.wgsl"],
    ELEMENTWISE => "elementwise.wgsl" ["index.wgsl"],
    EMBEDDING => "embedding.wgsl" ["index.wgsl"],
    GATE => "gate.wgsl" ["index.wgsl"],
    LAYERNORM => "layernorm.wgsl" ["index.wgsl", "workgroup_reduce.wgsl"],
    LOSS => "loss.wgsl" ["index.wgsl", "workgroup_reduce.wgsl"],
    MATMUL => "matmul.wgsl" ["matmul_params.wgsl", "gelu.wgsl", "matmul_io.wgsl"],
    MATMUL_SUBGROUP => "matmul_subgroup.wgsl" ["matmul_params.wgsl", "gelu.wgsl", "matmul_io.wgsl"],
    MATMUL_TILED => "matmul_tiled.wgsl" ["matmul_params.wgsl", "gelu.wgsl", "matmul_io.wgsl"],
    MATMUL_VEC4 => "matmul_vec4.wgsl" ["matmul_params.wgsl", "gelu.wgsl", "matmul_io.wgsl"],
    REDUCE => "reduce.wgsl",
    SOFTMAX => "softmax.wgsl" ["dropout_hash.wgsl", "index.wgsl", "workgroup_reduce.wgsl"],
    TEXTURE_PACK => "texture_pack.wgsl",
}

#[cfg(test)]
mod tests {
    use super::{ALL, Define, DefineKind, Defines, ShaderSource};
    use crate::gpu::pipeline::validate_wgsl;

    /// Every kernel source parses and validates with naga under its default defines, and
    /// every snippet with only the snippets before it and its `// needs:` lines (no GPU).
    #[test]
    fn every_shader_validates_with_naga() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders");
        let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.ends_with(".wgsl"))
            .collect();
        on_disk.sort();
        let mut embedded: Vec<String> = ALL.iter().map(|s| s.name.to_string()).collect();
        embedded.sort();
        assert_eq!(
            on_disk, embedded,
            "every file in shaders/ must be registered"
        );
        let lib = |name: &str| std::fs::read_to_string(dir.join("lib").join(name)).unwrap();
        for shader in ALL {
            let text = shader.text(&Defines::default());
            if let Err(e) = validate_wgsl(shader.name, &text) {
                panic!("{e}");
            }
            let own = std::fs::read_to_string(dir.join(shader.name)).unwrap();
            assert!(
                own.trim_start().starts_with("//"),
                "{} needs a header comment",
                shader.name
            );
            // Each snippet on top of the ones before it, with what it needs from the shader.
            let mut needs: Vec<String> = Vec::new();
            let mut prefix = String::new();
            for name in shader.libs {
                let text = lib(name);
                for line in text.lines() {
                    if let Some(decl) = line.strip_prefix("// needs: ")
                        && !needs.iter().any(|n| n == decl)
                    {
                        needs.push(decl.to_string());
                    }
                }
                prefix.push_str(&text);
                let alone = format!("{}\n{prefix}", needs.join("\n"));
                if let Err(e) = validate_wgsl(&format!("lib/{name} (in {})", shader.name), &alone) {
                    panic!("{e}");
                }
            }
        }
        for entry in std::fs::read_dir(dir.join("lib")).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            assert!(
                ALL.iter().any(|s| s.libs.contains(&name.as_str())),
                "lib/{name} is included by no shader"
            );
            assert!(
                lib(&name).trim_start().starts_with("//"),
                "lib/{name} needs a header comment"
            );
        }
    }

    static VARIANTS: ShaderSource = ShaderSource {
        name: "variants.wgsl",
        source: "@group(0) @binding(1) var<storage, read_write> out: array<STORE_T>;\n\
                 @compute @workgroup_size(LANES)\n\
                 fn main(@builtin(local_invocation_index) i: u32) { out[i] = STORE_T(i); }\n",
        libs: &[],
        defines: &[
            Define {
                name: "STORE_T",
                kind: DefineKind::Alias,
                default: "f32",
            },
            Define {
                name: "LANES",
                kind: DefineKind::Const,
                default: "64u",
            },
        ],
    };

    /// The element type of `out` in the module naga builds for `defines`.
    fn stored_type(defines: &Defines) -> naga::TypeInner {
        let (module, _) = validate_wgsl(VARIANTS.name, &VARIANTS.text(defines)).unwrap();
        let (_, out) = module.global_variables.iter().next().unwrap();
        match module.types[out.ty].inner {
            naga::TypeInner::Array { base, .. } => module.types[base].inner.clone(),
            ref other => panic!("out is {other:?}"),
        }
    }

    /// A define changes the compiled module; defaults and an empty set are one variant.
    #[test]
    fn defines_select_a_variant() {
        let default = VARIANTS.variant(&[]).unwrap();
        assert!(default.is_empty());
        assert_eq!(VARIANTS.variant(&[("STORE_T", "f32")]).unwrap(), default);
        assert!(
            VARIANTS
                .text(&default)
                .starts_with("alias STORE_T = f32;\nconst LANES = 64u;\n")
        );
        let as_u32 = VARIANTS
            .variant(&[("LANES", "32u"), ("STORE_T", "u32")])
            .unwrap();
        assert_eq!(
            as_u32,
            VARIANTS
                .variant(&[("STORE_T", "u32"), ("LANES", "32u")])
                .unwrap()
        );
        assert_ne!(as_u32, default);
        assert_eq!(as_u32.to_string(), "[LANES=32u,STORE_T=u32]");
        assert_eq!(
            stored_type(&default),
            naga::TypeInner::Scalar(naga::Scalar::F32)
        );
        assert_eq!(
            stored_type(&as_u32),
            naga::TypeInner::Scalar(naga::Scalar::U32)
        );

        assert!(VARIANTS.variant(&[("STORE", "u32")]).is_err());
        assert!(VARIANTS.variant(&[("STORE_T", "u32; fn f() {}")]).is_err());
        assert!(
            VARIANTS
                .variant(&[("STORE_T", "u32"), ("STORE_T", "i32")])
                .is_err()
        );
        // A shader without defines compiles its embedded text as it is.
        for shader in ALL {
            assert!(
                matches!(shader.text(&shader.variant(&[]).unwrap()), std::borrow::Cow::Borrowed(s) if s == shader.source)
            );
        }
    }
}
