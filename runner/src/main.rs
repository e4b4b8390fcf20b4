use clap::Parser;

fn main() {
    // First: the reaper forks, and must before any thread exists.
    if let Err(e) = kregress::proc::start_reaper() {
        eprintln!("kregress: {e}");
        std::process::exit(e.exit_code());
    }
    // Rust ignores SIGPIPE, so printing into a closed pipe (`kregress
    // triage log | head`) panicked. The default action ends kregress
    // quietly, as it ends any Unix tool. kregress writes into no pipe or
    // socket of its own (children get /dev/null as stdin; the console is a
    // pty), so only stdout and stderr can raise it; std resets it for children.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    kregress::proc::install_signal_handler();
    let cli = kregress::cli::Cli::parse();
    let code = match kregress::cli::main(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("kregress: {e}");
            e.exit_code()
        }
    };
    std::process::exit(code);
}
