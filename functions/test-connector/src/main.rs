//! `POST /api/v1/connectors/{id}/test`: its handler over its context, on the Lambda runtime.
fn main() -> Result<(), shared::app::Error> {
    shared::app::serve(shared::http::handlers::test_connector::<shared::context::SourcesApi>())
}
