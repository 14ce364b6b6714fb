//! Live events (Canvas or Caliper form) → the normalized fields of the entity they are about.
//! (Being written; the contract below is fixed.)

use crate::live_events::Format;
use serde_json::{Map, Value};

/// What one event says, in coursewire's normalized vocabulary.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Normalized {
    /// For events that state a catalog entity's fields (e.g. `enrollment_updated`): those
    /// fields, with normalized names and global ids. `None` for activity about an entity
    /// (`logged_in`, `quiz_submitted`, ...) and for entity types outside the catalog.
    pub state_fields: Option<Map<String, Value>>,
    /// The event marks the entity deleted (`workflow_state: "deleted"`, `*_deleted`).
    pub deleted: bool,
    /// The owning entity's key (`course:<id>` for a section, `assignment:<id>` for a
    /// submission, `module:<id>` for a module item...).
    pub parent: Option<String>,
    /// What the event carries, for the published change's `data`: `state_fields` when set,
    /// else the event body in Canvas form (Caliper is mapped to it) with global ids.
    pub data: Map<String, Value>,
    /// Canvas context of the event, without personal data (no IPs, user agents, logins).
    pub context: Map<String, Value>,
}

pub fn normalize(
    _event_name: &str,
    _entity_key: &str,
    _format: Format,
    _payload: &Value,
) -> Normalized {
    Normalized::default()
}
