//! The post step: a published `ExternalUrl` item in the rule's module, checked before acting;
//! a module a person deleted is recreated and the link posted again, once.

use super::*;

impl Publisher {
    /// Posts the link, or (verifying) checks the posted link is still there.
    pub(super) async fn post(
        &self,
        row: &WorkflowRow,
        recording: &RecordingRow,
        context: &Context,
        section: &SectionInfo,
        rule: &PublishingRule,
    ) -> Result<Option<Effect>, StepError> {
        let course_id = section.course_id.clone();
        let module_name = rule.module_template.render(&context.values);
        let title = row
            .filed
            .as_ref()
            .map(|f| f.name.clone())
            .unwrap_or_else(|| rule.session_template.render(&context.values));
        // The link: as posted before, else as Panopto gave it when filing, else asked for.
        let known_url = row
            .posted
            .as_ref()
            .map(|p| p.url.clone())
            .or_else(|| row.filed.as_ref().and_then(|f| f.viewer_url.clone()));
        let url = match known_url {
            Some(url) => url,
            None => self
                .panopto
                .session(&recording.session_id)
                .await?
                .and_then(|s| s.urls)
                .and_then(|u| u.viewer_url)
                .ok_or_else(|| {
                    StepError::Permanent(format!(
                        "Panopto gives no viewer URL for session {}",
                        recording.session_id
                    ))
                })?,
        };
        let modules = self.canvas.modules(&course_id).await?;
        // The module posted in before (by id: people rename modules), else the rule's by name.
        let known = row
            .posted
            .as_ref()
            .and_then(|p| modules.iter().find(|m| m.id == p.module_id));
        let by_name = || {
            modules
                .iter()
                .find(|m| m.name.as_deref() == Some(module_name.as_str()))
        };
        let module: Option<&Module> = known.or_else(by_name);
        let item = module.and_then(|m| {
            m.items
                .iter()
                .find(|i| i.external_url.as_deref() == Some(url.as_str()))
        });
        if let (Some(posted), Some(module), Some(item)) = (&row.posted, module, item)
            && posted.module_id == module.id
            && posted.item_id == item.id
        {
            return Ok(None);
        }
        let repost = row.posted.is_some();
        if repost && row.reposts >= 1 {
            return Err(StepError::Permanent(format!(
                "the recording's link in course {course_id} is gone again after one repost; \
                 a person keeps removing it"
            )));
        }
        let mut detail = Vec::new();
        let module = match module {
            Some(module) => module.clone(),
            None => {
                let created = self.canvas.create_module(&course_id, &module_name).await?;
                self.canvas.publish_module(&course_id, &created.id).await?;
                detail.push(if repost {
                    format!("module \"{module_name}\" was deleted in Canvas: recreated it")
                } else {
                    format!("created module \"{module_name}\"")
                });
                created
            }
        };
        let item = match item {
            Some(item) => {
                detail.push(format!("found the link already posted (item {})", item.id));
                item.clone()
            }
            None => {
                let created = self
                    .canvas
                    .create_item(
                        &course_id,
                        &module.id,
                        &NewExternalUrlItem {
                            title: title.clone(),
                            external_url: url.clone(),
                            position: None,
                            new_tab: true,
                        },
                    )
                    .await?;
                self.canvas
                    .publish_item(&course_id, &module.id, &created.id)
                    .await?;
                detail.push(format!(
                    "{} \"{title}\" in module \"{}\" of course {course_id}",
                    if repost { "posted again" } else { "posted" },
                    module.name.as_deref().unwrap_or(&module_name)
                ));
                created
            }
        };
        let posted = Posted {
            course_id,
            module_id: module.id.clone(),
            item_id: item.id.clone(),
            url,
        };
        Ok(Some(Effect::done(detail.join("; "), move |row| {
            if repost {
                row.reposts += 1;
            }
            row.posted = Some(posted);
        })))
    }
}
