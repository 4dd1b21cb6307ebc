//! Cold start of a function binary against a hello-world Rust Lambda, through a local stand-in
//! for the Lambda Runtime API: each sample starts the binary afresh and measures
//! - init: from spawning the process to its first `GET /runtime/invocation/next` (what Lambda
//!   reports as Init Duration, less the sandbox), and
//! - first invoke: from handing it the event to its response (for `list-pipelines`, one
//!   authorized page read from DynamoDB Local, connections opened cold).
//!
//! Needs release builds and the local stack: `make bench` does both.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::routing::{get, post};
use axum::Router;
use tokio::sync::Notify;

const SAMPLES: usize = 15;

#[derive(Default)]
struct Clock {
    first_next: Option<Instant>,
    response: Option<Instant>,
    status: Option<u64>,
}

#[derive(Clone)]
struct Api {
    event: Arc<String>,
    clock: Arc<Mutex<Clock>>,
    done: Arc<Notify>,
}

async fn next(State(api): State<Api>) -> (HeaderMap, String) {
    let first = {
        let mut clock = api.clock.lock().expect("clock");
        let first = clock.first_next.is_none();
        if first {
            clock.first_next = Some(Instant::now());
        }
        first
    };
    if !first {
        // The second poll waits forever: the sample is over and the process gets killed.
        std::future::pending::<()>().await;
    }
    let mut headers = HeaderMap::new();
    let deadline = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default() + Duration::from_secs(30);
    headers.insert("lambda-runtime-aws-request-id", "cold-start-1".parse().expect("header"));
    headers.insert("lambda-runtime-deadline-ms", deadline.as_millis().to_string().parse().expect("header"));
    headers.insert("lambda-runtime-invoked-function-arn", "arn:aws:lambda:us-east-1:000000000000:function:bench".parse().expect("header"));
    (headers, api.event.to_string())
}

async fn response(State(api): State<Api>, Path(_id): Path<String>, body: String) -> &'static str {
    let status = serde_json::from_str::<serde_json::Value>(&body).ok().and_then(|v| v["statusCode"].as_u64());
    let mut clock = api.clock.lock().expect("clock");
    clock.response = Some(Instant::now());
    clock.status = status;
    api.done.notify_one();
    "{}"
}

async fn error(State(api): State<Api>, body: String) -> &'static str {
    eprintln!("the function reported an error: {body}");
    api.done.notify_one();
    "{}"
}

/// One cold start of `binary` given `event`: (init, first invoke, status code).
async fn sample(binary: &PathBuf, event: &str, table: &str) -> Result<(Duration, Duration, Option<u64>), Box<dyn std::error::Error>> {
    let api = Api { event: Arc::new(event.to_string()), clock: Arc::default(), done: Arc::new(Notify::new()) };
    let app = Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next))
        .route("/2018-06-01/runtime/invocation/{id}/response", post(response))
        .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
        .route("/2018-06-01/runtime/init/error", post(error))
        .with_state(api.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let started = Instant::now();
    let mut child = tokio::process::Command::new(binary)
        .env("AWS_LAMBDA_RUNTIME_API", address.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", "bench")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
        .env("AWS_LAMBDA_LOG_FORMAT", "JSON")
        .env("TABLE_NAME", table)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()?;
    tokio::time::timeout(Duration::from_secs(20), api.done.notified()).await?;
    child.kill().await?;
    server.abort();
    let clock = api.clock.lock().map_err(|_| "clock")?;
    let (Some(first), Some(done)) = (clock.first_next, clock.response) else { return Err("no response".into()) };
    Ok((first - started, done - first, clock.status))
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let release = root.join("target/release");
    let table = "cold-start";
    let clients = local::stack::clients().await;
    local::stack::ensure_table(&clients.dynamodb, table).await.map_err(|e| e.to_string())?;
    let event = std::fs::read_to_string(root.join("events/list-pipelines.json"))?;
    let mut results = Vec::new();
    for (name, binary, event) in [
        ("hello-world", release.join("examples/hello_lambda"), r#"{"hello": "world"}"#.to_string()),
        ("list-pipelines", release.join("list-pipelines"), event),
    ] {
        if !binary.exists() {
            return Err(format!("{} is missing: `make bench` builds it", binary.display()).into());
        }
        let (mut inits, mut invokes) = (Vec::new(), Vec::new());
        for _ in 0..SAMPLES {
            let (init, invoke, status) = sample(&binary, &event, table).await?;
            if name == "list-pipelines" && status != Some(200) {
                return Err(format!("list-pipelines answered {status:?}").into());
            }
            inits.push(init);
            invokes.push(invoke);
        }
        let size = std::fs::metadata(&binary)?.len() as f64 / 1e6;
        let (init, invoke) = (median(inits), median(invokes));
        println!("{name}: median init {}, median first invoke {} ({SAMPLES} cold starts; binary {size:.1} MB)", ms(init), ms(invoke));
        results.push((init, invoke));
    }
    let (hello, ours) = (results[0], results[1]);
    println!(
        "cold start: list-pipelines init is {} more than hello-world ({:.1}x); its first invoke (auth + one page from DynamoDB Local) takes {}",
        ms(ours.0.saturating_sub(hello.0)),
        ours.0.as_secs_f64() / hello.0.as_secs_f64(),
        ms(ours.1)
    );
    Ok(())
}
