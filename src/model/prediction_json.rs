//! One example's predictions as JSON, the form `taskgate predict` writes and the browser page
//! reads: decoded predictions per task (label names), and optionally each task's per-token
//! gate values and its raw logits.

use serde_json::{Map, Value, json};

use super::infer::{TaskOutputs, decode};
use super::spec::ModelSpec;
use crate::data::Example;
use crate::tokenize::TextTokenizer;

/// What to add to the predictions.
#[derive(Clone, Copy, Debug, Default)]
pub struct Extras {
    /// `"gates": {task: [{"token", "gate"}, ...]}` for tasks with a gate.
    pub gates: bool,
    /// `"logits": {task: [w values]}` (sequence tasks) or `[[w values] per token]` (token tasks).
    pub logits: bool,
    /// Generation tasks: decode with this many beams and write them all (`"beams"`).
    pub beam: Option<usize>,
}

/// The JSON object of row `row` of a batch (padded to `seq` tokens) whose outputs are
/// `outputs` (every task run).
pub fn prediction_json(
    spec: &ModelSpec,
    tokenizer: &TextTokenizer,
    outputs: &[Option<TaskOutputs>],
    seq: usize,
    row: usize,
    example: &Example,
    extras: Extras,
) -> Map<String, Value> {
    let mut predictions = Map::new();
    let mut gates = Map::new();
    let mut logits = Map::new();
    let n_tokens = example.encoded.ids.len();
    for (i, task) in spec.tasks.iter().enumerate() {
        let Some(o) = outputs[i].as_ref() else {
            continue;
        };
        let labels = task.labels.clone().unwrap_or_default();
        let name = |k: usize| labels.get(k).cloned().unwrap_or_else(|| k.to_string());
        let prediction = decode(task, o, seq, row, example, Some(task.word_split()));
        let p = task.kind.prediction_json(&prediction, &name);
        predictions.insert(task.name.clone(), p);
        if let (true, Some(g)) = (extras.gates, &o.gate) {
            let per_token: Vec<Value> = (0..n_tokens)
                .map(|pos| {
                    json!({
                        "token": tokenizer.token(example.encoded.ids[pos]),
                        "gate": g[row * seq + pos]
                    })
                })
                .collect();
            gates.insert(task.name.clone(), Value::Array(per_token));
        }
        if extras.logits && !task.kind.generates_text() {
            let w = o.width;
            let value = if task.kind.is_sequence_level() {
                json!(o.logits[row * w..(row + 1) * w])
            } else {
                let rows: Vec<&[f32]> = (0..n_tokens)
                    .map(|pos| &o.logits[(row * seq + pos) * w..(row * seq + pos + 1) * w])
                    .collect();
                json!(rows)
            };
            logits.insert(task.name.clone(), value);
        }
    }
    let mut line = Map::new();
    line.insert("text".into(), json!(example.text));
    if let Some(p) = &example.text_pair {
        line.insert("text_pair".into(), json!(p));
    }
    line.insert("predictions".into(), Value::Object(predictions));
    if extras.gates {
        line.insert("gates".into(), Value::Object(gates));
    }
    if extras.logits {
        line.insert("logits".into(), Value::Object(logits));
    }
    line
}
