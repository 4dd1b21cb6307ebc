//! `GET /api/v1/connectors/{id}`: its handler over its context, on the Lambda runtime.
fn main() -> Result<(), shared::app::Error> {
    shared::app::serve(shared::http::handlers::get_connector::<shared::context::Api>())
}
