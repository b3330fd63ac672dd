//! The HTTP transport: reqwest on tokio. Non-streamed requests get a whole-request
//! timeout; streams get a time-to-first-byte timeout and an idle timeout between chunks,
//! so a long healthy answer is never killed and a stalled one never hangs.

use std::time::Duration;

use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use secrecy::ExposeSecret;
use serde_json::Value;

use super::fixture::{self, Recorder};
use super::wire::{self, StreamAssembler};
use super::{ApiError, ChatResult, ClientConfig, OnDelta, Provider};

pub struct HttpTransport {
    pub(super) http: reqwest::Client,
}

/// One attempt's request and where its reply goes.
pub struct Call<'a> {
    pub body: &'a Bytes,
    pub json: &'a Value,
    /// Attempts before this one, for `x-rbplan-retry-count`.
    pub attempt: u32,
    pub on_delta: Option<OnDelta<'a>>,
    pub recorder: Option<&'a dyn Recorder>,
    /// Told the server's rate-limit headers of every response.
    pub limits: &'a super::limits::ServerLimits,
}

impl HttpTransport {
    pub fn new(cfg: &ClientConfig) -> Result<HttpTransport, ApiError> {
        let mut headers = HeaderMap::new();
        for (k, v) in &cfg.headers {
            let name =
                HeaderName::from_bytes(k.as_bytes()).map_err(|_| ApiError::Config(format!("bad header name {k:?}")))?;
            let mut value =
                HeaderValue::from_str(v).map_err(|_| ApiError::Config(format!("bad value for header {k}")))?;
            value.set_sensitive(true); // gateway headers often carry tokens
            headers.insert(name, value);
        }
        if let Some(key) = &cfg.api_key {
            let (name, value) = match cfg.provider {
                Provider::OpenAi => ("authorization", format!("Bearer {}", key.expose_secret())),
                Provider::Azure => ("api-key", key.expose_secret().to_string()),
            };
            let mut v = HeaderValue::from_str(&value)
                .map_err(|_| ApiError::Config("the API key has characters a header cannot carry".into()))?;
            v.set_sensitive(true);
            headers.insert(HeaderName::from_static(name), v);
        }
        // A gateway may want its own User-Agent (--header "User-Agent: …"): it wins.
        let own_agent = headers.contains_key(reqwest::header::USER_AGENT);
        let mut builder = reqwest::Client::builder()
            .default_headers(headers)
            .connect_timeout(cfg.connect_timeout);
        if !own_agent {
            builder = builder.user_agent(concat!("rbplan/", env!("CARGO_PKG_VERSION")));
        }
        if cfg.base_url.trim_start().to_ascii_lowercase().starts_with("http://") {
            // Plain HTTP (a local server): no need to load the system's root certificates.
            builder = builder.tls_certs_only(Vec::new());
        }
        let http = builder
            .build()
            .map_err(|e| ApiError::Config(format!("cannot build the HTTP client: {e}")))?;
        Ok(HttpTransport { http })
    }

    /// One attempt: send, read the whole reply (streamed or not), record it, interpret it.
    pub async fn exchange(&self, cfg: &ClientConfig, call: Call<'_>) -> Result<ChatResult, ApiError> {
        let Call {
            body,
            json: json_body,
            attempt,
            on_delta,
            recorder,
            limits,
        } = call;
        let streaming = json_body.get("stream").and_then(Value::as_bool).unwrap_or(false);
        let model = json_body.get("model").and_then(Value::as_str).unwrap_or_default();
        let url = chat_url(cfg, model);
        let mut rb = self
            .http
            .post(&url)
            .header("content-type", "application/json")
            .header("x-rbplan-retry-count", attempt.to_string())
            .body(body.clone());
        if !streaming {
            rb = rb.timeout(cfg.request_timeout);
        }
        let resp = match tokio::time::timeout(cfg.request_timeout, rb.send()).await {
            Err(_) => {
                return Err(ApiError::Timeout {
                    phase: "waiting for the response",
                    after: cfg.request_timeout,
                });
            }
            Ok(Err(e)) => return Err(send_error(e, &url, cfg.request_timeout)),
            Ok(Ok(r)) => r,
        };
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        tracing::debug!(status, request_id = ?wire::request_id(&headers), "response headers");
        limits.observe(&headers);

        let mut raw = Vec::new();
        let outcome = if (200..300).contains(&status) && wire::is_event_stream(&headers) {
            read_stream(resp, &headers, cfg.idle_timeout, on_delta, &mut raw).await
        } else {
            match read_all(resp, cfg, streaming, &mut raw).await {
                Ok(()) => wire::interpret(status, &headers, &raw, None),
                Err(e) => Err(e),
            }
        };
        if let Some(r) = recorder {
            let (request, response) = fixture::recorded(cfg.api_key.as_ref(), json_body, status, &headers, &raw);
            r.record(&request, response).map_err(ApiError::Record)?;
        }
        outcome
    }

    pub async fn get_models(&self, cfg: &ClientConfig) -> Result<(u16, Value), ApiError> {
        let url = resource_url(cfg, "models");
        let resp = send_checked(cfg, self.http.get(&url), &url, "waiting for /models").await?;
        let status = resp.status().as_u16();
        let body = resp.bytes().await.map_err(|e| ApiError::Transport(e.to_string()))?;
        let v = serde_json::from_slice(&body).unwrap_or(Value::Null);
        Ok((status, v))
    }
}

async fn read_stream(
    mut resp: reqwest::Response,
    headers: &HeaderMap,
    idle: Duration,
    on_delta: Option<OnDelta<'_>>,
    raw: &mut Vec<u8>,
) -> Result<ChatResult, ApiError> {
    let mut asm = StreamAssembler::new(headers, on_delta);
    loop {
        match tokio::time::timeout(idle, resp.chunk()).await {
            Err(_) => {
                tracing::warn!("stream idle for {}s; giving up on this attempt", idle.as_secs_f32());
                return Err(ApiError::Timeout {
                    phase: "waiting for the next stream chunk",
                    after: idle,
                });
            }
            Ok(Err(e)) => {
                // A reset mid-stream: the caller may retry, or keep the complete sections.
                return Err(ApiError::StreamCut {
                    partial: asm.partial().to_string(),
                    cause: Some(describe(&e)),
                    request_id: wire::request_id(headers),
                });
            }
            Ok(Ok(None)) => break,
            Ok(Ok(Some(chunk))) => {
                raw.extend_from_slice(&chunk);
                if asm.feed(&chunk) {
                    break; // [DONE] or an error chunk: anything after it is ignored
                }
            }
        }
    }
    asm.finish()
}

async fn read_all(
    mut resp: reqwest::Response,
    cfg: &ClientConfig,
    streaming: bool,
    raw: &mut Vec<u8>,
) -> Result<(), ApiError> {
    // A streamed request answered with plain JSON is still read chunk by chunk under the idle timeout.
    loop {
        let next = if streaming {
            match tokio::time::timeout(cfg.idle_timeout, resp.chunk()).await {
                Err(_) => {
                    return Err(ApiError::Timeout {
                        phase: "reading the response body",
                        after: cfg.idle_timeout,
                    });
                }
                Ok(r) => r,
            }
        } else {
            resp.chunk().await
        };
        match next {
            Ok(Some(c)) => raw.extend_from_slice(&c),
            Ok(None) => return Ok(()),
            Err(e) if e.is_timeout() => {
                return Err(ApiError::Timeout {
                    phase: "reading the response body",
                    after: cfg.request_timeout,
                });
            }
            Err(e) => return Err(ApiError::Transport(describe(&e))),
        }
    }
}

/// Send a request beside chat completions (models, files, batches) and check its status:
/// the response head must come within `cfg.request_timeout` (`phase` says what was
/// awaited); a status other than 2xx is an error made from its body.
pub(super) async fn send_checked(
    cfg: &ClientConfig,
    rb: reqwest::RequestBuilder,
    url: &str,
    phase: &'static str,
) -> Result<reqwest::Response, ApiError> {
    let resp = match tokio::time::timeout(cfg.request_timeout, rb.send()).await {
        Err(_) => {
            return Err(ApiError::Timeout {
                phase,
                after: cfg.request_timeout,
            });
        }
        Ok(r) => r.map_err(|e| send_error(e, url, cfg.request_timeout))?,
    };
    let status = resp.status().as_u16();
    if !(200..300).contains(&status) {
        let headers = resp.headers().clone();
        let body = resp.bytes().await.unwrap_or_default();
        return Err(wire::status_error(status, &headers, &body));
    }
    Ok(resp)
}

pub(super) fn send_error(e: reqwest::Error, url: &str, timeout: Duration) -> ApiError {
    if e.is_timeout() {
        ApiError::Timeout {
            phase: "waiting for the response",
            after: timeout,
        }
    } else if e.is_connect() {
        ApiError::Connect {
            url: url.to_string(),
            detail: describe(&e),
        }
    } else {
        ApiError::Transport(describe(&e))
    }
}

/// reqwest's message plus its causes ("connection refused", "connection reset").
fn describe(e: &reqwest::Error) -> String {
    let mut parts = Vec::new();
    let mut src: Option<&dyn std::error::Error> = std::error::Error::source(e);
    while let Some(s) = src {
        parts.push(s.to_string());
        src = s.source();
    }
    parts.last().cloned().unwrap_or_else(|| e.without_url_string())
}

trait WithoutUrl {
    fn without_url_string(&self) -> String;
}

impl WithoutUrl for reqwest::Error {
    fn without_url_string(&self) -> String {
        // The URL is reported separately; some gateways put tokens in query strings.
        let mut s = self.to_string();
        if let Some(u) = self.url() {
            s = s.replace(u.as_str(), "<url>");
        }
        s
    }
}

/// `{base}/chat/completions`, or Azure's deployment path with its api-version.
pub fn chat_url(cfg: &ClientConfig, model: &str) -> String {
    let base = cfg.base_url.trim_end_matches('/');
    match cfg.provider {
        Provider::OpenAi => format!("{base}/chat/completions"),
        // On Azure the model name is the deployment name.
        Provider::Azure => format!(
            "{base}/openai/deployments/{model}/chat/completions?api-version={}",
            api_version(cfg)
        ),
    }
}

/// `{base}/{path}` for the resources beside chat completions (models, files, batches);
/// on Azure under `/openai/` with the api-version.
pub(super) fn resource_url(cfg: &ClientConfig, path: &str) -> String {
    let base = cfg.base_url.trim_end_matches('/');
    match cfg.provider {
        Provider::OpenAi => format!("{base}/{path}"),
        Provider::Azure => format!("{base}/openai/{path}?api-version={}", api_version(cfg)),
    }
}

fn api_version(cfg: &ClientConfig) -> &str {
    cfg.api_version.as_deref().unwrap_or_default()
}
