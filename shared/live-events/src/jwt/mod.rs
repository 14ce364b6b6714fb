//! Verification of Canvas's signed live events: compact RS256 JWTs whose claims are the
//! event, signed with keys Canvas publishes as a JWKS that rotates monthly (previous, current
//! and next key are listed).
//!
//! Strict by design: RS256 only (no `none`, no HMAC — the public key must never become an
//! HMAC secret), `kid` required and looked up in the JWKS, a `crit` header refused (coursewire
//! understands no JWS extension, RFC 7515 §4.1.11), `iss` required and checked, and
//! `exp`/`nbf`/`iat` checked with a small leeway when present (and refused unless they are
//! NumericDates).
//!
//! The JWS check is done here on aws-lc-rs with each key parsed once per JWKS fetch: the
//! general-purpose JWT crates rebuild the RSA key from `n`/`e` on every verification, which
//! tripled the per-event cost (see BENCHMARKS.md).

mod keys;

pub use keys::{HttpJwksSource, Jwk, JwkSet, JwksError, JwksSource, KeyCache, KeyCacheSettings};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// Why a token was refused. Everything but [`VerifyError::KeysUnavailable`] is the sender's
/// fault (HTTP 401); unavailable keys are ours (HTTP 503, Canvas retries).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("not a compact JWS: expected three base64url segments")]
    Malformed,
    #[error("algorithm `{0}` is not accepted; Canvas signs with RS256")]
    AlgorithmNotAllowed(String),
    #[error("token header has no `kid`")]
    MissingKid,
    /// RFC 7515 §4.1.11: a token naming an extension the recipient does not understand in
    /// `crit` must be rejected. coursewire understands none.
    #[error("token header `crit` lists {0}; coursewire understands no JWS extension")]
    UnsupportedCritical(String),
    #[error("`kid` is not in Canvas's JWKS")]
    UnknownKid,
    #[error("signature does not verify")]
    BadSignature,
    #[error("token has expired")]
    Expired,
    #[error("token is not valid yet (`nbf`)")]
    NotYetValid,
    #[error("token was issued in the future (`iat`)")]
    IssuedInFuture,
    #[error("token has no `iss` claim")]
    MissingIssuer,
    #[error("token issuer is not the configured Canvas issuer")]
    WrongIssuer,
    #[error("token claims are JSON but not a JSON object")]
    ClaimsNotObject,
    #[error("claim `{claim}` must be a NumericDate (a JSON number of seconds), not {found}")]
    ClaimNotNumeric {
        claim: &'static str,
        found: &'static str,
    },
    /// Authentic (the signature verified) but unreadable: the sender's bug, not an attack,
    /// so the payload is kept as a reject and answered 400 rather than 401.
    #[error("the signed claims are not valid JSON")]
    ClaimsNotJson,
    #[error("Canvas JWKS unavailable: {0}")]
    KeysUnavailable(String),
}

impl VerifyError {
    /// Stable reason code for metrics and logs.
    pub fn code(&self) -> &'static str {
        match self {
            VerifyError::Malformed => "malformed_token",
            VerifyError::AlgorithmNotAllowed(_) => "algorithm_not_allowed",
            VerifyError::MissingKid => "missing_kid",
            VerifyError::UnsupportedCritical(_) => "unsupported_crit",
            VerifyError::UnknownKid => "unknown_kid",
            VerifyError::BadSignature => "bad_signature",
            VerifyError::Expired => "expired",
            VerifyError::NotYetValid => "not_yet_valid",
            VerifyError::IssuedInFuture => "issued_in_future",
            VerifyError::MissingIssuer => "missing_issuer",
            VerifyError::WrongIssuer => "wrong_issuer",
            VerifyError::ClaimsNotObject => "invalid_claims",
            VerifyError::ClaimNotNumeric { .. } => "invalid_claim_type",
            VerifyError::ClaimsNotJson => "invalid_json",
            VerifyError::KeysUnavailable(_) => "jwks_unavailable",
        }
    }

    /// True when the fault is ours and the sender should retry.
    pub fn is_transient(&self) -> bool {
        matches!(self, VerifyError::KeysUnavailable(_))
    }
}

/// Verifies Canvas event JWTs against a cached, rotating JWKS.
pub struct EventVerifier {
    keys: Arc<KeyCache>,
    issuer: String,
    leeway_secs: u64,
}

#[derive(serde::Deserialize)]
struct Header<'a> {
    #[serde(borrow)]
    alg: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    kid: Option<std::borrow::Cow<'a, str>>,
    /// Kept unparsed: its mere presence (even `null`) refuses the token.
    #[serde(borrow, default, deserialize_with = "present")]
    crit: Option<&'a serde_json::value::RawValue>,
}

/// `Some` for any value, `null` included (absent stays `None` through `default`).
fn present<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<&'de serde_json::value::RawValue>, D::Error> {
    serde::Deserialize::deserialize(deserializer).map(Some)
}

impl EventVerifier {
    pub fn new(keys: Arc<KeyCache>, issuer: &str, leeway_secs: u64) -> Self {
        Self {
            keys,
            issuer: issuer.to_string(),
            leeway_secs,
        }
    }

    pub fn key_cache(&self) -> &Arc<KeyCache> {
        &self.keys
    }

    /// Verifies `token` and returns its claims (the event plus registered claims).
    pub async fn verify(&self, token: &str) -> Result<Value, VerifyError> {
        let token = token.trim();
        let (signing_input, signature) = token.rsplit_once('.').ok_or(VerifyError::Malformed)?;
        let (header, payload) = signing_input
            .split_once('.')
            .ok_or(VerifyError::Malformed)?;
        if payload.contains('.') {
            return Err(VerifyError::Malformed);
        }
        // The header is read before any key is touched: `alg` must be exactly RS256 and
        // `kid` must be present.
        let kid = Self::checked_kid(header)?;
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| VerifyError::Malformed)?;
        let key = self.keys.key(&kid).await?;
        key.verify_sig(signing_input.as_bytes(), &signature)
            .map_err(|_| VerifyError::BadSignature)?;

        let payload = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| VerifyError::Malformed)?;
        let claims: Value =
            serde_json::from_slice(&payload).map_err(|_| VerifyError::ClaimsNotJson)?;
        self.check_claims(&claims)?;
        Ok(claims)
    }

    fn checked_kid(header: &str) -> Result<String, VerifyError> {
        let bytes = URL_SAFE_NO_PAD
            .decode(header)
            .map_err(|_| VerifyError::Malformed)?;
        let header: Header<'_> =
            serde_json::from_slice(&bytes).map_err(|_| VerifyError::Malformed)?;
        match header.alg.as_deref() {
            Some("RS256") => {}
            Some(other) => {
                return Err(VerifyError::AlgorithmNotAllowed(
                    other.chars().take(16).collect(),
                ));
            }
            None => return Err(VerifyError::AlgorithmNotAllowed("(missing)".into())),
        }
        if let Some(crit) = header.crit {
            return Err(VerifyError::UnsupportedCritical(
                crit.get().chars().take(64).collect(),
            ));
        }
        match header.kid {
            Some(kid) if !kid.is_empty() => Ok(kid.into_owned()),
            _ => Err(VerifyError::MissingKid),
        }
    }

    fn check_claims(&self, claims: &Value) -> Result<(), VerifyError> {
        let claims = claims.as_object().ok_or(VerifyError::ClaimsNotObject)?;
        match claims.get("iss") {
            None => return Err(VerifyError::MissingIssuer),
            Some(Value::String(iss)) if *iss == self.issuer => {}
            Some(_) => return Err(VerifyError::WrongIssuer),
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        let leeway = self.leeway_secs as f64;
        let time = |claim: &'static str| -> Result<Option<f64>, VerifyError> {
            match claims.get(claim) {
                None => Ok(None),
                Some(Value::Number(n)) => Ok(n.as_f64()),
                Some(other) => Err(VerifyError::ClaimNotNumeric {
                    claim,
                    found: json_kind(other),
                }),
            }
        };
        if time("exp")?.is_some_and(|exp| now > exp + leeway) {
            return Err(VerifyError::Expired);
        }
        if time("nbf")?.is_some_and(|nbf| now + leeway < nbf) {
            return Err(VerifyError::NotYetValid);
        }
        if time("iat")?.is_some_and(|iat| iat > now + leeway) {
            return Err(VerifyError::IssuedInFuture);
        }
        Ok(())
    }
}

/// How a JSON value's type is named in an error ("a string", "null"...).
fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests;
