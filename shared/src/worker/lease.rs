//! The worker's [`Control`]: the lease on what it executes (a run, or one partition of one),
//! renewed by a background task every third of the lease whatever the engine is doing (opening a
//! source, truncating, a slow batch), and at batch boundaries at most every [`BEAT_EVERY`]. Each
//! renewal shows the latest counts and hears whether to stop: cancelled, taken over, or (for a
//! partition) halted because another partition failed the run.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use chrono::{Duration, Utc};
use futures::future::BoxFuture;

use super::RunSettings;
use crate::context::{App, Stores};
use crate::domain::ids::PipelineId;
use crate::domain::run::{Partition, Run};
use crate::domain::stamp;
use crate::domain::tenant::TenantId;
use crate::engine::execute::Stats;
use crate::engine::job::{Control, Stop};
use crate::store::{PartBeat, Store};

/// How often batch boundaries write at most: often enough that a cancel is heard within about a
/// second.
const BEAT_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// What the lease is on.
pub(super) enum Held {
    Run(Box<Run>),
    Partition { pipeline: PipelineId, part: Box<Partition> },
}

pub(super) struct Lease {
    beat: Arc<Beat>,
    deadline: Instant,
    renewer: tokio::task::JoinHandle<()>,
}

/// When a run must have ended: its start plus its pipeline's `timeoutSeconds`, whichever attempt,
/// continuation or partition is executing it.
pub(super) fn timeout_at(run: &Run, timeout_seconds: Option<u32>) -> Option<chrono::DateTime<Utc>> {
    let started = chrono::DateTime::parse_from_rfc3339(run.started_at.as_deref()?).ok()?.with_timezone(&Utc);
    Some(started + Duration::seconds(i64::from(timeout_seconds?)))
}

struct Beat {
    store: Store,
    tenant: TenantId,
    held: Held,
    lease: Duration,
    timeout_at: Option<chrono::DateTime<Utc>>,
    state: Mutex<BeatState>,
}

struct BeatState {
    stop: Option<Stop>,
    stats: Option<serde_json::Value>,
    last: Instant,
}

impl Lease {
    pub(super) fn hold(
        app: &App,
        tenant: &TenantId,
        held: Held,
        settings: &RunSettings,
        timeout_at: Option<chrono::DateTime<Utc>>,
    ) -> Lease {
        let beat = Arc::new(Beat {
            store: app.store().clone(),
            tenant: tenant.clone(),
            held,
            lease: settings.lease,
            timeout_at,
            state: Mutex::new(BeatState { stop: None, stats: None, last: Instant::now() }),
        });
        let every = (settings.lease / 3).to_std().unwrap_or(BEAT_EVERY).max(BEAT_EVERY);
        let background = beat.clone();
        let renewer = tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                if background.stopped().is_some() || background.timed_out() {
                    return;
                }
                if background.since_last() >= every / 2 {
                    background.renew().await;
                }
            }
        });
        Lease { beat, deadline: Instant::now() + settings.time_budget, renewer }
    }

    /// The counts the engine last reported (for a partition stopped midway).
    pub(super) fn last_stats(&self) -> Option<serde_json::Value> {
        self.beat.lock().stats.clone()
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.renewer.abort();
    }
}

impl Beat {
    fn lock(&self) -> MutexGuard<'_, BeatState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn stopped(&self) -> Option<Stop> {
        self.lock().stop
    }

    /// Past the run's timeout: the stop it hears from now on.
    fn timed_out(&self) -> bool {
        let late = self.timeout_at.is_some_and(|at| Utc::now() >= at);
        if late {
            self.lock().stop.get_or_insert(Stop::TimedOut);
        }
        late
    }

    fn since_last(&self) -> std::time::Duration {
        self.lock().last.elapsed()
    }

    async fn renew(&self) {
        let stats = {
            let mut state = self.lock();
            state.last = Instant::now();
            state.stats.clone()
        };
        let until = stamp(Utc::now() + self.lease);
        let heard = match &self.held {
            Held::Run(run) => self.store.heartbeat(&self.tenant, run, &until, stats.as_ref()).await.map(|beat| match beat {
                Some(false) => None,
                Some(true) => Some(Stop::Cancelled),
                None => Some(Stop::LeaseLost),
            }),
            Held::Partition { pipeline, part } => {
                self.store.heartbeat_partition(&self.tenant, pipeline, part, &until, stats.as_ref()).await.map(|beat| match beat {
                    PartBeat::GoOn => None,
                    PartBeat::Stop { cancelled: true } => Some(Stop::Cancelled),
                    PartBeat::Stop { cancelled: false } => Some(Stop::Halted),
                    PartBeat::Lost => Some(Stop::LeaseLost),
                })
            }
        };
        match heard {
            Ok(None) => {}
            Ok(stop) => self.lock().stop = stop,
            // Go on: if DynamoDB stays away the lease lapses and the finish is refused.
            Err(e) => tracing::warn!(cause = %e, "heartbeat failed"),
        }
    }
}

impl Control for Lease {
    fn should_yield(&self) -> bool {
        Instant::now() >= self.deadline
    }

    fn checkpoint<'a>(&'a self, stats: &'a Stats) -> BoxFuture<'a, Result<(), Stop>> {
        Box::pin(async move {
            let due = {
                let mut state = self.beat.lock();
                state.stats = serde_json::to_value(stats).ok();
                state.stop.is_none() && state.last.elapsed() >= BEAT_EVERY
            };
            if self.beat.timed_out() {
                return Err(Stop::TimedOut);
            }
            if due {
                self.beat.renew().await;
            }
            self.beat.stopped().map_or(Ok(()), Err)
        })
    }
}
