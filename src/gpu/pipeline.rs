//! Pipeline cache and shader reflection.
//!
//! Each WGSL source is parsed and validated by naga once; from naga's analysis we learn, per
//! entry point, which bindings it really uses and whether each storage binding is writable.
//! Compute pipelines are created once per (shader, entry point, defines, override constants)
//! and kept. Defines pick a variant of a shader's text before naga parses it (see
//! [`ShaderSource::variant`]); override constants are set when the pipeline is created.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result, anyhow, bail};

use crate::shaders::{Defines, ShaderSource};

/// How a kernel binding is declared in WGSL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BindingKind {
    Uniform,
    StorageRead,
    StorageReadWrite,
    /// `texture_2d<f32>` (read with `textureLoad`).
    Texture,
    /// `texture_storage_2d<..., write>`.
    StorageTexture,
}

impl BindingKind {
    /// True for the storage-buffer kinds (bound from tensors).
    pub fn is_buffer(self) -> bool {
        matches!(
            self,
            BindingKind::StorageRead | BindingKind::StorageReadWrite
        )
    }

    /// True for the texture kinds (bound from texture views).
    pub fn is_texture(self) -> bool {
        matches!(self, BindingKind::Texture | BindingKind::StorageTexture)
    }
}

/// One `@group(0) @binding(n)` declaration.
#[derive(Clone, Debug)]
pub struct BindingInfo {
    pub binding: u32,
    pub name: String,
    pub kind: BindingKind,
}

/// What an entry point needs bound.
#[derive(Clone, Debug)]
pub struct EntryReflection {
    /// Every declared binding of group 0, sorted by binding number.
    pub declared: Vec<BindingInfo>,
    /// Binding numbers this entry point statically uses.
    pub used: Vec<u32>,
}

/// Parses and validates WGSL with naga, returning the module and its analysis.
pub fn validate_wgsl(name: &str, source: &str) -> Result<(naga::Module, naga::valid::ModuleInfo)> {
    let module = naga::front::wgsl::parse_str(source).map_err(|e| {
        anyhow!(
            "shader {name} does not parse:\n{}",
            e.emit_to_string(source)
        )
    })?;
    // Subgroup operations are allowed here; launchers only pick kernels that use them when
    // the device has the SUBGROUP feature.
    let mut validator = naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        naga::valid::Capabilities::SUBGROUP,
    );
    let info = validator.validate(&module).map_err(|e| {
        anyhow!(
            "shader {name} fails validation:\n{}",
            e.emit_to_string(source)
        )
    })?;
    Ok((module, info))
}

/// Reflects the bindings of `entry` in a validated module.
pub fn reflect_entry(
    module: &naga::Module,
    info: &naga::valid::ModuleInfo,
    entry: &str,
) -> Result<EntryReflection> {
    let index = module
        .entry_points
        .iter()
        .position(|ep| ep.name == entry)
        .ok_or_else(|| anyhow!("entry point {entry} not found"))?;
    let function_info = info.get_entry_point(index);
    let mut declared = Vec::new();
    let mut used = Vec::new();
    for (handle, var) in module.global_variables.iter() {
        let is_used = !function_info[handle].is_empty();
        let Some(binding) = &var.binding else {
            continue;
        };
        if binding.group != 0 {
            bail!("only @group(0) is supported, found group {}", binding.group);
        }
        let kind = match var.space {
            naga::AddressSpace::Uniform => BindingKind::Uniform,
            naga::AddressSpace::Storage { access } => {
                if access.contains(naga::StorageAccess::STORE) {
                    BindingKind::StorageReadWrite
                } else {
                    BindingKind::StorageRead
                }
            }
            naga::AddressSpace::Handle => match module.types[var.ty].inner {
                naga::TypeInner::Image {
                    class: naga::ImageClass::Storage { .. },
                    ..
                } => BindingKind::StorageTexture,
                naga::TypeInner::Image { .. } => BindingKind::Texture,
                ref other => bail!(
                    "unsupported resource {other:?} at binding {}",
                    binding.binding
                ),
            },
            other => bail!(
                "unsupported address space {other:?} at binding {}",
                binding.binding
            ),
        };
        declared.push(BindingInfo {
            binding: binding.binding,
            name: var.name.clone().unwrap_or_default(),
            kind,
        });
        if is_used {
            used.push(binding.binding);
        }
    }
    declared.sort_by_key(|b| b.binding);
    used.sort_unstable();
    Ok(EntryReflection { declared, used })
}

/// A compute pipeline with what the dispatch helper needs to bind it.
pub struct Kernel {
    pub label: String,
    pub pipeline: wgpu::ComputePipeline,
    pub layout: wgpu::BindGroupLayout,
    pub reflection: EntryReflection,
}

type PipelineKey = (
    &'static str,
    &'static str,
    Defines,
    Vec<(&'static str, u64)>,
);

/// The cache key of `entry` of `source` in variant `defines` with these override constants
/// (sorted, so their order does not matter).
fn pipeline_key(
    source: &ShaderSource,
    entry: &'static str,
    defines: &Defines,
    overrides: &[(&'static str, f64)],
) -> PipelineKey {
    let mut sorted: Vec<(&'static str, u64)> =
        overrides.iter().map(|(k, v)| (*k, v.to_bits())).collect();
    sorted.sort_unstable();
    (source.name, entry, defines.clone(), sorted)
}

struct ParsedShader {
    module: wgpu::ShaderModule,
    naga: naga::Module,
    info: naga::valid::ModuleInfo,
}

/// Creates pipelines once and hands out the cached ones afterwards.
#[derive(Default)]
pub struct PipelineCache {
    shaders: Mutex<HashMap<(&'static str, Defines), Arc<ParsedShader>>>,
    kernels: Mutex<HashMap<PipelineKey, Arc<Kernel>>>,
}

impl PipelineCache {
    /// Number of compute pipelines created so far.
    pub fn len(&self) -> usize {
        self.kernels.lock().unwrap().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn shader(
        &self,
        device: &wgpu::Device,
        source: &'static ShaderSource,
        defines: &Defines,
    ) -> Result<Arc<ParsedShader>> {
        let key = (source.name, defines.clone());
        if let Some(parsed) = self.shaders.lock().unwrap().get(&key) {
            return Ok(Arc::clone(parsed));
        }
        let name = format!("{}{defines}", source.name);
        let text = source.text(defines);
        let (naga, info) = validate_wgsl(&name, &text)?;
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some(&name),
            source: wgpu::ShaderSource::Wgsl(text),
        });
        let parsed = Arc::new(ParsedShader { module, naga, info });
        self.shaders
            .lock()
            .unwrap()
            .insert(key, Arc::clone(&parsed));
        Ok(parsed)
    }

    /// The pipeline for `entry` of `source` in the variant of these `(NAME, VALUE)` defines
    /// (empty: the default one) with these override constants.
    pub fn get(
        &self,
        device: &wgpu::Device,
        source: &'static ShaderSource,
        entry: &'static str,
        defines: &[(&str, &str)],
        overrides: &[(&'static str, f64)],
    ) -> Result<Arc<Kernel>> {
        let defines = source.variant(defines)?;
        let key = pipeline_key(source, entry, &defines, overrides);
        if let Some(kernel) = self.kernels.lock().unwrap().get(&key) {
            return Ok(Arc::clone(kernel));
        }
        let shader = self.shader(device, source, &defines)?;
        let reflection = reflect_entry(&shader.naga, &shader.info, entry)
            .with_context(|| format!("shader {}{defines}", source.name))?;
        let label = format!("{}{defines}::{}", source.name, entry);
        let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(&label),
            layout: None,
            module: &shader.module,
            entry_point: Some(entry),
            compilation_options: wgpu::PipelineCompilationOptions {
                constants: overrides,
                zero_initialize_workgroup_memory: false,
            },
            cache: None,
        });
        let layout = pipeline.get_bind_group_layout(0);
        let kernel = Arc::new(Kernel {
            label,
            pipeline,
            layout,
            reflection,
        });
        self.kernels
            .lock()
            .unwrap()
            .insert(key, Arc::clone(&kernel));
        Ok(kernel)
    }
}

#[cfg(test)]
mod tests {
    use super::pipeline_key;
    use crate::shaders::{Define, DefineKind, ShaderSource};

    static SHADER: ShaderSource = ShaderSource {
        name: "keyed.wgsl",
        source: "@compute @workgroup_size(1) fn main() { let x: STORE_T = STORE_T(0); }\n",
        libs: &[],
        defines: &[Define {
            name: "STORE_T",
            kind: DefineKind::Alias,
            default: "f32",
        }],
    };

    /// Pipelines of different variants never share a cache entry; the default variant is
    /// the same entry however it is asked for.
    #[test]
    fn defines_are_part_of_the_pipeline_key() {
        let key = |defines: &[(&str, &str)], overrides: &[(&'static str, f64)]| {
            pipeline_key(
                &SHADER,
                "main",
                &SHADER.variant(defines).unwrap(),
                overrides,
            )
        };
        let plain = key(&[], &[("WG", 64.0)]);
        assert_eq!(plain, key(&[("STORE_T", "f32")], &[("WG", 64.0)]));
        assert_ne!(plain, key(&[("STORE_T", "i32")], &[("WG", 64.0)]));
        assert_ne!(plain, key(&[], &[("WG", 32.0)]));
        assert_eq!(
            key(&[("STORE_T", "i32")], &[("A", 1.0), ("WG", 64.0)]),
            key(&[("STORE_T", "i32")], &[("WG", 64.0), ("A", 1.0)])
        );
    }
}
