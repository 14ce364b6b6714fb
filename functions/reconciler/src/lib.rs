//! reconciler: heals what Canvas live events lost. On its schedule it lists the account's
//! active courses and queues one message per course; each message (its SQS trigger) fetches
//! that course's sections, roster and modules through the quota-aware Canvas client, diffs
//! them with the catalog and feeds the drift into `changes.fifo`. Invoke it with
//! `{"course_id": "..."}` to reconcile one course now (the answer is the course's report).

use coursewire_canvas::reconcile::ReconcilerConfig;
use coursewire_runtime::function::{BuildError, BuildFuture, Description, Handlers, Setup};
use std::sync::Arc;

pub static DESCRIPTION: Description = Description {
    binary: "reconciler",
    build,
};

fn build<'a>(setup: &'a Setup<'a>) -> BuildFuture<'a> {
    Box::pin(async move {
        let config = ReconcilerConfig::from_lookup(setup.lookup())?;
        // Built once: the Canvas token and the leased quota live across invocations.
        let reconciler = Arc::new(
            config
                .build(setup.aws, setup.metrics.clone(), setup.name)
                .map_err(|e| BuildError::Clients(e.to_string()))?,
        );
        Ok(Handlers {
            queue: Some(reconciler.clone()),
            schedule: Some(reconciler.clone()),
            invoke: Some(reconciler),
            ..Handlers::default()
        })
    })
}
