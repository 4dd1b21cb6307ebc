//! Backfills: one run per schedule slot of a past range, for slots that have none.
//!
//! A backfill is an item that lists its slots; the worker creates their runs a window at a
//! time, never more at once than the pipeline's `maxConcurrentRuns` (or [`DEFAULT_WINDOW`]) and
//! the tenant's quota of runs in flight allow, and comes back later for the rest (a delayed
//! message). Each slot's run is claimed by a marker in the run's own transaction, so a slot that
//! already has a run (fired by the schedule, or by another backfill) is skipped, and a
//! redelivered step never makes a second run.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::ids::{BackfillId, PipelineId, RunId};
use super::input::{Check, InputError, Object};
use super::pipeline::Pipeline;
use super::schedule::{CronSchedule, Timezone};

/// The most slots one backfill may hold.
pub const MAX_SLOTS: usize = 1000;
/// Runs of a backfill live at once when the pipeline sets no `maxConcurrentRuns`.
pub const DEFAULT_WINDOW: u32 = 5;
/// How long a backfill waits before it looks again for room for more runs.
pub const STEP_DELAY_SECONDS: i32 = 10;
/// How long a slot's marker remembers its run, from when it is written (DynamoDB's TTL removes
/// it after).
pub const SLOT_MEMORY_DAYS: i64 = 400;
/// The most runs one step makes: `maxConcurrentRuns` is at most 100.
pub const MAX_WINDOW: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackfillStatus {
    Running,
    Completed,
    Cancelled,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Backfill {
    pub id: BackfillId,
    pub pipeline_id: PipelineId,
    pub from: String,
    pub to: String,
    pub status: BackfillStatus,
    /// Every slot of the range, in order (RFC 3339, as runs' `scheduledFor`).
    pub slots: Vec<String>,
    /// Slots handled so far: each got a run or was skipped.
    pub done: usize,
    pub created: u32,
    pub skipped: u32,
    pub run_ids: Vec<RunId>,
    #[serde(default)]
    pub cancelled_runs: u32,
    pub created_at: String,
    pub updated_at: String,
    /// Bumped by every write: a step or a cancel writes only over what it read.
    #[serde(default)]
    pub version: u64,
    /// The version whose step has been queued (claimed before the send, released if it fails):
    /// one step message per version, so duplicates never fork the chain.
    #[serde(default)]
    pub queued: u64,
}

impl Backfill {
    /// As clients see it: the slot list is long and theirs to compute; its count is shown.
    pub fn view(&self) -> Value {
        serde_json::json!({
            "id": self.id,
            "pipelineId": self.pipeline_id,
            "from": self.from,
            "to": self.to,
            "status": self.status,
            "slots": self.slots.len(),
            "created": self.created,
            "skipped": self.skipped,
            "runIds": self.run_ids,
            "cancelledRuns": self.cancelled_runs,
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
        })
    }

    /// The slots still to handle.
    pub fn remaining(&self) -> &[String] {
        self.slots.get(self.done..).unwrap_or_default()
    }

    /// How many runs of the pipeline may be pending or running while it makes more: one place
    /// under `maxConcurrentRuns` is left to the schedule (unless that is 1).
    pub fn window(pipeline: &Pipeline) -> u32 {
        match pipeline.execution_config.max_concurrent_runs {
            Some(max) => max.saturating_sub(1).max(1),
            None => DEFAULT_WINDOW,
        }
    }

    /// The slots a step may have made runs for without saving them (a crash): the next
    /// [`MAX_WINDOW`] after `done`.
    pub fn unsaved_slots(&self) -> &[String] {
        let end = (self.done + MAX_WINDOW).min(self.slots.len());
        self.slots.get(self.done..end).unwrap_or_default()
    }
}

/// What the run queue carries for a backfill's next step: `{"backfill": {...}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackfillMessage {
    pub backfill: BackfillStep,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackfillStep {
    pub tenant_id: String,
    pub pipeline_id: PipelineId,
    pub backfill_id: BackfillId,
    /// The backfill's version this step follows: a step of another version is stale (a
    /// duplicate, or one that a cancel overtook) and does nothing.
    pub at: u64,
}

/// `POST /pipelines/{id}/backfill {from, to}`, checked against the pipeline's schedule.
#[derive(Debug, Clone)]
pub struct NewBackfill {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub slots: Vec<DateTime<Utc>>,
}

/// Why a backfill cannot be made of a pipeline (as opposed to a malformed request).
#[derive(Debug, thiserror::Error)]
pub enum BackfillRefused {
    #[error("pipeline {0} has no schedule: a backfill runs a schedule's past slots")]
    NoSchedule(PipelineId),
    #[error(transparent)]
    Input(#[from] InputError),
}

impl NewBackfill {
    /// `from` ≤ slot < `to`, both RFC 3339, `to` not after `now`, between 1 and [`MAX_SLOTS`]
    /// slots of the pipeline's schedule in its timezone (paused or not).
    pub fn parse(body: &Value, pipeline: &Pipeline, now: DateTime<Utc>) -> Result<Self, BackfillRefused> {
        let obj = Object::root(body)?;
        let mut check = Check::new();
        check.only_known(&obj, &["from", "to"]);
        let from = check.required(&obj, "from", instant);
        let to = check.required(&obj, "to", instant);
        check.finish()?;
        let (Some(from), Some(to)) = (from, to) else {
            return Err(InputError::Inconsistent("backfill checks passed with a field missing").into());
        };
        let refuse = |field: &str, message: String| BackfillRefused::Input(InputError::field(field, message));
        if from >= to {
            return Err(refuse("to", "must be after from".into()));
        }
        if to > now {
            return Err(refuse(
                "to",
                format!("must not be in the future (now is {}): the schedule fires what is to come", super::stamp(now)),
            ));
        }
        let cron = pipeline.schedule.as_deref().and_then(|s| CronSchedule::parse(s).ok());
        let Some(cron) = cron else { return Err(BackfillRefused::NoSchedule(pipeline.id.clone())) };
        let tz = pipeline.timezone.as_deref().and_then(|t| Timezone::parse(t).ok()).unwrap_or(Timezone::UTC);
        let slots = slots_between(&cron, &tz, from, to, MAX_SLOTS + 1);
        if slots.is_empty() {
            return Err(refuse("from", format!("the range holds no slot of the schedule '{}'", cron.as_str())));
        }
        if slots.len() > MAX_SLOTS {
            return Err(refuse("to", format!("the range holds more than {MAX_SLOTS} slots of the schedule; backfill it in parts")));
        }
        Ok(Self { from, to, slots })
    }

    pub fn into_backfill(self, id: BackfillId, pipeline: &PipelineId, now: &str) -> Backfill {
        Backfill {
            id,
            pipeline_id: pipeline.clone(),
            from: super::stamp(self.from),
            to: super::stamp(self.to),
            status: BackfillStatus::Running,
            slots: self.slots.into_iter().map(super::stamp).collect(),
            done: 0,
            created: 0,
            skipped: 0,
            run_ids: Vec::new(),
            cancelled_runs: 0,
            created_at: now.to_string(),
            updated_at: now.to_string(),
            version: 1,
            queued: 1,
        }
    }
}

/// The schedule's slots with `from` ≤ slot < `to`, at most `max` of them.
fn slots_between(cron: &CronSchedule, tz: &Timezone, from: DateTime<Utc>, to: DateTime<Utc>, max: usize) -> Vec<DateTime<Utc>> {
    let mut slots = Vec::new();
    let mut after = from - chrono::Duration::nanoseconds(1);
    while slots.len() < max {
        match cron.next_after(after, tz) {
            Some(slot) if slot < to => {
                slots.push(slot);
                after = slot;
            }
            _ => break,
        }
    }
    slots
}

fn instant(v: &Value) -> Result<DateTime<Utc>, String> {
    let bad = || "must be an RFC 3339 timestamp (2026-11-01T00:00:00Z)".to_string();
    let text = v.as_str().ok_or_else(bad)?;
    Ok(DateTime::parse_from_rfc3339(text.trim()).map_err(|_| bad())?.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pipeline(schedule: Option<&str>, tz: Option<&str>) -> Pipeline {
        let body = json!({"name": "p", "connectorId": "conn_019ad0c0a0a07000800000000000c0c1", "schemaId": "schema_019ad0c0a0a07000800000000000c0c2",
            "schedule": schedule, "timezone": tz, "status": "paused"});
        let mut body = body;
        body.as_object_mut().unwrap().retain(|_, v| !v.is_null());
        super::super::pipeline::NewPipeline::parse(&body).unwrap().into_pipeline(PipelineId::generate(), at("2026-11-01T00:00:00Z"))
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn parse(p: &Pipeline, from: &str, to: &str) -> Result<NewBackfill, BackfillRefused> {
        NewBackfill::parse(&json!({"from": from, "to": to}), p, at("2026-12-01T00:00:00Z"))
    }

    #[test]
    fn slots_are_the_schedules_in_a_half_open_range_of_its_timezone() {
        let hourly = pipeline(Some("0 * * * *"), None);
        let b = parse(&hourly, "2026-11-30T10:00:00Z", "2026-11-30T13:00:00Z").unwrap();
        assert_eq!(b.slots, vec![at("2026-11-30T10:00:00Z"), at("2026-11-30T11:00:00Z"), at("2026-11-30T12:00:00Z")]);
        // 09:00 in New York is 14:00 UTC in November; a paused pipeline backfills too.
        let daily = pipeline(Some("0 9 * * *"), Some("America/New_York"));
        let b = parse(&daily, "2026-11-28T00:00:00Z", "2026-11-30T00:00:00Z").unwrap();
        assert_eq!(b.slots, vec![at("2026-11-28T14:00:00Z"), at("2026-11-29T14:00:00Z")]);
        let made = b.into_backfill(BackfillId::generate(), &daily.id, "2026-12-01T00:00:00.000Z");
        assert_eq!(
            (made.slots[0].as_str(), made.remaining().len(), made.view()["slots"].as_u64()),
            ("2026-11-28T14:00:00.000Z", 2, Some(2))
        );
    }

    #[test]
    fn a_backfill_is_bounded_and_refused_clearly() {
        let minutely = pipeline(Some("* * * * *"), None);
        // 1000 minutes fit; 1001 do not.
        assert_eq!(parse(&minutely, "2026-11-01T00:00:00Z", "2026-11-01T16:40:00Z").unwrap().slots.len(), 1000);
        let field = |r: Result<NewBackfill, BackfillRefused>| match r {
            Err(BackfillRefused::Input(InputError::Invalid(d))) => d[0].field.clone(),
            other => panic!("{other:?}"),
        };
        assert_eq!(field(parse(&minutely, "2026-11-01T00:00:00Z", "2026-11-01T16:41:00Z")), "to");
        assert_eq!(field(parse(&minutely, "2026-11-02T00:00:00Z", "2026-11-01T00:00:00Z")), "to");
        assert_eq!(field(parse(&minutely, "2026-11-30T00:00:00Z", "2026-12-02T00:00:00Z")), "to");
        assert_eq!(field(parse(&minutely, "yesterday", "2026-11-01T00:00:00Z")), "from");
        let yearly = pipeline(Some("0 0 1 1 *"), None);
        assert_eq!(field(parse(&yearly, "2026-02-01T00:00:00Z", "2026-03-01T00:00:00Z")), "from");
        assert!(matches!(
            parse(&pipeline(None, None), "2026-11-01T00:00:00Z", "2026-11-02T00:00:00Z"),
            Err(BackfillRefused::NoSchedule(_))
        ));
        assert!(NewBackfill::parse(
            &json!({"from": "2026-11-01T00:00:00Z", "to": "2026-11-02T00:00:00Z", "x": 1}),
            &minutely,
            at("2026-12-01T00:00:00Z")
        )
        .is_err());
    }
}
