//! The replay request (the Lambda's JSON input) and its validation into a plan.

use super::ReplayError;
use crate::handoff::ReplayMode;
use chrono::{DateTime, DurationRound, NaiveDate, SecondsFormat, SubsecRound, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// Longest window one replay may cover. Longer windows are split by the operator, which
/// keeps one run within a Lambda's 15 minutes and a mistake within a bounded blast radius.
pub const MAX_WINDOW_DAYS: i64 = 90;

/// Most values per filter (event names, entity keys): they go into a DynamoDB
/// FilterExpression, whose size is limited.
pub const MAX_FILTER_VALUES: usize = 100;

/// Longest request id: it is appended to the content hash (64) in the FIFO deduplication
/// id, which SQS caps at 128 characters.
const MAX_REQUEST_ID: usize = 60;

/// Which inbox events to send to `changes.fifo` again, and how.
///
/// ```json
/// {"from": "2024-03-04T10:00:00Z", "to": "2024-03-04T12:00:00Z",
///  "event_names": ["grade_change"], "republish": false, "dry_run": true}
/// ```
///
/// Unknown fields are refused: a misspelt filter must not silently widen a replay to every
/// event.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplayRequest {
    /// Start of the window by Canvas event time, inclusive. RFC 3339, or a date (00:00 UTC).
    pub from: String,
    /// End of the window, exclusive; defaults to now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// Only these event names (empty: all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub event_names: Vec<String>,
    /// Only these entity keys, e.g. `course:21070000000000042` (empty: all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub entity_keys: Vec<String>,
    /// Re-emit events that were published already (same event id, flagged `replay`), not just
    /// what never made it to the bus.
    #[serde(default)]
    pub republish: bool,
    /// Read and count, send nothing.
    #[serde(default)]
    pub dry_run: bool,
    /// Names the run in messages, logs and metrics; 1-60 of `[A-Za-z0-9_-]`. Generated when
    /// absent. Reusing one within five minutes makes SQS drop the repeated sends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

impl ReplayRequest {
    /// A heal replay of everything from `from` until now.
    pub fn new(from: impl Into<String>) -> Self {
        Self {
            from: from.into(),
            ..Self::default()
        }
    }

    /// Validates the request against the clock `now`.
    pub fn plan(&self, now: DateTime<Utc>) -> Result<ReplayPlan, ReplayError> {
        let from = parse_bound("from", &self.from)?;
        let to = match &self.to {
            Some(to) => parse_bound("to", to)?,
            None => now.trunc_subsecs(6),
        };
        if to <= from {
            return Err(ReplayError::EmptyWindow {
                from: from.to_rfc3339_opts(SecondsFormat::AutoSi, true),
                to: to.to_rfc3339_opts(SecondsFormat::AutoSi, true),
            });
        }
        if to - from > TimeDelta::days(MAX_WINDOW_DAYS) {
            let span = to - from;
            // Round up: 90 days and 1 second is reported as 91.
            let days = span.num_days() + i64::from(span > TimeDelta::days(span.num_days()));
            return Err(ReplayError::WindowTooLong {
                days,
                max: MAX_WINDOW_DAYS,
            });
        }
        let request_id = match &self.request_id {
            Some(id) if valid_request_id(id) => id.clone(),
            Some(id) => return Err(ReplayError::InvalidRequestId(shorten(id))),
            None => generate_request_id(now),
        };
        let event_names = filter_set("event_names", &self.event_names, |name| {
            valid_event_name(name)
                .then(|| name.to_string())
                .ok_or_else(|| ReplayError::InvalidEventName(shorten(name)))
        })?;
        let entity_keys = filter_set("entity_keys", &self.entity_keys, |key| {
            valid_entity_key(key)
                .then(|| key.to_string())
                .ok_or_else(|| ReplayError::InvalidEntityKey(shorten(key)))
        })?;
        Ok(ReplayPlan {
            request_id,
            from,
            to,
            event_names,
            entity_keys,
            mode: if self.republish {
                ReplayMode::Republish
            } else {
                ReplayMode::Heal
            },
            dry_run: self.dry_run,
        })
    }
}

/// A validated request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayPlan {
    pub request_id: String,
    /// Inclusive, truncated to microseconds (the precision of stored event times).
    pub from: DateTime<Utc>,
    /// Exclusive.
    pub to: DateTime<Utc>,
    pub event_names: BTreeSet<String>,
    pub entity_keys: BTreeSet<String>,
    pub mode: ReplayMode,
    pub dry_run: bool,
}

impl ReplayPlan {
    /// The window cut at hour boundaries, in order: the inbox's time buckets are hours, so
    /// each slice reads exactly one bucket (all its shards).
    pub fn hour_slices(&self) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
        let mut slices = Vec::new();
        let mut start = self.from;
        while start < self.to {
            let next_hour = start
                .duration_trunc(TimeDelta::hours(1))
                .map(|hour| hour + TimeDelta::hours(1))
                .unwrap_or(self.to);
            let end = next_hour.min(self.to);
            slices.push((start, end));
            start = end;
        }
        slices
    }
}

fn parse_bound(field: &'static str, text: &str) -> Result<DateTime<Utc>, ReplayError> {
    let text = text.trim();
    let parsed = DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .map(|t| t.and_utc())
        });
    // Stored event times have microsecond precision; a finer bound would compare wrongly.
    parsed
        .map(|t| t.trunc_subsecs(6))
        .ok_or_else(|| ReplayError::InvalidTime {
            field,
            value: shorten(text),
        })
}

fn filter_set(
    field: &'static str,
    values: &[String],
    check: impl Fn(&str) -> Result<String, ReplayError>,
) -> Result<BTreeSet<String>, ReplayError> {
    let set = values
        .iter()
        .map(|v| check(v.trim()))
        .collect::<Result<BTreeSet<_>, _>>()?;
    if set.len() > MAX_FILTER_VALUES {
        return Err(ReplayError::TooManyFilterValues {
            field,
            count: set.len(),
            max: MAX_FILTER_VALUES,
        });
    }
    Ok(set)
}

pub(super) fn valid_request_id(id: &str) -> bool {
    (1..=MAX_REQUEST_ID).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// The rule ingestion applies to event names.
fn valid_event_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'.')
}

/// `<type>:<id>[:<id>...]` within SQS's message group id rules (the key is the group id).
fn valid_entity_key(key: &str) -> bool {
    let mut parts = key.split(':');
    let kind = parts.next().unwrap_or_default();
    (1..=128).contains(&key.len())
        && !kind.is_empty()
        && key.bytes().all(|b| b.is_ascii_graphic())
        && parts.next().is_some_and(|id| !id.is_empty())
}

/// `replay-20240304T101500Z-1a2b3c4d`: sortable by start time, unique enough per run.
fn generate_request_id(now: DateTime<Utc>) -> String {
    let random = uuid::Uuid::new_v4().simple().to_string();
    format!(
        "replay-{}-{}",
        now.format("%Y%m%dT%H%M%SZ"),
        random.get(..8).unwrap_or(&random)
    )
}

/// Values echoed in errors are cut short: they come from whoever invoked the function.
fn shorten(text: &str) -> String {
    const MAX: usize = 80;
    match text.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}
