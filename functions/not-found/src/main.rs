//! The HTTP API's `$default` route: 404 or 405 in the product's error format.
fn main() -> Result<(), shared::app::Error> {
    shared::app::serve(shared::http::Endpoint::NotFound)
}
