//! Incidents: what needs a person. Opened by the lecture-capture side (a publish workflow
//! that exhausted its retries) and by the monitors (a lecture with no recording, a caption
//! SLA missed, a recorder down); acknowledged and resolved by people or by the monitor that
//! sees the problem go away.
//!
//! At most one incident is open per (subject, kind), whatever retries, duplicate events or
//! monitor ticks happen: opening is a conditional write. Opening pages once on SNS; a page
//! lost to a crash is sent by the next attempt to open the same incident.
//!
//! - [`model`]: incidents, their kinds, subjects and lifecycle
//! - [`ports`]: where incidents are kept ([`IncidentStore`]) and how people are paged ([`Pager`])
//! - [`service`]: [`Incidents`], opening (and paging), acknowledging, resolving
//! - [`dynamo`] and [`sns`]: the AWS adapters; [`config`]: their wiring from the environment

pub mod config;
pub mod dynamo;
pub mod model;
pub mod ports;
pub mod service;
pub mod sns;

pub use dynamo::DynamoIncidentStore;
pub use model::{Incident, IncidentKind, IncidentState, NewIncident, Severity, Subject};
pub use ports::{IncidentError, IncidentStore, Opened, Pager};
pub use service::Incidents;
pub use sns::SnsPager;
