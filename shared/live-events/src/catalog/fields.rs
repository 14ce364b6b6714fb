//! The catalog's field tables: for every state-bearing Canvas event, the normalized fields it
//! states, where each is read from in the Canvas-form body and what type of value it holds.
//!
//! The one source of truth for both [`normalize`](super::normalize), which reads events
//! through them, and the published JSON Schemas in `events/schemas/`, which are generated
//! from them (`tests/schemas.rs`).

/// Where a normalized field is read from in the Canvas-form body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Copied as is (times made canonical).
    Plain(&'static str),
    /// A Canvas id: globalised, always a string.
    Id(&'static str),
    /// `context_id` as the course id. `strict`: only when `context_type` says Course
    /// (assignments can live in other contexts); otherwise also when the type is absent
    /// (modules are always in a course).
    ContextCourse { strict: bool },
    /// The student a grade is for: `student_id`, else `user_id`.
    Student,
    /// The members of [`ENROLLMENT_STATE`], gathered into one object.
    EnrollmentState,
}

/// The type of value a normalized field holds; every one may also be `null`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    /// A global Canvas id, as a string.
    Id,
    Text,
    /// An RFC 3339 UTC instant (made canonical from Canvas's several spellings).
    Time,
    Flag,
    Number,
    Integer,
    /// Canvas's computed access state of an enrollment: an object of [`ENROLLMENT_STATE`].
    EnrollmentState,
}

/// One normalized field of a state-bearing event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    pub name: &'static str,
    pub source: Source,
    pub ty: FieldType,
}

const fn field(name: &'static str, source: Source, ty: FieldType) -> Field {
    Field { name, source, ty }
}

use FieldType::{Flag, Id as GlobalId, Integer, Number, Text, Time};
use Source::{ContextCourse, Id, Plain};

const COURSE: &[Field] = &[
    field("name", Plain("name"), Text),
    field("course_code", Plain("course_code"), Text),
    field("account_id", Id("account_id"), GlobalId),
    field("enrollment_term_id", Id("enrollment_term_id"), GlobalId),
    field("sis_source_id", Plain("sis_source_id"), Text),
    field("uuid", Plain("uuid"), Text),
    field("workflow_state", Plain("workflow_state"), Text),
    field("created_at", Plain("created_at"), Time),
    field("updated_at", Plain("updated_at"), Time),
];

const SECTION: &[Field] = &[
    field("course_id", Id("course_id"), GlobalId),
    field("name", Plain("name"), Text),
    field("sis_source_id", Plain("sis_source_id"), Text),
    field("integration_id", Plain("integration_id"), Text),
    field("enrollment_term_id", Id("enrollment_term_id"), GlobalId),
    field("nonxlist_course_id", Id("nonxlist_course_id"), GlobalId),
    field("start_at", Plain("start_at"), Time),
    field("end_at", Plain("end_at"), Time),
    field("default_section", Plain("default_section"), Flag),
    field(
        "accepting_enrollments",
        Plain("accepting_enrollments"),
        Flag,
    ),
    field("can_manually_enroll", Plain("can_manually_enroll"), Flag),
    field(
        "restrict_enrollments_to_section_dates",
        Plain("restrict_enrollments_to_section_dates"),
        Flag,
    ),
    field("workflow_state", Plain("workflow_state"), Text),
];

// No `user_name`: names belong to the user row.
const ENROLLMENT: &[Field] = &[
    field("course_id", Id("course_id"), GlobalId),
    field("section_id", Id("course_section_id"), GlobalId),
    field("user_id", Id("user_id"), GlobalId),
    field("associated_user_id", Id("associated_user_id"), GlobalId),
    field("type", Plain("type"), Text),
    field("workflow_state", Plain("workflow_state"), Text),
    field(
        "limit_privileges_to_course_section",
        Plain("limit_privileges_to_course_section"),
        Flag,
    ),
    field("created_at", Plain("created_at"), Time),
    field("updated_at", Plain("updated_at"), Time),
];

const ENROLLMENT_STATE_CHANGE: &[Field] = &[field(
    "enrollment_state",
    Source::EnrollmentState,
    FieldType::EnrollmentState,
)];

/// The members of the `enrollment_state` object, read from the body under the same names.
pub const ENROLLMENT_STATE: &[(&str, FieldType)] = &[
    ("state", Text),
    ("state_is_current", Flag),
    ("access_is_current", Flag),
    ("restricted_access", Flag),
    ("state_started_at", Time),
    ("state_valid_until", Time),
];

const USER: &[Field] = &[
    field("name", Plain("name"), Text),
    field("short_name", Plain("short_name"), Text),
    field("login", Plain("user_login"), Text),
    field("sis_user_id", Plain("user_sis_id"), Text),
    field("uuid", Plain("uuid"), Text),
    field("workflow_state", Plain("workflow_state"), Text),
    field("created_at", Plain("created_at"), Time),
    field("updated_at", Plain("updated_at"), Time),
];

// No HTML description.
const ASSIGNMENT: &[Field] = &[
    field("course_id", ContextCourse { strict: true }, GlobalId),
    field("title", Plain("title"), Text),
    field("assignment_group_id", Id("assignment_group_id"), GlobalId),
    field("due_at", Plain("due_at"), Time),
    field("unlock_at", Plain("unlock_at"), Time),
    field("lock_at", Plain("lock_at"), Time),
    field("points_possible", Plain("points_possible"), Number),
    field("submission_types", Plain("submission_types"), Text),
    field("workflow_state", Plain("workflow_state"), Text),
    field("updated_at", Plain("updated_at"), Time),
];

const SUBMISSION: &[Field] = &[
    field("assignment_id", Id("assignment_id"), GlobalId),
    field("user_id", Id("user_id"), GlobalId),
    field("attempt", Plain("attempt"), Integer),
    field("workflow_state", Plain("workflow_state"), Text),
    field("submission_type", Plain("submission_type"), Text),
    field("submitted_at", Plain("submitted_at"), Time),
    field("graded_at", Plain("graded_at"), Time),
    field("grade", Plain("grade"), Text),
    field("score", Plain("score"), Number),
    field("late", Plain("late"), Flag),
    field("missing", Plain("missing"), Flag),
    field("updated_at", Plain("updated_at"), Time),
];

const GRADE_CHANGE: &[Field] = &[
    field("grade", Plain("grade"), Text),
    field("score", Plain("score"), Number),
    field("grader_id", Id("grader_id"), GlobalId),
    field("grading_complete", Plain("grading_complete"), Flag),
    field("muted", Plain("muted"), Flag),
    field("assignment_id", Id("assignment_id"), GlobalId),
    field("user_id", Source::Student, GlobalId),
];

const MODULE: &[Field] = &[
    field("course_id", ContextCourse { strict: false }, GlobalId),
    field("name", Plain("name"), Text),
    field("position", Plain("position"), Integer),
    field("workflow_state", Plain("workflow_state"), Text),
];

const MODULE_ITEM: &[Field] = &[
    field("module_id", Id("module_id"), GlobalId),
    field("course_id", ContextCourse { strict: false }, GlobalId),
    field("position", Plain("position"), Integer),
    field("workflow_state", Plain("workflow_state"), Text),
];

/// The fields a state-bearing event of a catalog entity type states, or `None` for activity
/// about an entity and for entity types outside the catalog.
pub fn stated_fields(event_name: &str, entity_type: &str) -> Option<&'static [Field]> {
    Some(match (entity_type, event_name) {
        ("course", "course_created" | "course_updated") => COURSE,
        ("section", "course_section_created" | "course_section_updated") => SECTION,
        ("enrollment", "enrollment_created" | "enrollment_updated") => ENROLLMENT,
        ("enrollment", "enrollment_state_created" | "enrollment_state_updated") => {
            ENROLLMENT_STATE_CHANGE
        }
        ("user", "user_created" | "user_updated") => USER,
        ("assignment", "assignment_created" | "assignment_updated") => ASSIGNMENT,
        ("submission", "submission_created" | "submission_updated") => SUBMISSION,
        ("submission", "grade_change") => GRADE_CHANGE,
        ("module", "module_created" | "module_updated") => MODULE,
        ("module_item", "module_item_created" | "module_item_updated") => MODULE_ITEM,
        _ => return None,
    })
}

/// The entity type that owns a catalog entity (its `parent`), and the field naming it.
pub fn parent_type(entity_type: &str) -> Option<(&'static str, &'static str)> {
    Some(match entity_type {
        "section" | "assignment" | "module" | "enrollment" => ("course", "course_id"),
        "submission" => ("assignment", "assignment_id"),
        "module_item" => ("module", "module_id"),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::CATALOG_TYPES;
    use crate::live_events::entity::documented_events;

    /// Every catalog type has state-bearing events, and a parent's naming field is one every
    /// table of the child states, with an id type.
    #[test]
    fn tables_cover_the_catalog_and_name_parents() {
        for entity_type in CATALOG_TYPES {
            let tables: Vec<_> = documented_events()
                .filter(|(_, entity)| entity == &entity_type)
                .filter_map(|(event, entity)| stated_fields(event, entity))
                .collect();
            assert!(
                !tables.is_empty(),
                "{entity_type} has no state-bearing event"
            );
            if let Some((_, naming)) = parent_type(entity_type) {
                for table in tables.iter().filter(|t| t.len() > 1) {
                    let named = table.iter().find(|f| f.name == naming);
                    assert_eq!(
                        named.map(|f| f.ty),
                        Some(GlobalId),
                        "{entity_type}: {naming}"
                    );
                }
            }
        }
    }

    /// A time is recognised by its type, so a `*_at` field typed otherwise would be a slip.
    #[test]
    fn time_fields_are_typed_as_times() {
        let all = [
            COURSE,
            SECTION,
            ENROLLMENT,
            USER,
            ASSIGNMENT,
            SUBMISSION,
            GRADE_CHANGE,
            MODULE,
            MODULE_ITEM,
        ];
        let names = all
            .iter()
            .flat_map(|t| t.iter().map(|f| (f.name, f.ty)))
            .chain(ENROLLMENT_STATE.iter().copied());
        for (name, ty) in names {
            let looks_like_time = name.ends_with("_at") || name.ends_with("_until");
            assert_eq!(looks_like_time, ty == Time, "{name}");
        }
    }
}
