//! The teaching catalog: where and when every lecture happens, and how its recording is
//! published.
//!
//! - [`rooms`]: rooms and their Panopto remote recorders
//! - [`meetings`]: a section's weekly meeting pattern, cancelled days and extra meetings
//! - [`lectures`]: patterns expanded into lectures with UTC instants (DST-correct)
//! - [`rules`] and [`template`]: per-department publishing rules with per-course overrides,
//!   and their checked naming templates
//! - [`sections`]: what is read (never copied) from the Canvas catalog: a section's course
//! - [`store`]: the catalog's port; [`dynamo`]: its DynamoDB adapter
//! - [`import`]: the registrar's files checked, planned and applied

pub mod dynamo;
pub mod import;
pub mod lectures;
pub mod meetings;
pub mod rooms;
pub mod rules;
pub mod sections;
pub mod store;
pub mod template;

pub use dynamo::{DynamoTeachingStore, LECTURES_BY_END};
pub use lectures::{Lecture, LectureStatus};
pub use meetings::{ExtraMeeting, MeetingPattern};
pub use rooms::Room;
pub use rules::{AccessLevel, PostWhen, PublishingRule, RuleBook, RuleScope};
pub use store::{Booking, Entry, Kind, LectureRow, TeachingStore};
pub use template::Template;
