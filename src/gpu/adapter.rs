//! Adapter discovery and choice.
//!
//! One `wgpu::Instance` covers every native backend. Adapters are ranked discrete GPU >
//! integrated GPU > virtual GPU > other > CPU, and at equal rank a modern API (Vulkan, Metal,
//! DX12) beats GL. The user can force the choice by backend and by a substring of the adapter's
//! name, from the command line (`--backend`, `--adapter`) or the environment
//! (`TASKGATE_BACKEND`, `TASKGATE_ADAPTER`).

use anyhow::{Result, bail};
use serde::Serialize;

/// Environment variable naming the backend to use (`vulkan`, `metal`, `dx12`, `gl`).
pub const BACKEND_ENV: &str = "TASKGATE_BACKEND";
/// Environment variable holding a case-insensitive substring of the adapter name to use.
pub const ADAPTER_ENV: &str = "TASKGATE_ADAPTER";

/// What the user asked for when choosing an adapter; empty means "the best one".
#[derive(Clone, Debug, Default)]
pub struct AdapterRequest {
    /// Backend name: `vulkan`, `metal`, `dx12`, `gl` (or `webgpu` in the browser).
    pub backend: Option<String>,
    /// Case-insensitive substring of the adapter name.
    pub name_contains: Option<String>,
    /// A data-parallel rank's place on its machine: without a name, it takes adapter
    /// `local_rank mod n` of the `n` best-ranked ones (one GPU per rank).
    pub local_rank: Option<usize>,
}

impl AdapterRequest {
    /// The request made by `TASKGATE_BACKEND` and `TASKGATE_ADAPTER`, empty when unset.
    pub fn from_env() -> Self {
        let read = |key: &str| std::env::var(key).ok().filter(|v| !v.trim().is_empty());
        Self {
            backend: read(BACKEND_ENV),
            name_contains: read(ADAPTER_ENV),
            local_rank: None,
        }
    }

    /// The backends this request allows, or an error naming the accepted spellings.
    pub fn backends(&self) -> Result<wgpu::Backends> {
        match &self.backend {
            None => Ok(default_backends()),
            Some(name) => parse_backend(name),
        }
    }
}

/// Every backend compiled in for this target (native: Vulkan, Metal, DX12, GL).
pub fn default_backends() -> wgpu::Backends {
    if cfg!(target_arch = "wasm32") {
        wgpu::Backends::BROWSER_WEBGPU
    } else {
        wgpu::Backends::VULKAN | wgpu::Backends::METAL | wgpu::Backends::DX12 | wgpu::Backends::GL
    }
}

/// Parses a backend name as used by `--backend` and `TASKGATE_BACKEND`.
pub fn parse_backend(name: &str) -> Result<wgpu::Backends> {
    Ok(match name.trim().to_ascii_lowercase().as_str() {
        "vulkan" | "vk" => wgpu::Backends::VULKAN,
        "metal" | "mtl" => wgpu::Backends::METAL,
        "dx12" | "d3d12" => wgpu::Backends::DX12,
        "gl" | "gles" | "opengl" => wgpu::Backends::GL,
        "webgpu" | "browser" => wgpu::Backends::BROWSER_WEBGPU,
        other => bail!(
            "unknown backend '{other}' (from --backend or {BACKEND_ENV}); \
             use one of: vulkan, metal, dx12, gl"
        ),
    })
}

/// Mesa's Vulkan device-selection layer (an implicit layer, on wherever Mesa's Vulkan drivers
/// are installed) connects to a Wayland display whenever devices are listed, and on a machine
/// without one prints `error: XDG_RUNTIME_DIR is invalid or not set` for every listing,
/// although nothing is wrong. The layer only reorders devices, and taskgate ranks adapters
/// itself, so programs switch it off with this (`NODEVICE_SELECT=1`), unless the user steers
/// it (`MESA_VK_DEVICE_SELECT`, `DRI_PRIME`) or has set `NODEVICE_SELECT` either way.
///
/// # Safety
/// It sets an environment variable: call it before any other thread exists (first thing in
/// `main`).
#[cfg(not(target_arch = "wasm32"))]
pub unsafe fn quiet_mesa_device_select() {
    let steered = ["NODEVICE_SELECT", "MESA_VK_DEVICE_SELECT", "DRI_PRIME"]
        .iter()
        .any(|k| std::env::var_os(k).is_some());
    if !steered {
        // SAFETY: the caller guarantees no other thread reads the environment meanwhile.
        unsafe { std::env::set_var("NODEVICE_SELECT", "1") };
    }
}

/// A printable, serializable description of one adapter.
#[derive(Clone, Debug, Serialize)]
pub struct AdapterSummary {
    pub name: String,
    pub backend: String,
    pub device_type: String,
    pub driver: String,
    pub driver_info: String,
    pub vendor_id: u32,
    pub device_id: u32,
}

impl AdapterSummary {
    pub fn of(info: &wgpu::AdapterInfo) -> Self {
        Self {
            name: info.name.clone(),
            backend: format!("{:?}", info.backend).to_lowercase(),
            device_type: format!("{:?}", info.device_type),
            driver: info.driver.clone(),
            driver_info: info.driver_info.clone(),
            vendor_id: info.vendor,
            device_id: info.device,
        }
    }
}

/// Higher is better: real GPUs first, CPU rasterizers last; modern APIs before GL.
fn rank(info: &wgpu::AdapterInfo) -> (u8, u8) {
    let kind = match info.device_type {
        wgpu::DeviceType::DiscreteGpu => 4,
        wgpu::DeviceType::IntegratedGpu => 3,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Other => 1,
        wgpu::DeviceType::Cpu => 0,
    };
    let api = match info.backend {
        wgpu::Backend::Gl => 0,
        _ => 1,
    };
    (kind, api)
}

/// Picks the index of the adapter to use among `infos`, honouring `request`.
pub fn choose(infos: &[wgpu::AdapterInfo], request: &AdapterRequest) -> Result<usize> {
    if infos.is_empty() {
        bail!(
            "no GPU adapter found. Install a Vulkan, Metal or DX12 driver; on a Linux machine \
             without a GPU, the CPU driver lavapipe works: apt-get install mesa-vulkan-drivers"
        );
    }
    let allowed = request.backends()?;
    let needle = request.name_contains.as_ref().map(|s| s.to_lowercase());
    let best = infos
        .iter()
        .enumerate()
        .filter(|(_, info)| allowed.contains(wgpu::Backends::from(info.backend)))
        .filter(|(_, info)| match &needle {
            Some(n) => info.name.to_lowercase().contains(n.as_str()),
            None => true,
        })
        .max_by_key(|(index, info)| (rank(info), std::cmp::Reverse(*index)));
    // One adapter per rank of a machine: the best-ranked adapters, in the order listed.
    let best = match (best, request.local_rank, &needle) {
        (Some((_, top)), Some(local), None) => {
            let peers: Vec<usize> = infos
                .iter()
                .enumerate()
                .filter(|(_, info)| allowed.contains(wgpu::Backends::from(info.backend)))
                .filter(|(_, info)| rank(info) == rank(top))
                .map(|(index, _)| index)
                .collect();
            let index = peers[local % peers.len()];
            Some((index, &infos[index]))
        }
        (best, _, _) => best,
    };
    match best {
        Some((index, _)) => Ok(index),
        None => {
            let listing: Vec<String> = infos
                .iter()
                .map(|i| format!("{} ({:?}, {:?})", i.name, i.backend, i.device_type))
                .collect();
            bail!(
                "no adapter matches backend={} adapter={} (from --backend/--adapter or \
                 {BACKEND_ENV}/{ADAPTER_ENV}); available adapters: {}",
                request.backend.as_deref().unwrap_or("any"),
                request.name_contains.as_deref().unwrap_or("any"),
                listing.join("; ")
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(name: &str, backend: wgpu::Backend, kind: wgpu::DeviceType) -> wgpu::AdapterInfo {
        let mut info = wgpu::AdapterInfo::new(kind, backend);
        info.name = name.into();
        info
    }

    #[test]
    fn prefers_gpus_over_cpu_and_vulkan_over_gl() {
        use wgpu::{Backend, DeviceType};
        let infos = vec![
            info("llvmpipe", Backend::Gl, DeviceType::Cpu),
            info("llvmpipe", Backend::Vulkan, DeviceType::Cpu),
            info("Intel UHD", Backend::Vulkan, DeviceType::IntegratedGpu),
            info("NVIDIA H200", Backend::Vulkan, DeviceType::DiscreteGpu),
            info("NVIDIA H200", Backend::Gl, DeviceType::DiscreteGpu),
        ];
        let none = AdapterRequest::default();
        assert_eq!(choose(&infos, &none).unwrap(), 3);
        let cpu = AdapterRequest {
            backend: None,
            name_contains: Some("LLVMPIPE".into()),
            ..Default::default()
        };
        assert_eq!(choose(&infos, &cpu).unwrap(), 1);
        let gl = AdapterRequest {
            backend: Some("gl".into()),
            ..Default::default()
        };
        assert_eq!(choose(&infos, &gl).unwrap(), 4);
        let missing = AdapterRequest {
            backend: None,
            name_contains: Some("radeon".into()),
            ..Default::default()
        };
        let err = choose(&infos, &missing).unwrap_err().to_string();
        assert!(err.contains("NVIDIA H200"), "{err}");
        assert!(parse_backend("cuda").is_err());
        assert!(choose(&[], &none).is_err());
    }

    #[test]
    fn ranks_of_a_machine_take_its_best_adapters_in_turn() {
        use wgpu::{Backend, DeviceType};
        let infos = vec![
            info("llvmpipe", Backend::Vulkan, DeviceType::Cpu),
            info("GPU A", Backend::Vulkan, DeviceType::DiscreteGpu),
            info("GPU B", Backend::Vulkan, DeviceType::DiscreteGpu),
        ];
        let rank = |local| AdapterRequest {
            local_rank: Some(local),
            ..Default::default()
        };
        assert_eq!(choose(&infos, &rank(0)).unwrap(), 1);
        assert_eq!(choose(&infos, &rank(1)).unwrap(), 2);
        assert_eq!(choose(&infos, &rank(2)).unwrap(), 1);
        // A name still decides (--adapter, TASKGATE_ADAPTER).
        let named = AdapterRequest {
            name_contains: Some("llvmpipe".into()),
            local_rank: Some(1),
            ..Default::default()
        };
        assert_eq!(choose(&infos, &named).unwrap(), 0);
    }
}
