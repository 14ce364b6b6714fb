//! What the benchmark binaries share: [`report`] (progress, percentiles, the printed report).
//! The binaries: `ingest-bench` (the change-event path on the local stack), `canvas-bench`
//! (the Canvas client under quota), `capture-bench` (a poller tick as the catalog doubles, a
//! term's import); `benches/ingest_hot_path.rs` (criterion).

pub mod report;
