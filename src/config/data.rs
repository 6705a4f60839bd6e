//! How a task's data files are read: the format and, for delimited files, the columns.

use std::path::Path;

use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};

/// A data file format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DataFormat {
    /// One JSON object per line: `{"text": ..., "text_pair"?: ..., "label": ...}`.
    Jsonl,
    /// Comma-separated values with named (or numbered) columns.
    Csv,
    /// Tab-separated values with named (or numbered) columns.
    Tsv,
    /// One `token<sep>...<sep>tag` per line, a blank line between sentences.
    Conll,
    /// One sentence per line of `word/TAG` items separated by spaces.
    WordTag,
}

impl DataFormat {
    /// The format `format` names, else the one `path`'s extension implies.
    pub fn resolve(format: Option<DataFormat>, path: &Path) -> Result<DataFormat> {
        if let Some(f) = format {
            return Ok(f);
        }
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or("")
            .to_ascii_lowercase();
        Ok(match ext.as_str() {
            "jsonl" | "json" => DataFormat::Jsonl,
            "csv" => DataFormat::Csv,
            "tsv" => DataFormat::Tsv,
            "conll" | "conllu" | "bio" => DataFormat::Conll,
            _ => bail!(
                "{}: cannot tell the format from the extension '.{ext}'; set the task's \
                 `format` to jsonl, csv, tsv, conll or word_tag",
                path.display()
            ),
        })
    }
}

/// A CSV/TSV column: a header name or a 0-based index.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum Column {
    Index(usize),
    Name(String),
}

impl std::fmt::Display for Column {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Column::Index(i) => write!(f, "column {i}"),
            Column::Name(n) => write!(f, "column '{n}'"),
        }
    }
}

/// Where a task's examples come from and how its files are read (the data half of a
/// `[[task]]`; see [`super::TaskConfig`] for each field's meaning).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DataSource {
    pub train: Option<std::path::PathBuf>,
    pub dev: Option<std::path::PathBuf>,
    pub test: Option<std::path::PathBuf>,
    pub format: Option<DataFormat>,
    pub text_column: Option<Column>,
    pub pair_column: Option<Column>,
    pub label_column: Option<Column>,
    pub target_column: Option<Column>,
    pub delimiter: Option<String>,
    pub header: Option<bool>,
    pub tag_column: Option<usize>,
    pub label_separator: Option<String>,
}
