//! A time limit on collectives: a rank waiting in one longer than the limit (another rank
//! hangs, or its machine went away without the launcher noticing) prints which collective
//! and which rank, and ends its process, which ends the MPI job. One background thread
//! checks the open deadline every 100 ms; a collective holds a [`Deadline`] while it runs.
//! The limit is `TASKGATE_MPI_TIMEOUT` seconds (default [`DEFAULT_TIMEOUT_S`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Environment variable: the seconds a collective may take before the job is ended.
pub const TIMEOUT_ENV: &str = "TASKGATE_MPI_TIMEOUT";
/// The limit without [`TIMEOUT_ENV`].
pub const DEFAULT_TIMEOUT_S: u64 = 300;
/// The longest limit [`TIMEOUT_ENV`] may set (a year).
pub const MAX_TIMEOUT_S: f64 = 365.0 * 24.0 * 3600.0;
/// The exit status of a rank that timed out.
pub const TIMEOUT_EXIT: i32 = 3;

/// The open deadline (milliseconds since [`epoch`], 0: none) and what it guards.
static DEADLINE_MS: AtomicU64 = AtomicU64::new(0);
static WHAT: Mutex<String> = Mutex::new(String::new());
static STARTED: OnceLock<()> = OnceLock::new();

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// The limit [`TIMEOUT_ENV`] sets, or an error naming it.
pub fn timeout_from_env() -> anyhow::Result<Duration> {
    match std::env::var(TIMEOUT_ENV) {
        Err(_) => Ok(Duration::from_secs(DEFAULT_TIMEOUT_S)),
        Ok(v) => parse_timeout(&v),
    }
}

/// Seconds as [`TIMEOUT_ENV`] gives them: more than 0, at most [`MAX_TIMEOUT_S`].
fn parse_timeout(v: &str) -> anyhow::Result<Duration> {
    match v.trim().parse::<f64>() {
        Ok(s) if s > 0.0 && s <= MAX_TIMEOUT_S => Ok(Duration::from_secs_f64(s)),
        _ => anyhow::bail!(
            "{TIMEOUT_ENV}={v:?}: give the seconds a collective may take (more than 0, at most \
             {MAX_TIMEOUT_S})"
        ),
    }
}

/// While alive, the job ends when it is older than its limit.
pub struct Deadline(());

impl Deadline {
    /// Starts guarding `what` (a collective of `rank`) for `limit`.
    pub fn start(rank: usize, what: &str, limit: Duration) -> Self {
        STARTED.get_or_init(spawn_checker);
        if let Ok(mut w) = WHAT.lock() {
            *w = format!(
                "rank {rank}: {what} did not complete within {:.0} s",
                limit.as_secs_f64()
            );
        }
        let due = epoch().elapsed() + limit;
        DEADLINE_MS.store(due.as_millis().max(1) as u64, Ordering::SeqCst);
        Self(())
    }
}

impl Drop for Deadline {
    fn drop(&mut self) {
        DEADLINE_MS.store(0, Ordering::SeqCst);
    }
}

fn spawn_checker() {
    std::thread::spawn(|| {
        loop {
            std::thread::sleep(Duration::from_millis(100));
            let due = DEADLINE_MS.load(Ordering::SeqCst);
            if due != 0 && epoch().elapsed().as_millis() as u64 > due {
                let what = WHAT.lock().map(|w| w.clone()).unwrap_or_default();
                eprintln!(
                    "error: {what} ({TIMEOUT_ENV}): another rank stopped or hangs; ending the \
                     job"
                );
                std::process::exit(TIMEOUT_EXIT);
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_positive_finite_seconds_up_to_a_year() {
        assert_eq!(parse_timeout(" 4 ").unwrap(), Duration::from_secs(4));
        assert_eq!(parse_timeout("0.5").unwrap(), Duration::from_millis(500));
        for bad in ["0", "-1", "nan", "inf", "1e300", "soon", ""] {
            let err = parse_timeout(bad).unwrap_err().to_string();
            assert!(err.contains(TIMEOUT_ENV), "{bad}: {err}");
        }
    }
}
