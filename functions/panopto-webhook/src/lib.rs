//! panopto-webhook: recording events pushed by institutional middleware (Lambda Function URL),
//! HMAC-signed with a shared secret and a five-minute replay window, into the same recordings
//! inbox and `recordings.fifo` as the poller's.

use coursewire_runtime::function::{BuildFuture, Description, Handlers, Setup};
use std::sync::Arc;

pub static DESCRIPTION: Description = Description {
    binary: "panopto-webhook",
    build,
};

fn build<'a>(setup: &'a Setup<'a>) -> BuildFuture<'a> {
    Box::pin(async move {
        let webhook = coursewire_recordings::config::webhook(
            setup.env,
            setup.aws,
            setup.metrics.clone(),
            setup.name,
        )
        .await?;
        Ok(Handlers {
            http: Some(Arc::new(webhook)),
            ..Handlers::default()
        })
    })
}
