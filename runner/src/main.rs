use clap::Parser;
use kregress::error::{exit_code, Findings, Result};

/// Runs kregress and exits with the one exit code [`exit_code`] gives, for
/// every command: an error's one line goes to stderr.
fn main() {
    let result = try_main();
    if let Err(e) = &result {
        eprintln!("kregress: {e}");
    }
    std::process::exit(exit_code(&result));
}

fn try_main() -> Result<Findings> {
    // First: the reaper forks, and must before any thread exists.
    kregress::proc::start_reaper()?;
    // Rust ignores SIGPIPE, so printing into a closed pipe (`kregress
    // triage log | head`) panicked. The default action ends kregress
    // quietly, as it ends any Unix tool. kregress writes into no pipe or
    // socket of its own (children get /dev/null as stdin; the console is a
    // pty), so only stdout and stderr can raise it; std resets it for children.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    kregress::proc::install_signal_handler();
    kregress::cli::run(kregress::cli::Cli::parse())
}
