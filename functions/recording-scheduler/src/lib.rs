//! recording-scheduler: books the Panopto scheduled recordings of the lectures ahead and keeps
//! them in step with the teaching catalog (moved meetings, cancelled ones, room changes).
//! Runs every 15 minutes; invoke it with `{"sections": [...]}` after an import.

use coursewire_runtime::function::{BuildFuture, Description, Handlers, Setup};
use std::sync::Arc;

pub static DESCRIPTION: Description = Description {
    binary: "recording-scheduler",
    build,
};

fn build<'a>(setup: &'a Setup<'a>) -> BuildFuture<'a> {
    Box::pin(async move {
        let scheduler = Arc::new(coursewire_recordings::config::scheduler(
            setup.env, setup.aws,
        )?);
        Ok(Handlers {
            schedule: Some(scheduler.clone()),
            invoke: Some(scheduler),
            ..Handlers::default()
        })
    })
}
