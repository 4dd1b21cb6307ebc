//! `PUT /api/v1/connectors`: its handler over its context, on the Lambda runtime.
fn main() -> Result<(), shared::app::Error> {
    shared::app::serve(shared::http::handlers::update_connector::<shared::context::Api>())
}
