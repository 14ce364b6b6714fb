//! The processor's entity model for Canvas: a live event is normalized, applied to its
//! catalog row, and becomes one [`ChangeEvent`].

use super::change_event::{CanvasOrigin, ChangeEvent, EntityRef, SCHEMA_VERSION, detail_type};
use super::{EntityRecord, apply, normalize};
use crate::live_events::Format;
use chrono::Utc;
use coursewire_pipeline::handoff::QueuedEvent;
use coursewire_pipeline::processor::{Derived, EntityModel, ModelError};
use coursewire_pipeline::time::format_sortable;

/// Canvas's events on the catalog.
#[derive(Debug, Clone, Copy, Default)]
pub struct CatalogModel;

impl EntityModel for CatalogModel {
    type Row = EntityRecord;
    type Change = ChangeEvent;

    fn empty(&self, entity_key: &str) -> EntityRecord {
        EntityRecord::empty(entity_key)
    }

    fn sequence(&self, row: &EntityRecord) -> u64 {
        row.sequence
    }

    fn derive(
        &self,
        current: &EntityRecord,
        message: &QueuedEvent,
        event_id: String,
        replay: bool,
    ) -> Result<Derived<EntityRecord, ChangeEvent>, ModelError> {
        let format = Format::parse(&message.format).ok_or_else(|| {
            ModelError(format!(
                "`{}` is not a Canvas event format (canvas, caliper)",
                message.format
            ))
        })?;
        let normalized = normalize(
            &message.event_name,
            &message.entity_key,
            format,
            &message.payload,
        );
        let now = format_sortable(&Utc::now());
        let applied = apply(
            current,
            &message.event_name,
            &message.event_time,
            &message.event_hash,
            &normalized,
            &now,
        );
        let record = applied.record;
        let detail_type = detail_type(&message.event_name, &record.entity_type, applied.kind);
        let change = ChangeEvent {
            event_id,
            schema_version: SCHEMA_VERSION,
            entity: EntityRef {
                entity_type: record.entity_type.clone(),
                id: record.entity_id.clone(),
                key: record.key.clone(),
                parent: record.parent.clone(),
            },
            sequence: record.sequence,
            change: applied.kind,
            late: applied.late,
            replay,
            occurred_at: message.event_time.clone(),
            received_at: message.received_at.clone(),
            published_at: String::new(),
            canvas: CanvasOrigin {
                event_name: message.event_name.clone(),
                event_hash: message.event_hash.clone(),
                format,
                delivery: message.source.clone(),
                context: normalized.context,
            },
            data: normalized.data,
            changed: applied.changed,
            previous: applied.previous,
            state: record.state.clone(),
            deleted: record.deleted,
        };
        Ok(Derived {
            entity_type: record.entity_type.clone(),
            row: record,
            detail_type,
            change,
        })
    }
}
