//! What every coursewire function runs on, whatever its domain: each function described
//! once and run under Lambda and the local stack alike, AWS error classification, the
//! environment, and telemetry.
//!
//! - [`function`]: a function's `Description`, its handler ports, the Lambda runner and the
//!   SQS adapter
//! - [`service`]: the ports' error for a failed call: transient or permanent
//! - [`aws`]: classifying AWS SDK failures into it; DynamoDB paging
//! - [`retry`]: the HTTP clients' retry settings, jittered backoff and `Retry-After`
//! - [`secrets`]: a Secrets Manager secret holding JSON, errors that never quote it
//! - [`config`]: reading a function's environment with errors that name the variable
//! - [`telemetry`]: JSON logs and CloudWatch EMF metrics

pub mod aws;
pub mod clock;
pub mod config;
pub mod function;
pub mod retry;
pub mod secrets;
pub mod service;
pub mod telemetry;
