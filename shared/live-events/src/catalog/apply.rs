//! What one event does to one catalog row. Pure: the processor loads the row, calls
//! [`apply`], and commits the result together with the outbox record.

use super::{EntityRecord, Normalized, is_catalog_type};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// What kind of change the source event describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    Created,
    Updated,
    Deleted,
    /// Activity about an entity that does not change its catalog state (`logged_in`,
    /// `asset_accessed`, `quiz_submitted`...), and every event of a stream-only entity type.
    Activity,
}

impl ChangeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Created => "created",
            ChangeKind::Updated => "updated",
            ChangeKind::Deleted => "deleted",
            ChangeKind::Activity => "activity",
        }
    }
}

/// The outcome of applying one event.
#[derive(Debug, Clone, PartialEq)]
pub struct Applied {
    /// The row to write (its `sequence` is the one this event is published with).
    pub record: EntityRecord,
    pub kind: ChangeKind,
    /// Older than the change that last shaped the entity: recorded and published, but the
    /// catalog keeps its newer state.
    pub late: bool,
    /// Names of the state fields this event changed (empty when late or a no-op).
    pub changed: Vec<String>,
    /// Their values before the event (`null` where a field was absent).
    pub previous: Map<String, Value>,
}

/// Applies an event (already normalized) to the current row.
///
/// - Every event takes the next sequence number, late or not, so the numbers published for an
///   entity are gapless.
/// - State is last-writer-wins **per field**: each field the event carries is taken unless a
///   newer event already set it. So a late event never regresses anything, yet still fills in
///   what only it knows (a `submission_updated` overtaken by the `grade_change` after it keeps
///   its `workflow_state`). Ties on `event_time` apply in arrival order.
/// - A deletion removes the state and leaves a tombstone; only a newer event that carries a
///   non-deleted `workflow_state` restores the entity.
/// - `late` flags an event older than the newest one applied to the entity.
pub fn apply(
    current: &EntityRecord,
    event_name: &str,
    event_time: &str,
    event_hash: &str,
    normalized: &Normalized,
    now: &str,
) -> Applied {
    let mut record = current.clone();
    record.sequence = current.sequence + 1;
    record.updated_at = now.to_string();
    let late = !current.event_time.is_empty() && event_time < current.event_time.as_str();
    if !late {
        record.event_time = event_time.to_string();
        record.event_hash = event_hash.to_string();
    }
    if record.parent.is_none() || (!late && normalized.parent.is_some()) {
        record.parent = normalized.parent.clone().or(record.parent);
    }

    let stateful = is_catalog_type(&current.entity_type)
        && (normalized.state_fields.is_some() || normalized.deleted);
    if !stateful {
        return Applied {
            record,
            kind: ChangeKind::Activity,
            // Activity does not compete with state; for stream-only types lateness is order.
            late: late && !is_catalog_type(&current.entity_type),
            changed: Vec::new(),
            previous: Map::new(),
        };
    }

    let kind = if normalized.deleted {
        ChangeKind::Deleted
    } else if event_name.ends_with("_created") {
        ChangeKind::Created
    } else {
        ChangeKind::Updated
    };
    let set_at = |field: &str| current.field_times.get(field).and_then(Value::as_str);
    let newer_than = |field: &str| set_at(field).is_none_or(|at| event_time >= at);
    let stamp = Value::String(event_time.to_string());
    let old_state = current.state.clone().unwrap_or_default();
    let mut changed = Vec::new();
    let mut previous = Map::new();

    if normalized.deleted {
        if newer_than(WORKFLOW_STATE) {
            if !current.deleted {
                changed = old_state.keys().cloned().collect();
                previous = old_state;
            }
            record.state = None;
            record.deleted = true;
            record.field_times.insert(WORKFLOW_STATE.into(), stamp);
        }
    } else {
        let fields = normalized.state_fields.clone().unwrap_or_default();
        let restores = fields
            .get(WORKFLOW_STATE)
            .is_some_and(|ws| ws.as_str() != Some("deleted"))
            && newer_than(WORKFLOW_STATE);
        if !current.deleted || restores {
            let mut state = if current.deleted {
                Map::new()
            } else {
                old_state.clone()
            };
            for (field, value) in fields {
                if !newer_than(&field) {
                    continue;
                }
                let before = old_state.get(&field);
                if current.deleted || before != Some(&value) {
                    previous.insert(field.clone(), before.cloned().unwrap_or(Value::Null));
                    changed.push(field.clone());
                }
                record.field_times.insert(field.clone(), stamp.clone());
                state.insert(field, value);
            }
            record.state = Some(state);
            record.deleted = false;
        }
    }
    Applied {
        record,
        kind,
        late,
        changed,
        previous,
    }
}

const WORKFLOW_STATE: &str = "workflow_state";

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields(value: Value) -> Normalized {
        let map = value.as_object().cloned().unwrap_or_default();
        Normalized {
            state_fields: Some(map.clone()),
            data: map,
            ..Normalized::default()
        }
    }

    fn run(record: &EntityRecord, name: &str, time: &str, n: &Normalized) -> Applied {
        apply(record, name, time, &format!("h-{time}"), n, "now")
    }

    #[test]
    fn updates_merge_and_report_what_changed() {
        let row = EntityRecord::empty("enrollment:1");
        let created = run(
            &row,
            "enrollment_created",
            "2025-01-01T00:00:00.000000Z",
            &fields(json!({"workflow_state": "invited", "type": "StudentEnrollment"})),
        );
        assert_eq!(created.kind, ChangeKind::Created);
        assert_eq!(created.record.sequence, 1);
        assert_eq!(created.changed.len(), 2);

        let updated = run(
            &created.record,
            "enrollment_updated",
            "2025-01-02T00:00:00.000000Z",
            &fields(json!({"workflow_state": "active", "type": "StudentEnrollment"})),
        );
        assert_eq!(updated.kind, ChangeKind::Updated);
        assert_eq!(updated.record.sequence, 2);
        assert_eq!(updated.changed, ["workflow_state"]);
        assert_eq!(
            updated.previous,
            json!({"workflow_state": "invited"})
                .as_object()
                .cloned()
                .unwrap()
        );
        assert_eq!(
            updated.record.state.as_ref().unwrap()["workflow_state"],
            "active"
        );
    }

    #[test]
    fn late_events_take_a_sequence_number_but_never_regress_state() {
        let row = EntityRecord::empty("enrollment:1");
        let newer = run(
            &row,
            "enrollment_updated",
            "2025-01-02T00:00:00.000000Z",
            &fields(json!({"workflow_state": "completed"})),
        );
        let late = run(
            &newer.record,
            "enrollment_updated",
            "2025-01-01T00:00:00.000000Z",
            &fields(json!({"workflow_state": "active"})),
        );
        assert!(late.late);
        assert_eq!(late.record.sequence, 2);
        assert!(late.changed.is_empty());
        assert_eq!(late.record.state, newer.record.state);
        assert_eq!(late.record.event_time, newer.record.event_time);
    }

    #[test]
    fn a_late_event_still_sets_fields_no_newer_event_carried() {
        let row = EntityRecord::empty("submission:1");
        let submitted = run(
            &row,
            "submission_created",
            "2025-01-01T00:00:00.000000Z",
            &fields(json!({"workflow_state": "submitted"})),
        );
        let graded = run(
            &submitted.record,
            "grade_change",
            "2025-01-03T00:00:00.000000Z",
            &fields(json!({"grade": "A", "score": 9.5})),
        );
        // The submission_updated between the two arrives last.
        let updated = run(
            &graded.record,
            "submission_updated",
            "2025-01-02T00:00:00.000000Z",
            &fields(json!({"workflow_state": "graded", "grade": "B"})),
        );
        assert!(updated.late);
        assert_eq!(updated.changed, ["workflow_state"]);
        let state = updated.record.state.unwrap();
        assert_eq!(state["workflow_state"], "graded");
        assert_eq!(state["grade"], "A", "the newer grade stays");
    }

    #[test]
    fn deletions_leave_a_tombstone_and_a_newer_update_restores() {
        let row = EntityRecord::empty("assignment:1");
        let created = run(
            &row,
            "assignment_created",
            "2025-01-01T00:00:00.000000Z",
            &fields(json!({"title": "Lab 1", "workflow_state": "published"})),
        );
        let mut deletion = fields(json!({"workflow_state": "deleted"}));
        deletion.deleted = true;
        let deleted = run(
            &created.record,
            "assignment_updated",
            "2025-01-02T00:00:00.000000Z",
            &deletion,
        );
        assert_eq!(deleted.kind, ChangeKind::Deleted);
        assert!(deleted.record.deleted);
        assert_eq!(deleted.record.state, None);
        assert_eq!(deleted.previous["title"], "Lab 1");

        // An older update cannot resurrect it...
        let stale = run(
            &deleted.record,
            "assignment_updated",
            "2025-01-01T12:00:00.000000Z",
            &fields(json!({"workflow_state": "published"})),
        );
        assert!(stale.late && stale.record.deleted);
        // ...a newer one does.
        let restored = run(
            &stale.record,
            "assignment_updated",
            "2025-01-03T00:00:00.000000Z",
            &fields(json!({"title": "Lab 1", "workflow_state": "published"})),
        );
        assert!(!restored.record.deleted);
        assert_eq!(restored.record.sequence, 4);
    }

    #[test]
    fn activity_and_stream_events_keep_state_and_count_in_the_sequence() {
        let row = EntityRecord::empty("user:1");
        let created = run(
            &row,
            "user_created",
            "2025-01-02T00:00:00.000000Z",
            &fields(json!({"name": "A"})),
        );
        let login = run(
            &created.record,
            "logged_in",
            "2025-01-01T00:00:00.000000Z",
            &Normalized::default(),
        );
        assert_eq!(login.kind, ChangeKind::Activity);
        assert!(!login.late, "activity does not compete with state");
        assert_eq!(login.record.state, created.record.state);
        assert_eq!(login.record.sequence, 2);

        let stream = EntityRecord::empty("asset:wiki_page:1");
        let first = run(
            &stream,
            "asset_accessed",
            "2025-01-02T00:00:00.000000Z",
            &Normalized::default(),
        );
        let reordered = run(
            &first.record,
            "asset_accessed",
            "2025-01-01T00:00:00.000000Z",
            &Normalized::default(),
        );
        assert!(reordered.late);
        assert_eq!(reordered.record.sequence, 2);
        assert_eq!(reordered.record.state, None);
    }
}
