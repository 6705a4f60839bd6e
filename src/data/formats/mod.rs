//! Readers for a task's data files. Each turns a file into [`Record`]s (text, optional pair,
//! raw label, line number); the task's kind decides later how the label is parsed.
//!
//! Formats: JSONL (`{"text", "text_pair"?, "label"}`), CSV/TSV with chosen columns, CoNLL
//! (`token ... tag` per line, blank line between sentences) and `word/TAG` lines.

mod conll;
mod delimited;
mod jsonl;
mod word_tag;

use std::path::Path;

use anyhow::{Result, anyhow, bail};
use serde_json::Value;

use crate::config::{DataFormat, DataSource};
use crate::tasks::TaskSpec;

/// One example as read from a file, before tokenization.
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    /// 1-based line where the example starts.
    pub line: usize,
    pub text: String,
    pub text_pair: Option<String>,
    /// The label as JSON: a string, a number, or a list (tags, label names, values).
    pub label: Value,
}

/// Reads `path` as text, with an error naming the line of the first invalid UTF-8 byte.
pub fn read_utf8(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|e| anyhow!("cannot read {}: {e}", path.display()))?;
    match String::from_utf8(bytes) {
        Ok(text) => Ok(text
            .strip_prefix('\u{feff}')
            .map(str::to_owned)
            .unwrap_or(text)),
        Err(e) => {
            let at = e.utf8_error().valid_up_to();
            let line = e.as_bytes()[..at].iter().filter(|&&b| b == b'\n').count() + 1;
            bail!(
                "{}:{line}: invalid UTF-8 (byte {at}); save the file as UTF-8",
                path.display()
            )
        }
    }
}

/// Reads every record of `path` for `task`; errors name the file and line.
pub fn read_records(task: &TaskSpec, source: &DataSource, path: &Path) -> Result<Vec<Record>> {
    let format = DataFormat::resolve(source.format, path)?;
    let token_task = !task.kind.is_sequence_level();
    match (format, token_task) {
        (DataFormat::Conll | DataFormat::WordTag, false) => bail!(
            "{}: task '{}' is {}, but {format:?} files hold token tags; use jsonl, csv or tsv",
            path.display(),
            task.name,
            task.kind
        ),
        (DataFormat::Csv | DataFormat::Tsv, true) => bail!(
            "{}: task '{}' is {}; use conll, word_tag or jsonl files",
            path.display(),
            task.name,
            task.kind
        ),
        _ => {}
    }
    let text = read_utf8(path)?;
    if text.trim().is_empty() {
        bail!(
            "{}: no examples (the file is empty); add examples or remove the path from task '{}'",
            path.display(),
            task.name
        );
    }
    let records = match format {
        DataFormat::Jsonl => jsonl::read(&text, label_key(task)),
        DataFormat::Csv | DataFormat::Tsv => delimited::read(&text, format, task, source),
        DataFormat::Conll => conll::read(&text, source.tag_column),
        DataFormat::WordTag => word_tag::read(&text),
    }
    .map_err(|e| anyhow!("{}:{e}", path.display()))?;
    if records.is_empty() {
        bail!(
            "{}: no examples (the file is empty); add examples or remove the path from task '{}'",
            path.display(),
            task.name
        );
    }
    Ok(records)
}

/// The JSONL key and CSV/TSV column role of `task`'s labels.
pub fn label_key(task: &TaskSpec) -> &'static str {
    if task.kind.generates_text() {
        "target"
    } else {
        "label"
    }
}

/// Error text `line: message` (the reader's caller prefixes the path).
fn at(line: usize, message: impl std::fmt::Display) -> anyhow::Error {
    anyhow!("{line}: {message}")
}

#[cfg(test)]
mod tests;
