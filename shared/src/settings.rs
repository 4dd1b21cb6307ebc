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
}

impl Default for RunSettings {
    fn default() -> Self {
        Self {
            lease: Duration::seconds(60),
            max_attempts: 3,
            pending_resend: Duration::seconds(120),
            time_budget: std::time::Duration::from_secs(90),
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
        }
    }
}
