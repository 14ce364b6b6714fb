//! How coursewire's HTTP clients (Canvas, Panopto) bound and pace their retries: one set of
//! settings, full-jitter backoff, and the server's `Retry-After` as a floor.

use crate::config::{ConfigError, Env};
use http::HeaderMap;
use http::header::RETRY_AFTER;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq)]
pub struct HttpSettings {
    /// Bound on one request, from connecting to the last byte of the body.
    pub request_timeout: Duration,
    pub connect_timeout: Duration,
    /// Attempts per call, throttled ones included.
    pub max_attempts: u32,
    /// Full-jitter backoff: a random wait up to `min(cap, base × 2^retry)`.
    pub backoff_base: Duration,
    pub backoff_cap: Duration,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(15),
            connect_timeout: Duration::from_secs(5),
            max_attempts: 8,
            backoff_base: Duration::from_millis(250),
            backoff_cap: Duration::from_secs(20),
        }
    }
}

impl HttpSettings {
    /// The defaults with a request timeout (`timeout_ms`, 100–120,000 ms) and an attempt
    /// bound (`attempts`, 1–20) read from the environment: each client names its variables.
    pub fn from_env<F: Fn(&str) -> Option<String>>(
        env: &Env<F>,
        timeout_ms: &'static str,
        attempts: &'static str,
    ) -> Result<Self, ConfigError> {
        let defaults = Self::default();
        Ok(Self {
            request_timeout: Duration::from_millis(env.number_in(
                timeout_ms,
                defaults.request_timeout.as_millis() as u64,
                100..=120_000,
            )?),
            max_attempts: env.number_in(attempts, u64::from(defaults.max_attempts), 1..=20)? as u32,
            ..defaults
        })
    }
}

/// A random wait in `[0, min(cap, base × 2^retry)]` (full jitter), never below `at_least`.
pub fn backoff(settings: &HttpSettings, retry: u32, at_least: Duration) -> Duration {
    let ceiling = settings
        .backoff_base
        .saturating_mul(1u32 << retry.min(16))
        .min(settings.backoff_cap);
    let jitter = Duration::from_millis(rand::random_range(0..=ceiling.as_millis() as u64));
    jitter.max(at_least)
}

/// The wait a throttling server asked for (`Retry-After` in seconds), zero when absent or
/// unreadable (the HTTP-date form is not used by Canvas or Panopto).
pub fn retry_after(headers: &HeaderMap) -> Duration {
    headers
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map_or(Duration::ZERO, Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_jittered_capped_and_floored() {
        let settings = HttpSettings {
            backoff_base: Duration::from_millis(100),
            backoff_cap: Duration::from_millis(400),
            ..HttpSettings::default()
        };
        for retry in 0..20 {
            let wait = backoff(&settings, retry, Duration::ZERO);
            assert!(wait <= Duration::from_millis(400), "{retry}: {wait:?}");
        }
        let floored = backoff(&settings, 0, Duration::from_secs(3));
        assert_eq!(floored, Duration::from_secs(3));
    }

    #[test]
    fn reads_retry_after_seconds() {
        let mut headers = HeaderMap::new();
        assert_eq!(retry_after(&headers), Duration::ZERO);
        headers.insert(RETRY_AFTER, " 7".parse().unwrap());
        assert_eq!(retry_after(&headers), Duration::from_secs(7));
        headers.insert(
            RETRY_AFTER,
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&headers), Duration::ZERO);
    }
}
