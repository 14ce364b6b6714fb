//! The catalog: coursewire's copy of the Canvas objects downstream systems care about
//! (courses, sections, enrollments, users, assignments, submissions, modules, module items),
//! built from live events.
//!
//! Every entity key that ever had an event gets a row carrying its per-entity **sequence**
//! (the last number published for it) and the `event_time` of the change that last shaped its
//! state, so a late event never regresses it. Entity types outside the catalog (page views,
//! discussion posts, ...) keep a row with the sequence only: they are published as a stream.
//!
//! - [`fields`]: the normalized fields each state-bearing event states, their sources and types
//!   (the published schemas are generated from them)
//! - [`normalize`]: an event in either format → the entity's normalized fields
//! - [`apply`]: what one event does to an entity row (pure, the rules live here)
//! - [`CatalogModel`]: the processor's entity model for Canvas (normalize + apply → change),
//!   and [`ProcessorConfig`], the processor function's wiring of it
//! - [`change_event`]: the change events it publishes
//! - [`DynamoCatalog`]: reading rows back (admin, orchestrator, tests)

mod apply;
pub mod change_event;
mod dynamo;
pub mod fields;
mod model;
mod normalize;
mod processor_config;

pub use apply::{Applied, ChangeKind, apply};
pub use change_event::{CanvasOrigin, ChangeEvent, EntityRef, detail_type};
pub use dynamo::{CATALOG_PARENT_INDEX, DynamoCatalog};
pub use model::CatalogModel;
pub use normalize::{Normalized, normalize};
pub use processor_config::ProcessorConfig;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The entity types whose state the catalog keeps, with their names in detail-types
/// (`Module Item Deleted`). Every other list of them derives from this one.
const CATALOG_ENTITIES: [(&str, &str); 8] = [
    ("course", "Course"),
    ("section", "Section"),
    ("enrollment", "Enrollment"),
    ("user", "User"),
    ("assignment", "Assignment"),
    ("submission", "Submission"),
    ("module", "Module"),
    ("module_item", "Module Item"),
];

/// The entity types whose state the catalog keeps.
pub const CATALOG_TYPES: [&str; CATALOG_ENTITIES.len()] = {
    let mut types = [""; CATALOG_ENTITIES.len()];
    let mut i = 0;
    while i < types.len() {
        types[i] = CATALOG_ENTITIES[i].0;
        i += 1;
    }
    types
};

pub fn is_catalog_type(entity_type: &str) -> bool {
    CATALOG_TYPES.contains(&entity_type)
}

/// A catalog entity type's display name in detail-types.
fn entity_title(entity_type: &str) -> Option<&'static str> {
    CATALOG_ENTITIES
        .iter()
        .find(|(name, _)| *name == entity_type)
        .map(|(_, title)| *title)
}

/// One catalog row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EntityRecord {
    /// The entity key, e.g. `enrollment:21070000000046825`.
    pub key: String,
    pub entity_type: String,
    /// The entity id (the key without its type).
    pub entity_id: String,
    /// The last sequence number published for this entity (0 = none yet).
    pub sequence: u64,
    /// The newest `event_time` (sortable RFC 3339) applied to this entity; an event older than
    /// this is flagged late.
    pub event_time: String,
    /// Content hash of that event.
    pub event_hash: String,
    /// The current normalized state; `None` for stream-only entity types and deleted entities.
    pub state: Option<Map<String, Value>>,
    /// Per state field, the `event_time` of the event that set it: each field keeps the value
    /// of the newest event that carried it, whatever order events arrive in.
    pub field_times: Map<String, Value>,
    pub deleted: bool,
    /// The owning entity's key (a section's course, a submission's assignment...), for
    /// "everything in this course" queries.
    pub parent: Option<String>,
    /// When coursewire last wrote the row.
    pub updated_at: String,
}

impl EntityRecord {
    /// A row that has not seen any event yet.
    pub fn empty(key: &str) -> Self {
        let (entity_type, entity_id) = key.split_once(':').unwrap_or((key, ""));
        Self {
            key: key.to_string(),
            entity_type: entity_type.to_string(),
            entity_id: entity_id.to_string(),
            sequence: 0,
            event_time: String::new(),
            event_hash: String::new(),
            state: None,
            field_times: Map::new(),
            deleted: false,
            parent: None,
            updated_at: String::new(),
        }
    }
}
