//! Pipelines: what a request may say of one, and the pipeline as stored.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::graph::{Edge, Graph, GraphInput, Node};
use super::ids::{ConnectorId, PipelineId, SchemaId};
use super::input::{any_text, int_in, one_of, text, Check, Object, Patch};
use super::schedule::{CronSchedule, Timezone};
use super::webhook::Notifications;
use crate::domain::input::InputError;

pub const MAX_NAME: usize = 200;
pub const MAX_DESCRIPTION: usize = 2000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum PipelineStatus {
    Draft,
    #[default]
    Active,
    Paused,
}

impl PipelineStatus {
    const NAMES: &'static str = "draft, active, paused";
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorHandling {
    Skip,
    Fail,
    DeadLetter,
}

/// What a trigger does when `maxConcurrentRuns` runs are already active.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Overlap {
    /// The run waits (`pending`) until a slot frees.
    #[default]
    Queue,
    /// The trigger is refused (409); a schedule skips the slot.
    Skip,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LoadMode {
    Append,
    Upsert,
    Truncate,
}

/// How runs execute. Every value that exists is in range.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionConfig {
    pub batch_size: u32,
    pub parallelism: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partitioning: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_handling: Option<ErrorHandling>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_mode: Option<LoadMode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrent_runs: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overlap: Option<Overlap>,
    /// How long a run may take from its start (`startedAt`), continuations and partitions
    /// included, before it fails with `TIMED_OUT`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<u32>,
}

impl Default for ExecutionConfig {
    fn default() -> Self {
        Self {
            batch_size: 1000,
            parallelism: 1,
            partitioning: None,
            error_handling: None,
            load_mode: None,
            max_concurrent_runs: None,
            overlap: None,
            timeout_seconds: None,
        }
    }
}

/// How a run's source is split over worker invocations (`executionConfig.partitioning`):
/// `"none"`, `"objects"`, or `{"by": "objects", "groupBytes": n}`. Absent means `objects`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Partitioning {
    /// One worker invocation at a time reads the whole source.
    None,
    /// An `s3` source over a prefix: one partition per object, consecutive small objects grouped
    /// until a group holds `group_bytes` (or [`MAX_GROUP_KEYS`] objects).
    Objects { group_bytes: u64 },
}

/// Small objects are grouped up to this many bytes by default: a partition's work then takes a
/// worker about as long as its per-invocation overhead is worth.
pub const DEFAULT_GROUP_BYTES: u64 = 64 * 1024 * 1024;
/// Objects a partition may hold at most (their keys live in the partition's item).
pub const MAX_GROUP_KEYS: usize = 100;
const MAX_GROUP_BYTES: u64 = 10 * 1024 * 1024 * 1024;

impl Partitioning {
    pub fn parse(v: &Value) -> Result<Partitioning, String> {
        const WHAT: &str = "must be \"none\", \"objects\" or {\"by\": \"objects\", \"groupBytes\": n}";
        let by_name = |name: &str| match name {
            "none" => Ok(Partitioning::None),
            "objects" => Ok(Partitioning::Objects { group_bytes: DEFAULT_GROUP_BYTES }),
            _ => Err(WHAT.to_string()),
        };
        match v {
            Value::String(name) => by_name(name),
            Value::Object(obj) => {
                if let Some(unknown) = obj.keys().find(|k| !matches!(k.as_str(), "by" | "groupBytes")) {
                    return Err(format!("has an unknown key '{unknown}': it {WHAT}"));
                }
                let by = by_name(obj.get("by").and_then(Value::as_str).ok_or_else(|| WHAT.to_string())?)?;
                match (by, obj.get("groupBytes")) {
                    (_, None | Some(Value::Null)) => Ok(by),
                    (Partitioning::Objects { .. }, Some(n)) => n
                        .as_u64()
                        .filter(|n| (1..=MAX_GROUP_BYTES).contains(n))
                        .map(|group_bytes| Partitioning::Objects { group_bytes })
                        .ok_or_else(|| format!("groupBytes must be a whole number of bytes from 1 to {MAX_GROUP_BYTES}")),
                    (Partitioning::None, Some(_)) => Err("groupBytes goes with \"by\": \"objects\" only".into()),
                }
            }
            _ => Err(WHAT.to_string()),
        }
    }
}

impl ExecutionConfig {
    /// The partitioning in force: absent means by objects; a stored value that no longer
    /// parses (written before it was checked) means none.
    pub fn partitioning(&self) -> Partitioning {
        match &self.partitioning {
            None => Partitioning::Objects { group_bytes: DEFAULT_GROUP_BYTES },
            Some(v) => Partitioning::parse(v).unwrap_or(Partitioning::None),
        }
    }

    const FIELDS: [&'static str; 8] =
        ["batchSize", "parallelism", "partitioning", "errorHandling", "loadMode", "maxConcurrentRuns", "overlap", "timeoutSeconds"];

    /// The longest `timeoutSeconds`: a week.
    pub const MAX_TIMEOUT_SECONDS: i64 = 7 * 24 * 3600;

    pub fn overlap(&self) -> Overlap {
        self.overlap.unwrap_or_default()
    }

    /// Reads `executionConfig` over `base`: keys given replace, `null` restores the default,
    /// absent keys keep `base`'s value (a JSON merge patch).
    fn read(check: &mut Check, body: &Object, base: &ExecutionConfig) -> Option<ExecutionConfig> {
        let obj = check.object(body, "executionConfig")?;
        check.only_known(&obj, &Self::FIELDS);
        let default = ExecutionConfig::default();
        let mut out = base.clone();
        if let Some(p) = check.patch(&obj, "batchSize", int_in(1, 10_000)) {
            out.batch_size = p.apply(Some(out.batch_size as i64)).map_or(default.batch_size, |n| n as u32);
        }
        if let Some(p) = check.patch(&obj, "parallelism", int_in(1, 64)) {
            out.parallelism = p.apply(Some(out.parallelism as i64)).map_or(default.parallelism, |n| n as u32);
        }
        if let Some(p) = check.patch(&obj, "partitioning", |v| Partitioning::parse(v).map(|_| v.clone())) {
            out.partitioning = p.apply(out.partitioning);
        }
        if let Some(p) = check.patch(&obj, "errorHandling", one_of("skip, fail, dead_letter")) {
            out.error_handling = p.apply(out.error_handling);
        }
        if let Some(p) = check.patch(&obj, "loadMode", one_of("append, upsert, truncate")) {
            out.load_mode = p.apply(out.load_mode);
        }
        if let Some(p) = check.patch(&obj, "maxConcurrentRuns", int_in(1, 100)) {
            out.max_concurrent_runs = p.apply(out.max_concurrent_runs.map(i64::from)).map(|n| n as u32);
        }
        if let Some(p) = check.patch(&obj, "overlap", one_of("queue, skip")) {
            out.overlap = p.apply(out.overlap);
        }
        if let Some(p) = check.patch(&obj, "timeoutSeconds", int_in(1, Self::MAX_TIMEOUT_SECONDS)) {
            out.timeout_seconds = p.apply(out.timeout_seconds.map(i64::from)).map(|n| n as u32);
        }
        Some(out)
    }
}

/// A pipeline as stored. Its graph is embedded: replacing it is one conditional write of one
/// item, so no reader ever sees half of an old graph and half of a new one (see `store`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Pipeline {
    pub id: PipelineId,
    pub name: String,
    pub description: Option<String>,
    pub status: PipelineStatus,
    pub schedule: Option<String>,
    pub timezone: Option<String>,
    pub execution_config: ExecutionConfig,
    pub connector_id: ConnectorId,
    pub schema_id: SchemaId,
    pub nodes: Vec<Node>,
    pub edges: Vec<Edge>,
    /// Where runs' ends are posted (a webhook), if anywhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notifications: Option<Notifications>,
    pub last_run_at: Option<String>,
    pub last_run_status: Option<String>,
    /// The run `lastRunAt` and `lastRunStatus` describe (internal).
    #[serde(default)]
    pub last_run_id: Option<String>,
    /// The next slot of the schedule; only for an active, scheduled pipeline.
    #[serde(default)]
    pub next_run_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    /// Bumped by every write: the condition of the next one (optimistic concurrency). Runs and
    /// the schedule move it too, so clients see `revision` instead.
    pub version: u64,
    /// What clients call the pipeline's `version` (and its `ETag`): 1 when created, and one more
    /// for every change a client makes; never moved by runs or the schedule.
    #[serde(default = "first_revision")]
    pub revision: u64,
}

fn first_revision() -> u64 {
    1
}

/// Past versions kept per pipeline: the newest 50.
pub const VERSIONS_KEPT: u64 = 50;

/// A version of a pipeline as a client last saved it: what `GET /pipelines/{id}?version=N` and
/// `/versions` show, and what a run records it ran (`pipelineVersion`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PipelineVersion {
    pub version: u64,
    pub saved_at: String,
    pub pipeline: Pipeline,
}

impl PipelineVersion {
    pub fn of(pipeline: &Pipeline) -> Self {
        Self { version: pipeline.revision, saved_at: pipeline.updated_at.clone(), pipeline: pipeline.clone() }
    }
}

/// An `If-Match` header against a pipeline's version: `"3"`, `W/"3"`, `3`, a list of them, or
/// `*` (any). `None` when it names no version we could have sent (a 412 too).
pub fn if_match(header: &str, revision: u64) -> bool {
    header
        .split(',')
        .map(str::trim)
        .any(|tag| tag == "*" || tag.trim_start_matches("W/").trim_matches('"').parse::<u64>().is_ok_and(|v| v == revision))
}

/// The `ETag` of a pipeline's version.
pub fn etag(revision: u64) -> String {
    format!("\"{revision}\"")
}

impl Pipeline {
    /// Whether its schedule fires more often than every 5 minutes, active or not: what the
    /// tenant's quota of frequent schedules counts.
    pub fn is_frequent(&self) -> bool {
        self.schedule.as_deref().and_then(|s| CronSchedule::parse(s).ok()).is_some_and(|c| c.is_frequent())
    }

    /// Sets `next_run_at` to the schedule's first slot after `now`; none unless active and scheduled.
    pub fn schedule_next(&mut self, now: DateTime<Utc>) {
        self.next_run_at = self.next_slot_after(now).map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true));
    }

    pub fn next_slot_after(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if self.status != PipelineStatus::Active {
            return None;
        }
        let cron = CronSchedule::parse(self.schedule.as_deref()?).ok()?;
        let tz = self.timezone.as_deref().and_then(|t| Timezone::parse(t).ok()).unwrap_or(Timezone::UTC);
        cron.next_after(now, &tz)
    }

    pub fn graph(&self) -> Graph {
        Graph { nodes: self.nodes.clone(), edges: self.edges.clone() }
    }
}

const CREATE_FIELDS: [&str; 12] = [
    "name",
    "description",
    "status",
    "schedule",
    "timezone",
    "executionConfig",
    "connectorId",
    "schemaId",
    "nodes",
    "edges",
    "notifications",
    "id",
];

fn connector_id(v: &Value) -> Result<ConnectorId, String> {
    v.as_str().and_then(ConnectorId::parse).ok_or_else(|| "must be a connector id (conn_...)".into())
}

fn schema_id(v: &Value) -> Result<SchemaId, String> {
    v.as_str().and_then(SchemaId::parse).ok_or_else(|| "must be a schema id (schema_...)".into())
}

fn schedule(v: &Value) -> Result<CronSchedule, String> {
    CronSchedule::parse(v.as_str().ok_or("must be a string")?)
}

fn timezone(v: &Value) -> Result<Timezone, String> {
    Timezone::parse(v.as_str().ok_or("must be a string")?)
}

/// `POST /pipelines`, checked.
#[derive(Debug, Clone)]
pub struct NewPipeline {
    pub name: String,
    pub description: Option<String>,
    pub status: PipelineStatus,
    pub schedule: Option<CronSchedule>,
    pub timezone: Option<Timezone>,
    pub execution_config: ExecutionConfig,
    pub connector_id: ConnectorId,
    pub schema_id: SchemaId,
    pub graph: Option<GraphInput>,
    pub notifications: Option<Notifications>,
}

impl NewPipeline {
    pub fn parse(body: &Value) -> Result<Self, InputError> {
        let obj = Object::root(body)?;
        let mut check = Check::new();
        check.only_known(&obj, &CREATE_FIELDS[..11]);
        let name = check.required(&obj, "name", text(MAX_NAME));
        let description = check.optional(&obj, "description", any_text(MAX_DESCRIPTION));
        let status = check.optional(&obj, "status", one_of(PipelineStatus::NAMES)).unwrap_or_default();
        let schedule = check.optional(&obj, "schedule", schedule);
        let timezone = check.optional(&obj, "timezone", timezone);
        let execution_config = ExecutionConfig::read(&mut check, &obj, &ExecutionConfig::default()).unwrap_or_default();
        let connector_id = check.required(&obj, "connectorId", connector_id);
        let schema_id = check.required(&obj, "schemaId", schema_id);
        let graph = GraphInput::read(&mut check, &obj);
        let notifications = check.patch(&obj, "notifications", |v| Notifications::parse(v, None));
        check.finish()?;
        match (name, connector_id, schema_id, graph, notifications) {
            (Some(name), Some(connector_id), Some(schema_id), Some(graph), Some(notifications)) => Ok(Self {
                name,
                description,
                status,
                schedule,
                timezone,
                execution_config,
                connector_id,
                schema_id,
                graph,
                notifications: notifications.apply(None),
            }),
            _ => Err(InputError::Inconsistent("pipeline checks passed with a field missing")),
        }
    }

    pub fn into_pipeline(self, id: PipelineId, now: DateTime<Utc>) -> Pipeline {
        let graph = self.graph.map(|g| g.assign(&Graph::default())).unwrap_or_default();
        let stamp = now.to_rfc3339_opts(SecondsFormat::Millis, true);
        let mut pipeline = Pipeline {
            id,
            name: self.name,
            description: self.description,
            status: self.status,
            schedule: self.schedule.map(|s| s.as_str().to_string()),
            timezone: self.timezone.as_ref().map(|t| t.name().to_string()),
            execution_config: self.execution_config,
            connector_id: self.connector_id,
            schema_id: self.schema_id,
            nodes: graph.nodes,
            edges: graph.edges,
            notifications: self.notifications,
            last_run_at: None,
            last_run_status: None,
            last_run_id: None,
            next_run_at: None,
            created_at: stamp.clone(),
            updated_at: stamp,
            version: 1,
            revision: 1,
        };
        pipeline.schedule_next(now);
        pipeline
    }
}

/// `PUT /pipelines`, checked. Applied to the stored pipeline by `apply`.
#[derive(Debug, Clone)]
pub struct PipelineUpdate {
    pub id: PipelineId,
    name: Option<String>,
    description: Patch<String>,
    status: Option<PipelineStatus>,
    schedule: Patch<CronSchedule>,
    timezone: Patch<Timezone>,
    execution_config: Option<Map<String, Value>>,
    pub connector_id: Option<ConnectorId>,
    pub schema_id: Option<SchemaId>,
    graph: Option<GraphInput>,
    /// Checked again in `apply`, where the stored secret is known.
    notifications: Patch<Value>,
}

impl PipelineUpdate {
    pub fn parse(body: &Value) -> Result<Self, InputError> {
        let obj = Object::root(body)?;
        let mut check = Check::new();
        check.only_known(&obj, &CREATE_FIELDS);
        let id = check
            .required(&obj, "id", |v| v.as_str().and_then(PipelineId::parse).ok_or_else(|| "must be a pipeline id (pipe_...)".to_string()));
        let name = check.optional(&obj, "name", text(MAX_NAME));
        let description = check.patch(&obj, "description", any_text(MAX_DESCRIPTION));
        let status = check.optional(&obj, "status", one_of(PipelineStatus::NAMES));
        let schedule = check.patch(&obj, "schedule", schedule);
        let timezone = check.patch(&obj, "timezone", timezone);
        // Checked now against the defaults, merged over the stored config in `apply`.
        let execution_config = check.object(&obj, "executionConfig").map(|_| obj.get("executionConfig"));
        if execution_config.is_some() {
            ExecutionConfig::read(&mut check, &obj, &ExecutionConfig::default());
        }
        let connector_id = check.optional(&obj, "connectorId", connector_id);
        let schema_id = check.optional(&obj, "schemaId", schema_id);
        let graph = GraphInput::read(&mut check, &obj);
        // The mask stands for a stored secret, which `apply` knows: here any secret passes.
        let notifications = check.patch(&obj, "notifications", |v| {
            let stand_in = Notifications { webhook_url: String::new(), secret: String::new() };
            Notifications::parse(v, Some(&stand_in)).map(|_| v.clone())
        });
        check.finish()?;
        match (id, description, schedule, timezone, graph, notifications) {
            (Some(id), Some(description), Some(schedule), Some(timezone), Some(graph), Some(notifications)) => Ok(Self {
                id,
                name,
                description,
                status,
                schedule,
                timezone,
                execution_config: execution_config.flatten().and_then(|v| v.as_object().cloned()),
                connector_id,
                schema_id,
                graph,
                notifications,
            }),
            _ => Err(InputError::Inconsistent("pipeline update checks passed with a field missing")),
        }
    }

    /// The pipeline after this update.
    pub fn apply(&self, current: &Pipeline, now: DateTime<Utc>) -> Result<Pipeline, InputError> {
        let mut next = current.clone();
        if let Some(name) = &self.name {
            next.name = name.clone();
        }
        next.description = self.description.clone().apply(next.description);
        if let Some(status) = self.status {
            next.status = status;
        }
        next.schedule = match &self.schedule {
            Patch::Absent => current.schedule.clone(),
            Patch::Clear => None,
            Patch::Set(cron) => Some(cron.as_str().to_string()),
        };
        next.timezone = match &self.timezone {
            Patch::Absent => current.timezone.clone(),
            Patch::Clear => None,
            Patch::Set(tz) => Some(tz.name().to_string()),
        };
        if let Some(patch) = &self.execution_config {
            let body = serde_json::json!({ "executionConfig": patch });
            let obj = Object::root(&body)?;
            let mut check = Check::new();
            next.execution_config = ExecutionConfig::read(&mut check, &obj, &current.execution_config).unwrap_or_default();
            check.finish()?;
        }
        if let Some(id) = &self.connector_id {
            next.connector_id = id.clone();
        }
        if let Some(id) = &self.schema_id {
            next.schema_id = id.clone();
        }
        next.notifications = match &self.notifications {
            Patch::Absent => current.notifications.clone(),
            Patch::Clear => None,
            Patch::Set(v) => {
                Some(Notifications::parse(v, current.notifications.as_ref()).map_err(|m| InputError::field("notifications", m))?)
            }
        };
        if let Some(graph) = &self.graph {
            let graph = graph.clone().assign(&current.graph());
            next.nodes = graph.nodes;
            next.edges = graph.edges;
        }
        // Only a change of what decides the slots moves them: an unrelated edit must not skip a
        // slot that is due but not yet fired.
        if (&next.schedule, &next.timezone, next.status) != (&current.schedule, &current.timezone, current.status) {
            next.schedule_next(now);
        }
        next.updated_at = now.to_rfc3339_opts(SecondsFormat::Millis, true);
        next.version = current.version + 1;
        next.revision = current.revision + 1;
        Ok(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_match_takes_our_etags_in_every_form() {
        for header in ["\"3\"", "W/\"3\"", "3", "\"1\", \"3\"", "*"] {
            assert!(if_match(header, 3), "{header}");
        }
        for header in ["\"2\"", "", "\"three\"", "W/\"4\""] {
            assert!(!if_match(header, 3), "{header}");
        }
        assert_eq!(etag(7), "\"7\"");
    }

    #[test]
    fn partitioning_has_a_meaning_and_is_checked() {
        use serde_json::json;
        let objects = |group_bytes| Ok(Partitioning::Objects { group_bytes });
        assert_eq!(Partitioning::parse(&json!("objects")), objects(DEFAULT_GROUP_BYTES));
        assert_eq!(Partitioning::parse(&json!("none")), Ok(Partitioning::None));
        assert_eq!(Partitioning::parse(&json!({"by": "objects", "groupBytes": 1024})), objects(1024));
        assert_eq!(Partitioning::parse(&json!({"by": "none"})), Ok(Partitioning::None));
        for bad in [
            json!("rows"),
            json!(4),
            json!({"by": "objects", "groupBytes": 0}),
            json!({"by": "none", "groupBytes": 5}),
            json!({"by": "objects", "size": 5}),
        ] {
            assert!(Partitioning::parse(&bad).is_err(), "{bad}");
        }
        assert_eq!(ExecutionConfig::default().partitioning(), Partitioning::Objects { group_bytes: DEFAULT_GROUP_BYTES });
        let stored = ExecutionConfig { partitioning: Some(json!({"legacy": true})), ..ExecutionConfig::default() };
        assert_eq!(stored.partitioning(), Partitioning::None);
    }
}
