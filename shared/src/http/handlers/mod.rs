//! The handlers, one per endpoint, and the one `match` that routes to them.

mod api_keys;
mod backfills;
mod catalog;
mod console;
mod openapi;
mod pipelines;
#[cfg(feature = "engine")]
mod preview;
mod records;
mod runs;

use futures::future::BoxFuture;
use lambda_http::Request;

use super::routes::{resolve, Endpoint, Resolved};
use super::{Handler, Reply};
#[cfg(feature = "engine")]
use crate::context::Sources;
use crate::context::{Queues, Records, Stores};
use crate::domain::connector::Connector;
use crate::domain::schema::Schema;
use crate::domain::tenant::Caller;
use crate::error::ApiError;

/// What one API function serves: its endpoint (route, role, idempotency) and its handler.
pub struct Function<C> {
    pub endpoint: Endpoint,
    pub handler: Handler<C>,
}

/// One function per endpoint (`$name`), each over the narrowest context its handler needs.
/// Those after `@engine` read tenants' sources, and exist with the `engine` feature only.
macro_rules! functions {
    ($($name:ident $endpoint:ident $needs:ident => $handler:expr;)* @engine $($ename:ident $eendpoint:ident $eneeds:ident => $ehandler:expr;)*) => {
        $(functions!(@one $name $endpoint $needs $handler);)*
        $(#[cfg(feature = "engine")] functions!(@one $ename $eendpoint $eneeds $ehandler);)*

        /// Any endpoint's function, over a context that has everything (the local stack serves
        /// every endpoint from one process). Functions in AWS name theirs instead, and link no
        /// other handler.
        #[cfg(feature = "engine")]
        pub fn function<C: Queues + Records + Sources>(endpoint: Endpoint) -> Function<C> {
            match endpoint {
                $(Endpoint::$endpoint => $name::<C>(),)*
                $(Endpoint::$eendpoint => $ename::<C>(),)*
            }
        }
    };
    (@one $name:ident $endpoint:ident $needs:ident $handler:expr) => {
        #[doc = concat!("The `", stringify!($endpoint), "` endpoint, over any context with [`", stringify!($needs), "`].")]
        pub fn $name<C: $needs>() -> Function<C> {
            // Not generic, so the handler and all it calls are compiled once, in this
            // crate: each function binary then only compiles the few lines that bind it to
            // its context (≈1 s instead of ≈10 s per binary in a release build).
            fn boxed<'a>(app: &'a dyn $needs, caller: &'a Caller, req: &'a Request) -> BoxFuture<'a, Result<Reply, ApiError>> {
                Box::pin($handler(app, caller, req))
            }
            Function { endpoint: Endpoint::$endpoint, handler: |app, caller, req| boxed(app, caller, req) }
        }
    };
}

functions! {
    list_pipelines ListPipelines Stores => pipelines::list;
    create_pipeline CreatePipeline Stores => pipelines::create;
    update_pipeline UpdatePipeline Stores => pipelines::update;
    delete_pipeline DeletePipeline Queues => pipelines::delete;
    get_pipeline GetPipeline Stores => pipelines::get;
    list_pipeline_versions ListPipelineVersions Stores => pipelines::versions;
    trigger_run TriggerRun Queues => runs::trigger_run;
    list_runs ListRuns Stores => runs::list;
    get_run GetRun Stores => runs::get;
    cancel_run CancelRun Queues => runs::cancel;
    rerun_run RerunRun Queues => runs::rerun;
    backfill_pipeline BackfillPipeline Queues => backfills::create;
    get_backfill GetBackfill Stores => backfills::get;
    cancel_backfill CancelBackfill Queues => backfills::cancel;
    list_dead_letters ListDeadLetters Records => records::dead_letters;
    list_records ListRecords Records => records::rows;
    list_connectors ListConnectors Stores => catalog::list::<Connector>;
    create_connector CreateConnector Stores => catalog::create::<Connector>;
    update_connector UpdateConnector Stores => catalog::update::<Connector>;
    delete_connector DeleteConnector Stores => catalog::delete::<Connector>;
    get_connector GetConnector Stores => catalog::get::<Connector>;
    list_schemas ListSchemas Stores => catalog::list::<Schema>;
    create_schema CreateSchema Stores => catalog::create::<Schema>;
    update_schema UpdateSchema Stores => catalog::update::<Schema>;
    delete_schema DeleteSchema Queues => catalog::delete_schema;
    get_schema GetSchema Stores => catalog::get::<Schema>;
    list_api_keys ListApiKeys Stores => api_keys::list;
    create_api_key CreateApiKey Stores => api_keys::create;
    delete_api_key DeleteApiKey Stores => api_keys::delete;
    get_openapi GetOpenapi Stores => openapi::get;
    get_console GetConsole Stores => console::get;
    not_found_route NotFound Stores => unrouted;
    @engine
    preview_pipeline PreviewPipeline Sources => preview::preview;
    test_connector TestConnector Sources => preview::test;
}

/// Sends a deletion's purge once more, now that the delete committed: the first, sent before it
/// and delayed, may have found the item still there if the delete took longer than its delay.
/// Best effort: a lost second send leaves the first, and runs of a gone pipeline are also
/// removed when any of their messages arrives.
async fn purge_again(app: &dyn Queues, purge: crate::domain::purge::Purge) {
    if let Err(e) = app.queue().send_purge(purge, false).await {
        tracing::warn!(cause = %e, "the purge was not sent again after the delete");
    }
}

/// The `$default` route's handler (never reached past authentication: [`super::handle`] answers
/// it first, so that a wrong path is a 404 before it is a 401).
async fn unrouted(_: &dyn Stores, _: &Caller, req: &Request) -> Result<Reply, ApiError> {
    Err(not_found(req))
}

/// The `$default` route: 405 where the path exists with other methods, else 404.
pub(super) fn not_found(req: &Request) -> ApiError {
    let (method, path) = (req.method().as_str(), req.uri().path());
    match resolve(method, path) {
        Resolved::MethodNotAllowed(allow) => ApiError::MethodNotAllowed { method: method.into(), path: path.into(), allow },
        _ => ApiError::NotFound(format!("no route {method} {path}")),
    }
}
