//! The campus the lecture-capture benches stand up on moto: a provisioned stage, rooms each
//! with a Panopto recorder, and one department's publishing rule.

use anyhow::{Context, Result};
use coursewire_local::moto::MotoServer;
use coursewire_local::provision::{Deployed, Overrides, provision};
use coursewire_local::repo::repo_root;
use coursewire_local::template::Template;
use coursewire_teaching::{Entry, Room, TeachingStore};
use serde_json::json;

/// The Canvas issuer the benches' stages trust (nothing signs with it: no JWT is verified).
pub const ISSUER: &str = "https://canvas.bench.coursewire";

/// moto from the project's virtualenv, installed on the first run.
pub async fn start_moto() -> Result<MotoServer> {
    crate::report::step("starting moto (first run installs it into .venv)");
    Ok(MotoServer::start(&repo_root()?).await?)
}

/// The repository's template provisioned on moto as stage `name`.
pub async fn stage(moto: &MotoServer, name: &str) -> Result<Deployed> {
    let template = Template::load_repo()?;
    let overrides = Overrides::default()
        .parameter("Stage", name)
        .parameter("CanvasJwtIssuer", ISSUER);
    Ok(provision(&template, &moto.sdk_config(), &overrides).await?)
}

/// The physical name of one of the stage's resources (`TeachingTable`, `IncidentsTopic`, ...).
pub fn table(deployed: &Deployed, id: &str) -> Result<String> {
    deployed
        .ref_value(id)
        .map(str::to_string)
        .with_context(|| format!("no {id}"))
}

/// Room `R<n>` ("Room <n>", UTC) for each recorder, in order, and the `ENG` department's rule
/// with `session_template` and a caption SLA of `caption_sla_hours`.
pub async fn rooms_and_rule(
    store: &dyn TeachingStore,
    recorders: &[String],
    session_template: &str,
    caption_sla_hours: u32,
) -> Result<()> {
    for (r, recorder) in recorders.iter().enumerate() {
        store
            .put(&Entry::Room(Room {
                id: format!("R{r}"),
                building: "Main".into(),
                name: format!("Room {r}"),
                capacity: 100,
                time_zone: chrono_tz::UTC,
                recorder_id: Some(recorder.clone()),
            }))
            .await?;
    }
    store
        .put(&Entry::Rule(serde_json::from_value(json!({
            "scope": "department", "id": "ENG", "folder_template": "Fall/{course_code}",
            "session_template": session_template, "caption_provider": "Panopto",
            "caption_sla_hours": caption_sla_hours, "module_template": "Recordings",
            "access": "section_roster", "post": "before_captions", "enabled": true
        }))?))
        .await?;
    Ok(())
}
