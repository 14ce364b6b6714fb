//! A CSV file read as named columns, each cell addressed by row and field for errors.

use super::errors::ImportError;
use std::collections::BTreeMap;

pub struct CsvTable {
    pub file: String,
    columns: BTreeMap<String, usize>,
    rows: Vec<(u64, csv::StringRecord)>,
}

/// One row of a [`CsvTable`].
pub struct CsvRow<'a> {
    table: &'a CsvTable,
    line: u64,
    record: &'a csv::StringRecord,
}

impl CsvTable {
    /// Reads `text`; every column in `required` must be there, and nothing else may be (a
    /// misspelt column would otherwise be silently ignored).
    pub fn read(
        file: &str,
        text: &str,
        required: &[&str],
        optional: &[&str],
    ) -> Result<Self, Vec<ImportError>> {
        let mut reader = csv::ReaderBuilder::new()
            .trim(csv::Trim::All)
            .flexible(false)
            .from_reader(text.as_bytes());
        let headers = reader
            .headers()
            .map_err(|e| vec![ImportError::file(file, format!("unreadable header: {e}"))])?
            .clone();
        let mut errors = Vec::new();
        let mut columns = BTreeMap::new();
        for (index, name) in headers.iter().enumerate() {
            let name = name.trim_start_matches('\u{feff}').to_lowercase();
            if !required.contains(&name.as_str()) && !optional.contains(&name.as_str()) {
                errors.push(ImportError::at(
                    file,
                    "row 1".into(),
                    &name,
                    format!(
                        "unknown column (the columns are: {})",
                        [required, optional].concat().join(", ")
                    ),
                ));
            } else if columns.insert(name.clone(), index).is_some() {
                errors.push(ImportError::at(
                    file,
                    "row 1".into(),
                    &name,
                    "column given twice",
                ));
            }
        }
        for name in required {
            if !columns.contains_key(*name) {
                errors.push(ImportError::at(
                    file,
                    "row 1".into(),
                    name,
                    "missing column",
                ));
            }
        }
        let mut rows = Vec::new();
        for record in reader.records() {
            match record {
                Ok(record) => {
                    let line = record.position().map_or(0, |p| p.line());
                    if record.iter().all(str::is_empty) {
                        continue;
                    }
                    rows.push((line, record));
                }
                Err(e) => {
                    let line = e.position().map_or(0, |p| p.line());
                    errors.push(ImportError::at(
                        file,
                        format!("row {line}"),
                        "",
                        e.to_string(),
                    ));
                }
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Self {
            file: file.to_string(),
            columns,
            rows,
        })
    }

    pub fn rows(&self) -> impl Iterator<Item = CsvRow<'_>> {
        self.rows.iter().map(|(line, record)| CsvRow {
            table: self,
            line: *line,
            record,
        })
    }
}

impl CsvRow<'_> {
    pub fn place(&self) -> String {
        format!("row {}", self.line)
    }

    /// The cell, empty when the column is optional and absent.
    pub fn get(&self, field: &str) -> &str {
        self.table
            .columns
            .get(field)
            .and_then(|&i| self.record.get(i))
            .unwrap_or("")
    }

    pub fn error(&self, field: &str, message: impl Into<String>) -> ImportError {
        ImportError::at(&self.table.file, self.place(), field, message)
    }

    /// A cell that must not be empty.
    pub fn required(&self, field: &str) -> Result<&str, ImportError> {
        match self.get(field) {
            "" => Err(self.error(field, "is empty")),
            value => Ok(value),
        }
    }

    /// A required cell parsed by `parse`, whose error says what was expected.
    pub fn parsed<T>(
        &self,
        field: &str,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<T, ImportError> {
        let value = self.required(field)?;
        parse(value).map_err(|expected| self.error(field, format!("{value:?}: {expected}")))
    }

    /// An optional cell parsed by `parse` (`None` when empty).
    pub fn parsed_opt<T>(
        &self,
        field: &str,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<Option<T>, ImportError> {
        match self.get(field) {
            "" => Ok(None),
            _ => self.parsed(field, parse).map(Some),
        }
    }
}
