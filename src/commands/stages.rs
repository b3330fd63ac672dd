//! `rbplan stages FILE`: the stages a runbook gives, as `--runbook` would derive them.

use crate::cli::StagesArgs;
use crate::error::{Error, Outcome, Result};
use crate::term::print_stdout;

pub fn run(args: StagesArgs) -> Result<Outcome> {
    let text = crate::input::read_text(&args.file, "the runbook")?;
    let rb = crate::input::runbook::derive(&text).map_err(|why| {
        Error::input(
            &args.file,
            None,
            format!("no stages could be derived from the runbook: {why}"),
        )
    })?;
    // As a plan's stages are read from them, so that these are what it is checked against.
    let steps: Vec<&str> = rb.steps.iter().map(|s| s.name.as_str()).collect();
    let names = crate::input::parse_stages(&steps.join("\n"));
    let out = match args.json {
        true => serde_json::to_string(&names).expect("strings serialize") + "\n",
        false => names.iter().map(|n| format!("{n}\n")).collect(),
    };
    print_stdout(&out)?;
    Ok(Outcome::Complete)
}
