//! panopto-poller: every minute, the lectures due (starting soon, running, ended within the
//! last hours) have their Panopto sessions and recorders looked at in two batched calls; what
//! changed becomes recording events in the recordings inbox and `recordings.fifo`.

use coursewire_runtime::function::{BuildFuture, Description, Handlers, Setup};
use std::sync::Arc;

pub static DESCRIPTION: Description = Description {
    binary: "panopto-poller",
    build,
};

fn build<'a>(setup: &'a Setup<'a>) -> BuildFuture<'a> {
    Box::pin(async move {
        let poller = coursewire_recordings::config::poller(
            setup.env,
            setup.aws,
            setup.metrics.clone(),
            setup.name,
        )?;
        let poller = Arc::new(poller);
        Ok(Handlers {
            schedule: Some(poller.clone()),
            invoke: Some(poller),
            ..Handlers::default()
        })
    })
}
