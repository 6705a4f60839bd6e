//! CSV and TSV files with the text, optional pair and label columns chosen in the config,
//! by header name or 0-based index.

use anyhow::Result;

use super::{Record, at};
use crate::config::{Column, DataFormat, DataSource};
use crate::tasks::TaskSpec;

pub fn read(
    text: &str,
    format: DataFormat,
    task: &TaskSpec,
    source: &DataSource,
) -> Result<Vec<Record>> {
    let delimiter = match &source.delimiter {
        Some(d) if d.len() == 1 => d.as_bytes()[0],
        Some(d) if d == "\\t" => b'\t',
        Some(d) => {
            return Err(at(
                1,
                format!(
                    "task '{}': delimiter must be one ASCII character, got {d:?}",
                    task.name
                ),
            ));
        }
        None if format == DataFormat::Tsv => b'\t',
        None => b',',
    };
    let has_header = source.header.unwrap_or(true);
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(has_header)
        .flexible(true)
        .from_reader(text.as_bytes());
    let headers: Vec<String> = if has_header {
        reader
            .headers()
            .map_err(|e| at(1, format!("cannot read the header row ({e})")))?
            .iter()
            .map(|h| h.trim().to_string())
            .collect()
    } else {
        Vec::new()
    };
    let find = |column: &Column, role: &str| -> Result<usize> {
        match column {
            Column::Index(i) => Ok(*i),
            Column::Name(name) => headers.iter().position(|h| h == name).ok_or_else(|| {
                let hint = if has_header {
                    format!("the header has: {}", headers.join(", "))
                } else {
                    "the file has no header (header = false): give the column as a 0-based index"
                        .to_string()
                };
                at(
                    1,
                    format!("no {role} column '{name}' ({hint}); set the task's `{role}_column`"),
                )
            }),
        }
    };
    let text_col = find(
        source
            .text_column
            .as_ref()
            .unwrap_or(&Column::Name("text".into())),
        "text",
    )?;
    // Generation tasks read a `target` column (`target_column`), the others a `label`.
    let label_role = super::label_key(task);
    let label_column = match label_role {
        "target" => source.target_column.as_ref(),
        _ => source.label_column.as_ref(),
    };
    let label_col = find(
        label_column.unwrap_or(&Column::Name(label_role.into())),
        label_role,
    )?;
    let pair_col = source
        .pair_column
        .as_ref()
        .map(|c| find(c, "pair"))
        .transpose()?;
    let separator = source.label_separator.as_deref().unwrap_or("|");
    let mut records = Vec::new();
    for row in reader.records() {
        let row = row.map_err(|e| {
            let line = e.position().map_or(0, |p| p.line() as usize);
            at(line, format!("malformed row ({e})"))
        })?;
        let line = row.position().map_or(0, |p| p.line() as usize);
        if row.iter().all(|f| f.trim().is_empty()) {
            continue;
        }
        let cell = |col: usize, role: &str| -> Result<String> {
            row.get(col).map(str::to_string).ok_or_else(|| {
                at(
                    line,
                    format!(
                        "the row has {} field(s); the {role} column is {col}",
                        row.len()
                    ),
                )
            })
        };
        let label_text = cell(label_col, label_role)?.trim().to_string();
        let label = task
            .kind
            .label_from_cell(task, &label_text, separator)
            .map_err(|message| at(line, message))?;
        records.push(Record {
            line,
            text: cell(text_col, "text")?,
            text_pair: pair_col.map(|c| cell(c, "pair")).transpose()?,
            label,
        });
    }
    Ok(records)
}
