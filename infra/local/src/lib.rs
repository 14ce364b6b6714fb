//! The local stack: everything `template.yaml` declares, on moto, with every function run
//! in-process from the same `DESCRIPTION` its Lambda binary runs.
//!
//! - [`stack`]: one call from nothing to a running stack (moto, provisioning, functions,
//!   event sources, optional simulated Canvas)
//! - [`template`]: reading `template.yaml` (resources, each function's environment, event
//!   sources, alarms)
//! - [`moto`]: the moto server from the project-local virtualenv
//! - [`provision`]: tables, queues, bus, rules and secrets on moto as the template says
//! - [`functions`]: every function's description, by binary name
//! - [`event_sources`]: Lambda's semantics locally (SQS batches with partial failures and
//!   redrive, function URLs, schedules)
//! - [`alarms`]: the template's CloudWatch alarms evaluated on the functions' EMF metrics and
//!   the queues' attributes, their state changes published to their SNS topics
//! - [`fault_proxy`]: injected AWS faults (throttling, 5xx, dropped connections)
//! - [`campus`]: a day of lectures described as the registrar's files (rooms, meetings,
//!   rules), for the main job's teaching day and the tests
//! - [`clock`]: the functions' clock following the simulated Panopto's, for scenarios that
//!   move time on by hand
//! - [`subscriber`]: the template's example subscriber queue, read like a downstream system
//! - [`repo`]: finding the repository root

pub mod alarms;
pub mod campus;
pub mod clock;
pub mod event_sources;
pub mod fault_proxy;
pub mod functions;
pub mod moto;
pub mod provision;
pub mod repo;
pub mod stack;
pub mod subscriber;
pub mod template;
