//! `GET /api/v1/schemas/{id}/records`: wires the shared handler to the Lambda runtime.
fn main() -> Result<(), shared::app::Error> {
    shared::app::serve(shared::http::Endpoint::ListRecords)
}
