//! `taskgate train CONFIG.toml --out DIR [--only TASK] [--steps N]` and
//! `taskgate train --resume DIR`.

use std::path::PathBuf;

use anyhow::{Result, bail};

use crate::gpu::AdapterRequest;
use crate::train::run::{RunOptions, describe, run as run_training};

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
    let summary = run_training(request, &options)?;
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
