use clap::Parser;

fn main() {
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
