//! The EventBridge tick, every minute: fires due schedules, sweeps stranded runs.
fn main() -> Result<(), shared::app::Error> {
    shared::app::serve_scheduler()
}
