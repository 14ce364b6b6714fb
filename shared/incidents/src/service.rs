//! Opening, acknowledging and resolving incidents, paging once per incident.

use crate::model::{Incident, IncidentKind, IncidentState, NewIncident, Subject};
use crate::ports::{IncidentError, IncidentStore, Opened, Pager};
use chrono::Utc;
use coursewire_audit::{Action, Actor, AuditRecord, AuditTrail, Outcome};
use std::sync::Arc;

/// How long a caller that took on paging has before another caller takes it over.
pub const PAGE_LEASE: chrono::Duration = chrono::Duration::seconds(30);

#[derive(Clone)]
pub struct Incidents {
    store: Arc<dyn IncidentStore>,
    pager: Arc<dyn Pager>,
    trail: Arc<dyn AuditTrail>,
}

/// The audit record of an incident's step: keyed by the incident, so repeating it adds nothing.
fn audited(incident: &Incident, actor: Actor, at: chrono::DateTime<Utc>) -> AuditRecord {
    let (incident_id, kind) = (incident.id.clone(), incident.kind.to_string());
    let (action, detail) = match incident.state {
        IncidentState::Open => (
            Action::IncidentOpened { incident_id, kind },
            format!("incident {} opened: {}", incident.kind, incident.reason),
        ),
        IncidentState::Acknowledged => (
            Action::IncidentAcknowledged { incident_id, kind },
            format!("incident {} acknowledged", incident.kind),
        ),
        IncidentState::Resolved => (
            Action::IncidentResolved { incident_id, kind },
            format!(
                "incident {} resolved: {}",
                incident.kind,
                incident.resolution.as_deref().unwrap_or("")
            ),
        ),
    };
    AuditRecord::new(
        incident.subject.clone(),
        &incident.id,
        at,
        actor,
        action,
        Outcome::Done,
        detail,
    )
}

impl Incidents {
    pub fn new(
        store: Arc<dyn IncidentStore>,
        pager: Arc<dyn Pager>,
        trail: Arc<dyn AuditTrail>,
    ) -> Self {
        Self {
            store,
            pager,
            trail,
        }
    }

    pub fn store(&self) -> &dyn IncidentStore {
        self.store.as_ref()
    }

    /// Opens the incident unless one of its kind is already open on its subject, and pages
    /// for it unless a page went out or is going out (this call's, or an earlier one's that
    /// crashed before paging: its claim lapses after [`PAGE_LEASE`]). Safe to call on every
    /// retry and every monitor tick.
    pub async fn open(&self, new: NewIncident) -> Result<Opened, IncidentError> {
        let mut opened = self.store.open(&Incident::open(new, Utc::now())).await?;
        let incident = opened.incident().clone();
        // Every call records the opening (the same record each time), so a crash after the
        // conditional write still leaves it in the trail.
        let record = audited(
            &Incident {
                state: IncidentState::Open,
                ..incident.clone()
            },
            Actor::function(&incident.opened_by),
            incident.opened_at,
        );
        self.trail.append(&record).await?;
        if !incident.paged
            && self
                .store
                .claim_page(&incident, Utc::now(), PAGE_LEASE)
                .await?
        {
            if let Err(e) = self.pager.page(&incident).await {
                // Best effort: the claim lapses anyway.
                if let Err(release) = self.store.finish_page(&incident, false).await {
                    tracing::warn!(incident = %incident.id, error = %release, "page claim not released");
                }
                return Err(e.into());
            }
            self.store.finish_page(&incident, true).await?;
            tracing::info!(
                incident = %incident.id,
                kind = %incident.kind,
                subject = %incident.subject.key(),
                "incident paged"
            );
            match &mut opened {
                Opened::New(i) | Opened::AlreadyOpen(i) => i.paged = true,
            }
        }
        Ok(opened)
    }

    pub async fn acknowledge(
        &self,
        subject: &Subject,
        kind: IncidentKind,
        by: &str,
    ) -> Result<Incident, IncidentError> {
        let incident = self
            .store
            .acknowledge(subject, kind, by, Utc::now())
            .await?;
        let at = incident.acknowledged_at.unwrap_or_else(Utc::now);
        let by = incident.acknowledged_by.as_deref().unwrap_or(by);
        self.trail
            .append(&audited(&incident, Actor::person("incidents", by), at))
            .await?;
        Ok(incident)
    }

    /// Resolves the unresolved incident of `kind` on `subject`; `None` when there is none
    /// (a monitor resolving what it sees fixed need not know whether it opened one). The
    /// people paged hear of it: the notice goes out before the resolution is stored, so a
    /// crash between the two repeats the notice rather than losing it.
    pub async fn resolve_if_open(
        &self,
        subject: &Subject,
        kind: IncidentKind,
        by: &str,
        resolution: &str,
    ) -> Result<Option<Incident>, IncidentError> {
        let Some(current) = self.store.current(subject, kind).await? else {
            return Ok(None);
        };
        let at = Utc::now();
        self.pager
            .resolved(&Incident {
                state: IncidentState::Resolved,
                resolved_at: Some(at),
                resolved_by: Some(by.to_string()),
                resolution: Some(resolution.to_string()),
                ..current
            })
            .await?;
        match self.store.resolve(subject, kind, by, resolution, at).await {
            Ok(incident) => {
                let at = incident.resolved_at.unwrap_or(at);
                self.trail
                    .append(&audited(&incident, Actor::person("incidents", by), at))
                    .await?;
                Ok(Some(incident))
            }
            Err(IncidentError::NotOpen { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }
}
