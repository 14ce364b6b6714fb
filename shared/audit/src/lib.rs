//! The audit trail of lecture capture: an append-only record of every action and decision,
//! successful or not (who, what, when, why, outcome, and the upstream ids behind it), kept
//! per lecture or recording so one query returns a subject's whole history.
//!
//! Records are never updated in place. Each has a deterministic id from its subject and the
//! writer's idempotency key (the observation's version, the event's hash, the step and its
//! attempt), so a retry appends nothing new and loses nothing.
//!
//! - [`model`]: records, their subjects, actors and actions
//! - [`ports`]: where the trail is kept ([`AuditTrail`])
//! - [`dynamo`]: the DynamoDB adapter
//! - [`verdict`]: the one-line answer a lecture's timeline gives
//! - [`why`]: "why is lecture X missing?", by section or course and date

pub mod dynamo;
pub mod model;
pub mod ports;
pub mod verdict;
pub mod why;

pub use dynamo::DynamoAuditTrail;
pub use model::{Action, Actor, AuditRecord, Outcome, Subject, Upstream, Why};
pub use ports::{Appended, AuditError, AuditTrail};
pub use why::{Explanation, Scope, WhyError, WhyMissing};
