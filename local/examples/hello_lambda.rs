//! The baseline of the cold-start benchmark: the smallest Rust Lambda (lambda_runtime, a
//! current-thread runtime, an echo handler), built like our functions.

use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::Value;

fn main() -> Result<(), Error> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| async move { Ok::<_, Error>(event.payload) })))
}
