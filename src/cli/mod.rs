//! The `taskgate` command line.

mod info;

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
    }
}
