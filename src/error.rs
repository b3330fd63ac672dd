//! Typed errors, each mapped to one documented exit code.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::client::ApiError;

/// Exit codes, documented in the README. Distinct per outcome so scripts can branch.
pub mod code {
    /// The plan (or every plan, or every checked file) is complete.
    pub const OK: u8 = 0;
    /// Unexpected local failure: writing output, reading a directory.
    pub const IO: u8 = 1;
    /// Bad flags or bad input; nothing was sent.
    pub const USAGE: u8 = 2;
    /// A plan is incomplete or has error findings after repairs; `check` found errors.
    pub const FAILING: u8 = 3;
    /// The API or the network failed (including auth and quota).
    pub const API: u8 = 4;
    /// Another rbplan run holds the lock on the output folder or plan file.
    pub const BUSY: u8 = 5;
    /// `--max-cost` reached: what was done is written, a rerun with more goes on.
    pub const BUDGET: u8 = 6;
    /// Interrupted by Ctrl-C.
    pub const INTERRUPTED: u8 = 130;
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A flag or value the user gave is wrong.
    #[error("{0}")]
    Usage(String),
    /// A file the user gave is malformed; names the file and, where known, the line.
    #[error("{}", fmt_input(path, *line, msg))]
    Input {
        path: PathBuf,
        line: Option<usize>,
        msg: String,
    },
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("interrupted")]
    Interrupted,
    /// Another run writes there now.
    #[error("{what} is in use by another rbplan run{}; wait for it to finish (a killed run releases the lock by itself)", holder.as_ref().map(|h| format!(" ({h})")).unwrap_or_default())]
    Locked { what: String, holder: Option<String> },
}

fn fmt_input(path: &std::path::Path, line: Option<usize>, msg: &str) -> String {
    match line {
        Some(l) => format!("{}:{l}: {msg}", path.display()),
        None => format!("{}: {msg}", path.display()),
    }
}

impl Error {
    pub fn usage(msg: impl Into<String>) -> Self {
        Error::Usage(msg.into())
    }

    pub fn input(path: impl Into<PathBuf>, line: Option<usize>, msg: impl Into<String>) -> Self {
        Error::Input {
            path: path.into(),
            line,
            msg: msg.into(),
        }
    }

    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Usage(_) | Error::Input { .. } => code::USAGE,
            // A local file the client was to write: the disk, not the API.
            Error::Api(ApiError::Local(_) | ApiError::Record(_)) => code::IO,
            Error::Api(ApiError::Budget { .. }) => code::BUDGET,
            Error::Api(_) => code::API,
            Error::Io { .. } => code::IO,
            Error::Interrupted => code::INTERRUPTED,
            Error::Locked { .. } => code::BUSY,
        }
    }
}

/// What a command achieved when it did not fail outright.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Complete,
    /// A plan does not pass: sections missing, or error findings (`check`: the gate failed).
    Failing,
    /// The API stood in the way: some batch items failed at it, or `doctor` found the
    /// server, key or model not working.
    ApiProblem,
    /// `--max-cost` stopped the run; a rerun with a larger budget goes on.
    BudgetReached,
    Interrupted,
}

impl Outcome {
    pub fn exit_code(self) -> ExitCode {
        ExitCode::from(match self {
            Outcome::Complete => code::OK,
            Outcome::Failing => code::FAILING,
            Outcome::ApiProblem => code::API,
            Outcome::BudgetReached => code::BUDGET,
            Outcome::Interrupted => code::INTERRUPTED,
        })
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
