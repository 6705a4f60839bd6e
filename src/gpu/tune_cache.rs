//! The autotuning cache of a device: choices keyed by "adapter | driver | class", stored on
//! disk per machine (`$TASKGATE_CACHE_DIR`, else `$XDG_CACHE_HOME/taskgate`, else
//! `~/.cache/taskgate`, file `autotune.json`), and the switch that turns tuning on from the
//! environment (`TASKGATE_AUTOTUNE=1`). What a choice is (which matmul kernel and tiling)
//! belongs to `ops::autotune`: here an entry is the JSON value it stored.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;
use serde::de::DeserializeOwned;

/// The cache: key to the JSON of the choice made for it.
#[derive(Debug, Default)]
pub struct TuneCache(BTreeMap<String, serde_json::Value>);

/// Where tuning results are stored.
pub fn cache_path() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("TASKGATE_CACHE_DIR") {
        return Some(PathBuf::from(dir).join("autotune.json"));
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("taskgate").join("autotune.json"))
}

/// True when `TASKGATE_AUTOTUNE` asks for tuning.
pub fn enabled_by_env() -> bool {
    matches!(
        std::env::var("TASKGATE_AUTOTUNE").as_deref(),
        Ok("1" | "true" | "on" | "yes")
    )
}

impl TuneCache {
    /// The cache on disk (empty when there is none or it does not parse).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn load() -> Self {
        Self(
            cache_path()
                .and_then(|p| std::fs::read_to_string(p).ok())
                .and_then(|text| serde_json::from_str(&text).ok())
                .unwrap_or_default(),
        )
    }

    /// Writes the cache to disk; a cache that cannot be written only costs a re-tune later.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn save(&self) {
        let Some(path) = cache_path() else {
            return;
        };
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        if let Ok(text) = serde_json::to_string_pretty(&self.0) {
            let _ = crate::files::write_atomic(&path, text.as_bytes());
        }
    }

    /// The choice stored for `key` (`None` when there is none, or it is not a `T`: then it
    /// is tuned again).
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Option<T> {
        self.0.get(key).and_then(|v| T::deserialize(v.clone()).ok())
    }

    pub fn insert<T: Serialize>(&mut self, key: String, choice: &T) {
        if let Ok(value) = serde_json::to_value(choice) {
            self.0.insert(key, value);
        }
    }
}
