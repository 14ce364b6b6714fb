//! Teaching rooms and the Panopto remote recorder installed in each.

use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

/// A room lectures are held (and maybe recorded) in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Room {
    /// The registrar's room id, e.g. `SCI-101`.
    pub id: String,
    pub building: String,
    pub name: String,
    pub capacity: u32,
    /// Where the room is: a lecture's local times are read in its section's zone, which is
    /// usually this one.
    pub time_zone: Tz,
    /// The Panopto remote recorder in the room; `None` = the room does not record.
    pub recorder_id: Option<String>,
}
