//! The `taskgate` command line.

mod bench;
mod dump;
mod info;
mod init;

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};

use crate::gpu::AdapterRequest;

#[derive(Parser, Debug)]
#[command(
    name = "taskgate",
    version,
    about = "Multi-task Transformer encoders on any GPU, with hand-written WGSL kernels"
)]
pub struct Cli {
    /// Backend to use: vulkan, metal, dx12 or gl (default: the best available).
    #[arg(long, global = true, env = "TASKGATE_BACKEND")]
    pub backend: Option<String>,
    /// Use the adapter whose name contains this text (case-insensitive).
    #[arg(long, global = true, env = "TASKGATE_ADAPTER")]
    pub adapter: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// List every GPU adapter, the one taskgate picks, its limits and features.
    Info {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Create a model directory from a config file (fresh or pretrained encoder, fresh tasks).
    Init {
        /// The config file (see README.md).
        config: PathBuf,
        /// The model directory to write.
        #[arg(long)]
        out: PathBuf,
        /// Overwrite a model already in --out.
        #[arg(long)]
        force: bool,
    },
    /// Benchmarks: kernels, whole training steps, and a side-by-side comparison.
    Bench {
        #[command(subcommand)]
        what: bench::BenchCommand,
    },
    /// Run one forward and backward (dropout off) on a batch and write every output,
    /// loss and gradient to a safetensors file, to compare with PyTorch.
    Dump {
        /// The model directory.
        #[arg(long)]
        model: PathBuf,
        /// JSONL batch: {"text": ..., "text_pair"?: ..., "labels": {"<task>": ...}} per line.
        #[arg(long)]
        batch: PathBuf,
        /// The safetensors file to write.
        #[arg(long)]
        out: PathBuf,
    },
}

impl Cli {
    fn adapter_request(&self) -> AdapterRequest {
        AdapterRequest {
            backend: self.backend.clone(),
            name_contains: self.adapter.clone(),
        }
    }
}

/// Runs the parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    let request = cli.adapter_request();
    match cli.command {
        Command::Info { json } => info::run(&request, json),
        Command::Init { config, out, force } => init::run(&config, &out, force),
        Command::Dump { model, batch, out } => dump::run(&request, &model, &batch, &out),
        Command::Bench { what } => bench::run(&request, what),
    }
}
