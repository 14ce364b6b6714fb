//! A dry run's answer: what the next step would do.

use super::*;

impl Publisher {
    /// What the next step would do (a dry run's answer).
    pub(super) fn plan(&self, row: &WorkflowRow, context: Option<&Context>) -> StepReport {
        let rule = context.and_then(|c| c.rule.as_ref());
        let (step, detail) = match (row.lecture.as_ref(), rule) {
            (None, _) => (
                Step::Match,
                "would match the session to a lecture by recorder and time".to_string(),
            ),
            (Some(_), None) => (
                Step::File,
                "would stop: no publishing rule covers the course".to_string(),
            ),
            (Some(_), Some(rule)) => {
                let values = context.map(|c| &c.values);
                let render = |t: &coursewire_teaching::Template| {
                    values.map(|v| t.render(v)).unwrap_or_default()
                };
                let step = Step::ALL
                    .into_iter()
                    .find(|s| !row.done(*s))
                    .unwrap_or(Step::Post);
                let detail = match step {
                    Step::File => format!(
                        "would file as \"{}\" in {}",
                        render(&rule.session_template),
                        render(&rule.folder_template)
                    ),
                    Step::Caption => {
                        format!("would set caption provider {}", rule.caption_provider)
                    }
                    Step::Access => format!("would grant viewers by {}", access_name(rule.access)),
                    Step::Post => format!(
                        "would post the link in module \"{}\"",
                        render(&rule.module_template)
                    ),
                    Step::Audit | Step::Match => "would close the workflow".to_string(),
                };
                (step, detail)
            }
        };
        StepReport {
            step,
            outcome: "would",
            detail,
        }
    }
}
