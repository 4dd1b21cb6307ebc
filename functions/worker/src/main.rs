//! The run queue's consumer (SQS, partial batch failures): runs take their way to an end.

/// The engine allocates many small values; mimalloc nearly doubles its records per second
/// (`cargo bench -p shared --bench engine`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> Result<(), shared::app::Error> {
    shared::app::serve_worker()
}
