//! Incidents in their own terms.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// What went wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IncidentKind {
    /// No recording 15 minutes after the lecture ended.
    MissingRecording,
    /// Captions not available within the rule's SLA.
    CaptionSlaMissed,
    /// Captions still not available at twice the rule's SLA: the higher-severity escalation.
    CaptionSlaEscalated,
    /// A room's recorder faulted or disconnected around a lecture.
    RecorderDown,
    /// The publish workflow ran out of retries; the recording needs attention.
    PublishFailed,
    /// A session matched no lecture, or more than one.
    UnmatchedRecording,
}

impl IncidentKind {
    pub const ALL: [IncidentKind; 6] = [
        Self::MissingRecording,
        Self::CaptionSlaMissed,
        Self::CaptionSlaEscalated,
        Self::RecorderDown,
        Self::PublishFailed,
        Self::UnmatchedRecording,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::MissingRecording => "missing_recording",
            Self::CaptionSlaMissed => "caption_sla_missed",
            Self::CaptionSlaEscalated => "caption_sla_escalated",
            Self::RecorderDown => "recorder_down",
            Self::PublishFailed => "publish_failed",
            Self::UnmatchedRecording => "unmatched_recording",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// How urgently a person must act: a page's routing (an SNS message attribute).
    pub fn severity(self) -> Severity {
        match self {
            Self::RecorderDown | Self::UnmatchedRecording => Severity::Warning,
            Self::MissingRecording | Self::CaptionSlaMissed | Self::PublishFailed => Severity::Page,
            Self::CaptionSlaEscalated => Severity::Critical,
        }
    }
}

/// How urgently an incident needs a person.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Someone can still prevent the loss (a recorder down before its lecture ends).
    Warning,
    /// Something was lost or is late and needs a person today.
    Page,
    /// An incident that was paged is still not fixed.
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Warning => "warning",
            Self::Page => "page",
            Self::Critical => "critical",
        }
    }
}

impl fmt::Display for IncidentKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an incident is about: the audit trail's subjects, so an incident and the records
/// behind it share a key.
pub use coursewire_audit::Subject;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IncidentState {
    Open,
    Acknowledged,
    Resolved,
}

impl IncidentState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Acknowledged => "acknowledged",
            Self::Resolved => "resolved",
        }
    }
}

/// What the opener knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewIncident {
    pub kind: IncidentKind,
    pub subject: Subject,
    /// One line a person on call can act on.
    pub reason: String,
    /// Who opened it: the function (and principal, for a person).
    pub opened_by: String,
    /// The audit records behind it.
    pub audit_ids: Vec<String>,
    /// The facts behind the reason as fields (room, recorder state, course, ...), for
    /// whoever routes the page. Ids, never personal data.
    pub details: BTreeMap<String, String>,
    /// At most one incident of its kind ever on its subject, even after it is resolved (a
    /// monitor's finding about one lecture, re-found by every overlapping tick).
    pub once: bool,
}

/// An incident with its lifecycle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Incident {
    pub id: String,
    pub kind: IncidentKind,
    pub subject: Subject,
    pub state: IncidentState,
    pub reason: String,
    pub opened_at: DateTime<Utc>,
    pub opened_by: String,
    pub acknowledged_at: Option<DateTime<Utc>>,
    pub acknowledged_by: Option<String>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub resolved_by: Option<String>,
    pub resolution: Option<String>,
    pub audit_ids: Vec<String>,
    #[serde(default)]
    pub details: BTreeMap<String, String>,
    #[serde(default)]
    pub once: bool,
    /// Whether the page for its opening went out.
    pub paged: bool,
    /// When a caller took on sending the page (so concurrent openers page once; a claim
    /// older than the lease is taken over, covering a caller that crashed before paging).
    #[serde(default)]
    pub page_claimed_at: Option<DateTime<Utc>>,
}

impl Incident {
    /// A new open incident, not yet paged.
    pub fn open(new: NewIncident, at: DateTime<Utc>) -> Self {
        Self {
            id: uuid::Uuid::new_v4().to_string(),
            kind: new.kind,
            subject: new.subject,
            state: IncidentState::Open,
            reason: new.reason,
            opened_at: at,
            opened_by: new.opened_by,
            acknowledged_at: None,
            acknowledged_by: None,
            resolved_at: None,
            resolved_by: None,
            resolution: None,
            audit_ids: new.audit_ids,
            details: new.details,
            once: new.once,
            paged: false,
            page_claimed_at: None,
        }
    }

    /// The page text: short, no personal data (subjects are ids, reasons are the system's).
    pub fn page_subject(&self) -> String {
        let text = match self.kind.severity() {
            Severity::Critical => format!("coursewire CRITICAL: {} on {}", self.kind, self.subject),
            _ => format!("coursewire: {} on {}", self.kind, self.subject),
        };
        // SNS limits a subject to 100 characters.
        text.chars().take(100).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_and_pages_fit_sns() {
        for kind in IncidentKind::ALL {
            assert_eq!(IncidentKind::parse(kind.as_str()), Some(kind));
        }
        let long = Incident::open(
            NewIncident {
                kind: IncidentKind::MissingRecording,
                subject: Subject::lecture("9".repeat(80), "2026-10-27#1"),
                reason: "r".into(),
                opened_by: "sla-monitor".into(),
                audit_ids: vec![],
                details: BTreeMap::new(),
                once: false,
            },
            Utc::now(),
        );
        assert_eq!(long.page_subject().chars().count(), 100);
    }
}
