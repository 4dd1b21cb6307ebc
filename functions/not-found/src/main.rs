//! API Gateway's `$default` route: 404, or 405 where the path exists with other methods.
fn main() -> Result<(), shared::app::Error> {
    shared::app::serve(shared::http::handlers::not_found_route::<shared::context::Api>())
}
