//! API keys (admin only): create returns the secret once; list never shows secrets.

use lambda_http::Request;
use serde_json::{json, Value};

use crate::context::Stores;
use crate::domain::api_key::{issue, ApiKey, NewApiKey};
use crate::domain::ids::ApiKeyId;
use crate::domain::now;
use crate::domain::tenant::Caller;
use crate::error::ApiError;
use crate::http::page::{list_body, PageRequest};
use crate::http::request::{json_body, query_id};
use crate::http::{json, no_content, Reply};
use crate::store::StoreError;

fn view(key: &ApiKey) -> Value {
    json!({ "id": key.id, "name": key.name, "role": key.role, "createdAt": key.created_at, "expiresAt": key.expires_at })
}

pub(super) async fn create(app: &dyn Stores, caller: &Caller, req: &Request) -> Result<Reply, ApiError> {
    let new = NewApiKey::parse(&json_body(req)?, chrono::Utc::now())?;
    let mut issued = issue(&caller.tenant, new.name, new.role, &now());
    issued.stored.expires_at = new.expires_at;
    app.store().create(&caller.tenant, &issued.stored).await?;
    let mut body = view(&issued.stored);
    body["key"] = json!(issued.key);
    Ok(json(201, &body))
}

pub(super) async fn list(app: &dyn Stores, caller: &Caller, req: &Request) -> Result<Reply, ApiError> {
    let page_req = PageRequest::from_request(req, |s| ApiKeyId::parse(s).is_some())?;
    let page = app.store().list::<ApiKey>(&caller.tenant, page_req.limit, page_req.after.as_deref()).await?;
    let data = page.items.iter().map(view).collect();
    Ok(json(200, &list_body(&page, page_req.limit, data, |k| k.id.as_str())))
}

pub(super) async fn delete(app: &dyn Stores, caller: &Caller, req: &Request) -> Result<Reply, ApiError> {
    let id = query_id(req, ApiKeyId::parse, "key")?;
    match app.store().delete::<ApiKey>(&caller.tenant, id.as_str()).await {
        Ok(()) => Ok(no_content()),
        Err(StoreError::ConditionFailed { .. }) => Err(ApiError::not_found("api key", id.as_str())),
        Err(e) => Err(e.into()),
    }
}
