//! `POST /api/v1/pipelines/{id}/backfills/{backfillId}/cancel`: its handler over its context, on the Lambda runtime.
fn main() -> Result<(), shared::app::Error> {
    shared::app::serve(shared::http::handlers::cancel_backfill::<shared::context::QueueApi>())
}
