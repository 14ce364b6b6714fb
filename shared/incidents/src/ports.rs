//! Where incidents are kept and how people hear of them.

use crate::model::{Incident, IncidentKind, Subject};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use coursewire_runtime::service::ServiceError;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IncidentError {
    #[error("no open {kind} incident on {subject}")]
    NotOpen { kind: IncidentKind, subject: String },
    #[error("the incident store is unreadable: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Service(#[from] ServiceError),
    #[error(transparent)]
    Audit(#[from] coursewire_audit::AuditError),
}

/// What opening did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Opened {
    /// This call opened it.
    New(Incident),
    /// One was already open for the subject and kind (this is it), or, for an incident
    /// opened `once`, one was opened before and may be resolved by now.
    AlreadyOpen(Incident),
}

impl Opened {
    pub fn incident(&self) -> &Incident {
        match self {
            Opened::New(i) | Opened::AlreadyOpen(i) => i,
        }
    }
}

#[async_trait]
pub trait IncidentStore: Send + Sync {
    /// Stores `incident` unless one of its kind is open on its subject (a conditional write).
    async fn open(&self, incident: &Incident) -> Result<Opened, IncidentError>;
    /// The open (or acknowledged) incident of `kind` on `subject`.
    async fn current(
        &self,
        subject: &Subject,
        kind: IncidentKind,
    ) -> Result<Option<Incident>, IncidentError>;
    /// Every incident on `subject`, oldest first.
    async fn of_subject(&self, subject: &Subject) -> Result<Vec<Incident>, IncidentError>;
    /// Every incident not yet resolved, oldest first.
    async fn unresolved(&self) -> Result<Vec<Incident>, IncidentError>;
    /// Takes on sending `incident`'s page: true when this caller should page (not paged
    /// yet, and nobody claimed it within `lease`). A conditional write, so of concurrent
    /// callers one wins.
    async fn claim_page(
        &self,
        incident: &Incident,
        at: DateTime<Utc>,
        lease: chrono::Duration,
    ) -> Result<bool, IncidentError>;
    /// Records the claimed page as sent, or (`sent` false) gives the claim up for a retry.
    async fn finish_page(&self, incident: &Incident, sent: bool) -> Result<(), IncidentError>;
    async fn acknowledge(
        &self,
        subject: &Subject,
        kind: IncidentKind,
        by: &str,
        at: DateTime<Utc>,
    ) -> Result<Incident, IncidentError>;
    /// Resolves the unresolved incident and frees its (subject, kind) for a new one.
    async fn resolve(
        &self,
        subject: &Subject,
        kind: IncidentKind,
        by: &str,
        resolution: &str,
        at: DateTime<Utc>,
    ) -> Result<Incident, IncidentError>;
}

/// Pages the people on call.
#[async_trait]
pub trait Pager: Send + Sync {
    async fn page(&self, incident: &Incident) -> Result<(), ServiceError>;
    /// Tells the same people that `incident` (as resolved) is over.
    async fn resolved(&self, incident: &Incident) -> Result<(), ServiceError>;
}
