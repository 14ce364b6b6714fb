//! Where the audit trail is kept.

use crate::model::{AuditRecord, Subject};
use async_trait::async_trait;
use coursewire_runtime::service::ServiceError;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuditError {
    #[error("the audit trail is unreadable: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Service(#[from] ServiceError),
}

/// What appending did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Appended {
    New,
    /// A record with this id was there already (a retry): it is kept as it was.
    AlreadyThere,
}

#[async_trait]
pub trait AuditTrail: Send + Sync {
    /// Adds `record` unless one with its id exists (records are never overwritten).
    async fn append(&self, record: &AuditRecord) -> Result<Appended, AuditError>;
    /// Every record of `subject`, oldest first.
    async fn timeline(&self, subject: &Subject) -> Result<Vec<AuditRecord>, AuditError>;
}
