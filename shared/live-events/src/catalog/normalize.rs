//! Live events (Canvas or Caliper form) → the normalized fields of the entity they are about.
//!
//! Both formats go through one path: a Caliper event is first rewritten into the body Canvas
//! would have sent (extension fields, URNs reduced to ids, Caliper's own properties renamed to
//! Canvas's), so the per-entity field tables below apply to either. Caliper simply carries
//! fewer fields, and a field an event does not carry is left out, never guessed.

use super::fields::{ENROLLMENT_STATE, FieldType, Source, parent_type, stated_fields};
use super::is_catalog_type;
use crate::live_events::Format;
use crate::live_events::entity::{globalise, id_text, shard_of, snake_case};
use crate::live_events::time::parse_event_time;
use chrono::SecondsFormat;
use serde_json::{Map, Value};

/// What one event says, in coursewire's normalized vocabulary.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Normalized {
    /// For events that state a catalog entity's fields (e.g. `enrollment_updated`): those
    /// fields, with normalized names and global ids. `None` for activity about an entity
    /// (`logged_in`, `quiz_submitted`, ...) and for entity types outside the catalog.
    pub state_fields: Option<Map<String, Value>>,
    /// The event marks the entity deleted (`workflow_state: "deleted"`, `*_deleted`).
    pub deleted: bool,
    /// The owning entity's key (`course:<id>` for a section, `assignment:<id>` for a
    /// submission, `module:<id>` for a module item...).
    pub parent: Option<String>,
    /// What the event carries, for the published change's `data`: `state_fields` when set,
    /// else the event body in Canvas form (Caliper is mapped to it) with global ids.
    pub data: Map<String, Value>,
    /// Canvas context of the event, without personal data (no IPs, user agents, logins).
    pub context: Map<String, Value>,
}

pub fn normalize(
    event_name: &str,
    entity_key: &str,
    format: Format,
    payload: &Value,
) -> Normalized {
    let entity_type = entity_key.split(':').next().unwrap_or("");
    let view = match format {
        Format::Canvas => canvas_view(payload),
        Format::Caliper => caliper_view(event_name, payload),
    };
    let state_fields = state_fields(event_name, entity_type, &view.body, view.shard);
    // Activity about a catalog entity (`plagiarism_resubmit`...) never changes its state, so it
    // cannot delete it either; only its state-bearing events can.
    let deleted = (state_fields.is_some() || !is_catalog_type(entity_type))
        && (event_name.ends_with("_deleted")
            || view.body.get("workflow_state").and_then(Value::as_str) == Some("deleted"));
    let data = match &state_fields {
        Some(fields) => fields.clone(),
        None => canvas_data(&view.body, view.shard),
    };
    let parent = parent_of(entity_type, &data);
    Normalized {
        state_fields,
        deleted,
        parent,
        data,
        context: view.context,
    }
}

/// An event reduced to Canvas form: the body (ids as sent), the context and the shard that
/// local ids belong to.
struct View {
    body: Map<String, Value>,
    context: Map<String, Value>,
    shard: Option<u64>,
}

// --- catalog state ---------------------------------------------------------------------------

/// The normalized state fields an event states (its table in [`fields`](super::fields)), or
/// `None` for activity and for entity types outside the catalog.
fn state_fields(
    event_name: &str,
    entity_type: &str,
    body: &Map<String, Value>,
    shard: Option<u64>,
) -> Option<Map<String, Value>> {
    let mut out = Map::new();
    for field in stated_fields(event_name, entity_type)? {
        let value = match field.source {
            Source::Plain(from) => body.get(from).map(|v| typed(field.ty, v)),
            Source::Id(from) => body.get(from).map(|v| id_value(v, shard)),
            Source::ContextCourse { strict } => context_course(body, shard, strict),
            Source::Student => body
                .get("student_id")
                .or_else(|| body.get("user_id"))
                .map(|v| id_value(v, shard)),
            Source::EnrollmentState => Some(Value::Object(
                ENROLLMENT_STATE
                    .iter()
                    .filter_map(|(name, ty)| {
                        Some(((*name).to_string(), typed(*ty, body.get(*name)?)))
                    })
                    .collect(),
            )),
        };
        if let Some(value) = value {
            out.insert(field.name.to_string(), value);
        }
    }
    Some(out)
}

/// `context_id` as the course id (see [`Source::ContextCourse`]).
fn context_course(body: &Map<String, Value>, shard: Option<u64>, strict: bool) -> Option<Value> {
    let id = body.get("context_id")?;
    match body.get("context_type").and_then(Value::as_str) {
        Some("Course") => Some(id_value(id, shard)),
        None if !strict => Some(id_value(id, shard)),
        _ => None,
    }
}

/// A Canvas id as a global id string; `null` and non-id values stay as they are.
fn id_value(value: &Value, shard: Option<u64>) -> Value {
    match id_text(Some(value)) {
        Some(id) => Value::String(globalise(&id, shard)),
        None => value.clone(),
    }
}

/// A copied value: times made canonical, everything else as sent.
///
/// Canvas writes one instant several ways (`…:59Z`, `…:59.000Z`, `… 07:38:00 -0800`); one
/// canonical RFC 3339 UTC form keeps the two formats equal and avoids spurious changes.
/// Text that is not a readable time is kept as sent.
fn typed(ty: FieldType, value: &Value) -> Value {
    if ty != FieldType::Time {
        return value.clone();
    }
    match value.as_str().and_then(parse_event_time) {
        Some(t) => Value::String(t.to_rfc3339_opts(SecondsFormat::AutoSi, true)),
        None => value.clone(),
    }
}

fn parent_of(entity_type: &str, data: &Map<String, Value>) -> Option<String> {
    let (parent_type, field) = parent_type(entity_type)?;
    let id = data.get(field).and_then(Value::as_str)?;
    Some(format!("{parent_type}:{id}"))
}

// --- data of activity and stream events -------------------------------------------------------

/// HTML and free-text blobs: large, often personal, and not what subscribers route on.
const BLOB_FIELDS: [&str; 7] = [
    "body",
    "old_body",
    "description",
    "syllabus_body",
    "old_syllabus_body",
    "message",
    "text",
];

/// Longer strings are dropped from `data` so a change event stays far below EventBridge's
/// 256 KB entry limit.
const MAX_TEXT: usize = 2048;

/// The Canvas-form body for `data`: blobs dropped, ids globalised (as strings), recursively.
fn canvas_data(body: &Map<String, Value>, shard: Option<u64>) -> Map<String, Value> {
    let mut out = Map::new();
    for (key, value) in body {
        if BLOB_FIELDS.contains(&key.as_str()) {
            continue;
        }
        let value = match value {
            Value::String(text) if text.len() > MAX_TEXT => continue,
            Value::Object(map) => Value::Object(canvas_data(map, shard)),
            Value::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|item| match item {
                        Value::Object(map) => Value::Object(canvas_data(map, shard)),
                        other => other.clone(),
                    })
                    .collect(),
            ),
            other if is_canvas_id_field(key) => id_value(other, shard),
            other => other.clone(),
        };
        out.insert(key.clone(), value);
    }
    out
}

/// `id` and `*_id` fields hold Canvas ids, except external ones (SIS, LTI, integration ids,
/// uuids) and request/job/session identifiers, which must not be put on a shard.
fn is_canvas_id_field(key: &str) -> bool {
    (key == "id" || key.ends_with("_id"))
        && !key.contains("sis")
        && !key.contains("lti")
        && !key.contains("uuid")
        && !matches!(
            key,
            "integration_id" | "request_id" | "job_id" | "session_id" | "developer_key_id"
        )
}

// --- Canvas format ----------------------------------------------------------------------------

/// Metadata keys that describe where an event happened, never who the person is beyond an id.
const CONTEXT_KEYS: [&str; 12] = [
    "root_account_id",
    "root_account_uuid",
    "context_type",
    "context_id",
    "context_role",
    "user_id",
    "real_user_id",
    "request_id",
    "job_id",
    "job_tag",
    "producer",
    "hostname",
];

/// Context keys holding Canvas ids (globalised like every other id).
const CONTEXT_IDS: [&str; 4] = ["root_account_id", "context_id", "user_id", "real_user_id"];

fn canvas_view(payload: &Value) -> View {
    let metadata = payload.get("metadata").unwrap_or(&Value::Null);
    let shard = shard_of(metadata.get("root_account_id"));
    let body = payload
        .get("body")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let mut context = Map::new();
    for key in CONTEXT_KEYS {
        if let Some(value) = metadata.get(key).filter(|v| !v.is_null()) {
            context.insert(key.to_string(), context_value(key, value, shard));
        }
    }
    View {
        body,
        context,
        shard,
    }
}

fn context_value(key: &str, value: &Value, shard: Option<u64>) -> Value {
    if CONTEXT_IDS.contains(&key) {
        id_value(value, shard)
    } else {
        value.clone()
    }
}

// --- Caliper format ---------------------------------------------------------------------------

const URN_PREFIX: &str = "urn:instructure:canvas:";
const CANVAS_EXT: &str = "com.instructure.canvas";

fn canvas_ext(value: &Value) -> Option<&Map<String, Value>> {
    value.get("extensions")?.get(CANVAS_EXT)?.as_object()
}

/// The last numeric id of a Canvas URN and the kind before it:
/// `urn:instructure:canvas:course:1:section:2` → (`section`, `2`).
fn urn_id(text: &str) -> Option<(&str, &str)> {
    let parts: Vec<&str> = text.strip_prefix(URN_PREFIX)?.split(':').collect();
    let last = parts
        .iter()
        .rposition(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))?;
    let kind = if last > 0 { parts[last - 1] } else { "" };
    Some((kind, parts[last]))
}

/// A URN string becomes its id; anything else is kept.
fn reduce_urn(value: &Value) -> Value {
    match value.as_str().and_then(urn_id) {
        Some((_, id)) => Value::String(id.to_string()),
        None => value.clone(),
    }
}

/// The id of a Caliper entity (`{"id": "urn:…"}`).
fn entity_id(entity: Option<&Value>) -> Option<(&str, &str)> {
    entity?.get("id")?.as_str().and_then(urn_id)
}

/// The Canvas body field naming an object of a URN kind.
fn id_field(kind: &str) -> String {
    match kind {
        "section" => "course_section_id".to_string(),
        "discussion" => "discussion_topic_id".to_string(),
        other => format!("{}_id", snake_case(other)),
    }
}

/// Caliper membership roles → Canvas enrollment types (what `metadata.context_role` holds).
fn canvas_role(role: &str) -> Option<&'static str> {
    Some(match role.rsplit('#').next().unwrap_or(role) {
        "Instructor" => "TeacherEnrollment",
        "Learner" => "StudentEnrollment",
        "TeachingAssistant" => "TaEnrollment",
        "Mentor" => "ObserverEnrollment",
        "ContentDeveloper" => "DesignerEnrollment",
        _ => return None,
    })
}

/// Rewrites a Caliper 1.1 event into the body Canvas sends for the same event, plus the
/// metadata-equivalent context.
fn caliper_view(event_name: &str, payload: &Value) -> View {
    let event = payload
        .get("data")
        .and_then(|data| data.get(0))
        .unwrap_or(&Value::Null);
    let object = event.get("object").unwrap_or(&Value::Null);
    let actor = event.get("actor").unwrap_or(&Value::Null);
    let empty = Map::new();
    let object_ext = canvas_ext(object).unwrap_or(&empty);
    let actor_ext = canvas_ext(actor).unwrap_or(&empty);
    let shard = shard_of(actor_ext.get("root_account_id"))
        .or_else(|| shard_of(object_ext.get("root_account_id")));

    let mut body = Map::new();
    for (key, value) in object_ext {
        if key != "entity_id" {
            body.insert(key.clone(), reduce_urn(value));
        }
    }
    let event_type = event.get("type").and_then(Value::as_str).unwrap_or("");
    let action = event.get("action").and_then(Value::as_str).unwrap_or("");
    let object_type = object.get("type").and_then(Value::as_str).unwrap_or("");
    let object_urn = entity_id(Some(object));

    // The object's own id, under the name Canvas gives it.
    if let Some((kind, urn_own)) = object_urn {
        let own = id_text(object_ext.get("entity_id")).unwrap_or_else(|| urn_own.to_string());
        let field = if event_name == "asset_accessed" {
            "asset_id".to_string()
        } else {
            id_field(kind)
        };
        body.entry(field).or_insert(Value::String(own));
    }
    // Canvas calls it a title for these kinds; a syllabus `Document` is named "Syllabus",
    // which is not the course's name.
    if let Some(name) = object.get("name").filter(|_| object_type != "Document") {
        let titled = matches!(
            object_urn.map(|(kind, _)| kind),
            Some("assignment" | "quiz" | "wikiPage" | "wiki_page" | "discussion")
        );
        let field = if titled { "title" } else { "name" };
        body.entry(field).or_insert(name.clone());
    }
    let submitted = event_type == "AssignableEvent" && action == "Submitted";
    let renames: [(&str, &str); 6] = [
        (
            "dateCreated",
            if submitted {
                "submitted_at"
            } else {
                "created_at"
            },
        ),
        ("dateModified", "updated_at"),
        ("dateToShow", "unlock_at"),
        ("dateToSubmit", "due_at"),
        ("maxScore", "points_possible"),
        ("startedAtTime", "state_started_at"),
    ];
    for (from, to) in renames {
        if let Some(value) = object.get(from) {
            body.entry(to).or_insert(value.clone());
        }
    }
    if object_type == "Attempt" {
        if let Some(count) = object.get("count") {
            body.entry("attempt").or_insert(count.clone());
        }
        if let Some((_, user)) = entity_id(object.get("assignee")) {
            body.entry("user_id").or_insert(user.into());
        }
        if let Some((kind, id)) = entity_id(object.get("assignable")) {
            body.entry(id_field(kind)).or_insert(id.into());
        }
    }
    if event_type == "GradeEvent" {
        grade_fields(&mut body, event, actor);
    }
    let group = event.get("group").unwrap_or(&Value::Null);
    if let Some(group_ext) = canvas_ext(group)
        && let (Some(kind), Some(id)) = (
            group_ext.get("context_type").filter(|v| v.is_string()),
            id_text(group_ext.get("entity_id")),
        )
    {
        body.entry("context_type").or_insert(kind.clone());
        body.entry("context_id").or_insert(id.into());
    }

    View {
        context: caliper_context(event, actor, actor_ext, object_ext, group, shard),
        body,
        shard,
    }
}

/// `grade_change` fields a `GradeEvent` carries: the score lives in `generated`.
fn grade_fields(body: &mut Map<String, Value>, event: &Value, actor: &Value) {
    let generated = event.get("generated").unwrap_or(&Value::Null);
    if let Some(score) = generated.get("scoreGiven") {
        body.entry("score").or_insert(score.clone());
    }
    if let Some(max) = generated.get("maxScore") {
        body.entry("points_possible").or_insert(max.clone());
    }
    if body.get("grade").is_none()
        && let Some(grade) = canvas_ext(generated).and_then(|ext| ext.get("grade"))
    {
        body.insert("grade".into(), grade.clone());
    }
    let grader = generated
        .get("scoredBy")
        .and_then(Value::as_str)
        .and_then(urn_id)
        .or_else(|| entity_id(Some(actor)));
    if let Some((_, grader)) = grader {
        body.entry("grader_id").or_insert(grader.into());
    }
    if let Some(user) = body.get("user_id").cloned() {
        body.entry("student_id").or_insert(user);
    }
}

fn caliper_context(
    event: &Value,
    actor: &Value,
    actor_ext: &Map<String, Value>,
    object_ext: &Map<String, Value>,
    group: &Value,
    shard: Option<u64>,
) -> Map<String, Value> {
    let mut context = Map::new();
    let mut put = |key: &str, value: Option<Value>| {
        if let Some(value) = value.filter(|v| !v.is_null()) {
            context.insert(key.to_string(), context_value(key, &value, shard));
        }
    };
    for key in ["root_account_id", "root_account_uuid"] {
        put(
            key,
            actor_ext.get(key).or_else(|| object_ext.get(key)).cloned(),
        );
    }
    if let Some(group_ext) = canvas_ext(group) {
        put("context_type", group_ext.get("context_type").cloned());
        put(
            "context_id",
            id_text(group_ext.get("entity_id"))
                .or_else(|| entity_id(Some(group)).map(|(_, id)| id.to_string()))
                .map(Value::String),
        );
    }
    let role = event
        .pointer("/membership/roles/0")
        .and_then(Value::as_str)
        .and_then(canvas_role);
    put("context_role", role.map(Value::from));
    if actor.get("type").and_then(Value::as_str) == Some("Person") {
        put(
            "user_id",
            entity_id(Some(actor)).map(|(_, id)| Value::from(id)),
        );
    }
    put(
        "real_user_id",
        actor_ext.get("real_user_id").map(reduce_urn),
    );
    if let Some(event_ext) = canvas_ext(event) {
        for key in ["request_id", "job_id", "job_tag", "hostname"] {
            put(key, event_ext.get(key).cloned());
        }
    }
    context
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::live_events::corpus::Corpus;
    use crate::live_events::{self, DeliveryHints};
    use serde_json::json;
    use std::collections::BTreeMap;

    /// The conformance corpus (Instructure's examples, or the project's fixtures).
    fn corpus() -> Corpus {
        Corpus::locate().unwrap_or_else(|e| panic!("{e}"))
    }

    /// Payloads of the examples of one event type in one format.
    fn examples(format: &str, event_type: &str) -> Vec<Value> {
        let format = match format {
            "canvas" => Format::Canvas,
            _ => Format::Caliper,
        };
        corpus().payloads(format, event_type)
    }

    /// True when Instructure's examples are here: the field-by-field checks below are about
    /// their values. Without them the test says it was skipped.
    fn instructure_corpus(test: &str) -> bool {
        let corpus = corpus();
        if !corpus.is_instructure() {
            eprintln!(
                "{test}: skipped, it checks Instructure's examples; using {}",
                corpus.describe()
            );
        }
        corpus.is_instructure()
    }

    /// Parses like ingestion does, then normalizes: (entity key, normalized).
    fn run(payload: &Value) -> (String, Normalized) {
        let event = live_events::from_value(payload.clone(), DeliveryHints::default()).unwrap();
        let key = event.entity_key.as_str().to_string();
        let n = normalize(&event.event_name, &key, event.format, &event.payload);
        (key, n)
    }

    /// The catalog's state-bearing event types and the fields each may state.
    fn allowed(event_type: &str) -> &'static [&'static str] {
        match event_type {
            "course_created" | "course_updated" => &[
                "name",
                "course_code",
                "account_id",
                "enrollment_term_id",
                "sis_source_id",
                "uuid",
                "workflow_state",
                "created_at",
                "updated_at",
            ],
            "course_section_created" | "course_section_updated" => &[
                "course_id",
                "name",
                "sis_source_id",
                "integration_id",
                "enrollment_term_id",
                "nonxlist_course_id",
                "start_at",
                "end_at",
                "default_section",
                "accepting_enrollments",
                "can_manually_enroll",
                "restrict_enrollments_to_section_dates",
                "workflow_state",
            ],
            "enrollment_created" | "enrollment_updated" => &[
                "course_id",
                "section_id",
                "user_id",
                "associated_user_id",
                "type",
                "workflow_state",
                "limit_privileges_to_course_section",
                "created_at",
                "updated_at",
            ],
            "enrollment_state_created" | "enrollment_state_updated" => &["enrollment_state"],
            "user_created" | "user_updated" => &[
                "name",
                "short_name",
                "login",
                "sis_user_id",
                "uuid",
                "workflow_state",
                "created_at",
                "updated_at",
            ],
            "assignment_created" | "assignment_updated" => &[
                "course_id",
                "title",
                "assignment_group_id",
                "due_at",
                "unlock_at",
                "lock_at",
                "points_possible",
                "submission_types",
                "workflow_state",
                "updated_at",
            ],
            "submission_created" | "submission_updated" => &[
                "assignment_id",
                "user_id",
                "attempt",
                "workflow_state",
                "submission_type",
                "submitted_at",
                "graded_at",
                "grade",
                "score",
                "late",
                "missing",
                "updated_at",
            ],
            "grade_change" => &[
                "grade",
                "score",
                "grader_id",
                "grading_complete",
                "muted",
                "assignment_id",
                "user_id",
            ],
            "module_created" | "module_updated" => {
                &["course_id", "name", "position", "workflow_state"]
            }
            "module_item_created" | "module_item_updated" => {
                &["module_id", "course_id", "position", "workflow_state"]
            }
            _ => &[],
        }
    }

    const STATE_EVENTS: [&str; 19] = [
        "course_created",
        "course_updated",
        "course_section_created",
        "course_section_updated",
        "enrollment_created",
        "enrollment_updated",
        "enrollment_state_created",
        "enrollment_state_updated",
        "user_created",
        "user_updated",
        "assignment_created",
        "assignment_updated",
        "submission_created",
        "submission_updated",
        "grade_change",
        "module_created",
        "module_updated",
        "module_item_created",
        "module_item_updated",
    ];

    const ID_FIELDS: [&str; 11] = [
        "account_id",
        "enrollment_term_id",
        "course_id",
        "nonxlist_course_id",
        "section_id",
        "user_id",
        "associated_user_id",
        "assignment_group_id",
        "assignment_id",
        "grader_id",
        "module_id",
    ];

    fn assert_global_ids(label: &str, fields: &Map<String, Value>) {
        for field in ID_FIELDS {
            match fields.get(field) {
                None | Some(Value::Null) => {}
                Some(Value::String(id)) => {
                    let n: u64 = id.parse().unwrap_or_else(|_| panic!("{label}: {field}"));
                    assert!(n >= 10_000_000_000_000, "{label}: {field} = {id} is local");
                }
                Some(other) => panic!("{label}: {field} is not a string: {other}"),
            }
        }
    }

    /// What each field is read from in the Canvas body (where the names differ).
    fn source_field(event_type: &str, field: &str) -> &'static str {
        match (event_type, field) {
            (_, "section_id") => "course_section_id",
            (_, "login") => "user_login",
            (_, "sis_user_id") => "user_sis_id",
            ("grade_change", "user_id") => "student_id",
            ("assignment_created" | "assignment_updated", "course_id") => "context_id",
            ("module_created" | "module_updated", "course_id") => "context_id",
            ("module_item_created" | "module_item_updated", "course_id") => "context_id",
            _ => "",
        }
    }

    #[test]
    fn every_published_canvas_example_of_a_catalog_event_states_its_fields() {
        let mut seen = 0;
        for event_type in STATE_EVENTS {
            for payload in examples("canvas", event_type) {
                let (key, n) = run(&payload);
                let label = format!("{event_type} ({key})");
                let fields = n
                    .state_fields
                    .clone()
                    .unwrap_or_else(|| panic!("{label}: no state fields"));
                let allowed = allowed(event_type);
                for field in fields.keys() {
                    assert!(allowed.contains(&field.as_str()), "{label}: {field}");
                }
                // Every listed field the body carries is stated.
                let body = payload["body"].as_object().unwrap();
                for field in allowed {
                    let source = match source_field(event_type, field) {
                        "" => *field,
                        other => other,
                    };
                    if body.contains_key(source) {
                        assert!(fields.contains_key(*field), "{label}: missing {field}");
                    }
                }
                assert_global_ids(&label, &fields);
                assert_eq!(n.data, fields, "{label}: data is the state fields");
                assert!(!fields.contains_key("user_name"));
                seen += 1;
            }
        }
        // Instructure's corpus has an example of every state event; the fixtures of most.
        let least = if corpus().is_instructure() {
            STATE_EVENTS.len()
        } else {
            STATE_EVENTS.len() / 2
        };
        assert!(seen >= least, "{seen} examples");
    }

    #[test]
    fn canvas_examples_map_field_by_field() {
        if !instructure_corpus("canvas_examples_map_field_by_field") {
            return;
        }
        let (_, n) = run(&examples("canvas", "course_section_created")[0]);
        let f = n.state_fields.unwrap();
        // Local ids in the body, globalised on the root account's shard (2107).
        assert_eq!(f["course_id"], "21070000000000565");
        assert_eq!(f["enrollment_term_id"], "21070000000001234");
        assert_eq!(f["nonxlist_course_id"], "21070000000001234");
        assert_eq!(f["integration_id"], "1234", "external ids stay as they are");
        assert_eq!(
            f["can_manually_enroll"],
            Value::Null,
            "a present null stays"
        );
        assert!(!f.contains_key("stuck_sis_fields") && !f.contains_key("root_account_id"));
        assert_eq!(n.parent.as_deref(), Some("course:21070000000000565"));

        let (_, n) = run(&examples("canvas", "enrollment_updated")[0]);
        let f = n.state_fields.unwrap();
        assert_eq!(f["section_id"], "21070000000000598");
        assert_eq!(f["type"], "StudentEnrollment");
        assert_eq!(f["created_at"], "2018-10-09T21:07:33Z");

        let (_, n) = run(&examples("canvas", "enrollment_state_created")[0]);
        let state = &n.state_fields.unwrap()["enrollment_state"];
        assert_eq!(state["state"], "pending_invited");
        assert_eq!(
            state["state_started_at"], "2019-10-05T13:38:00Z",
            "made canonical"
        );
        assert_eq!(state["state_valid_until"], "2019-11-05T13:38:00.218Z");

        let (_, n) = run(&examples("canvas", "user_updated")[0]);
        let f = n.state_fields.unwrap();
        assert_eq!(f["login"], "test");
        assert_eq!(f["sis_user_id"], "456-T45");
        assert_eq!(
            f["updated_at"], "019-11-01T19:11:01.163Z",
            "unreadable time kept"
        );

        let (_, n) = run(&examples("canvas", "module_item_created")[0]);
        let f = n.state_fields.unwrap();
        assert_eq!(f["module_id"], "21070000000000014");
        assert_eq!(f["course_id"], "21070000000000565");
        assert_eq!(n.parent.as_deref(), Some("module:21070000000000014"));

        let (_, n) = run(&examples("canvas", "grade_change")[0]);
        let f = n.state_fields.unwrap();
        assert_eq!(f["user_id"], "21070000000000048");
        assert_eq!(f["grade"], "5");
        assert_eq!(f["score"], 5);
        assert_eq!(n.parent.as_deref(), Some("assignment:21070000000000355"));

        let (_, n) = run(&examples("canvas", "assignment_created")[0]);
        let f = n.state_fields.unwrap();
        assert_eq!(f["course_id"], "21070000000000565");
        assert!(!f.contains_key("description"));
    }

    #[test]
    fn caliper_examples_state_the_same_fields_as_canvas_ones() {
        let mut compared = 0;
        let mut caliper_seen = 0;
        for event_type in STATE_EVENTS {
            let canvas: BTreeMap<String, Normalized> =
                examples("canvas", event_type).iter().map(run).collect();
            for payload in examples("caliper", event_type) {
                let (key, n) = run(&payload);
                let label = format!("caliper {event_type} ({key})");
                let fields = n
                    .state_fields
                    .clone()
                    .unwrap_or_else(|| panic!("{label}: no state fields"));
                assert!(!fields.is_empty(), "{label}");
                for field in fields.keys() {
                    assert!(allowed(event_type).contains(&field.as_str()), "{label}");
                }
                assert_global_ids(&label, &fields);
                caliper_seen += 1;
                // Where both formats' examples describe the same object, shared fields agree.
                let Some(other) = canvas.get(&key).and_then(|c| c.state_fields.as_ref()) else {
                    continue;
                };
                for (field, value) in &fields {
                    if field == "enrollment_state" {
                        for (member, v) in value.as_object().unwrap() {
                            assert_eq!(&other[field][member], v, "{label}: {member}");
                        }
                    } else if let Some(expected) = other.get(field) {
                        assert_eq!(expected, value, "{label}: {field}");
                        compared += 1;
                    }
                }
            }
        }
        let least = if corpus().is_instructure() { 11 } else { 5 };
        assert!(caliper_seen >= least, "{caliper_seen}");
        assert!(compared >= 20, "only {compared} fields compared");
    }

    #[test]
    fn caliper_examples_map_field_by_field() {
        if !instructure_corpus("caliper_examples_map_field_by_field") {
            return;
        }
        let (key, n) = run(&examples("caliper", "enrollment_updated")[0]);
        assert_eq!(key, "enrollment:21070000000549222");
        let f = n.state_fields.unwrap();
        assert_eq!(f["course_id"], "21070000000000565");
        assert_eq!(
            f["section_id"], "21070000000509348",
            "last id of the section URN"
        );
        assert_eq!(f["user_id"], "21070000000093482");
        assert_eq!(f["workflow_state"], "invited");
        assert_eq!(f["updated_at"], "2019-11-01T19:11:18Z");
        assert!(!f.contains_key("user_name"));
        assert_eq!(n.parent.as_deref(), Some("course:21070000000000565"));

        let (_, n) = run(&examples("caliper", "assignment_updated")[0]);
        let f = n.state_fields.unwrap();
        assert_eq!(f["title"], "A New Assignment For Today");
        assert_eq!(f["course_id"], "21070000001279362");
        assert_eq!(f["workflow_state"], "published");
        assert_eq!(f["points_possible"], 100);
        assert_eq!(f["due_at"], "2019-11-05T13:38:00.218Z");
        assert!(!f.contains_key("description"));

        let (_, n) = run(&examples("caliper", "submission_created")[0]);
        let f = n.state_fields.unwrap();
        assert!(
            !f.contains_key("workflow_state"),
            "Caliper does not carry it"
        );
        assert_eq!(f["submitted_at"], "2019-11-01T19:11:21.419Z");
        assert_eq!(f["attempt"], 12);
        assert_eq!(f["user_id"], "21070000000014012");
        assert_eq!(n.parent.as_deref(), Some("assignment:21070000001234012"));

        let (_, n) = run(&examples("caliper", "course_updated")[0]);
        let f = n.state_fields.unwrap();
        assert_eq!(f["name"], "Linear Algebra");
        assert_eq!(f["workflow_state"], "available");
    }

    #[test]
    fn caliper_grade_change_gives_grade_and_score() {
        if !instructure_corpus("caliper_grade_change_gives_grade_and_score") {
            return;
        }
        let (key, n) = run(&examples("caliper", "grade_change")[0]);
        assert_eq!(key, "submission:21070000000011086");
        let f = n.state_fields.unwrap();
        assert_eq!(f["grade"], "5");
        assert_eq!(f["score"], 5);
        assert_eq!(f["grader_id"], "21070000000000987");
        assert_eq!(f["user_id"], "21070000000000048");
        assert_eq!(f["assignment_id"], "21070000000000355");
        assert!(
            !f.contains_key("grading_complete"),
            "Caliper does not carry it"
        );
        assert_eq!(n.parent.as_deref(), Some("assignment:21070000000000355"));
    }

    #[test]
    fn deletions_are_detected() {
        let deleted_update = json!({
            "metadata": {"event_name": "assignment_updated", "event_time": "2025-01-01T00:00:00Z",
                         "root_account_id": "21070000000000001"},
            "body": {"assignment_id": "5", "context_id": "7", "context_type": "Course",
                     "workflow_state": "deleted", "title": "Oops"}
        });
        let (_, n) = run(&deleted_update);
        assert!(n.deleted);
        let f = n.state_fields.unwrap();
        assert_eq!(f["workflow_state"], "deleted");
        assert_eq!(n.parent.as_deref(), Some("course:21070000000000007"));

        if !instructure_corpus("deletions_are_detected (Instructure's examples)") {
            return;
        }
        let (_, n) = run(&examples("canvas", "wiki_page_deleted")[0]);
        assert!(n.deleted && n.state_fields.is_none());
        // `enrollment_state.state` is Canvas's derived access state, not the workflow state.
        let (_, n) = run(&examples("caliper", "enrollment_state_updated")[0]);
        assert!(!n.deleted);
        assert_eq!(
            n.state_fields.unwrap()["enrollment_state"]["state"],
            "deleted"
        );

        let mut resubmit = examples("canvas", "plagiarism_resubmit")[0].clone();
        resubmit["body"]["workflow_state"] = "deleted".into();
        let (_, n) = run(&resubmit);
        assert!(!n.deleted, "activity does not delete a catalog entity");

        let (_, n) = run(&examples("canvas", "enrollment_created")[0]);
        assert!(!n.deleted);
        let (_, n) = run(&examples("caliper", "course_updated")[0]);
        assert!(!n.deleted);
    }

    #[test]
    fn parents_follow_the_catalog_hierarchy() {
        if !instructure_corpus("parents_follow_the_catalog_hierarchy") {
            return;
        }
        let cases = [
            ("course_section_created", Some("course:21070000000000565")),
            ("assignment_updated", Some("course:21070000001279362")),
            ("module_created", Some("course:21070000001234560")),
            ("enrollment_created", Some("course:21070000000000565")),
            ("submission_updated", Some("assignment:21070000000000396")),
            ("module_item_updated", Some("module:21070000000000014")),
            ("course_created", None),
            ("user_created", None),
        ];
        for (event_type, parent) in cases {
            let (_, n) = run(&examples("canvas", event_type)[0]);
            assert_eq!(n.parent.as_deref(), parent, "{event_type}");
        }
    }

    #[test]
    fn activity_and_stream_events_have_no_state_but_keep_their_data() {
        if !instructure_corpus("activity_and_stream_events_have_no_state_but_keep_their_data") {
            return;
        }
        for event_type in [
            "logged_in",
            "syllabus_updated",
            "user_account_association_created",
            "quiz_submitted",
            "asset_accessed",
            "wiki_page_updated",
        ] {
            for format in ["canvas", "caliper"] {
                for payload in examples(format, event_type) {
                    let (key, n) = run(&payload);
                    assert!(n.state_fields.is_none(), "{format} {event_type} ({key})");
                    for blob in BLOB_FIELDS {
                        assert!(!n.data.contains_key(blob), "{format} {event_type}: {blob}");
                    }
                }
            }
        }
        let (_, n) = run(&examples("canvas", "syllabus_updated")[0]);
        assert_eq!(
            n.data,
            json!({"course_id": "21070000000000565"})
                .as_object()
                .cloned()
                .unwrap()
        );
        let (_, n) = run(&examples("caliper", "syllabus_updated")[0]);
        assert_eq!(
            n.data,
            json!({"course_id": "21070000000000565"})
                .as_object()
                .cloned()
                .unwrap()
        );

        let (_, n) = run(&examples("caliper", "user_account_association_created")[0]);
        assert_eq!(n.data["user_id"], "21070000000042342");
        assert_eq!(n.data["account_id"], "21070000000000001");
        assert_eq!(n.data["created_at"], "2019-11-01T19:11:00.000Z");

        let (_, n) = run(&examples("caliper", "quiz_submitted")[0]);
        assert_eq!(n.data["quiz_id"], "11210000002223333");
        assert_eq!(n.data["submission_id"], "11210000013995723");

        // A grade change about a score (no submission) is not catalog state.
        let (key, n) = run(&examples("canvas", "grade_override")[0]);
        assert!(key.starts_with("score:"), "{key}");
        assert!(n.state_fields.is_none() && n.parent.is_none());
    }

    #[test]
    fn context_has_no_personal_data() {
        const PERSONAL: [&str; 8] = [
            "client_ip",
            "user_agent",
            "session_id",
            "user_login",
            "user_sis_id",
            "url",
            "referrer",
            "context_sis_source_id",
        ];
        let corpus = corpus();
        for example in corpus.all_examples().unwrap() {
            let (name, format) = (&example.event_type, example.format.as_str());
            let (_, n) = run(&example.payload);
            for key in n.context.keys() {
                assert!(CONTEXT_KEYS.contains(&key.as_str()), "{name}: {key}");
                assert!(!PERSONAL.contains(&key.as_str()));
            }
            let text = Value::Object(n.context.clone()).to_string();
            for secret in ["93.184.216.34", "Mozilla", "oxana@example.com"] {
                assert!(!text.contains(secret), "{format} {name}: {text}");
            }
        }

        if !instructure_corpus("context_has_no_personal_data (Instructure's values)") {
            return;
        }
        let (_, n) = run(&examples("canvas", "course_section_created")[0]);
        assert_eq!(n.context["context_id"], "21070000000000565");
        assert_eq!(n.context["user_id"], "21070000000000001");
        assert_eq!(n.context["hostname"], "oxana.instructure.com");
        assert_eq!(n.context["producer"], "canvas");

        let (_, n) = run(&examples("caliper", "enrollment_updated")[0]);
        assert_eq!(
            Value::Object(n.context),
            json!({
                "root_account_id": "21070000000000001",
                "root_account_uuid": "VicYj3cu5BIFpoZhDVU4DZumnlBrWi1grgJEzADs",
                "context_type": "Course",
                "context_id": "21070000000000565",
                "context_role": "TeacherEnrollment",
                "user_id": "21070000000000987",
                "request_id": "1dd9dc6f-2fb0-4c19-a6c5-7ee1bf3ed295",
                "hostname": "oxana.instructure.com",
            })
        );
    }

    #[test]
    fn malformed_payloads_do_not_panic() {
        for payload in [
            json!(null),
            json!({"metadata": 1, "body": []}),
            json!({"data": []}),
            json!({"data": [{"object": {"id": "urn:instructure:canvas:"}}]}),
        ] {
            for format in [Format::Canvas, Format::Caliper] {
                let n = normalize("course_updated", "course:1", format, &payload);
                assert_eq!(n.parent, None);
            }
        }
    }

    #[test]
    fn data_ids_are_global_strings_but_external_ids_are_kept() {
        let payload = json!({
            "metadata": {"event_name": "thing_created", "event_time": "2025-01-01T00:00:00Z",
                         "root_account_id": "21070000000000001"},
            "body": {"thing_id": 12, "sis_source_id": "42", "integration_id": "7",
                     "lti_context_id": "99", "nested": {"id": "3"}, "list": [{"user_id": "4"}],
                     "body": "<p>big</p>", "huge": "x".repeat(MAX_TEXT + 1)}
        });
        let n = normalize(
            "thing_created",
            "thing:21070000000000012",
            Format::Canvas,
            &payload,
        );
        assert_eq!(
            Value::Object(n.data),
            json!({"thing_id": "21070000000000012", "sis_source_id": "42", "integration_id": "7",
                   "lti_context_id": "99", "nested": {"id": "21070000000000003"},
                   "list": [{"user_id": "21070000000000004"}]})
        );
    }
}
