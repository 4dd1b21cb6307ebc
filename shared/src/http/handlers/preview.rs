//! Looking before running: a pipeline previewed on its source's first records, a connector's
//! source tested. Both read the tenant's source as a run would and write nothing.

use std::time::Duration;

use lambda_http::Request;

use super::pipelines::load;
use crate::context::Sources;
use crate::domain::connector::Connector;
use crate::domain::ids::{ConnectorId, PipelineId};
use crate::domain::preview::PreviewRequest;
use crate::domain::schema::Schema;
use crate::domain::tenant::Caller;
use crate::engine::preview::{preview as run_preview, test_connector};
use crate::error::ApiError;
use crate::http::request::{body_bytes, json_body, path_id};
use crate::http::{json, Reply};

/// A preview gives up reading after this long, well within the function's 30 s and API
/// Gateway's 30 s, and answers what stopped it.
const PREVIEW_DEADLINE: Duration = Duration::from_secs(20);
/// A connector test's deadline: it reads one record.
const TEST_DEADLINE: Duration = Duration::from_secs(10);

/// `POST /pipelines/{id}/preview {limit?, nodes?, edges?}`: 200 and what each node made of the
/// first `limit` records, even when the source or a node failed (the answer's `error`).
pub(super) async fn preview(app: &dyn Sources, caller: &Caller, req: &Request) -> Result<Reply, ApiError> {
    let id = path_id(req, PipelineId::parse, "pipeline")?;
    let body = if body_bytes(req).iter().all(u8::is_ascii_whitespace) { None } else { Some(json_body(req)?) };
    let request = PreviewRequest::parse(body.as_ref())?;
    let pipeline = load(app, caller, &id).await?;
    let tenant = &caller.tenant;
    let (connector, schema) = futures::try_join!(
        app.store().get::<Connector>(tenant, pipeline.connector_id.as_str()),
        app.store().get::<Schema>(tenant, pipeline.schema_id.as_str()),
    )?;
    // A pipeline's connector and schema cannot be deleted while it uses them.
    let gone = |what: &str, id: &str| ApiError::Conflict(format!("the pipeline's {what} {id} no longer exists"));
    let connector = connector.ok_or_else(|| gone("connector", pipeline.connector_id.as_str()))?;
    let schema = schema.ok_or_else(|| gone("schema", pipeline.schema_id.as_str()))?;
    let graph = request.graph(pipeline.graph());
    let seen = run_preview(app.sources(), tenant, &graph, &connector, &schema, request.limit, PREVIEW_DEADLINE).await;
    Ok(json(200, &seen))
}

/// `POST /connectors/{id}/test`: 200 and `{ok, sampleFields, records, error}`.
pub(super) async fn test(app: &dyn Sources, caller: &Caller, req: &Request) -> Result<Reply, ApiError> {
    let id = path_id(req, ConnectorId::parse, "connector")?;
    let connector =
        app.store().get::<Connector>(&caller.tenant, id.as_str()).await?.ok_or_else(|| ApiError::not_found("connector", id.as_str()))?;
    Ok(json(200, &test_connector(app.sources(), &caller.tenant, &connector, TEST_DEADLINE).await))
}
