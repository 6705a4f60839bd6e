//! Task JSONL: `{"text": ..., "text_pair"?: ..., "label": ...}` per line (generation
//! tasks: `"target"` in place of `"label"`).

use anyhow::Result;
use serde_json::Value;

use super::{Record, at};
use crate::data::jsonl::text_fields;

/// Records of `text`, whose label is under `label_key` (`label`, or `target`).
pub fn read(text: &str, label_key: &str) -> Result<Vec<Record>> {
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
                format!("expected a JSON object with \"text\" and \"{label_key}\""),
            ));
        };
        for key in object.keys() {
            if !["text", "text_pair", label_key].contains(&key.as_str()) {
                return Err(at(
                    line_no,
                    format!("unknown key \"{key}\" (expected text, text_pair, {label_key})"),
                ));
            }
        }
        let (text, text_pair) = text_fields(&object).map_err(|e| at(line_no, e))?;
        let Some(label) = object.get(label_key).cloned() else {
            return Err(at(line_no, format!("missing \"{label_key}\"")));
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
