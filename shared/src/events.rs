//! `Run Finished` events on the deployment's EventBridge bus: one per run's end, emitted at least
//! once, with the run's id as the id consumers deduplicate on. EventBridge rules then give users
//! e-mail, chat or Step Functions without our code.
//!
//! At least once: the worker emits after the run's end is written and before its message is
//! acknowledged; if the emit fails, the message comes back, finds the run ended, and emits again.

use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use aws_sdk_eventbridge::Client;
use serde_json::{json, Value};

use crate::domain::run::Run;
use crate::domain::tenant::TenantId;

/// The events' `source`.
pub const SOURCE: &str = "pipelines";
/// The events' `detail-type`.
pub const RUN_FINISHED: &str = "Run Finished";

#[derive(Debug, thiserror::Error)]
#[error("the Run Finished event was not emitted: {0}")]
pub struct EventError(String);

#[derive(Clone, Debug)]
pub struct RunEvents {
    client: Client,
    bus: String,
}

/// What a `Run Finished` event carries: the run's summary, and `id` to deduplicate on.
pub fn run_finished_detail(tenant: &TenantId, run: &Run) -> Value {
    let view = run.view();
    let count = |name: &str| view.get(name).cloned().unwrap_or(Value::Null);
    json!({
        "id": run.id,
        "tenantId": tenant.as_str(),
        "pipelineId": run.pipeline_id,
        "runId": run.id,
        "status": run.status.as_str(),
        "trigger": run.trigger,
        "pipelineVersion": run.pipeline_version,
        "scheduledFor": run.scheduled_for,
        "startedAt": run.started_at,
        "completedAt": run.completed_at,
        "durationMs": run.duration_ms,
        "rowsIn": count("rowsIn"),
        "rowsOut": count("rowsOut"),
        "failedRows": count("failedRows"),
        "skippedRows": count("skippedRows"),
        "error": run.error,
    })
}

impl RunEvents {
    pub fn new(client: Client, bus: impl Into<String>) -> Self {
        Self { client, bus: bus.into() }
    }

    /// Emits the `Run Finished` event of `run` (which has ended).
    pub async fn run_finished(&self, tenant: &TenantId, run: &Run) -> Result<(), EventError> {
        let entry = PutEventsRequestEntry::builder()
            .event_bus_name(&self.bus)
            .source(SOURCE)
            .detail_type(RUN_FINISHED)
            .detail(run_finished_detail(tenant, run).to_string())
            .build();
        let out = self.client.put_events().entries(entry).send().await.map_err(|e| {
            use aws_sdk_eventbridge::error::ProvideErrorMetadata;
            EventError(e.code().unwrap_or("unreachable").to_string())
        })?;
        match out.failed_entry_count() {
            0 => Ok(()),
            _ => Err(EventError(out.entries().first().and_then(|e| e.error_code()).unwrap_or("failed").to_string())),
        }
    }
}
