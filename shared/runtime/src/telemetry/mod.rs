//! Observability: structured JSON logs through `tracing`, and metrics as CloudWatch Embedded
//! Metric Format (EMF) lines, which CloudWatch turns into metrics without API calls.

mod metrics;

pub use metrics::{
    CollectingSink, Metric, MetricSet, Metrics, MetricsSink, StdoutEmf, Unit, emf_line,
};

use tracing_subscriber::EnvFilter;

/// JSON logs on stdout (CloudWatch Logs in Lambda), filtered by `RUST_LOG` (default `info`).
/// Safe to call more than once.
pub fn init_tracing() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(true)
        .with_span_list(false)
        .with_target(false)
        .without_time()
        .try_init();
}
