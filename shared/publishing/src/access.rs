//! Who may watch a recording, as Panopto grants: the roster the rule names (section or
//! course, read from the Canvas catalog) resolved to Panopto users, or the institution's
//! group. Grants are diffed against the session's own (non-inherited) grants; only grants
//! coursewire made are ever revoked, so a person's grants stay.

use crate::publisher::StepError;
use coursewire_panopto::{Panopto, PermissionCreate, PrincipalType};
use coursewire_teaching::AccessLevel;
use coursewire_teaching::sections::CanvasDirectory;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use tokio::sync::Mutex;

/// How people and groups are named in Panopto.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Viewers {
    /// The identity provider Panopto knows Canvas users by: Canvas user `123` is the Panopto
    /// user key `{provider}\123` (as Panopto's Canvas integration provisions them).
    pub user_provider: String,
    /// The Panopto group (its id) of everyone at the institution, for `institution` access.
    pub institution_group: String,
}

impl Viewers {
    pub fn user_key(&self, canvas_user_id: &str) -> String {
        format!("{}\\{canvas_user_id}", self.user_provider)
    }
}

/// The viewers a rule wants, as Panopto principal ids.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Wanted {
    pub principals: BTreeSet<String>,
    pub principal_type: Option<PrincipalType>,
    /// Canvas users Panopto does not know yet (they have never signed in to Panopto): granted
    /// by a later run once they are.
    pub unknown: usize,
}

/// What one sync did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Synced {
    pub granted: usize,
    pub revoked: usize,
}

pub struct Access {
    panopto: Arc<dyn Panopto>,
    directory: Arc<dyn CanvasDirectory>,
    viewers: Viewers,
    /// User key → Panopto user id, for this process (users are never renamed by key).
    users: Mutex<HashMap<String, String>>,
}

impl Access {
    pub fn new(
        panopto: Arc<dyn Panopto>,
        directory: Arc<dyn CanvasDirectory>,
        viewers: Viewers,
    ) -> Self {
        Self {
            panopto,
            directory,
            viewers,
            users: Mutex::new(HashMap::new()),
        }
    }

    /// The principals `access` grants for a lecture of `section_id` in `course_id`.
    pub async fn wanted(
        &self,
        course_id: &str,
        section_id: &str,
        access: AccessLevel,
    ) -> Result<Wanted, StepError> {
        let users = match access {
            AccessLevel::Institution if self.viewers.institution_group.is_empty() => {
                return Err(StepError::Permanent(
                    "the rule shares with the institution, but no institution group is \
                     configured (PanoptoInstitutionGroupId)"
                        .into(),
                ));
            }
            AccessLevel::Institution => {
                return Ok(Wanted {
                    principals: BTreeSet::from([self.viewers.institution_group.clone()]),
                    principal_type: Some(PrincipalType::Group),
                    unknown: 0,
                });
            }
            AccessLevel::SectionRoster => {
                self.directory.viewers(course_id, Some(section_id)).await?
            }
            AccessLevel::CourseRoster => self.directory.viewers(course_id, None).await?,
        };
        let mut wanted = Wanted {
            principal_type: Some(PrincipalType::User),
            ..Wanted::default()
        };
        for user in users {
            match self.user_id(&self.viewers.user_key(&user)).await? {
                Some(id) => {
                    wanted.principals.insert(id);
                }
                None => wanted.unknown += 1,
            }
        }
        Ok(wanted)
    }

    async fn user_id(&self, key: &str) -> Result<Option<String>, StepError> {
        if let Some(id) = self.users.lock().await.get(key) {
            return Ok(Some(id.clone()));
        }
        let Some(user) = self.panopto.user_by_key(key).await? else {
            return Ok(None);
        };
        self.users
            .lock()
            .await
            .insert(key.to_string(), user.id.clone());
        Ok(Some(user.id))
    }

    /// Grants what `wanted` lacks on the session and revokes what coursewire granted before
    /// (`ours`) and no longer should.
    pub async fn sync(
        &self,
        session_id: &str,
        ours: Option<&BTreeSet<String>>,
        wanted: &Wanted,
    ) -> Result<Synced, StepError> {
        let present: BTreeSet<String> = self
            .panopto
            .session_permissions(session_id)
            .await?
            .into_iter()
            .filter(|p| !p.is_inherited)
            .filter_map(|p| p.principal.and_then(|principal| principal.id))
            .collect();
        let kind_of = |principal: &str| {
            if principal == self.viewers.institution_group {
                PrincipalType::Group
            } else {
                PrincipalType::User
            }
        };
        let mut synced = Synced::default();
        for principal in wanted.principals.difference(&present) {
            self.panopto
                .grant_session_permission(
                    session_id,
                    &PermissionCreate::viewer(
                        principal.clone(),
                        wanted.principal_type.unwrap_or_else(|| kind_of(principal)),
                    ),
                )
                .await?;
            synced.granted += 1;
        }
        if let Some(ours) = ours {
            for principal in ours
                .difference(&wanted.principals)
                .filter(|p| present.contains(*p))
            {
                self.panopto
                    .revoke_session_permission(
                        session_id,
                        &PermissionCreate::viewer(principal.clone(), kind_of(principal)),
                    )
                    .await?;
                synced.revoked += 1;
            }
        }
        Ok(synced)
    }
}
