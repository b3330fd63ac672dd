//! Servers that enforce rate limits the way providers do, for the fault tests and the
//! rate-limit bench: a requests-per-window limit answered with 429 + Retry-After (as
//! OpenAI answers a Tier-1 key), and a tokens-per-minute bucket announced only through
//! `x-ratelimit-*` headers, with 429s that carry no hint (as some gateways do).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::server::{Reply, Request, Server};

/// What the server saw: each request's arrival and whether it was answered 429.
#[derive(Default)]
pub struct Stats {
    arrivals: Mutex<Vec<(Instant, bool)>>,
}

impl Stats {
    fn note(&self, limited: bool) {
        self.arrivals.lock().unwrap().push((Instant::now(), limited));
    }

    pub fn accepted(&self) -> usize {
        self.arrivals.lock().unwrap().iter().filter(|(_, l)| !l).count()
    }

    pub fn limited(&self) -> usize {
        self.arrivals.lock().unwrap().iter().filter(|(_, l)| *l).count()
    }

    /// The most accepted requests in flight at once: each takes `latency` to answer.
    pub fn peak_in_flight(&self, latency: Duration) -> usize {
        let a = self.arrivals.lock().unwrap();
        let times: Vec<Instant> = a.iter().filter(|(_, l)| !l).map(|(t, _)| *t).collect();
        times
            .iter()
            .map(|&t| {
                times
                    .iter()
                    .filter(|&&u| u <= t && t.duration_since(u) < latency)
                    .count()
            })
            .max()
            .unwrap_or(0)
    }
}

/// A chat completion whose content is `text`, with usage: the prompt and the reply at
/// about four characters a token, the reply counted at most at `max_tokens`.
pub fn completion(req: &Request, text: &str) -> Value {
    let v = req.json();
    let model = v["model"].as_str().unwrap_or("m").to_string();
    let prompt = (prompt_chars(&v) / 4) as u64;
    let out = ((text.len() / 4) as u64).min(v["max_tokens"].as_u64().unwrap_or(u64::MAX));
    json!({
        "id": "chatcmpl-limited", "object": "chat.completion", "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": prompt, "completion_tokens": out, "total_tokens": prompt + out},
    })
}

fn prompt_chars(v: &Value) -> usize {
    v["messages"]
        .as_array()
        .map(|m| m.iter().map(|m| m["content"].as_str().unwrap_or("").len()).sum())
        .unwrap_or(0)
}

/// At most `limit` requests per rolling `window`; past it, at once, 429 with
/// `Retry-After: 1` and `retry-after-ms` of about 200. Accepted requests take `latency`.
pub fn rpm_server(limit: usize, window: Duration, latency: Duration, text: String) -> (Server, Arc<Stats>) {
    let stats = Arc::new(Stats::default());
    let seen = stats.clone();
    let recent: Mutex<VecDeque<Instant>> = Mutex::new(VecDeque::new());
    let server = Server::start_with(
        move |req, _| {
            let now = Instant::now();
            let mut r = recent.lock().unwrap();
            while r.front().is_some_and(|t| now.duration_since(*t) >= window) {
                r.pop_front();
            }
            if r.len() >= limit {
                seen.note(true);
                let ms = 150 + fastrand::u64(0..100);
                let body = json!({"error": {"message": "Rate limit reached for requests", "type": "requests", "code": "rate_limit_exceeded"}});
                return Reply::json(429, &body)
                    .with_header("retry-after", "1")
                    .with_header("retry-after-ms", &ms.to_string());
            }
            r.push_back(now);
            seen.note(false);
            Reply::After(latency, Box::new(Reply::json(200, &completion(req, &text))))
        },
        true,
    );
    (server, stats)
}

/// A request's cost as OpenAI counts it against a token limit: its prompt (about four
/// characters a token) plus its `max_tokens`.
fn cost(req: &Request) -> f64 {
    let v = req.json();
    (prompt_chars(&v) / 4) as f64 + v["max_tokens"].as_f64().unwrap_or(0.0)
}

/// A token bucket of `capacity` refilled at `per_sec`. Every response says the limit, what
/// remains and when it is full again (`x-ratelimit-*-tokens`); a request that does not
/// fit gets, at once, a 429 with no Retry-After.
pub fn tpm_server(capacity: f64, per_sec: f64, latency: Duration, text: String) -> (Server, Arc<Stats>) {
    let stats = Arc::new(Stats::default());
    let seen = stats.clone();
    let bucket = Mutex::new((capacity, Instant::now()));
    let server = Server::start_with(
        move |req, _| {
            let need = cost(req);
            let mut b = bucket.lock().unwrap();
            let now = Instant::now();
            b.0 = (b.0 + now.duration_since(b.1).as_secs_f64() * per_sec).min(capacity);
            b.1 = now;
            let fits = b.0 >= need;
            if fits {
                b.0 -= need;
            }
            let remaining = b.0.max(0.0);
            let reset = format!("{:.3}s", (capacity - remaining) / per_sec);
            let with_limits = |r: Reply| {
                r.with_header("x-ratelimit-limit-tokens", &format!("{capacity:.0}"))
                    .with_header("x-ratelimit-remaining-tokens", &format!("{remaining:.0}"))
                    .with_header("x-ratelimit-reset-tokens", &reset)
            };
            seen.note(!fits);
            if !fits {
                let body = json!({"error": {"message": "Rate limit reached for tokens per min", "type": "tokens", "code": "rate_limit_exceeded"}});
                return with_limits(Reply::json(429, &body));
            }
            Reply::After(
                latency,
                Box::new(with_limits(Reply::json(200, &completion(req, &text)))),
            )
        },
        true,
    );
    (server, stats)
}
