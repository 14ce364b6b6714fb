//! Canvas Live Events: both envelope formats Canvas emits (Canvas JSON and Caliper 1.1),
//! normalised into one [`LiveEvent`] with an event name, an event time, an entity key and a
//! content hash.
//!
//! Canvas events carry no unique id and may arrive twice, out of order, through SQS or HTTPS,
//! so identity is a hash of the event's canonical JSON and ordering is by `event_time`.

mod caliper;
mod canvas;
pub mod corpus;
pub mod entity;
pub mod time;

use chrono::{DateTime, Utc};
use coursewire_pipeline::inbox::SourceEvent;
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use entity::EntityKey;

/// Which of Canvas's two formats an event was delivered in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Canvas,
    Caliper,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Canvas => "canvas",
            Format::Caliper => "caliper",
        }
    }

    /// The format named `name` (as [`Format::as_str`] writes it).
    pub fn parse(name: &str) -> Option<Format> {
        [Format::Canvas, Format::Caliper]
            .into_iter()
            .find(|format| format.as_str() == name)
    }
}

/// What the delivery channel says about an event besides its body (SQS message attributes
/// `event_name` / `event_time`). Used only where the body itself is silent.
#[derive(Debug, Clone, Copy, Default)]
pub struct DeliveryHints<'a> {
    pub event_name: Option<&'a str>,
    pub event_time: Option<&'a str>,
}

/// A validated live event, ready for the inbox.
#[derive(Debug, Clone)]
pub struct LiveEvent {
    pub format: Format,
    pub event_name: String,
    pub event_time: DateTime<Utc>,
    pub entity_key: EntityKey,
    /// Hex SHA-256 of the event's canonical JSON: the event's identity.
    pub content_hash: String,
    /// The event as Canvas sent it (without JWT registered claims).
    pub payload: Value,
}

impl SourceEvent for LiveEvent {
    fn content_hash(&self) -> &str {
        &self.content_hash
    }
    fn entity_key(&self) -> &str {
        self.entity_key.as_str()
    }
    fn event_name(&self) -> &str {
        &self.event_name
    }
    fn event_time(&self) -> DateTime<Utc> {
        self.event_time
    }
    fn format(&self) -> &str {
        self.format.as_str()
    }
    fn payload(&self) -> &Value {
        &self.payload
    }
}

/// How a Canvas event reached coursewire (the inbox's and the change event's `delivery`).
pub mod delivery {
    use coursewire_pipeline::inbox::Delivery;

    /// Canvas's Live Events SQS queue.
    pub static SQS: Delivery = Delivery::named("sqs");
    /// Canvas's HTTPS delivery (signed JWT or plain JSON).
    pub static HTTPS: Delivery = Delivery::named("https");
    /// Synthesized by the reconciler from Canvas's API: what live events lost.
    pub static RECONCILIATION: Delivery = Delivery::named("reconciliation");
}

/// Why a payload is not a usable live event. Messages name the field, never echo content.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    #[error("body is not valid JSON: {0}")]
    InvalidJson(String),
    #[error("event must be a JSON object")]
    NotAnObject,
    #[error(
        "not a Canvas or Caliper envelope: expected `metadata` + `body` or a Caliper `data` array"
    )]
    UnrecognisedEnvelope,
    #[error("`{0}` must be a JSON object")]
    NotAnObjectField(&'static str),
    #[error("missing event name (`metadata.event_name` or the `event_name` attribute)")]
    MissingEventName,
    #[error("event name must be 1-64 lowercase letters, digits, underscores or dots")]
    InvalidEventName,
    #[error(
        "missing event time (`metadata.event_time`, `eventTime` or the `event_time` attribute)"
    )]
    MissingEventTime,
    #[error("unreadable event time: {0}")]
    InvalidEventTime(String),
    #[error("Caliper envelope has an empty or missing `data` array")]
    EmptyCaliperData,
}

impl EnvelopeError {
    /// A short, stable reason code for metrics dimensions and reject records.
    pub fn code(&self) -> &'static str {
        match self {
            EnvelopeError::InvalidJson(_) => "invalid_json",
            EnvelopeError::NotAnObject => "not_an_object",
            EnvelopeError::UnrecognisedEnvelope => "unrecognised_envelope",
            EnvelopeError::NotAnObjectField(_) => "malformed_envelope",
            EnvelopeError::MissingEventName => "missing_event_name",
            EnvelopeError::InvalidEventName => "invalid_event_name",
            EnvelopeError::MissingEventTime => "missing_event_time",
            EnvelopeError::InvalidEventTime(_) => "invalid_event_time",
            EnvelopeError::EmptyCaliperData => "empty_caliper_data",
        }
    }
}

/// JWT registered claims that Canvas adds when it signs an event; they are not part of the
/// event, so they are removed before hashing (the same event via SQS and HTTPS hashes equal).
const JWT_CLAIMS: [&str; 7] = ["iss", "sub", "aud", "exp", "nbf", "iat", "jti"];

/// Parses raw JSON bytes (SQS delivery, unsigned HTTPS delivery).
pub fn parse_json(bytes: &[u8], hints: DeliveryHints<'_>) -> Result<LiveEvent, EnvelopeError> {
    let value: Value = serde_json::from_slice(bytes)
        .map_err(|e| EnvelopeError::InvalidJson(describe_json_error(&e)))?;
    from_value(value, hints)
}

/// Parses the claims of a verified JWT (signed HTTPS delivery).
pub fn from_jwt_claims(mut claims: Value) -> Result<LiveEvent, EnvelopeError> {
    if let Some(map) = claims.as_object_mut() {
        for claim in JWT_CLAIMS {
            map.remove(claim);
        }
    }
    from_value(claims, DeliveryHints::default())
}

/// Parses an already-decoded JSON value in either format.
pub fn from_value(value: Value, hints: DeliveryHints<'_>) -> Result<LiveEvent, EnvelopeError> {
    let map = value.as_object().ok_or(EnvelopeError::NotAnObject)?;
    if map.contains_key("metadata") {
        canvas::parse(value, hints)
    } else if map.contains_key("data")
        && (map.contains_key("dataVersion") || map.contains_key("sensor"))
    {
        caliper::parse(value, hints)
    } else {
        Err(EnvelopeError::UnrecognisedEnvelope)
    }
}

/// serde_json's messages carry a position, never content: safe to log and return.
fn describe_json_error(e: &serde_json::Error) -> String {
    let kind = match e.classify() {
        serde_json::error::Category::Eof => "truncated JSON",
        serde_json::error::Category::Syntax => "syntax error",
        serde_json::error::Category::Data => "unexpected data",
        serde_json::error::Category::Io => "read error",
    };
    format!("{kind} at line {} column {}", e.line(), e.column())
}

fn validate_event_name(name: &str) -> Result<(), EnvelopeError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'.');
    if ok {
        Ok(())
    } else {
        Err(EnvelopeError::InvalidEventName)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncated_json_is_reported_as_such_without_content() {
        let err = parse_json(
            br#"{"metadata": {"event_name": "secret-value"#,
            DeliveryHints::default(),
        )
        .unwrap_err();
        assert_eq!(err.code(), "invalid_json");
        let text = err.to_string();
        assert!(text.contains("truncated"), "{text}");
        assert!(!text.contains("secret"), "{text}");
    }

    #[test]
    fn non_envelopes_are_rejected_with_specific_reasons() {
        assert_eq!(
            parse_json(b"[1,2]", DeliveryHints::default()).unwrap_err(),
            EnvelopeError::NotAnObject
        );
        assert_eq!(
            parse_json(br#"{"hello":"world"}"#, DeliveryHints::default()).unwrap_err(),
            EnvelopeError::UnrecognisedEnvelope
        );
        assert_eq!(
            parse_json(br#"{"metadata":[],"body":{}}"#, DeliveryHints::default()).unwrap_err(),
            EnvelopeError::NotAnObjectField("metadata")
        );
    }

    #[test]
    fn jwt_claims_do_not_change_the_hash() {
        let event = serde_json::json!({
            "metadata": {"event_name": "course_updated", "event_time": "2024-01-01T00:00:00Z", "root_account_id": "21070000000000001"},
            "body": {"course_id": "21070000000000056", "name": "Physics"}
        });
        let mut claims = event.clone();
        claims["iss"] = "canvas".into();
        claims["exp"] = 1.into();
        let plain = from_value(event, DeliveryHints::default()).unwrap();
        let signed = from_jwt_claims(claims).unwrap();
        assert_eq!(plain.content_hash, signed.content_hash);
        assert_eq!(plain.entity_key.as_str(), "course:21070000000000056");
    }
}
