//! reconciler: heals what Canvas live events lost. On its schedule it lists the account's
//! active courses and queues one message per course; each message (its SQS trigger) fetches
//! that course's sections, roster and modules through the quota-aware Canvas client, diffs
//! them with the catalog and feeds the drift into `changes.fifo`. Invoke it with
//! `{"course_id": "..."}` to reconcile one course now (the answer is the course's report).

use coursewire::reconcile::ReconcilerConfig;
use coursewire::telemetry::{self, StdoutEmf};
use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;
use std::sync::Arc;

// JSON in, JSON out, many small allocations: mimalloc as in the other functions.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init_tracing();
    let aws = aws_config::load_from_env().await;
    // Built once: the Canvas token and the leased quota live across invocations.
    let reconciler =
        Arc::new(ReconcilerConfig::from_env()?.build(&aws, Arc::new(StdoutEmf), "reconciler")?);

    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let reconciler = reconciler.clone();
        async move { Ok::<Value, Error>(reconciler.handle(event.payload).await?) }
    }))
    .await
}
