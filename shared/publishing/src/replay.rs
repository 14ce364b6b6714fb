//! Publish replay: the workflow run again for one recording, or every recording of a
//! section (optionally within a date range), from the orchestrator's direct invoke and the
//! `coursewire` command line. Steps already done are looked at and skipped; `force` takes
//! named steps again (re-post after a module was rebuilt, say); `dry_run` says what each
//! recording's next step would do and changes nothing. Replaying twice changes nothing the
//! second time.

use crate::orchestrator::Orchestrator;
use crate::publisher::{Advanced, Trigger};
use crate::workflow::Step;
use async_trait::async_trait;
use coursewire_runtime::function::{HandlerError, InvokeHandler};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeSet;

/// What to replay (exactly one of `session_id` and `section_id`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublishReplay {
    #[serde(default)]
    pub session_id: Option<String>,
    #[serde(default)]
    pub section_id: Option<String>,
    /// Local dates `YYYY-MM-DD`, inclusive, with `section_id`.
    #[serde(default)]
    pub from: Option<String>,
    #[serde(default)]
    pub to: Option<String>,
    #[serde(default)]
    pub force: Vec<String>,
    #[serde(default)]
    pub dry_run: bool,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReplayError {
    #[error("name either session_id or section_id, not both and not neither")]
    Target,
    #[error("from/to need a section_id")]
    DatesWithoutSection,
    #[error("{field} must be a date YYYY-MM-DD, not `{value}`")]
    Date { field: &'static str, value: String },
    #[error("unknown step `{0}` to force (steps: match, file, caption, access, post, audit)")]
    Step(String),
}

impl PublishReplay {
    pub fn from_value(value: Value) -> Result<Self, String> {
        let request: Self = serde_json::from_value(value)
            .map_err(|e| format!("not a publish replay request: {e}"))?;
        request.check().map_err(|e| e.to_string())?;
        Ok(request)
    }

    pub fn check(&self) -> Result<(), ReplayError> {
        match (&self.session_id, &self.section_id) {
            (Some(_), None) => {
                if self.from.is_some() || self.to.is_some() {
                    return Err(ReplayError::DatesWithoutSection);
                }
            }
            (None, Some(_)) => {}
            _ => return Err(ReplayError::Target),
        }
        for (field, value) in [("from", &self.from), ("to", &self.to)] {
            if let Some(value) = value
                && chrono::NaiveDate::parse_from_str(value, "%Y-%m-%d").is_err()
            {
                return Err(ReplayError::Date {
                    field,
                    value: value.clone(),
                });
            }
        }
        self.steps().map(|_| ())
    }

    pub fn steps(&self) -> Result<BTreeSet<Step>, ReplayError> {
        self.force
            .iter()
            .map(|name| Step::parse(name).ok_or_else(|| ReplayError::Step(name.clone())))
            .collect()
    }
}

/// What a replay did, per recording.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReplayReport {
    pub recordings: Vec<Advanced>,
    /// Recordings that could not be replayed now: (session, why).
    pub failed: Vec<(String, String)>,
}

impl Orchestrator {
    pub async fn replay(&self, request: &PublishReplay) -> Result<ReplayReport, HandlerError> {
        request.check()?;
        let trigger = Trigger {
            force: request.steps()?,
            dry_run: request.dry_run,
            verify: true,
            canvas_event_id: None,
        };
        let sessions: Vec<String> = match (&request.session_id, &request.section_id) {
            (Some(session), _) => vec![session.clone()],
            (None, Some(section)) => self
                .publisher()
                .store()
                .of_section(section, None)
                .await?
                .into_iter()
                .filter(|row| {
                    let date = row
                        .lecture
                        .as_ref()
                        .and_then(|l| l.slot.split('#').next())
                        .unwrap_or_default();
                    request.from.as_deref().is_none_or(|from| date >= from)
                        && request.to.as_deref().is_none_or(|to| date <= to)
                })
                .map(|row| row.session_id)
                .collect(),
            (None, None) => Vec::new(),
        };
        let mut report = ReplayReport {
            recordings: Vec::new(),
            failed: Vec::new(),
        };
        for session in sessions {
            let Some(recording) = self.recording(&session).await? else {
                report
                    .failed
                    .push((session, "no recording events for this session".into()));
                continue;
            };
            match self.publisher().advance(&recording, &trigger).await {
                Ok(advanced) => report.recordings.push(advanced),
                Err(e) => report.failed.push((session, e.to_string())),
            }
        }
        Ok(report)
    }
}

#[async_trait]
impl InvokeHandler for Orchestrator {
    async fn invoke(&self, event: Value) -> Result<Value, HandlerError> {
        let request = PublishReplay::from_value(event)?;
        Ok(serde_json::to_value(self.replay(&request).await?)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn requests_name_one_target_real_dates_and_real_steps() {
        assert!(PublishReplay::from_value(json!({"session_id": "s-1", "force": ["post"]})).is_ok());
        assert!(
            PublishReplay::from_value(
                json!({"section_id": "901", "from": "2026-10-01", "to": "2026-10-31"})
            )
            .is_ok()
        );
        let err = |v: Value| PublishReplay::from_value(v).unwrap_err();
        assert!(err(json!({})).contains("either session_id or section_id"));
        assert!(err(json!({"session_id": "s", "section_id": "9"})).contains("not both"));
        assert!(
            err(json!({"session_id": "s", "from": "2026-10-01"})).contains("need a section_id")
        );
        assert!(err(json!({"section_id": "9", "from": "10/01"})).contains("from must be a date"));
        assert!(
            err(json!({"session_id": "s", "force": ["teleport"]}))
                .contains("unknown step `teleport`")
        );
        assert!(err(json!({"session_id": "s", "extra": 1})).contains("unknown field"));
    }
}
