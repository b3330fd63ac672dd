//! Record and replay. `--record DIR` saves every exchange as one JSON file per distinct
//! request: the request body, then each response (status, useful headers, body) in the
//! order they came, so a 503-then-200 replays as it happened. The key and the
//! Authorization header are never saved. `--replay DIR` answers from those files with no
//! network, matching on the request body (ignoring only `stream` and `stream_options`).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{ApiError, ChatResult, OnDelta, wire};
use crate::util::{self, snippet};

pub const FORMAT: u32 = 1;

/// Response headers worth keeping; everything else (cookies, tracing ids of proxies) is dropped.
fn keep_header(name: &str) -> bool {
    matches!(
        name,
        "content-type"
            | "x-request-id"
            | "apim-request-id"
            | "retry-after"
            | "retry-after-ms"
            | "x-should-retry"
            | "openai-model"
            | "openai-processing-ms"
    ) || name.starts_with("x-ratelimit-")
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Fixture {
    pub rbplan_fixture: u32,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub note: String,
    pub request: RecordedRequest,
    pub responses: Vec<RecordedResponse>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RecordedRequest {
    pub method: String,
    pub endpoint: String,
    pub body: Value,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RecordedResponse {
    pub status: u16,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// The body when it is JSON, kept readable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json: Option<Value>,
    /// Any other body (an SSE stream, an HTML error page).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

impl RecordedResponse {
    pub fn body_bytes(&self) -> Vec<u8> {
        match (&self.json, &self.text) {
            (Some(v), _) => serde_json::to_vec(v).expect("JSON value"),
            (None, Some(t)) => t.clone().into_bytes(),
            (None, None) => Vec::new(),
        }
    }

    pub fn header_map(&self) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in &self.headers {
            if let (Ok(k), Ok(v)) = (HeaderName::from_bytes(k.as_bytes()), HeaderValue::from_str(v)) {
                h.insert(k, v);
            }
        }
        h
    }
}

/// The part of a request body that identifies it: everything but the streaming switches.
pub fn match_body(body: &Value) -> Value {
    let mut b = body.clone();
    if let Some(o) = b.as_object_mut() {
        o.remove("stream");
        o.remove("stream_options");
    }
    b
}

pub fn match_key(body: &Value) -> String {
    let canonical = canonical(&match_body(body)).to_string();
    util::short_hash(&[canonical.as_bytes()])
        .trim_start_matches("sha256:")
        .to_string()
}

/// Objects with sorted keys, so the key does not depend on field order.
fn canonical(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let sorted: BTreeMap<&String, Value> = m.iter().map(|(k, v)| (k, canonical(v))).collect();
            Value::Object(sorted.into_iter().map(|(k, v)| (k.clone(), v)).collect())
        }
        Value::Array(a) => Value::Array(a.iter().map(canonical).collect()),
        other => other.clone(),
    }
}

/// Where `--record` keeps exchanges. The client calls it with every response, the key
/// already removed; writing the fixture files is the caller's (see `output::fixtures`).
pub trait Recorder: Send + Sync {
    fn record(&self, request: &Value, response: RecordedResponse) -> Result<(), String>;
}

/// What the client hands to a `Recorder`: the useful headers and the body, with every
/// trace of the key removed from both (a server may echo it), and from the request.
pub fn recorded(
    key: Option<&SecretString>,
    body: &Value,
    status: u16,
    headers: &HeaderMap,
    raw: &[u8],
) -> (Value, RecordedResponse) {
    let scrub = |text: &str| -> String {
        match key.map(|k| k.expose_secret()).filter(|k| !k.is_empty()) {
            Some(k) => util::redact_secret(text, k).into_owned(),
            None => text.to_string(),
        }
    };
    let kept: BTreeMap<String, String> = headers
        .iter()
        .filter(|(k, _)| keep_header(k.as_str()))
        .filter_map(|(k, v)| Some((k.as_str().to_string(), scrub(v.to_str().ok()?))))
        .collect();
    let text = scrub(&String::from_utf8_lossy(raw));
    let (json, text) = match serde_json::from_str::<Value>(&text) {
        Ok(v) if !raw.is_empty() => (Some(v), None),
        _ => (None, Some(text)),
    };
    let request = serde_json::from_str(&scrub(&body.to_string())).unwrap_or_else(|_| body.clone());
    (
        request,
        RecordedResponse {
            status,
            headers: kept,
            json,
            text,
        },
    )
}

struct Entry {
    file: String,
    fixture: Fixture,
    next: AtomicUsize,
}

pub struct ReplaySet {
    dir: PathBuf,
    entries: HashMap<String, Entry>,
}

impl ReplaySet {
    pub fn load(dir: &Path) -> Result<ReplaySet, ApiError> {
        // Bad input, not an API failure: `crate::run` turns this error into a usage error (exit 2).
        if !dir.is_dir() {
            return Err(ApiError::Replay(missing_dir_message(dir)));
        }
        let list = read_dir_fixtures(dir).map_err(ApiError::Replay)?;
        if list.is_empty() {
            return Err(ApiError::Replay(format!(
                "{}: no fixture files (*.json with \"rbplan_fixture\") to replay",
                dir.display()
            )));
        }
        let mut entries = HashMap::new();
        for (file, fixture) in list {
            if fixture.responses.is_empty() {
                return Err(ApiError::Replay(format!(
                    "{}: no responses recorded",
                    dir.join(&file).display()
                )));
            }
            entries.insert(
                match_key(&fixture.request.body),
                Entry {
                    file,
                    fixture,
                    next: AtomicUsize::new(0),
                },
            );
        }
        Ok(ReplaySet {
            dir: dir.to_path_buf(),
            entries,
        })
    }

    /// Distinct models the fixtures were recorded with.
    pub fn models(&self) -> Vec<String> {
        let mut m: Vec<String> = self
            .entries
            .values()
            .filter_map(|e| {
                e.fixture
                    .request
                    .body
                    .get("model")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
            .collect();
        m.sort();
        m.dedup();
        m
    }

    /// The recorded response for this request (the next one, if several were recorded).
    pub fn lookup(&self, body: &Value) -> Result<(&str, RecordedResponse), ApiError> {
        let key = match_key(body);
        let entry = self
            .entries
            .get(&key)
            .ok_or_else(|| ApiError::Replay(self.miss_message(body)))?;
        let n = entry.fixture.responses.len();
        let i = entry.next.fetch_add(1, Ordering::SeqCst).min(n - 1);
        Ok((&entry.file, entry.fixture.responses[i].clone()))
    }

    pub async fn exchange(&self, body: &Value, on_delta: Option<OnDelta<'_>>) -> Result<ChatResult, ApiError> {
        let (file, resp) = self.lookup(body)?;
        tracing::debug!(fixture = file, status = resp.status, "replaying");
        wire::interpret(resp.status, &resp.header_map(), &resp.body_bytes(), on_delta)
    }

    /// Says what was asked and how the nearest fixture differs.
    fn miss_message(&self, body: &Value) -> String {
        let asked = describe_request(body);
        let nearest = self
            .entries
            .values()
            .map(|e| {
                (
                    differences(&match_body(&e.fixture.request.body), &match_body(body)),
                    &e.file,
                )
            })
            .min_by_key(|(d, f)| (d.len(), (*f).clone()));
        let mut msg = format!("no fixture in {} answers this request: {asked}", self.dir.display());
        if let Some((diffs, file)) = nearest {
            msg.push_str(&format!("\n  nearest fixture {file} differs in:"));
            for d in diffs.iter().take(4) {
                msg.push_str(&format!("\n    - {d}"));
            }
        }
        msg.push_str("\n  (record one with --record DIR against a live server)");
        msg
    }
}

/// A `--replay` folder that is not there (or is a file). The fixtures/ folders of the
/// README's examples exist only in rbplan's source checkout, not after `cargo install`.
fn missing_dir_message(dir: &Path) -> String {
    let what = if dir.exists() {
        "is not a folder"
    } else {
        "no such folder"
    };
    format!(
        "--replay {}: {what}; give a folder of recorded fixtures (the fixtures/ examples are in rbplan's source checkout)",
        dir.display()
    )
}

fn describe_request(body: &Value) -> String {
    let model = body.get("model").and_then(Value::as_str).unwrap_or("?");
    let msgs = body
        .get("messages")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let last = msgs
        .iter()
        .rev()
        .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
        .and_then(|m| m.get("content").and_then(Value::as_str))
        .unwrap_or("");
    format!(
        "model {model:?}, {} messages, last user message {:?}",
        msgs.len(),
        snippet(last, 100)
    )
}

/// Field-level differences between a recorded request body and the one asked.
fn differences(recorded: &Value, asked: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let empty = serde_json::Map::new();
    let r = recorded.as_object().unwrap_or(&empty);
    let a = asked.as_object().unwrap_or(&empty);
    let mut keys: Vec<&String> = r.keys().chain(a.keys()).collect();
    keys.sort();
    keys.dedup();
    for k in keys {
        match (r.get(k), a.get(k)) {
            (x, y) if x == y => {}
            (Some(Value::Array(x)), Some(Value::Array(y))) if k == "messages" => {
                if x.len() != y.len() {
                    out.push(format!("messages: {} recorded, {} asked", x.len(), y.len()));
                }
                if let Some(i) = (0..x.len().min(y.len())).find(|&i| x[i] != y[i]) {
                    out.push(format!("messages[{i}]: {}", message_difference(&x[i], &y[i])));
                }
            }
            (x, y) => out.push(format!(
                "{k}: recorded {}, asked {}",
                x.map(|v| snippet(&v.to_string(), 40)).unwrap_or("nothing".into()),
                y.map(|v| snippet(&v.to_string(), 40)).unwrap_or("nothing".into())
            )),
        }
    }
    out
}

/// How one recorded message differs from the one asked: its role, else its text at the
/// first character that differs (prompts often share their first few hundred characters).
fn message_difference(recorded: &Value, asked: &Value) -> String {
    let field = |m: &Value, k: &str| m.get(k).and_then(Value::as_str).map(str::to_string);
    let (rr, ar) = (field(recorded, "role"), field(asked, "role"));
    if rr != ar {
        return format!(
            "role: recorded {}, asked {}",
            rr.map(|r| format!("{r:?}")).unwrap_or("nothing".into()),
            ar.map(|r| format!("{r:?}")).unwrap_or("nothing".into())
        );
    }
    match (field(recorded, "content"), field(asked, "content")) {
        (Some(r), Some(a)) if r != a => first_difference(&r, &a),
        // Same text: some other field of the message differs.
        _ => format!(
            "recorded {}, asked {}",
            snippet(&recorded.to_string(), 60),
            snippet(&asked.to_string(), 60)
        ),
    }
}

/// Characters shown on each side of the first difference.
const CONTEXT: usize = 30;

/// The character offset where two texts first differ, and the text around it in each.
fn first_difference(recorded: &str, asked: &str) -> String {
    let r: Vec<char> = recorded.chars().collect();
    let a: Vec<char> = asked.chars().collect();
    let at = r.iter().zip(&a).take_while(|(x, y)| x == y).count();
    let around = |v: &[char]| {
        let start = at.saturating_sub(CONTEXT);
        let end = (at + CONTEXT).min(v.len());
        let text: String = v[start..end].iter().collect();
        format!(
            "{}{text:?}{}",
            if start > 0 { "…" } else { "" },
            if end < v.len() { "…" } else { " (end)" }
        )
    };
    format!(
        "differs at character {at}: recorded {}, asked {}",
        around(&r),
        around(&a)
    )
}

/// Every fixture file in `dir`, sorted by name. Other JSON files are an error, naming the line.
pub fn read_dir_fixtures(dir: &Path) -> Result<Vec<(String, Fixture)>, String> {
    let rd = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut names: Vec<String> = rd
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json") && !n.starts_with('.'))
        .collect();
    names.sort();
    let mut out = Vec::new();
    for name in names {
        let path = dir.join(&name);
        let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let f: Fixture = serde_json::from_str(&text)
            .map_err(|e| format!("{}:{}: not an rbplan fixture: {e}", path.display(), e.line()))?;
        out.push((name, f));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn key_ignores_stream_switches_and_field_order() {
        let a = json!({"model":"m","messages":[{"role":"user","content":"x"}],"stream":true,"stream_options":{"include_usage":true}});
        let b = json!({"messages":[{"content":"x","role":"user"}],"model":"m"});
        assert_eq!(match_key(&a), match_key(&b));
        let c = json!({"messages":[{"content":"y","role":"user"}],"model":"m"});
        assert_ne!(match_key(&a), match_key(&c));
    }

    #[test]
    fn a_miss_says_what_was_asked_and_what_differs() {
        let dir = tempfile::tempdir().unwrap();
        let body = json!({"model":"m","messages":[{"role":"user","content":"orders db"}]});
        let f = Fixture {
            rbplan_fixture: FORMAT,
            note: String::new(),
            request: RecordedRequest {
                method: "POST".into(),
                endpoint: "chat/completions".into(),
                body,
            },
            responses: vec![RecordedResponse {
                status: 200,
                headers: BTreeMap::new(),
                json: Some(json!({})),
                text: None,
            }],
        };
        std::fs::write(dir.path().join("001.json"), serde_json::to_string(&f).unwrap()).unwrap();
        let replay = ReplaySet::load(dir.path()).unwrap();
        let asked = json!({"model":"other","messages":[{"role":"user","content":"billing db"}]});
        let msg = replay.lookup(&asked).unwrap_err().to_string();
        assert!(msg.contains("model \"other\""), "{msg}");
        assert!(msg.contains("billing db"), "{msg}");
        assert!(msg.contains("model: recorded \"m\", asked \"other\""), "{msg}");
        assert!(msg.contains("messages[0]"), "{msg}");
    }

    #[test]
    fn a_miss_shows_the_text_where_the_messages_first_differ() {
        let shared = "## Input **Migration:** Move the orders service's primary database ".repeat(3);
        let recorded = json!({"role": "user", "content": format!("{shared}to Postgres 15 in May")});
        let asked = json!({"role": "user", "content": format!("{shared}to Postgres 16 in May")});
        let d = message_difference(&recorded, &asked);
        let at = shared.chars().count() + "to Postgres 1".len();
        assert!(d.starts_with(&format!("differs at character {at}: ")), "{d}");
        assert!(
            d.contains("recorded …\"primary database to Postgres 15 in May\" (end)"),
            "{d}"
        );
        assert!(
            d.contains("asked …\"primary database to Postgres 16 in May\" (end)"),
            "{d}"
        );

        // One text a prefix of the other: the shorter one ends there.
        let d = first_difference("abc", "abcdef");
        assert_eq!(
            d,
            "differs at character 3: recorded \"abc\" (end), asked \"abcdef\" (end)"
        );

        let system = json!({"role": "system", "content": "x"});
        assert_eq!(
            message_difference(&system, &asked),
            "role: recorded \"system\", asked \"user\""
        );
    }

    #[test]
    fn malformed_fixture_names_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("bad.json"), "{\n  \"rbplan_fixture\": 1,\n  oops\n}").unwrap();
        let e = ReplaySet::load(dir.path()).err().unwrap().to_string();
        assert!(e.contains("bad.json:3"), "{e}");
    }
}
