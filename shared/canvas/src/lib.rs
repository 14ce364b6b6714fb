//! Canvas's REST and GraphQL API, and reconciliation against it.
//!
//! - [`canvas`]: the quota-aware Canvas API client (OAuth2 with token-keeper, bookmark
//!   pagination, a rate budget shared by every function)
//! - [`reconcile`]: Canvas's API vs the catalog → drift fed into `changes.fifo`

pub mod canvas;
pub mod reconcile;
