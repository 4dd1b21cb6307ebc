//! The orders pipeline the benchmarks run: source → rename → filter (`status eq paid`, 9 in 10
//! pass) → mask_pii → target, into a schema of four fields keyed by `id`.

use serde_json::{json, Value};
use shared::app::Error;
use shared::context::{App, Stores};
use shared::domain::connector::{Connector, NewConnector};
use shared::domain::ids::{ConnectorId, PipelineId, SchemaId};
use shared::domain::pipeline::{NewPipeline, Pipeline};
use shared::domain::schema::{NewSchema, Schema};
use shared::domain::tenant::TenantId;
use shared::store::PipelineQuotas;

/// `NewSchema` input for the orders schema.
pub fn orders_schema() -> Value {
    json!({"name": "orders", "fields": [
        {"name": "id", "type": "integer", "primaryKey": true}, {"name": "email", "type": "text"},
        {"name": "status", "type": "text"}, {"name": "total", "type": "decimal"}
    ]})
}

/// `NewPipeline` input for the orders pipeline over `connector` into `schema`.
pub fn orders_pipeline(name: &str, connector: &str, schema: &str, execution_config: Value) -> Value {
    json!({
        "name": name, "connectorId": connector, "schemaId": schema, "executionConfig": execution_config,
        "nodes": [
            {"id": "s", "nodeType": "source"},
            {"id": "r", "nodeType": "transform", "config": {"type": "rename", "mappings": {"OrderId": "id", "Email": "email"}}},
            {"id": "f", "nodeType": "filter", "config": {"condition": {"field": "status", "op": "eq", "value": "paid"}}},
            {"id": "m", "nodeType": "transform", "config": {"type": "mask_pii", "fields": ["email"]}},
            {"id": "t", "nodeType": "target"}
        ],
        "edges": [{"source": "s", "target": "r"}, {"source": "r", "target": "f"}, {"source": "f", "target": "m"}, {"source": "m", "target": "t"}]
    })
}

/// Order `i` as the source carries it.
pub fn order(i: usize) -> Value {
    json!({"OrderId": i, "Email": format!("c{i}@example.com"), "status": if i.is_multiple_of(10) { "refunded" } else { "paid" }, "total": format!("{}.50", i % 900)})
}

/// A connector and the orders schema, in one tenant.
pub struct Catalog {
    pub connector: Connector,
    pub schema: Schema,
}

/// Creates, in `tenant`, the connector `connector` (`NewConnector` input) and the orders schema.
pub async fn create_catalog(app: &App, tenant: &TenantId, connector: &Value) -> Result<Catalog, Error> {
    let now = shared::domain::now();
    let connector = NewConnector::parse(connector)?.into_connector(ConnectorId::generate(), &now);
    let schema = NewSchema::parse(&orders_schema())?.into_schema(SchemaId::generate(), &now);
    app.store().create(tenant, &connector).await?;
    app.store().create(tenant, &schema).await?;
    Ok(Catalog { connector, schema })
}

/// Creates `pipeline` in `tenant` through the store's own transaction, with no quota.
pub async fn create_pipeline(app: &App, tenant: &TenantId, pipeline: &Pipeline) -> Result<(), Error> {
    let unlimited = PipelineQuotas { pipelines: u32::MAX, frequent_schedules: u32::MAX };
    match app.store().create_pipeline(tenant, pipeline, unlimited, None).await? {
        Ok(()) => Ok(()),
        Err(conflict) => Err(format!("pipeline not created: {conflict:?}").into()),
    }
}

/// Creates the orders pipeline `name` over the catalog's connector into its schema, with
/// `execution_config`.
pub async fn create_orders_pipeline(
    app: &App,
    tenant: &TenantId,
    name: &str,
    catalog: &Catalog,
    execution_config: Value,
) -> Result<Pipeline, Error> {
    let body = orders_pipeline(name, catalog.connector.id.as_str(), catalog.schema.id.as_str(), execution_config);
    let pipeline = NewPipeline::parse(&body)?.into_pipeline(PipelineId::generate(), chrono::Utc::now());
    create_pipeline(app, tenant, &pipeline).await?;
    Ok(pipeline)
}
