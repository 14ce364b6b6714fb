//! What Canvas's API says about one course versus what the catalog holds → the drift, each
//! piece as a synthesized Canvas-format live event. Pure: the reconciler fetches both sides
//! and submits the result.
//!
//! A drift event goes through the same path as a live event (inbox, `changes.fifo`, processor),
//! so it gets the entity's next sequence number and exactly one change event. Its
//! `event_time` is when the reconciliation run started: the API's answer is at least that
//! new, so it wins over older live events (per-field last-writer-wins) and loses to any newer
//! one. (A change Canvas made after the run started and then lost the event for is healed by
//! the next run.)

use crate::canvas::{Course, Enrollment, Module, ModuleItem, Roster, Section, User};
use chrono::{DateTime, SecondsFormat, Utc};
use coursewire_live_events::catalog::{EntityRecord, normalize};
use coursewire_live_events::live_events::entity::{globalise, shard_of};
use coursewire_live_events::live_events::{self, DeliveryHints, Format, LiveEvent};
use serde_json::{Map, Value, json};
use std::collections::{BTreeSet, HashMap};

/// `metadata.producer` of a synthesized event.
pub const PRODUCER: &str = "coursewire-reconciler";

/// What the API returned for one course.
#[derive(Debug, Clone, PartialEq)]
pub struct CourseSnapshot {
    pub course: Course,
    pub roster: Roster,
    pub modules: Vec<Module>,
}

/// Why an entity drifted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DriftKind {
    /// Canvas has it, the catalog does not (a lost `*_created`).
    Missing,
    /// Both have it, some fields differ (a lost `*_updated`).
    Changed,
    /// The catalog has it, Canvas no longer lists it (a lost deletion).
    Deleted,
}

impl DriftKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DriftKind::Missing => "missing",
            DriftKind::Changed => "changed",
            DriftKind::Deleted => "deleted",
        }
    }
}

/// One entity to heal.
#[derive(Debug, Clone)]
pub struct Drift {
    pub kind: DriftKind,
    /// The fields that differ (empty for `Missing` and `Deleted`).
    pub fields: Vec<String>,
    /// The synthesized event, parsed exactly as ingestion parses a live event.
    pub event: LiveEvent,
}

impl Drift {
    pub fn entity_type(&self) -> &str {
        self.event.entity_key.entity_type()
    }
}

/// How synthesized events are stamped.
#[derive(Debug, Clone)]
pub struct Stamp {
    /// When the reconciliation run started (at or before the fetch: the API's answer is at
    /// least that new). One run's course passes share it, so an entity seen by several of
    /// them (a user in two courses) drifts as one identical event.
    pub at: DateTime<Utc>,
    /// The root account's global id (`metadata.root_account_id`): local ids in API answers are
    /// made global on its shard, as live events' are.
    pub root_account_id: Option<String>,
}

/// The drift of one course: its row, sections, enrollments, users, modules and module items.
/// `rows` holds the catalog rows of the course and everything under it (see
/// [`CatalogView`](super::CatalogView)).
pub fn diff(
    snapshot: &CourseSnapshot,
    rows: &HashMap<String, EntityRecord>,
    stamp: &Stamp,
) -> Vec<Drift> {
    let course_id = &snapshot.course.id;
    let mut out = Vec::new();
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let check = |noun: &str, body: Value, out: &mut Vec<Drift>| {
        if let Some(drift) = compare(noun, body, course_id, rows, stamp) {
            out.push(drift);
        }
    };

    check(
        "course",
        course_body(&snapshot.course, rows, stamp),
        &mut out,
    );
    for section in &snapshot.roster.sections {
        check("course_section", section_body(section), &mut out);
        seen.insert(entity_key("section", &section.id, stamp));
    }
    for enrollment in &snapshot.roster.enrollments {
        check("enrollment", enrollment_body(enrollment), &mut out);
        seen.insert(entity_key("enrollment", &enrollment.id, stamp));
    }
    for user in &snapshot.roster.users {
        check("user", user_body(user), &mut out);
    }
    for module in &snapshot.modules {
        check("module", module_body(module, course_id), &mut out);
        seen.insert(entity_key("module", &module.id, stamp));
        for item in &module.items {
            check("module_item", item_body(item, course_id), &mut out);
            seen.insert(entity_key("module_item", &item.id, stamp));
        }
    }

    // Deletions: live rows under this course (and its modules) that Canvas no longer lists.
    let course_key = entity_key("course", course_id, stamp);
    let module_keys: BTreeSet<&str> = rows
        .values()
        .filter(|r| r.entity_type == "module" && r.parent.as_deref() == Some(&course_key))
        .map(|r| r.key.as_str())
        .collect();
    let mut gone: Vec<&EntityRecord> = rows
        .values()
        .filter(|r| !r.deleted && !seen.contains(&r.key))
        .filter(|r| match (r.entity_type.as_str(), r.parent.as_deref()) {
            ("section" | "enrollment" | "module", Some(parent)) => parent == course_key,
            ("module_item", Some(parent)) => module_keys.contains(parent),
            _ => false,
        })
        .collect();
    gone.sort_by(|a, b| a.key.cmp(&b.key));
    for row in gone {
        if let Some(drift) = deletion(row, course_id, stamp) {
            out.push(drift);
        }
    }
    out
}

/// The entity key a Canvas id has in the catalog (local ids made global like live events').
pub fn entity_key(entity_type: &str, id: &str, stamp: &Stamp) -> String {
    let root = stamp.root_account_id.as_deref().map(Value::from);
    format!("{entity_type}:{}", globalise(id, shard_of(root.as_ref())))
}

/// Synthesizes the event for `body` and compares what it states with the catalog row.
fn compare(
    noun: &str,
    body: Value,
    course_id: &str,
    rows: &HashMap<String, EntityRecord>,
    stamp: &Stamp,
) -> Option<Drift> {
    // Probe with the `_updated` name to learn the key, then name it for what it is.
    // A user belongs to no one course: the same user drifting in two courses' passes of one
    // run must be the same event (same hash: the inbox keeps one).
    let context = (noun != "user").then_some(course_id);
    let probe = synthesize(&format!("{noun}_updated"), body.clone(), context, stamp)?;
    let row = rows.get(probe.entity_key.as_str());
    let exists = row.is_some_and(|r| r.sequence > 0 && (r.state.is_some() || r.deleted));
    let fields = normalize(
        &probe.event_name,
        probe.entity_key.as_str(),
        Format::Canvas,
        &probe.payload,
    )
    .state_fields
    .unwrap_or_default();
    let (kind, changed) = match row {
        Some(row) if exists && !row.deleted => {
            let state = row.state.clone().unwrap_or_default();
            let changed: Vec<String> = fields
                .iter()
                .filter(|(name, value)| state.get(*name).unwrap_or(&Value::Null) != *value)
                .map(|(name, _)| name.clone())
                .collect();
            if changed.is_empty() {
                return None;
            }
            (DriftKind::Changed, changed)
        }
        // A tombstone Canvas lists again: restored (or the deletion event was wrong).
        Some(_) if exists => (DriftKind::Changed, vec!["workflow_state".to_string()]),
        _ => (DriftKind::Missing, Vec::new()),
    };
    let event = if kind == DriftKind::Missing {
        synthesize(&format!("{noun}_created"), body, context, stamp)?
    } else {
        probe
    };
    Some(Drift {
        kind,
        fields: changed,
        event,
    })
}

/// A deletion event for a row Canvas no longer lists.
fn deletion(row: &EntityRecord, course_id: &str, stamp: &Stamp) -> Option<Drift> {
    let id = row.entity_id.as_str();
    let state = row.state.clone().unwrap_or_default();
    let text = |name: &str| state.get(name).cloned().unwrap_or(Value::Null);
    let (noun, body) = match row.entity_type.as_str() {
        "section" => (
            "course_section",
            json!({"course_section_id": id, "course_id": course_id, "workflow_state": "deleted"}),
        ),
        "enrollment" => (
            "enrollment",
            json!({
                "enrollment_id": id,
                "course_id": course_id,
                "user_id": text("user_id"),
                "course_section_id": text("section_id"),
                "type": text("type"),
                "workflow_state": "deleted",
            }),
        ),
        "module" => (
            "module",
            json!({"module_id": id, "context_id": course_id, "context_type": "Course",
                   "workflow_state": "deleted"}),
        ),
        "module_item" => (
            "module_item",
            json!({"module_item_id": id, "module_id": text("module_id"), "context_id": course_id,
                   "context_type": "Course", "workflow_state": "deleted"}),
        ),
        _ => return None,
    };
    let event = synthesize(&format!("{noun}_updated"), body, Some(course_id), stamp)?;
    Some(Drift {
        kind: DriftKind::Deleted,
        fields: Vec::new(),
        event,
    })
}

/// A Canvas-format live event, parsed like ingestion parses one (content hash, entity key).
fn synthesize(
    event_name: &str,
    body: Value,
    course_id: Option<&str>,
    stamp: &Stamp,
) -> Option<LiveEvent> {
    let mut metadata = Map::new();
    metadata.insert("event_name".into(), event_name.into());
    metadata.insert(
        "event_time".into(),
        stamp.at.to_rfc3339_opts(SecondsFormat::Millis, true).into(),
    );
    metadata.insert("producer".into(), PRODUCER.into());
    if let Some(course_id) = course_id {
        metadata.insert("context_type".into(), "Course".into());
        metadata.insert("context_id".into(), course_id.into());
    }
    if let Some(root) = &stamp.root_account_id {
        metadata.insert("root_account_id".into(), root.as_str().into());
    }
    let payload = json!({"metadata": metadata, "body": without_nulls(body)});
    match live_events::from_value(payload, DeliveryHints::default()) {
        Ok(event) => Some(event),
        Err(e) => {
            // Only a bug in the bodies below gets here; skip the entity, keep the pass.
            tracing::error!(event_name, error = %e, "synthesized event is not a valid live event");
            None
        }
    }
}

/// Fields the API left empty are left out, so they never overwrite what a live event said
/// with nothing (the catalog compares absent as `null` anyway).
fn without_nulls(body: Value) -> Value {
    match body {
        Value::Object(map) => {
            Value::Object(map.into_iter().filter(|(_, v)| !v.is_null()).collect())
        }
        other => other,
    }
}

// --- API objects → the live-event bodies Canvas would have sent ------------------------------

fn course_body(course: &Course, rows: &HashMap<String, EntityRecord>, stamp: &Stamp) -> Value {
    let mut body = json!({
        "course_id": course.id,
        "name": course.name,
        "course_code": course.course_code,
        "sis_source_id": course.sis_course_id,
    });
    // The API folds Canvas's internal `created` and `claimed` into `unpublished`: keep the
    // catalog's word for those, since the API cannot tell them apart.
    let current = rows
        .get(&entity_key("course", &course.id, stamp))
        .and_then(|r| r.state.as_ref())
        .and_then(|s| s.get("workflow_state"))
        .and_then(Value::as_str);
    let state = match (course.workflow_state.as_deref(), current) {
        (Some("unpublished"), Some(current @ ("created" | "claimed"))) => Some(current),
        (Some("unpublished"), _) => Some("claimed"),
        (other, _) => other,
    };
    if let Some(state) = state {
        body["workflow_state"] = state.into();
    }
    body
}

fn section_body(section: &Section) -> Value {
    json!({
        "course_section_id": section.id,
        "course_id": section.course_id,
        "name": section.name,
        "sis_source_id": section.sis_section_id,
        "start_at": section.start_at,
        "end_at": section.end_at,
        // The API lists only live sections.
        "workflow_state": "active",
    })
}

fn enrollment_body(enrollment: &Enrollment) -> Value {
    json!({
        "enrollment_id": enrollment.id,
        "course_id": enrollment.course_id,
        "course_section_id": enrollment.section_id,
        "user_id": enrollment.user_id,
        "type": enrollment.enrollment_type,
        "workflow_state": enrollment.state,
    })
}

fn user_body(user: &User) -> Value {
    json!({
        "user_id": user.id,
        "name": user.name,
        "short_name": user.short_name,
        "user_sis_id": user.sis_user_id,
    })
}

fn published_state(published: Option<bool>) -> Option<&'static str> {
    published.map(|p| if p { "active" } else { "unpublished" })
}

fn module_body(module: &Module, course_id: &str) -> Value {
    json!({
        "module_id": module.id,
        "context_id": course_id,
        "context_type": "Course",
        "name": module.name,
        "position": module.position,
        "workflow_state": published_state(module.published),
    })
}

fn item_body(item: &ModuleItem, course_id: &str) -> Value {
    json!({
        "module_item_id": item.id,
        "module_id": item.module_id,
        "context_id": course_id,
        "context_type": "Course",
        "position": item.position,
        "workflow_state": published_state(item.published),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use coursewire_live_events::catalog::apply;

    const ROOT: &str = "21070000000000001";

    fn stamp() -> Stamp {
        Stamp {
            at: Utc.with_ymd_and_hms(2026, 11, 23, 9, 0, 0).unwrap(),
            root_account_id: Some(ROOT.into()),
        }
    }

    fn snapshot() -> CourseSnapshot {
        CourseSnapshot {
            course: Course {
                id: "21070000000000100".into(),
                name: Some("Physics 101".into()),
                course_code: Some("PHYS101".into()),
                sis_course_id: None,
                workflow_state: Some("available".into()),
            },
            roster: Roster {
                course_id: "21070000000000100".into(),
                sections: vec![Section {
                    id: "21070000000000200".into(),
                    course_id: "21070000000000100".into(),
                    name: Some("Section A".into()),
                    sis_section_id: None,
                    start_at: None,
                    end_at: None,
                }],
                enrollments: vec![Enrollment {
                    id: "21070000000000300".into(),
                    course_id: "21070000000000100".into(),
                    section_id: Some("21070000000000200".into()),
                    user_id: "21070000000000400".into(),
                    enrollment_type: "StudentEnrollment".into(),
                    state: "active".into(),
                    created_at: None,
                    updated_at: None,
                }],
                users: vec![User {
                    id: "21070000000000400".into(),
                    name: Some("Ada Lovelace".into()),
                    short_name: Some("Ada".into()),
                    sortable_name: None,
                    sis_user_id: None,
                }],
            },
            modules: vec![Module {
                id: "21070000000000500".into(),
                course_id: "21070000000000100".into(),
                name: Some("Week 1".into()),
                position: Some(1),
                published: Some(true),
                items: vec![ModuleItem {
                    id: "21070000000000600".into(),
                    module_id: "21070000000000500".into(),
                    position: Some(1),
                    title: Some("Lecture 1".into()),
                    item_type: Some("ExternalUrl".into()),
                    external_url: Some("https://example.edu/l1".into()),
                    published: Some(false),
                }],
            }],
        }
    }

    /// The catalog after the processor applied `drifts` to `rows`.
    fn applied(
        rows: &HashMap<String, EntityRecord>,
        drifts: &[Drift],
    ) -> HashMap<String, EntityRecord> {
        let mut rows = rows.clone();
        for drift in drifts {
            let e = &drift.event;
            let key = e.entity_key.as_str().to_string();
            let current = rows
                .get(&key)
                .cloned()
                .unwrap_or_else(|| EntityRecord::empty(&key));
            let normalized = normalize(&e.event_name, &key, Format::Canvas, &e.payload);
            let time = coursewire_pipeline::time::format_sortable(&e.event_time);
            let next = apply(
                &current,
                &e.event_name,
                &time,
                &e.content_hash,
                &normalized,
                &time,
            );
            rows.insert(key, next.record);
        }
        rows
    }

    fn kinds(drifts: &[Drift]) -> Vec<(String, DriftKind)> {
        let mut out: Vec<_> = drifts
            .iter()
            .map(|d| (d.event.entity_key.as_str().to_string(), d.kind))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    #[test]
    fn an_empty_catalog_misses_everything_and_one_pass_heals_it() {
        let drifts = diff(&snapshot(), &HashMap::new(), &stamp());
        let names: Vec<&str> = drifts.iter().map(|d| d.event.event_name.as_str()).collect();
        assert_eq!(
            names,
            [
                "course_created",
                "course_section_created",
                "enrollment_created",
                "user_created",
                "module_created",
                "module_item_created"
            ]
        );
        assert!(drifts.iter().all(|d| d.kind == DriftKind::Missing));
        let healed = applied(&HashMap::new(), &drifts);
        let enrollment = &healed["enrollment:21070000000000300"];
        assert_eq!(
            enrollment.parent.as_deref(),
            Some("course:21070000000000100")
        );
        let state = enrollment.state.as_ref().unwrap();
        assert_eq!(state["workflow_state"], "active");
        assert_eq!(state["section_id"], "21070000000000200");
        assert_eq!(
            healed["module_item:21070000000000600"]
                .state
                .as_ref()
                .unwrap()["workflow_state"],
            "unpublished"
        );
        // Converged: a second pass finds nothing.
        assert!(diff(&snapshot(), &healed, &stamp()).is_empty());
    }

    #[test]
    fn a_changed_field_is_named_and_unchanged_entities_are_left_alone() {
        let healed = applied(
            &HashMap::new(),
            &diff(&snapshot(), &HashMap::new(), &stamp()),
        );
        let mut changed = snapshot();
        changed.roster.enrollments[0].state = "inactive".into();
        changed.roster.sections[0].name = Some("Section A (Tue)".into());
        let drifts = diff(&changed, &healed, &stamp());
        assert_eq!(
            kinds(&drifts),
            [
                (
                    "enrollment:21070000000000300".to_string(),
                    DriftKind::Changed
                ),
                ("section:21070000000000200".to_string(), DriftKind::Changed),
            ]
        );
        let enrollment = drifts
            .iter()
            .find(|d| d.entity_type() == "enrollment")
            .unwrap();
        assert_eq!(enrollment.fields, ["workflow_state"]);
        assert_eq!(enrollment.event.event_name, "enrollment_updated");
    }

    #[test]
    fn rows_canvas_no_longer_lists_are_deleted() {
        let healed = applied(
            &HashMap::new(),
            &diff(&snapshot(), &HashMap::new(), &stamp()),
        );
        let mut gone = snapshot();
        gone.roster.enrollments.clear();
        gone.modules[0].items.clear();
        let drifts = diff(&gone, &healed, &stamp());
        assert_eq!(
            kinds(&drifts),
            [
                (
                    "enrollment:21070000000000300".to_string(),
                    DriftKind::Deleted
                ),
                (
                    "module_item:21070000000000600".to_string(),
                    DriftKind::Deleted
                ),
            ]
        );
        let after = applied(&healed, &drifts);
        assert!(after["enrollment:21070000000000300"].deleted);
        assert!(after["module_item:21070000000000600"].deleted);
        // Tombstones are not deleted again.
        assert!(diff(&gone, &after, &stamp()).is_empty());
    }

    #[test]
    fn local_api_ids_are_made_global_like_live_events_ids() {
        let mut local = snapshot();
        local.roster.enrollments[0].id = "300".into();
        let drifts = diff(&local, &HashMap::new(), &stamp());
        assert!(
            drifts
                .iter()
                .any(|d| d.event.entity_key.as_str() == "enrollment:21070000000000300"),
            "{:?}",
            kinds(&drifts)
        );
    }

    #[test]
    fn a_newer_live_event_wins_over_the_reconciled_value() {
        let healed = applied(
            &HashMap::new(),
            &diff(&snapshot(), &HashMap::new(), &stamp()),
        );
        let mut changed = snapshot();
        changed.roster.enrollments[0].state = "inactive".into();
        let drifts = diff(&changed, &healed, &stamp());
        // A live event from after the fetch started says "completed".
        let later = stamp().at + chrono::Duration::seconds(5);
        let live = synthesize(
            "enrollment_updated",
            json!({"enrollment_id": "21070000000000300", "course_id": "21070000000000100",
                   "user_id": "21070000000000400", "workflow_state": "completed"}),
            Some("21070000000000100"),
            &Stamp {
                at: later,
                ..stamp()
            },
        )
        .unwrap();
        let live_drift = Drift {
            kind: DriftKind::Changed,
            fields: vec![],
            event: live,
        };
        // Delivered before the reconciliation's change is applied: it still wins.
        let rows = applied(&healed, &[live_drift]);
        let rows = applied(&rows, &drifts);
        assert_eq!(
            rows["enrollment:21070000000000300"].state.as_ref().unwrap()["workflow_state"],
            "completed"
        );
    }

    #[test]
    fn unpublished_courses_keep_the_catalog_internal_state() {
        let mut rows = HashMap::new();
        let mut course = EntityRecord::empty("course:21070000000000100");
        course.sequence = 1;
        let mut state = Map::new();
        state.insert("workflow_state".into(), "created".into());
        state.insert("name".into(), "Physics 101".into());
        state.insert("course_code".into(), "PHYS101".into());
        course.state = Some(state);
        rows.insert(course.key.clone(), course);
        let mut unpublished = snapshot();
        unpublished.course.workflow_state = Some("unpublished".into());
        let drifts = diff(&unpublished, &rows, &stamp());
        assert!(
            drifts.iter().all(|d| d.entity_type() != "course"),
            "{:?}",
            kinds(&drifts)
        );
    }
}
