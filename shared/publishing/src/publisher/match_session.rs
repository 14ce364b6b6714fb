//! The match step: the session's recorder and times against the lectures ending around it.

use super::*;

impl Publisher {
    pub(super) async fn match_session(
        &self,
        recording: &RecordingRow,
    ) -> Result<Effect, StepError> {
        let states = self
            .panopto
            .session_states(std::slice::from_ref(&recording.session_id))
            .await?;
        let Some(status) = states.into_iter().find(|s| s.id == recording.session_id) else {
            return Err(StepError::Permanent(format!(
                "session {} is not in Panopto",
                recording.session_id
            )));
        };
        let Some(start) = status.start_time else {
            return Err(StepError::Permanent(format!(
                "session {} has no start time",
                recording.session_id
            )));
        };
        let end = start
            + status
                .duration()
                .and_then(|d| TimeDelta::from_std(d).ok())
                .unwrap_or_default();
        let capture = Capture {
            recorder_ids: status.remote_recorder_ids.clone(),
            start,
            end,
        };
        let (from, to) = end_window(&capture, self.settings.longest_lecture);
        let lectures: Vec<Lecture> = self
            .teaching
            .lectures_ending(from, to)
            .await?
            .into_iter()
            .map(|r| r.lecture)
            .collect();
        Ok(match match_lecture(&capture, &lectures) {
            Match::One(lecture) => {
                let matched = Matched {
                    section_id: lecture.section_id.clone(),
                    slot: lecture.slot(),
                    course_id: lecture.course_id.clone(),
                    department: lecture.department.clone(),
                };
                let mut detail = format!(
                    "matched to lecture {} of section {} on recorder {}",
                    matched.slot,
                    matched.section_id,
                    capture.recorder_ids.join(", ")
                );
                if let Some(hint) = &recording.lecture_hint
                    && (hint.section_id != matched.section_id || hint.slot != matched.slot)
                {
                    detail.push_str(&format!(
                        " (its events named {}/{}: the recorder and times decide)",
                        hint.section_id, hint.slot
                    ));
                }
                Effect::done(detail, move |row| {
                    row.lecture = Some(matched);
                    row.reason = None;
                    row.status = Status::InProgress;
                })
            }
            Match::Unmatched(why) => Effect {
                outcome: Outcome::Skipped,
                detail: format!("unmatched: {why}"),
                apply: Box::new(move |row| {
                    row.status = Status::Unmatched;
                    row.reason = Some(why);
                }),
            },
        })
    }
}
