//! The Canvas objects coursewire fetches, as the client returns them whichever API (REST or
//! GraphQL) served them. Ids are Canvas ids as strings, exactly as Canvas sent them (REST
//! sends numbers, GraphQL `_id` strings; both become the same text).

use serde::{Deserialize, Serialize};

/// A course (`GET /api/v1/accounts/:id/courses`, `GET /api/v1/courses/:id`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Course {
    pub id: String,
    pub name: Option<String>,
    pub course_code: Option<String>,
    pub sis_course_id: Option<String>,
    /// API form: `unpublished`, `available`, `completed` or `deleted`.
    pub workflow_state: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Section {
    pub id: String,
    pub course_id: String,
    pub name: Option<String>,
    pub sis_section_id: Option<String>,
    pub start_at: Option<String>,
    pub end_at: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Enrollment {
    pub id: String,
    pub course_id: String,
    pub section_id: Option<String>,
    pub user_id: String,
    /// `StudentEnrollment`, `TeacherEnrollment`, `TaEnrollment`, `ObserverEnrollment`,
    /// `DesignerEnrollment`.
    pub enrollment_type: String,
    /// `active`, `invited`, `inactive`, `completed` (`deleted` ones are not listed).
    pub state: String,
    pub created_at: Option<String>,
    pub updated_at: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    pub id: String,
    pub name: Option<String>,
    pub short_name: Option<String>,
    pub sortable_name: Option<String>,
    pub sis_user_id: Option<String>,
}

/// Everyone in a course: its sections, its (non-deleted) enrollments and their users.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Roster {
    pub course_id: String,
    pub sections: Vec<Section>,
    pub enrollments: Vec<Enrollment>,
    /// One per distinct user of `enrollments`.
    pub users: Vec<User>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Module {
    pub id: String,
    pub course_id: String,
    pub name: Option<String>,
    pub position: Option<i64>,
    pub published: Option<bool>,
    pub items: Vec<ModuleItem>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModuleItem {
    pub id: String,
    pub module_id: String,
    pub position: Option<i64>,
    pub title: Option<String>,
    /// `File`, `Page`, `Discussion`, `Assignment`, `Quiz`, `SubHeader`, `ExternalUrl`,
    /// `ExternalTool`.
    pub item_type: Option<String>,
    pub external_url: Option<String>,
    pub published: Option<bool>,
}

/// A new `ExternalUrl` module item (how recordings are posted to a course).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewExternalUrlItem {
    pub title: String,
    pub external_url: String,
    pub position: Option<i64>,
    pub new_tab: bool,
}
