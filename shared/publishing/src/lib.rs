//! Publishing: every recording driven detected → filed → captioned → shared → posted →
//! audited without a person, and every step explainable afterwards. The orchestrator runs on
//! `recordings.fifo` through the one pipeline (the same processor as Canvas's events), then
//! advances each recording's workflow.
//!
//! - [`recording`]: the processor's model: recording events → one row per session →
//!   `Recording Changed` on the bus (`coursewire.capture`)
//! - [`workflow`]: a recording's workflow row and which step comes next (pure)
//! - [`matching`]: a session tied to its lecture by recorder and time, or held unmatched
//! - [`access`]: viewers from the roster, resolved to Panopto users, granted and revoked
//! - [`publisher`]: the steps and their check-before-act side effects in Panopto and Canvas
//! - [`ports`] and [`dynamo`]: where workflow rows live; Canvas's modules
//! - [`orchestrator`]: the `recordings.fifo` handler (processor, then workflows)
//! - [`access_sync`]: `access-sync`, enrollment changes from the bus → viewer access again
//! - [`replay`]: publish replay of a recording or a section's recordings, with a dry run
//! - [`config`]: the orchestrator's wiring from its environment

pub mod access;
pub mod access_sync;
pub mod config;
pub mod dynamo;
pub mod matching;
pub mod orchestrator;
pub mod ports;
pub mod publisher;
pub mod recording;
pub mod replay;
pub mod workflow;

pub use access::Viewers;
pub use orchestrator::Orchestrator;
pub use publisher::{Advanced, Publisher, Settings, Trigger};
pub use recording::{RecordingChange, RecordingModel, RecordingRow};
pub use replay::{PublishReplay, ReplayReport};
pub use workflow::{Status, Step, WorkflowRow};
