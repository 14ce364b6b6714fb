//! coursewire's shared library: the domain model, the ports (traits) the functions depend
//! on, and their AWS/HTTP adapters. Every function binary is a thin wrapper around this crate,
//! so the same handler runs under Lambda, under the local stack and in tests.
//!
//! - [`live_events`]: Canvas and Caliper envelopes → [`live_events::LiveEvent`]
//! - [`jwt`]: strict verification of Canvas's signed events against its rotating JWKS
//! - [`inbox`]: every accepted raw event, deduplicated by content hash (DynamoDB)
//! - [`changes`]: the hand-off to the processor on `changes.fifo` (SQS FIFO)
//! - [`catalog`]: the Canvas objects downstream systems care about, with per-entity sequences
//! - [`bus`]: the normalized change events on EventBridge
//! - [`canvas`]: the quota-aware Canvas API client (REST + GraphQL, OAuth2, shared rate budget)
//! - [`ingest`]: the receive path shared by `ingest-https` and `ingest-sqs`
//! - [`replay`]: re-sending a window of inbox events to `changes.fifo` (heal or republish)
//! - [`processor`]: `changes.fifo` → catalog → change events, exactly one per source event
//! - [`reconcile`]: Canvas's API vs the catalog → drift fed into `changes.fifo`
//! - [`telemetry`]: JSON logs and CloudWatch EMF metrics
//! - [`function`]: each function described once, run under Lambda and the local stack alike

pub mod aws;
pub mod bus;
pub mod canvas;
pub mod catalog;
pub mod changes;
pub mod config;
pub mod function;
pub mod inbox;
pub mod ingest;
pub mod jwt;
pub mod live_events;
pub mod processor;
pub mod reconcile;
pub mod replay;
pub mod telemetry;
