//! The webhook's request authentication: HMAC-SHA256 over `<timestamp>.<body>` with a shared
//! secret, compared in constant time, within a five-minute window.
//!
//! Headers: `X-Coursewire-Timestamp` (Unix seconds) and `X-Coursewire-Signature`
//! (`v1=<hex>`; several comma-separated values are allowed while a sender rotates secrets).

use chrono::{DateTime, TimeDelta, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::fmt;

pub const TIMESTAMP_HEADER: &str = "x-coursewire-timestamp";
pub const SIGNATURE_HEADER: &str = "x-coursewire-signature";

/// How far a request's timestamp may be from now, either way.
pub const REPLAY_WINDOW: TimeDelta = TimeDelta::minutes(5);

/// Why a request was refused, each with its own status and code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("the request has no {TIMESTAMP_HEADER} header")]
    MissingTimestamp,
    #[error("{TIMESTAMP_HEADER} is not Unix seconds")]
    InvalidTimestamp,
    #[error("the request's timestamp is {seconds} s from now (at most 300 s is accepted)")]
    StaleTimestamp { seconds: i64 },
    #[error("the request has no {SIGNATURE_HEADER} header")]
    MissingSignature,
    #[error("the signature does not match the body and timestamp")]
    BadSignature,
    #[error("this signed request was already received (sign each delivery afresh)")]
    Replayed,
    #[error("the body is larger than {limit} bytes")]
    BodyTooLarge { limit: usize },
    #[error("the body is not a recording event: {0}")]
    InvalidBody(String),
}

impl Rejection {
    pub fn status(&self) -> u16 {
        match self {
            Self::MissingTimestamp | Self::InvalidTimestamp => 400,
            Self::StaleTimestamp { .. } | Self::MissingSignature | Self::BadSignature => 401,
            Self::Replayed => 409,
            Self::BodyTooLarge { .. } => 413,
            Self::InvalidBody(_) => 422,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::MissingTimestamp => "missing_timestamp",
            Self::InvalidTimestamp => "invalid_timestamp",
            Self::StaleTimestamp { .. } => "stale_timestamp",
            Self::MissingSignature => "missing_signature",
            Self::BadSignature => "bad_signature",
            Self::Replayed => "replayed",
            Self::BodyTooLarge { .. } => "body_too_large",
            Self::InvalidBody(_) => "invalid_body",
        }
    }
}

/// The signing secrets: the current one and, during a rotation, the previous one.
#[derive(Clone)]
pub struct SigningKeys {
    /// Keyed MACs, cloned for each use: the current key first.
    keys: Vec<Hmac<Sha256>>,
}

impl fmt::Debug for SigningKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKeys({} key(s), redacted)", self.keys.len())
    }
}

impl SigningKeys {
    pub fn new(current: &str, previous: Option<&str>) -> Result<Self, String> {
        if current.len() < 16 {
            return Err("the webhook signing secret must be at least 16 characters".into());
        }
        let keys = std::iter::once(current)
            .chain(previous.filter(|p| !p.is_empty()))
            .map(|key| {
                <Hmac<Sha256> as Mac>::new_from_slice(key.as_bytes()).map_err(|e| e.to_string())
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { keys })
    }

    /// The `v1=<hex>` signature of `body` at `timestamp` with the current key (for senders,
    /// the simulator and tests).
    pub fn sign(&self, timestamp: i64, body: &[u8]) -> String {
        let Some(mut mac) = self.keys.first().cloned() else {
            return String::new();
        };
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        format!("v1={}", hex::encode(mac.finalize().into_bytes()))
    }

    /// Checks the headers against the body at `now`; answers the verified timestamp.
    pub fn verify(
        &self,
        timestamp: Option<&str>,
        signature: Option<&str>,
        body: &[u8],
        now: DateTime<Utc>,
    ) -> Result<DateTime<Utc>, Rejection> {
        let timestamp = timestamp.ok_or(Rejection::MissingTimestamp)?;
        let seconds: i64 = timestamp
            .trim()
            .parse()
            .map_err(|_| Rejection::InvalidTimestamp)?;
        let sent = DateTime::from_timestamp(seconds, 0).ok_or(Rejection::InvalidTimestamp)?;
        let skew = (now - sent).num_seconds();
        if skew.abs() > REPLAY_WINDOW.num_seconds() {
            return Err(Rejection::StaleTimestamp { seconds: skew });
        }
        let signature = signature.ok_or(Rejection::MissingSignature)?;
        let candidates: Vec<Vec<u8>> = signature
            .split(',')
            .filter_map(|s| s.trim().strip_prefix("v1="))
            .filter_map(|h| hex::decode(h).ok())
            .collect();
        for key in &self.keys {
            for candidate in &candidates {
                let mut mac = key.clone();
                mac.update(seconds.to_string().as_bytes());
                mac.update(b".");
                mac.update(body);
                // `verify_slice` compares in constant time.
                if mac.verify_slice(candidate).is_ok() {
                    return Ok(sent);
                }
            }
        }
        Err(Rejection::BadSignature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_790_000_000, 0).unwrap()
    }

    #[test]
    fn accepts_a_fresh_signature_and_refuses_everything_else() {
        let keys = SigningKeys::new("current-secret-0123", Some("old-secret-0123456")).unwrap();
        let body = br#"{"event":"recording_complete"}"#;
        let ts = now().timestamp();
        let good = keys.sign(ts, body);
        let verify = |t: Option<&str>, s: Option<&str>, b: &[u8]| keys.verify(t, s, b, now());
        let ts_text = ts.to_string();
        assert_eq!(verify(Some(&ts_text), Some(&good), body), Ok(now()));
        assert_eq!(
            verify(None, Some(&good), body),
            Err(Rejection::MissingTimestamp)
        );
        assert_eq!(
            verify(Some("yesterday"), Some(&good), body),
            Err(Rejection::InvalidTimestamp)
        );
        let old = (ts - 301).to_string();
        assert_eq!(
            verify(Some(&old), Some(&keys.sign(ts - 301, body)), body),
            Err(Rejection::StaleTimestamp { seconds: 301 })
        );
        assert_eq!(
            verify(Some(&ts_text), None, body),
            Err(Rejection::MissingSignature)
        );
        assert_eq!(
            verify(
                Some(&ts_text),
                Some(&good),
                br#"{"event":"recording_started"}"#
            ),
            Err(Rejection::BadSignature)
        );
        let other_ts = (ts + 1).to_string();
        assert_eq!(
            verify(Some(&other_ts), Some(&good), body),
            Err(Rejection::BadSignature)
        );
        // A sender still on the previous secret during a rotation.
        let previous = SigningKeys::new("old-secret-0123456", None)
            .unwrap()
            .sign(ts, body);
        assert_eq!(verify(Some(&ts_text), Some(&previous), body), Ok(now()));
        let stranger = SigningKeys::new("a-guessed-secret-value", None)
            .unwrap()
            .sign(ts, body);
        assert_eq!(
            verify(Some(&ts_text), Some(&stranger), body),
            Err(Rejection::BadSignature)
        );
        assert_eq!(
            verify(Some(&ts_text), Some(&format!("v1=zz, {good}")), body),
            Ok(now()),
            "several signatures: one must match"
        );
    }

    #[test]
    fn short_secrets_are_refused() {
        assert!(SigningKeys::new("short", None).is_err());
    }

    #[test]
    fn statuses_and_codes_are_distinct() {
        let all = [
            Rejection::MissingTimestamp,
            Rejection::InvalidTimestamp,
            Rejection::StaleTimestamp { seconds: 400 },
            Rejection::MissingSignature,
            Rejection::BadSignature,
            Rejection::Replayed,
            Rejection::BodyTooLarge { limit: 1 },
            Rejection::InvalidBody("x".into()),
        ];
        let codes: std::collections::BTreeSet<_> = all.iter().map(Rejection::code).collect();
        assert_eq!(codes.len(), all.len());
        assert!(all.iter().all(|r| (400..500).contains(&r.status())));
    }
}
