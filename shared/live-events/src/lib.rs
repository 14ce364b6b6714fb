//! Canvas Live Events: receiving them, verifying them, and what they do to the catalog.
//!
//! - [`live_events`]: Canvas and Caliper envelopes → [`live_events::LiveEvent`] (the
//!   pipeline's source event), entity keys, hashing, the conformance corpus
//! - [`jwt`]: strict verification of Canvas's signed events against its rotating JWKS
//! - [`ingest`]: the receive path shared by `ingest-https` and `ingest-sqs`
//! - [`catalog`]: the Canvas objects downstream systems care about, the pipeline's entity
//!   model for Canvas, and the change events it publishes

pub mod catalog;
pub mod ingest;
pub mod jwt;
pub mod live_events;
