//! Test-only fault injection for the crash-safety tests. The code that writes run state calls
//! [`point`] at every step that a crash could interrupt; with `TASKGATE_FAULT=NAME@N` in the
//! environment the process aborts (no cleanup, no destructors: as `kill -9` leaves it) the
//! N-th time it passes the point NAME, and with `TASKGATE_FAULT_TRACE=FILE` every point
//! passed is appended to FILE as `NAME@N`, so a test can list them all and kill at each one.
//! Without those variables a point costs one uncontended lock.

use std::collections::HashMap;
use std::io::Write;
use std::sync::{Mutex, OnceLock};

struct Plan {
    abort_at: Option<(String, u64)>,
    trace: Option<std::path::PathBuf>,
    counts: Mutex<HashMap<String, u64>>,
}

fn plan() -> &'static Plan {
    static PLAN: OnceLock<Plan> = OnceLock::new();
    PLAN.get_or_init(|| {
        let abort_at = std::env::var("TASKGATE_FAULT").ok().and_then(|v| {
            let (name, n) = v.rsplit_once('@')?;
            Some((name.to_string(), n.parse().ok()?))
        });
        Plan {
            abort_at,
            trace: std::env::var_os("TASKGATE_FAULT_TRACE").map(Into::into),
            counts: Mutex::new(HashMap::new()),
        }
    })
}

/// Marks the point `name` (see the module documentation).
pub fn point(name: &str) {
    let plan = plan();
    if plan.abort_at.is_none() && plan.trace.is_none() {
        return;
    }
    let n = {
        let mut counts = plan.counts.lock().unwrap_or_else(|e| e.into_inner());
        let n = counts.entry(name.to_string()).or_insert(0);
        *n += 1;
        *n
    };
    if let Some(path) = &plan.trace
        && let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
    {
        let _ = writeln!(f, "{name}@{n}");
    }
    if plan
        .abort_at
        .as_ref()
        .is_some_and(|(at, k)| at == name && *k == n)
    {
        std::process::abort();
    }
}
