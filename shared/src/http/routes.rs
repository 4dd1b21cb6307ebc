//! The route table: every endpoint, its method and path, its function, and who may call it.
//! `template.yaml` and the local gateway both follow it (a test checks they agree).

use std::collections::HashMap;

use crate::domain::tenant::Role;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    ListPipelines,
    CreatePipeline,
    UpdatePipeline,
    DeletePipeline,
    GetPipeline,
    ListPipelineVersions,
    /// The graph over the first records of its source, writing nothing.
    PreviewPipeline,
    TriggerRun,
    ListRuns,
    GetRun,
    CancelRun,
    RerunRun,
    /// One run per past schedule slot of a range, queued a window at a time.
    BackfillPipeline,
    GetBackfill,
    CancelBackfill,
    ListDeadLetters,
    ListConnectors,
    CreateConnector,
    UpdateConnector,
    DeleteConnector,
    GetConnector,
    /// The connector's source opened, one record read.
    TestConnector,
    ListSchemas,
    CreateSchema,
    UpdateSchema,
    DeleteSchema,
    GetSchema,
    ListRecords,
    ListApiKeys,
    CreateApiKey,
    DeleteApiKey,
    /// The API's OpenAPI document: public, no key.
    GetOpenapi,
    /// The web console's page: public (it asks for a key, and sends it to the API only).
    GetConsole,
    /// API Gateway's `$default` route: whatever matched no other route (404 or 405).
    NotFound,
}

pub struct Route {
    pub endpoint: Endpoint,
    pub method: &'static str,
    pub path: &'static str,
    /// The Lambda function (and binary) serving it.
    pub function: &'static str,
    /// The weakest role allowed; `None`: no authentication needed.
    pub role: Option<Role>,
}

const R: Option<Role> = Some(Role::Viewer);
const W: Option<Role> = Some(Role::Editor);
const A: Option<Role> = Some(Role::Admin);
const PUBLIC: Option<Role> = None;

macro_rules! routes {
    ($($endpoint:ident $method:literal $path:literal $function:literal $role:ident;)*) => {
        pub const ROUTES: &[Route] = &[
            $(Route { endpoint: Endpoint::$endpoint, method: $method, path: $path, function: $function, role: $role },)*
        ];
    };
}

routes! {
    ListPipelines "GET" "/api/v1/pipelines" "list-pipelines" R;
    CreatePipeline "POST" "/api/v1/pipelines" "create-pipeline" W;
    UpdatePipeline "PUT" "/api/v1/pipelines" "update-pipeline" W;
    DeletePipeline "DELETE" "/api/v1/pipelines" "delete-pipeline" W;
    GetPipeline "GET" "/api/v1/pipelines/{id}" "get-pipeline" R;
    ListPipelineVersions "GET" "/api/v1/pipelines/{id}/versions" "list-pipeline-versions" R;
    PreviewPipeline "POST" "/api/v1/pipelines/{id}/preview" "preview-pipeline" W;
    TriggerRun "POST" "/api/v1/pipelines/{id}/run" "trigger-run" W;
    ListRuns "GET" "/api/v1/pipelines/{id}/runs" "list-runs" R;
    GetRun "GET" "/api/v1/pipelines/{id}/runs/{runId}" "get-run" R;
    CancelRun "POST" "/api/v1/pipelines/{id}/runs/{runId}/cancel" "cancel-run" W;
    RerunRun "POST" "/api/v1/pipelines/{id}/runs/{runId}/rerun" "rerun-run" W;
    BackfillPipeline "POST" "/api/v1/pipelines/{id}/backfill" "backfill-pipeline" W;
    GetBackfill "GET" "/api/v1/pipelines/{id}/backfills/{backfillId}" "get-backfill" R;
    CancelBackfill "POST" "/api/v1/pipelines/{id}/backfills/{backfillId}/cancel" "cancel-backfill" W;
    ListDeadLetters "GET" "/api/v1/pipelines/{id}/runs/{runId}/dead-letters" "list-dead-letters" R;
    ListConnectors "GET" "/api/v1/connectors" "list-connectors" R;
    CreateConnector "POST" "/api/v1/connectors" "create-connector" W;
    UpdateConnector "PUT" "/api/v1/connectors" "update-connector" W;
    DeleteConnector "DELETE" "/api/v1/connectors" "delete-connector" W;
    GetConnector "GET" "/api/v1/connectors/{id}" "get-connector" R;
    TestConnector "POST" "/api/v1/connectors/{id}/test" "test-connector" W;
    ListSchemas "GET" "/api/v1/schemas" "list-schemas" R;
    CreateSchema "POST" "/api/v1/schemas" "create-schema" W;
    UpdateSchema "PUT" "/api/v1/schemas" "update-schema" W;
    DeleteSchema "DELETE" "/api/v1/schemas" "delete-schema" W;
    GetSchema "GET" "/api/v1/schemas/{id}" "get-schema" R;
    ListRecords "GET" "/api/v1/schemas/{id}/records" "list-records" R;
    ListApiKeys "GET" "/api/v1/api-keys" "list-api-keys" A;
    CreateApiKey "POST" "/api/v1/api-keys" "create-api-key" A;
    DeleteApiKey "DELETE" "/api/v1/api-keys" "delete-api-key" A;
    GetOpenapi "GET" "/api/v1/openapi.json" "get-openapi" PUBLIC;
    GetConsole "GET" "/" "get-console" PUBLIC;
}

/// The `$default` route's function.
pub const NOT_FOUND_FUNCTION: &str = "not-found";

impl Endpoint {
    pub fn route(self) -> Option<&'static Route> {
        ROUTES.iter().find(|r| r.endpoint == self)
    }

    /// Whether `Idempotency-Key` is honoured (creating pipelines, triggering and rerunning runs,
    /// backfilling): the handler saves its reply in its own write ([`crate::idempotency`]).
    pub fn idempotent(self) -> bool {
        matches!(self, Self::CreatePipeline | Self::TriggerRun | Self::RerunRun | Self::BackfillPipeline)
    }

    /// API Gateway's route key: `GET /api/v1/pipelines/{id}`, or `$default`.
    pub fn route_key(self) -> String {
        self.route().map_or_else(|| "$default".to_string(), |r| format!("{} {}", r.method, r.path))
    }
}

/// What API Gateway does with a method and path.
#[derive(Debug, PartialEq, Eq)]
pub enum Resolved {
    Route(Endpoint, HashMap<String, String>),
    /// The path exists, but not with this method.
    MethodNotAllowed(Vec<&'static str>),
    NotFound,
}

fn match_path(template: &str, path: &str) -> Option<HashMap<String, String>> {
    let (t, p): (Vec<_>, Vec<_>) = (template.split('/').collect(), path.split('/').collect());
    if t.len() != p.len() {
        return None;
    }
    let mut params = HashMap::new();
    for (t, p) in t.iter().zip(&p) {
        match t.strip_prefix('{').and_then(|t| t.strip_suffix('}')) {
            Some(name) if !p.is_empty() => {
                params.insert(name.to_string(), p.to_string());
            }
            _ if t == p => {}
            _ => return None,
        }
    }
    Some(params)
}

pub fn resolve(method: &str, path: &str) -> Resolved {
    let mut allow = Vec::new();
    for route in ROUTES {
        if let Some(params) = match_path(route.path, path) {
            if route.method.eq_ignore_ascii_case(method) {
                return Resolved::Route(route.endpoint, params);
            }
            allow.push(route.method);
        }
    }
    if allow.is_empty() {
        Resolved::NotFound
    } else {
        Resolved::MethodNotAllowed(allow)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_routes_with_parameters() {
        let Resolved::Route(e, params) = resolve("POST", "/api/v1/pipelines/pipe_1/run") else { panic!() };
        assert_eq!(e, Endpoint::TriggerRun);
        assert_eq!(params["id"], "pipe_1");
        assert_eq!(resolve("GET", "/api/v1/pipelines"), Resolved::Route(Endpoint::ListPipelines, HashMap::new()));
    }

    #[test]
    fn wrong_methods_and_unknown_paths() {
        assert_eq!(resolve("PATCH", "/api/v1/pipelines"), Resolved::MethodNotAllowed(vec!["GET", "POST", "PUT", "DELETE"]));
        assert_eq!(resolve("DELETE", "/api/v1/pipelines/x/runs"), Resolved::MethodNotAllowed(vec!["GET"]));
        assert_eq!(resolve("GET", "/api/v1/nope"), Resolved::NotFound);
        assert_eq!(resolve("GET", "/api/v1/pipelines/"), Resolved::NotFound);
        assert_eq!(resolve("GET", "/api/v1/pipelines//runs"), Resolved::NotFound);
    }

    #[test]
    fn every_endpoint_but_not_found_has_one_route_and_function() {
        let mut functions: Vec<_> = ROUTES.iter().map(|r| r.function).collect();
        functions.sort();
        functions.dedup();
        assert_eq!(functions.len(), ROUTES.len());
        assert_eq!(Endpoint::NotFound.route_key(), "$default");
        assert_eq!(Endpoint::GetPipeline.route_key(), "GET /api/v1/pipelines/{id}");
    }
}
