//! Diagnostics on stderr through `tracing`. `-v` raises the level, RUST_LOG overrides it.
//! Everything written passes through a filter that removes the API key, so not even a
//! dependency's trace output can leak it.

use std::io::{IsTerminal, Write};
use std::sync::OnceLock;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

static SECRET: OnceLock<String> = OnceLock::new();

/// Register the key so every log line is scrubbed of it.
pub fn register_secret(key: &str) {
    if key.len() >= 4 {
        let _ = SECRET.set(key.to_string());
    }
}

/// Scrub the registered key from text about to be printed.
pub fn scrub(text: &str) -> String {
    scrub_cow(text).into_owned()
}

/// `scrub`, without a copy when there is nothing to remove (large reports).
pub fn scrub_cow(text: &str) -> std::borrow::Cow<'_, str> {
    match SECRET.get() {
        Some(k) => crate::util::redact_secret(text, k),
        None => text.into(),
    }
}

pub fn init(verbose: u8, quiet: bool) {
    let default = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "rbplan=warn",
        (false, 1) => "rbplan=info",
        (false, 2) => "rbplan=debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(Scrubbed)
        .with_ansi(colour())
        .with_target(verbose >= 2)
        .without_time()
        .try_init();
}

/// Colour only on a terminal, and never when NO_COLOR is set to anything but "" (no-color.org).
/// Piped or redirected stderr (CI logs, `2> file`) gets plain text.
fn colour() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

struct Scrubbed;

impl<'a> MakeWriter<'a> for Scrubbed {
    type Writer = ScrubbedWriter;
    fn make_writer(&'a self) -> Self::Writer {
        ScrubbedWriter
    }
}

struct ScrubbedWriter;

impl Write for ScrubbedWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        // tracing writes one whole event per call, so the key cannot straddle two writes.
        let text = String::from_utf8_lossy(buf);
        std::io::stderr().write_all(scrub(&text).as_bytes())?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}
