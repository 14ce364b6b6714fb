//! The caption step: the rule's caption provider on the folder.

use super::*;

impl Publisher {
    pub(super) async fn caption(
        &self,
        row: &WorkflowRow,
        rule: &PublishingRule,
    ) -> Result<Effect, StepError> {
        let folder_id = row
            .filed
            .as_ref()
            .map(|f| f.folder_id.clone())
            .ok_or_else(|| StepError::Permanent("captions before filing".into()))?;
        let wanted = rule.caption_provider.clone();
        let settings = self.panopto.folder_settings(&folder_id).await?;
        if settings
            .automatic_caption_provider_name
            .as_deref()
            .is_some_and(|name| name.eq_ignore_ascii_case(&wanted))
        {
            return Ok(Effect::done(
                format!("folder {folder_id} already captions with {wanted}"),
                move |row| row.captions_requested = Some(wanted),
            ));
        }
        let providers = self.caption_providers(&wanted).await?;
        let provider = providers
            .iter()
            .find(|p| p.name.eq_ignore_ascii_case(&wanted))
            .ok_or_else(|| {
                StepError::Permanent(format!(
                    "caption provider \"{wanted}\" is not configured in Panopto (there are: {})",
                    providers
                        .iter()
                        .map(|p| p.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })?;
        self.panopto
            .set_folder_caption_provider(&folder_id, &provider.id)
            .await?;
        Ok(Effect::done(
            format!("captions requested from {wanted} on folder {folder_id}"),
            move |row| row.captions_requested = Some(wanted),
        ))
    }

    /// The site's caption providers, read once per process (they are site configuration),
    /// and again when `wanted` is not among them (it may have been added since).
    pub(super) async fn caption_providers(
        &self,
        wanted: &str,
    ) -> Result<Vec<CaptionProvider>, StepError> {
        let mut known = self.caption_providers.lock().await;
        if let Some(providers) = known.as_ref()
            && providers
                .iter()
                .any(|p| p.name.eq_ignore_ascii_case(wanted))
        {
            return Ok(providers.clone());
        }
        let providers = self.panopto.caption_providers().await?;
        *known = Some(providers.clone());
        Ok(providers)
    }
}
