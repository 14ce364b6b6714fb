//! Incidents in DynamoDB.
//!
//! One table, `pk` + `sk`, partitioned by subject (its [`Subject::key`], shared with the
//! audit trail), so a subject's incidents are one Query:
//! - an incident: `sk` = `incident#<opened at>#<id>`, its JSON in `data`, a `version` every
//!   change is conditional on, and, while unresolved, `unresolved` + `opened_key` keying the
//!   sparse GSI [`UNRESOLVED`];
//! - the lock that keeps one incident open per kind: `sk` = `open#<kind>`, naming the open
//!   incident's `sk`. Opening puts the lock and the incident in one transaction, on the
//!   condition that no lock exists; resolving deletes the lock with the incident's update;
//! - for an incident opened `once`, a marker that outlives it: `sk` = `once#<kind>`, also
//!   naming the incident's `sk`, put in the same transaction and never deleted, so the
//!   subject never opens that kind again.

use crate::model::{Incident, IncidentKind, IncidentState, Subject};
use crate::ports::{IncidentError, IncidentStore, Opened};
use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, Delete, Put, TransactWriteItem};
use chrono::{DateTime, SecondsFormat, Utc};
use coursewire_runtime::aws::{Item, classify, query_all};
use coursewire_runtime::service::ServiceError;

/// GSI of unresolved incidents by opening time.
pub const UNRESOLVED: &str = "unresolved";
const UNRESOLVED_MARK: &str = "yes";

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn lock_sk(kind: IncidentKind) -> String {
    format!("open#{kind}")
}

fn once_sk(kind: IncidentKind) -> String {
    format!("once#{kind}")
}

fn incident_sk(incident: &Incident) -> String {
    format!(
        "incident#{}#{}",
        incident
            .opened_at
            .to_rfc3339_opts(SecondsFormat::Millis, true),
        incident.id
    )
}

fn permanent(e: impl std::fmt::Display) -> ServiceError {
    ServiceError::Permanent(e.to_string())
}

#[derive(Clone)]
pub struct DynamoIncidentStore {
    client: Client,
    table: String,
}

/// An incident as read, with the version its next change is conditional on.
struct Stored {
    incident: Incident,
    version: i64,
}

impl DynamoIncidentStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    fn item(&self, incident: &Incident, version: i64) -> Result<Item, IncidentError> {
        let data = serde_json::to_string(incident).map_err(permanent)?;
        let mut item = Item::from([
            ("pk".to_string(), s(incident.subject.key())),
            ("sk".to_string(), s(incident_sk(incident))),
            ("data".to_string(), s(data)),
            (
                "version".to_string(),
                AttributeValue::N(version.to_string()),
            ),
            ("kind".to_string(), s(incident.kind.as_str())),
            ("state".to_string(), s(incident.state.as_str())),
        ]);
        if incident.state != IncidentState::Resolved {
            item.insert("unresolved".into(), s(UNRESOLVED_MARK));
            item.insert("opened_key".into(), s(incident_sk(incident)));
        }
        Ok(item)
    }

    fn parse(item: &Item) -> Result<Stored, IncidentError> {
        let data = item
            .get("data")
            .and_then(|v| v.as_s().ok())
            .ok_or_else(|| IncidentError::Corrupt("an incident without data".into()))?;
        let incident = serde_json::from_str(data)
            .map_err(|e| IncidentError::Corrupt(format!("incident data: {e}")))?;
        let version = item
            .get("version")
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        Ok(Stored { incident, version })
    }

    async fn get(&self, pk: &str, sk: &str) -> Result<Option<Item>, IncidentError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(pk))
            .key("sk", s(sk))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| classify(&e))?;
        Ok(out.item)
    }

    async fn stored_current(
        &self,
        subject: &Subject,
        kind: IncidentKind,
    ) -> Result<Option<Stored>, IncidentError> {
        self.named_by(subject, kind, &lock_sk(kind)).await
    }

    /// The incident a lock or once-marker (`marker_sk`) names, if the marker exists.
    async fn named_by(
        &self,
        subject: &Subject,
        kind: IncidentKind,
        marker_sk: &str,
    ) -> Result<Option<Stored>, IncidentError> {
        let pk = subject.key();
        let Some(lock) = self.get(&pk, marker_sk).await? else {
            return Ok(None);
        };
        let sk = lock
            .get("incident_sk")
            .and_then(|v| v.as_s().ok())
            .ok_or_else(|| {
                IncidentError::Corrupt("an incident marker without its incident".into())
            })?;
        match self.get(&pk, sk).await? {
            Some(item) => Self::parse(&item).map(Some),
            None => Err(IncidentError::Corrupt(format!(
                "the lock of {kind} on {pk} names a missing incident"
            ))),
        }
    }

    /// The unresolved incident (`id`'s, when given), changed by `change`, written if nobody
    /// changed it meanwhile; `change` returning false writes nothing. `release` also deletes
    /// the lock (resolving).
    async fn change(
        &self,
        subject: &Subject,
        kind: IncidentKind,
        id: Option<&str>,
        release: bool,
        change: impl FnOnce(&mut Incident) -> bool,
    ) -> Result<Option<Incident>, IncidentError> {
        let not_open = || IncidentError::NotOpen {
            kind,
            subject: subject.key(),
        };
        let Some(Stored {
            mut incident,
            version,
        }) = self.stored_current(subject, kind).await?
        else {
            return Err(not_open());
        };
        if id.is_some_and(|id| id != incident.id) {
            return Err(not_open());
        }
        if !change(&mut incident) {
            return Ok(None);
        }
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(self.item(&incident, version + 1)?))
            .condition_expression("version = :v")
            .expression_attribute_values(":v", AttributeValue::N(version.to_string()))
            .build()
            .map_err(permanent)?;
        let mut transaction = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().put(put).build());
        if release {
            let delete = Delete::builder()
                .table_name(&self.table)
                .key("pk", s(subject.key()))
                .key("sk", s(lock_sk(kind)))
                .condition_expression("incident_sk = :sk")
                .expression_attribute_values(":sk", s(incident_sk(&incident)))
                .build()
                .map_err(permanent)?;
            transaction =
                transaction.transact_items(TransactWriteItem::builder().delete(delete).build());
        }
        match transaction.send().await {
            Ok(_) => Ok(Some(incident)),
            Err(err) => match err.as_service_error() {
                // Someone changed it first: the caller retries on what is there now.
                Some(TransactWriteItemsError::TransactionCanceledException(_)) => {
                    Err(ServiceError::Transient(format!(
                        "{kind} on {} changed meanwhile",
                        subject.key()
                    ))
                    .into())
                }
                _ => Err(classify(&err).into()),
            },
        }
    }
}

#[async_trait]
impl IncidentStore for DynamoIncidentStore {
    async fn open(&self, incident: &Incident) -> Result<Opened, IncidentError> {
        let pk = incident.subject.key();
        let lock = Put::builder()
            .table_name(&self.table)
            .item("pk", s(&pk))
            .item("sk", s(lock_sk(incident.kind)))
            .item("incident_sk", s(incident_sk(incident)))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(permanent)?;
        let row = Put::builder()
            .table_name(&self.table)
            .set_item(Some(self.item(incident, 1)?))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(permanent)?;
        let mut transaction = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().put(lock).build())
            .transact_items(TransactWriteItem::builder().put(row).build());
        if incident.once {
            let marker = Put::builder()
                .table_name(&self.table)
                .item("pk", s(&pk))
                .item("sk", s(once_sk(incident.kind)))
                .item("incident_sk", s(incident_sk(incident)))
                .condition_expression("attribute_not_exists(pk)")
                .build()
                .map_err(permanent)?;
            transaction =
                transaction.transact_items(TransactWriteItem::builder().put(marker).build());
        }
        match transaction.send().await {
            Ok(_) => Ok(Opened::New(incident.clone())),
            Err(err) => match err.as_service_error() {
                Some(TransactWriteItemsError::TransactionCanceledException(_)) => {
                    let current = self
                        .stored_current(&incident.subject, incident.kind)
                        .await?;
                    let earlier = match (&current, incident.once) {
                        (None, true) => {
                            self.named_by(&incident.subject, incident.kind, &once_sk(incident.kind))
                                .await?
                        }
                        _ => None,
                    };
                    match current.or(earlier) {
                        // Open now, or (opened once) opened and resolved before.
                        Some(stored) => Ok(Opened::AlreadyOpen(stored.incident)),
                        // Resolved between our write and our read: try again.
                        None => Err(ServiceError::Transient(format!(
                            "{} on {pk} was resolved while opening",
                            incident.kind
                        ))
                        .into()),
                    }
                }
                _ => Err(classify(&err).into()),
            },
        }
    }

    async fn current(
        &self,
        subject: &Subject,
        kind: IncidentKind,
    ) -> Result<Option<Incident>, IncidentError> {
        Ok(self
            .stored_current(subject, kind)
            .await?
            .map(|stored| stored.incident))
    }

    async fn of_subject(&self, subject: &Subject) -> Result<Vec<Incident>, IncidentError> {
        let items = query_all(
            self.client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
                .expression_attribute_values(":pk", s(subject.key()))
                .expression_attribute_values(":prefix", s("incident#")),
        )
        .await?;
        items
            .iter()
            .map(|item| Self::parse(item).map(|stored| stored.incident))
            .collect()
    }

    async fn unresolved(&self) -> Result<Vec<Incident>, IncidentError> {
        let items = query_all(
            self.client
                .query()
                .table_name(&self.table)
                .index_name(UNRESOLVED)
                .key_condition_expression("unresolved = :u")
                .expression_attribute_values(":u", s(UNRESOLVED_MARK)),
        )
        .await?;
        items
            .iter()
            .map(|item| Self::parse(item).map(|stored| stored.incident))
            .collect()
    }

    async fn claim_page(
        &self,
        incident: &Incident,
        at: DateTime<Utc>,
        lease: chrono::Duration,
    ) -> Result<bool, IncidentError> {
        let claimed = self
            .change(
                &incident.subject,
                incident.kind,
                Some(&incident.id),
                false,
                |i| {
                    let free = !i.paged && i.page_claimed_at.is_none_or(|c| c + lease <= at);
                    if free {
                        i.page_claimed_at = Some(at);
                    }
                    free
                },
            )
            .await;
        match claimed {
            Ok(claim) => Ok(claim.is_some()),
            // Resolved before anyone paged: nobody needs the page any more.
            Err(IncidentError::NotOpen { .. }) => Ok(false),
            // Another caller's claim won the conditional write.
            Err(IncidentError::Service(ServiceError::Transient(_))) => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn finish_page(&self, incident: &Incident, sent: bool) -> Result<(), IncidentError> {
        let finished = self
            .change(
                &incident.subject,
                incident.kind,
                Some(&incident.id),
                false,
                |i| {
                    if sent {
                        i.paged = true;
                    }
                    i.page_claimed_at = None;
                    true
                },
            )
            .await;
        match finished {
            // Resolved meanwhile: nothing left to record it on.
            Ok(_) | Err(IncidentError::NotOpen { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn acknowledge(
        &self,
        subject: &Subject,
        kind: IncidentKind,
        by: &str,
        at: DateTime<Utc>,
    ) -> Result<Incident, IncidentError> {
        let mut current = None;
        let changed = self
            .change(subject, kind, None, false, |i| {
                let open = i.state == IncidentState::Open;
                if open {
                    i.state = IncidentState::Acknowledged;
                    i.acknowledged_at = Some(at);
                    i.acknowledged_by = Some(by.to_string());
                } else {
                    current = Some(i.clone());
                }
                open
            })
            .await?;
        // Acknowledging twice keeps the first acknowledgement.
        changed
            .or(current)
            .ok_or_else(|| IncidentError::Corrupt("an acknowledgement lost its incident".into()))
    }

    async fn resolve(
        &self,
        subject: &Subject,
        kind: IncidentKind,
        by: &str,
        resolution: &str,
        at: DateTime<Utc>,
    ) -> Result<Incident, IncidentError> {
        self.change(subject, kind, None, true, |i| {
            i.state = IncidentState::Resolved;
            i.resolved_at = Some(at);
            i.resolved_by = Some(by.to_string());
            i.resolution = Some(resolution.to_string());
            true
        })
        .await?
        .ok_or_else(|| IncidentError::Corrupt("a resolution lost its incident".into()))
    }
}
