//! What a study keeps of its trials: `study.jsonl` (one line per finished trial, rewritten
//! atomically, so a kill leaves either the old or the new file), the results table
//! (`study.md`) and the winner's configuration (`best.toml`).

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::config::tune::{Choice, format_float};
use crate::files::write_atomic;

/// How a trial ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Ran all its steps.
    Finished,
    /// Stopped by the median rule at an evaluation point.
    Stopped,
    /// Ended with an error (diverged, or a setting the model refused): no objective.
    Failed,
}

/// One line of `study.jsonl`.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
pub struct TrialRecord {
    pub trial: usize,
    /// The searched settings, by path.
    pub params: BTreeMap<String, Choice>,
    pub status: Status,
    /// The objective at the trial's last evaluation (maximised).
    pub objective: Option<f64>,
    /// Steps trained.
    pub steps: u64,
    /// The objective at every evaluation point, `[step, value]`.
    pub evals: Vec<(u64, f64)>,
    /// The dev metrics of the last evaluation, per task.
    pub dev: BTreeMap<String, BTreeMap<String, f64>>,
    /// Wall-clock seconds.
    pub time_s: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Reads `study.jsonl` (missing: no trial yet).
pub fn read(path: &Path) -> Result<Vec<TrialRecord>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, line)| {
            serde_json::from_str(line).with_context(|| {
                format!(
                    "{}:{}: not a trial record; the study directory is damaged (start a new \
                     study)",
                    path.display(),
                    i + 1
                )
            })
        })
        .collect()
}

/// Writes every record, ordered by trial, atomically.
pub fn write(path: &Path, records: &[TrialRecord]) -> Result<()> {
    let mut sorted: Vec<&TrialRecord> = records.iter().collect();
    sorted.sort_by_key(|r| r.trial);
    let mut text = String::new();
    for r in sorted {
        text.push_str(&serde_json::to_string(r)?);
        text.push('\n');
    }
    write_atomic(path, text.as_bytes())
}

/// The best trial: the highest objective (the earliest on a tie).
pub fn best(records: &[TrialRecord]) -> Option<&TrialRecord> {
    records
        .iter()
        .filter(|r| r.objective.is_some_and(f64::is_finite))
        .fold(None, |best: Option<&TrialRecord>, r| match best {
            Some(b) if b.objective >= r.objective => Some(b),
            _ => Some(r),
        })
}

/// The results table (Markdown): one row per trial, best first, with each task's primary
/// dev metric.
pub fn table(
    records: &[TrialRecord],
    paths: &[String],
    objective: &str,
    primary: &[(String, String)],
) -> String {
    let mut rows: Vec<&TrialRecord> = records.iter().collect();
    rows.sort_by(|a, b| {
        let key = |r: &TrialRecord| r.objective.unwrap_or(f64::NEG_INFINITY);
        key(b).total_cmp(&key(a)).then(a.trial.cmp(&b.trial))
    });
    let mut head = vec!["trial".to_string()];
    head.extend(paths.iter().cloned());
    head.push(format!("{objective} (max)"));
    head.extend(primary.iter().map(|(t, m)| format!("{t} {m}")));
    head.extend(["steps".into(), "time".into(), "status".into()]);
    let mut out = format!("| {} |\n|{}\n", head.join(" | "), "---|".repeat(head.len()));
    for r in rows {
        let mut cells = vec![format!("{:03}", r.trial)];
        cells.extend(
            paths
                .iter()
                .map(|p| r.params.get(p).map_or("-".into(), Choice::to_string)),
        );
        cells.push(r.objective.map_or("-".into(), |o| format!("{o:.4}")));
        cells.extend(primary.iter().map(|(t, m)| {
            r.dev
                .get(t)
                .and_then(|d| d.get(m))
                .map_or("-".into(), |v| format!("{v:.4}"))
        }));
        cells.push(r.steps.to_string());
        cells.push(format!("{}s", format_float(r.time_s.round())));
        let status = match (r.status, &r.error) {
            (Status::Failed, Some(e)) => format!("failed: {}", e.replace('|', "/")),
            (s, _) => format!("{s:?}").to_lowercase(),
        };
        cells.push(status);
        out.push_str(&format!("| {} |\n", cells.join(" | ")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(trial: usize, objective: Option<f64>) -> TrialRecord {
        TrialRecord {
            trial,
            params: [
                (
                    "train.lr".to_string(),
                    Choice::Float(0.1 + trial as f64 / 3.0),
                ),
                ("train.weighting".to_string(), Choice::Text("famo".into())),
                ("train.batch_size".to_string(), Choice::Int(8)),
            ]
            .into(),
            status: if objective.is_some() {
                Status::Finished
            } else {
                Status::Failed
            },
            objective,
            steps: 10,
            evals: vec![(5, 0.25), (10, objective.unwrap_or(0.0))],
            dev: [("a".to_string(), [("accuracy".to_string(), 0.5)].into())].into(),
            time_s: 1.5,
            error: objective.is_none().then(|| "diverged".to_string()),
        }
    }

    #[test]
    fn records_round_trip_exactly_and_in_trial_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("study.jsonl");
        assert!(read(&path).unwrap().is_empty());
        let records = vec![
            record(2, Some(0.1 + 0.2)),
            record(0, None),
            record(1, Some(1.0 / 3.0)),
        ];
        write(&path, &records).unwrap();
        let back = read(&path).unwrap();
        assert_eq!(back.iter().map(|r| r.trial).collect::<Vec<_>>(), [0, 1, 2]);
        assert_eq!(back[2], records[0]);
        assert_eq!(back[0], records[1]);
        assert_eq!(best(&back).unwrap().trial, 1);
        std::fs::write(&path, "{\"trial\": 0}\n").unwrap();
        let e = format!("{:#}", read(&path).unwrap_err());
        assert!(e.contains("study.jsonl:1"), "{e}");
    }

    #[test]
    fn the_table_puts_the_best_first() {
        let records = vec![record(0, Some(0.2)), record(1, None), record(2, Some(0.7))];
        let paths = vec!["train.lr".to_string(), "train.weighting".to_string()];
        let table = table(
            &records,
            &paths,
            "mean_dev",
            &[("a".into(), "accuracy".into())],
        );
        let lines: Vec<&str> = table.lines().collect();
        assert!(
            lines[0].contains("train.lr") && lines[0].contains("a accuracy"),
            "{table}"
        );
        assert!(lines[2].starts_with("| 002 "), "{table}");
        assert!(lines[3].starts_with("| 000 "), "{table}");
        assert!(lines[4].contains("failed: diverged"), "{table}");
    }
}
