//! The WGSL kernel sources, embedded at build time from `shaders/`.

/// One WGSL file.
#[derive(Debug)]
pub struct ShaderSource {
    /// File name under `shaders/`; also the pipeline-cache key.
    pub name: &'static str,
    pub source: &'static str,
}

/// Each shader is its file under `shaders/`, after the shared snippets of `shaders/lib/` it
/// names (WGSL has no includes; the snippets hold functions several kernels need).
macro_rules! shaders {
    ($($ident:ident => $file:literal $([$($lib:literal),*])?),* $(,)?) => {
        $(
            pub static $ident: ShaderSource = ShaderSource {
                name: $file,
                source: concat!(
                    $($(include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/shaders/lib/", $lib)), "\n",)*)?
                    include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/shaders/", $file))
                ),
            };
        )*
        /// Every shader, for validation and tooling.
        pub static ALL: &[&ShaderSource] = &[$(&$ident),*];
    };
}

shaders! {
    ACTIVATION => "activation.wgsl" ["gelu.wgsl"],
    ADAMW => "adamw.wgsl",
    ATTENTION => "attention.wgsl",
    DROPOUT => "dropout.wgsl",
    ELEMENTWISE => "elementwise.wgsl",
    EMBEDDING => "embedding.wgsl",
    GATE => "gate.wgsl",
    LAYERNORM => "layernorm.wgsl",
    LOSS => "loss.wgsl",
    MATMUL => "matmul.wgsl" ["matmul_params.wgsl", "gelu.wgsl"],
    MATMUL_SUBGROUP => "matmul_subgroup.wgsl" ["matmul_params.wgsl", "gelu.wgsl"],
    MATMUL_TILED => "matmul_tiled.wgsl" ["matmul_params.wgsl", "gelu.wgsl"],
    MATMUL_VEC4 => "matmul_vec4.wgsl" ["matmul_params.wgsl", "gelu.wgsl"],
    REDUCE => "reduce.wgsl",
    SOFTMAX => "softmax.wgsl",
    TEXTURE_PACK => "texture_pack.wgsl",
}

#[cfg(test)]
mod tests {
    use super::ALL;
    use crate::gpu::pipeline::validate_wgsl;

    /// Every kernel source parses and validates with naga (no GPU needed).
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
        for shader in ALL {
            if let Err(e) = validate_wgsl(shader.name, shader.source) {
                panic!("{e}");
            }
            let own = std::fs::read_to_string(dir.join(shader.name)).unwrap();
            assert!(
                own.trim_start().starts_with("//"),
                "{} needs a header comment",
                shader.name
            );
        }
        for lib in std::fs::read_dir(dir.join("lib")).unwrap() {
            let path = lib.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            validate_wgsl(&path.display().to_string(), &text).unwrap();
            assert!(
                text.trim_start().starts_with("//"),
                "{} needs a header comment",
                path.display()
            );
        }
    }
}
