//! Backfills of a pipeline's past schedule slots: make, read, cancel.

use lambda_http::{Request, RequestExt};

use super::pipelines::load;
use crate::backfill::{cancel as cancel_backfill, next_step, Cancelled};
use crate::context::{Queues, Stores};
use crate::domain::backfill::{BackfillRefused, NewBackfill};
use crate::domain::ids::{BackfillId, PipelineId};
use crate::domain::now;
use crate::domain::tenant::Caller;
use crate::error::ApiError;
use crate::http::request::{json_body, path_id};
use crate::http::{claim, json, replay, Endpoint, Reply};

fn backfill_path(req: &Request) -> Result<(PipelineId, BackfillId), ApiError> {
    let pipeline = path_id(req, PipelineId::parse, "pipeline")?;
    let raw = req.path_parameters_ref().and_then(|p| p.first("backfillId")).unwrap_or_default();
    let backfill = BackfillId::parse(raw).ok_or_else(|| ApiError::not_found("backfill", raw))?;
    Ok((pipeline, backfill))
}

/// `POST /pipelines/{id}/backfill {from, to}`: 202 and the backfill, whose first step is queued.
pub(super) async fn create(app: &dyn Queues, caller: &Caller, req: &Request) -> Result<Reply, ApiError> {
    let id = path_id(req, PipelineId::parse, "pipeline")?;
    let claim = claim(Endpoint::BackfillPipeline, req)?;
    let body = json_body(req)?;
    let pipeline = load(app, caller, &id).await?;
    let range = NewBackfill::parse(&body, &pipeline, chrono::Utc::now()).map_err(|e| match e {
        BackfillRefused::NoSchedule(_) => ApiError::Conflict(e.to_string()),
        BackfillRefused::Input(input) => input.into(),
    })?;
    let backfill = range.into_backfill(BackfillId::generate(), &pipeline.id, &now());
    let view = backfill.view();
    let saved = claim.as_ref().map(|c| c.save(202, view.to_string()));
    if let Err(record) = app.store().put_backfill(&caller.tenant, &backfill, saved.as_ref()).await? {
        return replay(claim, *record);
    }
    if let Err(e) = app.queue().send_delayed(&next_step(&caller.tenant, &backfill), 0).await {
        tracing::error!(backfill_id = %backfill.id, cause = %e, "backfill not queued; removed");
        app.store().delete_backfill(&caller.tenant, &backfill).await?;
        if let Some(saved) = &saved {
            app.store().retract_idempotent(&caller.tenant, &saved.key, saved.record.body.as_deref().unwrap_or_default()).await?;
        }
        return Err(ApiError::Unavailable(format!("backfill {} could not be queued; retry", backfill.id)));
    }
    Ok(json(202, &view))
}

pub(super) async fn get(app: &dyn Stores, caller: &Caller, req: &Request) -> Result<Reply, ApiError> {
    let (pipeline, id) = backfill_path(req)?;
    let found = app.store().get_backfill(&caller.tenant, &pipeline, &id).await?;
    Ok(json(200, &found.ok_or_else(|| ApiError::not_found("backfill", id.as_str()))?.view()))
}

/// Stops a backfill: 200 and the backfill (`cancelledRuns` counts the runs it stopped); 409 if
/// it had already made every run.
pub(super) async fn cancel(app: &dyn Queues, caller: &Caller, req: &Request) -> Result<Reply, ApiError> {
    let (pipeline, id) = backfill_path(req)?;
    match cancel_backfill(app, &caller.tenant, &pipeline, &id).await? {
        Cancelled::Cancelled(b) => Ok(json(200, &b.view())),
        Cancelled::Completed(_) => Err(ApiError::Conflict(format!("backfill {id} already made every run; cancel its runs one by one"))),
        Cancelled::Missing => Err(ApiError::not_found("backfill", id.as_str())),
    }
}
