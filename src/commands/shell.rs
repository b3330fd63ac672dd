//! `rbplan completions SHELL` and `rbplan man`: generated from the command line's own
//! definition (clap_complete, clap_mangen), so they never disagree with `--help`.

use clap::CommandFactory;

use crate::cli::Cli;
use crate::error::{Error, Outcome, Result};
use crate::term::print_stdout;

pub fn completions(shell: clap_complete::Shell) -> Result<Outcome> {
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "rbplan", &mut out);
    print_stdout(&String::from_utf8_lossy(&out))?;
    Ok(Outcome::Complete)
}

pub fn man() -> Result<Outcome> {
    let mut out = Vec::new();
    clap_mangen::Man::new(Cli::command())
        .render(&mut out)
        .map_err(|e| Error::io("rendering the manual page", e))?;
    print_stdout(&String::from_utf8_lossy(&out))?;
    Ok(Outcome::Complete)
}
