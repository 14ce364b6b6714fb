//! Bulk import of the registrar's files (`rooms.csv`, `meetings.csv`, `rules.json`).
//!
//! [`Importer::prepare`] reads and checks everything first and answers either every error
//! (each naming file, row and field) or the [`Plan`] of what would change; nothing is written
//! until the whole set is valid. [`Importer::apply`] writes the plan. Writes are idempotent
//! and planned against what the catalog holds, so running the same import again changes
//! nothing, and an import interrupted half-way is completed by running it again.

mod csv_table;
mod errors;
mod files;
mod plan;

pub use errors::ImportError;
pub use files::{ImportFile, MEETING_COLUMNS, ROOM_COLUMNS, read_meetings, read_rooms, read_rules};
pub use plan::{Action, Change, Plan, Tally, plan};

use crate::lectures::expand;
use crate::sections::CanvasDirectory;
use crate::store::{Entry, Kind, TeachingStore};
use coursewire_runtime::service::ServiceError;
use futures::{StreamExt, TryStreamExt, stream};
use std::collections::BTreeMap;

/// The files of one import; any may be left out.
#[derive(Debug, Clone, Default)]
pub struct ImportFiles {
    pub rooms: Option<ImportFile>,
    pub meetings: Option<ImportFile>,
    pub rules: Option<ImportFile>,
}

#[derive(Debug, thiserror::Error)]
pub enum ImportFailure {
    /// The files have errors: nothing was written.
    #[error("{} error(s) in the import files; nothing was written: {}", .0.len(), list(.0))]
    Invalid(Vec<ImportError>),
    #[error("the catalog could not be read or written: {0}")]
    Service(#[from] ServiceError),
}

fn list(errors: &[ImportError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Writes in flight at once while applying (DynamoDB UpdateItem calls).
const CONCURRENT_WRITES: usize = 16;

pub struct Importer<'a> {
    store: &'a dyn TeachingStore,
    directory: &'a dyn CanvasDirectory,
}

impl<'a> Importer<'a> {
    pub fn new(store: &'a dyn TeachingStore, directory: &'a dyn CanvasDirectory) -> Self {
        Self { store, directory }
    }

    /// Reads and checks the files, and plans the import against the catalog.
    pub async fn prepare(&self, files: &ImportFiles) -> Result<Plan, ImportFailure> {
        let mut errors = Vec::new();
        let catalog_rooms = self.store.rooms().await?;
        let mut rooms = catalog_rooms.clone();
        let mut desired = Vec::new();
        let mut current = Vec::new();
        if let Some(file) = &files.rooms {
            current.extend(catalog_rooms.values().cloned().map(Entry::Room));
            let (list, file_errors) = read_rooms(file);
            errors.extend(file_errors);
            for room in list {
                rooms.insert(room.id.clone(), room.clone());
                desired.push(Entry::Room(room));
            }
        }
        if let Some(file) = &files.rules {
            current.extend(self.store.list(Kind::Rule).await?);
            match read_rules(file) {
                Ok(rules) => desired.extend(rules.into_iter().map(Entry::Rule)),
                Err(e) => errors.extend(e),
            }
        }
        let mut patterns = Vec::new();
        if let Some(file) = &files.meetings {
            match read_meetings(file, &rooms) {
                Ok(meetings) => {
                    let ids: Vec<String> = meetings
                        .patterns
                        .iter()
                        .map(|p| p.pattern.section_id.clone())
                        .collect();
                    let known = self.directory.sections(&ids).await?;
                    for mut row in meetings.patterns {
                        match known.get(&row.pattern.section_id) {
                            Some(section) => {
                                row.pattern.course_id = section.course_id.clone();
                                patterns.push(row.pattern);
                            }
                            None => errors.push(ImportError::at(
                                &file.name,
                                row.place,
                                "section_id",
                                format!(
                                    "section {} is not in the Canvas catalog (coursewire has not \
                                     seen it on the change bus: check the id, or run the reconciler)",
                                    row.pattern.section_id
                                ),
                            )),
                        }
                    }
                }
                Err(e) => errors.extend(e),
            }
        }
        if !errors.is_empty() {
            return Err(ImportFailure::Invalid(errors));
        }
        if files.meetings.is_some() {
            let imported: BTreeMap<&str, ()> = patterns
                .iter()
                .map(|p| (p.section_id.as_str(), ()))
                .collect();
            current.extend(self.store.list(Kind::Meeting).await?.into_iter().filter(
                |e| matches!(e, Entry::Meeting(p) if imported.contains_key(p.section_id.as_str())),
            ));
            let sections: Vec<&str> = imported.keys().copied().collect();
            let rows: Vec<_> = stream::iter(sections)
                .map(|section| self.store.lectures_of(section))
                .buffer_unordered(CONCURRENT_WRITES)
                .try_collect()
                .await?;
            current.extend(
                rows.into_iter()
                    .flatten()
                    .map(|row| Entry::Lecture(row.lecture)),
            );
            for pattern in patterns {
                let lectures = expand(&pattern, &rooms).map_err(|e| {
                    let file = files
                        .meetings
                        .as_ref()
                        .map_or("meetings.csv", |f| f.name.as_str());
                    ImportFailure::Invalid(vec![ImportError::file(file, e.to_string())])
                })?;
                desired.extend(lectures.into_iter().map(Entry::Lecture));
                desired.push(Entry::Meeting(pattern));
            }
        }
        Ok(plan(desired, current))
    }

    /// Writes the plan's changes, kind by kind (rooms, rules, meetings, lectures), calling
    /// `progress(done, total)` after each write.
    pub async fn apply(
        &self,
        plan: &Plan,
        progress: &(dyn Fn(usize, usize) + Sync),
    ) -> Result<(), ServiceError> {
        let total = plan.changes.len();
        let done = std::sync::atomic::AtomicUsize::new(0);
        for kind in [Kind::Room, Kind::Rule, Kind::Meeting, Kind::Lecture] {
            stream::iter(plan.changes.iter().filter(|c| c.entry.kind() == kind))
                .map(|change| async {
                    self.store.put(&change.entry).await?;
                    let n = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                    progress(n, total);
                    Ok::<_, ServiceError>(())
                })
                .buffer_unordered(CONCURRENT_WRITES)
                .try_collect::<Vec<()>>()
                .await?;
        }
        Ok(())
    }
}
