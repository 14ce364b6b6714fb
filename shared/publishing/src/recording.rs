//! The processor's entity model for lecture capture: recording events (from the poller or the
//! webhook) applied to one row per Panopto session, each becoming one `Recording Changed`
//! event on the bus (`coursewire.capture`). The publish workflow reads the row it keeps.

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use coursewire_pipeline::handoff::QueuedEvent;
use coursewire_pipeline::processor::{ChangeDetail, Derived, EntityModel, ModelError, StoredRow};
use coursewire_pipeline::time::format_sortable;
use coursewire_recordings::{LectureRef, RecordingEventKind};
use coursewire_runtime::aws::Item;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashMap;

/// The detail-type of every change event this model publishes (`detail.event` says what).
pub const DETAIL_TYPE: &str = "Recording Changed";
/// Version of the `Recording Changed` detail (events/schemas/capture).
pub const SCHEMA_VERSION: u32 = 1;

/// What coursewire knows of one Panopto session from its recording events.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RecordingRow {
    /// `recording:{session_id}`.
    pub key: String,
    pub session_id: String,
    /// The lecture the event source thought it was (the poller knows its booking); the
    /// workflow matches by recorder and time itself and only reports a disagreement.
    pub lecture_hint: Option<LectureRef>,
    /// The last session state an event stated (`Complete`, ...).
    pub state: Option<String>,
    pub name: Option<String>,
    pub folder_id: Option<String>,
    /// Once true, stays true (a late event cannot take a completed recording back).
    pub complete: bool,
    pub captions: bool,
    /// The last recorder state seen during the lecture, if any.
    pub recorder_state: Option<String>,
    /// The newest rename and move seen (by anyone: coursewire's own filing shows up here
    /// too), with when they were seen, so the workflow can tell a person's later change.
    #[serde(default)]
    pub renamed: Option<Stated>,
    #[serde(default)]
    pub moved: Option<Stated>,
    /// Event time of the newest event applied (RFC 3339).
    pub event_time: Option<String>,
    pub sequence: u64,
    pub updated_at: String,
}

impl RecordingRow {
    fn empty(key: &str) -> Self {
        Self {
            key: key.to_string(),
            session_id: key.strip_prefix("recording:").unwrap_or(key).to_string(),
            ..Self::default()
        }
    }
}

impl StoredRow for RecordingRow {
    fn updated_at(&self) -> &str {
        &self.updated_at
    }

    /// The row as JSON beside the key and the sequence the commit condition reads.
    fn to_item(&self) -> Item {
        HashMap::from([
            ("pk".to_string(), AttributeValue::S(self.key.clone())),
            (
                "sequence".to_string(),
                AttributeValue::N(self.sequence.to_string()),
            ),
            (
                "row".to_string(),
                // Plain data: serialising cannot fail.
                AttributeValue::S(serde_json::to_string(self).unwrap_or_default()),
            ),
        ])
    }

    fn from_item(item: &Item) -> Option<Self> {
        let row = item.get("row")?.as_s().ok()?;
        serde_json::from_str(row).ok()
    }
}

/// A value an event stated, and when (RFC 3339).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stated {
    pub value: String,
    pub at: String,
}

/// The `detail` of a `Recording Changed` event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordingChange {
    pub event_id: String,
    pub schema_version: u32,
    /// The recording event: `recording_complete`, `captions_available`, ...
    pub event: String,
    pub session_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lecture: Option<LectureRef>,
    /// Per session, 1, 2, ...: subscribers order by it.
    pub sequence: u64,
    pub event_time: String,
    /// Older than the newest event already applied (the row kept its newer fields).
    pub late: bool,
    /// What the event stated (new name, folder, recorder state, ...).
    pub details: Value,
    pub published_at: String,
    pub replay: bool,
}

impl ChangeDetail for RecordingChange {
    fn event_id(&self) -> &str {
        &self.event_id
    }
    fn sequence(&self) -> u64 {
        self.sequence
    }
    fn late(&self) -> bool {
        self.late
    }
    fn stamp(&mut self, published_at: &str, replay: bool) {
        self.published_at = published_at.to_string();
        self.replay = replay;
    }
}

/// Recording events on recording rows.
#[derive(Debug, Clone, Copy, Default)]
pub struct RecordingModel;

fn time(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

fn text(details: &Value, field: &str) -> Option<String> {
    details
        .get(field)
        .and_then(Value::as_str)
        .map(str::to_string)
}

impl EntityModel for RecordingModel {
    type Row = RecordingRow;
    type Change = RecordingChange;

    fn empty(&self, entity_key: &str) -> RecordingRow {
        RecordingRow::empty(entity_key)
    }

    fn sequence(&self, row: &RecordingRow) -> u64 {
        row.sequence
    }

    fn derive(
        &self,
        current: &RecordingRow,
        message: &QueuedEvent,
        event_id: String,
        replay: bool,
    ) -> Result<Derived<RecordingRow, RecordingChange>, ModelError> {
        let kind = RecordingEventKind::parse(&message.event_name).ok_or_else(|| {
            ModelError(format!("`{}` is not a recording event", message.event_name))
        })?;
        let payload = &message.payload;
        let session_id = payload
            .get("session_id")
            .and_then(Value::as_str)
            .ok_or_else(|| ModelError("a recording event without session_id".into()))?;
        let details = payload.get("details").cloned().unwrap_or(Value::Null);
        let lecture: Option<LectureRef> = payload
            .get("lecture")
            .and_then(|l| serde_json::from_value(l.clone()).ok());
        let at = time(&message.event_time);
        let late = match (at, current.event_time.as_deref().and_then(time)) {
            (Some(at), Some(newest)) => at < newest,
            _ => false,
        };

        let mut row = current.clone();
        row.session_id = session_id.to_string();
        row.sequence = current.sequence + 1;
        row.updated_at = format_sortable(&Utc::now());
        if row.lecture_hint.is_none() {
            row.lecture_hint = lecture.clone();
        }
        // Monotonic facts hold whatever the order; the rest only from the newest event.
        match kind {
            RecordingEventKind::RecordingComplete => row.complete = true,
            RecordingEventKind::CaptionsAvailable => row.captions = true,
            _ => {}
        }
        if !late {
            row.event_time = Some(message.event_time.clone());
            match kind {
                RecordingEventKind::SessionDetected => {
                    row.name = text(&details, "name").or(row.name);
                    row.folder_id = text(&details, "folder_id").or(row.folder_id);
                    row.state = text(&details, "state").or(row.state);
                }
                RecordingEventKind::SessionRenamed => {
                    row.name = text(&details, "to");
                    row.renamed = row.name.clone().map(|value| Stated {
                        value,
                        at: message.event_time.clone(),
                    });
                }
                RecordingEventKind::SessionMoved => {
                    row.folder_id = text(&details, "to");
                    row.moved = row.folder_id.clone().map(|value| Stated {
                        value,
                        at: message.event_time.clone(),
                    });
                }
                RecordingEventKind::RecordingStarted => row.state = Some("Recording".into()),
                RecordingEventKind::RecordingStopped | RecordingEventKind::Processing => {
                    row.state = Some("Processing".into())
                }
                RecordingEventKind::RecordingComplete => row.state = Some("Complete".into()),
                RecordingEventKind::RecorderStateChanged => {
                    row.recorder_state = text(&details, "to")
                }
                RecordingEventKind::CaptionsAvailable => {}
            }
            if row.complete {
                row.state = Some("Complete".into());
            }
        }
        let change = RecordingChange {
            event_id,
            schema_version: SCHEMA_VERSION,
            event: kind.as_str().to_string(),
            session_id: session_id.to_string(),
            lecture,
            sequence: row.sequence,
            event_time: message.event_time.clone(),
            late,
            details,
            published_at: String::new(),
            replay,
        };
        Ok(Derived {
            row,
            entity_type: "recording".into(),
            detail_type: DETAIL_TYPE.into(),
            change,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use coursewire_pipeline::inbox::Delivery;
    use serde_json::json;

    fn message(event: &str, at: &str, details: Value) -> QueuedEvent {
        QueuedEvent {
            version: 1,
            event_hash: format!("{event}-{at}"),
            entity_key: "recording:s-1".into(),
            event_name: event.into(),
            event_time: at.into(),
            format: "recording-v1".into(),
            source: Delivery::named("panopto-poller"),
            received_at: at.into(),
            payload: json!({"event": event, "session_id": "s-1",
                "lecture": {"section_id": "901", "slot": "2026-10-27#1"}, "details": details}),
            replay: None,
        }
    }

    fn apply(row: &RecordingRow, m: &QueuedEvent) -> Derived<RecordingRow, RecordingChange> {
        RecordingModel.derive(row, m, "id".into(), false).unwrap()
    }

    #[test]
    fn a_session_goes_detected_to_complete_with_captions() {
        let row = RecordingModel.empty("recording:s-1");
        let detected = apply(
            &row,
            &message(
                "session_detected",
                "2026-10-27T13:00:00Z",
                json!({"name": "BIO 101", "folder_id": "f-1", "state": "Scheduled"}),
            ),
        );
        assert_eq!(detected.row.session_id, "s-1");
        assert_eq!(detected.row.name.as_deref(), Some("BIO 101"));
        assert_eq!(detected.change.sequence, 1);
        assert_eq!(detected.detail_type, DETAIL_TYPE);
        let complete = apply(
            &detected.row,
            &message("recording_complete", "2026-10-27T14:20:00Z", json!({})),
        );
        let captions = apply(
            &complete.row,
            &message("captions_available", "2026-10-27T15:00:00Z", json!({})),
        );
        assert!(captions.row.complete && captions.row.captions);
        assert_eq!(captions.row.state.as_deref(), Some("Complete"));
        assert_eq!(captions.row.sequence, 3);
    }

    #[test]
    fn a_late_event_keeps_completion_but_not_its_older_fields() {
        let row = RecordingModel.empty("recording:s-1");
        let renamed = apply(
            &row,
            &message(
                "session_renamed",
                "2026-10-27T15:00:00Z",
                json!({"from": "a", "to": "b"}),
            ),
        );
        let late = apply(
            &renamed.row,
            &message(
                "session_detected",
                "2026-10-27T13:00:00Z",
                json!({"name": "a", "state": "Complete"}),
            ),
        );
        assert!(late.change.late);
        assert_eq!(late.row.name.as_deref(), Some("b"), "newer name kept");
        let late_complete = apply(
            &late.row,
            &message("recording_complete", "2026-10-27T14:00:00Z", json!({})),
        );
        assert!(
            late_complete.row.complete,
            "completion is a fact whatever the order"
        );
    }

    #[test]
    fn unknown_events_are_model_errors_and_rows_round_trip() {
        let row = RecordingModel.empty("recording:s-1");
        let err = RecordingModel
            .derive(
                &row,
                &message("teleported", "2026-10-27T13:00:00Z", json!({})),
                "id".into(),
                false,
            )
            .unwrap_err();
        assert!(err.0.contains("teleported"), "{err}");
        let stored = apply(
            &row,
            &message("recording_complete", "2026-10-27T14:00:00Z", json!({})),
        )
        .row;
        assert_eq!(RecordingRow::from_item(&stored.to_item()), Some(stored));
    }
}
