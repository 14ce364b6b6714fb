//! One recording's publish workflow as data: where it stands, what each step left behind, and
//! which step comes next. Pure: the steps' side effects live in [`crate::steps`].
//!
//! The workflow is level-triggered: whatever event woke it, it looks at what is done and what
//! the recording now allows, and takes the next step. A step that is recorded as done is not
//! taken again (unless a publish replay forces it), so a duplicate or replayed event changes
//! nothing.

use crate::recording::RecordingRow;
use coursewire_teaching::PostWhen;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;

/// Attempts at a failing step before the recording needs a person (below the queue's
/// `maxReceiveCount` of 5, so an exhausted recording is marked, not dead-lettered).
pub const MAX_ATTEMPTS: u32 = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Steps remain.
    InProgress,
    /// The session matched no lecture, or more than one: held, never filed by guess.
    Unmatched,
    /// The lecture's rule publishes nothing (disabled, or no rule).
    NotPublished,
    /// Every step is done.
    Published,
    /// A step ran out of attempts; an incident is open.
    NeedsAttention,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InProgress => "in_progress",
            Self::Unmatched => "unmatched",
            Self::NotPublished => "not_published",
            Self::Published => "published",
            Self::NeedsAttention => "needs_attention",
        }
    }
}

/// The steps, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    Match,
    File,
    Caption,
    Access,
    Post,
    Audit,
}

impl Step {
    pub const ALL: [Step; 6] = [
        Self::Match,
        Self::File,
        Self::Caption,
        Self::Access,
        Self::Post,
        Self::Audit,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Match => "match",
            Self::File => "file",
            Self::Caption => "caption",
            Self::Access => "access",
            Self::Post => "post",
            Self::Audit => "audit",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The lecture a session was matched to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Matched {
    pub section_id: String,
    pub slot: String,
    pub course_id: String,
    pub department: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Filed {
    pub folder_id: String,
    pub name: String,
    /// When coursewire filed it (RFC 3339): changes seen after this are a person's.
    #[serde(default)]
    pub at: String,
    /// The viewer link Panopto gave then (what the post step links to).
    #[serde(default)]
    pub viewer_url: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Posted {
    pub course_id: String,
    pub module_id: String,
    pub item_id: String,
    pub url: String,
}

/// One recording's workflow row (stored with a version: every write is conditional on it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkflowRow {
    pub session_id: String,
    /// 0 = never stored.
    pub version: u64,
    pub status: Status,
    #[serde(default)]
    pub lecture: Option<Matched>,
    /// Why the session is unmatched or not published.
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub filed: Option<Filed>,
    /// The caption provider set on the folder.
    #[serde(default)]
    pub captions_requested: Option<String>,
    /// The viewers coursewire granted (only these are ever revoked: a person's grants stay).
    #[serde(default)]
    pub access: Option<BTreeSet<String>>,
    /// The roster changed since `access` was granted (an enrollment on the bus, a forced
    /// replay): the access step is taken again, diffing against `access`.
    #[serde(default)]
    pub access_stale: bool,
    #[serde(default)]
    pub posted: Option<Posted>,
    /// Times the post was repeated because a person deleted the module (at most once).
    #[serde(default)]
    pub reposts: u32,
    #[serde(default)]
    pub audited: bool,
    /// Failed attempts at the current step.
    #[serde(default)]
    pub attempts: u32,
    #[serde(default)]
    pub last_error: Option<String>,
    /// A name or folder a person set after filing that coursewire kept (the audit says so once).
    #[serde(default)]
    pub kept_change: Option<String>,
    pub updated_at: String,
}

impl WorkflowRow {
    pub fn new(session_id: &str) -> Self {
        Self {
            session_id: session_id.to_string(),
            version: 0,
            status: Status::InProgress,
            lecture: None,
            reason: None,
            filed: None,
            captions_requested: None,
            access: None,
            access_stale: false,
            posted: None,
            reposts: 0,
            audited: false,
            attempts: 0,
            last_error: None,
            kept_change: None,
            updated_at: String::new(),
        }
    }

    /// Whether `step` is recorded as done.
    pub fn done(&self, step: Step) -> bool {
        match step {
            Step::Match => self.lecture.is_some(),
            Step::File => self.filed.is_some(),
            Step::Caption => self.captions_requested.is_some(),
            Step::Access => self.access.is_some() && !self.access_stale,
            Step::Post => self.posted.is_some(),
            Step::Audit => self.audited,
        }
    }

    /// Forgets that `step` (and so every step after it that depends on it) was done, so it is
    /// taken again: a forced replay. What it made stays known where redoing needs it (the
    /// grants to revoke, the module to look in).
    pub fn forget(&mut self, step: Step) {
        self.attempts = 0;
        self.last_error = None;
        if step == Step::Access {
            // Access is re-derived on its own: the rest stays done and the status stays.
            self.access_stale = true;
            return;
        }
        match step {
            Step::Match => {
                self.lecture = None;
                self.reason = None;
            }
            Step::File => self.filed = None,
            Step::Caption => self.captions_requested = None,
            Step::Access | Step::Post => {}
            Step::Audit => {}
        }
        self.audited = false;
        if matches!(
            self.status,
            Status::Published | Status::NeedsAttention | Status::Unmatched | Status::NotPublished
        ) {
            self.status = Status::InProgress;
        }
    }
}

/// What the workflow does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    Take(Step),
    /// Nothing can happen until the recording moves on (the reason says what it waits for).
    Wait(&'static str),
    /// Nothing left (published, or held: unmatched, not published, needs attention).
    Stop,
}

/// The next step for a workflow and what its recording allows. `post` is the rule's
/// choice once the lecture is known.
pub fn next(row: &WorkflowRow, recording: &RecordingRow, post: Option<PostWhen>) -> Next {
    match row.status {
        Status::NeedsAttention | Status::NotPublished => return Next::Stop,
        // A later event (the catalog may have changed) tries the match again.
        Status::Unmatched => return Next::Take(Step::Match),
        Status::InProgress | Status::Published => {}
    }
    for step in [Step::Match, Step::File, Step::Caption, Step::Access] {
        if !row.done(step) {
            return Next::Take(step);
        }
    }
    if !row.done(Step::Post) {
        if !recording.complete {
            return Next::Wait("the recording is not complete yet");
        }
        if post == Some(PostWhen::AfterCaptions) && !recording.captions {
            return Next::Wait("the rule posts only once captions are available");
        }
        return Next::Take(Step::Post);
    }
    if !row.audited {
        return Next::Take(Step::Audit);
    }
    Next::Stop
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matched() -> Matched {
        Matched {
            section_id: "901".into(),
            slot: "2026-10-27#1".into(),
            course_id: "42".into(),
            department: "BIO".into(),
        }
    }

    #[test]
    fn steps_follow_in_order_and_post_waits_for_the_recording_and_the_rule() {
        let mut row = WorkflowRow::new("s-1");
        let mut rec = RecordingRow::default();
        assert_eq!(next(&row, &rec, None), Next::Take(Step::Match));
        row.lecture = Some(matched());
        assert_eq!(next(&row, &rec, None), Next::Take(Step::File));
        row.filed = Some(Filed {
            folder_id: "f".into(),
            name: "n".into(),
            at: "2026-10-27T14:00:00Z".into(),
            viewer_url: None,
        });
        row.captions_requested = Some("Panopto".into());
        row.access = Some(BTreeSet::new());
        assert!(matches!(
            next(&row, &rec, Some(PostWhen::BeforeCaptions)),
            Next::Wait(_)
        ));
        rec.complete = true;
        assert!(matches!(
            next(&row, &rec, Some(PostWhen::AfterCaptions)),
            Next::Wait(_)
        ));
        assert_eq!(
            next(&row, &rec, Some(PostWhen::BeforeCaptions)),
            Next::Take(Step::Post)
        );
        rec.captions = true;
        assert_eq!(
            next(&row, &rec, Some(PostWhen::AfterCaptions)),
            Next::Take(Step::Post)
        );
        row.posted = Some(Posted {
            course_id: "42".into(),
            module_id: "m".into(),
            item_id: "i".into(),
            url: "u".into(),
        });
        assert_eq!(next(&row, &rec, None), Next::Take(Step::Audit));
        row.audited = true;
        row.status = Status::Published;
        assert_eq!(next(&row, &rec, None), Next::Stop);
    }

    #[test]
    fn held_rows_stop_except_unmatched_which_tries_again_and_forget_reopens() {
        let rec = RecordingRow::default();
        let mut row = WorkflowRow::new("s-1");
        row.status = Status::NeedsAttention;
        assert_eq!(next(&row, &rec, None), Next::Stop);
        row.status = Status::Unmatched;
        assert_eq!(next(&row, &rec, None), Next::Take(Step::Match));
        row.status = Status::Published;
        row.lecture = Some(matched());
        row.audited = true;
        row.attempts = 3;
        row.forget(Step::File);
        assert_eq!(row.status, Status::InProgress);
        assert!(!row.audited);
        assert_eq!(row.attempts, 0);
        assert_eq!(next(&row, &rec, None), Next::Take(Step::File));
        for step in Step::ALL {
            assert_eq!(Step::parse(step.as_str()), Some(step));
        }
        // A roster change re-takes access alone; a published row stays published.
        let mut published = row.clone();
        published.filed = Some(Filed {
            folder_id: "f".into(),
            name: "n".into(),
            at: String::new(),
            viewer_url: None,
        });
        published.captions_requested = Some("Panopto".into());
        published.access = Some(BTreeSet::from(["u1".to_string()]));
        published.posted = Some(Posted {
            course_id: "42".into(),
            module_id: "m".into(),
            item_id: "i".into(),
            url: "u".into(),
        });
        published.audited = true;
        published.status = Status::Published;
        assert_eq!(next(&published, &rec, None), Next::Stop);
        published.forget(Step::Access);
        assert_eq!(published.status, Status::Published);
        assert_eq!(next(&published, &rec, None), Next::Take(Step::Access));
    }
}
