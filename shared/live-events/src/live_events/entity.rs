//! Entity keys: which Canvas object an event is about, as `<type>:<id>[:<id>…]`.
//!
//! The key is the ordering unit downstream (the FIFO message group): every event about one
//! enrollment, submission or course is applied in order, different entities in parallel.
//! Ids are normalised to Canvas's global form (`shard * 10^13 + local id`) using the shard of
//! the event's root account, because Canvas mixes global and local ids across event types.
//!
//! | key type | events |
//! |---|---|
//! | `account` | account_created, account_updated |
//! | `account_notification` | account_notification_created |
//! | `asset:<asset_type>` | asset_accessed |
//! | `assignment` | assignment_created, assignment_updated |
//! | `assignment_group` | assignment_group_created, assignment_group_updated |
//! | `assignment_override` | assignment_override_created, assignment_override_updated |
//! | `attachment` | attachment_created, attachment_updated, attachment_deleted |
//! | `content_migration` | content_migration_started, content_migration_completed |
//! | `conversation` | conversation_created, conversation_forwarded |
//! | `conversation_message` | conversation_message_created |
//! | `course` | course_created, course_updated, syllabus_updated |
//! | `course_grade:<course>:<user>` | course_grade_change |
//! | `course_progress:<course>:<user>` | course_progress, course_completed |
//! | `discussion_entry` | discussion_entry_created, discussion_entry_submitted |
//! | `discussion_topic` | discussion_topic_created, discussion_topic_updated |
//! | `enrollment` | enrollment_created, enrollment_updated, enrollment_state_created, enrollment_state_updated |
//! | `group`, `group_category`, `group_membership` | group_*, group_category_*, group_membership_* |
//! | `learning_outcome`, `learning_outcome_group`, `learning_outcome_link` | learning_outcome_* |
//! | `learning_outcome_result:<outcome>:<user_uuid>` | learning_outcome_result_created, learning_outcome_result_updated |
//! | `lti_resource_link` | lti_resource_link_created, lti_resource_link_updated |
//! | `master_migration` | master_migration_started |
//! | `module`, `module_item` | module_*, module_item_* |
//! | `outcome_alignment_clone:<new_course_uuid>` | outcomes.retry_outcome_alignment_clone |
//! | `outcome_calculation_method`, `outcome_proficiency` | outcome_calculation_method_*, outcome_proficiency_* |
//! | `quiz` | quiz_created, quiz_updated |
//! | `rubric_assessment` | rubric_assessed |
//! | `score` | grade_override, final_grade_custom_status |
//! | `section` | course_section_created, course_section_updated |
//! | `sis_batch` | sis_batch_created, sis_batch_updated |
//! | `submission` | submission_created, submission_updated, grade_change, quiz_submitted, plagiarism_resubmit, submission_custom_grade_status |
//! | `submission_comment` | submission_comment_created |
//! | `user` | user_created, user_updated, user_account_association_created, logged_in, logged_out |
//! | `wiki_page` | wiki_page_created, wiki_page_updated, wiki_page_deleted |
//!
//! An event type not in this table (Canvas adds new ones) is kept, keyed by the noun of its
//! name and `<noun>_id` / `id` when the body has one, else by its context, else `event:<name>`.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fmt;

/// Canvas global ids are `shard * 10^13 + local id`.
const SHARD_FACTOR: u64 = 10_000_000_000_000;

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EntityKey(String);

impl EntityKey {
    /// Builds a key from a type and id parts. Parts are trimmed to what SQS message group ids
    /// accept; the whole key is capped at 128 characters (the SQS limit).
    pub fn new(entity_type: &str, ids: &[&str]) -> Self {
        let mut key = String::with_capacity(64);
        key.push_str(entity_type);
        for id in ids {
            key.push(':');
            key.extend(id.chars().filter(|c| c.is_ascii_graphic()));
        }
        key.truncate(128);
        EntityKey(key)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The entity type: everything before the first `:`.
    pub fn entity_type(&self) -> &str {
        self.0.split(':').next().unwrap_or("")
    }
}

impl fmt::Display for EntityKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<EntityKey> for String {
    fn from(key: EntityKey) -> String {
        key.0
    }
}

/// Where an id lives: a field of the body (dotted path for nested objects) or of the metadata.
#[derive(Clone, Copy)]
enum Field {
    Body(&'static str),
    Meta(&'static str),
    /// A literal part taken from the body but never globalised (types, uuids).
    BodyText(&'static str),
}

struct Rule {
    events: &'static [&'static str],
    entity: &'static str,
    ids: &'static [Field],
}

use Field::{Body, BodyText, Meta};

/// The documented Canvas-format mapping. Several rules may name one event: the first whose
/// fields are all present wins (e.g. the published `grade_override` example is labelled
/// `grade_change` but carries a score id).
const RULES: &[Rule] = &[
    Rule {
        events: &["account_created", "account_updated"],
        entity: "account",
        ids: &[Body("account_id")],
    },
    Rule {
        events: &["account_notification_created"],
        entity: "account_notification",
        ids: &[Body("account_notification_id")],
    },
    Rule {
        events: &["asset_accessed"],
        entity: "asset",
        ids: &[BodyText("asset_type"), Body("asset_id")],
    },
    Rule {
        events: &["assignment_created", "assignment_updated"],
        entity: "assignment",
        ids: &[Body("assignment_id")],
    },
    Rule {
        events: &["assignment_group_created", "assignment_group_updated"],
        entity: "assignment_group",
        ids: &[Body("assignment_group_id")],
    },
    Rule {
        events: &["assignment_override_created", "assignment_override_updated"],
        entity: "assignment_override",
        ids: &[Body("assignment_override_id")],
    },
    Rule {
        events: &[
            "attachment_created",
            "attachment_updated",
            "attachment_deleted",
        ],
        entity: "attachment",
        ids: &[Body("attachment_id")],
    },
    Rule {
        events: &["content_migration_started", "content_migration_completed"],
        entity: "content_migration",
        ids: &[Body("content_migration_id")],
    },
    Rule {
        events: &["conversation_created", "conversation_forwarded"],
        entity: "conversation",
        ids: &[Body("conversation_id")],
    },
    Rule {
        events: &["conversation_message_created"],
        entity: "conversation_message",
        ids: &[Body("message_id")],
    },
    Rule {
        events: &["course_created", "course_updated", "syllabus_updated"],
        entity: "course",
        ids: &[Body("course_id")],
    },
    Rule {
        events: &["course_grade_change"],
        entity: "course_grade",
        ids: &[Body("course_id"), Body("user_id")],
    },
    Rule {
        events: &["course_progress", "course_completed"],
        entity: "course_progress",
        ids: &[Body("course.id"), Body("user.id")],
    },
    Rule {
        events: &["discussion_entry_created", "discussion_entry_submitted"],
        entity: "discussion_entry",
        ids: &[Body("discussion_entry_id")],
    },
    Rule {
        events: &["discussion_topic_created", "discussion_topic_updated"],
        entity: "discussion_topic",
        ids: &[Body("discussion_topic_id")],
    },
    Rule {
        events: &[
            "enrollment_created",
            "enrollment_updated",
            "enrollment_state_created",
            "enrollment_state_updated",
        ],
        entity: "enrollment",
        ids: &[Body("enrollment_id")],
    },
    Rule {
        events: &["group_created", "group_updated"],
        entity: "group",
        ids: &[Body("group_id")],
    },
    Rule {
        events: &["group_category_created", "group_category_updated"],
        entity: "group_category",
        ids: &[Body("group_category_id")],
    },
    Rule {
        events: &["group_membership_created", "group_membership_updated"],
        entity: "group_membership",
        ids: &[Body("group_membership_id")],
    },
    Rule {
        events: &["learning_outcome_created", "learning_outcome_updated"],
        entity: "learning_outcome",
        ids: &[Body("learning_outcome_id")],
    },
    Rule {
        events: &[
            "learning_outcome_group_created",
            "learning_outcome_group_updated",
        ],
        entity: "learning_outcome_group",
        ids: &[Body("learning_outcome_group_id")],
    },
    Rule {
        events: &[
            "learning_outcome_link_created",
            "learning_outcome_link_updated",
        ],
        entity: "learning_outcome_link",
        ids: &[Body("learning_outcome_link_id")],
    },
    Rule {
        events: &[
            "learning_outcome_result_created",
            "learning_outcome_result_updated",
        ],
        entity: "learning_outcome_result",
        ids: &[Body("learning_outcome_id"), BodyText("user_uuid")],
    },
    Rule {
        events: &["learning_outcome_result_updated"],
        entity: "learning_outcome_result",
        ids: &[Body("id")],
    },
    Rule {
        events: &["lti_resource_link_created", "lti_resource_link_updated"],
        entity: "lti_resource_link",
        ids: &[Body("resource_link_id")],
    },
    Rule {
        events: &["master_migration_started"],
        entity: "master_migration",
        ids: &[Body("master_migration_id")],
    },
    Rule {
        events: &["module_created", "module_updated"],
        entity: "module",
        ids: &[Body("module_id")],
    },
    Rule {
        events: &["module_item_created", "module_item_updated"],
        entity: "module_item",
        ids: &[Body("module_item_id")],
    },
    Rule {
        events: &["outcomes.retry_outcome_alignment_clone"],
        entity: "outcome_alignment_clone",
        ids: &[BodyText("new_course_uuid")],
    },
    Rule {
        events: &[
            "outcome_calculation_method_created",
            "outcome_calculation_method_updated",
        ],
        entity: "outcome_calculation_method",
        ids: &[Body("outcome_calculation_method_id")],
    },
    Rule {
        events: &["outcome_proficiency_created", "outcome_proficiency_updated"],
        entity: "outcome_proficiency",
        ids: &[Body("outcome_proficiency_id")],
    },
    Rule {
        events: &["quiz_created", "quiz_updated"],
        entity: "quiz",
        ids: &[Body("quiz_id")],
    },
    Rule {
        events: &["rubric_assessed"],
        entity: "rubric_assessment",
        ids: &[Body("id")],
    },
    Rule {
        events: &["grade_override", "final_grade_custom_status"],
        entity: "score",
        ids: &[Body("score_id")],
    },
    Rule {
        events: &["course_section_created", "course_section_updated"],
        entity: "section",
        ids: &[Body("course_section_id")],
    },
    Rule {
        events: &["sis_batch_created", "sis_batch_updated"],
        entity: "sis_batch",
        ids: &[Body("sis_batch_id")],
    },
    Rule {
        events: &[
            "submission_created",
            "submission_updated",
            "grade_change",
            "quiz_submitted",
            "plagiarism_resubmit",
            "submission_custom_grade_status",
        ],
        entity: "submission",
        ids: &[Body("submission_id")],
    },
    Rule {
        events: &["grade_change"],
        entity: "score",
        ids: &[Body("score_id")],
    },
    Rule {
        events: &["submission_comment_created"],
        entity: "submission_comment",
        ids: &[Body("submission_comment_id")],
    },
    Rule {
        events: &[
            "user_created",
            "user_updated",
            "user_account_association_created",
        ],
        entity: "user",
        ids: &[Body("user_id")],
    },
    Rule {
        events: &["logged_in", "logged_out"],
        entity: "user",
        ids: &[Meta("user_id")],
    },
    Rule {
        events: &[
            "wiki_page_created",
            "wiki_page_updated",
            "wiki_page_deleted",
        ],
        entity: "wiki_page",
        ids: &[Body("wiki_page_id")],
    },
];

/// Every documented Canvas event type with the entity type its key names (an event type
/// may appear twice: `grade_change` names a submission or, without one, a score).
pub fn documented_events() -> impl Iterator<Item = (&'static str, &'static str)> {
    RULES
        .iter()
        .flat_map(|rule| rule.events.iter().map(move |event| (*event, rule.entity)))
}

/// Whether Canvas-format `event_name` has a documented key rule.
pub fn is_documented(event_name: &str) -> bool {
    RULES.iter().any(|r| r.events.contains(&event_name))
}

/// Derives the entity key of a Canvas-format event.
pub fn canvas_key(event_name: &str, metadata: &Value, body: &Value) -> EntityKey {
    let shard = shard_of(metadata.get("root_account_id"));
    for rule in RULES.iter().filter(|r| r.events.contains(&event_name)) {
        let parts: Option<Vec<String>> = rule
            .ids
            .iter()
            .map(|field| match *field {
                Body(path) => id_text(lookup(body, path)).map(|id| globalise(&id, shard)),
                Meta(path) => id_text(lookup(metadata, path)).map(|id| globalise(&id, shard)),
                BodyText(path) => id_text(lookup(body, path)),
            })
            .collect();
        if let Some(parts) = parts {
            let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
            return EntityKey::new(rule.entity, &refs);
        }
    }
    fallback_key(event_name, metadata, body, shard)
}

/// Keys an event type we have no rule for, so that future Canvas events are kept and still
/// grouped sensibly.
fn fallback_key(event_name: &str, metadata: &Value, body: &Value, shard: Option<u64>) -> EntityKey {
    let noun = noun_of(event_name);
    let own_id =
        id_text(body.get(format!("{noun}_id").as_str())).or_else(|| id_text(body.get("id")));
    if let Some(id) = own_id {
        return EntityKey::new(noun, &[&globalise(&id, shard)]);
    }
    if let (Some(kind), Some(id)) = (
        metadata.get("context_type").and_then(Value::as_str),
        id_text(metadata.get("context_id")),
    ) {
        return EntityKey::new(&snake_case(kind), &[&globalise(&id, shard)]);
    }
    EntityKey::new("event", &[event_name])
}

/// `wiki_page_created` → `wiki_page`: the event name less its verb.
pub(crate) fn noun_of(event_name: &str) -> &str {
    const VERBS: [&str; 12] = [
        "_created",
        "_updated",
        "_deleted",
        "_started",
        "_completed",
        "_submitted",
        "_changed",
        "_change",
        "_assessed",
        "_accessed",
        "_forwarded",
        "_published",
    ];
    VERBS
        .iter()
        .find_map(|verb| event_name.strip_suffix(verb))
        .filter(|noun| !noun.is_empty())
        .unwrap_or(event_name)
}

/// `CourseSection` → `course_section`, `discussionEntry` → `discussion_entry`.
pub(crate) fn snake_case(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 4);
    for (i, c) in text.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

fn lookup<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(value, |v, part| v.get(part))
}

/// Ids arrive as strings or (in a few event types) numbers.
pub(crate) fn id_text(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The shard of a global id, e.g. 2107 for `21070000000000001`.
pub fn shard_of(root_account_id: Option<&Value>) -> Option<u64> {
    let id: u64 = id_text(root_account_id)?.parse().ok()?;
    (id >= SHARD_FACTOR).then_some(id / SHARD_FACTOR)
}

/// A local numeric id becomes global on the given shard; global ids and non-numeric ids
/// (uuids, SIS ids) are left alone.
pub fn globalise(id: &str, shard: Option<u64>) -> String {
    match (id.parse::<u64>(), shard) {
        (Ok(local), Some(shard)) if local < SHARD_FACTOR => {
            (shard * SHARD_FACTOR + local).to_string()
        }
        _ => id.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn local_ids_are_globalised_on_the_root_account_shard() {
        let meta = json!({"root_account_id": "21070000000000001"});
        let key = canvas_key(
            "module_item_created",
            &meta,
            &json!({"module_item_id": "19587"}),
        );
        assert_eq!(key.as_str(), "module_item:21070000000019587");
        let key = canvas_key(
            "course_created",
            &meta,
            &json!({"course_id": "21070000000000056"}),
        );
        assert_eq!(key.as_str(), "course:21070000000000056");
        // Without a global root account id, ids stay as they are.
        let key = canvas_key("account_created", &json!({}), &json!({"account_id": 3}));
        assert_eq!(key.as_str(), "account:3");
    }

    #[test]
    fn composite_and_nested_keys() {
        let meta = json!({"root_account_id": "21070000000000001"});
        let body = json!({"course": {"id": "565"}, "user": {"id": "123"}});
        assert_eq!(
            canvas_key("course_completed", &meta, &body).as_str(),
            "course_progress:21070000000000565:21070000000000123"
        );
    }

    #[test]
    fn unknown_event_types_get_a_sensible_key() {
        let meta = json!({"root_account_id": "21070000000000001", "context_type": "Course", "context_id": "21070000000000565"});
        assert_eq!(
            canvas_key("rubric_created", &meta, &json!({"rubric_id": "9"})).as_str(),
            "rubric:21070000000000009"
        );
        assert_eq!(
            canvas_key("thing_happened", &meta, &json!({})).as_str(),
            "course:21070000000000565"
        );
        assert_eq!(
            canvas_key("thing_happened", &json!({}), &json!({})).as_str(),
            "event:thing_happened"
        );
    }

    #[test]
    fn keys_fit_sqs_message_group_ids() {
        let long = "x".repeat(500);
        let key = EntityKey::new("asset", &[&long, "1 2\n3"]);
        assert!(key.as_str().len() <= 128);
        assert!(key.as_str().chars().all(|c| c.is_ascii_graphic()));
    }
}
