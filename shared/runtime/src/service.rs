//! How the ports report a failed call to a service they stand for: transient (retry) or
//! permanent. The AWS adapters classify SDK errors into it (`aws::classify`); domain code
//! never sees an SDK type.

/// A call to a service coursewire depends on (a table, a queue, the bus, a secret store)
/// failed, said so the caller knows whether to retry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServiceError {
    /// Throttling, timeouts, network and 5xx: retry later.
    #[error("transient failure: {0}")]
    Transient(String),
    /// Validation and permission errors, unwritable data: retrying will not help.
    #[error("request refused: {0}")]
    Permanent(String),
}

impl ServiceError {
    pub fn is_transient(&self) -> bool {
        matches!(self, ServiceError::Transient(_))
    }
}
