//! How runs are held and retried: settings the trigger, the scheduler and the worker share, read
//! from the environment once per container.

use chrono::Duration;

/// How runs are held and retried.
#[derive(Debug, Clone)]
pub struct RunSettings {
    /// How long a worker holds a run without a heartbeat.
    pub lease: Duration,
    /// Attempts before a run whose workers keep dying fails.
    pub max_attempts: u32,
    /// How long a run may stay pending before the sweep sends it again (a lost send).
    pub pending_resend: Duration,
    /// How long one worker invocation may execute a run before it checkpoints and continues in a
    /// follow-up message (below the function's timeout, with room for the last batch).
    pub time_budget: std::time::Duration,
    /// Items one purge message deletes before it sends the rest on in a new one.
    pub purge_batch: u64,
    /// How long a backfill waits before it looks again for room for its next runs.
    pub backfill_step_delay: std::time::Duration,
    /// The wait before a webhook's second attempt (each later one 6 times longer).
    pub webhook_retry_base: std::time::Duration,
    /// How a tick spreads over shard workers.
    pub fanout: Fanout,
}

/// The load the scheduler's defaults are sized for: this many due slots a minute, each fired
/// within a minute of its time (docs/scale.md).
pub const TARGET_SLOTS_PER_MINUTE: u32 = 100_000;

/// What one shard worker is counted on to fire in one tick's budget: 100 slots a second for
/// 40 s, a third of what 16 concurrent fires of about 50 ms each give (docs/scale.md).
pub const SLOTS_PER_WORKER: u32 = 4_000;

/// How a tick spreads over shard workers: each takes `1/workers` of the index's partitions,
/// fires `concurrency` slots at a time, and stops firing at `budget` (the rest are the next
/// tick's, late but fired once).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fanout {
    pub workers: u32,
    pub concurrency: usize,
    pub budget: std::time::Duration,
}

impl Fanout {
    /// Workers for a target of `slots_per_minute`: enough at [`SLOTS_PER_WORKER`] each, as a
    /// power of two so that each takes the same number of the index's partitions.
    pub fn workers_for(slots_per_minute: u32) -> u32 {
        slots_per_minute.div_ceil(SLOTS_PER_WORKER).next_power_of_two().clamp(1, crate::store::index::SHARDS)
    }

    /// `SCHEDULER_WORKERS` (at most the index's partitions), `SCHEDULER_CONCURRENCY`,
    /// `SCHEDULER_BUDGET_SECONDS` override the defaults.
    pub fn from_env() -> Self {
        let num = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u64>().ok()).filter(|n| *n > 0);
        let d = Self::default();
        Self {
            workers: num("SCHEDULER_WORKERS").map_or(d.workers, |n| (n as u32).min(crate::store::index::SHARDS)),
            concurrency: num("SCHEDULER_CONCURRENCY").map_or(d.concurrency, |n| n as usize),
            budget: num("SCHEDULER_BUDGET_SECONDS").map_or(d.budget, std::time::Duration::from_secs),
        }
    }
}

impl Default for Fanout {
    fn default() -> Self {
        Self { workers: Self::workers_for(TARGET_SLOTS_PER_MINUTE), concurrency: 16, budget: std::time::Duration::from_secs(40) }
    }
}

impl Default for RunSettings {
    fn default() -> Self {
        Self {
            lease: Duration::seconds(60),
            max_attempts: 3,
            pending_resend: Duration::seconds(120),
            time_budget: std::time::Duration::from_secs(90),
            purge_batch: crate::domain::purge::PURGE_BATCH,
            backfill_step_delay: std::time::Duration::from_secs(crate::domain::backfill::STEP_DELAY_SECONDS as u64),
            webhook_retry_base: std::time::Duration::from_secs(crate::domain::webhook::RETRY_BASE_SECONDS),
            fanout: Fanout::default(),
        }
    }
}

impl RunSettings {
    /// `RUN_LEASE_SECONDS`, `RUN_MAX_ATTEMPTS`, `RUN_PENDING_RESEND_SECONDS`,
    /// `RUN_TIME_BUDGET_SECONDS` override the defaults.
    pub fn from_env() -> Self {
        let num = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<i64>().ok()).filter(|n| *n > 0);
        let d = Self::default();
        Self {
            lease: num("RUN_LEASE_SECONDS").map_or(d.lease, Duration::seconds),
            max_attempts: num("RUN_MAX_ATTEMPTS").map_or(d.max_attempts, |n| n as u32),
            pending_resend: num("RUN_PENDING_RESEND_SECONDS").map_or(d.pending_resend, Duration::seconds),
            time_budget: num("RUN_TIME_BUDGET_SECONDS").map_or(d.time_budget, |n| std::time::Duration::from_secs(n as u64)),
            purge_batch: d.purge_batch,
            backfill_step_delay: d.backfill_step_delay,
            webhook_retry_base: d.webhook_retry_base,
            fanout: Fanout::from_env(),
        }
    }
}

/// Per-tenant quotas: what one tenant may hold or do at once, so that no tenant starves the
/// others. Every quota refused is a 429 with `Retry-After` (docs/manual.md, "Quotas").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quotas {
    pub pipelines: u32,
    pub api_keys: u32,
    /// Pipelines whose schedule fires more often than every 5 minutes on average
    /// ([`crate::domain::schedule::CronSchedule::is_frequent`]).
    pub frequent_schedules: u32,
    /// Runs pending or running across the tenant's pipelines.
    pub runs_in_flight: u32,
    /// Requests per second per API key (a tenant's keys are capped by `api_keys`).
    pub requests_per_second: u32,
}

impl Default for Quotas {
    fn default() -> Self {
        Self { pipelines: 1000, api_keys: 50, frequent_schedules: 100, runs_in_flight: 200, requests_per_second: 50 }
    }
}

impl Quotas {
    /// `QUOTA_PIPELINES`, `QUOTA_API_KEYS`, `QUOTA_FREQUENT_SCHEDULES`, `QUOTA_RUNS_IN_FLIGHT`,
    /// `QUOTA_REQUESTS_PER_SECOND` override the defaults.
    pub fn from_env() -> Self {
        let num = |name: &str, d: u32| std::env::var(name).ok().and_then(|v| v.parse::<u32>().ok()).filter(|n| *n > 0).unwrap_or(d);
        let d = Self::default();
        Self {
            pipelines: num("QUOTA_PIPELINES", d.pipelines),
            api_keys: num("QUOTA_API_KEYS", d.api_keys),
            frequent_schedules: num("QUOTA_FREQUENT_SCHEDULES", d.frequent_schedules),
            runs_in_flight: num("QUOTA_RUNS_IN_FLIGHT", d.runs_in_flight),
            requests_per_second: num("QUOTA_REQUESTS_PER_SECOND", d.requests_per_second),
        }
    }
}
