//! `GET /api/v1/api-keys`: its handler over its context, on the Lambda runtime.
fn main() -> Result<(), shared::app::Error> {
    shared::app::serve(shared::http::handlers::list_api_keys::<shared::context::Api>())
}
