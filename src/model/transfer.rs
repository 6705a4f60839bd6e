//! Transfer: a trained model's encoder and tasks carried into a model built from another
//! config (`[train] init_from`). The encoder comes whole; a task of the new config whose name
//! is in the source, with the same kind, labels and parameter shapes, comes with its gate and
//! head (or decoder); a task that changed is an error unless `reinit` names it; new tasks
//! keep their seeded initialization; source tasks the config drops are left out.

use anyhow::{Result, bail};

use super::dir::ModelDir;
use super::host::HostParams;
use super::spec::{ModelSpec, Owner, ParamSpec};

/// The encoder's parameters of `source`.
pub fn encoder_params(source: &ModelDir) -> HostParams {
    source
        .spec
        .param_specs()
        .into_iter()
        .filter(|p| p.owner == Owner::Encoder)
        .filter_map(|p| source.params.get(&p.name).map(|t| (p.name, t.clone())))
        .collect()
}

/// The parameters of task `name` in `specs` (a model's list), sorted by name.
fn task_params(specs: &[ParamSpec], spec: &ModelSpec, name: &str) -> Vec<(String, Vec<usize>)> {
    let Some(index) = spec.tasks.iter().position(|t| t.name == name) else {
        return Vec::new();
    };
    let mut params: Vec<(String, Vec<usize>)> = specs
        .iter()
        .filter(|p| p.owner == Owner::Task(index))
        .map(|p| (p.name.clone(), p.shape.clone()))
        .collect();
    params.sort();
    params
}

/// Copies into `params` (the new model's, every parameter initialized) each task of `spec`
/// that `source` has unchanged, unless `reinit` names it. `source_name` names the source in
/// messages. Returns the notes `init` prints: what was carried, started fresh and left out.
pub fn carry_tasks(
    spec: &ModelSpec,
    params: &mut HostParams,
    source: &ModelDir,
    source_name: &str,
    reinit: &[String],
) -> Result<Vec<String>> {
    for name in reinit {
        if !spec.tasks.iter().any(|t| &t.name == name) {
            let names: Vec<&str> = spec.tasks.iter().map(|t| t.name.as_str()).collect();
            bail!(
                "[train] reinit names \"{name}\", which is not a task of this config (tasks: {})",
                names.join(", ")
            );
        }
    }
    let (ours, theirs) = (spec.param_specs(), source.spec.param_specs());
    let (mut carried, mut fresh, mut reinitialized) = (Vec::new(), Vec::new(), Vec::new());
    for task in &spec.tasks {
        let Some(old) = source.spec.tasks.iter().find(|t| t.name == task.name) else {
            fresh.push(task.name.as_str());
            continue;
        };
        if reinit.contains(&task.name) {
            reinitialized.push(task.name.as_str());
            continue;
        }
        let conflict = |what: String| {
            anyhow::anyhow!(
                "task '{}' differs from the one in {source_name}: {what}; add \"{}\" to \
                 [train] reinit to start it fresh",
                task.name,
                task.name
            )
        };
        if old.kind != task.kind {
            return Err(conflict(format!(
                "kind \"{}\" there, \"{}\" here",
                old.kind.name(),
                task.kind.name()
            )));
        }
        let (new_params, old_params) = (
            task_params(&ours, spec, &task.name),
            task_params(&theirs, &source.spec, &task.name),
        );
        if new_params != old_params {
            let first = new_params
                .iter()
                .find(|p| !old_params.contains(p))
                .map(
                    |(name, shape)| match old_params.iter().find(|(n, _)| n == name) {
                        Some((_, old)) => format!("{name} is {old:?} there and {shape:?} here"),
                        None => format!("{name} {shape:?} is not there"),
                    },
                )
                .or_else(|| {
                    old_params
                        .iter()
                        .find(|p| !new_params.contains(p))
                        .map(|(name, shape)| format!("{name} {shape:?} is not here"))
                })
                .unwrap_or_default();
            return Err(conflict(format!("{first} (other labels, gate or head)")));
        }
        if old.labels != task.labels {
            return Err(conflict(format!(
                "labels {:?} there, {:?} here",
                old.labels.clone().unwrap_or_default(),
                task.labels.clone().unwrap_or_default()
            )));
        }
        for (name, _) in &new_params {
            params.insert(name.clone(), source.params[name].clone());
        }
        carried.push(task.name.as_str());
    }
    let left_out: Vec<&str> = source
        .spec
        .tasks
        .iter()
        .map(|t| t.name.as_str())
        .filter(|name| !spec.tasks.iter().any(|t| &t.name == name))
        .collect();
    let list = |names: &[&str]| {
        if names.is_empty() {
            "none".to_string()
        } else {
            names.join(", ")
        }
    };
    let notes = if fresh.is_empty() && reinitialized.is_empty() && left_out.is_empty() {
        vec![format!(
            "from {source_name}: every task taken ({})",
            list(&carried)
        )]
    } else {
        vec![format!(
            "from {source_name}: tasks taken: {}; started fresh: {}{}; left out: {}",
            list(&carried),
            list(&fresh),
            if reinitialized.is_empty() {
                String::new()
            } else {
                format!(" (new), {} (reinit)", reinitialized.join(", "))
            },
            list(&left_out)
        )]
    };
    Ok(notes)
}
