use clap::Parser;

fn main() {
    // First: the reaper forks, and must before any thread exists.
    if let Err(e) = kregress::proc::start_reaper() {
        eprintln!("kregress: {e}");
        std::process::exit(e.exit_code());
    }
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
