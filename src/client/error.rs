//! Everything that can go wrong talking to a model, with enough detail to act on:
//! the HTTP status, the provider's own message and the request id.

use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The server answered with an error status (or an error object in a 200).
    #[error("HTTP {status}{}: {message}{}", kind.as_ref().map(|k| format!(" ({k})")).unwrap_or_default(), rid(request_id))]
    Status {
        status: u16,
        message: String,
        /// The error `type` or `code` the provider sent, e.g. `insufficient_quota`.
        kind: Option<String>,
        request_id: Option<String>,
        /// Parsed from `retry-after-ms` / `retry-after`.
        retry_after: Option<Duration>,
        /// `x-should-retry`, which overrides the status-based rule.
        should_retry: Option<bool>,
    },
    #[error("cannot connect to {url}: {detail}")]
    Connect { url: String, detail: String },
    #[error("timed out {phase} after {}s", after.as_secs_f32())]
    Timeout { phase: &'static str, after: Duration },
    #[error("the connection failed mid-response: {0}")]
    Transport(String),
    /// A stream that ended without `data: [DONE]` is cut, never a finished answer.
    #[error("the stream ended without [DONE] after {} characters{}{}", partial.chars().count(), cause.as_ref().map(|c| format!(" ({c})")).unwrap_or_default(), rid(request_id))]
    StreamCut {
        partial: String,
        cause: Option<String>,
        request_id: Option<String>,
    },
    #[error("the server sent an error inside the stream: {message}{}", rid(request_id))]
    StreamError {
        message: String,
        partial: String,
        request_id: Option<String>,
    },
    /// A 2xx whose body is not what was asked for, e.g. an HTML page from a proxy.
    #[error("HTTP {status} but the body is not {expected}: {snippet}{}", rid(request_id))]
    BadBody {
        status: u16,
        /// What the body should have been: "a chat completion", "a batch".
        expected: &'static str,
        snippet: String,
        request_id: Option<String>,
    },
    #[error("the reply has no content (finish_reason: {}){}", finish_reason.as_deref().unwrap_or("none"), rid(request_id))]
    Empty {
        finish_reason: Option<String>,
        request_id: Option<String>,
    },
    #[error("the server asked to wait {}s, more than the {}s rbplan will wait{}: {source}", wait.as_secs(), limit.as_secs(), if source.is_pacing() { " (--patience)" } else { "" })]
    HintTooLong {
        wait: Duration,
        limit: Duration,
        source: Box<ApiError>,
    },
    #[error("{last} (gave up after {attempts} attempts)")]
    Exhausted { attempts: u32, last: Box<ApiError> },
    #[error("{0}")]
    Replay(String),
    #[error("cannot record the exchange: {0}")]
    Record(String),
    /// A client setting that cannot work (a header the HTTP library refuses), or a
    /// request this transport cannot make (the Batch API over --replay).
    #[error("{0}")]
    Config(String),
    /// A local file the client was given to fill could not be written.
    #[error("{0}")]
    Local(String),
    /// A Files/Batches call failed: which step, then why.
    #[error("{step}: {source}{}", missing_api_hint(source))]
    Step { step: String, source: Box<ApiError> },
    /// New work was not started because the run is stopping (Ctrl-C).
    #[error("not started: the run is stopping")]
    NotStarted,
    /// Stopped by the deadline or a signal: `sent` when the request was in flight.
    #[error("{why}")]
    Halted { why: String, sent: bool },
    /// A request that failed inside a Batch API or vLLM batch, as its output line says.
    #[error("failed in the batch: {0}")]
    InBatch(String),
    /// A request that nothing answered: a batch output file with no line for it.
    #[error("{0}")]
    Unanswered(String),
    /// Not sent: its worst case (prompt plus max tokens, priced) could take the spend past
    /// `--max-cost`.
    /// `held`: the worst cases of the requests still in flight. `retry`: refused on a
    /// retry, after the request's first attempt went out (so it counts as made).
    #[error("the budget is reached: {} spent and up to {} held by requests in flight, of {}; the next request could cost up to {}", crate::price::usd(*spent), crate::price::usd(*held), crate::price::usd(*max), crate::price::usd(*next))]
    Budget {
        spent: f64,
        held: f64,
        max: f64,
        next: f64,
        retry: bool,
    },
    /// Only rate limits for longer than the patience: the run stops, resumable.
    #[error("rate limited with no successful request for {}s ({last}); stopping so a rerun can resume", quiet.as_secs())]
    Stalled { quiet: Duration, last: Box<ApiError> },
}

/// A 404 or 405 from a Files/Batches endpoint means the server has no Batch API.
fn missing_api_hint(e: &ApiError) -> &'static str {
    match e.root() {
        ApiError::Status { status: 404 | 405, .. } => {
            ". This server has no Files/Batches API (vLLM, Ollama and llama-server have none): \
             use --export, run the file with `vllm run-batch`, then --import its output"
        }
        _ => "",
    }
}

fn rid(id: &Option<String>) -> String {
    id.as_ref().map(|i| format!(" [request id {i}]")).unwrap_or_default()
}

impl ApiError {
    /// The innermost error (past `Exhausted` and `HintTooLong`).
    pub fn root(&self) -> &ApiError {
        match self {
            ApiError::Exhausted { last, .. } => last.root(),
            ApiError::HintTooLong { source, .. } => source.root(),
            ApiError::Step { source, .. } => source.root(),
            e => e,
        }
    }

    pub fn status(&self) -> Option<u16> {
        match self.root() {
            ApiError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// 401: the key is wrong or missing, so every request will fail alike and a batch
    /// stops at once. A 403 is not counted: it can be about one model or resource.
    pub fn is_auth(&self) -> bool {
        matches!(self.status(), Some(401))
    }

    pub fn is_rate_limit(&self) -> bool {
        matches!(self.root(), ApiError::Status { status: 429, .. }) && !self.is_quota()
    }

    /// A 429 to wait out, not a failure: a rate limit the server does not ask us to
    /// leave alone (`x-should-retry: false`).
    pub fn is_pacing(&self) -> bool {
        match self {
            ApiError::Status { should_retry, .. } => self.is_rate_limit() && *should_retry != Some(false),
            _ => false,
        }
    }

    /// The server's wait hint (`retry-after-ms`, `retry-after`), if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self.root() {
            ApiError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// The request never left: refused for the budget, or the run stopped new work.
    pub fn not_sent(&self) -> bool {
        matches!(
            self,
            ApiError::Budget { retry: false, .. } | ApiError::NotStarted | ApiError::Halted { sent: false, .. }
        )
    }

    /// Stopped by the deadline or a signal, not by the server.
    pub fn is_halted(&self) -> bool {
        matches!(self, ApiError::Halted { .. })
    }

    /// An error that ends a whole batch run, not one item: no key, no credit, the budget
    /// reached, or rate limits with no progress.
    pub fn stops_run(&self) -> bool {
        self.is_auth()
            || self.is_quota()
            || matches!(self, ApiError::Budget { .. } | ApiError::Stalled { .. })
            || matches!(self, ApiError::HintTooLong { source, .. } if source.is_pacing())
    }

    /// A 429 that no wait will fix: the account is out of credit.
    pub fn is_quota(&self) -> bool {
        match self.root() {
            ApiError::Status {
                status: 429,
                kind,
                message,
                ..
            } => {
                kind.as_deref().is_some_and(|k| k.contains("insufficient_quota"))
                    || message.contains("insufficient_quota")
            }
            _ => false,
        }
    }

    /// A failure that asking the same model again will not heal: the model is not there
    /// (404), the server kept failing (5xx after retries), or the request does not fit
    /// the model's context. A fallback model may do better.
    pub fn is_lasting(&self) -> bool {
        let after_retries = matches!(self, ApiError::Exhausted { .. });
        match self.status() {
            Some(404) => true,
            Some(s) if s >= 500 => after_retries,
            _ => self.is_context_overflow(),
        }
    }

    /// The prompt plus the requested completion do not fit the model's context.
    pub fn is_context_overflow(&self) -> bool {
        match self.root() {
            ApiError::Status {
                status: 400,
                kind,
                message,
                ..
            } => {
                let k = kind.as_deref().unwrap_or("");
                let m = message.to_lowercase();
                k.contains("context_length_exceeded")
                    || k.contains("exceed_context_size")
                    || m.contains("context length")
                    || m.contains("context size")
                    || m.contains("context window")
            }
            _ => false,
        }
    }

    /// Text received before a stream broke, which may hold complete sections.
    pub fn partial_text(&self) -> Option<&str> {
        match self.root() {
            ApiError::StreamCut { partial, .. } | ApiError::StreamError { partial, .. }
                if !partial.trim().is_empty() =>
            {
                Some(partial)
            }
            _ => None,
        }
    }
}
