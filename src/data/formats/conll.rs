//! CoNLL-style token files: one `token<whitespace>...<whitespace>tag` per line, a blank line
//! between sentences; `-DOCSTART-` lines are skipped. The tag is the last column unless the
//! task's `tag_column` says otherwise.

use anyhow::Result;
use serde_json::Value;

use super::{Record, at};

pub fn read(text: &str, tag_column: Option<usize>) -> Result<Vec<Record>> {
    let mut records = Vec::new();
    let mut words: Vec<String> = Vec::new();
    let mut tags: Vec<Value> = Vec::new();
    let mut start = 0;
    let mut flush = |words: &mut Vec<String>, tags: &mut Vec<Value>, start: usize| {
        if !words.is_empty() {
            records.push(Record {
                line: start,
                text: words.join(" "),
                text_pair: None,
                label: Value::Array(std::mem::take(tags)),
            });
            words.clear();
        }
    };
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.is_empty() {
            flush(&mut words, &mut tags, start);
            continue;
        }
        if fields[0] == "-DOCSTART-" {
            continue;
        }
        let tag_index = tag_column.unwrap_or(fields.len() - 1);
        if fields.len() < 2 || tag_index == 0 || tag_index >= fields.len() {
            return Err(at(
                line_no,
                format!(
                    "expected a token and a tag (column {}), got {} field(s): {line:?}",
                    tag_index,
                    fields.len()
                ),
            ));
        }
        if words.is_empty() {
            start = line_no;
        }
        words.push(fields[0].to_string());
        tags.push(Value::from(fields[tag_index]));
    }
    flush(&mut words, &mut tags, start);
    Ok(records)
}
