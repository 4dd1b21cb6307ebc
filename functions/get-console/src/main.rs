//! `GET /`: the web console's page, on the Lambda runtime.
fn main() -> Result<(), shared::app::Error> {
    shared::app::serve(shared::http::handlers::get_console::<shared::context::Api>())
}
