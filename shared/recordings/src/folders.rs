//! The Panopto folder a publishing rule names for a section (`{term}/{course_code} {section}`),
//! found again by its **external id**, never by its name alone: people rename folders. The
//! external id is the path the rule rendered (`coursewire-folder:Fall 2026/BIO-201 Section 001`),
//! so sections whose rule gives them one folder share it and its id.
//!
//! The first time, the path is walked by name (folders created where missing) and the last
//! folder is tagged with the external id; a crash before the tag is repaired by the next look
//! (the folder is found by name again and tagged). The scheduler books into it and the publish
//! workflow files into it.

use coursewire_panopto::{Panopto, PanoptoError};
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::Mutex;

/// The external id coursewire gives the folder at `path`.
pub fn external_id(path: &[String]) -> String {
    format!("coursewire-folder:{}", path.join("/"))
}

pub struct SectionFolders {
    panopto: Arc<dyn Panopto>,
    /// Path → folder id, for this process.
    known: Mutex<HashMap<Vec<String>, String>>,
}

impl SectionFolders {
    pub fn new(panopto: Arc<dyn Panopto>) -> Self {
        Self {
            panopto,
            known: Mutex::new(HashMap::new()),
        }
    }

    /// The folder at `path` (top-level name first, as the rule's folder template renders).
    pub async fn folder(&self, path: &[String]) -> Result<String, PanoptoError> {
        if path.is_empty() {
            return Err(PanoptoError::Config(
                "a folder template rendered an empty path".into(),
            ));
        }
        if let Some(id) = self.known.lock().await.get(path) {
            return Ok(id.clone());
        }
        let external = external_id(path);
        let id = match self.panopto.folder_by_external_id(&external).await? {
            Some(folder) => folder.id,
            None => {
                let id = self.walk(path).await?;
                self.panopto.set_folder_external_id(&id, &external).await?;
                id
            }
        };
        self.known.lock().await.insert(path.to_vec(), id.clone());
        Ok(id)
    }

    /// The folder at `path`, by name, created where missing.
    async fn walk(&self, path: &[String]) -> Result<String, PanoptoError> {
        let mut parent: Option<String> = None;
        for name in path {
            let candidates = match &parent {
                None => self
                    .panopto
                    .search_folders(name)
                    .await?
                    .into_iter()
                    .filter(|f| f.parent_folder.is_none())
                    .collect::<Vec<_>>(),
                Some(parent) => self.panopto.folder_children(parent).await?,
            };
            let id = match candidates.into_iter().find(|f| &f.name == name) {
                Some(folder) => folder.id,
                None => {
                    self.panopto
                        .create_folder(name, parent.as_deref(), Some("Created by coursewire"))
                        .await?
                        .id
                }
            };
            parent = Some(id);
        }
        parent
            .ok_or_else(|| PanoptoError::Config("a folder template rendered an empty path".into()))
    }
}
