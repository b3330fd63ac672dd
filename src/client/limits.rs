//! Rate limits as pacing, not failure: the server's own `x-ratelimit-*` headers (OpenAI,
//! Azure OpenAI) read before it says no, an in-flight limit that a 429 halves and a
//! stretch of successes raises (AIMD), and how long the run has gone without a success.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::header::HeaderMap;
use tokio::sync::Notify;
use tokio::time::Instant;

/// What one response said about the limits. Any field may be missing.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RateHeaders {
    pub limit_requests: Option<f64>,
    pub remaining_requests: Option<f64>,
    pub reset_requests: Option<Duration>,
    pub limit_tokens: Option<f64>,
    pub remaining_tokens: Option<f64>,
    pub reset_tokens: Option<Duration>,
}

impl RateHeaders {
    /// The `x-ratelimit-*` headers of a response; None when it has none. A value that does
    /// not parse is left out with a debug line, never an error.
    pub fn parse(h: &HeaderMap) -> Option<RateHeaders> {
        let get = |name: &str| h.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
        let num = |name: &str| {
            let v = get(name)?;
            let n = v.parse::<f64>().ok().filter(|n| n.is_finite() && *n >= 0.0);
            if n.is_none() {
                tracing::debug!(
                    header = name,
                    value = v,
                    "ignoring a rate-limit header that is not a number"
                );
            }
            n
        };
        let reset = |name: &str| {
            let v = get(name)?;
            let d = parse_reset(v);
            if d.is_none() {
                tracing::debug!(
                    header = name,
                    value = v,
                    "ignoring a rate-limit reset that is not a duration"
                );
            }
            d
        };
        let r = RateHeaders {
            limit_requests: num("x-ratelimit-limit-requests"),
            remaining_requests: num("x-ratelimit-remaining-requests"),
            reset_requests: reset("x-ratelimit-reset-requests"),
            limit_tokens: num("x-ratelimit-limit-tokens"),
            remaining_tokens: num("x-ratelimit-remaining-tokens"),
            reset_tokens: reset("x-ratelimit-reset-tokens"),
        };
        (r != RateHeaders::default()).then_some(r)
    }

    /// For a 429 with no Retry-After: the reset of the limit that ran out (the longer one
    /// when both did or neither says).
    pub fn reset_hint(&self) -> Option<Duration> {
        let out = |rem: Option<f64>| rem.is_some_and(|r| r < 1.0);
        match (out(self.remaining_requests), out(self.remaining_tokens)) {
            (true, false) => self.reset_requests,
            (false, true) => self.reset_tokens,
            _ => self.reset_requests.max(self.reset_tokens),
        }
    }
}

/// OpenAI's reset durations: "1s", "6m0s", "20ms", "1h2m3.5s"; a bare number is seconds.
pub fn parse_reset(s: &str) -> Option<Duration> {
    if s.is_empty() {
        return None;
    }
    if let Ok(secs) = s.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs));
    }
    let (mut total, mut num, mut rest) = (0.0f64, String::new(), s);
    while let Some(c) = rest.chars().next() {
        if c.is_ascii_digit() || c == '.' {
            num.push(c);
            rest = &rest[1..];
            continue;
        }
        let (unit, len) = match () {
            _ if rest.starts_with("ms") => (0.001, 2),
            _ if rest.starts_with('h') => (3600.0, 1),
            _ if rest.starts_with('m') => (60.0, 1),
            _ if rest.starts_with('s') => (1.0, 1),
            _ => return None,
        };
        total += num.parse::<f64>().ok()? * unit;
        num.clear();
        rest = &rest[len..];
    }
    (num.is_empty() && total.is_finite()).then(|| Duration::from_secs_f64(total))
}

/// The latest limits the server announced, and what was sent since, shared by every clone:
/// a request waits when the server's budget, less what went out after it said so, cannot
/// take it yet.
#[derive(Default)]
pub struct ServerLimits {
    state: Mutex<Option<Seen>>,
}

struct Seen {
    headers: RateHeaders,
    at: Instant,
    /// Requests and tokens sent since these headers came.
    sent_requests: f64,
    sent_tokens: f64,
}

impl ServerLimits {
    pub fn observe(&self, h: &HeaderMap) {
        if let Some(headers) = RateHeaders::parse(h) {
            *self.state.lock().expect("limits lock") = Some(Seen {
                headers,
                at: Instant::now(),
                sent_requests: 0.0,
                sent_tokens: 0.0,
            });
        }
    }

    /// The last headers seen, for a 429 that carried no wait hint.
    pub fn latest(&self) -> Option<RateHeaders> {
        self.state.lock().expect("limits lock").as_ref().map(|s| s.headers)
    }

    /// After a 429 with no wait hint: how long until a request of `tokens` fits the budget
    /// the server announced, at the rate it refills (not until it is full again).
    pub fn time_to_fit(&self, tokens: u64) -> Option<Duration> {
        let guard = self.state.lock().expect("limits lock");
        let s = guard.as_ref()?;
        let (h, elapsed) = (s.headers, s.at.elapsed());
        [
            shortfall(h.remaining_requests, h.limit_requests, h.reset_requests, 1.0, elapsed),
            shortfall(
                h.remaining_tokens,
                h.limit_tokens,
                h.reset_tokens,
                tokens as f64,
                elapsed,
            ),
        ]
        .into_iter()
        .flatten()
        .max()
    }

    /// How long a request of `tokens` must wait for the server's budget, if at all; when
    /// it may go now, it is counted as sent.
    pub fn wait_for(&self, tokens: u64) -> Option<Duration> {
        let mut guard = self.state.lock().expect("limits lock");
        let s = guard.as_mut()?;
        let elapsed = s.at.elapsed();
        let h = s.headers;
        let wait = [
            shortfall(
                h.remaining_requests,
                h.limit_requests,
                h.reset_requests,
                s.sent_requests + 1.0,
                elapsed,
            ),
            shortfall(
                h.remaining_tokens,
                h.limit_tokens,
                h.reset_tokens,
                s.sent_tokens + tokens as f64,
                elapsed,
            ),
        ]
        .into_iter()
        .flatten()
        .max();
        if wait.is_none() {
            s.sent_requests += 1.0;
            s.sent_tokens += tokens as f64;
        }
        wait
    }
}

/// How long until `need` fits in a budget that had `remaining` of `limit` left `elapsed`
/// ago and refills evenly to full over `reset`. None when it fits now or nothing is known.
fn shortfall(
    remaining: Option<f64>,
    limit: Option<f64>,
    reset: Option<Duration>,
    need: f64,
    elapsed: Duration,
) -> Option<Duration> {
    let remaining = remaining?;
    let reset = reset.unwrap_or(Duration::from_secs(1)).as_secs_f64().max(0.001);
    let used = limit.map_or(need, |l| (l - remaining).max(need));
    let rate = used / reset;
    let have = (remaining + rate * elapsed.as_secs_f64()).min(limit.unwrap_or(f64::MAX));
    (have < need).then(|| Duration::from_secs_f64(((need - have) / rate).min(reset)))
}

/// The run's in-flight limit: halved by a rate limit (once per cool-down, so a burst of
/// 429s from one wave counts once), raised by one after as many successes as the limit,
/// never above the `-j` it started at.
pub struct Aimd {
    max: usize,
    state: Mutex<AimdState>,
    notify: Notify,
}

struct AimdState {
    limit: usize,
    in_flight: usize,
    streak: usize,
    last_cut: Option<Instant>,
    peak_in_flight: usize,
}

/// Between two cuts of the in-flight limit.
const COOL_DOWN: Duration = Duration::from_secs(1);

impl Aimd {
    pub fn new(max: usize) -> Arc<Aimd> {
        let max = max.max(1);
        Arc::new(Aimd {
            max,
            state: Mutex::new(AimdState {
                limit: max,
                in_flight: 0,
                streak: 0,
                last_cut: None,
                peak_in_flight: 0,
            }),
            notify: Notify::new(),
        })
    }

    /// Wait for a slot under the current limit.
    pub async fn acquire(self: &Arc<Self>) -> Slot {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut s = self.state.lock().expect("aimd lock");
                if s.in_flight < s.limit {
                    s.in_flight += 1;
                    s.peak_in_flight = s.peak_in_flight.max(s.in_flight);
                    return Slot(self.clone());
                }
            }
            notified.await;
        }
    }

    pub fn rate_limited(&self) {
        let mut s = self.state.lock().expect("aimd lock");
        if s.last_cut.is_some_and(|t| t.elapsed() < COOL_DOWN) {
            return;
        }
        s.limit = (s.limit / 2).max(1);
        s.streak = 0;
        s.last_cut = Some(Instant::now());
        tracing::info!(in_flight_limit = s.limit, "rate limited: fewer requests in flight");
    }

    pub fn succeeded(&self) {
        let mut s = self.state.lock().expect("aimd lock");
        s.streak += 1;
        if s.streak >= s.limit && s.limit < self.max {
            s.limit += 1;
            s.streak = 0;
            drop(s);
            self.notify.notify_one();
        }
    }

    /// The in-flight limit now, and the most requests that were ever in flight at once.
    pub fn now_and_peak(&self) -> (usize, usize) {
        let s = self.state.lock().expect("aimd lock");
        (s.limit, s.peak_in_flight)
    }
}

/// One request's place under the in-flight limit; freed when dropped.
pub struct Slot(Arc<Aimd>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.state.lock().expect("aimd lock").in_flight -= 1;
        self.0.notify.notify_one();
    }
}

/// When the run last had a success; a run that only meets rate limits for longer than
/// the patience stops (cleanly, resumable) instead of trying forever.
pub struct Progress {
    last: Mutex<Instant>,
    pub patience: Duration,
}

impl Progress {
    pub fn new(patience: Duration) -> Progress {
        Progress {
            last: Mutex::new(Instant::now()),
            patience,
        }
    }

    pub fn succeeded(&self) {
        *self.last.lock().expect("progress lock") = Instant::now();
    }

    /// How long since the last success, when it is past the patience.
    pub fn stalled(&self) -> Option<Duration> {
        let since = self.last.lock().expect("progress lock").elapsed();
        (since > self.patience).then_some(since)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::testing::headers;

    #[test]
    fn openai_reset_durations() {
        let ms = Duration::from_millis;
        assert_eq!(parse_reset("1s"), Some(ms(1000)));
        assert_eq!(parse_reset("6m0s"), Some(ms(360_000)));
        assert_eq!(parse_reset("20ms"), Some(ms(20)));
        assert_eq!(parse_reset("1h2m3.5s"), Some(ms(3_723_500)));
        assert_eq!(parse_reset("0.25"), Some(ms(250)));
        for bad in ["", "soon", "1x", "5m3", "-1s"] {
            assert_eq!(parse_reset(bad), None, "{bad}");
        }
    }

    #[test]
    fn headers_parse_and_bad_values_are_left_out() {
        let h = headers(&[
            ("x-ratelimit-limit-tokens", "40000"),
            ("x-ratelimit-remaining-tokens", "0"),
            ("x-ratelimit-reset-tokens", "6s"),
            ("x-ratelimit-remaining-requests", "lots"),
            ("x-ratelimit-reset-requests", "later"),
        ]);
        let r = RateHeaders::parse(&h).unwrap();
        assert_eq!(r.limit_tokens, Some(40000.0));
        assert_eq!(r.remaining_requests, None);
        assert_eq!(r.reset_hint(), Some(Duration::from_secs(6)));
        assert!(RateHeaders::parse(&headers(&[("content-type", "x")])).is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_waits_for_the_announced_budget_to_refill() {
        let l = ServerLimits::default();
        assert_eq!(l.wait_for(100), None, "nothing known");
        // 1,000 of 60,000 tokens left, full again in 59 s: 1,000 tokens a second.
        l.observe(&headers(&[
            ("x-ratelimit-limit-tokens", "60000"),
            ("x-ratelimit-remaining-tokens", "1000"),
            ("x-ratelimit-reset-tokens", "59s"),
        ]));
        assert_eq!(l.wait_for(600), None);
        let w = l.wait_for(600).unwrap();
        assert!((w.as_secs_f64() - 0.2).abs() < 0.01, "{w:?}");
        tokio::time::advance(w).await;
        assert_eq!(l.wait_for(600), None);
    }

    #[tokio::test]
    async fn a_rate_limit_halves_in_flight_and_successes_raise_it() {
        let a = Aimd::new(8);
        let slots: Vec<Slot> = futures_slots(&a, 8).await;
        a.rate_limited();
        a.rate_limited(); // the same wave: counted once
        assert_eq!(a.now_and_peak(), (4, 8));
        drop(slots);
        for _ in 0..4 {
            a.succeeded();
        }
        assert_eq!(a.now_and_peak().0, 5);
    }

    async fn futures_slots(a: &Arc<Aimd>, n: usize) -> Vec<Slot> {
        let mut v = Vec::new();
        for _ in 0..n {
            v.push(a.acquire().await);
        }
        v
    }
}
