//! Recordings: what happens to each lecture's Panopto session, turned into recording events
//! that flow through the one pipeline (inbox → `recordings.fifo`, ordered per session).
//!
//! - [`booking`]: the Panopto scheduled recordings booked for lectures, kept in step
//! - [`config`]: the recording functions' wiring from their environment
//! - [`event`]: the recording events and their identity
//! - [`folders`]: a section's Panopto folder, found again by its external id
//! - [`observation`]: what the poller saw, and the events a change between sightings means
//! - [`poller`]: `panopto-poller`, the lectures in the window looked at in batched calls
//! - [`webhook`]: `panopto-webhook`, HMAC-signed events from institutional middleware

pub mod booking;
pub mod config;
pub mod event;
pub mod folders;
pub mod observation;
pub mod poller;
pub mod webhook;

pub use event::{LectureRef, RecordingEvent, RecordingEventKind};
