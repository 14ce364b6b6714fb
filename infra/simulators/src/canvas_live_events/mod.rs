//! Canvas Live Events simulator: a test double that behaves like Canvas so
//! the real ingest path meets something that pushes back.
//!
//! - [`keys`]: RS256 keys rotating like Canvas's JWKS (previous, current,
//!   next) plus forgeries for rejection tests.
//! - [`server`]: a local JWKS endpoint that counts fetches.
//! - [`scenario`]: a seeded course term (events in Canvas and Caliper form),
//!   a delivery plan with duplicates, reordering and pacing, and the truth
//!   a catalog must converge to.
//! - [`emitter`]: delivers the plan over HTTPS (signed JWT) or SQS (raw JSON
//!   with `event_name` / `event_time` attributes).
//!
//! ```ignore
//! let ring = Arc::new(KeyRing::new()?);
//! let jwks = JwksServer::start(ring.clone()).await?;
//! let scenario = Scenario::build(ScenarioConfig { seed: 7, ..Default::default() });
//! let emitter = Emitter::new(ring, "https://canvas-sim.instructure.com")?.with_https(ingest_url);
//! let reports = emitter.send_all(&scenario.emissions, 8, |_| {}).await;
//! ```

pub mod emitter;
pub mod faults;
mod generator;
pub mod keys;
pub mod scenario;
pub mod server;

pub use emitter::{
    CANVAS_HTTP_TIMEOUT, Delivered, EmitError, Emitter, JWT_LIFETIME_SECS, SendReport,
};
pub use faults::{Fault, FaultDelivery, rejection_cases};
pub use keys::{KeyError, KeyRing, KeySlot};
pub use scenario::{
    Delivery, ENTITY_TYPES, EVENT_NAMES, Emission, EntityKey, EntityState, Format, SHARD,
    SHARD_FACTOR, Scenario, ScenarioConfig, SimEvent, Truth, generate, global_id, plan,
    split_global_id,
};
pub use server::{JwksServer, ServerError};
