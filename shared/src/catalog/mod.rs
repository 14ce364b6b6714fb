//! The catalog: coursewire's copy of the Canvas objects downstream systems care about
//! (courses, sections, enrollments, users, assignments, submissions, modules, module items),
//! built from live events.
//!
//! Every entity key that ever had an event gets a row carrying its per-entity **sequence**
//! (the last number published for it) and the `event_time` of the change that last shaped its
//! state, so a late event never regresses it. Entity types outside the catalog (page views,
//! discussion posts, ...) keep a row with the sequence only: they are published as a stream.
//!
//! - [`normalize`]: an event in either format → the entity's normalized fields
//! - [`apply`]: what one event does to an entity row (pure, the rules live here)
//! - [`DynamoCatalog`]: reading rows back (admin, orchestrator, tests)

mod apply;
mod dynamo;
pub mod normalize;

pub use apply::{Applied, ChangeKind, apply};
pub use dynamo::{CATALOG_PARENT_INDEX, DynamoCatalog, record_from_item, record_to_item};
pub use normalize::{Normalized, normalize};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The entity types whose state the catalog keeps.
pub const CATALOG_TYPES: [&str; 8] = [
    "course",
    "section",
    "enrollment",
    "user",
    "assignment",
    "submission",
    "module",
    "module_item",
];

pub fn is_catalog_type(entity_type: &str) -> bool {
    CATALOG_TYPES.contains(&entity_type)
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
