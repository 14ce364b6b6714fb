//! token-keeper: on its schedule, refreshes the shared Canvas access token (kept in the
//! credentials secret) well before it expires, so no request ever waits on a refresh, and
//! reports token health (`CanvasTokenHealthy`, `CanvasTokenSecondsToExpiry`). A revoked grant
//! is reported unhealthy (the alarm fires), not retried.

use coursewire::canvas::{TokenHealth, TokenKeeperConfig};
use coursewire::telemetry::{self, StdoutEmf};
use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;
use std::sync::Arc;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init_tracing();
    let aws = aws_config::load_from_env().await;
    let keeper = Arc::new(TokenKeeperConfig::from_env()?.build(
        &aws,
        Arc::new(StdoutEmf),
        "token-keeper",
    )?);

    lambda_runtime::run(service_fn(move |_: LambdaEvent<Value>| {
        let keeper = keeper.clone();
        async move { Ok::<TokenHealth, Error>(keeper.run().await?) }
    }))
    .await
}
