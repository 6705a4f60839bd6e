//! `taskgate bench kernels | train | compare`.

use std::path::PathBuf;

use anyhow::Result;
use clap::Subcommand;

use crate::bench::kernels::Runs;
use crate::bench::train::TrainBench;
use crate::bench::{compare, decode, kernels, train};
use crate::config::Weighting;
use crate::gpu::{AdapterRequest, Gpu};

#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Time the kernels of bench/suite.json (matmul, attention, LayerNorm, GELU, losses, AdamW).
    Kernels {
        /// Write the results as JSON (the schema bench/torch_baseline.py writes).
        #[arg(long)]
        json: Option<PathBuf>,
        /// Only the cases whose "name shape" contains this text.
        #[arg(long)]
        filter: Option<String>,
        #[arg(long, default_value_t = 2)]
        warmup: usize,
        #[arg(long, default_value_t = 5)]
        samples: usize,
        /// Tune the matmul kernels per shape class first (cached on disk per adapter).
        #[arg(long)]
        autotune: bool,
    },
    /// Time whole training steps on synthetic batches.
    Train {
        /// Encoder size: tiny, minilm-l2, minilm-l6 or bert-base.
        #[arg(long, default_value = "minilm-l6")]
        model: String,
        #[arg(long, default_value_t = 16)]
        batch: usize,
        #[arg(long, default_value_t = 64)]
        seq: usize,
        #[arg(long, default_value_t = 2)]
        warmup: usize,
        #[arg(long, default_value_t = 5)]
        samples: usize,
        /// Print the share of step time per kernel family.
        #[arg(long)]
        profile: bool,
        /// Tune the matmul kernels per shape class first (cached on disk per adapter).
        #[arg(long)]
        autotune: bool,
        /// Time steps over a batch of every task under these weighting methods
        /// (comma-separated, e.g. static,uncertainty,pcgrad; the first is the baseline of
        /// the ratios); `--samples` rounds, the methods interleaved.
        #[arg(long, value_delimiter = ',', value_parser = parse_weighting)]
        weighting: Vec<Weighting>,
        /// Add a generation task (2-layer decoder, tied output over the 30,522-token
        /// vocabulary) whose targets have this many tokens; 0: none.
        #[arg(long, default_value_t = 0)]
        generation: usize,
        /// Also time the steps with these parameter-name prefixes frozen (comma-separated,
        /// as [train] freeze, e.g. encoder or embeddings,encoder.layer.0), interleaved with
        /// fully trained steps of the same model.
        #[arg(long, value_delimiter = ',')]
        freeze: Vec<String>,
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// Time text generation: greedy and beam 4, with and without the key/value cache
    /// (tokens/s), on an encoder of `bench train`'s with a 2-layer decoder.
    Decode {
        /// Encoder size: tiny, minilm-l2, minilm-l6 or bert-base.
        #[arg(long, default_value = "minilm-l2")]
        model: String,
        #[arg(long, default_value_t = 8)]
        batch: usize,
        #[arg(long, default_value_t = 32)]
        seq: usize,
        /// Tokens generated per input.
        #[arg(long, default_value_t = 16)]
        new_tokens: usize,
        #[arg(long, default_value_t = 3)]
        samples: usize,
    },
    /// Print two reports side by side with ratios (A / B).
    Compare { a: PathBuf, b: PathBuf },
}

pub fn run(request: &AdapterRequest, what: BenchCommand) -> Result<()> {
    if let BenchCommand::Compare { a, b } = &what {
        return compare::run(a, b);
    }
    let gpu = pollster::block_on(Gpu::new(request))?;
    println!("adapter: {}", kernels::device_name(&gpu));
    if let BenchCommand::Decode {
        model,
        batch,
        seq,
        new_tokens,
        samples,
    } = what
    {
        let opts = decode::DecodeBench {
            model,
            batch,
            seq,
            new_tokens,
            samples,
        };
        return decode::run(&gpu, &opts);
    }
    let (report, json) = match what {
        BenchCommand::Kernels {
            json,
            filter,
            warmup,
            samples,
            autotune,
        } => {
            gpu.set_autotune(autotune || gpu.autotune_enabled());
            println!("timing: {}", kernels::timing_name(&gpu));
            (
                kernels::run(
                    &gpu,
                    Runs {
                        warmup,
                        samples: samples.max(1),
                    },
                    filter.as_deref(),
                )?,
                json,
            )
        }
        BenchCommand::Train {
            model,
            batch,
            seq,
            warmup,
            samples,
            profile,
            autotune,
            weighting,
            generation,
            freeze,
            json,
        } => {
            gpu.set_autotune(autotune || gpu.autotune_enabled());
            if generation > 0 && !weighting.is_empty() {
                anyhow::bail!("--generation times one-batch steps; leave out --weighting");
            }
            if !freeze.is_empty() && !weighting.is_empty() {
                anyhow::bail!("--freeze times one-batch steps; leave out --weighting");
            }
            let opts = TrainBench {
                weighting,
                generation,
                freeze,
                model,
                batch,
                seq,
                runs: Runs {
                    warmup,
                    samples: samples.max(1),
                },
                profile,
            };
            (train::run(&gpu, &opts)?, json)
        }
        BenchCommand::Compare { .. } | BenchCommand::Decode { .. } => {
            unreachable!("handled above")
        }
    };
    if let Some(path) = json {
        report.save(&path)?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

/// A weighting method's name, as in `[train] weighting`.
fn parse_weighting(name: &str) -> std::result::Result<Weighting, String> {
    Weighting::ALL
        .into_iter()
        .find(|w| w.name() == name)
        .ok_or_else(|| {
            let names: Vec<&str> = Weighting::ALL.iter().map(|w| w.name()).collect();
            format!(
                "unknown weighting '{name}' (use one of: {})",
                names.join(", ")
            )
        })
}
