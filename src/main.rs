//! The `taskgate` binary: parses the command line and reports errors without panicking.
//! Any error (a bad config, data file, checkpoint, ...) prints one `error:` line naming the
//! file and what to do, and exits with status 2, like a usage error.

use clap::Parser;

fn main() {
    let cli = taskgate::cli::Cli::parse();
    if let Err(error) = taskgate::cli::run(cli) {
        eprintln!("error: {error:#}");
        std::process::exit(2);
    }
}
