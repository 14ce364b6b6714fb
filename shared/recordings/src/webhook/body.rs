//! The webhook's body: one recording event as institutional middleware sends it.
//!
//! ```json
//! {"event": "recording_complete", "session_id": "…", "occurred_at": "2026-10-27T14:20:00Z",
//!  "lecture": {"section_id": "…", "slot": "2026-10-27#1"}, "details": {…}}
//! ```
//! `lecture` and `details` are optional; `event` is one of [`RecordingEventKind`]'s names.

use crate::event::{LectureRef, RecordingEvent, RecordingEventKind};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Map, Value};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Body {
    event: String,
    session_id: String,
    occurred_at: DateTime<Utc>,
    #[serde(default)]
    lecture: Option<LectureRef>,
    #[serde(default)]
    details: Map<String, Value>,
}

/// The event the body describes; the error says what is wrong with it.
pub fn parse(body: &[u8]) -> Result<RecordingEvent, String> {
    let value: Value = serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
    let parsed: Body = serde_json::from_value(value.clone()).map_err(|e| e.to_string())?;
    let kind = RecordingEventKind::parse(&parsed.event).ok_or_else(|| {
        let known: Vec<_> = RecordingEventKind::ALL.iter().map(|k| k.as_str()).collect();
        format!(
            "unknown event {:?} (known: {})",
            parsed.event,
            known.join(", ")
        )
    })?;
    let id_ok = !parsed.session_id.is_empty()
        && parsed.session_id.len() <= 64
        && parsed
            .session_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-');
    if !id_ok {
        return Err("session_id must be a Panopto session id (letters, digits, '-')".into());
    }
    // The whole body is the event's identity: the same body sent twice is one event.
    Ok(RecordingEvent::new(
        kind,
        &parsed.session_id,
        parsed.lecture.as_ref(),
        parsed.occurred_at,
        parsed.details,
        &value,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use coursewire_pipeline::inbox::SourceEvent;

    #[test]
    fn reads_an_event_and_names_what_is_wrong() {
        let event = parse(
            br#"{"event":"captions_available","session_id":"6f1c2a9e-0001","occurred_at":"2026-10-27T16:00:00Z","details":{"language":"en"}}"#,
        )
        .unwrap();
        assert_eq!(event.kind, RecordingEventKind::CaptionsAvailable);
        assert_eq!(event.entity_key(), "recording:6f1c2a9e-0001");
        assert_eq!(event.details()["language"], "en");
        let err = |body: &str| parse(body.as_bytes()).unwrap_err();
        assert!(err("{").starts_with("not JSON"));
        assert!(
            err(r#"{"event":"exploded","session_id":"a","occurred_at":"2026-10-27T16:00:00Z"}"#)
                .contains("unknown event \"exploded\"")
        );
        assert!(err(r#"{"event":"processing","session_id":"a/../b","occurred_at":"2026-10-27T16:00:00Z"}"#).contains("session_id"));
        let bad_time = err(r#"{"event":"processing","session_id":"a","occurred_at":"later"}"#);
        assert!(
            bad_time.contains("input contains invalid characters"),
            "{bad_time}"
        );
        assert!(err(r#"{"event":"processing","session_id":"a","occurred_at":"2026-10-27T16:00:00Z","extra":1}"#).contains("unknown field `extra`"));
    }
}
