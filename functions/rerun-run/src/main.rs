//! `POST /api/v1/pipelines/{id}/runs/{runId}/rerun`: its handler over its context, on the Lambda runtime.
fn main() -> Result<(), shared::app::Error> {
    shared::app::serve(shared::http::handlers::rerun_run::<shared::context::QueueApi>())
}
