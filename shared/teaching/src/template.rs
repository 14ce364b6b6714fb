//! Naming templates (`{course_code} {section} Lecture {n} ({date})`): checked when a rule is
//! saved, so a typo is an error then, never a blank in a session name later.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeMap;
use std::fmt;

/// What a template may say, and what each stands for.
pub const PLACEHOLDERS: [(&str, &str); 10] = [
    ("course_code", "the Canvas course code, e.g. BIO-101"),
    ("course_name", "the Canvas course name"),
    ("section", "the Canvas section name"),
    ("department", "the department code"),
    ("term", "the term name, e.g. Fall 2026"),
    ("n", "the lecture's number in the term (1, 2, ...)"),
    ("date", "the lecture's local date, YYYY-MM-DD"),
    ("weekday", "the lecture's local weekday, e.g. Tuesday"),
    ("time", "the lecture's local start time, HH:MM"),
    ("room", "the room name"),
];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("unknown placeholder {{{name}}} (known: {known})")]
    UnknownPlaceholder { name: String, known: String },
    #[error("unclosed '{{' at character {0}")]
    Unclosed(usize),
    #[error("'}}' without '{{' at character {0}")]
    Unopened(usize),
    #[error("the template is empty")]
    Empty,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Placeholder(&'static str),
}

/// A checked template. Serialized as its source text; deserializing checks it.
#[derive(Clone, PartialEq, Eq)]
pub struct Template {
    source: String,
    parts: Vec<Part>,
}

impl Template {
    pub fn parse(source: &str) -> Result<Self, TemplateError> {
        if source.trim().is_empty() {
            return Err(TemplateError::Empty);
        }
        let mut parts = Vec::new();
        let mut text = String::new();
        let mut chars = source.char_indices();
        while let Some((at, c)) = chars.next() {
            match c {
                '{' => {
                    let mut name = String::new();
                    loop {
                        match chars.next() {
                            Some((_, '}')) => break,
                            Some((_, c)) => name.push(c),
                            None => return Err(TemplateError::Unclosed(at)),
                        }
                    }
                    let known = PLACEHOLDERS
                        .iter()
                        .find(|(known, _)| *known == name.trim())
                        .map(|(known, _)| *known)
                        .ok_or_else(|| TemplateError::UnknownPlaceholder {
                            name: name.clone(),
                            known: PLACEHOLDERS.map(|(n, _)| n).join(", "),
                        })?;
                    if !text.is_empty() {
                        parts.push(Part::Text(std::mem::take(&mut text)));
                    }
                    parts.push(Part::Placeholder(known));
                }
                '}' => return Err(TemplateError::Unopened(at)),
                c => text.push(c),
            }
        }
        if !text.is_empty() {
            parts.push(Part::Text(text));
        }
        Ok(Self {
            source: source.to_string(),
            parts,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// The placeholders the template uses.
    pub fn placeholders(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.parts.iter().filter_map(|p| match p {
            Part::Placeholder(name) => Some(*name),
            Part::Text(_) => None,
        })
    }

    /// The template with each placeholder replaced by its value; a value the caller does not
    /// have renders empty (callers pass every placeholder the template uses).
    pub fn render(&self, values: &BTreeMap<&str, String>) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(text) => out.push_str(text),
                Part::Placeholder(name) => {
                    out.push_str(values.get(name).map(String::as_str).unwrap_or(""))
                }
            }
        }
        out.trim().to_string()
    }
}

impl fmt::Debug for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Template({:?})", self.source)
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl Serialize for Template {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.source)
    }
}

impl<'de> Deserialize<'de> for Template {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let source = String::deserialize(deserializer)?;
        Template::parse(&source).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_known_placeholders() {
        let t = Template::parse("{course_code} {section} Lecture {n} ({date})").unwrap();
        let values = BTreeMap::from([
            ("course_code", "BIO-101".to_string()),
            ("section", "Section 001".to_string()),
            ("n", "7".to_string()),
            ("date", "2026-10-27".to_string()),
        ]);
        assert_eq!(
            t.render(&values),
            "BIO-101 Section 001 Lecture 7 (2026-10-27)"
        );
        assert_eq!(
            t.placeholders().collect::<Vec<_>>(),
            ["course_code", "section", "n", "date"]
        );
    }

    #[test]
    fn an_unknown_placeholder_is_an_error_not_a_blank() {
        let err = Template::parse("{course_code} Lecture {number}").unwrap_err();
        assert!(matches!(&err, TemplateError::UnknownPlaceholder { name, .. } if name == "number"));
        assert!(err.to_string().contains("known: course_code"), "{err}");
        assert_eq!(
            Template::parse("Lecture {n"),
            Err(TemplateError::Unclosed(8))
        );
        assert_eq!(
            Template::parse("Lecture n}"),
            Err(TemplateError::Unopened(9))
        );
        assert_eq!(Template::parse("  "), Err(TemplateError::Empty));
    }

    #[test]
    fn deserializing_checks_the_template() {
        let ok: Template = serde_json::from_str("\"{term} {course_code}\"").unwrap();
        assert_eq!(ok.as_str(), "{term} {course_code}");
        let bad = serde_json::from_str::<Template>("\"{nope}\"").unwrap_err();
        assert!(
            bad.to_string().contains("unknown placeholder {nope}"),
            "{bad}"
        );
    }
}
