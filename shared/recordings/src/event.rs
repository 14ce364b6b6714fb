//! Recording events: what happened to a lecture's Panopto session, from the poller or from
//! institutional middleware's webhook. They enter the same pipeline as Canvas's live events
//! (inbox dedupe by content hash, `recordings.fifo` ordered per session).

use chrono::{DateTime, Utc};
use coursewire_pipeline::inbox::{SourceEvent, canonical};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

/// How recording events reach coursewire.
pub mod delivery {
    use coursewire_pipeline::inbox::Delivery;
    /// Seen by `panopto-poller`.
    pub static POLLER: Delivery = Delivery::named("panopto-poller");
    /// Pushed to `panopto-webhook`, signed.
    pub static WEBHOOK: Delivery = Delivery::named("panopto-webhook");
}

/// The envelope format stored with every recording event.
pub const FORMAT: &str = "recording-v1";

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordingEventKind {
    /// The lecture's session exists in Panopto (first seen).
    SessionDetected,
    RecordingStarted,
    RecordingStopped,
    Processing,
    RecordingComplete,
    CaptionsAvailable,
    /// The room's recorder changed state during the lecture's window (faulted,
    /// disconnected, back to idle).
    RecorderStateChanged,
    /// Someone renamed the session outside coursewire.
    SessionRenamed,
    /// Someone moved the session to another folder outside coursewire.
    SessionMoved,
}

impl RecordingEventKind {
    pub const ALL: [RecordingEventKind; 9] = [
        Self::SessionDetected,
        Self::RecordingStarted,
        Self::RecordingStopped,
        Self::Processing,
        Self::RecordingComplete,
        Self::CaptionsAvailable,
        Self::RecorderStateChanged,
        Self::SessionRenamed,
        Self::SessionMoved,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::SessionDetected => "session_detected",
            Self::RecordingStarted => "recording_started",
            Self::RecordingStopped => "recording_stopped",
            Self::Processing => "processing",
            Self::RecordingComplete => "recording_complete",
            Self::CaptionsAvailable => "captions_available",
            Self::RecorderStateChanged => "recorder_state_changed",
            Self::SessionRenamed => "session_renamed",
            Self::SessionMoved => "session_moved",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

/// The lecture a recording is of (section and slot, as the teaching catalog keys it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LectureRef {
    pub section_id: String,
    /// `2026-10-27#1`: the local date and the section's meeting number that day.
    pub slot: String,
}

/// One recording event, parsed and identified.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordingEvent {
    pub kind: RecordingEventKind,
    pub session_id: String,
    pub occurred_at: DateTime<Utc>,
    payload: Value,
    content_hash: String,
    entity_key: String,
}

impl RecordingEvent {
    /// An event with its `details` (new name, folder, recorder state...). `identity` is what
    /// makes it this event and not another: equal identities are one event however often it
    /// is seen (the poller passes the observation's version; the webhook its whole body).
    pub fn new(
        kind: RecordingEventKind,
        session_id: &str,
        lecture: Option<&LectureRef>,
        occurred_at: DateTime<Utc>,
        details: Map<String, Value>,
        identity: &Value,
    ) -> Self {
        let payload = json!({
            "event": kind.as_str(),
            "session_id": session_id,
            "lecture": lecture,
            "occurred_at": occurred_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "details": details,
        });
        let content_hash = canonical::hash(&json!({
            "event": kind.as_str(),
            "session_id": session_id,
            "identity": identity,
        }));
        Self {
            kind,
            session_id: session_id.to_string(),
            occurred_at,
            payload,
            content_hash,
            entity_key: entity_key(session_id),
        }
    }

    pub fn lecture(&self) -> Option<LectureRef> {
        serde_json::from_value(self.payload["lecture"].clone()).ok()
    }

    pub fn details(&self) -> &Value {
        &self.payload["details"]
    }
}

/// A Panopto session's entity key: the unit of ordering on `recordings.fifo`.
pub fn entity_key(session_id: &str) -> String {
    format!("recording:{session_id}")
}

impl SourceEvent for RecordingEvent {
    fn content_hash(&self) -> &str {
        &self.content_hash
    }
    fn entity_key(&self) -> &str {
        &self.entity_key
    }
    fn event_name(&self) -> &str {
        self.kind.as_str()
    }
    fn event_time(&self) -> DateTime<Utc> {
        self.occurred_at
    }
    fn format(&self) -> &str {
        FORMAT
    }
    fn payload(&self) -> &Value {
        &self.payload
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_not_observation_time_makes_an_event() {
        let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        let lecture = LectureRef {
            section_id: "101".into(),
            slot: "2026-10-27#1".into(),
        };
        let a = RecordingEvent::new(
            RecordingEventKind::RecordingComplete,
            "s-1",
            Some(&lecture),
            at("2026-10-27T14:20:00Z"),
            Map::new(),
            &json!({"version": 3}),
        );
        let again = RecordingEvent::new(
            RecordingEventKind::RecordingComplete,
            "s-1",
            Some(&lecture),
            at("2026-10-27T14:21:00Z"),
            Map::new(),
            &json!({"version": 3}),
        );
        let next = RecordingEvent::new(
            RecordingEventKind::RecordingComplete,
            "s-1",
            Some(&lecture),
            at("2026-10-27T14:21:00Z"),
            Map::new(),
            &json!({"version": 4}),
        );
        assert_eq!(a.content_hash(), again.content_hash());
        assert_ne!(a.content_hash(), next.content_hash());
        assert_eq!(a.entity_key(), "recording:s-1");
        assert_eq!(a.lecture(), Some(lecture));
        for kind in RecordingEventKind::ALL {
            assert_eq!(RecordingEventKind::parse(kind.as_str()), Some(kind));
        }
    }
}
