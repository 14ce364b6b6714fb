//! The event pipeline every source goes through (Canvas today, lecture capture next), with
//! the same guarantees for each: content-hash deduplication, per-entity FIFO order, exactly
//! one published change per source event, same-id republish after a crash, replay of any
//! window. A source brings its parsed events ([`inbox::SourceEvent`]) and its entity model
//! ([`processor::EntityModel`]); the rest is here.
//!
//! - [`inbox`]: every accepted source event by content hash, with its outbox record
//!   ([`inbox::record`] owns the item format)
//! - [`intake`]: admitting a source's events: inbox put, then the hand-off
//! - [`handoff`]: the hand-off to the processor on a FIFO queue (group = entity key)
//! - [`processor`]: change queue → entity rows → change events, one per source event
//! - [`bus`]: publishing on EventBridge, one `source` per producer
//! - [`replay`]: re-sending a window of inbox events to the change queue (heal or republish)
//! - [`time`]: the sortable timestamps the pipeline stores

pub mod bus;
pub mod handoff;
pub mod inbox;
pub mod intake;
pub mod processor;
pub mod replay;
pub mod time;
