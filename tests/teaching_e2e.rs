//! The teaching catalog's import end to end on the local stack (DynamoDB in moto, the tables
//! made from template.yaml): the example files in `events/teaching/` against a Canvas catalog
//! that knows their sections; a bad set of files (every error reported, nothing written); the
//! same import twice (nothing changes); an import interrupted half-way (completed by running
//! it again); a holiday added later (its lectures cancelled, later ones renumbered); lectures
//! read back by end-time window across the DST change.

use anyhow::{Context, Result, ensure};
use chrono::{DateTime, Utc};
use coursewire_live_events::catalog::DynamoCatalog;
use coursewire_local::stack::StackOptions;
use coursewire_teaching::import::{Action, ImportFailure, ImportFile, ImportFiles, Importer, Plan};
use coursewire_teaching::sections::{CanvasDirectory, CatalogDirectory};
use coursewire_teaching::{DynamoTeachingStore, Kind, LectureStatus, TeachingStore};
use coursewire_tests::{Harness, repo_root};
use serde_json::json;

fn example(name: &str) -> Result<ImportFile> {
    let path = repo_root()?.join("events/teaching").join(name);
    Ok(ImportFile {
        name: name.to_string(),
        text: std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?,
    })
}

fn examples() -> Result<ImportFiles> {
    Ok(ImportFiles {
        rooms: Some(example("rooms.csv")?),
        meetings: Some(example("meetings.csv")?),
        rules: Some(example("rules.json")?),
    })
}

/// The Canvas catalog as the change bus leaves it: the example files' sections and courses.
async fn seed_canvas_catalog(h: &Harness) -> Result<()> {
    let rows = [
        (
            "course:21070000000000042",
            json!({"name": "Cell Biology", "course_code": "BIO-201"}),
            None,
        ),
        (
            "course:21070000000000077",
            json!({"name": "Organic Chemistry", "course_code": "CHEM-310"}),
            None,
        ),
        (
            "section:21070000000000101",
            json!({"name": "Section 001", "course_id": "21070000000000042"}),
            Some("course:21070000000000042"),
        ),
        (
            "section:21070000000000102",
            json!({"name": "Section 002", "course_id": "21070000000000042"}),
            Some("course:21070000000000042"),
        ),
        (
            "section:21070000000000201",
            json!({"name": "Section 001", "course_id": "21070000000000077"}),
            Some("course:21070000000000077"),
        ),
    ];
    let enrollments = [
        (
            "enrollment:21070000000009001",
            json!({"type": "TeacherEnrollment", "section_id": "21070000000000101", "course_id": "21070000000000042", "user_id": "21070000000005001", "workflow_state": "active"}),
        ),
        (
            "enrollment:21070000000009002",
            json!({"type": "StudentEnrollment", "section_id": "21070000000000101", "course_id": "21070000000000042", "user_id": "21070000000005002", "workflow_state": "active"}),
        ),
        (
            "enrollment:21070000000009003",
            json!({"type": "TeacherEnrollment", "section_id": "21070000000000102", "course_id": "21070000000000042", "user_id": "21070000000005003", "workflow_state": "active"}),
        ),
    ];
    let rows = rows.into_iter().chain(
        enrollments
            .into_iter()
            .map(|(key, state)| (key, state, Some("course:21070000000000042"))),
    );
    h.put_catalog_rows(
        rows.map(|(key, state, parent)| (key.to_string(), state, parent.map(str::to_string)))
            .collect(),
    )
    .await
}

fn tally(plan: &Plan, kind: Kind) -> (usize, usize, usize, usize) {
    let t = plan.tally.get(&kind).cloned().unwrap_or_default();
    (t.create, t.update, t.cancel, t.unchanged)
}

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).map_or(DateTime::<Utc>::MIN_UTC, |t| t.with_timezone(&Utc))
}

#[tokio::test]
async fn imports_are_checked_whole_idempotent_and_resumable() -> Result<()> {
    let h = Harness::start("teaching import", StackOptions::default()).await?;
    let teaching_table = h
        .stack
        .table_name("TeachingTable")
        .context("no TeachingTable")?;
    let catalog_table = h
        .stack
        .table_name("CatalogTable")
        .context("no CatalogTable")?;
    seed_canvas_catalog(&h).await?;
    let store = DynamoTeachingStore::new(h.ddb.clone(), teaching_table);
    let directory = CatalogDirectory::new(DynamoCatalog::new(h.ddb.clone(), catalog_table));
    let importer = Importer::new(&store, &directory);

    // A bad set: errors in every file, and a section Canvas does not have. Nothing is written.
    let mut bad = examples()?;
    if let Some(rooms) = bad.rooms.as_mut() {
        rooms
            .text
            .push_str("LAB-1,Labs,Lab 1,many,America/New_York,\n");
    }
    if let Some(meetings) = bad.meetings.as_mut() {
        meetings.text.push_str("21070000000000999,BIO,weekly,SCI-101,TR,09:00,10:15,Fall 2026,2026-09-01,2026-12-10,,\n");
        meetings
            .text
            .push_str("21070000000000102,,extra,,,16:00,15:00,,,,,2026-12-01\n");
    }
    if let Some(rules) = bad.rules.as_mut() {
        rules.text = rules
            .text
            .replace("Lecture {n} ({date})\"", "Lecture {lecture} ({date})\"");
    }
    let errors = match importer.prepare(&bad).await {
        Err(ImportFailure::Invalid(errors)) => errors,
        other => anyhow::bail!("a bad import was not refused: {other:?}"),
    };
    let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
    eprintln!("bad import: {text:#?}");
    let expected = [
        "rooms.csv, row 5, field capacity",
        "rules.json, rule 1, field session_template",
        "rules.json, rule 3, field session_template",
        "meetings.csv, row 10, field end_time",
    ];
    for prefix in expected {
        ensure!(
            text.iter().any(|t| t.starts_with(prefix)),
            "no error {prefix:?} in {text:#?}"
        );
    }
    ensure!(text.len() == expected.len(), "unexpected errors: {text:#?}");
    ensure!(
        store.list(Kind::Room).await?.is_empty(),
        "a refused import wrote rooms"
    );
    // With the other files right, the unknown section is reported on its own row.
    let mut unknown = examples()?;
    if let Some(meetings) = unknown.meetings.as_mut() {
        meetings.text.push_str("21070000000000999,BIO,weekly,SCI-101,TR,09:00,10:15,Fall 2026,2026-09-01,2026-12-10,,\n");
    }
    match importer.prepare(&unknown).await {
        Err(ImportFailure::Invalid(errors)) => {
            ensure!(errors.len() == 1, "{errors:?}");
            let text = errors[0].to_string();
            ensure!(
                text.starts_with("meetings.csv, row 9, field section_id: section 21070000000000999 is not in the Canvas catalog"),
                "{text}"
            );
        }
        other => anyhow::bail!("an unknown section was not refused: {other:?}"),
    }

    // A good import, interrupted after a third of its writes (a crash), then run again.
    let files = examples()?;
    let plan = importer.prepare(&files).await?;
    ensure!(tally(&plan, Kind::Room) == (3, 0, 0, 0), "{:?}", plan.tally);
    ensure!(tally(&plan, Kind::Rule) == (3, 0, 0, 0), "{:?}", plan.tally);
    ensure!(
        tally(&plan, Kind::Meeting) == (3, 0, 0, 0),
        "{:?}",
        plan.tally
    );
    // 101: TR Sep 1–Dec 10 = 30 days, minus Oct 15 and Nov 26, plus one extra = 29.
    // 102: MWF Sep 2–Dec 9 = 43, minus Nov 27 = 42 (Nov 26 is a Thursday).
    // 201: MW Sep 2–Dec 9 = 29.
    let lectures = tally(&plan, Kind::Lecture).0;
    ensure!(lectures == 29 + 42 + 29, "{lectures} lectures planned");
    let total = plan.changes.len();
    let mut partial = plan.clone();
    partial.changes.truncate(total / 3);
    importer.apply(&partial, &|_, _| {}).await?;
    let rest = importer.prepare(&files).await?;
    ensure!(
        rest.changes.len() == total - total / 3,
        "after the crash {} of {total} remain",
        rest.changes.len()
    );
    ensure!(
        rest.changes.iter().all(|c| c.action == Action::Create),
        "the rest are creates"
    );
    importer.apply(&rest, &|_, _| {}).await?;
    let again = importer.prepare(&files).await?;
    ensure!(
        again.is_empty(),
        "the same import twice changed {:?}",
        again.changes.first()
    );
    ensure!(
        tally(&again, Kind::Lecture).3 == lectures,
        "{:?}",
        again.tally
    );

    // The lectures as monitors read them: by end-time window, across the DST change.
    // Section 101 meets TR 09:00–10:15 New York time: 13:00 UTC on EDT days, 14:00 after Nov 1.
    let before = store
        .lectures_ending(at("2026-10-29T14:00:00Z"), at("2026-10-29T15:00:00Z"))
        .await?;
    let after = store
        .lectures_ending(at("2026-11-03T15:00:00Z"), at("2026-11-03T16:00:00Z"))
        .await?;
    let ends = |rows: &[coursewire_teaching::LectureRow]| {
        rows.iter()
            .map(|r| (r.lecture.section_id.clone(), r.lecture.end.to_rfc3339()))
            .collect::<Vec<_>>()
    };
    ensure!(
        ends(&before)
            == [(
                "21070000000000101".to_string(),
                "2026-10-29T14:15:00+00:00".to_string()
            )],
        "{:?}",
        ends(&before)
    );
    ensure!(
        ends(&after)
            == [(
                "21070000000000101".to_string(),
                "2026-11-03T15:15:00+00:00".to_string()
            )],
        "{:?}",
        ends(&after)
    );
    let bio = store.lectures_of("21070000000000101").await?;
    let extra = bio
        .iter()
        .find(|r| r.lecture.room_id == "SCI-204")
        .context("no extra meeting")?;
    ensure!(
        extra.lecture.recorder_id.as_deref() == Some("rr-sci-204"),
        "{extra:?}"
    );
    ensure!(
        bio.iter()
            .all(|r| r.lecture.course_id == "21070000000000042"),
        "course read from Canvas"
    );
    let chem = store.lectures_of("21070000000000201").await?;
    ensure!(
        chem.iter().all(|r| r.lecture.recorder_id.is_none()),
        "HUM-012 has no recorder"
    );

    // Who teaches a section is read from the Canvas catalog (teacher enrollments).
    let teachers = directory
        .instructors("21070000000000042", "21070000000000101")
        .await?;
    ensure!(teachers == ["21070000000005001"], "{teachers:?}");

    // A holiday added later: that day's lectures are cancelled (kept), later ones renumbered.
    let mut holiday = examples()?;
    if let Some(meetings) = holiday.meetings.as_mut() {
        meetings
            .text
            .push_str(",,holiday,,,,,Fall 2026,,,,2026-10-13\n");
    }
    let change = importer.prepare(&holiday).await?;
    let (_, updated, cancelled, _) = tally(&change, Kind::Lecture);
    ensure!(
        cancelled == 1,
        "Tue Oct 13 cancels section 101's lecture: {:?}",
        change.tally
    );
    ensure!(updated > 0, "later lectures are renumbered");
    ensure!(
        change
            .changes
            .iter()
            .filter(|c| c.action == Action::Update)
            .all(|c| match c.entry.kind() {
                Kind::Lecture => c.fields == ["number"],
                _ => c.fields == ["cancelled"],
            }),
        "only lecture numbers and the pattern's cancelled days change"
    );
    importer.apply(&change, &|_, _| {}).await?;
    let bio = store.lectures_of("21070000000000101").await?;
    let oct13 = bio
        .iter()
        .find(|r| r.lecture.slot() == "2026-10-13#1")
        .context("Oct 13 kept")?;
    ensure!(
        oct13.lecture.status == LectureStatus::Cancelled,
        "{oct13:?}"
    );
    ensure!(
        importer.prepare(&holiday).await?.is_empty(),
        "re-running changes nothing"
    );

    h.stop().await;
    Ok(())
}
