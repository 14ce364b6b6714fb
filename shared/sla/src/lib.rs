//! The lecture-capture SLA monitor (`sla-monitor`, every minute): a lecture with no
//! recording 15 minutes after class end, captions later than the department's SLA and twice
//! that, a recorder faulted or disconnected while a lecture is due. Each opens an incident
//! once per lecture and kind, paged on `IncidentsTopic` with the room, recorder state, course
//! and instructor, and audited; each resolves itself (with a notice) when the problem goes
//! away. A tick carries on from where the last good tick stopped, so a missed tick loses
//! nothing and overlapping ticks page once.
//!
//! - [`deadlines`]: when each deadline falls and what a lecture's state means (pure)
//! - [`page`]: what an incident says
//! - [`watermark`]: how far the monitor has got (port and DynamoDB adapter)
//! - [`monitor`]: the tick
//! - [`config`]: its wiring from the environment

pub mod config;
pub mod deadlines;
pub mod monitor;
pub mod page;
pub mod watermark;

pub use deadlines::{Check, Deadlines, Evidence, Window};
pub use monitor::{SlaMonitor, TickReport};
pub use watermark::{DynamoWatermark, Watermark};
