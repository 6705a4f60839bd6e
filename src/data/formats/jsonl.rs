//! Task JSONL: `{"text": ..., "text_pair"?: ..., "label": ...}` per line.

use anyhow::Result;
use serde_json::Value;

use super::{Record, at};

pub fn read(text: &str) -> Result<Vec<Record>> {
    let mut records = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let value: Value =
            serde_json::from_str(line).map_err(|e| at(line_no, format!("not valid JSON ({e})")))?;
        let Value::Object(object) = value else {
            return Err(at(
                line_no,
                "expected a JSON object with \"text\" and \"label\"",
            ));
        };
        for key in object.keys() {
            if !["text", "text_pair", "label"].contains(&key.as_str()) {
                return Err(at(
                    line_no,
                    format!("unknown key \"{key}\" (expected text, text_pair, label)"),
                ));
            }
        }
        let text = match object.get("text") {
            Some(Value::String(s)) => s.clone(),
            Some(other) => {
                return Err(at(
                    line_no,
                    format!("\"text\" must be a string, got {other}"),
                ));
            }
            None => return Err(at(line_no, "missing \"text\"")),
        };
        let text_pair = match object.get("text_pair") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(other) => {
                return Err(at(
                    line_no,
                    format!("\"text_pair\" must be a string, got {other}"),
                ));
            }
        };
        let Some(label) = object.get("label").cloned() else {
            return Err(at(line_no, "missing \"label\""));
        };
        records.push(Record {
            line: line_no,
            text,
            text_pair,
            label,
        });
    }
    Ok(records)
}
