//! The `detail` of Canvas's change events on the bus (source `coursewire.canvas`), one per
//! accepted Canvas event, and their `detail-type`s. Their JSON Schemas are
//! `events/schemas/`; `tests/schemas.rs` holds this shape to them.

use super::{CATALOG_TYPES, ChangeKind, is_catalog_type};
use crate::live_events::Format;
use crate::live_events::entity::documented_events;
use coursewire_pipeline::bus::Producer;
use coursewire_pipeline::inbox::Delivery;
use coursewire_pipeline::processor::ChangeDetail;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// `source` of every Canvas change event.
pub const SOURCE: &str = Producer::CANVAS.source();
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
    pub delivery: Delivery,
    /// Canvas's context for the event (account, course, acting user id, request id).
    pub context: Map<String, Value>,
}

impl ChangeDetail for ChangeEvent {
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

/// The `detail-type` of the change an event makes: reads well in a rule
/// (`Grade Changed`, `Enrollment Updated`, `Assignment Deleted`, `Asset Accessed`).
pub fn detail_type(event_name: &str, entity_type: &str, kind: ChangeKind) -> String {
    if kind == ChangeKind::Deleted
        && let Some(title) = super::entity_title(entity_type)
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
    for (event_name, entity_type) in documented_events() {
        let kind = if is_catalog_type(entity_type) {
            ChangeKind::Updated
        } else {
            ChangeKind::Activity
        };
        out.push((
            detail_type(event_name, entity_type, kind),
            entity_type.to_string(),
        ));
    }
    for entity_type in CATALOG_TYPES {
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
