//! A pipeline's runs: trigger, list, get, cancel.

use lambda_http::{Request, RequestExt};

use super::pipelines::load;
use crate::context::{Queues, Stores};
use crate::domain::ids::{PipelineId, RunId};
use crate::domain::now;
use crate::domain::run::{Run, RunStatus, Trigger};
use crate::domain::tenant::Caller;
use crate::error::ApiError;
use crate::http::page::{encode_cursor, fitting, PageRequest};
use crate::http::request::{path_id, query};
use crate::http::{claim, json, replay, Endpoint, Reply};
use crate::store::CancelRun;
use crate::trigger::{created, trigger, TriggerError};

pub(super) fn run_path(req: &Request) -> Result<(PipelineId, RunId), ApiError> {
    let pipeline = path_id(req, PipelineId::parse, "pipeline")?;
    let raw = req.path_parameters_ref().and_then(|p| p.first("runId")).unwrap_or_default();
    let run = RunId::parse(raw).ok_or_else(|| ApiError::not_found("run", raw))?;
    Ok((pipeline, run))
}

pub(super) async fn trigger_run(app: &dyn Queues, caller: &Caller, req: &Request) -> Result<Reply, ApiError> {
    let id = path_id(req, PipelineId::parse, "pipeline")?;
    let claim = claim(Endpoint::TriggerRun, req)?;
    let pipeline = load(app, caller, &id).await?;
    let answer = trigger(app, &caller.tenant, &pipeline, Trigger::Manual, None, claim.as_ref(), None).await;
    triggered(&id, claim, answer)
}

/// `POST …/runs/{runId}/rerun`: a new run of an ended run's pipeline version (`rerunOf` names
/// it). A run still pending or running is a 409.
pub(super) async fn rerun(app: &dyn Queues, caller: &Caller, req: &Request) -> Result<Reply, ApiError> {
    let (id, run_id) = run_path(req)?;
    let claim = claim(Endpoint::RerunRun, req)?;
    let pipeline = load(app, caller, &id).await?;
    let first = app.store().get_run(&caller.tenant, &id, &run_id).await?.ok_or_else(|| ApiError::not_found("run", run_id.as_str()))?;
    if !first.status.is_finished() {
        return Err(ApiError::Conflict(format!("run {run_id} is {}; only an ended run can run again", first.status.as_str())));
    }
    let answer = trigger(app, &caller.tenant, &pipeline, Trigger::Rerun, None, claim.as_ref(), Some(&first)).await;
    triggered(&id, claim, answer)
}

/// A trigger's answer: 201 and the run, or why not.
fn triggered(id: &PipelineId, claim: Option<crate::idempotency::Claim>, answer: Result<Run, TriggerError>) -> Result<Reply, ApiError> {
    match answer {
        Ok(run) => {
            let (status, body) = created(&run);
            Ok(json(status, &body))
        }
        Err(TriggerError::KeyTaken(record)) => replay(claim, *record),
        Err(TriggerError::PipelineGone) => Err(ApiError::not_found("pipeline", id.as_str())),
        Err(TriggerError::AtCapacity(max)) => Err(ApiError::Conflict(format!(
            "pipeline {id} already has {max} active runs (maxConcurrentRuns) and its overlap policy is skip"
        ))),
        Err(TriggerError::TenantAtQuota(max)) => Err(ApiError::QuotaExceeded(format!(
            "the tenant already has {max} runs pending or running (its quota of runs in flight); retry when some end"
        ))),
        Err(TriggerError::NotQueued { run, cause }) => {
            tracing::error!(run_id = %run.id, %cause, "enqueue failed; run marked failed");
            Err(ApiError::Unavailable(format!("run {} could not be queued and was marked failed; retry", run.id)))
        }
        Err(e) => Err(ApiError::Internal(e.to_string())),
    }
}

/// The newest runs first, as an array (the reference page's shape); `X-Next-Cursor` carries the
/// cursor of the next page when there is one.
pub(super) async fn list(app: &dyn Stores, caller: &Caller, req: &Request) -> Result<Reply, ApiError> {
    let id = path_id(req, PipelineId::parse, "pipeline")?;
    let page = PageRequest::from_request(req, |s| RunId::parse(s).is_some())?;
    let status = match query(req, "status") {
        None => None,
        Some(s) => Some(RunStatus::parse(&s).ok_or_else(|| ApiError::field("status", format!("must be one of {}", RunStatus::NAMES)))?),
    };
    load(app, caller, &id).await?;
    let (runs, mut next) = app.store().list_runs_page(&caller.tenant, &id, page.limit, page.after.as_deref(), status).await?;
    let mut views: Vec<_> = runs.iter().map(|r| r.view()).collect();
    let fits = fitting(&views);
    if fits < views.len() {
        views.truncate(fits);
        next = runs.get(fits.wrapping_sub(1)).map(|r| r.id.to_string());
    }
    let mut reply = json(200, &views);
    if let Some(next) = next.and_then(|n| encode_cursor(&n).parse().ok()) {
        reply.headers_mut().insert("x-next-cursor", next);
    }
    Ok(reply)
}

/// A partitioned run still going shows its partitions' counts as they stand (a finished one
/// carries their sum).
pub(super) async fn get(app: &dyn Stores, caller: &Caller, req: &Request) -> Result<Reply, ApiError> {
    let (pipeline, run) = run_path(req)?;
    let found = app.store().get_run(&caller.tenant, &pipeline, &run).await?.ok_or_else(|| ApiError::not_found("run", run.as_str()))?;
    let mut view = found.view();
    if let (Some(counts), false) = (&found.partitions, found.status.is_finished()) {
        let parts = app.store().list_partitions(&caller.tenant, &pipeline, &run).await?;
        let (stats, mut summary) = crate::domain::report::totals(&parts);
        // Partitions still being listed are counted as pending.
        summary.pending += counts.total.unwrap_or(counts.written).saturating_sub(summary.total);
        summary.total = summary.total.max(counts.total.unwrap_or(0));
        if let (Some(obj), Ok(serde_json::Value::Object(live))) = (view.as_object_mut(), serde_json::to_value(&stats)) {
            obj.extend(live);
            obj.insert("partitions".into(), serde_json::to_value(summary).unwrap_or_default());
        }
    }
    Ok(json(200, &view))
}

/// A pending run is cancelled at once; a running one is asked to stop at its next batch
/// boundary (`cancelRequested`); a finished one cannot be cancelled (409).
pub(super) async fn cancel(app: &dyn Queues, caller: &Caller, req: &Request) -> Result<Reply, ApiError> {
    let (pipeline, run) = run_path(req)?;
    match app.store().cancel_run(&caller.tenant, &pipeline, &run, &now()).await? {
        CancelRun::Cancelled(r) => {
            // No worker will see this run end: the worker is asked to announce it.
            app.queue().announce(&caller.tenant, &r).await;
            Ok(json(200, &r.view()))
        }
        CancelRun::Requested(r) => Ok(json(202, &r.view())),
        CancelRun::Finished(status) => Err(ApiError::Conflict(format!("run {run} already ended {}", status.as_str()))),
        CancelRun::Missing => Err(ApiError::not_found("run", run.as_str())),
    }
}
