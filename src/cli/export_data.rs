//! `taskgate export-data CONFIG --split train [--per-task N] [--output FILE.jsonl]`: a config's
//! task data (any supported format) as one taskgate JSONL file, `{"text", "text_pair"?,
//! "labels": {task: label}}` per line, e.g. to fine-tune in the browser page. With
//! `--per-task N`, N examples evenly spaced through each task's file; tasks interleaved.
//!
//! `taskgate export-data CONFIG --batches N [--output FILE.jsonl]`: instead, the batches of the
//! first N steps of a fresh `taskgate train CONFIG`, in order, tokenized, one line per step:
//! `{"step": s, "batches": [{"task", "examples": [index in the task's training examples],
//! "input_ids": [[..]], "token_type_ids": [[..]], "labels": [..]}]}`, unpadded. Labels:
//! class indices (into the label set `run.toml` lists), index lists (multilabel), value lists
//! (regression), one tag index per word (token tasks), `{"text", "tokens"}` (generation:
//! the decoder's `[CLS] t1 .. tn [SEP]`). `scripts/generation_torch_baseline.py` trains
//! PyTorch on exactly these batches.

use std::io::Write;
use std::path::Path;

use anyhow::{Result, bail};
use serde_json::{Map, Value, json};

use crate::config::{DataSource, TaskConfig};
use crate::data::formats::read_records;
use crate::data::splits::{Split, label_value};
use crate::files::Output;
use crate::tasks::{Label, TaskSpec};
use crate::train::run::{batch_order, resolve_paths};

pub fn run(
    config: &Path,
    split: Split,
    per_task: Option<usize>,
    output: Option<&Path>,
) -> Result<()> {
    if per_task == Some(0) {
        bail!("--per-task must be at least 1");
    }
    // Labels are written as the files hold them: no label set needs inferring.
    let config_data = resolve_paths(config, None)?;
    let tasks = TaskSpec::all_in(&config_data, config)?;
    let sources: Vec<DataSource> = config_data.tasks.iter().map(TaskConfig::source).collect();
    let mut out = open_output(config, &sources, output)?;
    let mut per_task_lines: Vec<Vec<Value>> = Vec::new();
    for (task, source) in tasks.iter().zip(&sources) {
        let Some(path) = split.path(source) else {
            per_task_lines.push(Vec::new());
            continue;
        };
        let records = read_records(task, source, path)?;
        let keep = per_task.unwrap_or(records.len()).min(records.len());
        let lines = (0..keep)
            .map(|k| &records[k * records.len() / keep.max(1)])
            .map(|r| {
                let label = label_value(task, &r.label);
                let mut line = Map::new();
                line.insert("text".into(), json!(r.text));
                if let Some(pair) = &r.text_pair {
                    line.insert("text_pair".into(), json!(pair));
                }
                line.insert("labels".into(), json!({ task.name.clone(): label }));
                Value::Object(line)
            })
            .collect();
        per_task_lines.push(lines);
    }
    let total: usize = per_task_lines.iter().map(Vec::len).sum();
    if total == 0 {
        bail!("{}: no task has a {} file", config.display(), split.name());
    }
    let longest = per_task_lines.iter().map(Vec::len).max().unwrap_or(0);
    for k in 0..longest {
        for lines in &per_task_lines {
            if let Some(line) = lines.get(k) {
                writeln!(out, "{line}")?;
            }
        }
    }
    out.finish()?;
    if let Some(p) = output {
        eprintln!("wrote {total} examples to {}", p.display());
    }
    Ok(())
}

/// `--batches N`: the first `steps` steps' batches of a fresh run, as the module says.
pub fn run_batches(config: &Path, steps: u64, output: Option<&Path>) -> Result<()> {
    if steps == 0 {
        bail!("--batches must be at least 1");
    }
    let order = batch_order(config, steps)?;
    let mut out = open_output(config, &order.sources, output)?;
    for (step, drawn) in order.steps.iter().enumerate() {
        let batches: Vec<Value> = drawn
            .iter()
            .map(|(task, indices)| {
                let examples: Vec<_> = indices.iter().map(|&i| &order.pools[*task][i]).collect();
                json!({
                    "task": order.tasks[*task].name,
                    "examples": indices,
                    "input_ids": examples.iter().map(|e| &e.encoded.ids).collect::<Vec<_>>(),
                    "token_type_ids":
                        examples.iter().map(|e| &e.encoded.type_ids).collect::<Vec<_>>(),
                    "labels": examples
                        .iter()
                        .map(|e| e.labels[*task].as_ref().map_or(Value::Null, label_json))
                        .collect::<Vec<_>>(),
                })
            })
            .collect();
        writeln!(out, "{}", json!({"step": step + 1, "batches": batches}))?;
    }
    out.finish()?;
    if let Some(p) = output {
        eprintln!("wrote the batches of {steps} steps to {}", p.display());
    }
    Ok(())
}

/// `--output` (standard output without it), never the config or one of its data files (any
/// split).
fn open_output(config: &Path, sources: &[DataSource], output: Option<&Path>) -> Result<Output> {
    let mut inputs: Vec<&Path> = vec![config];
    for source in sources {
        for split in [Split::Train, Split::Dev, Split::Test] {
            inputs.extend(split.path(source));
        }
    }
    Output::open(output, &inputs, "--output")
}

/// A label as `--batches` writes it.
fn label_json(label: &Label) -> Value {
    match label {
        Label::Class(c) => json!(c),
        Label::Classes(cs) => json!(cs),
        Label::Values(v) => json!(v),
        Label::Tags(t) => json!(t),
        Label::Text { text, tokens } => json!({"text": text, "tokens": tokens}),
    }
}
