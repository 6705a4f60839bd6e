//! `taskgate eval DIR [--split dev|test] [--json] [--output FILE]`: per-task metrics of a
//! trained model on the data files its tasks name.

use std::path::{Path, PathBuf};

use std::io::Write;

use anyhow::{Result, bail};

use crate::data::splits::Split;
use crate::eval::evaluate_task;
use crate::files::Output;
use crate::gpu::{AdapterRequest, Gpu};
use crate::model::{ModelDir, MultiTaskModel};
use crate::train::checkpoint;
use crate::train::run::{describe, load_eval_sets};

/// The model directory of a run directory (its best checkpoint, else its last) or `dir`.
pub fn model_dir(dir: &Path) -> PathBuf {
    checkpoint::model_dir_of(dir)
}

/// How the metrics are reported: as text or JSON, to standard output or a file.
pub struct Report<'a> {
    pub json: bool,
    pub output: Option<&'a Path>,
}

pub fn run(
    request: &AdapterRequest,
    dir: &Path,
    split: Split,
    report: Report<'_>,
    allow_non_finite: bool,
) -> Result<()> {
    let Report { json, output } = report;
    let (model_path, model) = super::load_run_model(dir, model_dir(dir), allow_non_finite)?;
    let tasks = &model.spec.tasks;
    // The report never replaces the model or one of the data files it reads.
    let model_files = ModelDir::files(&model_path);
    let mut inputs: Vec<&Path> = model_files.iter().map(PathBuf::as_path).collect();
    inputs.extend(model.sources.iter().filter_map(|s| split.path(s)));
    let mut out = Output::open(output, &inputs, "--output")?;
    let data = load_eval_sets(tasks, &model.sources, split, &model.tokenizer)?;
    if data.iter().all(Option::is_none) {
        bail!(
            "no task of {} has a `{}` file; add `{} = \"path\"` to the tasks in its taskgate.toml",
            model_path.display(),
            split.name(),
            split.name()
        );
    }
    let gpu = pollster::block_on(Gpu::new(request))?;
    let gpu_model = MultiTaskModel::new(&gpu, model.spec.clone(), &model.params)?;
    let mut results = Vec::new();
    for (i, examples) in data.iter().enumerate() {
        if let Some(examples) = examples {
            let m = evaluate_task(&gpu_model, i, examples, &model.tokenizer)?;
            results.push((tasks[i].name.clone(), m));
        }
    }
    if json {
        let map: serde_json::Map<String, serde_json::Value> = results
            .iter()
            .map(|(t, m)| (t.clone(), serde_json::to_value(&m.0).expect("numbers")))
            .collect();
        writeln!(
            out,
            "{}",
            serde_json::json!({"model": model_path, "split": split.name(), "metrics": map})
        )?;
    } else {
        writeln!(
            out,
            "{} on {} ({}):",
            split.name(),
            model_path.display(),
            gpu.adapter_info().name
        )?;
        for (task, m) in &results {
            writeln!(out, "  {}", describe(&[(task.clone(), m.clone())]))?;
        }
    }
    out.finish()
}
