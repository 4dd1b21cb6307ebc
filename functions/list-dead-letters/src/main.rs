//! `GET /api/v1/pipelines/{id}/runs/{runId}/dead-letters`: wires the shared handler to the Lambda runtime.
fn main() -> Result<(), shared::app::Error> {
    shared::app::serve(shared::http::Endpoint::ListDeadLetters)
}
