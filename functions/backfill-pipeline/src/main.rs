//! `POST /api/v1/pipelines/{id}/backfill`: its handler over its context, on the Lambda runtime.
fn main() -> Result<(), shared::app::Error> {
    shared::app::serve(shared::http::handlers::backfill_pipeline::<shared::context::QueueApi>())
}
