//! `GET /api/v1/schemas/{id}/records`: its handler over its context, on the Lambda runtime.
fn main() -> Result<(), shared::app::Error> {
    shared::app::serve(shared::http::handlers::list_records::<shared::context::RecordsApi>())
}
