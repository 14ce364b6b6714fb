//! Where the teaching catalog lives (a port: DynamoDB in production and on the local stack).

use crate::lectures::Lecture;
use crate::meetings::MeetingPattern;
use crate::rooms::Room;
use crate::rules::PublishingRule;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use coursewire_runtime::service::ServiceError;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// The kinds of entry the teaching catalog holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Room,
    Rule,
    Meeting,
    Lecture,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Room => "room",
            Kind::Rule => "rule",
            Kind::Meeting => "meeting",
            Kind::Lecture => "lecture",
        }
    }
}

/// One entry of the teaching catalog.
#[derive(Debug, Clone, PartialEq)]
pub enum Entry {
    Room(Room),
    Rule(PublishingRule),
    Meeting(MeetingPattern),
    Lecture(Lecture),
}

impl Entry {
    pub fn kind(&self) -> Kind {
        match self {
            Entry::Room(_) => Kind::Room,
            Entry::Rule(_) => Kind::Rule,
            Entry::Meeting(_) => Kind::Meeting,
            Entry::Lecture(_) => Kind::Lecture,
        }
    }

    /// Its id within its kind: the room id, the rule's scope, the section, the lecture's
    /// section and slot.
    pub fn id(&self) -> String {
        match self {
            Entry::Room(room) => room.id.clone(),
            Entry::Rule(rule) => rule.scope.key(),
            Entry::Meeting(pattern) => pattern.section_id.clone(),
            Entry::Lecture(lecture) => format!("{}/{}", lecture.section_id, lecture.slot()),
        }
    }

    /// What is stored, compared on import to tell an unchanged entry from a changed one.
    pub fn data(&self) -> Value {
        let value = match self {
            Entry::Room(room) => serde_json::to_value(room),
            Entry::Rule(rule) => serde_json::to_value(rule),
            Entry::Meeting(pattern) => serde_json::to_value(pattern),
            Entry::Lecture(lecture) => serde_json::to_value(lecture),
        };
        // The types are plain data: serialising them cannot fail.
        value.unwrap_or(Value::Null)
    }
}

/// The Panopto scheduled recording coursewire made for a lecture (written by the scheduler,
/// never by an import).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Booking {
    /// The scheduled recording's id, which is also its Panopto session's id.
    pub session_id: String,
    pub recorder_id: String,
    pub folder_id: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

/// A lecture with what coursewire did about it.
#[derive(Debug, Clone, PartialEq)]
pub struct LectureRow {
    pub lecture: Lecture,
    pub booking: Option<Booking>,
    /// Why the last attempt to book it failed (a recorder conflict, say), if it did.
    pub booking_error: Option<String>,
    /// What the poller last saw of its session and recorder (the poller's own format).
    pub observed: Option<Value>,
}

#[async_trait]
pub trait TeachingStore: Send + Sync {
    /// Every room, rule or meeting pattern (not lectures: read those by section or window).
    async fn list(&self, kind: Kind) -> Result<Vec<Entry>, ServiceError>;
    async fn lectures_of(&self, section_id: &str) -> Result<Vec<LectureRow>, ServiceError>;
    /// One lecture by its section and slot (`2026-10-27#1`).
    async fn lecture(
        &self,
        section_id: &str,
        slot: &str,
    ) -> Result<Option<LectureRow>, ServiceError>;
    /// One room by its id.
    async fn room(&self, id: &str) -> Result<Option<Room>, ServiceError>;
    /// The lectures whose end lies in `[from, to)`, read through the end-time index (cost
    /// follows the lectures in the window, not the catalog's size).
    async fn lectures_ending(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<LectureRow>, ServiceError>;
    /// Writes an entry; a lecture's booking is left as it is.
    async fn put(&self, entry: &Entry) -> Result<(), ServiceError>;
    /// Records what the poller saw of the lecture's session and recorder.
    async fn set_observed(&self, lecture: &Lecture, observed: &Value) -> Result<(), ServiceError>;
    /// Records a lecture's booking (`None` clears it) and the last booking error.
    async fn set_booking(
        &self,
        lecture: &Lecture,
        booking: Option<&Booking>,
        error: Option<&str>,
    ) -> Result<(), ServiceError>;

    /// Every room, by id.
    async fn rooms(&self) -> Result<BTreeMap<String, Room>, ServiceError> {
        Ok(self
            .list(Kind::Room)
            .await?
            .into_iter()
            .filter_map(|e| match e {
                Entry::Room(room) => Some((room.id.clone(), room)),
                _ => None,
            })
            .collect())
    }

    /// Every publishing rule.
    async fn rules(&self) -> Result<Vec<PublishingRule>, ServiceError> {
        Ok(self
            .list(Kind::Rule)
            .await?
            .into_iter()
            .filter_map(|e| match e {
                Entry::Rule(rule) => Some(rule),
                _ => None,
            })
            .collect())
    }

    /// Every meeting pattern, by section.
    async fn patterns(&self) -> Result<BTreeMap<String, MeetingPattern>, ServiceError> {
        Ok(self
            .list(Kind::Meeting)
            .await?
            .into_iter()
            .filter_map(|e| match e {
                Entry::Meeting(p) => Some((p.section_id.clone(), p)),
                _ => None,
            })
            .collect())
    }
}
