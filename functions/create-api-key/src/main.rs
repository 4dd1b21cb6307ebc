//! `POST /api/v1/api-keys`: wires the shared handler to the Lambda runtime.
fn main() -> Result<(), shared::app::Error> {
    shared::app::serve(shared::http::Endpoint::CreateApiKey)
}
