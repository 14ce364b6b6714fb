//! `access-sync`: lecture capture as a subscriber of coursewire's own change bus. An
//! EventBridge rule sends every Canvas enrollment change to the access queue; for each, the
//! recordings of the sections it touches (the enrollment's section now and before) take the
//! access step again, so a dropped student loses access and a new one gains it within one
//! processing cycle.
//!
//! Order and duplicates cannot give a wrong answer: the step re-derives the viewers from the
//! Canvas catalog, which the processor updated (in `sequence` order) before it published the
//! change, and grants and revokes only the difference. A duplicate or a late event finds
//! nothing to change.

use crate::orchestrator::Orchestrator;
use crate::publisher::Trigger;
use crate::workflow::Step;
use async_trait::async_trait;
use coursewire_runtime::function::{BatchOutcome, HandlerError, QueueHandler, QueueMessage};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;

/// What access-sync reads of an EventBridge event delivered to SQS.
#[derive(Debug, Deserialize)]
struct BusEvent {
    #[serde(rename = "detail-type")]
    detail_type: String,
    detail: Detail,
}

#[derive(Debug, Deserialize)]
struct Detail {
    event_id: String,
    entity: Entity,
    #[serde(default)]
    data: Map<String, Value>,
    #[serde(default)]
    previous: Map<String, Value>,
    #[serde(default)]
    state: Option<Map<String, Value>>,
}

#[derive(Debug, Deserialize)]
struct Entity {
    #[serde(rename = "type")]
    entity_type: String,
}

/// An enrollment change: the sections whose access it can change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RosterChange {
    pub event_id: String,
    pub sections: BTreeSet<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RosterError {
    #[error("not a coursewire change event: {0}")]
    Unreadable(String),
    #[error("`{0}` is not an enrollment change")]
    NotEnrollment(String),
}

impl RosterChange {
    /// Reads an SQS body holding an EventBridge change event.
    pub fn parse(body: &str) -> Result<Self, RosterError> {
        let event: BusEvent =
            serde_json::from_str(body).map_err(|e| RosterError::Unreadable(e.to_string()))?;
        if event.detail.entity.entity_type != "enrollment" {
            return Err(RosterError::NotEnrollment(event.detail_type));
        }
        let detail = event.detail;
        let section = |map: &Map<String, Value>| {
            map.get("section_id")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        };
        let sections = [
            detail.state.as_ref().and_then(section),
            section(&detail.data),
            section(&detail.previous),
        ]
        .into_iter()
        .flatten()
        .collect();
        Ok(Self {
            event_id: detail.event_id,
            sections,
        })
    }
}

/// The access queue's handler.
pub struct AccessSync {
    orchestrator: Arc<Orchestrator>,
}

impl AccessSync {
    pub fn new(orchestrator: Arc<Orchestrator>) -> Self {
        Self { orchestrator }
    }

    /// Re-takes the access step of every recording of the change's sections that has had it.
    /// Answers how many recordings were looked at.
    pub async fn apply(&self, change: &RosterChange) -> Result<usize, HandlerError> {
        let publisher = self.orchestrator.publisher();
        let trigger = Trigger {
            force: BTreeSet::from([Step::Access]),
            canvas_event_id: Some(change.event_id.clone()),
            ..Trigger::default()
        };
        let mut looked = 0;
        for section in &change.sections {
            for row in publisher.store().of_section(section, None).await? {
                if row.access.is_none() {
                    continue; // its access step has not run yet; it will read the new roster
                }
                let Some(recording) = self.orchestrator.recording(&row.session_id).await? else {
                    continue;
                };
                publisher.advance(&recording, &trigger).await?;
                looked += 1;
            }
        }
        Ok(looked)
    }
}

#[async_trait]
impl QueueHandler for AccessSync {
    async fn handle(&self, batch: Vec<QueueMessage>) -> Result<BatchOutcome, HandlerError> {
        let mut outcome = BatchOutcome::default();
        let mut done: HashSet<String> = HashSet::new();
        for message in batch {
            let change = match RosterChange::parse(&message.body) {
                Ok(change) => change,
                Err(e) => {
                    // The rule sends only enrollment changes: anything else is a
                    // misconfiguration, logged and dropped rather than retried forever.
                    tracing::error!(message_id = %message.id, error = %e, "not an enrollment change; dropped");
                    continue;
                }
            };
            // Two changes of one batch to the same section need one pass.
            let fresh: BTreeSet<String> = change
                .sections
                .iter()
                .filter(|s| !done.contains(*s))
                .cloned()
                .collect();
            let change = RosterChange {
                sections: fresh,
                ..change
            };
            match self.apply(&change).await {
                Ok(looked) => {
                    tracing::info!(correlation_id = %change.event_id, recordings = looked, "access re-derived from the roster");
                    done.extend(change.sections);
                }
                Err(e) => {
                    tracing::warn!(correlation_id = %change.event_id, error = %e, "access sync failed; retried");
                    outcome.fail(message.id);
                }
            }
        }
        Ok(outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body(detail: Value) -> String {
        json!({"version": "0", "id": "eb-1", "detail-type": "Enrollment Updated",
            "source": "coursewire.canvas", "detail": detail})
        .to_string()
    }

    #[test]
    fn a_moved_or_dropped_enrollment_names_every_section_it_touches() {
        let moved = RosterChange::parse(&body(json!({
            "event_id": "e-1", "entity": {"type": "enrollment", "key": "enrollment:1"},
            "data": {"section_id": "902"}, "previous": {"section_id": "901"},
            "state": {"section_id": "902", "workflow_state": "active"}})))
        .unwrap();
        assert_eq!(moved.event_id, "e-1");
        assert_eq!(
            moved.sections,
            BTreeSet::from(["901".to_string(), "902".to_string()])
        );
        let dropped = RosterChange::parse(&body(json!({
            "event_id": "e-2", "entity": {"type": "enrollment", "key": "enrollment:1"},
            "data": {"section_id": "901", "workflow_state": "deleted"}, "state": null})))
        .unwrap();
        assert_eq!(dropped.sections, BTreeSet::from(["901".to_string()]));
    }

    #[test]
    fn other_events_are_refused_by_name() {
        let course = RosterChange::parse(&body(json!({
            "event_id": "e-3", "entity": {"type": "course", "key": "course:1"}})));
        assert_eq!(
            course,
            Err(RosterError::NotEnrollment("Enrollment Updated".into()))
        );
        assert!(matches!(
            RosterChange::parse("not json"),
            Err(RosterError::Unreadable(_))
        ));
    }
}
