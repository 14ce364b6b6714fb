//! What an import would change: the entries the files describe compared with what the catalog
//! holds. Pure, so the dry run and the real run agree by construction.

use crate::lectures::LectureStatus;
use crate::store::{Entry, Kind};
use serde_json::Value;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Action {
    Create,
    Update,
    /// A lecture the files no longer produce (a holiday added, a pattern changed): kept,
    /// marked cancelled, so its booking is cancelled too.
    Cancel,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Update => "update",
            Action::Cancel => "cancel",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub action: Action,
    pub entry: Entry,
    /// For updates: the fields whose values differ.
    pub fields: Vec<String>,
}

/// Per kind, how many entries each action touches and how many were already right.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    pub create: usize,
    pub update: usize,
    pub cancel: usize,
    pub unchanged: usize,
    /// In the catalog but not in the files: left as they are (an import never deletes rooms
    /// or rules another file or person made).
    pub not_in_files: usize,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    /// In the order they are written: rooms, rules, meetings, lectures.
    pub changes: Vec<Change>,
    pub tally: BTreeMap<Kind, Tally>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// The sections whose meetings or lectures change (their bookings follow).
    pub fn sections(&self) -> Vec<String> {
        let sections: std::collections::BTreeSet<String> = self
            .changes
            .iter()
            .filter_map(|c| match &c.entry {
                Entry::Meeting(p) => Some(p.section_id.clone()),
                Entry::Lecture(l) => Some(l.section_id.clone()),
                _ => None,
            })
            .collect();
        sections.into_iter().collect()
    }
}

/// `desired`: every entry the files describe. `current`: the catalog's entries of the same
/// kinds (for lectures: those of the imported sections only).
pub fn plan(desired: Vec<Entry>, current: Vec<Entry>) -> Plan {
    let mut by_id: BTreeMap<(Kind, String), Entry> = current
        .into_iter()
        .map(|entry| ((entry.kind(), entry.id()), entry))
        .collect();
    let mut plan = Plan::default();
    for kind in [Kind::Room, Kind::Rule, Kind::Meeting, Kind::Lecture] {
        plan.tally.insert(kind, Tally::default());
    }
    let mut desired = desired;
    desired.sort_by_key(|e| (e.kind(), e.id()));
    for entry in desired {
        let tally = plan.tally.entry(entry.kind()).or_default();
        match by_id.remove(&(entry.kind(), entry.id())) {
            None => {
                tally.create += 1;
                plan.changes.push(Change {
                    action: Action::Create,
                    entry,
                    fields: Vec::new(),
                });
            }
            Some(existing) => {
                let fields = differing_fields(&existing.data(), &entry.data());
                if fields.is_empty() {
                    tally.unchanged += 1;
                } else {
                    tally.update += 1;
                    plan.changes.push(Change {
                        action: Action::Update,
                        entry,
                        fields,
                    });
                }
            }
        }
    }
    for ((kind, _), entry) in by_id {
        let tally = plan.tally.entry(kind).or_default();
        match entry {
            Entry::Lecture(mut lecture) if lecture.status == LectureStatus::Scheduled => {
                lecture.status = LectureStatus::Cancelled;
                tally.cancel += 1;
                plan.changes.push(Change {
                    action: Action::Cancel,
                    entry: Entry::Lecture(lecture),
                    fields: vec!["status".into()],
                });
            }
            Entry::Lecture(_) => tally.unchanged += 1,
            _ => tally.not_in_files += 1,
        }
    }
    plan.changes.sort_by_key(|c| c.entry.kind());
    plan
}

fn differing_fields(old: &Value, new: &Value) -> Vec<String> {
    match (old, new) {
        (Value::Object(old), Value::Object(new)) => {
            let mut fields: Vec<String> = new
                .iter()
                .filter(|(k, v)| old.get(*k) != Some(v))
                .map(|(k, _)| k.clone())
                .collect();
            fields.extend(old.keys().filter(|k| !new.contains_key(*k)).cloned());
            fields
        }
        _ if old == new => Vec::new(),
        _ => vec!["(whole entry)".into()],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rooms::Room;

    fn room(id: &str, capacity: u32) -> Entry {
        Entry::Room(Room {
            id: id.into(),
            building: "Science".into(),
            name: id.into(),
            capacity,
            time_zone: chrono_tz::UTC,
            recorder_id: None,
        })
    }

    #[test]
    fn creates_updates_and_leaves_alone() {
        let plan = plan(
            vec![room("A", 10), room("B", 20), room("C", 30)],
            vec![room("B", 20), room("C", 35), room("D", 5)],
        );
        let actions: Vec<_> = plan
            .changes
            .iter()
            .map(|c| (c.action, c.entry.id(), c.fields.clone()))
            .collect();
        assert_eq!(
            actions,
            [
                (Action::Create, "A".to_string(), vec![]),
                (
                    Action::Update,
                    "C".to_string(),
                    vec!["capacity".to_string()]
                ),
            ]
        );
        let tally = &plan.tally[&Kind::Room];
        assert_eq!((tally.unchanged, tally.not_in_files), (1, 1));
    }

    #[test]
    fn the_same_files_twice_change_nothing() {
        let entries = vec![room("A", 10), room("B", 20)];
        assert!(plan(entries.clone(), entries).is_empty());
    }
}
