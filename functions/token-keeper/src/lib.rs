//! token-keeper: on its schedule, refreshes the shared Canvas access token (kept in the
//! credentials secret) well before it expires, so no request ever waits on a refresh, and
//! reports token health (`CanvasTokenHealthy`, `CanvasTokenSecondsToExpiry`). A revoked grant
//! is reported unhealthy (the alarm fires), not retried.

use coursewire_canvas::canvas::TokenKeeperConfig;
use coursewire_runtime::function::{BuildError, BuildFuture, Description, Handlers, Setup};
use std::sync::Arc;

pub static DESCRIPTION: Description = Description {
    binary: "token-keeper",
    build,
};

fn build<'a>(setup: &'a Setup<'a>) -> BuildFuture<'a> {
    Box::pin(async move {
        let config = TokenKeeperConfig::from_lookup(setup.lookup())?;
        let keeper = Arc::new(
            config
                .build(setup.aws, setup.metrics.clone(), setup.name)
                .map_err(|e| BuildError::Clients(e.to_string()))?,
        );
        Ok(Handlers {
            schedule: Some(keeper.clone()),
            invoke: Some(keeper),
            ..Handlers::default()
        })
    })
}
