//! The `taskgate` binary: parses the command line and reports errors without panicking.
//! Any error (a bad config, data file, checkpoint, ...) prints one `error:` line naming the
//! file and what to do, and exits with status 2, like a usage error.

use clap::Parser;

fn main() {
    quiet_mesa_device_select();
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

/// Mesa's Vulkan device-selection layer (an implicit layer, on wherever Mesa's Vulkan drivers
/// are installed) connects to a Wayland display whenever devices are listed, and on a machine
/// without one prints `error: XDG_RUNTIME_DIR is invalid or not set` for every listing,
/// although nothing is wrong. The layer only reorders devices, and taskgate ranks adapters
/// itself, so it is switched off, unless the user steers it (`MESA_VK_DEVICE_SELECT`,
/// `DRI_PRIME`) or has set `NODEVICE_SELECT` either way.
fn quiet_mesa_device_select() {
    let steered = ["NODEVICE_SELECT", "MESA_VK_DEVICE_SELECT", "DRI_PRIME"]
        .iter()
        .any(|k| std::env::var_os(k).is_some());
    if !steered {
        // SAFETY: the first statement of `main`, before any other thread exists.
        unsafe { std::env::set_var("NODEVICE_SELECT", "1") };
    }
}
