//! The run queue's consumer (SQS, partial batch failures): runs take their way to an end.
fn main() -> Result<(), shared::app::Error> {
    shared::app::serve_worker()
}
