//! JSONL examples: `{"text": ..., "text_pair"?: ..., "labels": {"<task>": ...}}` per line.

use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};
use serde_json::{Map, Value};

use crate::tasks::TaskSpec;
use crate::tasks::{Label, parse_label};
use crate::tokenize::{Encoded, TextTokenizer};

/// One tokenized example with its labels (`None` where a task is unlabelled).
#[derive(Clone, Debug)]
pub struct Example {
    pub text: String,
    pub text_pair: Option<String>,
    pub encoded: Encoded,
    pub labels: Vec<Option<Label>>,
}

/// The `"text"` and optional `"text_pair"` strings of a JSONL object (every JSONL reader's
/// inputs: batches, task data files, `predict`).
pub fn text_fields(object: &Map<String, Value>) -> Result<(String, Option<String>)> {
    let text = match object.get("text") {
        Some(Value::String(s)) => s.clone(),
        Some(other) => bail!("\"text\" must be a string, got {other}"),
        None => bail!("missing \"text\""),
    };
    let text_pair = match object.get("text_pair") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => bail!("\"text_pair\" must be a string, got {other}"),
    };
    Ok((text, text_pair))
}

/// Parses one JSONL line.
pub fn parse_example(line: &str, tasks: &[TaskSpec], tokenizer: &TextTokenizer) -> Result<Example> {
    let value: Value = serde_json::from_str(line).map_err(|e| anyhow!("not valid JSON ({e})"))?;
    let Some(object) = value.as_object() else {
        bail!("expected a JSON object");
    };
    let (text, text_pair) = text_fields(object)?;
    for key in object.keys() {
        if !["text", "text_pair", "labels"].contains(&key.as_str()) {
            bail!("unknown key \"{key}\" (expected text, text_pair, labels)");
        }
    }
    let encoded = tokenizer.encode(&text, text_pair.as_deref())?;
    let mut labels = vec![None; tasks.len()];
    match object.get("labels") {
        None | Some(Value::Null) => {}
        Some(Value::Object(map)) => {
            for (name, v) in map {
                let Some(index) = tasks.iter().position(|t| &t.name == name) else {
                    let known: Vec<&str> = tasks.iter().map(|t| t.name.as_str()).collect();
                    bail!(
                        "labels for unknown task '{name}' (tasks: {})",
                        known.join(", ")
                    );
                };
                if !v.is_null() {
                    let mut label = parse_label(&tasks[index], v, encoded.n_words, None)?;
                    super::targets::encode_target(&tasks[index], &mut label, tokenizer)?;
                    labels[index] = Some(label);
                }
            }
        }
        Some(other) => bail!("\"labels\" must be an object, got {other}"),
    }
    Ok(Example {
        text,
        text_pair,
        encoded,
        labels,
    })
}

/// Reads every example of a JSONL file; errors name the file and line.
pub fn read_examples(
    path: &Path,
    tasks: &[TaskSpec],
    tokenizer: &TextTokenizer,
) -> Result<Vec<Example>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    parse_examples(&text, &path.display().to_string(), tasks, tokenizer)
}

/// Parses every example of JSONL `text`; errors name `source` and the line.
pub fn parse_examples(
    text: &str,
    source: &str,
    tasks: &[TaskSpec],
    tokenizer: &TextTokenizer,
) -> Result<Vec<Example>> {
    let mut examples = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let example = parse_example(line, tasks, tokenizer)
            .map_err(|e| anyhow!("{source}:{}: {e}", i + 1))?;
        examples.push(example);
    }
    if examples.is_empty() {
        bail!("{source}: no examples (the file is empty)");
    }
    Ok(examples)
}
