//! The `[tune]` section (`taskgate tune`): the objective, the search method and budget, and
//! the search space `[tune.space]`, whose keys are paths of settings (`"train.lr"`,
//! `"task.sentiment.lambda"`, `"encoder.dropout"`).
//!
//! This module checks what it can without the rest of the file (ranges, lists, names) and
//! writes a setting into a configuration ([`with_settings`]): the setting is put into the
//! TOML form of the configuration and the whole of it read back, so a path that names no
//! setting, or a value of the wrong type, fails exactly as it would in a config file.

use std::collections::BTreeMap;

use anyhow::{Result, anyhow, bail};
use serde::{Deserialize, Serialize};

use super::ModelConfig;

/// How a study picks each trial's settings.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SearchMethod {
    /// Every combination of the listed values (ranges: `points` values each), in a seeded
    /// random order.
    Grid,
    /// Independent draws: uniform (log-uniform with `log`) or one of the `values`.
    Random,
    /// Tree-structured Parzen estimators (one per setting, as Optuna's default sampler),
    /// after `startup` random trials.
    #[default]
    Tpe,
}

impl SearchMethod {
    pub fn name(self) -> &'static str {
        match self {
            Self::Grid => "grid",
            Self::Random => "random",
            Self::Tpe => "tpe",
        }
    }
}

/// Which trials the study stops before their last step.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EarlyStop {
    /// Every trial runs all its steps.
    #[default]
    None,
    /// At an evaluation point, a trial whose best objective so far is below the median of the
    /// earlier finished trials' objectives at that step stops there (Optuna's MedianPruner).
    Median,
}

/// `[tune]`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TuneConfig {
    /// `"mean_dev"` (the mean of the tasks' primary dev metrics, the run's own score) or
    /// `"dev.<task>.<metric>"`. Maximised: error metrics (`mse`) enter negated.
    #[serde(default = "default_objective")]
    pub objective: String,
    #[serde(default)]
    pub method: SearchMethod,
    /// Trials to run (grid: at most the grid's size, which is the default; else 16).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trials: Option<usize>,
    /// Steps per trial (overrides `[train] steps` and `epochs`; default: `[train]`'s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps: Option<u64>,
    /// Seeds the draws (and the grid's order); the trials' own seeds are `[train]`'s.
    #[serde(default)]
    pub seed: u64,
    /// TPE: random trials before the estimators take over (default: a third of the trials,
    /// at least 2 and at most 10; Optuna uses 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub startup: Option<usize>,
    /// Trials run at once (each with its own adapter handle; default 1). Part of the study:
    /// trial t learns from the trials numbered up to t - jobs, so the draws depend on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jobs: Option<usize>,
    #[serde(default)]
    pub early_stop: EarlyStop,
    /// Median rule: finished trials needed at a step before any trial is stopped there.
    #[serde(default = "default_early_stop_trials")]
    pub early_stop_trials: usize,
    /// The searched settings, by path.
    #[serde(default)]
    pub space: BTreeMap<String, SpaceEntry>,
}

fn default_objective() -> String {
    "mean_dev".into()
}

fn default_early_stop_trials() -> usize {
    3
}

/// A number as written: an integer range searches integers.
#[derive(Clone, Copy, Debug, PartialEq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum Number {
    Int(i64),
    Float(f64),
}

impl Number {
    pub fn value(self) -> f64 {
        match self {
            Self::Int(i) => i as f64,
            Self::Float(f) => f,
        }
    }
}

/// One value a setting can take.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum Choice {
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
}

impl Choice {
    fn to_toml(&self) -> toml::Value {
        match self {
            Self::Bool(b) => toml::Value::Boolean(*b),
            Self::Int(i) => toml::Value::Integer(*i),
            Self::Float(f) => toml::Value::Float(*f),
            Self::Text(s) => toml::Value::String(s.clone()),
        }
    }

    /// The value as a number (for charts and tables), or none for text.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Self::Bool(b) => Some(*b as u8 as f64),
            Self::Int(i) => Some(*i as f64),
            Self::Float(f) => Some(*f),
            Self::Text(_) => None,
        }
    }
}

impl std::fmt::Display for Choice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Bool(b) => write!(f, "{b}"),
            Self::Int(i) => write!(f, "{i}"),
            Self::Float(x) => write!(f, "{}", format_float(*x)),
            Self::Text(s) => f.write_str(s),
        }
    }
}

/// A float short enough for a table (four significant digits).
pub fn format_float(x: f64) -> String {
    if x != 0.0 && (x.abs() < 1e-3 || x.abs() >= 1e5) {
        format!("{x:.3e}")
    } else {
        let s = format!("{x:.4}");
        let s = s.trim_end_matches('0').trim_end_matches('.');
        s.to_string()
    }
}

/// A `[tune.space]` entry as written: a range (`low`, `high`, `log`, `points`) or `values`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SpaceEntry {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub low: Option<Number>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub high: Option<Number>,
    /// Search the range on a log scale (needs `low > 0`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub log: bool,
    /// Grid search: how many values of the range (default 3; geometric with `log`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub points: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<Vec<Choice>>,
}

/// Where a searched setting's values come from.
#[derive(Clone, Debug, PartialEq)]
pub enum Domain {
    /// `low..=high` (integers when both ends are written as integers).
    Range {
        low: f64,
        high: f64,
        log: bool,
        integer: bool,
        points: usize,
    },
    /// One of these values.
    Values(Vec<Choice>),
}

/// A searched setting: its path and domain.
#[derive(Clone, Debug, PartialEq)]
pub struct Param {
    pub path: String,
    pub domain: Domain,
}

impl Domain {
    /// The value at `u` in [0, 1] of a range (log-scaled with `log`, rounded for integers),
    /// or the value at `index` of a list.
    pub fn range_value(&self, u: f64) -> Choice {
        match self {
            Self::Range {
                low,
                high,
                log,
                integer,
                ..
            } => {
                let u = u.clamp(0.0, 1.0);
                let x = if *log {
                    (low.ln() + u * (high.ln() - low.ln())).exp()
                } else {
                    low + u * (high - low)
                };
                if *integer {
                    Choice::Int(x.round().clamp(*low, *high) as i64)
                } else {
                    Choice::Float(x.clamp(*low, *high))
                }
            }
            Self::Values(values) => {
                values[((u * values.len() as f64) as usize).min(values.len() - 1)].clone()
            }
        }
    }

    /// The grid's values: the list, or `points` evenly spaced values of the range (ends
    /// included; integers deduplicated).
    pub fn grid(&self) -> Vec<Choice> {
        match self {
            Self::Values(values) => values.clone(),
            Self::Range { points, .. } => {
                let n = *points;
                let mut out: Vec<Choice> = Vec::new();
                for i in 0..n {
                    let u = if n == 1 {
                        0.5
                    } else {
                        i as f64 / (n - 1) as f64
                    };
                    let v = self.range_value(u);
                    if !out.contains(&v) {
                        out.push(v);
                    }
                }
                out
            }
        }
    }
}

impl TuneConfig {
    /// The searched settings, checked one by one: each error names its `[tune.space]` entry.
    pub fn params(&self) -> Result<Vec<Param>> {
        if self.space.is_empty() {
            bail!("[tune.space] is empty: give at least one setting to search");
        }
        self.space
            .iter()
            .map(|(path, entry)| {
                let field = format!("[tune.space] \"{path}\"");
                let domain = entry.domain().map_err(|e| anyhow!("{field}: {e}"))?;
                check_path_shape(path).map_err(|e| anyhow!("{field}: {e}"))?;
                Ok(Param {
                    path: path.clone(),
                    domain,
                })
            })
            .collect()
    }

    /// Checks what does not depend on the rest of the configuration.
    pub fn validate(&self) -> Result<()> {
        self.params()?;
        if self.trials == Some(0) {
            bail!("[tune] trials must be at least 1");
        }
        if self.steps == Some(0) {
            bail!("[tune] steps must be at least 1");
        }
        if self.startup == Some(0) && self.method == SearchMethod::Tpe {
            bail!("[tune] startup must be at least 1 (the estimators need some history)");
        }
        if self.early_stop_trials == 0 {
            bail!("[tune] early_stop_trials must be at least 1");
        }
        Objective::parse(&self.objective).map(|_| ())
    }
}

impl SpaceEntry {
    fn domain(&self) -> Result<Domain> {
        match (&self.values, self.low, self.high) {
            (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
                bail!("give either `values` or `low` and `high`, not both")
            }
            (Some(values), None, None) => {
                if values.is_empty() {
                    bail!("`values` is empty: list at least one value");
                }
                if self.log || self.points.is_some() {
                    bail!("`log` and `points` are for ranges (`low`, `high`), not `values`");
                }
                Ok(Domain::Values(values.clone()))
            }
            (None, Some(low), Some(high)) => {
                let (lo, hi) = (low.value(), high.value());
                if !lo.is_finite() || !hi.is_finite() {
                    bail!("`low` and `high` must be finite numbers");
                }
                if lo >= hi {
                    bail!(
                        "low = {lo} must be below high = {hi} (for one value write `values = [{lo}]`)"
                    );
                }
                if self.log && lo <= 0.0 {
                    bail!("`log = true` needs low > 0, got low = {lo}");
                }
                let points = self.points.unwrap_or(3);
                if points == 0 {
                    bail!("`points` must be at least 1");
                }
                let integer = matches!((low, high), (Number::Int(_), Number::Int(_)));
                Ok(Domain::Range {
                    low: lo,
                    high: hi,
                    log: self.log,
                    integer,
                    points,
                })
            }
            (None, _, _) => bail!("give `low` and `high` (a range) or `values` (a list)"),
        }
    }
}

/// The part of a path that can be checked alone: `train.X`, `encoder.X` or `task.NAME.X`.
fn check_path_shape(path: &str) -> Result<()> {
    let parts: Vec<&str> = path.split('.').collect();
    let ok = match parts.first().copied() {
        Some("train" | "encoder") => parts.len() >= 2,
        Some("task") => parts.len() >= 3,
        _ => false,
    };
    if !ok || parts.iter().any(|p| p.is_empty()) {
        bail!(
            "names no setting: write `train.<setting>`, `encoder.<setting>` or \
             `task.<task name>.<setting>`"
        );
    }
    if parts[0] == "task" && matches!(parts[2], "name" | "kind") {
        bail!("a task's `{}` cannot be searched", parts[2]);
    }
    Ok(())
}

/// What a study maximises.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Objective {
    /// The mean of the tasks' primary dev metrics.
    MeanDev,
    /// One dev metric of one task.
    Metric { task: String, metric: String },
}

impl Objective {
    pub fn parse(text: &str) -> Result<Self> {
        if text == "mean_dev" {
            return Ok(Self::MeanDev);
        }
        match text.split_once('.') {
            Some(("dev", rest)) => match rest.rsplit_once('.') {
                Some((task, metric)) if !task.is_empty() && !metric.is_empty() => {
                    Ok(Self::Metric {
                        task: task.into(),
                        metric: metric.into(),
                    })
                }
                _ => bail!(
                    "[tune] objective = \"{text}\": write \"mean_dev\" or \"dev.<task>.<metric>\""
                ),
            },
            _ => bail!(
                "[tune] objective = \"{text}\": write \"mean_dev\" or \"dev.<task>.<metric>\""
            ),
        }
    }
}

/// Metrics where lower is better: a study maximises their negation.
pub fn lower_is_better(metric: &str) -> bool {
    matches!(metric, "mse" | "mae" | "rmse" | "loss")
}

/// `base` with each `(path, value)` written in (the table `[tune]` removed), read back and
/// checked as a config file would be; errors name the path.
pub fn with_settings(base: &ModelConfig, settings: &[(String, Choice)]) -> Result<ModelConfig> {
    let mut value = toml::Value::try_from(base)?;
    let root = value
        .as_table_mut()
        .ok_or_else(|| anyhow!("a configuration is a table"))?;
    root.remove("tune");
    for (path, choice) in settings {
        set_path(root, path, choice.to_toml())
            .map_err(|e| anyhow!("[tune.space] \"{path}\": {e}"))?;
    }
    let config: ModelConfig = value.try_into().map_err(|e: toml::de::Error| {
        anyhow!(
            "[tune.space] {}: {}",
            quoted_paths(settings),
            e.message().trim()
        )
    })?;
    let named = |e: anyhow::Error| anyhow!("[tune.space] {}: {e:#}", quoted_paths(settings));
    config.validate().map_err(named)?;
    if let Some(train) = &config.train {
        train.validate().map_err(named)?;
    }
    Ok(config)
}

/// The settings' paths, quoted as `[tune.space]` writes them.
pub fn quoted_paths(settings: &[(String, Choice)]) -> String {
    settings
        .iter()
        .map(|(p, _)| format!("\"{p}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Writes `value` at `path` into a configuration's TOML table.
fn set_path(root: &mut toml::Table, path: &str, value: toml::Value) -> Result<()> {
    check_path_shape(path)?;
    let parts: Vec<&str> = path.split('.').collect();
    let (mut table, keys) = match parts[0] {
        "task" => {
            let name = parts[1];
            let tasks = root
                .get_mut("task")
                .and_then(|t| t.as_array_mut())
                .ok_or_else(|| anyhow!("the configuration has no [[task]]"))?;
            let names: Vec<String> = tasks
                .iter()
                .filter_map(|t| t.get("name")?.as_str().map(String::from))
                .collect();
            let task = tasks
                .iter_mut()
                .find(|t| t.get("name").and_then(|n| n.as_str()) == Some(name))
                .and_then(|t| t.as_table_mut())
                .ok_or_else(|| anyhow!("names no task `{name}` (tasks: {})", names.join(", ")))?;
            (task, &parts[2..])
        }
        section => {
            let entry = root
                .entry(section.to_string())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            let table = entry
                .as_table_mut()
                .ok_or_else(|| anyhow!("`{section}` is not a table"))?;
            (table, &parts[1..])
        }
    };
    for key in &keys[..keys.len() - 1] {
        let entry = table
            .entry(key.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        table = entry
            .as_table_mut()
            .ok_or_else(|| anyhow!("`{key}` is a value, not a table of settings"))?;
    }
    let last = keys[keys.len() - 1];
    if table.get(last).is_some_and(toml::Value::is_table) {
        bail!("`{last}` is a table of settings, not one setting");
    }
    table.insert(last.to_string(), value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tune(space: &str) -> Result<Vec<Param>> {
        let text = format!("[space]\n{space}\n");
        let config: TuneConfig = toml::from_str(&text)?;
        config.params()
    }

    fn err(space: &str) -> String {
        format!("{:#}", tune(space).unwrap_err())
    }

    #[test]
    fn ranges_and_lists_are_read_with_their_types() {
        let params = tune(
            "\"train.lr\" = { low = 1e-5, high = 1e-3, log = true }\n\
             \"train.batch_size\" = { low = 8, high = 32 }\n\
             \"train.weighting\" = { values = [\"static\", \"famo\"] }",
        )
        .unwrap();
        assert_eq!(params.len(), 3);
        let by = |p: &str| params.iter().find(|x| x.path == p).unwrap().domain.clone();
        assert!(matches!(
            by("train.batch_size"),
            Domain::Range { integer: true, .. }
        ));
        assert!(matches!(
            by("train.lr"),
            Domain::Range {
                integer: false,
                log: true,
                ..
            }
        ));
        let lr = by("train.lr");
        assert_eq!(lr.range_value(0.0), Choice::Float(1e-5));
        assert!((lr.range_value(0.5).as_f64().unwrap() - 1e-4).abs() < 1e-12);
        assert_eq!(lr.range_value(1.0), Choice::Float(1e-3));
        assert_eq!(
            by("train.batch_size").grid(),
            vec![Choice::Int(8), Choice::Int(20), Choice::Int(32)]
        );
    }

    #[test]
    fn bad_entries_are_errors_naming_the_entry() {
        for (space, expected) in [
            ("\"train.lr\" = { low = 0.1, high = 0.01 }", "must be below"),
            (
                "\"train.lr\" = { low = 0.0, high = 0.01, log = true }",
                "needs low > 0",
            ),
            ("\"train.lr\" = { values = [] }", "`values` is empty"),
            ("\"train.lr\" = { low = 0.1 }", "give `low` and `high`"),
            ("\"train.lr\" = { values = [1], low = 1 }", "not both"),
            ("\"lr\" = { values = [1.0] }", "names no setting"),
            ("\"task.a\" = { values = [1.0] }", "names no setting"),
            (
                "\"task.a.name\" = { values = [\"b\"] }",
                "cannot be searched",
            ),
        ] {
            let e = err(space);
            assert!(e.contains(expected), "{space}: {e}");
            assert!(e.contains("[tune.space] \""), "{space}: {e}");
            assert_eq!(e.lines().count(), 1, "{e}");
        }
    }

    #[test]
    fn objectives_parse() {
        assert_eq!(Objective::parse("mean_dev").unwrap(), Objective::MeanDev);
        assert_eq!(
            Objective::parse("dev.pos.token_accuracy").unwrap(),
            Objective::Metric {
                task: "pos".into(),
                metric: "token_accuracy".into()
            }
        );
        for bad in ["dev", "dev.pos", "test.pos.accuracy", "mean"] {
            assert!(Objective::parse(bad).is_err(), "{bad}");
        }
    }

    const BASE: &str = "[encoder]\nhidden = 8\nlayers = 1\nheads = 2\nintermediate = 16\n\
        vocab_size = 20\nmax_positions = 16\n\n[train]\nsteps = 3\n\n\
        [[task]]\nname = \"a\"\nkind = \"classification\"\nlabels = [\"x\", \"y\"]\n";

    fn base() -> ModelConfig {
        toml::from_str(BASE).unwrap()
    }

    #[test]
    fn settings_are_written_at_their_paths() {
        let config = with_settings(
            &base(),
            &[
                ("train.lr".into(), Choice::Float(0.5)),
                ("task.a.lambda".into(), Choice::Float(2.5)),
                ("encoder.dropout".into(), Choice::Float(0.0)),
                ("train.weighting".into(), Choice::Text("equal".into())),
                ("train.dwa.temperature".into(), Choice::Float(3.0)),
            ],
        );
        // dwa options without weighting = "dwa" are refused by the config itself
        assert!(config.is_err());
        let config = with_settings(
            &base(),
            &[
                ("train.lr".into(), Choice::Float(0.5)),
                ("task.a.lambda".into(), Choice::Int(2)),
                ("encoder.dropout".into(), Choice::Float(0.0)),
                ("train.batch_size".into(), Choice::Int(4)),
            ],
        )
        .unwrap();
        let train = config.train.unwrap();
        assert_eq!((train.lr, train.batch_size, train.steps), (0.5, 4, Some(3)));
        assert_eq!(config.tasks[0].lambda, 2.0);
        assert_eq!(config.encoder.dropout, 0.0);
    }

    #[test]
    fn settings_that_do_not_fit_are_one_line_errors() {
        for (path, value, expected) in [
            ("train.lrr", Choice::Float(0.1), "unknown field `lrr`"),
            ("task.b.lambda", Choice::Float(0.1), "names no task `b`"),
            ("train.lr", Choice::Text("big".into()), "invalid type"),
            ("train.batch_size", Choice::Float(8.5), "invalid type"),
            (
                "train.weighting",
                Choice::Text("best".into()),
                "unknown variant",
            ),
            ("task.a.head", Choice::Float(1.0), "table of settings"),
        ] {
            let e = format!(
                "{:#}",
                with_settings(&base(), &[(path.into(), value)]).unwrap_err()
            );
            assert!(e.contains(expected), "{path}: {e}");
            assert!(e.contains(path), "{path}: {e}");
            assert_eq!(e.lines().count(), 1, "{e}");
        }
    }
}
