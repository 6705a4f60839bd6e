//! The `taskgate` binary: parses the command line and reports errors without panicking.

use clap::Parser;

fn main() {
    let cli = taskgate::cli::Cli::parse();
    if let Err(error) = taskgate::cli::run(cli) {
        eprintln!("error: {error:#}");
        std::process::exit(1);
    }
}
