//! One file per command. Only `ask` and `batch` wire several stages together.

pub mod ask;
pub mod check;
pub mod doctor;
pub mod render;

use std::io::Write;

use crate::cli::ConnArgs;
use crate::client::Client;
use crate::config::{self, Env, Settings, Source};
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
            eprintln!("{}", crate::logging::scrub(msg.as_ref()));
        }
    }

    pub fn warn(&self, msg: impl AsRef<str>) {
        eprintln!("warning: {}", crate::logging::scrub(msg.as_ref()));
    }
}

/// Resolve the connection settings and build the client. With --replay and no model
/// chosen, the model the fixtures were recorded with is used.
pub fn connect(conn: &ConnArgs, env: &Env) -> Result<(Settings, Client)> {
    let mut settings = config::resolve(conn, env)?;
    if let Some(k) = &settings.client.api_key {
        use secrecy::ExposeSecret;
        crate::logging::register_secret(k.expose_secret());
    }
    let client = Client::new(settings.client.clone()).map_err(|e| match e {
        // Building the client sends nothing: a --replay folder that is missing, empty or
        // malformed, or a setting the HTTP client refuses, is bad input (exit 2).
        crate::client::ApiError::Replay(msg) | crate::client::ApiError::Usage(msg) => Error::Usage(msg),
        e => Error::from(e),
    })?;
    if settings.model_source == Source::Default
        && let Some(models) = client.replay_models()
        && let [only] = models.as_slice()
    {
        settings.model = only.clone();
        settings.model_source = Source::Replay;
    }
    tracing::info!(base_url = %settings.client.base_url, model = %settings.model, model_source = %settings.model_source, key = settings.key_source.map(|s| s.to_string()).unwrap_or("none".into()), "configuration");
    Ok((settings, client))
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

/// "1 request", "2 requests", "1,234 tokens"; `word` takes an "s" unless `plural` is given.
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
