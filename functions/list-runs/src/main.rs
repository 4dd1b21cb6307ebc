//! `GET /api/v1/pipelines/{id}/runs`: its handler over its context, on the Lambda runtime.
fn main() -> Result<(), shared::app::Error> {
    shared::app::serve(shared::http::handlers::list_runs::<shared::context::Api>())
}
