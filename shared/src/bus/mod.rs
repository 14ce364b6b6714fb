//! The change-event bus: the normalized events downstream systems subscribe to on the
//! coursewire EventBridge bus. Every producer publishes under its own `source`
//! ([`Producer`]); the publisher ([`EventPublisher`]) takes entries whose detail each producer
//! shapes itself. Canvas changes are one per accepted Canvas event ([`ChangeEvent`]).
//!
//! Subscribers match on `source` = [`SOURCE`] and a `detail-type` such as `Grade Changed` or
//! `Enrollment Updated` ([`detail_type`]); they deduplicate by `detail.event_id` and order by
//! `detail.sequence` within `detail.entity.key`. The JSON Schema of every detail-type lives in
//! `events/schemas/`.

mod eventbridge;

pub use eventbridge::EventBridgePublisher;

use crate::aws::AwsError;
use crate::catalog::ChangeKind;
use crate::inbox::Source;
use crate::live_events::Format;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Who publishes on the bus: the `source` of its events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Producer(&'static str);

impl Producer {
    /// Canvas's changes (the processor).
    pub const CANVAS: Producer = Producer("coursewire.canvas");
    /// Lecture capture: recordings published, incidents opened and resolved.
    pub const CAPTURE: Producer = Producer("coursewire.capture");

    pub fn source(self) -> &'static str {
        self.0
    }
}

/// `source` of every Canvas change event.
pub const SOURCE: &str = Producer::CANVAS.0;
/// `detail.schema_version`; bump on incompatible change (subscribers can filter on it).
pub const SCHEMA_VERSION: u32 = 1;

/// The `detail` of a change event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChangeEvent {
    /// Stable per source event: a retry or a replay re-emits the same id. Deduplicate on it.
    pub event_id: String,
    pub schema_version: u32,
    pub entity: EntityRef,
    /// Strictly increasing and gapless per `entity.key` across everything published for it.
    pub sequence: u64,
    pub change: ChangeKind,
    /// Older than the change that last shaped the entity: `state` was not changed by it.
    pub late: bool,
    /// Re-emitted by a replay with the republish option (the subscriber may have it already).
    pub replay: bool,
    /// When it happened in Canvas (`event_time`).
    pub occurred_at: String,
    /// When coursewire received it.
    pub received_at: String,
    /// When this copy was put on the bus.
    pub published_at: String,
    pub canvas: CanvasOrigin,
    /// What the event carried, normalized (global ids, coursewire field names).
    pub data: Map<String, Value>,
    /// State fields this event changed...
    pub changed: Vec<String>,
    /// ...and their values before it.
    pub previous: Map<String, Value>,
    /// The entity's current catalog state after this event (`null` when deleted, and for
    /// entity types outside the catalog).
    pub state: Option<Map<String, Value>>,
    /// The entity is deleted (after this event).
    pub deleted: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntityRef {
    #[serde(rename = "type")]
    pub entity_type: String,
    pub id: String,
    /// `<type>:<id>`: the ordering unit.
    pub key: String,
    /// The owning entity's key (a section's course...), when known.
    pub parent: Option<String>,
}

/// Where the change came from in Canvas.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CanvasOrigin {
    pub event_name: String,
    /// The source event's content hash (its inbox key; what replay selects by).
    pub event_hash: String,
    pub format: Format,
    /// `sqs` or `https` for a live event; `reconciliation` for a change the reconciler found
    /// through Canvas's API (a lost live event, or state Canvas never pushes).
    pub delivery: Source,
    /// Canvas's context for the event (account, course, acting user id, request id).
    pub context: Map<String, Value>,
}

/// One entry for the bus.
#[derive(Debug, Clone, PartialEq)]
pub struct Publication {
    pub detail_type: String,
    pub event: ChangeEvent,
}

impl Publication {
    /// The bus entry of this change event.
    pub fn entry(&self) -> Result<BusEntry, AwsError> {
        Ok(BusEntry {
            detail_type: self.detail_type.clone(),
            detail: serde_json::to_string(&self.event)
                .map_err(|e| AwsError::Permanent(e.to_string()))?,
        })
    }
}

/// One event for the bus, as its producer shaped it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusEntry {
    pub detail_type: String,
    /// The `detail` JSON.
    pub detail: String,
}

/// Puts a producer's events on the bus (its `source` is the publisher's [`Producer`]).
#[async_trait]
pub trait EventPublisher: Send + Sync {
    /// Publishes every entry; one result per entry, in order. Entries that fail are retried a
    /// few times (only those); what still fails is reported so its message can be retried.
    async fn publish(&self, entries: &[BusEntry]) -> Vec<Result<(), AwsError>>;
}

/// Display names of the catalog's entity types in detail-types.
fn entity_title(entity_type: &str) -> Option<&'static str> {
    Some(match entity_type {
        "course" => "Course",
        "section" => "Section",
        "enrollment" => "Enrollment",
        "user" => "User",
        "assignment" => "Assignment",
        "submission" => "Submission",
        "module" => "Module",
        "module_item" => "Module Item",
        _ => return None,
    })
}

/// The `detail-type` of the change an event makes: reads well in a rule
/// (`Grade Changed`, `Enrollment Updated`, `Assignment Deleted`, `Asset Accessed`).
pub fn detail_type(event_name: &str, entity_type: &str, kind: ChangeKind) -> String {
    if kind == ChangeKind::Deleted
        && let Some(title) = entity_title(entity_type)
    {
        return format!("{title} Deleted");
    }
    let fixed = match event_name {
        "grade_change" => Some("Grade Changed"),
        "course_grade_change" => Some("Course Grade Changed"),
        "enrollment_state_created" | "enrollment_state_updated" => Some("Enrollment State Changed"),
        "course_section_created" => Some("Section Created"),
        "course_section_updated" => Some("Section Updated"),
        "syllabus_updated" => Some("Course Syllabus Updated"),
        "logged_in" => Some("User Logged In"),
        "logged_out" => Some("User Logged Out"),
        _ => None,
    };
    if let Some(fixed) = fixed {
        return fixed.to_string();
    }
    title_case(event_name)
}

/// `wiki_page_created` → `Wiki Page Created`; `outcomes.retry_x` → `Outcomes Retry X`.
fn title_case(name: &str) -> String {
    name.split(['_', '.'])
        .filter(|w| !w.is_empty())
        .map(|word| {
            let mut chars = word.chars();
            chars
                .next()
                .map(|first| first.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Every detail-type coursewire can publish for Canvas's documented event types, with the
/// entity type each is about (what `events/schemas/` must cover).
pub fn documented_detail_types() -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for (event_name, entity_type) in crate::live_events::entity::documented_events() {
        let kind = if crate::catalog::is_catalog_type(entity_type) {
            ChangeKind::Updated
        } else {
            ChangeKind::Activity
        };
        out.push((
            detail_type(event_name, entity_type, kind),
            entity_type.to_string(),
        ));
    }
    for entity_type in crate::catalog::CATALOG_TYPES {
        out.push((
            detail_type("", entity_type, ChangeKind::Deleted),
            entity_type.to_string(),
        ));
    }
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detail_types_read_well_in_rules() {
        assert_eq!(
            detail_type("grade_change", "submission", ChangeKind::Updated),
            "Grade Changed"
        );
        assert_eq!(
            detail_type("enrollment_updated", "enrollment", ChangeKind::Updated),
            "Enrollment Updated"
        );
        assert_eq!(
            detail_type("assignment_updated", "assignment", ChangeKind::Deleted),
            "Assignment Deleted"
        );
        assert_eq!(
            detail_type("asset_accessed", "asset", ChangeKind::Activity),
            "Asset Accessed"
        );
        assert_eq!(
            detail_type("module_item_created", "module_item", ChangeKind::Created),
            "Module Item Created"
        );
    }

    #[test]
    fn every_documented_event_has_a_detail_type() {
        let types = documented_detail_types();
        assert!(types.len() > 60, "{}", types.len());
        assert!(
            types
                .iter()
                .any(|(t, e)| t == "Grade Changed" && e == "submission")
        );
        assert!(types.iter().any(|(t, _)| t == "Module Item Deleted"));
        assert!(types.iter().all(|(t, _)| !t.is_empty() && !t.contains('_')));
    }
}
