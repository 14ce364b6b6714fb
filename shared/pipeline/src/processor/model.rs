//! What a source's events do to its entities: the one part of the pipeline each source
//! writes (Canvas: the catalog, `CatalogModel` in `coursewire-live-events`). Everything else —
//! per-entity order, the row + outbox transaction, exactly one published change per source
//! event, same-id republish after a crash, replay — is the processor's, for every source.

use crate::handoff::QueuedEvent;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// A source's entity model.
pub trait EntityModel: Send + Sync + 'static {
    /// One entity's stored state (one row per entity key).
    type Row: Clone + Send + Sync + 'static;
    /// The `detail` of the change events it publishes.
    type Change: ChangeDetail;

    /// The row of an entity that has never had an event.
    fn empty(&self, entity_key: &str) -> Self::Row;
    /// The last sequence number published for the entity (0 = none yet).
    fn sequence(&self, row: &Self::Row) -> u64;
    /// Applies one message to the entity's current row: the next row and the change event
    /// to record. `event_id` is the change's stable id; `replay` marks a republish. Pure:
    /// the processor may call it again on a reloaded row.
    fn derive(
        &self,
        current: &Self::Row,
        message: &QueuedEvent,
        event_id: String,
        replay: bool,
    ) -> Result<Derived<Self::Row, Self::Change>, ModelError>;
}

/// What one message does to an entity.
#[derive(Debug, Clone, PartialEq)]
pub struct Derived<R, C> {
    pub row: R,
    /// For the `ChangesApplied` metric's dimension.
    pub entity_type: String,
    pub detail_type: String,
    pub change: C,
}

/// The part of a change event's detail the pipeline reads and stamps.
pub trait ChangeDetail: Serialize + DeserializeOwned + Clone + Send + Sync + 'static {
    fn event_id(&self) -> &str;
    fn sequence(&self) -> u64;
    /// Older than the change that last shaped the entity.
    fn late(&self) -> bool;
    /// Sets the per-publication fields (when this copy was put on the bus; a republish).
    fn stamp(&mut self, published_at: &str, replay: bool);
}

/// A message the model cannot read: only a bug writes one, so it is dropped, not retried
/// (the inbox keeps the event for a replay after the fix).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ModelError(pub String);
