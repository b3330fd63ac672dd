use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = rbplan::cli::Cli::parse();
    match rbplan::run(cli) {
        Ok(outcome) => outcome.exit_code(),
        Err(e) => {
            eprintln!("error: {}", rbplan::logging::scrub(&e.to_string()));
            ExitCode::from(e.exit_code())
        }
    }
}
