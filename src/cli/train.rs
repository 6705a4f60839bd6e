//! `taskgate train CONFIG.toml --out DIR [--only TASK] [--steps N]` and
//! `taskgate train --resume DIR`.

use std::path::PathBuf;

use anyhow::{Result, bail};

use crate::dist::{Collective, world};
use crate::gpu::AdapterRequest;
use crate::train::run::{RunOptions, RunSummary, describe, run_on};

pub fn run(
    request: &AdapterRequest,
    config: Option<PathBuf>,
    out: Option<PathBuf>,
    resume: Option<PathBuf>,
    only: Option<String>,
    steps: Option<u64>,
    init_from: Option<PathBuf>,
) -> Result<()> {
    let options = match (config, out, resume) {
        (Some(config), Some(out), None) => RunOptions {
            config: Some(config),
            out,
            resume: false,
            only,
            steps,
            init_from,
            progress: true,
            ..Default::default()
        },
        (None, None, Some(dir)) => {
            if only.is_some() || steps.is_some() || init_from.is_some() {
                bail!(
                    "--resume continues a run as it was configured; drop --only, --steps and \
                     --init-from"
                );
            }
            RunOptions {
                config: None,
                out: dir,
                resume: true,
                only: None,
                steps: None,
                progress: true,
                ..Default::default()
            }
        }
        _ => {
            bail!("give `CONFIG.toml --out DIR` to start a run, or `--resume DIR` to continue one")
        }
    };
    let comm = world()?;
    let summary = match run_on(request, &options, comm.clone()) {
        Ok(summary) => summary,
        Err(e) if comm.size() > 1 => end_job(&*comm, &e),
        Err(e) => return Err(e),
    };
    if comm.rank() != 0 {
        return Ok(());
    }
    if summary.ranks > 1 {
        println!("{}", describe_reduce(&summary));
    }
    if let Some(n) = summary.replicas_checked {
        println!(
            "replicas checked: every rank's parameters identical to rank 0's after each of {n} steps"
        );
    }
    println!(
        "trained {} steps ({:.0} tokens/s); run directory {}",
        summary.steps,
        summary.tokens_per_s,
        options.out.display()
    );
    if !summary.dev.is_empty() {
        println!("final dev metrics: {}", describe(&summary.dev));
    }
    if let Some(best) = summary.best {
        let why = if best.score.is_nan() {
            "the last step: no task has dev data".to_string()
        } else {
            format!("mean primary dev metric {:.4}", best.score)
        };
        println!(
            "best checkpoint: {} (step {}, {why})",
            options.out.join("best").display(),
            best.step,
        );
    }
    Ok(())
}

/// A data-parallel run's error ends every rank, printed once: rank 0 prints and aborts the
/// job at once; another rank waits two seconds first (when rank 0 fails too, its abort ends
/// this rank before it prints), then prints with its rank and aborts.
fn end_job(comm: &dyn Collective, error: &anyhow::Error) -> ! {
    let line = crate::error::one_line(error, false);
    if comm.rank() == 0 {
        eprintln!("error: {line}");
    } else {
        std::thread::sleep(std::time::Duration::from_secs(2));
        eprintln!("error: rank {} of {}: {line}", comm.rank(), comm.size());
    }
    comm.abort(2)
}

/// What the gradient sums cost on rank 0: per step, the bytes each rank sent, and the shares
/// of the step time spent reading the gradients back and in MPI.
fn describe_reduce(summary: &RunSummary) -> String {
    let r = &summary.reduce;
    let steps = r.steps.max(1) as f64;
    let step_ms = 1e3 * summary.step_s / summary.steps_here.max(1) as f64;
    format!(
        "data-parallel on {} ranks: {:.1} ms per step; gradient sum {:.2} MB per step per \
         rank, {:.1} ms in MPI ({:.0}% of a step) after {:.1} ms reading the gradients back \
         ({:.0}%, waiting for the backward included)",
        summary.ranks,
        step_ms,
        r.bytes as f64 / steps / 1e6,
        1e3 * r.reduce_s / steps,
        100.0 * r.reduce_s / summary.step_s.max(1e-9),
        1e3 * r.readback_s / steps,
        100.0 * r.readback_s / summary.step_s.max(1e-9),
    )
}
