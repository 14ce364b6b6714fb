//! Incidents on the local stack: the template's `IncidentsTable` and `IncidentsTopic` in moto,
//! through the real AWS SDK. At most one incident open per subject and kind whatever the
//! concurrency, one page per incident (observed on an SQS queue subscribed to the topic,
//! as an on-call integration would be), a page lost to a crash sent by the next opener, and
//! the lifecycle open -> acknowledged -> resolved, after which the subject can open again.

use anyhow::{Context, Result, ensure};
use async_trait::async_trait;
use coursewire_audit::{Action, AuditTrail, DynamoAuditTrail};
use coursewire_incidents::{
    DynamoIncidentStore, Incident, IncidentKind, IncidentState, Incidents, NewIncident, Opened,
    Pager, SnsPager, Subject,
};
use coursewire_local::stack::StackOptions;
use coursewire_runtime::service::ServiceError;
use coursewire_tests::{Harness, pages};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// A pager that fails once (the process "crashes" between opening and paging).
struct CrashingOnce {
    inner: SnsPager,
    crashed: AtomicBool,
}

#[async_trait]
impl Pager for CrashingOnce {
    async fn page(&self, incident: &Incident) -> Result<(), ServiceError> {
        if !self.crashed.swap(true, Ordering::SeqCst) {
            return Err(ServiceError::Transient(
                "the process died before paging".into(),
            ));
        }
        self.inner.page(incident).await
    }
    async fn resolved(&self, incident: &Incident) -> Result<(), ServiceError> {
        self.inner.resolved(incident).await
    }
}

fn missing(section: &str, reason: &str) -> NewIncident {
    NewIncident {
        kind: IncidentKind::MissingRecording,
        subject: Subject::lecture(section, "2026-10-27#1"),
        reason: reason.into(),
        opened_by: "sla-monitor".into(),
        audit_ids: vec!["audit-1".into()],
        details: Default::default(),
        once: false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_incident_per_subject_and_kind_paged_once_then_acknowledged_and_resolved() -> Result<()>
{
    let h = Harness::start("incidents", StackOptions::ingest_only()).await?;
    let table = h
        .stack
        .table_name("IncidentsTable")
        .context("no IncidentsTable")?
        .to_string();
    let topic = h
        .stack
        .deployed
        .ref_value("IncidentsTopic")
        .context("no IncidentsTopic")?
        .to_string();
    let sns = aws_sdk_sns::Client::new(&h.stack.aws);

    // The on-call rota's subscription.
    let queue = pages::subscribe(&h, &topic).await?;

    let audit_table = h
        .stack
        .table_name("AuditTable")
        .context("no AuditTable")?
        .to_string();
    let trail = Arc::new(DynamoAuditTrail::new(h.ddb.clone(), &audit_table));
    let store = Arc::new(DynamoIncidentStore::new(h.ddb.clone(), &table));
    let incidents = Incidents::new(
        store.clone(),
        Arc::new(SnsPager::new(sns.clone(), &topic)),
        trail.clone(),
    );

    // Eight monitor ticks racing on one lecture: one incident, one page.
    let racers = (0..8).map(|i| {
        let incidents = incidents.clone();
        async move { incidents.open(missing("901", &format!("tick {i}"))).await }
    });
    let results = futures::future::join_all(racers).await;
    let mut ids = Vec::new();
    let mut new = 0;
    for result in results {
        let opened = result.context("a racing open failed")?;
        if matches!(opened, Opened::New(_)) {
            new += 1;
        }
        ids.push(opened.incident().id.clone());
    }
    ids.dedup();
    ensure!(new == 1, "{new} of 8 racing opens created an incident");
    ensure!(
        ids.len() == 1,
        "racing opens saw different incidents: {ids:?}"
    );
    let first_id = ids[0].clone();
    // Losers of the race return while the winner pages; once all are back it is paged.
    let stored = incidents
        .store()
        .current(
            &Subject::lecture("901", "2026-10-27#1"),
            IncidentKind::MissingRecording,
        )
        .await?
        .context("the raced incident is not open")?;
    ensure!(
        stored.paged && stored.page_claimed_at.is_none(),
        "after the race: {stored:?}"
    );

    let seen = pages::after_waiting(&h.sqs, &queue).await?;
    ensure!(seen.len() == 1, "expected one page, got {seen:?}");
    let (subject, message, kind) = &seen[0];
    ensure!(
        subject == "coursewire: missing_recording on lecture 2026-10-27#1 of section 901",
        "page subject {subject:?}"
    );
    ensure!(kind == "missing_recording", "kind attribute {kind:?}");
    ensure!(
        message["incident_id"] == first_id.as_str(),
        "page names {message}"
    );
    ensure!(
        message["audit_ids"][0] == "audit-1",
        "page without its audit ids: {message}"
    );

    // A retry after the page went out pages nothing more.
    let again = incidents.open(missing("901", "retry")).await?;
    ensure!(
        matches!(&again, Opened::AlreadyOpen(i) if i.id == first_id),
        "a retry opened {again:?}"
    );

    // A crash between opening and paging: the first caller's page fails, the retry pages.
    let crashing = Incidents::new(
        store.clone(),
        Arc::new(CrashingOnce {
            inner: SnsPager::new(sns.clone(), &topic),
            crashed: AtomicBool::new(false),
        }),
        trail.clone(),
    );
    let crashed = crashing.open(missing("902", "no session")).await;
    ensure!(crashed.is_err(), "the crashing pager did not fail the open");
    let stored = incidents
        .store()
        .current(
            &Subject::lecture("902", "2026-10-27#1"),
            IncidentKind::MissingRecording,
        )
        .await?
        .context("the incident was not kept when paging failed")?;
    ensure!(!stored.paged, "an unsent page is recorded as sent");
    let retried = crashing.open(missing("902", "no session")).await?;
    ensure!(
        matches!(&retried, Opened::AlreadyOpen(i) if i.id == stored.id && i.paged),
        "the retry did not page the incident it found: {retried:?}"
    );
    let seen = pages::after_waiting(&h.sqs, &queue).await?;
    ensure!(
        seen.len() == 1 && seen[0].1["incident_id"] == stored.id.as_str(),
        "pages after the crash: {seen:?}"
    );

    // Another kind on the same lecture is its own incident.
    let other = incidents
        .open(NewIncident {
            kind: IncidentKind::RecorderDown,
            ..missing("901", "recorder disconnected")
        })
        .await?;
    ensure!(
        matches!(other, Opened::New(_)),
        "a second kind was folded in: {other:?}"
    );
    let unresolved = incidents.store().unresolved().await?;
    ensure!(unresolved.len() == 3, "unresolved: {unresolved:?}");

    // Lifecycle: acknowledged (twice keeps the first), resolved, then the lecture may open again.
    let lecture = Subject::lecture("901", "2026-10-27#1");
    let acked = incidents
        .acknowledge(
            &lecture,
            IncidentKind::MissingRecording,
            "oncall@example.edu",
        )
        .await?;
    ensure!(acked.state == IncidentState::Acknowledged, "{acked:?}");
    let again = incidents
        .acknowledge(&lecture, IncidentKind::MissingRecording, "someone-else")
        .await?;
    ensure!(
        again.acknowledged_by.as_deref() == Some("oncall@example.edu"),
        "a second acknowledgement overwrote the first: {again:?}"
    );
    let resolved = incidents
        .resolve_if_open(
            &lecture,
            IncidentKind::MissingRecording,
            "sla-monitor",
            "the recording arrived",
        )
        .await?
        .context("nothing resolved")?;
    ensure!(
        resolved.state == IncidentState::Resolved
            && resolved.resolved_by.as_deref() == Some("sla-monitor")
            && resolved.resolved_at.is_some(),
        "{resolved:?}"
    );
    ensure!(
        incidents
            .resolve_if_open(
                &lecture,
                IncidentKind::MissingRecording,
                "sla-monitor",
                "again"
            )
            .await?
            .is_none(),
        "resolved twice"
    );
    let reopened = incidents.open(missing("901", "missing again")).await?;
    ensure!(
        matches!(&reopened, Opened::New(i) if i.id != first_id),
        "after resolving, the lecture did not open anew: {reopened:?}"
    );
    let history = incidents.store().of_subject(&lecture).await?;
    let states: Vec<_> = history.iter().map(|i| (i.kind, i.state)).collect();
    ensure!(
        states
            == vec![
                (IncidentKind::MissingRecording, IncidentState::Resolved),
                (IncidentKind::RecorderDown, IncidentState::Open),
                (IncidentKind::MissingRecording, IncidentState::Open),
            ],
        "history of the lecture: {states:?}"
    );
    let unresolved = incidents.store().unresolved().await?;
    ensure!(
        unresolved.len() == 3 && unresolved.iter().all(|i| i.id != first_id),
        "unresolved after resolving: {unresolved:?}"
    );

    // The audit trail holds each step once, however many callers raced or retried.
    let trail_of_lecture: Vec<String> = trail
        .timeline(&lecture)
        .await?
        .iter()
        .map(|r| match &r.action {
            Action::IncidentOpened { incident_id, kind }
            | Action::IncidentAcknowledged { incident_id, kind }
            | Action::IncidentResolved { incident_id, kind } => format!(
                "{} {kind} {}",
                r.action.name(),
                if *incident_id == first_id {
                    "first"
                } else {
                    "later"
                }
            ),
            other => other.name().to_string(),
        })
        .collect();
    ensure!(
        trail_of_lecture
            == [
                "incident_opened missing_recording first",
                "incident_opened recorder_down later",
                "incident_acknowledged missing_recording first",
                "incident_resolved missing_recording first",
                "incident_opened missing_recording later",
            ],
        "audit trail of the lecture: {trail_of_lecture:?}"
    );

    h.stop().await;
    Ok(())
}
