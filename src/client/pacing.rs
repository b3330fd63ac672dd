//! Pacing shared by every worker of a batch: a gate that a 429 closes for everyone
//! (the OpenAI cookbook's advice: pause all sending, not just the worker that was told),
//! and optional client-side limits on requests and tokens per minute.

use std::sync::Mutex;
use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;

/// Closed until a given instant after a 429; every request waits on it. When it opens,
/// the requests that waited go out spread over a short window (up to half the pause, at
/// most a second), not all in the same instant to meet the same limit again.
#[derive(Default)]
pub struct Gate {
    until: Mutex<Option<(Instant, Duration)>>,
}

impl Gate {
    pub fn pause_for(&self, d: Duration) {
        let t = Instant::now() + d;
        let mut u = self.until.lock().expect("gate lock");
        if u.is_none_or(|(cur, _)| cur < t) {
            *u = Some((t, d));
        }
    }

    pub async fn wait(&self) {
        let mut waited = None;
        loop {
            let until = *self.until.lock().expect("gate lock");
            match until {
                Some((t, pause)) if t > Instant::now() => {
                    tokio::time::sleep_until(t).await;
                    waited = Some(pause);
                }
                _ => break,
            }
        }
        if let Some(pause) = waited {
            let window = (pause / 2).min(Duration::from_secs(1));
            tokio::time::sleep(window.mul_f64(fastrand::f64())).await;
        }
    }
}

/// A token bucket refilled continuously at `per_minute / 60` per second, holding at most
/// `burst` (and at least one): the first wave is paced as the rest.
struct Bucket {
    rate_per_sec: f64,
    capacity: f64,
    tokens: f64,
    last: Instant,
}

impl Bucket {
    fn new(per_minute: u32, burst: f64) -> Bucket {
        let rate = per_minute as f64 / 60.0;
        let capacity = burst.max(1.0);
        Bucket {
            rate_per_sec: rate,
            capacity,
            tokens: capacity,
            last: Instant::now(),
        }
    }

    fn refill(&mut self, now: Instant) {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + dt * self.rate_per_sec).min(self.capacity);
        self.last = now;
    }

    /// Take `n` now, or say how long to wait. A request larger than the bucket waits for a
    /// full bucket, then takes it all (the balance goes negative and later requests wait).
    fn try_take(&mut self, n: f64, now: Instant) -> Option<Duration> {
        self.refill(now);
        let need = n.min(self.capacity);
        if self.tokens >= need {
            self.tokens -= n;
            None
        } else {
            Some(Duration::from_secs_f64((need - self.tokens) / self.rate_per_sec))
        }
    }
}

pub struct Pacer {
    rpm: Option<Mutex<Bucket>>,
    tpm: Option<Mutex<Bucket>>,
}

impl Pacer {
    pub fn new(rpm: Option<u32>, tpm: Option<u32>) -> Pacer {
        Pacer {
            // Requests one at a time, evenly (a quarter of one in hand, so a send that went
            // late does not lower the rate): a limit over any one-second window is met
            // from the first request. Tokens a second's worth, so that a reply
            // smaller than its worst case gives back what it did not use.
            rpm: rpm.filter(|&n| n > 0).map(|n| Mutex::new(Bucket::new(n, 1.25))),
            tpm: tpm
                .filter(|&n| n > 0)
                .map(|n| Mutex::new(Bucket::new(n, f64::from(n) / 60.0))),
        }
    }

    /// Wait until one request costing `tokens` may be sent.
    pub async fn acquire(&self, tokens: u64) {
        for (bucket, n) in [(&self.rpm, 1.0), (&self.tpm, tokens as f64)] {
            let Some(b) = bucket else { continue };
            loop {
                let wait = b.lock().expect("pacer lock").try_take(n, Instant::now());
                match wait {
                    None => break,
                    Some(d) => tokio::time::sleep(d).await,
                }
            }
        }
    }

    /// Correct the token budget once the real usage is known.
    pub fn settle(&self, estimated: u64, actual: u64) {
        if let Some(b) = &self.tpm {
            let mut b = b.lock().expect("pacer lock");
            b.tokens = (b.tokens + estimated as f64 - actual as f64).min(b.capacity);
        }
    }
}

/// A request's token budget as the cookbook counts it: prompt tokens (about four
/// characters each) plus the completion limit.
pub fn estimate_tokens(body: &Value, shape: &super::Shape) -> u64 {
    let chars: usize = body
        .get("messages")
        .and_then(Value::as_array)
        .map(|ms| {
            ms.iter()
                .filter_map(|m| m.get("content").and_then(Value::as_str))
                .map(str::len)
                .sum()
        })
        .unwrap_or(0);
    (chars as u64).div_ceil(4) + u64::from(shape.max_tokens.unwrap_or(1024))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn gate_holds_until_the_pause_ends() {
        let g = Gate::default();
        g.pause_for(Duration::from_secs(3));
        g.pause_for(Duration::from_secs(1)); // a shorter pause does not shorten it
        let t0 = Instant::now();
        g.wait().await;
        // Three seconds, then a spread of up to a second.
        let secs = t0.elapsed().as_secs_f64();
        assert!((3.0..=4.0).contains(&secs), "{secs}");
    }

    #[tokio::test(start_paused = true)]
    async fn rpm_spreads_requests() {
        let p = Pacer::new(Some(300), None); // five a second, from the first request on
        let t0 = Instant::now();
        for _ in 0..15 {
            p.acquire(0).await;
        }
        let secs = t0.elapsed().as_secs_f64();
        assert!((2.7..=2.9).contains(&secs), "{secs}");
    }

    #[tokio::test(start_paused = true)]
    async fn tpm_waits_for_large_requests() {
        let p = Pacer::new(None, Some(6000)); // 100/s, a bucket of 100
        let t0 = Instant::now();
        p.acquire(1000).await; // larger than the bucket: goes when it is full, owes 900
        p.acquire(50).await; // waits for the debt and its own 50
        let secs = t0.elapsed().as_secs_f64();
        assert!((9.4..=9.6).contains(&secs), "{secs}");
    }

    #[test]
    fn estimate_counts_prompt_and_limit() {
        let body = serde_json::json!({"messages":[{"role":"user","content":"x".repeat(400)}]});
        let shape = crate::client::Shape {
            model: "m".into(),
            temperature: None,
            max_tokens: Some(100),
            max_tokens_field: crate::client::MaxTokensField::MaxTokens,
        };
        assert_eq!(estimate_tokens(&body, &shape), 200);
    }
}
