//! `taskgate predict DIR --input FILE.jsonl [--output FILE.jsonl] [--gates]`: every task's
//! prediction for each input line, in batches, streaming (memory stays constant however
//! long the input is). Input lines: `{"text": ..., "text_pair"?: ..., "id"?: ...}`.

use std::io::{BufRead, BufWriter, Write};
use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};
use serde_json::{Map, Value, json};

use super::eval::model_dir;
use crate::data::jsonl::text_fields;
use crate::data::{Example, collate};
use crate::gpu::{AdapterRequest, Gpu};
use crate::model::infer::{Prediction, decode, infer};
use crate::model::{ModelDir, MultiTaskModel};

/// Lines per inference batch.
const BATCH: usize = 32;

pub fn run(
    request: &AdapterRequest,
    dir: &Path,
    input: &Path,
    output: Option<&Path>,
    gates: bool,
) -> Result<()> {
    let model_path = model_dir(dir);
    let model = ModelDir::load(&model_path)?;
    let file =
        std::fs::File::open(input).with_context(|| format!("cannot open {}", input.display()))?;
    let reader = std::io::BufReader::new(file);
    let gpu = pollster::block_on(Gpu::new(request))?;
    let gpu_model = MultiTaskModel::new(&gpu, model.spec.clone(), &model.params)?;
    let mut out: Box<dyn Write> = match output {
        Some(p) => Box::new(BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("cannot create {}", p.display()))?,
        )),
        None => Box::new(BufWriter::new(std::io::stdout().lock())),
    };
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
            count += flush(&gpu_model, &model, &mut pending, gates, &mut out)?;
        }
    }
    count += flush(&gpu_model, &model, &mut pending, gates, &mut out)?;
    out.flush()?;
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
    gates: bool,
    out: &mut dyn Write,
) -> Result<usize> {
    if pending.is_empty() {
        return Ok(0);
    }
    let examples: Vec<Example> = pending.iter().map(|(e, _)| e.clone()).collect();
    let batch = collate(&examples, &model.spec.tasks, model.tokenizer.pad_id());
    let outputs = infer(gpu_model, &batch, None, gates)?;
    for (row, (example, id)) in pending.iter().enumerate() {
        let mut predictions = Map::new();
        let mut gate_map = Map::new();
        for (i, task) in model.spec.tasks.iter().enumerate() {
            let o = outputs[i].as_ref().expect("every task runs");
            let labels = task.labels.clone().unwrap_or_default();
            let name = |k: usize| labels.get(k).cloned().unwrap_or_else(|| k.to_string());
            let p = match decode(task, o, batch.seq, row, example) {
                Prediction::Class(k, probs) => json!({
                    "label": name(k),
                    "scores": probs.iter().enumerate().map(|(j, p)| (name(j), json!(p))).collect::<Map<_, _>>()
                }),
                Prediction::Labels(probs) => json!({
                    "labels": probs.iter().enumerate().filter(|(_, p)| **p >= 0.5).map(|(j, _)| name(j)).collect::<Vec<_>>(),
                    "scores": probs.iter().enumerate().map(|(j, p)| (name(j), json!(p))).collect::<Map<_, _>>()
                }),
                Prediction::Values(v) => json!({ "values": v }),
                Prediction::Tags(tags) => json!({
                    "tags": tags.iter().map(|t| t.map(name)).collect::<Vec<_>>()
                }),
            };
            predictions.insert(task.name.clone(), p);
            if let Some(g) = &o.gate {
                let n = example.encoded.ids.len();
                let per_token: Vec<Value> = (0..n)
                    .map(|pos| json!({"token": model.tokenizer.token(example.encoded.ids[pos]), "gate": g[row * batch.seq + pos]}))
                    .collect();
                gate_map.insert(task.name.clone(), Value::Array(per_token));
            }
        }
        let mut line = Map::new();
        if let Some(id) = id {
            line.insert("id".into(), id.clone());
        }
        line.insert("text".into(), json!(example.text));
        if let Some(p) = &example.text_pair {
            line.insert("text_pair".into(), json!(p));
        }
        line.insert("predictions".into(), Value::Object(predictions));
        if gates {
            line.insert("gates".into(), Value::Object(gate_map));
        }
        writeln!(out, "{}", Value::Object(line))?;
    }
    let n = pending.len();
    pending.clear();
    Ok(n)
}
