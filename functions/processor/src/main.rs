//! processor: `changes.fifo` (message group = entity key) → catalog → one normalized change
//! event per source event on the coursewire EventBridge bus. Partial batch failures: a failed
//! message fails the rest of its group in the batch, never other groups'.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use coursewire::processor::ProcessorConfig;
use coursewire::telemetry::{self, StdoutEmf};
use lambda_runtime::{Error, LambdaEvent, service_fn};
use std::sync::Arc;

// JSON in, JSON out, many small allocations: mimalloc as in the ingest functions.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init_tracing();
    let aws = aws_config::load_from_env().await;
    let processor =
        Arc::new(ProcessorConfig::from_env()?.build(&aws, Arc::new(StdoutEmf), "processor"));

    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| {
        let processor = processor.clone();
        async move { Ok::<SqsBatchResponse, Error>(processor.handle_sqs(event.payload).await) }
    }))
    .await
}
