//! Pipelines and their runs.

use lambda_http::Request;
use serde_json::{json, Value};

use crate::context::{Queues, Stores};
use crate::domain::ids::PipelineId;
use crate::domain::pipeline::{etag, if_match, NewPipeline, Pipeline, PipelineUpdate};
use crate::domain::purge::Purge;
use crate::domain::tenant::Caller;
use crate::error::ApiError;
use crate::http::page::{list_body, PageRequest};
use crate::http::request::{body_names_something, json_body, path_id, query, query_id};
use crate::http::{claim, json, no_content, replay, Endpoint, Reply};
use crate::store::{PipelineConflict, PipelineQuotas, Refs, StoreError};

/// Optimistic writes retry this often when another writer got in between, then answer 409.
const WRITE_ATTEMPTS: usize = 5;

fn view(p: &Pipeline, refs: &Refs) -> Value {
    let connector = refs.connectors.get(&p.connector_id).map(|c| json!({ "id": c.id, "name": c.name, "type": c.kind }));
    let schema = refs.schemas.get(&p.schema_id).map(|s| json!({ "id": s.id, "name": s.name, "displayName": s.display_name }));
    json!({
        "id": p.id,
        "name": p.name,
        "description": p.description,
        "status": p.status,
        "schedule": p.schedule,
        "timezone": p.timezone.as_deref().unwrap_or("UTC"),
        "executionConfig": p.execution_config,
        "connector": connector,
        "schema": schema,
        "nodes": p.nodes,
        "edges": p.edges,
        "notifications": p.notifications.as_ref().map(|n| n.view()),
        "lastRunAt": p.last_run_at,
        "lastRunStatus": p.last_run_status,
        "nextRunAt": p.next_run_at,
        "createdAt": p.created_at,
        "updatedAt": p.updated_at,
        "version": p.revision,
    })
}

/// A pipeline's answer with its `ETag` (its version).
fn tagged(status: u16, p: &Pipeline, body: &Value) -> Reply {
    let mut reply = json(status, body);
    if let Ok(tag) = etag(p.revision).parse() {
        reply.headers_mut().insert("etag", tag);
    }
    reply
}

/// Refuses a write whose `If-Match` names another version than `current`'s (412).
fn check_if_match(req: &Request, current: &Pipeline) -> Result<(), ApiError> {
    let Some(header) = req.headers().get("if-match") else { return Ok(()) };
    match header.to_str().is_ok_and(|h| if_match(h, current.revision)) {
        true => Ok(()),
        false => Err(ApiError::PreconditionFailed(format!(
            "pipeline {} is at version {} (ETag {}), not the one If-Match names",
            current.id,
            current.revision,
            etag(current.revision)
        ))),
    }
}

async fn view_one(app: &dyn Stores, caller: &Caller, p: &Pipeline) -> Result<Value, ApiError> {
    Ok(view(p, &refs_of(app, caller, p).await?))
}

/// The connector and schema a pipeline names. A write reads them beside itself, not after: its
/// conditions already require both to exist, so the read waits for nothing (one round trip, not
/// two), and its answer is dropped if the write fails.
async fn refs_of(app: &dyn Stores, caller: &Caller, p: &Pipeline) -> Result<Refs, StoreError> {
    app.store().refs(&caller.tenant, &[&p.connector_id], &[&p.schema_id]).await
}

/// The client's answer to a conflict of its write; `None` for a race to retry.
fn reference_error(app: &dyn Stores, conflict: PipelineConflict) -> Option<ApiError> {
    let quotas = app.quotas();
    match conflict {
        PipelineConflict::UnknownConnector => Some(ApiError::field("connectorId", "no connector with this id")),
        PipelineConflict::UnknownSchema => Some(ApiError::field("schemaId", "no schema with this id")),
        PipelineConflict::PipelineQuota => {
            Some(ApiError::QuotaExceeded(format!("the tenant already has {} pipelines (its quota); delete one first", quotas.pipelines)))
        }
        PipelineConflict::FrequentQuota => Some(ApiError::QuotaExceeded(format!(
            "the tenant already has {} pipelines scheduled more often than every 5 minutes (its quota of frequent schedules)",
            quotas.frequent_schedules
        ))),
        PipelineConflict::Changed | PipelineConflict::KeyTaken(_) => None,
    }
}

fn pipeline_quotas(app: &dyn Stores) -> PipelineQuotas {
    let quotas = app.quotas();
    PipelineQuotas { pipelines: quotas.pipelines, frequent_schedules: quotas.frequent_schedules }
}

pub(super) async fn load(app: &dyn Stores, caller: &Caller, id: &PipelineId) -> Result<Pipeline, ApiError> {
    app.store().get::<Pipeline>(&caller.tenant, id.as_str()).await?.ok_or_else(|| ApiError::not_found("pipeline", id.as_str()))
}

pub(super) async fn list(app: &dyn Stores, caller: &Caller, req: &Request) -> Result<Reply, ApiError> {
    let page_req = PageRequest::from_request(req, |s| PipelineId::parse(s).is_some())?;
    let page = app.store().list::<Pipeline>(&caller.tenant, page_req.limit, page_req.after.as_deref()).await?;
    let connectors: Vec<_> = page.items.iter().map(|p| &p.connector_id).collect();
    let schemas: Vec<_> = page.items.iter().map(|p| &p.schema_id).collect();
    let refs = app.store().refs(&caller.tenant, &connectors, &schemas).await?;
    let data = page.items.iter().map(|p| view(p, &refs)).collect();
    Ok(json(200, &list_body(&page, page_req.limit, data, |p| p.id.as_str())))
}

/// The pipeline, or with `?version=N` the graph and settings it had at version N (among the
/// newest 50).
pub(super) async fn get(app: &dyn Stores, caller: &Caller, req: &Request) -> Result<Reply, ApiError> {
    let id = path_id(req, PipelineId::parse, "pipeline")?;
    if let Some(raw) = query(req, "version") {
        let bad = || ApiError::field("version", "must be a version number (1, 2, ...)");
        let version = raw.parse::<u64>().ok().filter(|v| *v >= 1).ok_or_else(bad)?;
        let saved = app.store().pipeline_version(&caller.tenant, &id, version).await?;
        let missing = || ApiError::NotFound(format!("pipeline {id} has no version {version} (the newest 50 are kept)"));
        let saved = saved.ok_or_else(missing)?;
        return Ok(tagged(200, &saved.pipeline, &view_one(app, caller, &saved.pipeline).await?));
    }
    let p = load(app, caller, &id).await?;
    Ok(tagged(200, &p, &view_one(app, caller, &p).await?))
}

/// A pipeline's saved versions, newest first: `{data: [{version, savedAt, name, ...}], hasMore}`.
pub(super) async fn versions(app: &dyn Stores, caller: &Caller, req: &Request) -> Result<Reply, ApiError> {
    let id = path_id(req, PipelineId::parse, "pipeline")?;
    let page = PageRequest::parse(query(req, "limit").as_deref(), None, |_| true)?;
    let before = match query(req, "before") {
        None => None,
        Some(raw) => Some(raw.parse::<u64>().map_err(|_| ApiError::field("before", "must be a version number"))?),
    };
    let (current, versions) =
        futures::join!(load(app, caller, &id), app.store().pipeline_versions(&caller.tenant, &id, page.limit, before));
    let current = current?;
    let (versions, has_more) = versions?;
    let data: Vec<Value> = versions
        .iter()
        .map(|v| {
            json!({
                "version": v.version,
                "savedAt": v.saved_at,
                "name": v.pipeline.name,
                "status": v.pipeline.status,
                "schedule": v.pipeline.schedule,
                "nodes": v.pipeline.nodes.len(),
                "edges": v.pipeline.edges.len(),
            })
        })
        .collect();
    let next = versions.last().filter(|_| has_more).map(|v| v.version);
    Ok(json(200, &json!({ "data": data, "hasMore": has_more, "nextBefore": next, "current": current.revision })))
}

/// Under an `Idempotency-Key` the reply is saved in the pipeline's own transaction, so it is
/// rendered first: the names it shows are read before the write instead of beside it (one
/// round trip more, and never a second pipeline for a retry).
pub(super) async fn create(app: &dyn Stores, caller: &Caller, req: &Request) -> Result<Reply, ApiError> {
    let claim = claim(Endpoint::CreatePipeline, req)?;
    let new = NewPipeline::parse(&json_body(req)?)?;
    let p = new.into_pipeline(PipelineId::generate(), chrono::Utc::now());
    let (written, reply) = match &claim {
        None => {
            let (written, refs) =
                futures::join!(app.store().create_pipeline(&caller.tenant, &p, pipeline_quotas(app), None), refs_of(app, caller, &p));
            (written, refs.map(|refs| view(&p, &refs)))
        }
        Some(claim) => {
            let reply = view(&p, &refs_of(app, caller, &p).await?);
            let saved = claim.save(201, reply.to_string());
            (app.store().create_pipeline(&caller.tenant, &p, pipeline_quotas(app), Some(&saved)).await, Ok(reply))
        }
    };
    match written? {
        Ok(()) => Ok(tagged(201, &p, &reply?)),
        Err(PipelineConflict::KeyTaken(record)) => replay(claim, *record),
        Err(conflict) => Err(reference_error(app, conflict).unwrap_or_else(|| ApiError::Internal("a new pipeline id was taken".into()))),
    }
}

pub(super) async fn update(app: &dyn Stores, caller: &Caller, req: &Request) -> Result<Reply, ApiError> {
    let body = json_body(req)?;
    body_names_something(&body, |s| PipelineId::parse(s).is_some(), "pipeline")?;
    let update = PipelineUpdate::parse(&body)?;
    for _ in 0..WRITE_ATTEMPTS {
        let current = load(app, caller, &update.id).await?;
        check_if_match(req, &current)?;
        let next = update.apply(&current, chrono::Utc::now())?;
        let (written, refs) = futures::join!(
            app.store().update_pipeline(&caller.tenant, &current, &next, app.quotas().frequent_schedules),
            refs_of(app, caller, &next)
        );
        match written? {
            Ok(()) => return Ok(tagged(200, &next, &view(&next, &refs?))),
            Err(conflict) => {
                if let Some(e) = reference_error(app, conflict) {
                    return Err(e);
                }
            }
        }
    }
    Err(ApiError::Conflict(format!("pipeline {} kept changing while being updated; retry", update.id)))
}

/// Deletes a pipeline; its runs go in a purge queued first (a crash after the delete then
/// leaves nothing behind, and a purge whose delete failed finds the pipeline and does nothing).
pub(super) async fn delete(app: &dyn Queues, caller: &Caller, req: &Request) -> Result<Reply, ApiError> {
    let id = query_id(req, PipelineId::parse, "pipeline")?;
    let purge = Purge::Runs { tenant_id: caller.tenant.to_string(), pipeline_id: id.clone() };
    let mut purging = false;
    for _ in 0..WRITE_ATTEMPTS {
        let current = load(app, caller, &id).await?;
        check_if_match(req, &current)?;
        if !purging {
            app.queue()
                .send_purge(purge.clone(), true)
                .await
                .map_err(|e| ApiError::Unavailable(format!("the pipeline was not deleted: {e}")))?;
            purging = true;
        }
        if app.store().delete_pipeline(&caller.tenant, &current).await?.is_ok() {
            super::purge_again(app, purge).await;
            return Ok(no_content());
        }
    }
    Err(ApiError::Conflict(format!("pipeline {id} kept changing while being deleted; retry")))
}
