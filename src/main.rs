//! The `taskgate` binary: parses the command line and reports errors without panicking.
//! Any error (a bad config, data file, checkpoint, ...) prints one `error:` line naming the
//! file and what to do, and exits with status 2, like a usage error.

use clap::Parser;

fn main() {
    // SAFETY: the first statement of `main`, before any other thread exists.
    unsafe { taskgate::gpu::adapter::quiet_mesa_device_select() };
    let cli = taskgate::cli::Cli::parse();
    let verbose = cli.verbose;
    if let Err(error) = taskgate::cli::run(cli) {
        eprintln!("error: {}", taskgate::error::one_line(&error, verbose));
        if verbose {
            for line in taskgate::error::details(&error) {
                eprintln!("  {line}");
            }
        }
        std::process::exit(2);
    }
}
