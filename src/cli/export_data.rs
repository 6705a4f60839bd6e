//! `taskgate export-data CONFIG --split train [--per-task N] [--output FILE.jsonl]`: a config's
//! task data (any supported format) as one taskgate JSONL file, `{"text", "text_pair"?,
//! "labels": {task: label}}` per line, e.g. to fine-tune in the browser page. With
//! `--per-task N`, N examples evenly spaced through each task's file; tasks interleaved.

use std::io::Write;
use std::path::Path;

use anyhow::{Result, bail};
use serde_json::{Map, Value, json};

use crate::config::{DataSource, TaskConfig};
use crate::data::formats::read_records;
use crate::data::splits::{Split, label_value};
use crate::files::Output;
use crate::tasks::TaskSpec;
use crate::train::run::resolve_paths;

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
    // The output is never the config or one of its data files (any split).
    let mut inputs: Vec<&Path> = vec![config];
    let sources: Vec<DataSource> = config_data.tasks.iter().map(TaskConfig::source).collect();
    for source in &sources {
        for split in [Split::Train, Split::Dev, Split::Test] {
            inputs.extend(split.path(source));
        }
    }
    let mut out = Output::open(output, &inputs, "--output")?;
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
