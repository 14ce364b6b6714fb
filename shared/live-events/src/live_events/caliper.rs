//! Caliper 1.1 format: `{"sensor", "sendTime", "dataVersion", "data": [event]}` where the
//! event has `type`, `action`, `object` (with a `urn:instructure:canvas:<kind>:<id>` id) and
//! `eventTime`. Caliper has no Canvas event name, so it is derived from type, action and
//! object kind (the SQS `event_name` attribute wins when present).

use super::entity::{EntityKey, globalise, id_text, shard_of, snake_case};
use super::{DeliveryHints, EnvelopeError, Format, LiveEvent, time, validate_event_name};
use coursewire_pipeline::inbox::canonical;
use serde_json::Value;

const URN_PREFIX: &str = "urn:instructure:canvas:";

pub(super) fn parse(payload: Value, hints: DeliveryHints<'_>) -> Result<LiveEvent, EnvelopeError> {
    let data = payload
        .get("data")
        .and_then(Value::as_array)
        .ok_or(EnvelopeError::EmptyCaliperData)?;
    let event = data
        .first()
        .filter(|e| e.is_object())
        .ok_or(EnvelopeError::EmptyCaliperData)?;

    let event_time = match event
        .get("eventTime")
        .and_then(Value::as_str)
        .or(hints.event_time)
    {
        Some(text) => time::parse_event_time(text)
            .ok_or_else(|| EnvelopeError::InvalidEventTime("`eventTime` is not RFC 3339".into()))?,
        None => return Err(EnvelopeError::MissingEventTime),
    };

    let object = event.get("object").unwrap_or(&Value::Null);
    let (kind, object_id) = urn_parts(object.get("id").and_then(Value::as_str));
    let ext = object
        .pointer("/extensions/com.instructure.canvas")
        .unwrap_or(&Value::Null);

    let event_name = match hints.event_name {
        Some(name) => name.to_string(),
        None => derive_event_name(event, kind, ext),
    };
    validate_event_name(&event_name)?;

    let shard = shard_of(event.pointer("/actor/extensions/com.instructure.canvas/root_account_id"));
    let entity_key = entity_key(&event_name, event, kind, object_id, ext, shard);
    // `sendTime` changes when Canvas re-sends the same event: hash only the event itself.
    let content_hash = canonical::hash(&payload["data"]);
    Ok(LiveEvent {
        format: Format::Caliper,
        event_name,
        event_time,
        entity_key,
        content_hash,
        payload,
    })
}

/// `urn:instructure:canvas:course:1:section:2` → (`section`, `2`); the last kind/id pair wins.
fn urn_parts(urn: Option<&str>) -> (Option<&str>, Option<&str>) {
    let Some(rest) = urn.and_then(|u| u.strip_prefix(URN_PREFIX)) else {
        return (None, None);
    };
    let parts: Vec<&str> = rest.split(':').collect();
    match parts.len() {
        0 | 1 => (parts.first().copied(), None),
        n => {
            let pair = if n % 2 == 0 { n - 2 } else { n - 3 };
            (Some(parts[pair]), Some(parts[pair + 1]))
        }
    }
}

/// Maps Caliper's object kinds onto the entity types of the Canvas format.
fn entity_type(kind: &str) -> String {
    match kind {
        "discussion" => "discussion_topic".to_string(),
        other => snake_case(other),
    }
}

fn derive_event_name(event: &Value, kind: Option<&str>, ext: &Value) -> String {
    let event_type = event.get("type").and_then(Value::as_str).unwrap_or("");
    let action = event.get("action").and_then(Value::as_str).unwrap_or("");
    let object_type = event
        .pointer("/object/type")
        .and_then(Value::as_str)
        .unwrap_or("");
    match (event_type, action) {
        ("NavigationEvent", _) => return "asset_accessed".into(),
        ("SessionEvent", "LoggedIn") => return "logged_in".into(),
        ("SessionEvent", "LoggedOut") => return "logged_out".into(),
        ("GradeEvent", _) => return "grade_change".into(),
        ("AssessmentEvent", "Submitted") => return "quiz_submitted".into(),
        ("AssignableEvent", "Submitted") => return "submission_created".into(),
        ("MessageEvent", "Posted") => return "discussion_entry_created".into(),
        ("ThreadEvent", "Created") => return "discussion_topic_created".into(),
        _ => {}
    }
    let verb = match action {
        "Created" => "created",
        "Modified" => "updated",
        "Deleted" => "deleted",
        other => return format!("caliper_{}_{}", snake_case(event_type), snake_case(other)),
    };
    let noun = match kind {
        Some("course") if object_type == "Document" => return "syllabus_updated".into(),
        Some("account") if ext.get("user_id").is_some() => {
            return "user_account_association_created".into();
        }
        Some("enrollment") if ext.get("state").is_some() => "enrollment_state".to_string(),
        Some(kind) => entity_type(kind),
        None => snake_case(object_type),
    };
    format!("{noun}_{verb}")
}

fn entity_key(
    event_name: &str,
    event: &Value,
    kind: Option<&str>,
    object_id: Option<&str>,
    ext: &Value,
    shard: Option<u64>,
) -> EntityKey {
    let global = |id: &str| globalise(id, shard);
    match event_name {
        "logged_in" | "logged_out" => {
            let (_, actor) = urn_parts(event.pointer("/actor/id").and_then(Value::as_str));
            if let Some(id) = actor {
                return EntityKey::new("user", &[&global(id)]);
            }
        }
        "asset_accessed" => {
            if let (Some(kind), Some(id)) = (kind, object_id) {
                let asset_type = ext
                    .get("asset_type")
                    .and_then(Value::as_str)
                    .unwrap_or(kind);
                return EntityKey::new("asset", &[asset_type, &global(id)]);
            }
        }
        "user_account_association_created" => {
            let (_, user) = urn_parts(ext.get("user_id").and_then(Value::as_str));
            if let Some(id) = user {
                return EntityKey::new("user", &[&global(id)]);
            }
        }
        "syllabus_updated" => {}
        _ => {}
    }
    let id = id_text(ext.get("entity_id")).or_else(|| object_id.map(str::to_string));
    match (kind, id) {
        (Some(kind), Some(id)) => EntityKey::new(&entity_type(kind), &[&global(&id)]),
        _ => EntityKey::new("event", &[event_name]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urns_split_into_kind_and_id() {
        assert_eq!(
            urn_parts(Some("urn:instructure:canvas:submission:42")),
            (Some("submission"), Some("42"))
        );
        assert_eq!(
            urn_parts(Some("urn:instructure:canvas:course:1:section:2")),
            (Some("section"), Some("2"))
        );
        assert_eq!(
            urn_parts(Some("urn:instructure:canvas:course:1:Instructor:9")),
            (Some("Instructor"), Some("9"))
        );
        assert_eq!(urn_parts(Some("http://example.com/")), (None, None));
    }
}
