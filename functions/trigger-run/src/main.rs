//! `POST /api/v1/pipelines/{id}/run`: its handler over its context, on the Lambda runtime.
fn main() -> Result<(), shared::app::Error> {
    shared::app::serve(shared::http::handlers::trigger_run::<shared::context::QueueApi>())
}
