//! Canvas format: `{"metadata": {...}, "body": {...}}`.

use super::{DeliveryHints, EnvelopeError, Format, LiveEvent, entity, time, validate_event_name};
use coursewire_pipeline::inbox::canonical;
use serde_json::Value;

pub(super) fn parse(payload: Value, hints: DeliveryHints<'_>) -> Result<LiveEvent, EnvelopeError> {
    let metadata = payload
        .get("metadata")
        .filter(|m| m.is_object())
        .ok_or(EnvelopeError::NotAnObjectField("metadata"))?;
    let body = payload
        .get("body")
        .filter(|b| b.is_object())
        .ok_or(EnvelopeError::NotAnObjectField("body"))?;

    // The signed/queued body is authoritative; the SQS attribute only fills a gap.
    let event_name = metadata
        .get("event_name")
        .and_then(Value::as_str)
        .or(hints.event_name)
        .ok_or(EnvelopeError::MissingEventName)?
        .to_string();
    validate_event_name(&event_name)?;

    let event_time = match metadata.get("event_time") {
        Some(Value::String(text)) => time::parse_event_time(text),
        Some(Value::Number(n)) => n.as_f64().and_then(time::from_epoch),
        Some(_) => None,
        None => {
            let text = hints.event_time.ok_or(EnvelopeError::MissingEventTime)?;
            time::parse_event_time(text)
        }
    }
    .ok_or_else(|| {
        EnvelopeError::InvalidEventTime("expected RFC 3339 such as 2024-01-31T12:00:00.000Z".into())
    })?;

    let entity_key = entity::canvas_key(&event_name, metadata, body);
    let content_hash = canonical::hash(&payload);
    Ok(LiveEvent {
        format: Format::Canvas,
        event_name,
        event_time,
        entity_key,
        content_hash,
        payload,
    })
}
