//! `truncate` as a switch of generations (see `engine::sink`): a truncate run's rows are shown
//! once it completes, and only then are the old ones deleted; a failed or cancelled one leaves
//! the table as it was, and its own rows are deleted.

use super::WorkerError;
use crate::context::{App, Stores};
use crate::domain::ids::RunId;
use crate::domain::pipeline::{LoadMode, Pipeline};
use crate::domain::run::RunStatus;
use crate::domain::tenant::TenantId;

/// What showing a run's rows replaced: `Some(previous generation)` for a truncate run.
pub(super) type Shown = Option<Option<String>>;

fn truncates(pipeline: &Pipeline) -> bool {
    pipeline.execution_config.load_mode == Some(LoadMode::Truncate)
}

/// Before a truncate run that completed is marked so: readers switch to its rows. Another
/// attempt of the same run writes the same generation, so switching twice is harmless.
pub(super) async fn show(app: &App, tenant: &TenantId, pipeline: &Pipeline, run: &RunId, status: RunStatus) -> Result<Shown, WorkerError> {
    if !truncates(pipeline) || !matches!(status, RunStatus::Completed | RunStatus::CompletedWithErrors) {
        return Ok(None);
    }
    Ok(Some(app.store().switch_generation(tenant, &pipeline.schema_id, run.as_str()).await?))
}

/// After a truncate run ended: deletes the rows no reader sees any more (the generation it
/// replaced, or its own if it did not complete). Best effort: rows a failure here leaves behind
/// are never read, only stored.
pub(super) async fn tidy(app: &App, tenant: &TenantId, pipeline: &Pipeline, run: &RunId, status: RunStatus, shown: Shown) {
    if !truncates(pipeline) {
        return;
    }
    let records = &app.records;
    let unseen = match (shown, status) {
        (Some(previous), _) if previous.as_deref() != Some(run.as_str()) => previous,
        (Some(_), _) => return,
        (None, RunStatus::Completed | RunStatus::CompletedWithErrors) => return,
        (None, _) => Some(run.to_string()),
    };
    match records.drop_generation(tenant, &pipeline.schema_id, unseen.as_deref()).await {
        Ok(n) => tracing::info!(rows = n, "rows of an unshown generation deleted"),
        Err(e) => tracing::warn!(cause = %e.message, "rows of an unshown generation were not deleted"),
    }
}
