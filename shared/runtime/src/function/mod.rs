//! The function edge: what each Lambda function is — its [`Description`]: how it is built from
//! its configuration and which triggers it answers — written once, and run the same way by
//! the Lambda binary ([`lambda::run`]) and by the local stack.
//!
//! A function crate is a `lib.rs` holding its `DESCRIPTION` and a `main.rs` that hands it to
//! [`lambda::run`]. Handlers speak domain types ([`QueueMessage`] batches, HTTP requests,
//! JSON); Lambda's event types stay in the adapters here ([`queue`] for SQS).

mod handlers;
pub mod lambda;
pub mod queue;

pub use handlers::{
    HandlerError, Handlers, HttpHandler, InvokeHandler, QueueHandler, ScheduleHandler,
};
pub use queue::{BatchOutcome, QueueMessage};

use crate::config::ConfigError;
use crate::telemetry::MetricsSink;
use aws_config::SdkConfig;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// What a function needs to build its clients and handlers, once per process.
pub struct Setup<'a> {
    /// The function's name in metrics and logs (its binary name).
    pub name: &'a str,
    pub aws: &'a SdkConfig,
    pub metrics: Arc<dyn MetricsSink>,
    /// The function's environment: the process's under Lambda, the one `template.yaml`
    /// resolves to under the local stack.
    pub env: &'a (dyn Fn(&str) -> Option<String> + Send + Sync),
    /// The time the function acts on: the system clock under Lambda.
    pub clock: Arc<dyn crate::clock::Clock>,
}

impl Setup<'_> {
    /// The environment as a lookup for the configurations' `from_lookup`.
    pub fn lookup(&self) -> impl Fn(&str) -> Option<String> + '_ {
        |name| (self.env)(name)
    }
}

/// Why a function could not start: its configuration or its clients.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Clients(String),
}

/// The future a description's `build` returns.
pub type BuildFuture<'a> = Pin<Box<dyn Future<Output = Result<Handlers, BuildError>> + Send + 'a>>;

/// One function, described once.
pub struct Description {
    /// The binary name (the function crate's name; what `template.yaml`'s `BinaryName` says).
    pub binary: &'static str,
    /// Builds the function's clients and handlers from its [`Setup`].
    pub build: for<'a> fn(&'a Setup<'a>) -> BuildFuture<'a>,
}

impl std::fmt::Debug for Description {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Description")
            .field("binary", &self.binary)
            .finish_non_exhaustive()
    }
}
