//! access-sync: lecture capture subscribed to coursewire's own change bus. Canvas enrollment
//! changes arrive on the access queue (an EventBridge rule); the recordings of each section
//! they touch have their Panopto viewer access re-derived from the roster, so a dropped
//! student loses access and a new one gains it.

use coursewire_publishing::access_sync::AccessSync;
use coursewire_runtime::function::{BuildFuture, Description, Handlers, Setup};
use std::sync::Arc;

pub static DESCRIPTION: Description = Description {
    binary: "access-sync",
    build,
};

fn build<'a>(setup: &'a Setup<'a>) -> BuildFuture<'a> {
    Box::pin(async move {
        let orchestrator = coursewire_publishing::config::orchestrator(
            setup.env,
            setup.aws,
            setup.metrics.clone(),
            setup.name,
        )?;
        Ok(Handlers {
            queue: Some(Arc::new(AccessSync::new(Arc::new(orchestrator)))),
            ..Handlers::default()
        })
    })
}
