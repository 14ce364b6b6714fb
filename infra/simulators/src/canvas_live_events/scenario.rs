//! Deterministic course-term scenarios shaped like Instructure's published
//! Live Events examples, an emission plan that behaves like Canvas's delivery
//! (at-least-once, unordered, two formats, two transports) and the ground
//! truth a catalog should converge to.
//!
//! Everything is derived from `ScenarioConfig::seed`: the same config always
//! yields byte-identical events and plans, and different seeds yield
//! different ids so several scenarios can share one local stack.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;

use super::generator::rfc3339_ms;

/// Canvas shard of every simulated id (the shard in Instructure's examples).
pub const SHARD: u64 = 2107;
/// Global id = `SHARD * SHARD_FACTOR + local id`.
pub const SHARD_FACTOR: u64 = 10_000_000_000_000;

/// Global (shard-qualified) id of a local id.
pub fn global_id(local: u64) -> u64 {
    SHARD * SHARD_FACTOR + local
}

/// Splits a global id into `(shard, local)`; `None` for ids that are not global.
pub fn split_global_id(id: u64) -> Option<(u64, u64)> {
    (id >= SHARD_FACTOR).then_some((id / SHARD_FACTOR, id % SHARD_FACTOR))
}

/// Entity types the simulator attributes events to.
pub const ENTITY_TYPES: [&str; 8] = [
    "course",
    "section",
    "user",
    "enrollment",
    "assignment",
    "submission",
    "module",
    "module_item",
];

/// Event names a default scenario always contains.
pub const EVENT_NAMES: [&str; 13] = [
    "course_created",
    "course_updated",
    "course_section_created",
    "user_created",
    "enrollment_created",
    "enrollment_updated",
    "assignment_created",
    "assignment_updated",
    "submission_created",
    "submission_updated",
    "grade_change",
    "module_created",
    "module_item_created",
];

/// Knobs for one simulated term.
#[derive(Debug, Clone, PartialEq)]
pub struct ScenarioConfig {
    /// Seeds every random choice (ids, names, times, plan).
    pub seed: u64,
    pub courses: usize,
    /// At least 1 (Canvas always has a default section).
    pub sections_per_course: usize,
    pub students_per_course: usize,
    /// Real assignments per course; each course also gets one assignment
    /// created by mistake and deleted (`workflow_state: "deleted"`).
    pub assignments_per_course: usize,
    /// At least 1; each real assignment gets one module item.
    pub modules_per_course: usize,
    /// Probability that a student submits a given assignment.
    pub submissions_ratio: f64,
    /// Grade changes per submission (first grading plus regrades); 0 = never graded.
    pub grade_changes_per_submission: usize,
    /// Probability that an emission is delivered twice (byte-identical payload).
    pub duplicate_ratio: f64,
    /// Emissions may move up to this many positions from causal order.
    pub reorder_window: usize,
    /// `true`: send everything as fast as possible; `false`: one emission per `pace`.
    pub burst: bool,
    /// Gap between emissions when not bursting.
    pub pace: Duration,
    /// Probability that an event with a Caliper form is delivered as Caliper.
    pub caliper_ratio: f64,
    /// Probability that an emission goes over HTTPS (otherwise SQS).
    pub https_ratio: f64,
    /// Term start; the SIS import happens here, activity spans ~8 weeks after.
    pub start_time: DateTime<Utc>,
    /// Canvas hostname in metadata, URLs and Caliper ids.
    pub hostname: String,
}

impl Default for ScenarioConfig {
    fn default() -> Self {
        Self {
            seed: 42,
            courses: 2,
            sections_per_course: 2,
            students_per_course: 25,
            assignments_per_course: 4,
            modules_per_course: 2,
            submissions_ratio: 0.8,
            grade_changes_per_submission: 1,
            duplicate_ratio: 0.05,
            reorder_window: 8,
            burst: false,
            pace: Duration::from_millis(5),
            caliper_ratio: 0.2,
            https_ratio: 0.5,
            // Fixed so default scenarios are reproducible.
            start_time: Utc
                .with_ymd_and_hms(2025, 8, 25, 13, 0, 0)
                .single()
                .unwrap_or(DateTime::UNIX_EPOCH),
            hostname: "canvas-sim.instructure.com".into(),
        }
    }
}

/// `(entity type, global id)`, e.g. `("enrollment", "21070000000046825")`.
pub type EntityKey = (String, String);

/// One live event in both of Canvas's formats.
#[derive(Debug, Clone, PartialEq)]
pub struct SimEvent {
    pub event_name: String,
    /// Same instant as `canvas.metadata.event_time` (millisecond precision).
    pub event_time: DateTime<Utc>,
    /// Canvas format: `{"metadata": {...}, "body": {...}}`.
    pub canvas: Value,
    /// Caliper 1.1 envelope, `None` for event types Canvas has no Caliper form for.
    pub caliper: Option<Value>,
    /// What the event is about, with a global id even where the body uses local ids.
    pub entity: EntityKey,
}

impl SimEvent {
    /// `metadata.event_time` exactly as in the payload.
    pub fn event_time_str(&self) -> String {
        rfc3339_ms(self.event_time)
    }

    /// This event as one Canvas-format delivery over `delivery`, sent now: how a change a
    /// person makes through the simulated Canvas API reaches coursewire.
    pub fn emission(&self, index: usize, delivery: Delivery) -> Emission {
        Emission {
            event_index: index,
            event_name: self.event_name.clone(),
            event_time: self.event_time_str(),
            format: Format::Canvas,
            delivery,
            duplicate: false,
            payload: self.canvas.clone(),
            offset: Duration::ZERO,
        }
    }
}

/// Payload format of an emission.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    Canvas,
    Caliper,
}

/// Transport of an emission.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Delivery {
    /// POST of a signed JWT to the receiver's URL.
    Https,
    /// SendMessage to a standard queue with `event_name`/`event_time` attributes.
    Sqs,
}

/// One delivery attempt in the plan.
#[derive(Debug, Clone, PartialEq)]
pub struct Emission {
    /// Index into the events the plan was built from.
    pub event_index: usize,
    /// SQS `event_name` attribute value.
    pub event_name: String,
    /// SQS `event_time` attribute value (the Canvas metadata string).
    pub event_time: String,
    pub format: Format,
    pub delivery: Delivery,
    /// `true` for the re-send; the payload equals the original's byte for byte.
    pub duplicate: bool,
    /// The event JSON as Canvas would send it (before JWT claims are added).
    pub payload: Value,
    /// When to send, relative to the start of playback (zero when bursting).
    pub offset: Duration,
}

/// Latest known state of one entity according to the simulator.
#[derive(Debug, Clone, PartialEq)]
pub struct EntityState {
    pub last_event: String,
    pub event_time: DateTime<Utc>,
    /// Last `workflow_state` seen (events without one, e.g. grade_change, keep it).
    pub workflow_state: Option<String>,
    pub deleted: bool,
    /// Submissions only: last grade and score.
    pub grade: Option<String>,
    pub score: Option<f64>,
    /// Distinct source events about this entity.
    pub events: usize,
}

/// Final state per entity: what a correct catalog converges to.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Truth {
    pub entities: BTreeMap<EntityKey, EntityState>,
}

/// The fields the truth tracks, as one delivered form of an event carries them.
struct Carried<'a> {
    workflow_state: Option<&'a str>,
    grade: Option<&'a str>,
    score: Option<f64>,
}

impl<'a> Carried<'a> {
    fn canvas(event: &'a SimEvent) -> Self {
        let body = &event.canvas["body"];
        Self {
            workflow_state: body["workflow_state"].as_str(),
            grade: body["grade"].as_str(),
            score: body["score"].as_f64(),
        }
    }

    /// Caliper carries less than the Canvas form (no `workflow_state` on submissions, for
    /// one): a catalog fed this form can only know what it says.
    fn caliper(caliper: &'a Value) -> Self {
        let data = &caliper["data"][0];
        let ext = &data["object"]["extensions"]["com.instructure.canvas"];
        Self {
            workflow_state: ext["workflow_state"].as_str(),
            grade: ext["grade"].as_str(),
            score: data["generated"]["scoreGiven"].as_f64(),
        }
    }
}

impl Truth {
    /// Folds events by `event_time` (ties keep input order): last event wins.
    pub fn from_events(events: &[SimEvent]) -> Self {
        Self::fold(events.iter().map(|e| (e, Carried::canvas(e))).collect())
    }

    /// Like [`from_events`](Self::from_events), but each event counts with what the form it
    /// was delivered in carries (Canvas or Caliper).
    pub fn as_delivered(events: &[SimEvent], emissions: &[Emission]) -> Self {
        let caliper: std::collections::HashSet<usize> = emissions
            .iter()
            .filter(|e| e.format == Format::Caliper)
            .map(|e| e.event_index)
            .collect();
        Self::fold(
            events
                .iter()
                .enumerate()
                .map(|(i, e)| match (&e.caliper, caliper.contains(&i)) {
                    (Some(form), true) => (e, Carried::caliper(form)),
                    _ => (e, Carried::canvas(e)),
                })
                .collect(),
        )
    }

    fn fold(mut order: Vec<(&SimEvent, Carried<'_>)>) -> Self {
        order.sort_by_key(|(e, _)| e.event_time);
        let mut entities: BTreeMap<EntityKey, EntityState> = BTreeMap::new();
        for (event, carried) in order {
            let state = entities
                .entry(event.entity.clone())
                .or_insert_with(|| EntityState {
                    last_event: String::new(),
                    event_time: event.event_time,
                    workflow_state: None,
                    deleted: false,
                    grade: None,
                    score: None,
                    events: 0,
                });
            state.last_event.clone_from(&event.event_name);
            state.event_time = event.event_time;
            state.events += 1;
            if let Some(ws) = carried.workflow_state {
                state.workflow_state = Some(ws.to_string());
                state.deleted = ws == "deleted";
            }
            if event.entity.0 == "submission" {
                if let Some(grade) = carried.grade {
                    state.grade = Some(grade.to_string());
                }
                if let Some(score) = carried.score {
                    state.score = Some(score);
                }
            }
        }
        Self { entities }
    }

    pub fn get(&self, kind: &str, id: &str) -> Option<&EntityState> {
        self.entities.get(&(kind.to_string(), id.to_string()))
    }

    /// Entities of one type, in id order.
    pub fn of_type<'a>(
        &'a self,
        kind: &'a str,
    ) -> impl Iterator<Item = (&'a str, &'a EntityState)> + 'a {
        self.entities
            .iter()
            .filter(move |((k, _), _)| k == kind)
            .map(|((_, id), state)| (id.as_str(), state))
    }

    /// Where a catalog (its rows) differs from this truth: every entity must have a row with
    /// the same deleted flag, `workflow_state` (when not deleted) and, for submissions, grade
    /// and score. One line per difference; empty when the catalog converged.
    pub fn catalog_mismatches(
        &self,
        rows: &[coursewire_live_events::catalog::EntityRecord],
    ) -> Vec<String> {
        let by_key: BTreeMap<&str, &coursewire_live_events::catalog::EntityRecord> =
            rows.iter().map(|r| (r.key.as_str(), r)).collect();
        let mut out = Vec::new();
        for ((kind, id), truth) in &self.entities {
            let key = format!("{kind}:{id}");
            let Some(row) = by_key.get(key.as_str()) else {
                out.push(format!("{key}: missing from the catalog"));
                continue;
            };
            if row.deleted != truth.deleted {
                out.push(format!(
                    "{key}: deleted is {}, expected {}",
                    row.deleted, truth.deleted
                ));
                continue;
            }
            if truth.deleted {
                continue;
            }
            let state = row.state.clone().unwrap_or_default();
            let field = |name: &str| state.get(name).cloned().unwrap_or(Value::Null);
            if let Some(ws) = &truth.workflow_state
                && field("workflow_state").as_str() != Some(ws.as_str())
            {
                out.push(format!(
                    "{key}: workflow_state {}, expected {ws}",
                    field("workflow_state")
                ));
            }
            if let Some(grade) = &truth.grade
                && field("grade").as_str() != Some(grade.as_str())
            {
                out.push(format!("{key}: grade {}, expected {grade}", field("grade")));
            }
            if let Some(score) = truth.score
                && field("score").as_f64() != Some(score)
            {
                out.push(format!("{key}: score {}, expected {score}", field("score")));
            }
        }
        out
    }

    /// Number of entities of one type, deleted ones included.
    pub fn count(&self, kind: &str) -> usize {
        self.of_type(kind).count()
    }
}

/// Events, plan and truth of one seeded term (the truth as delivered: see
/// [`Truth::as_delivered`]).
#[derive(Debug, Clone)]
pub struct Scenario {
    pub config: ScenarioConfig,
    pub events: Vec<SimEvent>,
    pub emissions: Vec<Emission>,
    pub truth: Truth,
}

impl Scenario {
    pub fn build(config: ScenarioConfig) -> Self {
        let events = generate(&config);
        let emissions = plan(&events, &config);
        let truth = Truth::as_delivered(&events, &emissions);
        Self {
            config,
            events,
            emissions,
            truth,
        }
    }
}

/// Generates the term's events in causal order (sorted by `event_time`;
/// every event is later than the events it depends on).
pub fn generate(config: &ScenarioConfig) -> Vec<SimEvent> {
    let mut events = super::generator::generate_events(config);
    // Stable: equal instants keep generation order.
    events.sort_by_key(|e| e.event_time);
    events
}

/// Builds the delivery plan: format and transport per event, duplicates
/// (byte-identical re-sends placed after the original), bounded reordering
/// and pacing offsets. Deterministic per `config.seed`.
pub fn plan(events: &[SimEvent], config: &ScenarioConfig) -> Vec<Emission> {
    let mut rng = StdRng::seed_from_u64(config.seed ^ 0x9e37_79b9_7f4a_7c15);
    let caliper_ratio = config.caliper_ratio.clamp(0.0, 1.0);
    let https_ratio = config.https_ratio.clamp(0.0, 1.0);
    let duplicate_ratio = config.duplicate_ratio.clamp(0.0, 1.0);
    let window = config.reorder_window as f64;
    let mut keyed: Vec<(f64, Emission)> = Vec::with_capacity(events.len());
    for (index, event) in events.iter().enumerate() {
        let (format, payload) = match &event.caliper {
            Some(caliper) if rng.random_bool(caliper_ratio) => (Format::Caliper, caliper.clone()),
            _ => (Format::Canvas, event.canvas.clone()),
        };
        let delivery = if rng.random_bool(https_ratio) {
            Delivery::Https
        } else {
            Delivery::Sqs
        };
        // Jittering the sort key by < window moves an emission fewer than
        // `reorder_window` places away from its causal position.
        let key = index as f64 + rng.random::<f64>() * window;
        let emission = Emission {
            event_index: index,
            event_name: event.event_name.clone(),
            event_time: event.event_time_str(),
            format,
            delivery,
            duplicate: false,
            payload,
            offset: Duration::ZERO,
        };
        if rng.random_bool(duplicate_ratio) {
            // Retries come later than the original, sometimes much later.
            let later = 1.0 + rng.random::<f64>() * (window * 4.0 + 16.0);
            let mut duplicate = emission.clone();
            duplicate.duplicate = true;
            keyed.push((key + later, duplicate));
        }
        keyed.push((key, emission));
    }
    keyed.sort_by(|a, b| a.0.total_cmp(&b.0));
    keyed
        .into_iter()
        .enumerate()
        .map(|(position, (_, mut emission))| {
            emission.offset = if config.burst {
                Duration::ZERO
            } else {
                config
                    .pace
                    .saturating_mul(u32::try_from(position).unwrap_or(u32::MAX))
            };
            emission
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canvas_live_events::generator::CALIPER_CONTEXT;
    use std::collections::{BTreeSet, HashMap};

    fn default_scenario() -> Scenario {
        Scenario::build(ScenarioConfig::default())
    }

    fn is_global(id: &str) -> bool {
        id.parse::<u64>()
            .ok()
            .and_then(split_global_id)
            .is_some_and(|(shard, local)| shard == SHARD && local > 0)
    }

    #[test]
    fn deterministic_per_seed() {
        let a = default_scenario();
        let b = default_scenario();
        assert_eq!(a.events, b.events);
        assert_eq!(a.emissions, b.emissions);
        assert_eq!(a.truth, b.truth);
        let c = Scenario::build(ScenarioConfig {
            seed: 43,
            ..ScenarioConfig::default()
        });
        assert_ne!(a.events, c.events);
        let ids_a: BTreeSet<_> = a.truth.entities.keys().collect();
        let ids_c: BTreeSet<_> = c.truth.entities.keys().collect();
        assert!(
            ids_a.is_disjoint(&ids_c),
            "different seeds do not share entity ids"
        );
    }

    #[test]
    fn contains_every_event_type_and_deletions() {
        let s = default_scenario();
        let names: BTreeSet<&str> = s.events.iter().map(|e| e.event_name.as_str()).collect();
        for name in EVENT_NAMES {
            assert!(names.contains(name), "missing {name}");
        }
        let kinds: BTreeSet<&str> = s.events.iter().map(|e| e.entity.0.as_str()).collect();
        assert_eq!(kinds, ENTITY_TYPES.into_iter().collect());
        for kind in ["enrollment", "assignment"] {
            assert!(
                s.events.iter().any(|e| e.entity.0 == kind
                    && e.event_name.ends_with("_updated")
                    && e.canvas["body"]["workflow_state"] == "deleted"),
                "{kind} deletion arrives as an update"
            );
        }
        assert!(
            s.events
                .iter()
                .any(|e| e.canvas["body"]["workflow_state"] == "completed")
        );
        let cfg = &s.config;
        assert_eq!(s.truth.count("course"), cfg.courses);
        assert_eq!(
            s.truth.count("section"),
            cfg.courses * cfg.sections_per_course
        );
        assert_eq!(
            s.truth.count("enrollment"),
            cfg.courses * (cfg.students_per_course + 1)
        );
        assert_eq!(
            s.truth.count("assignment"),
            cfg.courses * (cfg.assignments_per_course + 1)
        );
        assert_eq!(
            s.truth.count("module"),
            cfg.courses * cfg.modules_per_course
        );
        assert_eq!(
            s.truth.count("module_item"),
            cfg.courses * cfg.assignments_per_course
        );
    }

    #[test]
    fn payloads_follow_canvas_shape() {
        let s = default_scenario();
        for event in &s.events {
            let meta = &event.canvas["metadata"];
            assert_eq!(meta["event_name"], event.event_name.as_str());
            assert_eq!(meta["producer"], "canvas");
            assert!(is_global(
                meta["root_account_id"].as_str().expect("root_account_id")
            ));
            assert!(meta["root_account_uuid"].is_string());
            // Either a request (user_id, request_id, hostname) or a job (job_id, job_tag).
            let request = meta["request_id"].is_string()
                && meta["user_id"].is_string()
                && meta["hostname"].is_string();
            let job = meta["job_id"].is_string() && meta["job_tag"].is_string();
            assert!(request ^ job, "{}: {meta}", event.event_name);
            let time = meta["event_time"].as_str().expect("event_time");
            assert_eq!(time, event.event_time_str());
            assert_eq!(time.len(), "2025-08-25T13:00:00.123Z".len(), "{time}");
            assert!(time.ends_with('Z') && time.as_bytes()[19] == b'.');
            assert_eq!(
                DateTime::parse_from_rfc3339(time).expect("rfc3339"),
                event.event_time
            );
            assert!(event.canvas["body"].is_object());
            // All ids are strings.
            for (key, value) in event.canvas["body"].as_object().expect("body") {
                if key.ends_with("_id")
                    && !value.is_null()
                    && key != "lti_assignment_id"
                    && key != "lti_resource_link_id"
                    && key != "lti_user_id"
                {
                    assert!(value.is_string(), "{}.{key} = {value}", event.event_name);
                }
            }
        }
    }

    #[test]
    fn ids_are_shard_encoded_where_canvas_uses_global_ids() {
        let s = default_scenario();
        assert_eq!(global_id(46_825), 21_070_000_000_046_825);
        assert_eq!(
            split_global_id(21_070_000_000_046_825),
            Some((2107, 46_825))
        );
        assert_eq!(split_global_id(565), None);
        for event in &s.events {
            assert!(is_global(&event.entity.1), "entity id {:?}", event.entity);
            let body = &event.canvas["body"];
            let s = |k: &str| body[k].as_str().unwrap_or_default().to_string();
            match event.event_name.as_str() {
                "course_created" | "course_updated" => assert!(is_global(&s("course_id"))),
                "enrollment_created" | "enrollment_updated" => {
                    for k in ["enrollment_id", "course_id", "course_section_id", "user_id"] {
                        assert!(is_global(&s(k)), "{k}");
                    }
                    assert_eq!(s("enrollment_id"), event.entity.1);
                }
                "course_section_created" => {
                    // Canvas sends local ids here; the entity id is their global form.
                    let local: u64 = s("course_section_id").parse().expect("local id");
                    assert!(local < SHARD_FACTOR);
                    assert_eq!(global_id(local).to_string(), event.entity.1);
                    assert!(s("course_id").parse::<u64>().expect("course") < SHARD_FACTOR);
                    assert!(is_global(
                        event.canvas["metadata"]["context_id"]
                            .as_str()
                            .expect("ctx")
                    ));
                }
                "module_created" | "module_item_created" => {
                    let field = if event.event_name == "module_created" {
                        "module_id"
                    } else {
                        "module_item_id"
                    };
                    let local: u64 = s(field).parse().expect("local id");
                    assert_eq!(global_id(local).to_string(), event.entity.1);
                    assert!(s("context_id").parse::<u64>().expect("ctx") < SHARD_FACTOR);
                }
                "submission_created" | "submission_updated" | "grade_change" => {
                    assert_eq!(s("submission_id"), event.entity.1);
                    assert!(is_global(&s("assignment_id")) && is_global(&s("user_id")));
                }
                "assignment_created" | "assignment_updated" => {
                    assert_eq!(s("assignment_id"), event.entity.1)
                }
                "user_created" => assert_eq!(s("user_id"), event.entity.1),
                other => panic!("unexpected event {other}"),
            }
        }
    }

    #[test]
    fn events_are_in_causal_order() {
        let s = default_scenario();
        assert!(
            s.events
                .windows(2)
                .all(|w| w[0].event_time <= w[1].event_time)
        );
        let mut seen: BTreeSet<(String, String)> = BTreeSet::new();
        let key = |kind: &str, id: &str| (kind.to_string(), id.to_string());
        for event in &s.events {
            let body = &event.canvas["body"];
            let g = |k: &str| body[k].as_str().unwrap_or_default().to_string();
            let local_to_global = |k: &str| {
                g(k).parse::<u64>()
                    .map(|l| global_id(l).to_string())
                    .unwrap_or_default()
            };
            let requires: Vec<(String, String)> = match event.event_name.as_str() {
                "course_section_created" => vec![key("course", &local_to_global("course_id"))],
                "enrollment_created" => vec![
                    key("course", &g("course_id")),
                    key("section", &g("course_section_id")),
                    key("user", &g("user_id")),
                ],
                "assignment_created" | "module_created" => {
                    let id = event.canvas["metadata"]["context_id"]
                        .as_str()
                        .unwrap_or_default();
                    vec![key("course", id)]
                }
                "module_item_created" => vec![key("module", &local_to_global("module_id"))],
                "submission_created" => vec![
                    key("assignment", &g("assignment_id")),
                    key("user", &g("user_id")),
                ],
                "submission_updated" | "grade_change" => {
                    vec![key("submission", &g("submission_id"))]
                }
                _ => vec![],
            };
            for required in requires {
                assert!(
                    seen.contains(&required),
                    "{} before {required:?}",
                    event.event_name
                );
            }
            if event.event_name.ends_with("_updated") || event.event_name == "grade_change" {
                assert!(
                    seen.contains(&event.entity),
                    "{} before creation",
                    event.event_name
                );
            }
            seen.insert(event.entity.clone());
        }
    }

    #[test]
    fn caliper_envelopes_follow_instructure_shape() {
        let s = default_scenario();
        let with_caliper: BTreeSet<&str> = s
            .events
            .iter()
            .filter(|e| e.caliper.is_some())
            .map(|e| e.event_name.as_str())
            .collect();
        let expected: BTreeSet<&str> = [
            "course_created",
            "course_updated",
            "enrollment_created",
            "enrollment_updated",
            "assignment_created",
            "assignment_updated",
            "submission_created",
            "submission_updated",
            "grade_change",
        ]
        .into_iter()
        .collect();
        assert_eq!(with_caliper, expected);
        let mut caliper_ids = BTreeSet::new();
        for event in &s.events {
            let Some(envelope) = &event.caliper else {
                continue;
            };
            assert_eq!(envelope["dataVersion"], CALIPER_CONTEXT);
            assert_eq!(envelope["sensor"], format!("http://{}/", s.config.hostname));
            let data = envelope["data"].as_array().expect("data");
            assert_eq!(data.len(), 1);
            let caliper = &data[0];
            let id = caliper["id"].as_str().expect("id");
            assert!(
                id.starts_with("urn:uuid:") && uuid::Uuid::parse_str(&id[9..]).is_ok(),
                "{id}"
            );
            assert!(caliper_ids.insert(id.to_string()), "caliper ids are fresh");
            assert_eq!(caliper["eventTime"], event.event_time_str());
            assert!(
                caliper["actor"]["id"]
                    .as_str()
                    .expect("actor")
                    .starts_with("urn:instructure:canvas:user:2107")
            );
            let object = &caliper["object"];
            assert_eq!(
                object["extensions"]["com.instructure.canvas"]["entity_id"],
                event.entity.1.as_str()
            );
            let kind = event.entity.0.as_str();
            assert_eq!(
                object["id"],
                format!("urn:instructure:canvas:{kind}:{}", event.entity.1)
            );
            if !event.event_name.starts_with("course_") {
                let course = event.canvas["metadata"]["context_id"]
                    .as_str()
                    .expect("course context");
                let group = caliper["group"]["id"].as_str().expect("group");
                assert!(
                    group.starts_with(&format!("urn:instructure:canvas:course:{course}")),
                    "{group}"
                );
                assert_eq!(
                    caliper["group"]["extensions"]["com.instructure.canvas"]["entity_id"],
                    course
                );
            }
            let (kind, action) = match event.event_name.as_str() {
                "grade_change" => ("GradeEvent", "Graded"),
                "submission_created" => ("AssignableEvent", "Submitted"),
                name if name.ends_with("_created") => ("Event", "Created"),
                _ => ("Event", "Modified"),
            };
            assert_eq!(
                (caliper["type"].as_str(), caliper["action"].as_str()),
                (Some(kind), Some(action))
            );
        }
    }

    #[test]
    fn plan_duplicates_are_identical_and_later() {
        let cfg = ScenarioConfig {
            duplicate_ratio: 0.3,
            ..ScenarioConfig::default()
        };
        let events = generate(&cfg);
        let emissions = plan(&events, &cfg);
        let originals: Vec<&Emission> = emissions.iter().filter(|e| !e.duplicate).collect();
        assert_eq!(
            originals.len(),
            events.len(),
            "every event is emitted once plus duplicates"
        );
        let duplicates = emissions.len() - originals.len();
        assert!(
            duplicates > events.len() / 5 && duplicates < events.len() / 2,
            "{duplicates}"
        );
        let first_position: HashMap<usize, usize> = emissions
            .iter()
            .enumerate()
            .filter(|(_, e)| !e.duplicate)
            .map(|(p, e)| (e.event_index, p))
            .collect();
        for (position, dup) in emissions.iter().enumerate().filter(|(_, e)| e.duplicate) {
            let original = &emissions[first_position[&dup.event_index]];
            assert!(
                first_position[&dup.event_index] < position,
                "duplicate after original"
            );
            assert_eq!(
                dup.payload.to_string(),
                original.payload.to_string(),
                "byte-identical"
            );
            assert_eq!(
                (dup.format, dup.delivery),
                (original.format, original.delivery)
            );
            assert_eq!(
                (&dup.event_name, &dup.event_time),
                (&original.event_name, &original.event_time)
            );
        }
        for emission in &emissions {
            let event = &events[emission.event_index];
            let expected = match emission.format {
                Format::Canvas => &event.canvas,
                Format::Caliper => event.caliper.as_ref().expect("caliper form"),
            };
            assert_eq!(&emission.payload, expected);
            assert_eq!(emission.event_name, event.event_name);
        }
        let formats: BTreeSet<_> = emissions
            .iter()
            .map(|e| format!("{:?}/{:?}", e.format, e.delivery))
            .collect();
        assert_eq!(
            formats.len(),
            4,
            "all format/delivery combinations: {formats:?}"
        );
    }

    #[test]
    fn reordering_stays_within_window_and_pacing_offsets() {
        for window in [0usize, 1, 8] {
            let cfg = ScenarioConfig {
                reorder_window: window,
                duplicate_ratio: 0.0,
                ..ScenarioConfig::default()
            };
            let events = generate(&cfg);
            let emissions = plan(&events, &cfg);
            let displaced = emissions
                .iter()
                .enumerate()
                .map(|(p, e)| p.abs_diff(e.event_index))
                .collect::<Vec<_>>();
            let max = displaced.iter().copied().max().unwrap_or(0);
            assert!(
                max < window.max(1),
                "window {window}: max displacement {max}"
            );
            if window == 8 {
                assert!(
                    displaced.iter().filter(|d| **d > 0).count() > events.len() / 4,
                    "really reordered"
                );
            }
            for (position, emission) in emissions.iter().enumerate() {
                assert_eq!(emission.offset, cfg.pace * position as u32);
            }
        }
        let burst = ScenarioConfig {
            burst: true,
            ..ScenarioConfig::default()
        };
        assert!(
            plan(&generate(&burst), &burst)
                .iter()
                .all(|e| e.offset.is_zero())
        );
    }

    #[test]
    fn truth_is_the_last_event_per_entity() {
        let s = default_scenario();
        for (key, state) in &s.truth.entities {
            let last = s
                .events
                .iter()
                .filter(|e| &e.entity == key)
                .max_by_key(|e| e.event_time)
                .expect("entity has events");
            assert_eq!(state.last_event, last.event_name);
            assert_eq!(state.event_time, last.event_time);
            assert_eq!(
                state.deleted,
                state.workflow_state.as_deref() == Some("deleted")
            );
        }
        let deleted_assignments = s
            .truth
            .of_type("assignment")
            .filter(|(_, st)| st.deleted)
            .count();
        assert_eq!(deleted_assignments, s.config.courses);
        assert!(s.truth.of_type("enrollment").any(|(_, st)| st.deleted));
        assert!(
            s.truth
                .of_type("enrollment")
                .any(|(_, st)| st.workflow_state.as_deref() == Some("active"))
        );
        // In Canvas form, graded submissions end on grade_change with the submission still
        // "graded" (Caliper's submission events carry no workflow_state).
        let canvas_truth = Truth::from_events(&s.events);
        let graded: Vec<_> = canvas_truth
            .of_type("submission")
            .filter(|(_, st)| st.grade.is_some())
            .collect();
        assert!(!graded.is_empty());
        for (_, st) in graded {
            assert_eq!(st.last_event, "grade_change");
            assert_eq!(st.workflow_state.as_deref(), Some("graded"));
            assert!(st.score.is_some());
        }
        // Order of input does not matter.
        let mut shuffled = s.events.clone();
        shuffled.reverse();
        assert_eq!(Truth::from_events(&shuffled), canvas_truth);
        // As delivered, some events came as Caliper, which says less.
        assert_ne!(s.truth, canvas_truth);
        assert_eq!(Truth::as_delivered(&s.events, &s.emissions), s.truth);
    }

    #[test]
    fn regrades_carry_old_grades() {
        let cfg = ScenarioConfig {
            courses: 1,
            students_per_course: 5,
            grade_changes_per_submission: 3,
            submissions_ratio: 1.0,
            ..ScenarioConfig::default()
        };
        let events = generate(&cfg);
        let mut by_submission: BTreeMap<&str, Vec<&SimEvent>> = BTreeMap::new();
        for event in events.iter().filter(|e| e.event_name == "grade_change") {
            by_submission
                .entry(event.entity.1.as_str())
                .or_default()
                .push(event);
        }
        assert!(by_submission.values().any(|changes| changes.len() == 3));
        for changes in by_submission.values() {
            assert!(changes[0].canvas["body"]["old_grade"].is_null());
            for pair in changes.windows(2) {
                assert_eq!(
                    pair[1].canvas["body"]["old_grade"],
                    pair[0].canvas["body"]["grade"]
                );
                assert_eq!(
                    pair[1].canvas["body"]["old_score"],
                    pair[0].canvas["body"]["score"]
                );
            }
        }
    }
}
