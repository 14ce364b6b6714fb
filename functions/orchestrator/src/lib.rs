//! orchestrator: `recordings.fifo` (message group = Panopto session) → recording rows →
//! `Recording Changed` on the bus (`coursewire.capture`), then each recording's publish
//! workflow: matched, filed, captioned, shared, posted in Canvas, audited. Invoked directly
//! with a publish replay request (`{"session_id": …}` or `{"section_id": …}`, `force`,
//! `dry_run`), it re-runs the workflow and answers what each recording's steps did.

use coursewire_runtime::function::{BuildFuture, Description, Handlers, Setup};
use std::sync::Arc;

pub static DESCRIPTION: Description = Description {
    binary: "orchestrator",
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
        let orchestrator = Arc::new(orchestrator);
        Ok(Handlers {
            queue: Some(orchestrator.clone()),
            invoke: Some(orchestrator),
            ..Handlers::default()
        })
    })
}
