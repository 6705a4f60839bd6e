//! `word/TAG` files: one sentence per line, items separated by whitespace, the tag after the
//! last `/` of each item (so `1/2/CD` is the word `1/2` tagged `CD`).

use anyhow::Result;
use serde_json::Value;

use super::{Record, at};

pub fn read(text: &str) -> Result<Vec<Record>> {
    let mut records = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        let mut words = Vec::new();
        let mut tags = Vec::new();
        for item in line.split_whitespace() {
            match item.rsplit_once('/') {
                Some((word, tag)) if !word.is_empty() && !tag.is_empty() => {
                    words.push(word);
                    tags.push(Value::from(tag));
                }
                _ => {
                    return Err(at(
                        line_no,
                        format!("'{item}' is not word/TAG (format = \"word_tag\")"),
                    ));
                }
            }
        }
        if !words.is_empty() {
            records.push(Record {
                line: line_no,
                text: words.join(" "),
                text_pair: None,
                label: Value::Array(tags),
            });
        }
    }
    Ok(records)
}
