//! `DELETE /api/v1/schemas`: its handler over its context, on the Lambda runtime.
fn main() -> Result<(), shared::app::Error> {
    shared::app::serve(shared::http::handlers::delete_schema::<shared::context::QueueApi>())
}
