//! The wire format: the request body, and reading a reply (JSON or SSE) into a
//! `ChatResult` or an `ApiError`. Shared by HTTP and replay.

use std::time::SystemTime;

use reqwest::header::HeaderMap;
use serde::Deserialize;
use serde_json::{Value, json};

use super::sse;
use super::{ApiError, ChatRequest, ChatResult, OnDelta, Usage, retry};
use crate::util::snippet;

pub fn request_body(req: &ChatRequest) -> Value {
    let shape = &req.shape;
    let mut body = json!({"model": shape.model, "messages": req.messages});
    if let Some(t) = shape.temperature {
        // Through its decimal form, so 0.2 goes out as 0.2, not 0.20000000298023224.
        body["temperature"] = json!(t.to_string().parse::<f64>().unwrap_or(t as f64));
    }
    if let Some(m) = shape.max_tokens {
        body[shape.max_tokens_field.as_str()] = json!(m);
    }
    if req.stream {
        body["stream"] = json!(true);
        body["stream_options"] = json!({"include_usage": true});
    }
    body
}

/// The id to quote in errors and reports.
/// Scrubbed of the key as it is read, like error bodies: a gateway may echo credentials here.
pub fn request_id(headers: &HeaderMap) -> Option<String> {
    ["x-request-id", "apim-request-id", "request-id"]
        .iter()
        .find_map(|h| headers.get(*h).and_then(|v| v.to_str().ok()).map(crate::logging::scrub))
}

pub fn is_event_stream(headers: &HeaderMap) -> bool {
    headers
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.to_ascii_lowercase().starts_with("text/event-stream"))
}

/// An error status: the provider's message from any of the known error shapes, else the
/// raw body (an HTML page from a proxy becomes the message).
pub fn status_error(status: u16, headers: &HeaderMap, body: &[u8]) -> ApiError {
    // A server may echo the request's headers in its error: the key goes before anything
    // is cut or kept, so no part of it survives in a message, a log or a report.
    let lossy = String::from_utf8_lossy(body);
    let scrubbed = crate::logging::scrub_cow(&lossy);
    let body = scrubbed.as_bytes();
    let (message, kind) = match serde_json::from_slice::<Value>(body) {
        Ok(v) => error_fields(&v).unwrap_or_else(|| (snippet(&String::from_utf8_lossy(body), 300), None)),
        Err(_) => {
            let text = String::from_utf8_lossy(body);
            let msg = if text.trim().is_empty() {
                "(empty body)".to_string()
            } else {
                snippet(&strip_tags(&text), 300)
            };
            (msg, None)
        }
    };
    ApiError::Status {
        status,
        message,
        kind,
        request_id: request_id(headers),
        retry_after: retry::parse_hint(headers, SystemTime::now()),
        should_retry: retry::parse_should_retry(headers),
    }
}

/// `(message, type-or-code)` from OpenAI, vLLM (nested or flat), llama-server and Ollama shapes.
fn error_fields(v: &Value) -> Option<(String, Option<String>)> {
    let obj = match v.get("error") {
        Some(Value::String(s)) => return Some((s.clone(), None)),
        Some(e @ Value::Object(_)) => e,
        _ if v.get("object").and_then(Value::as_str) == Some("error") => v,
        _ if v.get("message").is_some() && v.get("choices").is_none() => v,
        _ => return None,
    };
    let message = obj
        .get("message")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| snippet(&obj.to_string(), 300));
    let mut kinds = Vec::new();
    for k in ["type", "code"] {
        match obj.get(k) {
            Some(Value::String(s)) if !s.is_empty() => kinds.push(s.clone()),
            Some(Value::Number(n)) => kinds.push(n.to_string()),
            _ => {}
        }
    }
    let kind = (!kinds.is_empty()).then(|| kinds.join("/"));
    Some((message, kind))
}

fn strip_tags(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                out.push(' ');
            }
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out
}

/// A complete non-streamed reply with a 2xx status.
pub fn parse_completion(status: u16, headers: &HeaderMap, body: &[u8]) -> Result<ChatResult, ApiError> {
    let rid = request_id(headers);
    let bad = |snippet: String| ApiError::BadBody {
        status,
        expected: "a chat completion",
        snippet,
        request_id: rid.clone(),
    };
    let c: Completion = serde_json::from_slice(body).map_err(|_| bad(body_snippet(body)))?;
    if c.error.as_ref().is_some_and(|e| !e.is_null()) {
        // Some gateways send errors with status 200; their shapes vary, so read them whole.
        let whole: Value = serde_json::from_slice(body).unwrap_or_default();
        let (message, kind) = error_fields(&whole).unwrap_or_default();
        return Err(ApiError::Status {
            status,
            message: crate::logging::scrub(&message),
            kind,
            request_id: rid,
            retry_after: None,
            should_retry: None,
        });
    }
    let choice = c
        .choices
        .into_iter()
        .flatten()
        .next()
        .ok_or_else(|| bad(format!("no choices in {}", body_snippet(body))))?
        .unwrap_or_default();
    // The key is scrubbed from model text too: a gateway could echo it into a reply.
    let text = scrubbed(choice.message.and_then(|m| m.content).unwrap_or_default());
    let request_id = rid.or(c.id);
    if text.trim().is_empty() {
        return Err(ApiError::Empty {
            finish_reason: choice.finish_reason,
            request_id,
        });
    }
    Ok(ChatResult {
        text,
        finish_reason: choice.finish_reason,
        usage: c.usage.and_then(WireUsage::usage),
        request_id,
        model: c.model,
        retries: 0,
        rate_limited: 0,
    })
}

/// A chat completion or one chunk of a stream, as the servers send them. Only what rbplan
/// reads; unknown fields are ignored, and a field of an unexpected type counts as absent.
#[derive(Deserialize)]
struct Completion {
    #[serde(default, deserialize_with = "lenient")]
    id: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    model: Option<String>,
    /// A choice that is not an object is read as an empty one.
    #[serde(default, deserialize_with = "lenient")]
    choices: Option<Vec<Lenient<Choice>>>,
    #[serde(default, deserialize_with = "lenient")]
    usage: Option<WireUsage>,
    #[serde(default)]
    error: Option<Value>,
}

/// A value of the expected shape, or None for anything else.
struct Lenient<T>(Option<T>);

impl<'de, T: serde::de::DeserializeOwned> Deserialize<'de> for Lenient<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        Ok(Lenient(serde_json::from_value(v).ok()))
    }
}

impl<T: Default> Lenient<T> {
    fn unwrap_or_default(self) -> T {
        self.0.unwrap_or_default()
    }
}

#[derive(Deserialize, Default)]
struct Choice {
    /// A whole reply's text.
    #[serde(default, deserialize_with = "lenient")]
    message: Option<Content>,
    /// A stream chunk's piece of text.
    #[serde(default, deserialize_with = "lenient")]
    delta: Option<Content>,
    #[serde(default, deserialize_with = "lenient")]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct Content {
    #[serde(default, deserialize_with = "lenient")]
    content: Option<String>,
}

#[derive(Deserialize)]
struct WireUsage {
    #[serde(default, deserialize_with = "lenient")]
    prompt_tokens: Option<u64>,
    #[serde(default, deserialize_with = "lenient")]
    completion_tokens: Option<u64>,
    #[serde(default, deserialize_with = "lenient")]
    total_tokens: Option<u64>,
    #[serde(default, deserialize_with = "lenient")]
    prompt_tokens_details: Option<PromptDetails>,
}

#[derive(Deserialize)]
struct PromptDetails {
    #[serde(default, deserialize_with = "lenient")]
    cached_tokens: Option<u64>,
}

impl WireUsage {
    /// None without prompt tokens: the usage is unknown, not zero.
    fn usage(self) -> Option<Usage> {
        let prompt = self.prompt_tokens?;
        let completion = self.completion_tokens.unwrap_or(0);
        Some(Usage {
            prompt_tokens: prompt,
            completion_tokens: completion,
            total_tokens: self.total_tokens.unwrap_or(prompt + completion),
            cached_tokens: self.prompt_tokens_details.and_then(|d| d.cached_tokens).unwrap_or(0),
        })
    }
}

/// A field that does not have the expected type (a number where text was expected, say)
/// is read as absent, as servers differ in what they send.
fn lenient<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    let v = Value::deserialize(d)?;
    Ok(serde_json::from_value(v).ok())
}

/// `text` without the key, copied only if it held it.
fn scrubbed(text: String) -> String {
    match crate::logging::scrub_cow(&text) {
        std::borrow::Cow::Borrowed(_) => text,
        std::borrow::Cow::Owned(clean) => clean,
    }
}

pub(super) fn body_snippet(body: &[u8]) -> String {
    let lossy = String::from_utf8_lossy(body);
    let t = crate::logging::scrub_cow(&lossy);
    if t.trim().is_empty() {
        "(empty body)".into()
    } else {
        snippet(&strip_tags(&t), 200)
    }
}

/// Builds a reply from SSE chunks as they arrive, echoing text to `on_delta`.
pub struct StreamAssembler<'a> {
    parser: sse::Parser,
    events: Vec<sse::Event>,
    text: String,
    finish_reason: Option<String>,
    usage: Option<Usage>,
    id: Option<String>,
    header_id: Option<String>,
    model: Option<String>,
    done: bool,
    error: Option<String>,
    on_delta: Option<OnDelta<'a>>,
}

impl<'a> StreamAssembler<'a> {
    pub fn new(headers: &HeaderMap, on_delta: Option<OnDelta<'a>>) -> Self {
        StreamAssembler {
            parser: sse::Parser::default(),
            events: Vec::new(),
            text: String::new(),
            finish_reason: None,
            usage: None,
            id: None,
            header_id: request_id(headers),
            model: None,
            done: false,
            error: None,
            on_delta,
        }
    }

    /// Feed a chunk. Returns true once the stream is over ([DONE] or an error chunk).
    pub fn feed(&mut self, chunk: &[u8]) -> bool {
        let mut events = std::mem::take(&mut self.events);
        self.parser.feed(chunk, &mut events);
        for ev in events.drain(..) {
            self.event(ev);
        }
        self.events = events;
        self.done || self.error.is_some()
    }

    fn event(&mut self, ev: sse::Event) {
        if self.done || self.error.is_some() {
            return;
        }
        let data = ev.data.trim();
        if data == "[DONE]" {
            self.done = true;
            return;
        }
        let chunk: Completion = match serde_json::from_str(data) {
            Ok(c) => c,
            // JSON that is not an object (`null`, a number) carries nothing: skipped.
            Err(_) if serde_json::from_str::<Value>(data).is_ok() => return,
            Err(_) => {
                self.error = Some(format!("malformed stream chunk: {}", snippet(data, 120)));
                return;
            }
        };
        if ev.event.as_deref() == Some("error") || chunk.error.as_ref().is_some_and(|e| !e.is_null()) {
            let v: Value = serde_json::from_str(data).unwrap_or_default();
            let msg = error_fields(&v).map(|(m, k)| match k {
                Some(k) => format!("{m} ({k})"),
                None => m,
            });
            self.error = Some(msg.unwrap_or_else(|| snippet(data, 200)));
            return;
        }
        self.id = self.id.take().or(chunk.id);
        self.model = self.model.take().or(chunk.model);
        // Keep the last non-null usage: some servers send it on every chunk.
        if let Some(u) = chunk.usage.and_then(WireUsage::usage) {
            self.usage = Some(u);
        }
        // Azure's first chunk and the include_usage chunk have `choices: []`.
        if let Some(choice) = chunk.choices.into_iter().flatten().next().and_then(|c| c.0) {
            if let Some(piece) = choice.delta.and_then(|m| m.content)
                && !piece.is_empty()
            {
                if let Some(f) = self.on_delta {
                    f(&crate::logging::scrub_cow(&piece));
                }
                self.text.push_str(&piece);
            }
            if let Some(fr) = choice.finish_reason {
                self.finish_reason = Some(fr);
            }
        }
    }

    /// The stream has ended (EOF). Without [DONE] it is cut, whatever it held.
    pub fn finish(mut self) -> Result<ChatResult, ApiError> {
        let mut events = Vec::new();
        self.parser.finish(&mut events);
        for ev in events {
            self.event(ev);
        }
        let request_id = self.header_id.clone().or(self.id.clone());
        if let Some(message) = self.error {
            return Err(ApiError::StreamError {
                message,
                partial: self.text,
                request_id,
            });
        }
        if !self.done {
            return Err(ApiError::StreamCut {
                partial: self.text,
                cause: None,
                request_id,
            });
        }
        if self.text.trim().is_empty() {
            return Err(ApiError::Empty {
                finish_reason: self.finish_reason,
                request_id,
            });
        }
        Ok(ChatResult {
            // Whole, so a key split across two pieces is caught too.
            text: scrubbed(self.text),
            finish_reason: self.finish_reason,
            usage: self.usage,
            request_id,
            model: self.model,
            retries: 0,
            rate_limited: 0,
        })
    }

    /// Text received so far, for an error raised mid-stream (e.g. an idle timeout).
    pub fn partial(&self) -> &str {
        &self.text
    }
}

/// Read a full response (status, headers, body) into a result. Used by replay and by
/// HTTP for non-streamed bodies.
pub fn interpret(
    status: u16,
    headers: &HeaderMap,
    body: &[u8],
    on_delta: Option<OnDelta<'_>>,
) -> Result<ChatResult, ApiError> {
    if !(200..300).contains(&status) {
        return Err(status_error(status, headers, body));
    }
    if is_event_stream(headers) {
        let mut a = StreamAssembler::new(headers, on_delta);
        a.feed(body);
        a.finish()
    } else {
        parse_completion(status, headers, body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn sse_headers() -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            "content-type",
            HeaderValue::from_static("text/event-stream; charset=utf-8"),
        );
        h.insert("x-request-id", HeaderValue::from_static("req_1"));
        h
    }

    fn chunk(content: &str) -> String {
        format!(
            "data: {}\n\n",
            json!({"id":"c1","model":"m","choices":[{"index":0,"delta":{"content":content},"finish_reason":null}]})
        )
    }

    #[test]
    fn stream_with_usage_and_empty_choices() {
        let body = format!(
            "data: {}\n\n{}{}data: {}\n\ndata: {}\n\ndata: [DONE]\n\n",
            json!({"id":"c1","choices":[]}),
            chunk("Hello"),
            chunk(" world"),
            json!({"id":"c1","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}),
            json!({"id":"c1","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}})
        );
        let seen = std::sync::Mutex::new(String::new());
        let cb = |s: &str| seen.lock().unwrap().push_str(s);
        let r = interpret(200, &sse_headers(), body.as_bytes(), Some(&cb)).unwrap();
        assert_eq!(r.text, "Hello world");
        assert_eq!(*seen.lock().unwrap(), "Hello world");
        assert_eq!(r.finish_reason.as_deref(), Some("stop"));
        assert_eq!(r.usage.unwrap().total_tokens, 7);
        assert_eq!(r.request_id.as_deref(), Some("req_1"));
    }

    #[test]
    fn cut_stream_is_an_error_with_partial_text() {
        let body = format!("{}{}", chunk("## 1. Rollback"), chunk(" philosophy\n\ntext"));
        match interpret(200, &sse_headers(), body.as_bytes(), None) {
            Err(ApiError::StreamCut { partial, .. }) => assert!(partial.contains("philosophy")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn error_chunk_mid_stream() {
        let body = format!(
            "{}data: {}\n\n",
            chunk("partial"),
            json!({"error":{"message":"model overloaded","type":"server_error"}})
        );
        match interpret(200, &sse_headers(), body.as_bytes(), None) {
            Err(ApiError::StreamError { message, partial, .. }) => {
                assert!(message.contains("model overloaded"));
                assert_eq!(partial, "partial");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn error_shapes() {
        let h = HeaderMap::new();
        let cases: [(&str, &str, Option<&str>); 6] = [
            (
                r#"{"error":{"message":"bad key","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}"#,
                "bad key",
                Some("invalid_request_error/invalid_api_key"),
            ),
            (
                r#"{"error":{"message":"too long","type":"BadRequestError","code":400}}"#,
                "too long",
                Some("BadRequestError/400"),
            ),
            (
                r#"{"object":"error","message":"flat vllm","type":"x","code":400}"#,
                "flat vllm",
                Some("x/400"),
            ),
            (
                r#"{"error":{"code":400,"message":"ctx","type":"exceed_context_size_error"}}"#,
                "ctx",
                Some("exceed_context_size_error/400"),
            ),
            (
                r#"{"error":{"message":"ollama","type":"api_error","code":null}}"#,
                "ollama",
                Some("api_error"),
            ),
            (
                "<html><body><h1>502 Bad Gateway</h1></body></html>",
                "502 Bad Gateway",
                None,
            ),
        ];
        for (body, msg, kind) in cases {
            match status_error(400, &h, body.as_bytes()) {
                ApiError::Status { message, kind: k, .. } => {
                    assert!(message.contains(msg), "{body} -> {message}");
                    assert_eq!(k.as_deref(), kind, "{body}");
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn odd_shapes_read_as_before() {
        // A null chunk in a stream carries nothing; a choice that is not an object is an
        // empty one (so the reply is empty, not "no choices").
        let body = format!("data: null\n\n{}data: [DONE]\n\n", chunk("text"));
        assert_eq!(
            interpret(200, &sse_headers(), body.as_bytes(), None).unwrap().text,
            "text"
        );
        let h = HeaderMap::new();
        assert!(matches!(
            parse_completion(200, &h, br#"{"choices":[7]}"#),
            Err(ApiError::Empty { .. })
        ));
        // An error that is neither an object nor a text: the body's own message.
        match parse_completion(200, &h, br#"{"error": 5, "message": "quota gone"}"#) {
            Err(ApiError::Status { message, .. }) => assert_eq!(message, "quota gone"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn broken_bodies() {
        let h = HeaderMap::new();
        assert!(matches!(
            parse_completion(200, &h, b"<html>proxy</html>"),
            Err(ApiError::BadBody { .. })
        ));
        let null = br#"{"choices":[{"message":{"role":"assistant","content":null},"finish_reason":"stop"}]}"#;
        assert!(matches!(parse_completion(200, &h, null), Err(ApiError::Empty { .. })));
        let odd = br#"{"id":"x","choices":[{"message":{"content":"text"},"finish_reason":"eos_token"}]}"#;
        let r = parse_completion(200, &h, odd).unwrap();
        assert_eq!(r.finish_reason.as_deref(), Some("eos_token"));
        assert!(r.usage.is_none());
        assert_eq!(r.request_id.as_deref(), Some("x"));
    }
}
