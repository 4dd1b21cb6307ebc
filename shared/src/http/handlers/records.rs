//! What runs wrote: a schema's rows, and a run's dead letters. Paged like every list; no `total`
//! (counting rows exactly would cost a read per written row).

use lambda_http::Request;
use serde_json::{json, Value};

use super::runs::run_path;
use crate::context::Records;
use crate::domain::ids::SchemaId;
use crate::domain::schema::Schema;
use crate::domain::tenant::Caller;
use crate::error::ApiError;
use crate::http::page::{encode_cursor, fitting, PageRequest};
use crate::http::request::path_id;
use crate::http::{json, Reply};

fn body(page: (Vec<(String, Value)>, bool), limit: usize) -> Value {
    let (items, more) = page;
    let (keys, mut data): (Vec<String>, Vec<Value>) = items.into_iter().unzip();
    // A page past MAX_PAGE_BYTES ends early, after the last row that fits.
    let fits = fitting(&data);
    data.truncate(fits);
    let more = more || fits < keys.len();
    let next = keys.get(fits.wrapping_sub(1)).filter(|_| more).map(|key| encode_cursor(key));
    let mut body = json!({
        "data": data,
        "hasMore": more,
        "pagination": { "cursor": next, "hasMore": more, "limit": limit },
    });
    if let Some(next) = next {
        body["nextCursor"] = json!(next);
    }
    body
}

pub(super) async fn rows(app: &dyn Records, caller: &Caller, req: &Request) -> Result<Reply, ApiError> {
    let id = path_id(req, SchemaId::parse, "schema")?;
    let page = PageRequest::from_request(req, |k| k.starts_with("K#") || k.starts_with("A#"))?;
    let schema = app.store().get::<Schema>(&caller.tenant, id.as_str()).await?.ok_or_else(|| ApiError::not_found("schema", id.as_str()))?;
    let rows = app.records().rows(&caller.tenant, &schema, page.limit, page.after.as_deref()).await?;
    Ok(json(200, &body(rows, page.limit)))
}

pub(super) async fn dead_letters(app: &dyn Records, caller: &Caller, req: &Request) -> Result<Reply, ApiError> {
    let (pipeline, run) = run_path(req)?;
    let page = PageRequest::from_request(req, |k| k.starts_with("D#"))?;
    app.store().get_run(&caller.tenant, &pipeline, &run).await?.ok_or_else(|| ApiError::not_found("run", run.as_str()))?;
    let letters = app.records().dead_letters(&caller.tenant, &run, page.limit, page.after.as_deref()).await?;
    Ok(json(200, &body(letters, page.limit)))
}
