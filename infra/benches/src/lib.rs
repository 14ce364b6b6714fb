//! What the benchmark binaries share: [`report`] (progress, percentiles, the printed report)
//! and [`campus`] (the stage, rooms and rule the lecture-capture benches stand up).
//! The binaries: `ingest-bench` (the change-event path on the local stack), `canvas-bench`
//! (the Canvas client under quota), `capture-bench` (a poller tick as the catalog doubles, a
//! term's import), `publish-bench` (calls per published recording), `sla-bench` (an
//! sla-monitor tick at 1x and 2x scale); `benches/ingest_hot_path.rs` (criterion).

pub mod campus;
pub mod report;
