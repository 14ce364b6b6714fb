//! Simulated Canvas and Panopto, so the real clients meet something that pushes back. Each
//! simulator follows the service's documented behaviour (expiring tokens, throttling,
//! pagination, signed events, rotating keys, people changing things by hand).
//!
//! - [`canvas_live_events`]: a seeded term of live events in Canvas and Caliper form,
//!   delivered over HTTPS (signed JWT, rotating JWKS) or SQS with duplicates, reordering
//!   and every rejection class
//! - [`canvas_api`]: Canvas's OAuth2, REST and GraphQL API over the same term, with its
//!   throttling, bookmark pagination and hand edits that live events never report
//! - [`panopto`]: Panopto's REST API and SOAP session / recorder states on a simulated
//!   clock, with booking conflicts, throttling, expiring tokens and failing recorders

pub mod canvas_api;
pub mod canvas_live_events;
pub mod panopto;
mod serving;
