use std::io::Write as _;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = match rbplan::cli::parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "error: {}", rbplan::logging::scrub(&e.to_string()));
            return ExitCode::from(e.exit_code());
        }
    };
    match rbplan::run(cli) {
        Ok(outcome) => outcome.exit_code(),
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "error: {}", rbplan::logging::scrub(&e.to_string()));
            ExitCode::from(e.exit_code())
        }
    }
}
