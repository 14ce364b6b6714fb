//! Per-department publishing rules, with optional per-course overrides: how a department's
//! recordings are filed, named, captioned, posted and shared.

use crate::template::Template;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What a rule applies to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(tag = "scope", content = "id", rename_all = "snake_case")]
pub enum RuleScope {
    /// Every course of the department (its code, e.g. `BIO`).
    Department(String),
    /// One Canvas course (its id): overrides its department's rule.
    Course(String),
}

impl RuleScope {
    /// `department:BIO`, `course:21070000000000042`.
    pub fn key(&self) -> String {
        match self {
            RuleScope::Department(code) => format!("department:{code}"),
            RuleScope::Course(id) => format!("course:{id}"),
        }
    }
}

/// Who may watch a section's recordings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccessLevel {
    /// The section's roster (its students and teachers).
    SectionRoster,
    /// Everyone enrolled in the course, whatever their section.
    CourseRoster,
    /// Anyone signed in at the institution.
    Institution,
}

/// When the recording's link is posted to Canvas.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PostWhen {
    /// As soon as the recording is complete; captions follow.
    BeforeCaptions,
    /// Only once captions are available (accessibility first).
    AfterCaptions,
}

/// One publishing rule. Templates are checked when the rule is read or saved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublishingRule {
    #[serde(flatten)]
    pub scope: RuleScope,
    /// Panopto folder of a section's recordings, e.g. `{term}/{course_code} {section}`.
    pub folder_template: Template,
    /// Session name, e.g. `{course_code} {section} Lecture {n} ({date})`.
    pub session_template: Template,
    /// The Panopto automatic caption provider's name set on the folder (e.g. `Panopto`,
    /// `Verbit`).
    pub caption_provider: String,
    /// Hours after the lecture's scheduled end (when its scheduled recording stops) by which
    /// captions must be available; sla-monitor escalates at twice this.
    pub caption_sla_hours: u32,
    /// The Canvas module the link is posted in, e.g. `Lecture recordings`.
    pub module_template: Template,
    pub access: AccessLevel,
    pub post: PostWhen,
    /// `false`: the department's lectures are not scheduled, recorded or published.
    pub enabled: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    #[error("caption_sla_hours must be between 1 and 720, not {0}")]
    CaptionSla(u32),
    #[error("caption_provider is empty")]
    CaptionProvider,
    #[error("{scope} id is empty")]
    EmptyScope { scope: &'static str },
}

impl PublishingRule {
    /// Checks what serde cannot (templates already are): an SLA within a month, a provider.
    pub fn validate(&self) -> Result<(), (&'static str, RuleError)> {
        match &self.scope {
            RuleScope::Department(id) | RuleScope::Course(id) if id.trim().is_empty() => {
                let scope = match self.scope {
                    RuleScope::Department(_) => "department",
                    RuleScope::Course(_) => "course",
                };
                return Err(("id", RuleError::EmptyScope { scope }));
            }
            _ => {}
        }
        if !(1..=720).contains(&self.caption_sla_hours) {
            return Err((
                "caption_sla_hours",
                RuleError::CaptionSla(self.caption_sla_hours),
            ));
        }
        if self.caption_provider.trim().is_empty() {
            return Err(("caption_provider", RuleError::CaptionProvider));
        }
        Ok(())
    }
}

/// The rules in force, answering "which rule governs this course".
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RuleBook {
    rules: BTreeMap<RuleScope, PublishingRule>,
}

impl RuleBook {
    pub fn new(rules: impl IntoIterator<Item = PublishingRule>) -> Self {
        Self {
            rules: rules.into_iter().map(|r| (r.scope.clone(), r)).collect(),
        }
    }

    /// The course's own rule, else its department's; `None` = nothing is published for it.
    pub fn for_course(&self, course_id: &str, department: &str) -> Option<&PublishingRule> {
        self.rules
            .get(&RuleScope::Course(course_id.to_string()))
            .or_else(|| {
                self.rules
                    .get(&RuleScope::Department(department.to_string()))
            })
    }

    pub fn iter(&self) -> impl Iterator<Item = &PublishingRule> {
        self.rules.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    pub(crate) fn rule(scope: RuleScope) -> PublishingRule {
        PublishingRule {
            scope,
            folder_template: Template::parse("{term}/{course_code} {section}").unwrap(),
            session_template: Template::parse("{course_code} {section} Lecture {n} ({date})")
                .unwrap(),
            caption_provider: "Panopto".into(),
            caption_sla_hours: 48,
            module_template: Template::parse("Lecture recordings").unwrap(),
            access: AccessLevel::SectionRoster,
            post: PostWhen::BeforeCaptions,
            enabled: true,
        }
    }

    #[test]
    fn a_course_override_wins_over_its_department() {
        let mut own = rule(RuleScope::Course("42".into()));
        own.caption_sla_hours = 24;
        let book = RuleBook::new([rule(RuleScope::Department("BIO".into())), own]);
        assert_eq!(book.for_course("42", "BIO").unwrap().caption_sla_hours, 24);
        assert_eq!(book.for_course("43", "BIO").unwrap().caption_sla_hours, 48);
        assert!(book.for_course("43", "CHEM").is_none());
    }

    #[test]
    fn rules_read_from_json_check_templates_and_fields() {
        let text = json!({
            "scope": "department", "id": "BIO",
            "folder_template": "{term}/{course_code}",
            "session_template": "{course_code} Lecture {n}",
            "caption_provider": "Verbit", "caption_sla_hours": 72,
            "module_template": "Recordings", "access": "course_roster",
            "post": "after_captions", "enabled": true
        });
        let rule: PublishingRule = serde_json::from_value(text.clone()).unwrap();
        assert_eq!(rule.scope, RuleScope::Department("BIO".into()));
        assert_eq!(serde_json::to_value(&rule).unwrap(), text);

        let mut typo = text.clone();
        typo["session_template"] = json!("{course} Lecture {n}");
        let err = serde_json::from_value::<PublishingRule>(typo).unwrap_err();
        assert!(
            err.to_string().contains("unknown placeholder {course}"),
            "{err}"
        );

        let mut sla = rule.clone();
        sla.caption_sla_hours = 0;
        assert_eq!(
            sla.validate(),
            Err(("caption_sla_hours", RuleError::CaptionSla(0)))
        );
    }
}
