//! Verification of Canvas's signed live events: compact RS256 JWTs whose claims are the
//! event, signed with keys Canvas publishes as a JWKS that rotates monthly (previous, current
//! and next key are listed).
//!
//! Strict by design: RS256 only (no `none`, no HMAC — the public key must never become an
//! HMAC secret), `kid` required and looked up in the JWKS, `iss` required and checked,
//! `exp`/`nbf`/`iat` checked with a small leeway when present.

mod keys;

pub use keys::{HttpJwksSource, JwksError, JwksSource, KeyCache, KeyCacheSettings};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, Validation, errors::ErrorKind};
use serde_json::Value;
use std::collections::HashSet;
use std::sync::Arc;

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
    #[error("token claims are not a JSON object")]
    InvalidClaims,
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
            VerifyError::UnknownKid => "unknown_kid",
            VerifyError::BadSignature => "bad_signature",
            VerifyError::Expired => "expired",
            VerifyError::NotYetValid => "not_yet_valid",
            VerifyError::IssuedInFuture => "issued_in_future",
            VerifyError::MissingIssuer => "missing_issuer",
            VerifyError::WrongIssuer => "wrong_issuer",
            VerifyError::InvalidClaims => "invalid_claims",
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
    validation: Validation,
    leeway_secs: u64,
}

#[derive(serde::Deserialize)]
struct Header<'a> {
    #[serde(borrow)]
    alg: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    kid: Option<std::borrow::Cow<'a, str>>,
}

impl EventVerifier {
    pub fn new(keys: Arc<KeyCache>, issuer: &str, leeway_secs: u64) -> Self {
        let mut validation = Validation::new(Algorithm::RS256);
        validation.required_spec_claims = HashSet::from(["iss".to_string()]);
        validation.set_issuer(&[issuer]);
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.validate_aud = false;
        validation.leeway = leeway_secs;
        Self { keys, validation, leeway_secs }
    }

    pub fn key_cache(&self) -> &Arc<KeyCache> {
        &self.keys
    }

    /// Verifies `token` and returns its claims (the event plus registered claims).
    pub async fn verify(&self, token: &str) -> Result<Value, VerifyError> {
        let token = token.trim();
        let kid = Self::checked_kid(token)?;
        let key = self.keys.key(&kid).await?;
        let data = jsonwebtoken::decode::<Value>(token, &key, &self.validation).map_err(map_error)?;
        let claims = data.claims;
        if !claims.is_object() {
            return Err(VerifyError::InvalidClaims);
        }
        if let Some(iat) = claims.get("iat").and_then(Value::as_f64) {
            let now = jsonwebtoken::get_current_timestamp() as f64;
            if iat > now + self.leeway_secs as f64 {
                return Err(VerifyError::IssuedInFuture);
            }
        }
        Ok(claims)
    }

    /// Reads the header ourselves before any key is touched: `alg` must be exactly RS256
    /// (jsonwebtoken cannot even represent `none`) and `kid` must be present.
    fn checked_kid(token: &str) -> Result<String, VerifyError> {
        let mut segments = token.split('.');
        let (Some(header), Some(_), Some(_), None) = (segments.next(), segments.next(), segments.next(), segments.next())
        else {
            return Err(VerifyError::Malformed);
        };
        let bytes = URL_SAFE_NO_PAD.decode(header).map_err(|_| VerifyError::Malformed)?;
        let header: Header<'_> = serde_json::from_slice(&bytes).map_err(|_| VerifyError::Malformed)?;
        match header.alg.as_deref() {
            Some("RS256") => {}
            Some(other) => return Err(VerifyError::AlgorithmNotAllowed(other.chars().take(16).collect())),
            None => return Err(VerifyError::AlgorithmNotAllowed("(missing)".into())),
        }
        match header.kid {
            Some(kid) if !kid.is_empty() => Ok(kid.into_owned()),
            _ => Err(VerifyError::MissingKid),
        }
    }
}

fn map_error(e: jsonwebtoken::errors::Error) -> VerifyError {
    match e.kind() {
        ErrorKind::InvalidSignature => VerifyError::BadSignature,
        ErrorKind::ExpiredSignature => VerifyError::Expired,
        ErrorKind::ImmatureSignature => VerifyError::NotYetValid,
        ErrorKind::InvalidIssuer => VerifyError::WrongIssuer,
        ErrorKind::MissingRequiredClaim(claim) if claim == "iss" => VerifyError::MissingIssuer,
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
            VerifyError::AlgorithmNotAllowed("(mismatch)".into())
        }
        ErrorKind::Base64(_) | ErrorKind::Json(_) | ErrorKind::Utf8(_) | ErrorKind::InvalidToken => {
            VerifyError::Malformed
        }
        _ => VerifyError::BadSignature,
    }
}
