//! ingest-sqs: Canvas Live Events from the `canvas-live-events-*` SQS queue. Malformed
//! messages become rejects; only transient failures go back to the queue (partial batch
//! failures).

use coursewire_live_events::ingest::IngestConfig;
use coursewire_runtime::function::{BuildFuture, Description, Handlers, Setup};
use std::sync::Arc;

pub static DESCRIPTION: Description = Description {
    binary: "ingest-sqs",
    build,
};

fn build<'a>(setup: &'a Setup<'a>) -> BuildFuture<'a> {
    Box::pin(async move {
        let config = IngestConfig::from_lookup(setup.lookup())?;
        let ingestor = config.build(setup.aws, setup.metrics.clone(), setup.name)?;
        Ok(Handlers {
            queue: Some(Arc::new(ingestor)),
            ..Handlers::default()
        })
    })
}
