//! Context files a team hands to a plan (`--context`, `--runbook`): read from files,
//! folders (with ignore rules), globs or stdin (`load`); scanned for credentials, which are
//! replaced before anything is sent (`redact`); held to a token budget (`budget`); and
//! rendered as fenced blocks the model reads as data (`render`).

mod budget;
mod load;
pub mod redact;
mod render;

pub use budget::{Budget, Counted, DEFAULT_MAX_TOKENS, fit};
pub use load::{Options, load};
pub use render::{fence_for, lang_of, render};

use serde::Serialize;

/// One context file as it is sent.
#[derive(Debug, Clone)]
pub struct File {
    /// As shown to the model and in messages: relative to where rbplan runs when it is
    /// under it, else as found; `-` for stdin.
    pub path: String,
    /// The code-fence language tag its extension gives ("sql", "hcl", "yaml", "text").
    pub lang: &'static str,
    /// The text sent: credentials replaced by markers, possibly cut (`--context-truncate`).
    pub text: String,
    /// A short hash of the file as read, before redaction (recorded in the front matter).
    pub hash: String,
    /// Given on the command line for every plan of a run (sent first), not by one item.
    pub shared: bool,
}

/// Why a file under a context folder was not read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Skip {
    /// Its name starts with a dot, or it is under such a folder.
    Hidden,
    /// A `.gitignore`, `.ignore` or git exclude rule leaves it out.
    Ignored,
    /// Not text (a NUL byte near its start).
    Binary,
}

impl Skip {
    pub fn as_str(self) -> &'static str {
        match self {
            Skip::Hidden => "hidden",
            Skip::Ignored => "ignored by .gitignore",
            Skip::Binary => "binary",
        }
    }
}

/// A file left out of a context folder, and why.
#[derive(Debug, Clone, Serialize)]
pub struct Skipped {
    pub path: String,
    pub why: Skip,
}

/// A credential replaced in a context file: where, and of what kind; never its value.
#[derive(Debug, Clone, Serialize)]
pub struct Redaction {
    pub path: String,
    pub line: usize,
    pub kind: &'static str,
}

/// Context files as read for one plan (or shared by a batch).
#[derive(Debug, Clone, Default)]
pub struct Context {
    pub files: Vec<File>,
    pub skipped: Vec<Skipped>,
    pub redactions: Vec<Redaction>,
}

impl Context {
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// `self` (shared) followed by `item`'s own files, a file both name only once.
    pub fn then(&self, item: Context) -> Context {
        let mut out = self.clone();
        for f in item.files {
            if !out.files.iter().any(|g| g.path == f.path) {
                out.files.push(f);
            }
        }
        out.skipped.extend(item.skipped);
        out.redactions.extend(item.redactions);
        out
    }
}
