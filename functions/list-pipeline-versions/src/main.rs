//! `GET /api/v1/pipelines/{id}/versions`: its handler over its context, on the Lambda runtime.
fn main() -> Result<(), shared::app::Error> {
    shared::app::serve(shared::http::handlers::list_pipeline_versions::<shared::context::Api>())
}
