//! Purges ([`crate::domain::purge`]): a deleted pipeline's runs with their dead letters, a
//! deleted schema's rows.
//!
//! A purge is sent before the delete it follows, so a purge may arrive for a delete that failed
//! (the pipeline is in use, changed, or the request died): it then finds its pipeline or schema
//! still there, read consistently, and does nothing. Deleting is idempotent, so a redelivery or
//! a second worker only finds less to delete. A large purge deletes `purge_batch` items
//! ([`crate::domain::purge::PURGE_BATCH`]), then sends the rest on in a new message, so no
//! invocation outlasts its timeout.

use crate::context::{App, Stores};
use crate::domain::pipeline::Pipeline;
use crate::domain::purge::Purge;
use crate::domain::schema::Schema;
use crate::domain::tenant::TenantId;

use super::{Outcome, RunSettings, WorkerError};

pub async fn purge(app: &App, settings: &RunSettings, purge: &Purge) -> Result<Outcome, WorkerError> {
    let tenant = TenantId::parse(purge.tenant_id()).map_err(WorkerError::Malformed)?;
    let (deleted, done) = match purge {
        Purge::Runs { pipeline_id, .. } => {
            if app.store().get::<Pipeline>(&tenant, pipeline_id.as_str()).await?.is_some() {
                return Ok(Outcome::Ignored("the pipeline to purge still exists"));
            }
            let (items, runs) = app.store().run_items(&tenant, pipeline_id, settings.purge_batch).await?;
            // A run's dead letters first: once its item is gone, nothing names them.
            for run in &runs {
                app.records.delete_dead_letters(&tenant, run).await?;
            }
            let n = items.len() as u64;
            app.store().delete_items(items).await?;
            (n, n < settings.purge_batch)
        }
        Purge::Rows { schema_id, generation, .. } => {
            if app.store().get::<Schema>(&tenant, schema_id.as_str()).await?.is_some() {
                return Ok(Outcome::Ignored("the schema to purge still exists"));
            }
            app.records.delete_rows_upto(&tenant, schema_id, generation.as_deref(), settings.purge_batch).await?
        }
    };
    if !done {
        app.queue.send_purge(purge.clone(), false).await?;
    }
    tracing::info!(deleted, done, ?purge, "purged");
    Ok(Outcome::Purged { deleted, done })
}
