//! The request rate a server allows, learned from its first 429 when it announces no
//! `x-ratelimit-*` figures (promptfoo's adaptive concurrency, by rate): the requests it
//! accepted in the second before that 429 are what it takes per second. Once that second
//! has passed, requests go out evenly under that rate for the rest of the run; a 429 met
//! under it lowers it. No 429, no pacing.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// The span a 429 is read over: limits are announced per minute, enforced per second.
const WINDOW: Duration = Duration::from_secs(1);
/// Room under the learned rate for the jitter between sending and the server's clock, and
/// for `CATCH_UP`.
const MARGIN: f64 = 1.1;
/// A send that went late lets the next go this much of an interval sooner: a busy thread
/// does not lower the rate, and any window still holds no more than the rate allows.
const CATCH_UP: f64 = 0.25;
/// How much a 429 met under the learned rate lowers it.
const LOWER: f64 = 1.25;

#[derive(Default)]
pub struct Learned {
    s: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// When each attempt of the last `WINDOW` went out.
    sent: VecDeque<Instant>,
    /// When each attempt answered 429 went out.
    limited: VecDeque<Instant>,
    /// A 429 to learn from, by when it was sent: read at the next send, once the wave it
    /// belonged to has been answered.
    pending: Option<Instant>,
    /// The time between two sends, once learned.
    interval: Option<Duration>,
    learned_at: Option<Instant>,
    next: Option<Instant>,
}

impl Learned {
    /// Wait for this attempt's turn under the learned rate (none until a 429); returns
    /// when it was sent, for `rate_limited`.
    pub async fn acquire(&self) -> Instant {
        loop {
            let wait = {
                let mut s = self.s.lock().expect("learned lock");
                let now = Instant::now();
                s.learn(now);
                match (s.interval, s.next) {
                    (Some(_), Some(t)) if t > now => t - now,
                    _ => {
                        s.next = s.interval.map(|i| {
                            let soonest = now.checked_sub(i.mul_f64(CATCH_UP)).unwrap_or(now);
                            let on_time = s.next.unwrap_or(now).max(soonest);
                            on_time + i
                        });
                        s.sent.push_back(now);
                        while s.sent.front().is_some_and(|t| now - *t > WINDOW * 2) {
                            s.sent.pop_front();
                        }
                        return now;
                    }
                }
            };
            tokio::time::sleep(wait).await;
        }
    }

    /// The attempt sent at `sent` was answered 429 with no `x-ratelimit-*` figures.
    pub fn rate_limited(&self, sent: Instant) {
        let mut s = self.s.lock().expect("learned lock");
        s.limited.push_back(sent);
        while s.limited.front().is_some_and(|t| sent - *t > WINDOW * 2) {
            s.limited.pop_front();
        }
        match (s.interval, s.learned_at) {
            (None, _) => s.pending = Some(s.pending.map_or(sent, |p| p.min(sent))),
            // Sent under the learned rate and still refused: the limit is lower.
            (Some(i), Some(at)) if sent > at && s.pending.is_none() => {
                s.interval = Some(i.mul_f64(LOWER));
                s.learned_at = Some(sent);
                tracing::info!(
                    per_sec = 1.0 / (i.as_secs_f64() * LOWER),
                    "rate limited under the learned rate: lowering it"
                );
            }
            _ => {}
        }
    }

    /// The learned rate, in requests per second.
    #[cfg(test)]
    pub fn per_sec(&self) -> Option<f64> {
        self.s
            .lock()
            .expect("learned lock")
            .interval
            .map(|i| 1.0 / i.as_secs_f64())
    }
}

impl State {
    /// Read a pending 429: the attempts sent from a `WINDOW` before it until now (its wave,
    /// in whatever order the server received them), less those refused.
    fn learn(&mut self, now: Instant) {
        let Some(at) = self.pending.take() else { return };
        let from = at.checked_sub(WINDOW).unwrap_or(at);
        let in_window = |t: &&Instant| **t > from && **t <= now;
        let sent = self.sent.iter().filter(in_window).count();
        let refused = self.limited.iter().filter(in_window).count();
        let accepted = sent.saturating_sub(refused).max(1) as f64;
        let interval = WINDOW.div_f64(accepted).mul_f64(MARGIN);
        self.interval = Some(interval);
        self.learned_at = Some(now);
        // What the server accepted counts until its window has passed, the wave's last
        // send included (with the margin: a wave of new connections arrives late).
        let last = self.sent.iter().filter(in_window).max().copied().unwrap_or(at);
        self.next = Some(last + WINDOW.mul_f64(MARGIN));
        tracing::info!(
            per_sec = accepted / MARGIN,
            "learned the server's request rate from a 429"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn nothing_is_paced_until_a_429() {
        let l = Learned::default();
        let t0 = Instant::now();
        for _ in 0..50 {
            l.acquire().await;
        }
        assert_eq!(t0.elapsed(), Duration::ZERO);
        assert_eq!(l.per_sec(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_wave_of_429s_teaches_the_rate_once() {
        let l = Learned::default();
        // A wave of 8: the server took 3, refused 5.
        let sent: Vec<Instant> = futures_sent(&l, 8).await;
        for t in &sent[3..] {
            l.rate_limited(*t);
        }
        tokio::time::advance(Duration::from_millis(200)).await;
        let t0 = Instant::now();
        for _ in 0..7 {
            l.acquire().await;
        }
        // Three a second, less the margin: the first once the wave's second has passed,
        // the seventh six intervals after it.
        let per = l.per_sec().unwrap();
        assert!((2.6..2.8).contains(&per), "{per}");
        let secs = t0.elapsed().as_secs_f64();
        assert!((3.05..3.15).contains(&secs), "{secs}");
        // A 429 under the learned rate lowers it.
        let t = l.acquire().await;
        l.rate_limited(t);
        assert!(l.per_sec().unwrap() < per * 0.85);
    }

    async fn futures_sent(l: &Learned, n: usize) -> Vec<Instant> {
        let mut v = Vec::new();
        for _ in 0..n {
            v.push(l.acquire().await);
        }
        v
    }
}
