//! Every example payload Instructure publishes for Canvas Live Events (both formats) parses,
//! gets the right event name, and maps to a documented entity key.
//!
//! The corpus lives beside the repository (`../shared/canvas-live-events`), or wherever
//! `COURSEWIRE_LIVE_EVENTS_DIR` points.

use coursewire::live_events::{self, DeliveryHints, Format, entity};
use serde_json::Value;
use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;

fn corpus_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("COURSEWIRE_LIVE_EVENTS_DIR") {
        return PathBuf::from(dir);
    }
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let dir = manifest.join("../../shared/canvas-live-events");
    assert!(
        dir.is_dir(),
        "example corpus not found at {}; set COURSEWIRE_LIVE_EVENTS_DIR",
        dir.display()
    );
    dir
}

/// (event type from the file name, example description, payload)
fn examples(format: &str) -> Vec<(String, String, Value)> {
    let dir = corpus_dir().join(format).join("event-types");
    let mut out = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("corpus readable")
        .flatten()
        .map(|e| e.path())
        .collect();
    files.sort();
    for path in files {
        let name = path.file_stem().unwrap().to_string_lossy().to_string();
        let doc: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        for example in doc["examples"].as_array().unwrap() {
            let description = example
                .get("description")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            out.push((name.clone(), description, example["payload"].clone()));
        }
    }
    out
}

/// The published `grade_override` example is labelled `grade_change` in its metadata.
const KNOWN_MISLABELLED: [&str; 1] = ["grade_override"];

#[test]
fn every_canvas_example_parses_with_a_documented_key() {
    let examples = examples("canvas");
    assert!(
        examples.len() >= 82 + 39,
        "expected the whole corpus, found {}",
        examples.len()
    );
    let mut types = HashSet::new();
    for (name, description, payload) in &examples {
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
    assert_eq!(types.len(), 82);
}

#[test]
fn every_caliper_example_parses_and_names_its_canvas_event() {
    let examples = examples("caliper");
    assert!(
        examples.len() >= 32 + 39,
        "expected the whole corpus, found {}",
        examples.len()
    );
    for (name, description, payload) in &examples {
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
    let mut canvas_types: BTreeMap<String, String> = BTreeMap::new();
    for (name, _, payload) in examples("canvas") {
        let event = live_events::from_value(payload, DeliveryHints::default()).unwrap();
        canvas_types.insert(name, event.entity_key.entity_type().to_string());
    }
    for (name, description, payload) in examples("caliper") {
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
    // grade_change's two published examples describe the same grade change.
    let canvas = examples("canvas")
        .into_iter()
        .find(|(n, _, _)| n == "grade_change")
        .unwrap()
        .2;
    let caliper = examples("caliper")
        .into_iter()
        .find(|(n, _, _)| n == "grade_change")
        .unwrap()
        .2;
    let a = live_events::from_value(canvas, DeliveryHints::default()).unwrap();
    let b = live_events::from_value(caliper, DeliveryHints::default()).unwrap();
    assert_eq!(a.entity_key, b.entity_key);
    assert_eq!(a.entity_key.as_str(), "submission:21070000000011086");
    assert_eq!(a.event_time, b.event_time);
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
