//! Talking to the person at the terminal: status lines, counts in words, stdout that
//! tolerates a closed pipe. Everything printed here is scrubbed of the API key.

use std::io::Write;

use crate::error::{Error, Result};

/// What every command needs to talk to the user.
#[derive(Debug, Clone, Copy)]
pub struct Ui {
    pub quiet: bool,
    pub verbose: u8,
}

impl Ui {
    /// A status line on stderr (not with --quiet). The key is scrubbed from it.
    pub fn note(&self, msg: impl AsRef<str>) {
        if !self.quiet {
            say!("{}", crate::logging::scrub(msg.as_ref()));
        }
    }

    pub fn warn(&self, msg: impl AsRef<str>) {
        say!("warning: {}", crate::logging::scrub(msg.as_ref()));
    }
}

/// Write to stdout; a closed pipe (`rbplan … | head`) is not an error.
pub fn print_stdout(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(Error::io("writing to stdout", e)),
        Ok(()) => Ok(()),
    }
}

/// "1 request", "2 requests", "1,234 tokens": `word` takes an "s" (see `count_as`).
pub fn count(n: impl Into<u64>, word: &str) -> String {
    count_as(n, word, &format!("{word}s"))
}

/// `count` for irregular plurals: "1 transport retry", "2 transport retries".
pub fn count_as(n: impl Into<u64>, one: &str, many: &str) -> String {
    let n = n.into();
    format!("{} {}", thousands(n), if n == 1 { one } else { many })
}

/// "1,234" for token counts.
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
