//! Audit records in their own terms.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;

/// What a record (or an incident) is about: a lecture (section and slot) or a Panopto
/// recording that belongs to no lecture (yet).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Subject {
    Lecture { section_id: String, slot: String },
    Recording { session_id: String },
}

impl Subject {
    pub fn lecture(section_id: impl Into<String>, slot: impl Into<String>) -> Self {
        Self::Lecture {
            section_id: section_id.into(),
            slot: slot.into(),
        }
    }

    pub fn recording(session_id: impl Into<String>) -> Self {
        Self::Recording {
            session_id: session_id.into(),
        }
    }

    /// `lecture#901/2026-10-27#1`, `recording#<session id>`: the partition key of a
    /// subject's audit records and incidents.
    pub fn key(&self) -> String {
        match self {
            Self::Lecture { section_id, slot } => format!("lecture#{section_id}/{slot}"),
            Self::Recording { session_id } => format!("recording#{session_id}"),
        }
    }
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Lecture { section_id, slot } => {
                write!(f, "lecture {slot} of section {section_id}")
            }
            Self::Recording { session_id } => write!(f, "recording {session_id}"),
        }
    }
}

/// Who acted: the function, and the person or Panopto user when one was behind it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    pub function: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
}

impl Actor {
    pub fn function(name: impl Into<String>) -> Self {
        Self {
            function: name.into(),
            principal: None,
        }
    }

    pub fn person(function: impl Into<String>, principal: impl Into<String>) -> Self {
        Self {
            function: function.into(),
            principal: Some(principal.into()),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Something was seen (a poll, an event): no action taken.
    Observed,
    /// The action was taken.
    Done,
    /// Nothing to do (already done, or a rule says not to).
    Skipped,
    Failed,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Observed => "observed",
            Self::Done => "done",
            Self::Skipped => "skipped",
            Self::Failed => "failed",
        }
    }
}

/// Why: the publishing rule (and its version) that drove a decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Why {
    pub rule: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule_version: Option<u64>,
}

/// The upstream ids a record stands on.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Upstream {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub canvas_event_ids: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recording_event_hashes: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub panopto_session_id: Option<String>,
}

impl Upstream {
    pub fn session(session_id: impl Into<String>) -> Self {
        Self {
            panopto_session_id: Some(session_id.into()),
            ..Self::default()
        }
    }
}

/// What was done or decided. States are Panopto's names (`Disconnected`, `Complete`...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// A Panopto scheduled recording made, moved or found for the lecture.
    Booked {
        session_id: String,
        recorder_id: String,
        room_id: String,
    },
    /// The lecture could not be booked (no recorder, a conflict...): `detail` says why.
    NotBooked {
        room_id: String,
    },
    /// A booking withdrawn (the lecture was cancelled).
    BookingCancelled {
        session_id: String,
    },
    /// A poll whose sighting of the lecture differed from the last: the session's state
    /// (`None`: Panopto does not have it) and the recorder's.
    Polled {
        session_id: String,
        session_state: Option<String>,
        recorder_id: Option<String>,
        recorder_state: Option<String>,
        recorder_healthy: Option<bool>,
        captions: bool,
    },
    IncidentOpened {
        incident_id: String,
        kind: String,
    },
    IncidentAcknowledged {
        incident_id: String,
        kind: String,
    },
    IncidentResolved {
        incident_id: String,
        kind: String,
    },
    /// A step of a recording's publish workflow (match, file, caption, access, post, audit),
    /// done, skipped or failed.
    WorkflowStep {
        session_id: String,
        step: String,
    },
    /// An action written by a newer version of coursewire than this reader.
    #[serde(other)]
    Other,
}

impl Action {
    pub fn name(&self) -> &'static str {
        match self {
            Self::Booked { .. } => "booked",
            Self::NotBooked { .. } => "not_booked",
            Self::BookingCancelled { .. } => "booking_cancelled",
            Self::Polled { .. } => "polled",
            Self::IncidentOpened { .. } => "incident_opened",
            Self::IncidentAcknowledged { .. } => "incident_acknowledged",
            Self::IncidentResolved { .. } => "incident_resolved",
            Self::WorkflowStep { .. } => "workflow_step",
            Self::Other => "other",
        }
    }
}

/// One audit record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// Deterministic: the subject and the writer's idempotency key (see [`AuditRecord::new`]).
    pub id: String,
    pub subject: Subject,
    pub at: DateTime<Utc>,
    pub actor: Actor,
    #[serde(flatten)]
    pub action: Action,
    pub outcome: Outcome,
    /// One line a person reads in the timeline.
    pub detail: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub why: Option<Why>,
    #[serde(default)]
    pub upstream: Upstream,
}

impl AuditRecord {
    /// A record whose id is fixed by `subject` and `key`: what makes this action this one and
    /// not another (the sighting's version, the event's hash, the step and its attempt).
    /// Appending the same key twice keeps the first record.
    pub fn new(
        subject: Subject,
        key: &str,
        at: DateTime<Utc>,
        actor: Actor,
        action: Action,
        outcome: Outcome,
        detail: impl Into<String>,
    ) -> Self {
        let digest = Sha256::digest(format!("{}\n{}\n{key}", subject.key(), action.name()));
        Self {
            id: hex::encode(&digest[..16]),
            subject,
            at,
            actor,
            action,
            outcome,
            detail: detail.into(),
            why: None,
            upstream: Upstream::default(),
        }
    }

    pub fn because(mut self, why: Why) -> Self {
        self.why = Some(why);
        self
    }

    pub fn upstream(mut self, upstream: Upstream) -> Self {
        self.upstream = upstream;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn polled() -> Action {
        Action::Polled {
            session_id: "s-1".into(),
            session_state: None,
            recorder_id: Some("rec-1".into()),
            recorder_state: Some("Disconnected".into()),
            recorder_healthy: Some(false),
            captions: false,
        }
    }

    #[test]
    fn ids_follow_subject_action_and_key_not_time() {
        let lecture = Subject::lecture("901", "2026-10-27#1");
        let at = Utc::now();
        let a = AuditRecord::new(
            lecture.clone(),
            "v1",
            at,
            Actor::function("panopto-poller"),
            polled(),
            Outcome::Observed,
            "x",
        );
        let retried = AuditRecord::new(
            lecture.clone(),
            "v1",
            at + chrono::TimeDelta::seconds(60),
            Actor::function("panopto-poller"),
            polled(),
            Outcome::Observed,
            "x",
        );
        let next = AuditRecord::new(
            lecture,
            "v2",
            at,
            Actor::function("panopto-poller"),
            polled(),
            Outcome::Observed,
            "x",
        );
        assert_eq!(a.id, retried.id);
        assert_ne!(a.id, next.id);
        assert_eq!(a.id.len(), 32);
        assert_eq!(
            Subject::lecture("901", "2026-10-27#1").key(),
            "lecture#901/2026-10-27#1"
        );
        assert_ne!(
            Subject::recording("a").key(),
            Subject::lecture("a", "").key()
        );
    }

    #[test]
    fn records_round_trip_and_unknown_actions_still_read() {
        let record = AuditRecord::new(
            Subject::lecture("901", "2026-10-27#1"),
            "v1",
            Utc::now(),
            Actor::function("panopto-poller"),
            polled(),
            Outcome::Observed,
            "recorder Disconnected",
        )
        .upstream(Upstream::session("s-1"));
        let json = serde_json::to_value(&record).unwrap();
        assert_eq!(json["action"], "polled");
        let back: AuditRecord = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(back, record);
        let mut newer = json;
        newer["action"] = "posted_to_canvas".into();
        let read: AuditRecord = serde_json::from_value(newer).unwrap();
        assert_eq!(read.action, Action::Other);
    }
}
