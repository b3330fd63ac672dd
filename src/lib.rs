//! rbplan: write migration rollback plans with an LLM and check them.
//!
//! Data flows one way: `cli` → `config` → `template` → `client` → `check`/`repair` →
//! `output`. `commands` wires those steps per command (`batch/plan.rs` per batch item);
//! ARCHITECTURE.md has the layers, checked by a test.

/// `eprintln!` that ignores a closed stderr (`2>&1 | head -1`): a message nobody can read
/// is no reason to stop, and `eprintln!` would panic with exit 101.
macro_rules! say {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($t)*);
    }};
}

pub mod batch;
pub mod check;
pub mod cli;
pub mod client;
pub mod commands;
pub mod config;
pub mod context;
pub mod error;
pub mod input;
pub mod judge;
pub mod logging;
pub mod markdown;
pub mod output;
pub mod pipeline;
pub mod present;
pub mod price;
pub mod repair;
pub mod spec;
pub mod template;
pub mod term;
pub mod util;

use error::{Outcome, Result};
use term::Ui;

/// Run a parsed command line.
pub fn run(cli: cli::Cli) -> Result<Outcome> {
    logging::init(cli.verbose, cli.quiet);
    // One TLS crypto provider for the whole process (ring: small and quick to build).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let ui = Ui {
        quiet: cli.quiet,
        verbose: cli.verbose,
    };
    // One thread: rbplan waits on the network far more than it computes (see BENCHMARKS.md).
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| error::Error::io("starting the async runtime", e))?;
    // (check prints its own per-file JSON, unreadable files included.)
    let json = match &cli.command {
        cli::Command::Ask(a) => a.json,
        cli::Command::Batch(b) => b.json,
        _ => false,
    };
    let result = rt.block_on(async move {
        match cli.command {
            cli::Command::Ask(a) => commands::ask::run(a, ui).await,
            cli::Command::Batch(b) => commands::batch::run(*b, ui).await,
            cli::Command::Revise(r) => commands::revise::run(*r, ui).await,
            cli::Command::Check(c) => commands::check::run(c, ui).await,
            cli::Command::Adopt(a) => commands::adopt::run(*a, ui).await,
            cli::Command::Render(r) => commands::render::run(r, ui),
            cli::Command::Stages(s) => commands::stages::run(s),
            cli::Command::Doctor(d) => commands::doctor::run(d).await,
            cli::Command::Completions { shell } => commands::shell::completions(shell),
            cli::Command::Man => commands::shell::man(),
            cli::Command::Config(c) => commands::config::run(c),
            cli::Command::Init(i) => commands::init::run(i, ui),
        }
    });
    // With --json, a script reading stdout gets an object on failure too.
    if json && let Err(e) = &result {
        let v = serde_json::json!({
            "error": logging::scrub(&e.to_string()),
            "exit_code": e.exit_code(),
        });
        let _ = term::print_stdout(&v.to_string());
    }
    result
}
