//! The one seam to the model: an OpenAI-compatible chat-completions client.
//!
//! `Client::chat` sends one request, retrying transient failures (see `retry`), and
//! returns the reply text with its finish reason, usage and request id. The bytes come
//! from HTTP (`http`) or from recorded fixtures (`fixture`); either way they are read by
//! the same code (`wire`), so replay exercises the real parsing path.

pub mod batches;
pub mod budget;
mod error;
pub mod fixture;
mod halt;
mod http;
mod learned;
pub mod limits;
pub mod pacing;
pub mod retry;
pub mod sse;
pub mod wire;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use budget::{Budget, Reservation};
pub use error::ApiError;
use fixture::{Recorder, ReplaySet};
pub use halt::{Halt, interrupted};
use limits::{Aimd, Progress, ServerLimits, Slot};
use pacing::{Gate, Pacer};
pub use wire::request_body;

/// Who speaks a message, as the chat API names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    User,
    Assistant,
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub role: Role,
    pub content: String,
}

impl Message {
    pub fn system(c: impl Into<String>) -> Self {
        Message {
            role: Role::System,
            content: c.into(),
        }
    }
    pub fn user(c: impl Into<String>) -> Self {
        Message {
            role: Role::User,
            content: c.into(),
        }
    }
    pub fn assistant(c: impl Into<String>) -> Self {
        Message {
            role: Role::Assistant,
            content: c.into(),
        }
    }

    /// A request that stands alone: `base`'s system message (if it has one), then `prompt`
    /// as the user's.
    pub fn standalone(base: &[Message], prompt: impl Into<String>) -> Vec<Message> {
        let mut msgs: Vec<Message> = base.iter().filter(|m| m.role == Role::System).cloned().collect();
        msgs.push(Message::user(prompt));
        msgs
    }
}

/// What shapes a request besides its messages: the model, the sampling temperature, and
/// the completion-token limit with the field that carries it. `config` builds it once;
/// the plan job, each request, the wire body and the pacing estimate read it whole.
#[derive(Debug, Clone, PartialEq)]
pub struct Shape {
    pub model: String,
    pub temperature: Option<f32>,
    /// None sends no limit.
    pub max_tokens: Option<u32>,
    pub max_tokens_field: MaxTokensField,
}

impl Shape {
    /// The same shape for another model (a fallback, a judge, an item's own).
    pub fn for_model(&self, model: &str) -> Shape {
        Shape {
            model: model.to_string(),
            ..self.clone()
        }
    }
}

/// What rbplan asks for; the wire body is built from it in `wire::request_body`.
#[derive(Debug, Clone)]
pub struct ChatRequest {
    pub shape: Shape,
    pub messages: Vec<Message>,
    pub stream: bool,
}

impl ChatRequest {
    /// A request that is not streamed.
    pub fn new(shape: Shape, messages: Vec<Message>) -> ChatRequest {
        ChatRequest {
            shape,
            messages,
            stream: false,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
    /// Prompt tokens the server read from its cache (`prompt_tokens_details.cached_tokens`),
    /// priced at the cached rate.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub cached_tokens: u64,
}

impl Usage {
    /// What these tokens cost at `model`'s price, in USD; None without one.
    pub fn priced(&self, prices: &crate::price::Prices, model: &str) -> Option<f64> {
        let (p, _) = prices.of(model)?;
        Some(p.cost(self.prompt_tokens, self.cached_tokens, self.completion_tokens))
    }
}

impl std::ops::AddAssign for Usage {
    fn add_assign(&mut self, o: Usage) {
        self.prompt_tokens += o.prompt_tokens;
        self.completion_tokens += o.completion_tokens;
        self.total_tokens += o.total_tokens;
        self.cached_tokens += o.cached_tokens;
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// One finished reply.
#[derive(Debug, Clone)]
pub struct ChatResult {
    pub text: String,
    /// As sent by the server; unknown values are kept, not rejected.
    pub finish_reason: Option<String>,
    /// None when the server sent no usage (unknown, not zero).
    pub usage: Option<Usage>,
    /// `x-request-id` (or Azure's `apim-request-id`), else the completion id.
    pub request_id: Option<String>,
    pub model: Option<String>,
    /// Transport retries this call needed (0 when the first attempt succeeded).
    pub retries: u32,
    /// Attempts answered with a rate limit (429) and waited out; not retries.
    pub rate_limited: u32,
}

impl ChatResult {
    /// Cut off by the token limit: the last section may be unfinished.
    pub fn truncated(&self) -> bool {
        self.finish_reason.as_deref() == Some("length")
    }
}

/// The request field that carries the completion token limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaxTokensField {
    /// What most servers read (Ollama reads only this).
    MaxTokens,
    /// What OpenAI's reasoning models require.
    MaxCompletionTokens,
}

impl MaxTokensField {
    pub fn as_str(self) -> &'static str {
        match self {
            MaxTokensField::MaxTokens => "max_tokens",
            MaxTokensField::MaxCompletionTokens => "max_completion_tokens",
        }
    }

    pub fn parse(s: &str) -> Option<MaxTokensField> {
        match s {
            "max_tokens" => Some(MaxTokensField::MaxTokens),
            "max_completion_tokens" => Some(MaxTokensField::MaxCompletionTokens),
            _ => None,
        }
    }
}

/// Where requests go and how the key is sent: the one provider type, for the command
/// line (`--provider`), the configuration and the client.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Provider {
    /// OpenAI and compatible servers (vLLM, llama-server, Ollama, gateways).
    #[default]
    #[value(name = "openai")]
    OpenAi,
    /// Azure OpenAI: api-key header, deployments path, api-version.
    Azure,
}

impl Provider {
    /// As `--provider` and `RBPLAN_PROVIDER` spell it.
    pub fn parse(s: &str) -> Option<Provider> {
        <Provider as clap::ValueEnum>::from_str(s, true).ok()
    }
}

/// Everything the client needs, resolved by `config`.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub base_url: String,
    pub api_key: Option<SecretString>,
    pub provider: Provider,
    /// Azure's api-version (required there; `config` checks it).
    pub api_version: Option<String>,
    /// Extra headers for gateways, e.g. `X-Team: sre`.
    pub headers: Vec<(String, String)>,
    pub connect_timeout: Duration,
    /// Whole request when not streaming; time to first byte when streaming.
    pub request_timeout: Duration,
    /// Longest silence allowed between two chunks of a stream.
    pub idle_timeout: Duration,
    pub max_retries: u32,
    /// How long rate limits may go on with no request succeeding before the run stops.
    pub patience: Duration,
    pub replay: Option<PathBuf>,
}

enum Transport {
    Http(http::HttpTransport),
    Replay(ReplaySet),
}

/// Cheap to clone; clones share the connection pool, the 429 gate and the pacer.
#[derive(Clone)]
pub struct Client {
    transport: Arc<Transport>,
    cfg: Arc<ClientConfig>,
    recorder: Option<Arc<dyn Recorder>>,
    gate: Arc<Gate>,
    pacer: Option<Arc<Pacer>>,
    /// Requests in flight at once, over every clone (`batch --concurrency`): halved by a
    /// rate limit, raised again by successes.
    limit: Option<Arc<Aimd>>,
    /// The server's own `x-ratelimit-*` figures, paced by before it says no.
    server: Arc<ServerLimits>,
    /// The rate learned from a 429 when the server announces no figures.
    learned: Arc<learned::Learned>,
    /// When a request last succeeded, to give up on rate limits only when nothing does.
    progress: Arc<Progress>,
    /// `--max-cost`.
    budget: Option<Arc<Budget>>,
    /// Set when a batch stops starting new work (first Ctrl-C).
    stop_new: Arc<AtomicBool>,
    /// Requests sent over every clone (first attempts; retries are counted apart), so a
    /// batch can count those of items stopped while their request was in flight.
    started: Arc<AtomicU64>,
}

/// Called with each piece of text as a stream arrives.
pub type OnDelta<'a> = &'a (dyn Fn(&str) + Send + Sync);

impl Client {
    pub fn new(cfg: ClientConfig) -> Result<Client, ApiError> {
        let patience = cfg.patience;
        let transport = match &cfg.replay {
            Some(dir) => Transport::Replay(ReplaySet::load(dir)?),
            None => Transport::Http(http::HttpTransport::new(&cfg)?),
        };
        Ok(Client {
            transport: Arc::new(transport),
            cfg: Arc::new(cfg),
            recorder: None,
            gate: Arc::new(Gate::default()),
            pacer: None,
            limit: None,
            server: Arc::default(),
            learned: Arc::default(),
            progress: Arc::new(Progress::new(patience)),
            budget: None,
            stop_new: Arc::default(),
            started: Arc::default(),
        })
    }

    /// At most `n` requests in flight at once over every clone. Only the request holds a
    /// slot: checking and writing a reply never keep the next request waiting.
    pub fn with_limit(mut self, n: usize) -> Client {
        self.limit = Some(Aimd::new(n));
        self
    }

    /// Refuse any request whose worst case could take the spend past the budget.
    pub fn with_budget(mut self, b: Budget) -> Client {
        self.budget = Some(Arc::new(b));
        self
    }

    /// With `--max-cost`: what the run spent (priced usage), the budget, and whether a
    /// request was refused for it.
    pub fn budget(&self) -> Option<(f64, f64, bool)> {
        self.budget.as_ref().map(|b| (b.spent(), b.max, b.reached()))
    }

    /// The in-flight limit now and the most requests in flight at once (batch only).
    pub fn in_flight(&self) -> Option<(usize, usize)> {
        self.limit.as_ref().map(|l| l.now_and_peak())
    }

    /// Requests sent so far over every clone, each counted once however often retried.
    pub fn requests_started(&self) -> u64 {
        self.started.load(Ordering::Relaxed)
    }

    /// From now on `chat_first` refuses to start new work; calls already started go on.
    pub fn stop_new_work(&self) {
        self.stop_new.store(true, Ordering::SeqCst);
    }

    /// The first request of a new piece of work (a batch item): refused with
    /// `ApiError::NotStarted` once `stop_new_work` was called, even after waiting for a slot.
    pub async fn chat_first(&self, req: &ChatRequest, on_delta: Option<OnDelta<'_>>) -> Result<ChatResult, ApiError> {
        self.chat_inner(req, on_delta, true).await
    }

    /// Hand every exchange to `r` (`--record`), the key removed.
    pub fn with_recorder(mut self, r: Arc<dyn Recorder>) -> Client {
        self.recorder = Some(r);
        self
    }

    /// Client-side pacing (requests and tokens per minute), shared by every clone.
    pub fn with_pacer(mut self, pacer: Pacer) -> Client {
        self.pacer = Some(Arc::new(pacer));
        self
    }

    /// `--max-cost`, if given.
    pub fn budget_max(&self) -> Option<f64> {
        self.budget.as_ref().map(|b| b.max)
    }

    pub fn config(&self) -> &ClientConfig {
        &self.cfg
    }

    /// The models the recordings were made with, when replaying.
    pub fn replay_models(&self) -> Option<Vec<String>> {
        match &*self.transport {
            Transport::Replay(r) => Some(r.models()),
            Transport::Http(_) => None,
        }
    }

    /// Send one chat request, retrying what the retry policy allows.
    pub async fn chat(&self, req: &ChatRequest, on_delta: Option<OnDelta<'_>>) -> Result<ChatResult, ApiError> {
        self.chat_inner(req, on_delta, false).await
    }

    async fn chat_inner(
        &self,
        req: &ChatRequest,
        on_delta: Option<OnDelta<'_>>,
        first: bool,
    ) -> Result<ChatResult, ApiError> {
        let body = wire::request_body(req);
        let bytes = bytes::Bytes::from(serde_json::to_vec(&body).expect("a JSON value serializes"));
        let cost = pacing::estimate_tokens(&body, &req.shape);
        let (mut attempt, mut limited) = (0u32, 0u32);
        loop {
            let new_work = first && attempt == 0 && limited == 0;
            let (slot, held) = match self.admit(new_work, cost, req).await {
                // Refused on a retry: the request itself went out, and counts as made.
                Err(ApiError::Budget {
                    spent, held, max, next, ..
                }) if attempt + limited > 0 => {
                    let retry = true;
                    return Err(ApiError::Budget {
                        spent,
                        held,
                        max,
                        next,
                        retry,
                    });
                }
                r => r?,
            };
            let sent = self.learned.acquire().await;
            if attempt == 0 && limited == 0 {
                self.started.fetch_add(1, Ordering::Relaxed);
            }
            let result = match &*self.transport {
                Transport::Http(h) => {
                    let call = http::Call {
                        body: &bytes,
                        json: &body,
                        attempt: attempt + limited,
                        on_delta,
                        recorder: self.recorder.as_deref(),
                        limits: &self.server,
                    };
                    h.exchange(&self.cfg, call).await
                }
                Transport::Replay(r) => r.exchange(&body, on_delta).await,
            };
            match result {
                Ok(mut res) => {
                    (res.retries, res.rate_limited) = (attempt, limited);
                    self.succeeded(&res, cost, held, &req.shape.model);
                    if slot.is_some() {
                        // Let the items waiting for this slot send their requests before
                        // this one's reply is checked (see BENCHMARKS.md).
                        drop(slot);
                        tokio::task::yield_now().await;
                    }
                    return Ok(res);
                }
                Err(err) => {
                    if let (Some(b), Some(r)) = (&self.budget, held) {
                        b.release(r);
                    }
                    drop(slot); // free for others while this one waits
                    if err.is_pacing() {
                        if self.server.latest().is_none() {
                            self.learned.rate_limited(sent);
                        }
                        self.wait_out_rate_limit(err, limited, cost).await?;
                        limited += 1;
                        continue;
                    }
                    self.stop_if_hopeless(&err, attempt);
                    self.back_off(err, attempt).await?;
                    attempt += 1;
                }
            }
        }
    }

    /// A reply came: settle its cost and pacing, and count it as progress.
    fn succeeded(&self, res: &ChatResult, cost: u64, held: Option<Reservation>, model: &str) {
        if let (Some(p), Some(u)) = (&self.pacer, res.usage) {
            p.settle(cost, u.total_tokens);
        }
        if let (Some(b), Some(r)) = (&self.budget, held) {
            b.settle(r, model, res.usage);
        }
        if let Some(l) = &self.limit {
            l.succeeded();
        }
        self.progress.succeeded();
    }

    /// Wait until one attempt may go out: a slot first, then the 429 gate (a request that
    /// waited for a slot must still honour a pause that began meanwhile), then the pacers
    /// (`--rpm`/`--tpm`, and the server's own figures), then the budget. The slot is held
    /// for this attempt only, never across a retry's wait. New work is refused once the
    /// run is stopping.
    async fn admit(
        &self,
        new_work: bool,
        cost: u64,
        req: &ChatRequest,
    ) -> Result<(Option<Slot>, Option<Reservation>), ApiError> {
        let slot = match &self.limit {
            Some(l) => Some(l.acquire().await),
            None => None,
        };
        self.gate.wait().await;
        if let Some(p) = &self.pacer {
            p.acquire(cost).await;
        }
        while let Some(w) = self.server.wait_for(cost) {
            tracing::debug!(
                wait_ms = w.as_millis() as u64,
                "pacing by the server's rate-limit headers"
            );
            tokio::time::sleep(w).await;
        }
        if new_work && self.stop_new.load(Ordering::SeqCst) {
            return Err(ApiError::NotStarted);
        }
        let held = match &self.budget {
            Some(b) => {
                let worst = u64::from(req.shape.max_tokens.unwrap_or(0));
                match b.reserve(&req.shape.model, budget::prompt_tokens(req), worst) {
                    Ok(r) => Some(r),
                    Err(e) => {
                        // Every later request is as large: the run stops starting work.
                        self.stop_new_work();
                        return Err(e);
                    }
                }
            }
            None => None,
        };
        Ok((slot, held))
    }

    /// A rate limit: fewer requests in flight, everyone paused for the server's hint (or
    /// its announced reset, or a backoff with jitter), then try again. It uses none of
    /// the transport retries; only a run with no success for the patience gives up.
    async fn wait_out_rate_limit(&self, err: ApiError, n: u32, cost: u64) -> Result<(), ApiError> {
        if let Some(quiet) = self.progress.stalled() {
            self.stop_new_work();
            return Err(ApiError::Stalled {
                quiet,
                last: Box::new(err),
            });
        }
        // The server's hint; else, from its headers, when this request fits again; else
        // when its exhausted limit resets; else a backoff with jitter.
        let hint = err
            .retry_after()
            .or_else(|| self.server.time_to_fit(cost))
            .or_else(|| self.server.latest().and_then(|h| h.reset_hint()));
        if let Some(wait) = hint.filter(|h| *h > self.cfg.patience) {
            // Longer than the run may go without progress (a daily limit): stop now.
            self.stop_new_work();
            return Err(ApiError::HintTooLong {
                wait,
                limit: self.cfg.patience,
                source: Box::new(err),
            });
        }
        let delay = hint.unwrap_or_else(|| retry::rate_limit_backoff(n, fastrand::f64()));
        tracing::info!(wait_ms = delay.as_millis() as u64, "rate limited: {err}");
        if let Some(l) = &self.limit {
            l.rate_limited();
        }
        self.gate.pause_for(delay);
        if !matches!(*self.transport, Transport::Replay(_)) {
            tokio::time::sleep(delay).await;
        }
        Ok(())
    }

    /// A 401, exhausted quota or budget that will not be retried: every other request
    /// would fail the same way, so start no new work, decided before this slot frees for
    /// a waiting item. Retrying and giving up stay the same as for any error (`back_off`).
    fn stop_if_hopeless(&self, err: &ApiError, attempt: u32) {
        if self.limit.is_some()
            && err.stops_run()
            && matches!(
                retry::decide(err, attempt, self.cfg.max_retries),
                retry::Decision::GiveUp
            )
        {
            self.stop_new_work();
        }
    }

    /// After a failed attempt: wait and return Ok to try again, or the error to give up
    /// with, saying how many attempts it took. The one retry policy for chat, Files and
    /// Batches calls.
    async fn back_off(&self, err: ApiError, attempt: u32) -> Result<(), ApiError> {
        match retry::decide(&err, attempt, self.cfg.max_retries) {
            retry::Decision::Retry(delay) => {
                tracing::warn!(
                    attempt = attempt + 1,
                    delay_ms = delay.as_millis() as u64,
                    "retrying: {err}"
                );
                if err.is_rate_limit() {
                    // Pause every worker sharing this client, not just this one.
                    self.gate.pause_for(delay);
                }
                if !matches!(*self.transport, Transport::Replay(_)) {
                    tokio::time::sleep(delay).await;
                }
                Ok(())
            }
            retry::Decision::GiveUp => Err(give_up(err, attempt)),
        }
    }

    /// GET `{base}/models` (for `doctor`): status and body.
    pub async fn list_models(&self) -> Result<(u16, serde_json::Value), ApiError> {
        match &*self.transport {
            Transport::Http(h) => h.get_models(&self.cfg).await,
            Transport::Replay(_) => Err(ApiError::Config("doctor checks a live server; drop --replay".into())),
        }
    }
}

/// The error to report after `attempt` (0-based) failed for good: a too-long server hint
/// and the number of attempts are said.
fn give_up(err: ApiError, attempt: u32) -> ApiError {
    let err = match retry::hint_too_long(&err) {
        Some(wait) => ApiError::HintTooLong {
            wait,
            limit: retry::MAX_HINT,
            source: Box::new(err),
        },
        None => err,
    };
    if attempt > 0 {
        ApiError::Exhausted {
            attempts: attempt + 1,
            last: Box::new(err),
        }
    } else {
        err
    }
}

/// Header maps for tests of what the client reads from a response.
#[cfg(test)]
pub(crate) mod testing {
    use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

    pub fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }
}
