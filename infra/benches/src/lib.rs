//! What the benchmark binaries share: [`report`] (progress, percentiles, the printed report).
//! The binaries: `ingest-bench` (the change-event path on the local stack), `canvas-bench`
//! (the Canvas client under quota); `benches/ingest_hot_path.rs` (criterion).

pub mod report;
