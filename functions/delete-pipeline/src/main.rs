//! `DELETE /api/v1/pipelines`: its handler over its context, on the Lambda runtime.
fn main() -> Result<(), shared::app::Error> {
    shared::app::serve(shared::http::handlers::delete_pipeline::<shared::context::QueueApi>())
}
