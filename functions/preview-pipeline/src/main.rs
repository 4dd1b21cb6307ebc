//! `POST /api/v1/pipelines/{id}/preview`: its handler over its context, on the Lambda runtime.
fn main() -> Result<(), shared::app::Error> {
    shared::app::serve(shared::http::handlers::preview_pipeline::<shared::context::SourcesApi>())
}
