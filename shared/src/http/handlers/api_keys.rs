//! API keys (admin only): create returns the secret once; list never shows secrets.

use lambda_http::Request;
use serde_json::{json, Value};

use crate::context::Stores;
use crate::domain::api_key::{issue, ApiKey, NewApiKey};
use crate::domain::ids::ApiKeyId;
use crate::domain::now;
use crate::domain::tenant::{Caller, Role};
use crate::error::ApiError;
use crate::http::page::{list_body, PageRequest, MAX_LIMIT};
use crate::http::request::{json_body, query_id};
use crate::http::{json, no_content, Reply};
use crate::store::{DeleteAdminKey, StoreError};

fn view(key: &ApiKey) -> Value {
    json!({ "id": key.id, "name": key.name, "role": key.role, "createdAt": key.created_at, "expiresAt": key.expires_at })
}

pub(super) async fn create(app: &dyn Stores, caller: &Caller, req: &Request) -> Result<Reply, ApiError> {
    let new = NewApiKey::parse(&json_body(req)?, chrono::Utc::now())?;
    let mut issued = issue(&caller.tenant, new.name, new.role, &now());
    issued.stored.expires_at = new.expires_at;
    let max = app.quotas().api_keys;
    if !app.store().create_within(&caller.tenant, &issued.stored, max).await? {
        return Err(ApiError::QuotaExceeded(format!("the tenant already has {max} API keys (its quota); delete one first")));
    }
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

/// Deletes a key. The tenant's last live admin key stays (409): without it nobody could manage
/// keys again. An admin key is deleted on condition that another live one still exists.
pub(super) async fn delete(app: &dyn Stores, caller: &Caller, req: &Request) -> Result<Reply, ApiError> {
    let id = query_id(req, ApiKeyId::parse, "key")?;
    let gone = || ApiError::not_found("api key", id.as_str());
    let key = app.store().get::<ApiKey>(&caller.tenant, id.as_str()).await?.ok_or_else(gone)?;
    if key.role != Role::Admin {
        return match app.store().delete::<ApiKey>(&caller.tenant, id.as_str()).await {
            Ok(()) => Ok(no_content()),
            Err(StoreError::ConditionFailed { .. }) => Err(gone()),
            Err(e) => Err(e.into()),
        };
    }
    let last = || ApiError::Conflict("this is the tenant's last admin key; create another admin key before deleting it".into());
    let keeping = other_admin(app, caller, &id).await?.ok_or_else(last)?;
    match app.store().delete_admin_key(&caller.tenant, &id, &keeping).await? {
        DeleteAdminKey::Deleted => Ok(no_content()),
        DeleteAdminKey::Gone => Err(gone()),
        DeleteAdminKey::LastAdmin => Err(last()),
    }
}

/// A live admin key of the tenant other than `id`, if there is one (keys are few: a page or two).
async fn other_admin(app: &dyn Stores, caller: &Caller, id: &ApiKeyId) -> Result<Option<ApiKeyId>, ApiError> {
    let now = now();
    let mut after: Option<String> = None;
    loop {
        let page = app.store().list::<ApiKey>(&caller.tenant, MAX_LIMIT, after.as_deref()).await?;
        if let Some(other) = page.items.iter().find(|k| k.role == Role::Admin && k.id != *id && k.is_live(&now)) {
            return Ok(Some(other.id.clone()));
        }
        match page.items.last() {
            Some(last) if page.has_more => after = Some(last.id.to_string()),
            _ => return Ok(None),
        }
    }
}
