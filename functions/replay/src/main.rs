//! replay: re-sends a window of inbox events to `changes.fifo` (heal what never reached the
//! bus, or republish). Invoked directly (admin function, console, `aws lambda invoke`) with a
//! `ReplayRequest` as JSON; answers with the `ReplayReport`. `coursewire-replay` runs the same
//! replayer from an operator's machine.

use coursewire::replay::{ReplayConfig, ReplayReport, ReplayRequest};
use coursewire::telemetry::{self, StdoutEmf};
use lambda_runtime::{Error, LambdaEvent, service_fn};
use std::sync::Arc;

// Inbox payloads are parsed back into JSON values: many small allocations, which mimalloc
// serves faster than the system allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init_tracing();
    let aws = aws_config::load_from_env().await;
    let replayer = Arc::new(ReplayConfig::from_env()?.build(&aws, Arc::new(StdoutEmf), "replay"));

    lambda_runtime::run(service_fn(move |event: LambdaEvent<ReplayRequest>| {
        let replayer = replayer.clone();
        async move {
            // A refused request is an invocation error naming the problem; send failures are
            // in the report (`failed`, `incomplete`) so the caller sees what did get through.
            Ok::<ReplayReport, Error>(replayer.run(event.payload, |_| {}).await?)
        }
    }))
    .await
}
