//! The handlers, one per endpoint, and the one `match` that routes to them.

mod api_keys;
mod catalog;
mod pipelines;
mod records;
mod runs;

use lambda_http::Request;

use super::routes::{resolve, Endpoint, Resolved};
use super::Reply;
use crate::app::App;
use crate::domain::connector::Connector;
use crate::domain::schema::Schema;
use crate::domain::tenant::Caller;
use crate::error::ApiError;

pub(super) async fn dispatch(app: &App, endpoint: Endpoint, caller: &Caller, req: &Request) -> Result<Reply, ApiError> {
    use Endpoint::*;
    match endpoint {
        ListPipelines => pipelines::list(app, caller, req).await,
        CreatePipeline => pipelines::create(app, caller, req).await,
        UpdatePipeline => pipelines::update(app, caller, req).await,
        DeletePipeline => pipelines::delete(app, caller, req).await,
        GetPipeline => pipelines::get(app, caller, req).await,
        TriggerRun => runs::trigger_run(app, caller, req).await,
        ListRuns => runs::list(app, caller, req).await,
        GetRun => runs::get(app, caller, req).await,
        CancelRun => runs::cancel(app, caller, req).await,
        ListDeadLetters => records::dead_letters(app, caller, req).await,
        ListRecords => records::rows(app, caller, req).await,
        ListConnectors => catalog::list::<Connector>(app, caller, req).await,
        CreateConnector => catalog::create::<Connector>(app, caller, req).await,
        UpdateConnector => catalog::update::<Connector>(app, caller, req).await,
        DeleteConnector => catalog::delete::<Connector>(app, caller, req).await,
        GetConnector => catalog::get::<Connector>(app, caller, req).await,
        ListSchemas => catalog::list::<Schema>(app, caller, req).await,
        CreateSchema => catalog::create::<Schema>(app, caller, req).await,
        UpdateSchema => catalog::update::<Schema>(app, caller, req).await,
        DeleteSchema => catalog::delete::<Schema>(app, caller, req).await,
        GetSchema => catalog::get::<Schema>(app, caller, req).await,
        ListApiKeys => api_keys::list(app, caller, req).await,
        CreateApiKey => api_keys::create(app, caller, req).await,
        DeleteApiKey => api_keys::delete(app, caller, req).await,
        NotFound => Err(not_found(req)),
    }
}

/// The `$default` route: 405 where the path exists with other methods, else 404.
pub(super) fn not_found(req: &Request) -> ApiError {
    let (method, path) = (req.method().as_str(), req.uri().path());
    match resolve(method, path) {
        Resolved::MethodNotAllowed(allow) => ApiError::MethodNotAllowed { method: method.into(), path: path.into(), allow },
        _ => ApiError::NotFound(format!("no route {method} {path}")),
    }
}
