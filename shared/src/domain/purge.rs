//! Purges: what a deleted pipeline or schema leaves behind (its runs, its rows), removed as
//! queued work by the worker, not by the API function that deleted it. A request cannot outlast
//! a million rows, and a purge that a crash or a timeout cuts short is delivered again.

use serde::{Deserialize, Serialize};

use super::ids::{PipelineId, SchemaId};

/// What the run queue carries for a purge: `{"purge": {...}}`, beside run messages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PurgeMessage {
    pub purge: Purge,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase", rename_all_fields = "camelCase")]
pub enum Purge {
    /// A deleted pipeline's runs.
    Runs { tenant_id: String, pipeline_id: PipelineId },
    /// A deleted schema's rows, of the generation readers saw (`None`: the first).
    Rows { tenant_id: String, schema_id: SchemaId, generation: Option<String> },
}

impl Purge {
    pub fn tenant_id(&self) -> &str {
        match self {
            Self::Runs { tenant_id, .. } | Self::Rows { tenant_id, .. } => tenant_id,
        }
    }
}

/// How long a purge message waits in the queue before a worker may take it: the deletion it
/// follows is sent first (so a crash between them loses nothing), and must have committed by
/// then; a purge that finds its pipeline or schema still there does nothing.
pub const PURGE_DELAY_SECONDS: i32 = 5;

/// Items a worker deletes for one purge message before it sends the rest on in a new one.
pub const PURGE_BATCH: u64 = 20_000;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purge_messages_read_back_and_never_pass_for_run_messages() {
        let schema = SchemaId::parse("schema_019ad0c0a0a07000800000000000c0c2").unwrap();
        let m = PurgeMessage { purge: Purge::Rows { tenant_id: "acme".into(), schema_id: schema, generation: None } };
        let text = serde_json::to_string(&m).unwrap();
        assert_eq!(serde_json::from_str::<PurgeMessage>(&text).unwrap(), m);
        assert!(text.contains(r#""kind":"rows""#) && text.contains(r#""schemaId""#), "{text}");
        assert!(serde_json::from_str::<super::super::run::RunMessage>(&text).is_err());
    }
}
