//! When to retry and how long to wait, as the OpenAI SDKs do:
//! connection errors, timeouts, 408, 409, 429 and 5xx are retried; other 4xx and
//! quota-exhausted 429s are not; `x-should-retry` overrides both. Server hints win over
//! backoff: `retry-after-ms`, then `retry-after` in seconds, then as an HTTP-date.

use std::time::{Duration, SystemTime};

use reqwest::header::HeaderMap;

use super::ApiError;

/// The longest server hint rbplan honours; a longer one means give up and say so.
pub const MAX_HINT: Duration = Duration::from_secs(120);
const BASE: Duration = Duration::from_millis(500);
const CAP: Duration = Duration::from_secs(8);

#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    Retry(Duration),
    GiveUp,
}

pub fn decide(err: &ApiError, attempt: u32, max_retries: u32) -> Decision {
    if attempt >= max_retries || !retryable(err) {
        return Decision::GiveUp;
    }
    match hint(err) {
        Some(h) if h > MAX_HINT => Decision::GiveUp,
        Some(h) => Decision::Retry(h),
        None => Decision::Retry(backoff(attempt, fastrand::f64())),
    }
}

pub fn retryable(err: &ApiError) -> bool {
    match err {
        ApiError::Status {
            status, should_retry, ..
        } => {
            if let Some(b) = should_retry {
                return *b;
            }
            if err.is_quota() {
                return false;
            }
            matches!(status, 408 | 409 | 429) || *status >= 500
        }
        ApiError::Connect { .. }
        | ApiError::Timeout { .. }
        | ApiError::Transport(_)
        | ApiError::StreamCut { .. }
        | ApiError::StreamError { .. }
        | ApiError::BadBody { .. }
        | ApiError::Empty { .. } => true,
        _ => false,
    }
}

/// A retryable error whose server hint is longer than rbplan will wait.
pub fn hint_too_long(err: &ApiError) -> Option<Duration> {
    hint(err).filter(|h| *h > MAX_HINT && retryable(err))
}

fn hint(err: &ApiError) -> Option<Duration> {
    match err {
        ApiError::Status { retry_after, .. } => *retry_after,
        _ => None,
    }
}

/// `min(0.5 s · 2^attempt, 8 s)` less up to 25% jitter (`jitter` in [0, 1)).
pub fn backoff(attempt: u32, jitter: f64) -> Duration {
    let base = BASE.saturating_mul(2u32.saturating_pow(attempt.min(16))).min(CAP);
    base.mul_f64(1.0 - 0.25 * jitter.clamp(0.0, 1.0))
}

/// The wait after a rate limit that came with no hint: doubling from 0.5 s up to 30 s,
/// with full jitter (`jitter` in [0, 1) picks a point in the upper half), so that waiting
/// requests do not all come back at once.
pub fn rate_limit_backoff(n: u32, jitter: f64) -> Duration {
    let base = BASE
        .saturating_mul(2u32.saturating_pow(n.min(16)))
        .min(Duration::from_secs(30));
    base.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0))
}

/// The server's wait hint, if any. A negative or unparseable value is ignored.
pub fn parse_hint(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    if let Some(ms) = get("retry-after-ms").and_then(|v| v.parse::<f64>().ok())
        && ms.is_finite()
        && ms >= 0.0
    {
        return Some(Duration::from_secs_f64(ms / 1000.0));
    }
    let ra = get("retry-after")?;
    if let Ok(secs) = ra.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs));
    }
    let when = httpdate::parse_http_date(ra).ok()?;
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Parse `x-should-retry: true|false`.
pub fn parse_should_retry(headers: &HeaderMap) -> Option<bool> {
    match headers.get("x-should-retry")?.to_str().ok()?.trim() {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::testing::headers;

    fn status(code: u16, kind: Option<&str>, retry_after: Option<Duration>, should: Option<bool>) -> ApiError {
        ApiError::Status {
            status: code,
            message: "m".into(),
            kind: kind.map(Into::into),
            request_id: None,
            retry_after,
            should_retry: should,
        }
    }

    #[test]
    fn hints_in_order_of_precedence() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(
            parse_hint(&headers(&[("retry-after-ms", "250"), ("retry-after", "9")]), now),
            Some(Duration::from_millis(250))
        );
        assert_eq!(
            parse_hint(&headers(&[("retry-after", "1.5")]), now),
            Some(Duration::from_millis(1500))
        );
        let date = httpdate::fmt_http_date(now + Duration::from_secs(30));
        assert_eq!(
            parse_hint(&headers(&[("retry-after", &date)]), now),
            Some(Duration::from_secs(30))
        );
        let past = httpdate::fmt_http_date(now - Duration::from_secs(30));
        assert_eq!(
            parse_hint(&headers(&[("retry-after", &past)]), now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_hint(&headers(&[("retry-after", "-3")]), now), None);
        assert_eq!(parse_hint(&headers(&[("retry-after", "soon")]), now), None);
        assert_eq!(parse_hint(&headers(&[]), now), None);
    }

    #[test]
    fn backoff_doubles_caps_and_jitters_down() {
        assert_eq!(backoff(0, 0.0), Duration::from_millis(500));
        assert_eq!(backoff(1, 0.0), Duration::from_secs(1));
        assert_eq!(backoff(4, 0.0), Duration::from_secs(8));
        assert_eq!(backoff(30, 0.0), Duration::from_secs(8));
        assert_eq!(backoff(0, 0.999_999).as_millis(), 375);
    }

    #[test]
    fn what_is_retried() {
        for code in [408, 409, 429, 500, 502, 503, 504] {
            assert!(retryable(&status(code, None, None, None)), "{code}");
        }
        for code in [400, 401, 403, 404, 422] {
            assert!(!retryable(&status(code, None, None, None)), "{code}");
        }
        assert!(!retryable(&status(429, Some("insufficient_quota"), None, None)));
        assert!(retryable(&status(400, None, None, Some(true))));
        assert!(!retryable(&status(503, None, None, Some(false))));
        assert!(retryable(&ApiError::Timeout {
            phase: "x",
            after: Duration::ZERO
        }));
        assert!(!retryable(&ApiError::Replay("x".into())));
    }

    #[test]
    fn decisions_respect_hints_and_limits() {
        let e = status(429, None, Some(Duration::from_secs(2)), None);
        assert_eq!(decide(&e, 0, 2), Decision::Retry(Duration::from_secs(2)));
        assert_eq!(decide(&e, 2, 2), Decision::GiveUp);
        assert_eq!(decide(&e, 0, 0), Decision::GiveUp);
        let long = status(429, None, Some(Duration::from_secs(600)), None);
        assert_eq!(decide(&long, 0, 5), Decision::GiveUp);
        let plain = status(503, None, None, None);
        match decide(&plain, 1, 5) {
            Decision::Retry(d) => assert!(d <= Duration::from_secs(1) && d >= Duration::from_millis(750)),
            other => panic!("{other:?}"),
        }
    }
}
