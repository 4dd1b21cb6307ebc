//! `GET /api/v1/openapi.json`: its handler over its context, on the Lambda runtime.
fn main() -> Result<(), shared::app::Error> {
    shared::app::serve(shared::http::handlers::get_openapi::<shared::context::Api>())
}
