//! processor: `changes.fifo` (message group = entity key) → catalog → one normalized change
//! event per source event on the coursewire EventBridge bus. Partial batch failures: a failed
//! message fails the rest of its group in the batch, never other groups'.

use coursewire_live_events::catalog::ProcessorConfig;
use coursewire_runtime::function::{BuildFuture, Description, Handlers, Setup};
use std::sync::Arc;

pub static DESCRIPTION: Description = Description {
    binary: "processor",
    build,
};

fn build<'a>(setup: &'a Setup<'a>) -> BuildFuture<'a> {
    Box::pin(async move {
        let config = ProcessorConfig::from_lookup(setup.lookup())?;
        let processor = config.build(setup.aws, setup.metrics.clone(), setup.name);
        Ok(Handlers {
            queue: Some(Arc::new(processor)),
            ..Handlers::default()
        })
    })
}
