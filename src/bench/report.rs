//! The JSON schema shared with `bench/torch_baseline.py`.

use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

/// One measurement.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BenchResult {
    /// `kernels` or `train`.
    pub suite: String,
    pub name: String,
    pub shape: String,
    pub median_ms: f64,
    pub min_ms: f64,
    pub samples: usize,
    #[serde(default)]
    pub gflops: Option<f64>,
    #[serde(default)]
    pub gbps: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_per_s: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak_mem_mb: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak_mem_kind: Option<String>,
}

/// A whole run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Report {
    pub framework: String,
    pub device: String,
    /// How time was measured.
    pub timing: String,
    pub results: Vec<BenchResult>,
}

impl Report {
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        serde_json::from_str(&text)
            .with_context(|| format!("{} is not a benchmark report", path.display()))
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        crate::files::write_atomic(path, serde_json::to_string_pretty(self)?.as_bytes())
    }
}

/// Median and minimum of samples in seconds.
pub fn summarize(samples: &[f64]) -> (f64, f64) {
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    let median = if n % 2 == 1 {
        sorted[n / 2]
    } else {
        0.5 * (sorted[n / 2 - 1] + sorted[n / 2])
    };
    (median, sorted[0])
}

impl BenchResult {
    /// A result from timing samples (seconds), with optional counted work.
    pub fn from_samples(
        suite: &str,
        name: &str,
        shape: String,
        samples: &[f64],
        flops: Option<f64>,
        bytes: Option<f64>,
    ) -> Self {
        let (median, min) = summarize(samples);
        Self {
            suite: suite.into(),
            name: name.into(),
            shape,
            median_ms: median * 1e3,
            min_ms: min * 1e3,
            samples: samples.len(),
            gflops: flops.map(|f| f / median / 1e9),
            gbps: bytes.map(|b| b / median / 1e9),
            tokens_per_s: None,
            peak_mem_mb: None,
            peak_mem_kind: None,
        }
    }
}
