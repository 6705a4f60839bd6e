//! `taskgate predict DIR --input FILE.jsonl [--output FILE.jsonl] [--gates] [--logits]`: every task's
//! prediction for each input line, in batches, streaming (memory stays constant however
//! long the input is). Input lines: `{"text": ..., "text_pair"?: ..., "id"?: ...}`. The
//! output file is never one of the inputs and appears only when complete.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use serde_json::{Map, Value};

use super::eval::model_dir;
use crate::data::jsonl::text_fields;
use crate::data::{Example, collate};
use crate::files::Output;
use crate::gpu::{AdapterRequest, Gpu};
use crate::model::infer::{InferOptions, infer};
use crate::model::prediction_json::{Extras, prediction_json};
use crate::model::{ModelDir, MultiTaskModel};

/// Lines per inference batch.
const BATCH: usize = 32;

pub fn run(
    request: &AdapterRequest,
    dir: &Path,
    input: &Path,
    output: Option<&Path>,
    extras: Extras,
    allow_non_finite: bool,
) -> Result<()> {
    let (model_path, model) = super::load_run_model(dir, model_dir(dir), allow_non_finite)?;
    // Opened before any work (the output never replaces an input; it appears when complete).
    let model_files = ModelDir::files(&model_path);
    let mut inputs: Vec<&Path> = model_files.iter().map(PathBuf::as_path).collect();
    inputs.push(input);
    let mut out = Output::open(output, &inputs, "--output")?;
    let file =
        std::fs::File::open(input).with_context(|| format!("cannot open {}", input.display()))?;
    let reader = std::io::BufReader::new(file);
    let gpu = pollster::block_on(Gpu::new(request))?;
    let gpu_model = MultiTaskModel::new(&gpu, model.spec.clone(), &model.params)?;
    let mut pending: Vec<(Example, Option<Value>)> = Vec::new();
    let mut count = 0usize;
    for (i, line) in reader.lines().enumerate() {
        let line = line.map_err(|e| {
            anyhow!(
                "{}:{}: {e} (is the file UTF-8 text?)",
                input.display(),
                i + 1
            )
        })?;
        if line.trim().is_empty() {
            continue;
        }
        let parsed =
            parse_line(&line, &model).map_err(|e| anyhow!("{}:{}: {e}", input.display(), i + 1))?;
        pending.push(parsed);
        if pending.len() == BATCH {
            count += flush(&gpu_model, &model, &mut pending, extras, &mut out)?;
        }
    }
    count += flush(&gpu_model, &model, &mut pending, extras, &mut out)?;
    out.finish()?;
    if let Some(p) = output {
        eprintln!("wrote {count} predictions to {}", p.display());
    }
    Ok(())
}

fn parse_line(line: &str, model: &ModelDir) -> Result<(Example, Option<Value>)> {
    let value: Value = serde_json::from_str(line).map_err(|e| anyhow!("not valid JSON ({e})"))?;
    let Value::Object(object) = &value else {
        bail!("expected a JSON object {{\"text\": ..., \"text_pair\"?: ...}}");
    };
    let (text, text_pair) = text_fields(object)?;
    let encoded = model.tokenizer.encode(&text, text_pair.as_deref())?;
    let example = Example {
        text,
        text_pair,
        encoded,
        labels: vec![None; model.spec.tasks.len()],
    };
    Ok((example, value.get("id").cloned()))
}

fn flush(
    gpu_model: &MultiTaskModel,
    model: &ModelDir,
    pending: &mut Vec<(Example, Option<Value>)>,
    extras: Extras,
    out: &mut dyn Write,
) -> Result<usize> {
    if pending.is_empty() {
        return Ok(0);
    }
    let examples: Vec<Example> = pending.iter().map(|(e, _)| e.clone()).collect();
    let batch = collate(&examples, &model.spec.tasks, model.tokenizer.pad_id());
    let options = InferOptions {
        with_gates: extras.gates,
        beam: extras.beam,
    };
    let outputs = infer(gpu_model, &model.tokenizer, &batch, None, options)?;
    for (row, (example, id)) in pending.iter().enumerate() {
        let mut line = Map::new();
        if let Some(id) = id {
            line.insert("id".into(), id.clone());
        }
        line.extend(prediction_json(
            &model.spec,
            &model.tokenizer,
            &outputs,
            batch.seq,
            row,
            example,
            extras,
        ));
        writeln!(out, "{}", Value::Object(line))?;
    }
    let n = pending.len();
    pending.clear();
    Ok(n)
}
