//! The Canvas resources coursewire reads and writes, on top of the request loop: GraphQL
//! where it needs fewer requests (a roster's sections, enrollments and users come 100
//! enrollments per request), REST where GraphQL has no coverage (module items) or to compare.
//! Canvas's JSON is mapped into [`super::model`] here, and only here.

use super::CanvasError;
use super::client::{CanvasClient, segment};
use super::model::{
    Course, Enrollment, Module, ModuleItem, NewExternalUrlItem, Roster, Section, User,
};
use futures::{StreamExt, TryStreamExt};
use reqwest::Method;
use serde::{Deserialize, Deserializer};
use serde_json::json;
use std::collections::HashSet;

/// Enrollment states a roster includes (everything but `deleted`).
pub const ROSTER_STATES: [&str; 4] = ["active", "invited", "inactive", "completed"];

/// Module item lists fetched at once when `include[]=items` left them out.
const ITEM_LIST_CONCURRENCY: usize = 4;

/// A roster's first page: sections and the first 100 enrollments in one request.
pub const ROSTER_QUERY: &str = r#"query CourseRoster($courseId: ID!, $after: String) {
  course(id: $courseId) {
    sectionsConnection(first: 100) {
      nodes { _id name sisId }
      pageInfo { endCursor hasNextPage }
    }
    enrollmentsConnection(first: 100, after: $after) {
      nodes {
        _id state type section { _id }
        user { _id name shortName sortableName sisId }
        createdAt updatedAt
      }
      pageInfo { endCursor hasNextPage }
    }
  }
}"#;

/// Further enrollment pages.
pub const ENROLLMENTS_QUERY: &str = r#"query CourseEnrollments($courseId: ID!, $after: String) {
  course(id: $courseId) {
    enrollmentsConnection(first: 100, after: $after) {
      nodes {
        _id state type section { _id }
        user { _id name shortName sortableName sisId }
        createdAt updatedAt
      }
      pageInfo { endCursor hasNextPage }
    }
  }
}"#;

/// Further section pages (only for courses with more than 100 sections).
pub const SECTIONS_QUERY: &str = r#"query CourseSections($courseId: ID!, $after: String) {
  course(id: $courseId) {
    sectionsConnection(first: 100, after: $after) {
      nodes { _id name sisId }
      pageInfo { endCursor hasNextPage }
    }
  }
}"#;

/// A Canvas id as text: REST sends numbers, GraphQL strings.
fn id<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    optional_id(d)?.ok_or_else(|| serde::de::Error::custom("id is null"))
}

fn optional_id<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Text(String),
        Whole(i64),
        Unsigned(u64),
        Real(f64),
    }
    Ok(Option::<Raw>::deserialize(d)?.map(|raw| match raw {
        Raw::Text(s) => s,
        Raw::Whole(n) => n.to_string(),
        Raw::Unsigned(n) => n.to_string(),
        Raw::Real(n) => format!("{n:.0}"),
    }))
}

#[derive(Debug, Deserialize)]
pub(super) struct RestCourse {
    #[serde(deserialize_with = "id")]
    id: String,
    name: Option<String>,
    course_code: Option<String>,
    sis_course_id: Option<String>,
    workflow_state: Option<String>,
}

impl From<RestCourse> for Course {
    fn from(c: RestCourse) -> Self {
        Course {
            id: c.id,
            name: c.name,
            course_code: c.course_code,
            sis_course_id: c.sis_course_id,
            workflow_state: c.workflow_state,
        }
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct RestSection {
    #[serde(deserialize_with = "id")]
    id: String,
    #[serde(default, deserialize_with = "optional_id")]
    course_id: Option<String>,
    name: Option<String>,
    sis_section_id: Option<String>,
    start_at: Option<String>,
    end_at: Option<String>,
}

impl RestSection {
    fn into_model(self, course_id: &str) -> Section {
        Section {
            id: self.id,
            course_id: self.course_id.unwrap_or_else(|| course_id.to_string()),
            name: self.name,
            sis_section_id: self.sis_section_id,
            start_at: self.start_at,
            end_at: self.end_at,
        }
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct RestUser {
    #[serde(deserialize_with = "id")]
    id: String,
    name: Option<String>,
    short_name: Option<String>,
    sortable_name: Option<String>,
    sis_user_id: Option<String>,
}

impl From<RestUser> for User {
    fn from(u: RestUser) -> Self {
        User {
            id: u.id,
            name: u.name,
            short_name: u.short_name,
            sortable_name: u.sortable_name,
            sis_user_id: u.sis_user_id,
        }
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct RestEnrollment {
    #[serde(deserialize_with = "id")]
    id: String,
    #[serde(default, deserialize_with = "optional_id")]
    course_id: Option<String>,
    #[serde(default, deserialize_with = "optional_id")]
    course_section_id: Option<String>,
    #[serde(deserialize_with = "id")]
    user_id: String,
    #[serde(rename = "type")]
    enrollment_type: String,
    enrollment_state: String,
    created_at: Option<String>,
    updated_at: Option<String>,
    user: Option<RestUser>,
}

impl RestEnrollment {
    fn into_model(self, course_id: &str) -> (Enrollment, Option<User>) {
        let enrollment = Enrollment {
            id: self.id,
            course_id: self.course_id.unwrap_or_else(|| course_id.to_string()),
            section_id: self.course_section_id,
            user_id: self.user_id,
            enrollment_type: self.enrollment_type,
            state: self.enrollment_state,
            created_at: self.created_at,
            updated_at: self.updated_at,
        };
        (enrollment, self.user.map(User::from))
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct RestModule {
    #[serde(deserialize_with = "id")]
    id: String,
    name: Option<String>,
    position: Option<i64>,
    published: Option<bool>,
    items_url: Option<String>,
    /// Left out when the module has more than 10 items: then follow `items_url`.
    items: Option<Vec<RestModuleItem>>,
}

impl RestModule {
    /// The module without items: write answers carry none, [`CanvasClient::modules`] fills
    /// them in.
    fn into_model(self, course_id: &str) -> Module {
        Module {
            id: self.id,
            course_id: course_id.to_string(),
            name: self.name,
            position: self.position,
            published: self.published,
            items: Vec::new(),
        }
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct RestModuleItem {
    #[serde(deserialize_with = "id")]
    id: String,
    #[serde(default, deserialize_with = "optional_id")]
    module_id: Option<String>,
    position: Option<i64>,
    title: Option<String>,
    #[serde(rename = "type")]
    item_type: Option<String>,
    external_url: Option<String>,
    published: Option<bool>,
}

impl RestModuleItem {
    fn into_model(self, module_id: &str) -> ModuleItem {
        ModuleItem {
            id: self.id,
            module_id: self.module_id.unwrap_or_else(|| module_id.to_string()),
            position: self.position,
            title: self.title,
            item_type: self.item_type,
            external_url: self.external_url,
            published: self.published,
        }
    }
}

/// A Relay connection page.
#[derive(Debug, Deserialize)]
pub(super) struct Connection<T> {
    #[serde(default = "Vec::new")]
    nodes: Vec<Option<T>>,
    #[serde(rename = "pageInfo")]
    page_info: PageInfo,
}

#[derive(Debug, Deserialize)]
struct PageInfo {
    #[serde(rename = "endCursor")]
    end_cursor: Option<String>,
    #[serde(rename = "hasNextPage")]
    has_next_page: bool,
}

impl PageInfo {
    /// The cursor to continue from, if there is more.
    fn next(&self) -> Option<String> {
        self.end_cursor.clone().filter(|_| self.has_next_page)
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct GqlRosterData {
    course: Option<GqlCourse>,
}

#[derive(Debug, Deserialize)]
struct GqlCourse {
    #[serde(rename = "sectionsConnection")]
    sections: Option<Connection<GqlSection>>,
    #[serde(rename = "enrollmentsConnection")]
    enrollments: Option<Connection<GqlEnrollment>>,
}

#[derive(Debug, Deserialize)]
struct GqlSection {
    #[serde(rename = "_id", deserialize_with = "id")]
    id: String,
    name: Option<String>,
    #[serde(rename = "sisId")]
    sis_id: Option<String>,
}

#[derive(Debug, Deserialize)]
struct GqlRef {
    #[serde(rename = "_id", deserialize_with = "id")]
    id: String,
}

#[derive(Debug, Deserialize)]
struct GqlUser {
    #[serde(rename = "_id", deserialize_with = "id")]
    id: String,
    name: Option<String>,
    #[serde(rename = "shortName")]
    short_name: Option<String>,
    #[serde(rename = "sortableName")]
    sortable_name: Option<String>,
    #[serde(rename = "sisId")]
    sis_id: Option<String>,
}

#[derive(Debug, Deserialize)]
struct GqlEnrollment {
    #[serde(rename = "_id", deserialize_with = "id")]
    id: String,
    state: String,
    #[serde(rename = "type")]
    enrollment_type: String,
    section: Option<GqlRef>,
    user: Option<GqlUser>,
    #[serde(rename = "createdAt")]
    created_at: Option<String>,
    #[serde(rename = "updatedAt")]
    updated_at: Option<String>,
}

impl GqlSection {
    fn into_model(self, course_id: &str) -> Section {
        Section {
            id: self.id,
            course_id: course_id.to_string(),
            name: self.name,
            sis_section_id: self.sis_id,
            // Not in GraphQL's Section: the REST roster has them.
            start_at: None,
            end_at: None,
        }
    }
}

impl GqlEnrollment {
    /// `None` for an enrollment without a user (nothing to key it to).
    fn into_model(self, course_id: &str) -> Option<(Enrollment, User)> {
        let user = self.user?;
        let enrollment = Enrollment {
            id: self.id,
            course_id: course_id.to_string(),
            section_id: self.section.map(|s| s.id),
            user_id: user.id.clone(),
            enrollment_type: self.enrollment_type,
            state: self.state,
            created_at: self.created_at,
            updated_at: self.updated_at,
        };
        let user = User {
            id: user.id,
            name: user.name,
            short_name: user.short_name,
            sortable_name: user.sortable_name,
            sis_user_id: user.sis_id,
        };
        Some((enrollment, user))
    }
}

/// Collects a roster, keeping one user per id (the first seen).
struct RosterBuilder {
    roster: Roster,
    seen_users: HashSet<String>,
}

impl RosterBuilder {
    fn new(course_id: &str) -> Self {
        Self {
            roster: Roster {
                course_id: course_id.to_string(),
                ..Roster::default()
            },
            seen_users: HashSet::new(),
        }
    }

    fn add(&mut self, enrollment: Enrollment, user: Option<User>) {
        if let Some(user) = user
            && self.seen_users.insert(user.id.clone())
        {
            self.roster.users.push(user);
        }
        self.roster.enrollments.push(enrollment);
    }

    fn add_graphql_page(&mut self, page: Connection<GqlEnrollment>) -> Option<String> {
        let course_id = self.roster.course_id.clone();
        for (enrollment, user) in page
            .nodes
            .into_iter()
            .flatten()
            .filter_map(|e| e.into_model(&course_id))
        {
            self.add(enrollment, Some(user));
        }
        page.page_info.next()
    }

    fn add_sections(&mut self, page: Connection<GqlSection>) -> Option<String> {
        let course_id = self.roster.course_id.clone();
        self.roster.sections.extend(
            page.nodes
                .into_iter()
                .flatten()
                .map(|s| s.into_model(&course_id)),
        );
        page.page_info.next()
    }
}

fn course_not_found(course_id: &str) -> CanvasError {
    CanvasError::Http {
        status: 404,
        message: format!("course {course_id} not found"),
    }
}

impl CanvasClient {
    /// The account's available courses (`state[]=available`).
    pub async fn active_courses(&self, account_id: &str) -> Result<Vec<Course>, CanvasError> {
        let path = format!("/api/v1/accounts/{}/courses", segment(account_id));
        self.paginate::<RestCourse>(&path, &[("state[]", "available"), ("per_page", "100")])
            .map_ok(Course::from)
            .try_collect()
            .await
    }

    pub async fn course(&self, course_id: &str) -> Result<Course, CanvasError> {
        let path = format!("/api/v1/courses/{}", segment(course_id));
        Ok(self.get_json::<RestCourse>(&path, &[]).await?.into())
    }

    pub async fn user(&self, user_id: &str) -> Result<User, CanvasError> {
        let path = format!("/api/v1/users/{}", segment(user_id));
        Ok(self.get_json::<RestUser>(&path, &[]).await?.into())
    }

    /// A course's sections, enrollments (all but deleted) and their users through GraphQL:
    /// one request per 100 enrollments, sections riding along on the first.
    pub async fn roster(&self, course_id: &str) -> Result<Roster, CanvasError> {
        let mut builder = RosterBuilder::new(course_id);
        let first: GqlRosterData = self
            .graphql(ROSTER_QUERY, json!({"courseId": course_id, "after": null}))
            .await?;
        let course = first.course.ok_or_else(|| course_not_found(course_id))?;
        let mut sections_after = course.sections.and_then(|p| builder.add_sections(p));
        let mut enrollments_after = course.enrollments.and_then(|p| builder.add_graphql_page(p));
        while let Some(after) = enrollments_after {
            let page: GqlRosterData = self
                .graphql(
                    ENROLLMENTS_QUERY,
                    json!({"courseId": course_id, "after": after}),
                )
                .await?;
            enrollments_after = page
                .course
                .ok_or_else(|| course_not_found(course_id))?
                .enrollments
                .and_then(|p| builder.add_graphql_page(p));
        }
        while let Some(after) = sections_after {
            let page: GqlRosterData = self
                .graphql(
                    SECTIONS_QUERY,
                    json!({"courseId": course_id, "after": after}),
                )
                .await?;
            sections_after = page
                .course
                .ok_or_else(|| course_not_found(course_id))?
                .sections
                .and_then(|p| builder.add_sections(p));
        }
        Ok(builder.roster)
    }

    /// The same roster through REST (sections, and enrollments with their embedded user):
    /// kept to compare request counts, and as a fallback.
    pub async fn roster_rest(&self, course_id: &str) -> Result<Roster, CanvasError> {
        let course = segment(course_id);
        let sections_path = format!("/api/v1/courses/{course}/sections");
        let enrollments_path = format!("/api/v1/courses/{course}/enrollments");
        let mut query: Vec<(&str, &str)> = ROSTER_STATES.iter().map(|s| ("state[]", *s)).collect();
        query.push(("per_page", "100"));
        let sections = self
            .paginate::<RestSection>(&sections_path, &[("per_page", "100")])
            .map_ok(|s| s.into_model(course_id))
            .try_collect::<Vec<_>>();
        let enrollments = self
            .paginate::<RestEnrollment>(&enrollments_path, &query)
            .try_collect::<Vec<_>>();
        let (sections, enrollments) = futures::try_join!(sections, enrollments)?;
        let mut builder = RosterBuilder::new(course_id);
        builder.roster.sections = sections;
        for enrollment in enrollments {
            let (enrollment, user) = enrollment.into_model(course_id);
            builder.add(enrollment, user);
        }
        Ok(builder.roster)
    }

    /// A course's modules with all their items (REST: GraphQL has no module items).
    pub async fn modules(&self, course_id: &str) -> Result<Vec<Module>, CanvasError> {
        let course = segment(course_id);
        let course = course.as_str();
        let path = format!("/api/v1/courses/{course}/modules");
        let modules: Vec<RestModule> = self
            .paginate(&path, &[("include[]", "items"), ("per_page", "100")])
            .try_collect()
            .await?;
        futures::stream::iter(modules)
            .map(|mut module| async move {
                let items = match module.items.take() {
                    Some(items) => items,
                    None => {
                        let items_path = module.items_url.clone().unwrap_or_else(|| {
                            format!(
                                "/api/v1/courses/{course}/modules/{}/items",
                                segment(&module.id)
                            )
                        });
                        self.paginate::<RestModuleItem>(&items_path, &[("per_page", "100")])
                            .try_collect()
                            .await?
                    }
                };
                let mut model = module.into_model(course_id);
                model.items = items
                    .into_iter()
                    .map(|item| item.into_model(&model.id))
                    .collect();
                Ok::<_, CanvasError>(model)
            })
            .buffered(ITEM_LIST_CONCURRENCY)
            .try_collect()
            .await
    }

    /// Creates an unpublished module at the end of the course's modules (`items` is empty).
    /// Not repeated after a timeout or 5xx (it may have been created): callers look for the
    /// module in [`Self::modules`] before creating it again.
    pub async fn create_module(&self, course_id: &str, name: &str) -> Result<Module, CanvasError> {
        let path = format!("/api/v1/courses/{}/modules", segment(course_id));
        let form = vec![("module[name]".to_string(), name.to_string())];
        let created: RestModule = self.send_form(Method::POST, &path, form).await?;
        Ok(created.into_model(course_id))
    }

    /// Publishes a module (idempotent; `items` is empty). Only the module: without
    /// `skip_content_tags` Canvas would also publish every item in it, including ones a
    /// person left unpublished on purpose; items are published one by one
    /// ([`Self::publish_module_item`]).
    pub async fn publish_module(
        &self,
        course_id: &str,
        module_id: &str,
    ) -> Result<Module, CanvasError> {
        let path = format!(
            "/api/v1/courses/{}/modules/{}",
            segment(course_id),
            segment(module_id)
        );
        let form = vec![
            ("module[published]".to_string(), "true".to_string()),
            ("module[skip_content_tags]".to_string(), "true".to_string()),
        ];
        let module: RestModule = self.send_form(Method::PUT, &path, form).await?;
        Ok(module.into_model(course_id))
    }

    /// Adds an `ExternalUrl` item to a module. Not repeated after a timeout or 5xx (it may
    /// have been created): callers check the module before acting again.
    pub async fn create_external_url_item(
        &self,
        course_id: &str,
        module_id: &str,
        item: &NewExternalUrlItem,
    ) -> Result<ModuleItem, CanvasError> {
        let path = format!(
            "/api/v1/courses/{}/modules/{}/items",
            segment(course_id),
            segment(module_id)
        );
        let mut form = vec![
            ("module_item[type]".to_string(), "ExternalUrl".to_string()),
            ("module_item[title]".to_string(), item.title.clone()),
            (
                "module_item[external_url]".to_string(),
                item.external_url.clone(),
            ),
            ("module_item[new_tab]".to_string(), item.new_tab.to_string()),
        ];
        if let Some(position) = item.position {
            form.push(("module_item[position]".to_string(), position.to_string()));
        }
        let created: RestModuleItem = self.send_form(Method::POST, &path, form).await?;
        Ok(created.into_model(module_id))
    }

    /// Publishes a module item (idempotent).
    pub async fn publish_module_item(
        &self,
        course_id: &str,
        module_id: &str,
        item_id: &str,
    ) -> Result<ModuleItem, CanvasError> {
        let path = format!(
            "/api/v1/courses/{}/modules/{}/items/{}",
            segment(course_id),
            segment(module_id),
            segment(item_id)
        );
        let form = vec![("module_item[published]".to_string(), "true".to_string())];
        let item: RestModuleItem = self.send_form(Method::PUT, &path, form).await?;
        Ok(item.into_model(module_id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_rest_enrollments_with_numeric_ids() {
        let json = r#"{"id": 21070000000046825, "course_id": 565, "course_section_id": 77,
            "user_id": 9001, "type": "StudentEnrollment", "enrollment_state": "invited",
            "created_at": "2025-01-01T00:00:00Z", "updated_at": "2025-01-02T00:00:00Z",
            "role": "StudentEnrollment",
            "user": {"id": 9001, "name": "Ada Lovelace", "sortable_name": "Lovelace, Ada",
                     "short_name": "Ada", "sis_user_id": null}}"#;
        let raw: RestEnrollment = serde_json::from_str(json).unwrap();
        let (e, u) = raw.into_model("ignored");
        assert_eq!(e.id, "21070000000046825");
        assert_eq!(e.course_id, "565");
        assert_eq!(e.section_id.as_deref(), Some("77"));
        assert_eq!(e.user_id, "9001");
        assert_eq!(e.enrollment_type, "StudentEnrollment");
        assert_eq!(e.state, "invited");
        let u = u.unwrap();
        assert_eq!(
            (u.id.as_str(), u.sortable_name.as_deref()),
            ("9001", Some("Lovelace, Ada"))
        );
        assert_eq!(u.sis_user_id, None);
    }

    #[test]
    fn maps_graphql_roster_pages_and_dedupes_users() {
        let json = r#"{"course": {
            "sectionsConnection": {"nodes": [{"_id": "77", "name": "S1", "sisId": "SIS-S1"}],
                                   "pageInfo": {"endCursor": "MQ", "hasNextPage": false}},
            "enrollmentsConnection": {"nodes": [
                {"_id": "1", "state": "active", "type": "StudentEnrollment", "section": {"_id": "77"},
                 "user": {"_id": "9", "name": "A", "shortName": "A", "sortableName": "A", "sisId": "s9"},
                 "createdAt": "2025-01-01T00:00:00Z", "updatedAt": null},
                {"_id": "2", "state": "completed", "type": "TaEnrollment", "section": null,
                 "user": {"_id": "9", "name": "A", "shortName": "A", "sortableName": "A", "sisId": "s9"},
                 "createdAt": null, "updatedAt": null},
                null,
                {"_id": "3", "state": "active", "type": "StudentEnrollment", "section": null,
                 "user": null, "createdAt": null, "updatedAt": null}],
              "pageInfo": {"endCursor": "Mg", "hasNextPage": true}}}}"#;
        let data: GqlRosterData = serde_json::from_str(json).unwrap();
        let course = data.course.unwrap();
        let mut b = RosterBuilder::new("565");
        assert_eq!(b.add_sections(course.sections.unwrap()), None);
        assert_eq!(
            b.add_graphql_page(course.enrollments.unwrap()).as_deref(),
            Some("Mg")
        );
        let r = b.roster;
        assert_eq!(r.sections[0].sis_section_id.as_deref(), Some("SIS-S1"));
        assert_eq!(r.sections[0].course_id, "565");
        assert_eq!(r.enrollments.len(), 2);
        assert_eq!(r.enrollments[0].section_id.as_deref(), Some("77"));
        assert_eq!(r.enrollments[0].course_id, "565");
        assert_eq!(r.enrollments[1].state, "completed");
        assert_eq!(r.users.len(), 1, "one user per id");
        assert_eq!(r.users[0].sis_user_id.as_deref(), Some("s9"));
    }

    #[test]
    fn maps_modules_and_items() {
        let json = r#"[{"id": 5, "name": "Week 1", "position": 1, "published": true,
            "items_count": 1, "items_url": "https://canvas.test/api/v1/courses/1/modules/5/items",
            "items": [{"id": 50, "module_id": 5, "position": 1, "title": "Lecture",
                       "type": "ExternalUrl", "external_url": "https://p.test/v/1", "published": false}]},
            {"id": 6, "name": "Week 2", "position": 2, "published": false, "items_count": 11,
             "items_url": "https://canvas.test/api/v1/courses/1/modules/6/items"}]"#;
        let modules: Vec<RestModule> = serde_json::from_str(json).unwrap();
        assert!(modules[1].items.is_none());
        let item = modules
            .into_iter()
            .next()
            .and_then(|m| m.items)
            .unwrap()
            .into_iter()
            .next()
            .unwrap()
            .into_model("5");
        assert_eq!(item.id, "50");
        assert_eq!(item.item_type.as_deref(), Some("ExternalUrl"));
        assert_eq!(item.published, Some(false));
    }

    #[test]
    fn queries_ask_for_relay_page_info() {
        for q in [ROSTER_QUERY, ENROLLMENTS_QUERY, SECTIONS_QUERY] {
            assert!(q.contains("pageInfo { endCursor hasNextPage }"));
            assert!(q.contains("$after: String"));
        }
        assert!(ROSTER_QUERY.contains("first: 100"));
    }
}
