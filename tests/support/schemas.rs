//! Validates change events (the full EventBridge event a subscriber receives) against the JSON
//! Schemas in `events/schemas/`: one file per detail-type, each `$ref`-ing the common
//! `change-event.schema.json`, which is read from the same folder (never fetched).

use anyhow::{Context, Result, anyhow, bail};
use jsonschema::{Draft, Retrieve, Uri, Validator};
use serde_json::Value;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

/// The common schema every detail-type file refers to.
pub const COMMON_SCHEMA: &str = "change-event.schema.json";

/// `events/schemas/` in this repository.
pub fn schema_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../events/schemas")
}

/// The schema file of a detail-type: `Grade Changed` → `grade-changed.json`.
pub fn schema_file_name(detail_type: &str) -> String {
    let slug: String = detail_type
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    format!("{slug}.json")
}

/// Validates one change event as delivered by EventBridge (`{version, id, detail-type,
/// source, ..., detail}`) against the schema of its `detail-type`. Errors name the schema file
/// and every failing location.
pub fn validate_change_event(event: &Value) -> Result<()> {
    let detail_type = event
        .get("detail-type")
        .and_then(Value::as_str)
        .ok_or_else(|| anyhow!("event has no string `detail-type`"))?;
    let file = schema_file_name(detail_type);
    if !schema_dir().join(&file).is_file() {
        bail!("no schema for detail-type `{detail_type}`: events/schemas/{file} does not exist");
    }
    let validator = validator(&file)
        .with_context(|| format!("unusable schema for detail-type `{detail_type}`"))?;
    let mut problems: Vec<String> = validator
        .iter_errors(event)
        .take(8)
        .map(|e| {
            let at = e.instance_path().to_string();
            let at = if at.is_empty() { "/".to_string() } else { at };
            format!("at {at}: {e}")
        })
        .collect();
    // Several keywords can fail at one spot with the same message (`$ref` plus the refinement).
    problems.dedup();
    if problems.is_empty() {
        Ok(())
    } else {
        bail!(
            "`{detail_type}` event does not match events/schemas/{file}:\n  {}",
            problems.join("\n  ")
        )
    }
}

/// Compiled once per schema file and shared by every test thread.
fn validator(file: &str) -> Result<Arc<Validator>> {
    static CACHE: OnceLock<Mutex<HashMap<String, Arc<Validator>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    if let Some(found) = lock(cache).get(file) {
        return Ok(found.clone());
    }
    let path = schema_dir().join(file);
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading events/schemas/{file}"))?;
    let schema: Value =
        serde_json::from_str(&text).with_context(|| format!("parsing events/schemas/{file}"))?;
    let compiled = jsonschema::options()
        .with_draft(Draft::Draft202012)
        .should_validate_formats(true)
        .with_retriever(LocalSchemas)
        .build(&schema)
        .map_err(|e| anyhow!("compiling events/schemas/{file}: {e}"))?;
    let compiled = Arc::new(compiled);
    lock(cache).insert(file.to_string(), compiled.clone());
    Ok(compiled)
}

/// A poisoned lock only means another test panicked mid-insert; the map is still usable.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Resolves `$ref`s to sibling files in `events/schemas/` by file name; nothing else.
struct LocalSchemas;

impl Retrieve for LocalSchemas {
    fn retrieve(
        &self,
        uri: &Uri<String>,
    ) -> std::result::Result<Value, Box<dyn std::error::Error + Send + Sync>> {
        let name = uri.path().as_str().rsplit('/').next().unwrap_or_default();
        let local = !name.is_empty()
            && name.ends_with(".json")
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'));
        if !local {
            return Err(format!("{uri} is not a schema in events/schemas (no network)").into());
        }
        let text = std::fs::read_to_string(schema_dir().join(name))?;
        Ok(serde_json::from_str(&text)?)
    }
}
