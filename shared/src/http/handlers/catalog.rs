//! Connectors and schemas: the same five endpoints over two kinds.

use lambda_http::Request;
use serde_json::Value;

use crate::context::{Queues, Stores};
use crate::domain::connector::{Connector, ConnectorUpdate, NewConnector};
use crate::domain::ids::{ConnectorId, SchemaId};
use crate::domain::now;
use crate::domain::purge::Purge;
use crate::domain::schema::{NewSchema, Schema, SchemaUpdate};
use crate::domain::source_access::SourceBuckets;
use crate::domain::tenant::Caller;
use crate::error::ApiError;
use crate::http::page::{list_body, PageRequest};
use crate::http::request::{body_names_something, json_body, path_id, query_id};
use crate::http::{json, no_content, Reply};
use crate::store::{Entity, StoreError};

/// What the generic endpoints need to know of a kind.
pub(super) trait Resource: Entity + Sized {
    const NAME: &'static str;
    fn valid_id(s: &str) -> bool;
    type Update;
    fn create(body: &Value, now: &str) -> Result<Self, ApiError>;
    fn parse_update(body: &Value) -> Result<Self::Update, ApiError>;
    /// The id an update names.
    fn update_id(update: &Self::Update) -> String;
    fn apply(update: &Self::Update, current: &Self, now: &str) -> Self;
    /// Rules that need the caller and the deployment, beyond the body's own checks.
    fn admit(&self, _buckets: &SourceBuckets, _caller: &Caller) -> Result<(), ApiError> {
        Ok(())
    }
    /// The item as its tenant sees it.
    fn view(&self, _caller: &Caller) -> Value {
        serde_json::to_value(self).unwrap_or_default()
    }
}

impl Resource for Connector {
    const NAME: &'static str = "connector";
    fn valid_id(s: &str) -> bool {
        ConnectorId::parse(s).is_some()
    }
    fn create(body: &Value, now: &str) -> Result<Self, ApiError> {
        Ok(NewConnector::parse(body)?.into_connector(ConnectorId::generate(), now))
    }
    type Update = ConnectorUpdate;
    fn parse_update(body: &Value) -> Result<ConnectorUpdate, ApiError> {
        Ok(ConnectorUpdate::parse(body)?)
    }
    fn update_id(update: &ConnectorUpdate) -> String {
        update.id.to_string()
    }
    fn apply(update: &ConnectorUpdate, current: &Self, now: &str) -> Self {
        update.apply(current, now)
    }
    fn admit(&self, buckets: &SourceBuckets, caller: &Caller) -> Result<(), ApiError> {
        Ok(self.check_access(&caller.tenant, buckets)?)
    }
    fn view(&self, caller: &Caller) -> Value {
        Connector::view(self, &caller.tenant)
    }
}

impl Resource for Schema {
    const NAME: &'static str = "schema";
    fn valid_id(s: &str) -> bool {
        SchemaId::parse(s).is_some()
    }
    fn create(body: &Value, now: &str) -> Result<Self, ApiError> {
        Ok(NewSchema::parse(body)?.into_schema(SchemaId::generate(), now))
    }
    type Update = SchemaUpdate;
    fn parse_update(body: &Value) -> Result<SchemaUpdate, ApiError> {
        Ok(SchemaUpdate::parse(body)?)
    }
    fn update_id(update: &SchemaUpdate) -> String {
        update.id.to_string()
    }
    fn apply(update: &SchemaUpdate, current: &Self, now: &str) -> Self {
        update.apply(current, now)
    }
}

fn id_of<R: Resource>(raw: &str) -> Option<String> {
    R::valid_id(raw).then(|| raw.to_string())
}

pub(super) async fn list<R: Resource>(app: &dyn Stores, caller: &Caller, req: &Request) -> Result<Reply, ApiError> {
    let page_req = PageRequest::from_request(req, R::valid_id)?;
    let page = app.store().list::<R>(&caller.tenant, page_req.limit, page_req.after.as_deref()).await?;
    let data = page.items.iter().map(|item| item.view(caller)).collect();
    Ok(json(200, &list_body(&page, page_req.limit, data, Entity::id)))
}

pub(super) async fn get<R: Resource>(app: &dyn Stores, caller: &Caller, req: &Request) -> Result<Reply, ApiError> {
    let id = path_id(req, id_of::<R>, R::NAME)?;
    let item = app.store().get::<R>(&caller.tenant, &id).await?.ok_or_else(|| ApiError::not_found(R::NAME, &id))?;
    Ok(json(200, &item.view(caller)))
}

pub(super) async fn create<R: Resource>(app: &dyn Stores, caller: &Caller, req: &Request) -> Result<Reply, ApiError> {
    let item = R::create(&json_body(req)?, &now())?;
    item.admit(app.source_buckets(), caller)?;
    app.store().create(&caller.tenant, &item).await?;
    Ok(json(201, &item.view(caller)))
}

pub(super) async fn update<R: Resource>(app: &dyn Stores, caller: &Caller, req: &Request) -> Result<Reply, ApiError> {
    let body = json_body(req)?;
    body_names_something(&body, R::valid_id, R::NAME)?;
    let update = R::parse_update(&body)?;
    let id = R::update_id(&update);
    let current = app.store().get::<R>(&caller.tenant, &id).await?.ok_or_else(|| ApiError::not_found(R::NAME, &id))?;
    let next = R::apply(&update, &current, &now());
    next.admit(app.source_buckets(), caller)?;
    match app.store().replace(&caller.tenant, &next).await {
        Ok(()) => Ok(json(200, &next.view(caller))),
        Err(StoreError::ConditionFailed { .. }) => Err(ApiError::not_found(R::NAME, &id)),
        Err(e) => Err(e.into()),
    }
}

pub(super) async fn delete<R: Resource>(app: &dyn Stores, caller: &Caller, req: &Request) -> Result<Reply, ApiError> {
    let id = query_id(req, id_of::<R>, R::NAME)?;
    match app.store().delete_unused::<R>(&caller.tenant, &id).await {
        Ok(()) => Ok(no_content()),
        Err(StoreError::ConditionFailed { .. }) => match app.store().get::<R>(&caller.tenant, &id).await? {
            Some(_) => Err(ApiError::Conflict(format!("{} {id} is used by a pipeline; change or delete the pipeline first", R::NAME))),
            None => Err(ApiError::not_found(R::NAME, &id)),
        },
        Err(e) => Err(e.into()),
    }
}

/// Deletes a schema that no pipeline uses; its rows go in a purge queued first (see
/// [`super::pipelines::delete`] for why first).
pub(super) async fn delete_schema(app: &dyn Queues, caller: &Caller, req: &Request) -> Result<Reply, ApiError> {
    let id = query_id(req, id_of::<Schema>, Schema::NAME)?;
    let schema = app.store().get::<Schema>(&caller.tenant, &id).await?.ok_or_else(|| ApiError::not_found(Schema::NAME, &id))?;
    let purge = Purge::Rows { tenant_id: caller.tenant.to_string(), schema_id: schema.id.clone(), generation: schema.generation.clone() };
    app.queue().send_purge(purge.clone(), true).await.map_err(|e| ApiError::Unavailable(format!("the schema was not deleted: {e}")))?;
    let reply = delete::<Schema>(app, caller, req).await?;
    super::purge_again(app, purge).await;
    Ok(reply)
}
