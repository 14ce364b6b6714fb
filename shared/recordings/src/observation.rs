//! What the poller saw of a lecture's session and recorder, and the recording events that the
//! difference between two sightings means. Pure: the poller's rules live here.

use crate::event::{LectureRef, RecordingEvent, RecordingEventKind};
use chrono::{DateTime, Utc};
use coursewire_panopto::{RecorderState, SessionState, SessionStatus};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

/// One sighting, stored on the lecture row. `version` counts the sightings that changed
/// something: it is part of each event's identity, so a poll repeated after a crash emits the
/// same events (deduplicated by the inbox) and a later, real change emits new ones.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Observation {
    pub version: u64,
    pub session: Option<SessionSeen>,
    pub recorder: Option<RecorderState>,
    pub captions: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionSeen {
    pub name: String,
    pub folder_id: Option<String>,
    pub state: SessionState,
}

impl Observation {
    pub fn from_value(value: Option<&Value>) -> Self {
        value
            .and_then(|v| serde_json::from_value(v.clone()).ok())
            .unwrap_or_default()
    }

    /// Whether the session seen had started recording (recording, processing or complete).
    pub fn recording_started(&self) -> bool {
        self.session.as_ref().is_some_and(|s| started(s.state))
    }

    /// The same sighting as `self` apart from its version.
    fn same_as(&self, other: &Observation) -> bool {
        self.session == other.session
            && self.recorder == other.recorder
            && self.captions == other.captions
    }
}

/// How far along the capture a state is (`Created` and `Scheduled` are before it).
fn stage(state: SessionState) -> u8 {
    match state {
        SessionState::Created | SessionState::Scheduled | SessionState::Unknown => 0,
        SessionState::Recording | SessionState::Broadcasting => 1,
        SessionState::Processing => 2,
        SessionState::Complete => 3,
    }
}

/// Whether a session in `state` has recorded something (it is recording or past it).
pub fn started(state: SessionState) -> bool {
    stage(state) >= 1
}

/// What the poller sees now of one lecture.
pub struct Sighting<'a> {
    pub session_id: &'a str,
    pub lecture: &'a LectureRef,
    pub scheduled_start: DateTime<Utc>,
    pub scheduled_end: DateTime<Utc>,
    pub recorder_id: Option<&'a str>,
    pub status: Option<&'a SessionStatus>,
    pub recorder: Option<RecorderState>,
    pub captions: bool,
    pub now: DateTime<Utc>,
}

/// The events between the previous observation and this sighting, in the order they
/// happened, and the observation to store (`None` when nothing changed).
pub fn changes(
    previous: &Observation,
    seen: &Sighting<'_>,
) -> (Vec<RecordingEvent>, Option<Observation>) {
    let current = Observation {
        version: previous.version + 1,
        session: seen.status.map(|s| SessionSeen {
            name: s.name.clone(),
            folder_id: s.folder_id.clone(),
            state: s.state,
        }),
        // A recorder the answer left out keeps its last known state.
        recorder: seen.recorder.or(previous.recorder),
        captions: seen.captions || previous.captions,
    };
    if current.same_as(previous) {
        return (Vec::new(), None);
    }
    let version = current.version;
    let mut events = Vec::new();
    let mut emit = |kind: RecordingEventKind, details: Value| {
        let details = match details {
            Value::Object(map) => map,
            _ => Map::new(),
        };
        let identity = json!({"version": version, "details": details});
        events.push(RecordingEvent::new(
            kind,
            seen.session_id,
            Some(seen.lecture),
            seen.now,
            details,
            &identity,
        ));
    };
    if previous.recorder != current.recorder
        && let Some(state) = current.recorder
        && (previous.recorder.is_some() || !state.is_healthy())
    {
        emit(
            RecordingEventKind::RecorderStateChanged,
            json!({
                "recorder_id": seen.recorder_id,
                "from": previous.recorder.map(RecorderState::as_str),
                "to": state.as_str(),
                "healthy": state.is_healthy(),
            }),
        );
    }
    if let (Some(now), Some(status)) = (&current.session, seen.status) {
        match &previous.session {
            None => emit(
                RecordingEventKind::SessionDetected,
                json!({"name": now.name, "folder_id": now.folder_id, "state": now.state.as_str()}),
            ),
            Some(before) => {
                if before.name != now.name {
                    emit(
                        RecordingEventKind::SessionRenamed,
                        json!({"from": before.name, "to": now.name}),
                    );
                }
                if before.folder_id != now.folder_id {
                    emit(
                        RecordingEventKind::SessionMoved,
                        json!({"from": before.folder_id, "to": now.folder_id}),
                    );
                }
            }
        }
        let was = previous.session.as_ref().map_or(0, |s| stage(s.state));
        let is = stage(now.state);
        let timing = json!({
            "scheduled_start": seen.scheduled_start,
            "scheduled_end": seen.scheduled_end,
            "started_at": status.start_time,
            "duration_seconds": status.duration,
        });
        if was < 1 && is >= 1 {
            emit(RecordingEventKind::RecordingStarted, timing.clone());
        }
        if was < 2 && is >= 2 {
            emit(RecordingEventKind::RecordingStopped, timing.clone());
        }
        if was < 2 && is == 2 {
            emit(RecordingEventKind::Processing, json!({}));
        }
        if was < 3 && is == 3 {
            emit(RecordingEventKind::RecordingComplete, timing);
        }
    }
    if current.captions && !previous.captions {
        emit(RecordingEventKind::CaptionsAvailable, json!({}));
    }
    (events, Some(current))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn status(state: SessionState, name: &str, folder: &str) -> SessionStatus {
        SessionStatus {
            id: "s-1".into(),
            name: name.into(),
            state,
            folder_id: Some(folder.into()),
            folder_name: None,
            start_time: Some(at("2026-10-27T13:00:00Z")),
            duration: None,
            remote_recorder_ids: vec!["rr-1".into()],
            is_broadcast: false,
            status_message: None,
        }
    }

    fn look(
        previous: &Observation,
        status: Option<&SessionStatus>,
        recorder: Option<RecorderState>,
        captions: bool,
    ) -> (Vec<&'static str>, Option<Observation>) {
        let lecture = LectureRef {
            section_id: "101".into(),
            slot: "2026-10-27#1".into(),
        };
        let seen = Sighting {
            session_id: "s-1",
            lecture: &lecture,
            scheduled_start: at("2026-10-27T13:00:00Z"),
            scheduled_end: at("2026-10-27T14:15:00Z"),
            recorder_id: Some("rr-1"),
            status,
            recorder,
            captions,
            now: at("2026-10-27T14:30:00Z"),
        };
        let (events, next) = changes(previous, &seen);
        (events.iter().map(|e| e.kind.as_str()).collect(), next)
    }

    #[test]
    fn a_lecture_recorded_from_start_to_captions() {
        let scheduled = status(SessionState::Scheduled, "BIO-201 Lecture 7", "f-1");
        let (events, o1) = look(
            &Observation::default(),
            Some(&scheduled),
            Some(RecorderState::Previewing),
            false,
        );
        assert_eq!(events, ["session_detected"]);
        let o1 = o1.unwrap();
        let (events, none) = look(
            &o1,
            Some(&scheduled),
            Some(RecorderState::Previewing),
            false,
        );
        assert!(
            events.is_empty() && none.is_none(),
            "nothing changed, nothing stored"
        );
        let recording = status(SessionState::Recording, "BIO-201 Lecture 7", "f-1");
        let (events, o2) = look(&o1, Some(&recording), Some(RecorderState::Recording), false);
        assert_eq!(events, ["recorder_state_changed", "recording_started"]);
        let complete = status(SessionState::Complete, "BIO-201 Lecture 7", "f-1");
        let (events, o3) = look(
            &o2.unwrap(),
            Some(&complete),
            Some(RecorderState::Previewing),
            false,
        );
        assert_eq!(
            events,
            [
                "recorder_state_changed",
                "recording_stopped",
                "recording_complete"
            ]
        );
        let (events, _) = look(
            &o3.unwrap(),
            Some(&complete),
            Some(RecorderState::Previewing),
            true,
        );
        assert_eq!(events, ["captions_available"]);
    }

    #[test]
    fn a_faulted_recorder_and_hand_edits_are_reported() {
        let scheduled = status(SessionState::Scheduled, "BIO-201 Lecture 7", "f-1");
        let (events, o1) = look(
            &Observation::default(),
            Some(&scheduled),
            Some(RecorderState::Faulted),
            false,
        );
        assert_eq!(
            events,
            ["recorder_state_changed", "session_detected"],
            "an unhealthy first sighting is reported"
        );
        let renamed = status(SessionState::Scheduled, "Biology – moved lecture", "f-2");
        let (events, _) = look(
            &o1.unwrap(),
            Some(&renamed),
            Some(RecorderState::Faulted),
            false,
        );
        assert_eq!(events, ["session_renamed", "session_moved"]);
    }

    #[test]
    fn the_same_change_seen_twice_is_the_same_event() {
        let complete = status(SessionState::Complete, "x", "f-1");
        let lecture = LectureRef {
            section_id: "101".into(),
            slot: "2026-10-27#1".into(),
        };
        let seen = |now: &str| Sighting {
            session_id: "s-1",
            lecture: &lecture,
            scheduled_start: at("2026-10-27T13:00:00Z"),
            scheduled_end: at("2026-10-27T14:15:00Z"),
            recorder_id: Some("rr-1"),
            status: Some(&complete),
            recorder: None,
            captions: false,
            now: at(now),
        };
        use coursewire_pipeline::inbox::SourceEvent;
        let (a, _) = changes(&Observation::default(), &seen("2026-10-27T14:30:00Z"));
        let (b, _) = changes(&Observation::default(), &seen("2026-10-27T14:31:00Z"));
        let hashes = |e: &[RecordingEvent]| {
            e.iter()
                .map(|e| e.content_hash().to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            hashes(&a),
            hashes(&b),
            "a poll repeated after a crash re-emits the same events"
        );
        assert_eq!(
            a.len(),
            4,
            "detected, started, stopped, complete in one sighting"
        );
    }
}
