//! sla-monitor: every minute, the lectures whose deadlines fell since the last tick — no
//! recording 15 minutes after class end, captions later than the department's SLA (and twice
//! that), a recorder down while a lecture is due — open incidents that page once, and the open
//! ones whose problem went away are resolved.

use coursewire_runtime::function::{BuildFuture, Description, Handlers, Setup};
use std::sync::Arc;

pub static DESCRIPTION: Description = Description {
    binary: "sla-monitor",
    build,
};

fn build<'a>(setup: &'a Setup<'a>) -> BuildFuture<'a> {
    Box::pin(async move {
        let monitor = coursewire_sla::config::monitor(
            setup.env,
            setup.aws,
            setup.metrics.clone(),
            setup.name,
            setup.clock.clone(),
        )?;
        let monitor = Arc::new(monitor);
        Ok(Handlers {
            schedule: Some(monitor.clone()),
            invoke: Some(monitor),
            ..Handlers::default()
        })
    })
}
