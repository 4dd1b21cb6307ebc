//! `POST /api/v1/pipelines/{id}/runs/{runId}/cancel`: its handler over its context, on the Lambda runtime.
fn main() -> Result<(), shared::app::Error> {
    shared::app::serve(shared::http::handlers::cancel_run::<shared::context::QueueApi>())
}
