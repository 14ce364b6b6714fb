//! Every example payload Instructure publishes for Canvas Live Events (both formats) parses,
//! gets the right event name, and maps to a documented entity key.
//!
//! The corpus is Instructure's (beside the repository, or wherever
//! `COURSEWIRE_LIVE_EVENTS_DIR` points), or else the project's own fixtures in
//! `events/live-events` (see `live_events::corpus`).

use coursewire_live_events::live_events::corpus::{Corpus, Example};
use coursewire_live_events::live_events::{self, DeliveryHints, Format, entity};
use std::collections::{BTreeMap, HashSet};

/// The corpus in use, announced once per test (run with `--nocapture` to see it; `infra/test.sh`
/// prints it before the run).
fn corpus() -> Corpus {
    let corpus = Corpus::locate().unwrap_or_else(|e| panic!("{e}"));
    eprintln!("conformance corpus: {}", corpus.describe());
    corpus
}

fn examples(corpus: &Corpus, format: Format) -> Vec<Example> {
    corpus.examples(format).unwrap_or_else(|e| panic!("{e}"))
}

/// How many event types each format's files cover, and at least how many examples they hold.
fn expected_size(corpus: &Corpus, format: Format) -> (usize, usize) {
    let files = std::fs::read_dir(corpus.dir.join(format.as_str()).join("event-types"))
        .map(|dir| dir.count())
        .unwrap_or(0);
    match (corpus.is_instructure(), format) {
        // Instructure's corpus: 82 Canvas event types (plus 39 extra examples of
        // asset_accessed and friends), 32 Caliper ones.
        (true, Format::Canvas) => (82, 82 + 39),
        (true, Format::Caliper) => (32, 32 + 39),
        (false, _) => (files, files),
    }
}

/// The published `grade_override` example is labelled `grade_change` in its metadata.
const KNOWN_MISLABELLED: [&str; 1] = ["grade_override"];

#[test]
fn every_canvas_example_parses_with_a_documented_key() {
    let corpus = corpus();
    let examples = examples(&corpus, Format::Canvas);
    let (type_count, at_least) = expected_size(&corpus, Format::Canvas);
    assert!(
        examples.len() >= at_least && type_count > 0,
        "expected the whole corpus ({at_least} examples), found {}",
        examples.len()
    );
    let mut types = HashSet::new();
    for Example {
        event_type: name,
        description,
        payload,
        ..
    } in &examples
    {
        let bytes = serde_json::to_vec(payload).unwrap();
        let event = live_events::parse_json(&bytes, DeliveryHints::default())
            .unwrap_or_else(|e| panic!("{name} ({description}) failed: {e}"));
        assert_eq!(event.format, Format::Canvas);
        // Canvas names some events with a dot (`outcomes.retry_outcome_alignment_clone`);
        // the corpus files use an underscore.
        if !KNOWN_MISLABELLED.contains(&name.as_str()) {
            assert_eq!(&event.event_name.replace('.', "_"), name, "{description}");
        }
        assert!(
            entity::is_documented(&event.event_name),
            "{name} has no documented entity key rule"
        );
        let key = event.entity_key.as_str();
        assert_ne!(
            event.entity_key.entity_type(),
            "event",
            "{name} fell back to an undocumented key: {key}"
        );
        assert!(
            key.split(':').count() >= 2 && !key.ends_with(':'),
            "{name}: {key}"
        );
        assert_eq!(event.content_hash.len(), 64);
        types.insert(name.clone());
    }
    assert_eq!(types.len(), type_count);
}

#[test]
fn every_caliper_example_parses_and_names_its_canvas_event() {
    let corpus = corpus();
    let examples = examples(&corpus, Format::Caliper);
    let (type_count, at_least) = expected_size(&corpus, Format::Caliper);
    assert!(
        examples.len() >= at_least && type_count > 0,
        "expected the whole corpus ({at_least} examples), found {}",
        examples.len()
    );
    for Example {
        event_type: name,
        description,
        payload,
        ..
    } in &examples
    {
        let bytes = serde_json::to_vec(payload).unwrap();
        let event = live_events::parse_json(&bytes, DeliveryHints::default())
            .unwrap_or_else(|e| panic!("{name} ({description}) failed: {e}"));
        assert_eq!(event.format, Format::Caliper);
        assert_eq!(
            &event.event_name, name,
            "derived event name for {description}"
        );
        assert_ne!(
            event.entity_key.entity_type(),
            "event",
            "{name}: {}",
            event.entity_key
        );
    }
}

#[test]
fn both_formats_key_an_event_type_to_the_same_entity_type() {
    let corpus = corpus();
    let mut canvas_types: BTreeMap<String, String> = BTreeMap::new();
    for example in examples(&corpus, Format::Canvas) {
        let event = live_events::from_value(example.payload, DeliveryHints::default()).unwrap();
        canvas_types.insert(
            example.event_type,
            event.entity_key.entity_type().to_string(),
        );
    }
    for Example {
        event_type: name,
        description,
        payload,
        ..
    } in examples(&corpus, Format::Caliper)
    {
        let event = live_events::from_value(payload, DeliveryHints::default()).unwrap();
        let expected = &canvas_types[&name];
        assert_eq!(
            event.entity_key.entity_type(),
            expected,
            "{name} ({description}): {}",
            event.entity_key
        );
    }
}

#[test]
fn the_same_event_in_both_formats_gets_the_same_key() {
    // grade_change's first example in each format describes the same grade change (in
    // Instructure's corpus and in the fixtures, which are made that way).
    let corpus = corpus();
    let canvas = corpus.payloads(Format::Canvas, "grade_change");
    let caliper = corpus.payloads(Format::Caliper, "grade_change");
    let a = live_events::from_value(canvas[0].clone(), DeliveryHints::default()).unwrap();
    let b = live_events::from_value(caliper[0].clone(), DeliveryHints::default()).unwrap();
    assert_eq!(a.entity_key, b.entity_key);
    assert_eq!(a.event_time, b.event_time);
    if corpus.is_instructure() {
        assert_eq!(a.entity_key.as_str(), "submission:21070000000011086");
    }
}

#[test]
fn unknown_future_event_types_are_kept() {
    let payload = serde_json::json!({
        "metadata": {"event_name": "rubric_created", "event_time": "2026-01-01T00:00:00.000Z", "root_account_id": "21070000000000001"},
        "body": {"rubric_id": "77", "title": "Essay rubric"}
    });
    let event = live_events::from_value(payload, DeliveryHints::default()).unwrap();
    assert_eq!(event.entity_key.as_str(), "rubric:21070000000000077");
    assert!(!entity::is_documented("rubric_created"));
}

#[test]
fn sqs_attributes_fill_what_the_body_lacks() {
    let payload =
        br#"{"metadata": {"root_account_id": "21070000000000001"}, "body": {"course_id": "5"}}"#;
    let hints = DeliveryHints {
        event_name: Some("course_updated"),
        event_time: Some("2026-01-01T10:00:00Z"),
    };
    let event = live_events::parse_json(payload, hints).unwrap();
    assert_eq!(event.event_name, "course_updated");
    assert_eq!(event.entity_key.as_str(), "course:21070000000000005");
    let err = live_events::parse_json(payload, DeliveryHints::default()).unwrap_err();
    assert_eq!(err.code(), "missing_event_name");
}
