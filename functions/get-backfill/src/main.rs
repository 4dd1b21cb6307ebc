//! `GET /api/v1/pipelines/{id}/backfills/{backfillId}`: its handler over its context, on the Lambda runtime.
fn main() -> Result<(), shared::app::Error> {
    shared::app::serve(shared::http::handlers::get_backfill::<shared::context::Api>())
}
