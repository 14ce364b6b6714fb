//! replay: re-sends a window of inbox events to `changes.fifo` (heal what never reached the
//! bus, or republish). Invoked directly (admin function, console, `aws lambda invoke`) with a
//! `ReplayRequest` as JSON; answers with the `ReplayReport`. `coursewire replay` runs the same
//! replayer from an operator's machine.

use coursewire_pipeline::replay::ReplayConfig;
use coursewire_runtime::function::{BuildFuture, Description, Handlers, Setup};
use std::sync::Arc;

pub static DESCRIPTION: Description = Description {
    binary: "replay",
    build,
};

fn build<'a>(setup: &'a Setup<'a>) -> BuildFuture<'a> {
    Box::pin(async move {
        let config = ReplayConfig::from_lookup(setup.lookup())?;
        let replayer = config.build(setup.aws, setup.metrics.clone(), setup.name);
        Ok(Handlers {
            invoke: Some(Arc::new(replayer)),
            ..Handlers::default()
        })
    })
}
