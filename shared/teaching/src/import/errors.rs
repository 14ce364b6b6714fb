//! An import error names the file, the place in it and the field, so a registrar can fix the
//! export without reading code.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportError {
    /// The file's name as given (`meetings.csv`).
    pub file: String,
    /// `row 4` (the CSV line, header = row 1) or `rule 2` (the rule's position in rules.json);
    /// `None` for the file as a whole.
    pub place: Option<String>,
    pub field: Option<String>,
    pub message: String,
}

impl ImportError {
    pub fn file(file: &str, message: impl Into<String>) -> Self {
        Self {
            file: file.to_string(),
            place: None,
            field: None,
            message: message.into(),
        }
    }

    pub fn at(file: &str, place: String, field: &str, message: impl Into<String>) -> Self {
        Self {
            file: file.to_string(),
            place: Some(place),
            field: (!field.is_empty()).then(|| field.to_string()),
            message: message.into(),
        }
    }
}

impl fmt::Display for ImportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(place) = &self.place {
            write!(f, ", {place}")?;
        }
        if let Some(field) = &self.field {
            write!(f, ", field {field}")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ImportError {}
