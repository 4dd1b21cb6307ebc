//! The HTTP API's Lambda authorizer: API key to tenant and role (verdict in the context).
fn main() -> Result<(), shared::app::Error> {
    shared::app::serve_authorizer()
}
