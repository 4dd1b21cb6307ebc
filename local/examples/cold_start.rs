//! Cold start of function binaries against a hello-world Rust Lambda, through a local stand-in
//! for the Lambda Runtime API: each sample starts the binary afresh and measures
//! - init: from spawning the process to its first `GET /runtime/invocation/next` (what Lambda
//!   reports as Init Duration, less the sandbox);
//! - first invoke: from handing it its event (`events/<function>.json`, with a real key) to its
//!   response: authentication and its reads from DynamoDB Local;
//! - warm invoke: the same event again in the same process;
//! - peak RSS (`VmHWM`) after both.
//!
//! `cargo run --release -p local --example cold_start [-- <function> ...]` (default: every
//! function `target/release`, or `COLD_START_DIR`, holds). An example rather than a bench so that
//! it reuses the release build of the functions (benches build without `panic = "abort"`). Needs
//! release builds and the local stack: `make bench` does both.

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
    nexts: usize,
    /// When each invocation was handed over, and when its response came.
    handed: Vec<Instant>,
    responses: Vec<Instant>,
    status: Option<u64>,
}

#[derive(Clone)]
struct Api {
    event: Arc<String>,
    clock: Arc<Mutex<Clock>>,
    done: Arc<Notify>,
}

async fn next(State(api): State<Api>) -> (HeaderMap, String) {
    let serve = {
        let mut clock = api.clock.lock().expect("clock");
        clock.first_next.get_or_insert_with(Instant::now);
        clock.nexts += 1;
        clock.handed.push(Instant::now());
        clock.nexts <= 2
    };
    if !serve {
        // The third poll waits forever: the sample is over and the process gets killed.
        std::future::pending::<()>().await;
    }
    let mut headers = HeaderMap::new();
    let deadline = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default() + Duration::from_secs(30);
    headers.insert("lambda-runtime-aws-request-id", "cold-start".parse().expect("header"));
    headers.insert("lambda-runtime-deadline-ms", deadline.as_millis().to_string().parse().expect("header"));
    headers.insert("lambda-runtime-invoked-function-arn", "arn:aws:lambda:us-east-1:000000000000:function:bench".parse().expect("header"));
    (headers, api.event.to_string())
}

async fn response(State(api): State<Api>, Path(_id): Path<String>, body: String) -> &'static str {
    let status = serde_json::from_str::<serde_json::Value>(&body).ok().and_then(|v| v["statusCode"].as_u64());
    let mut clock = api.clock.lock().expect("clock");
    clock.responses.push(Instant::now());
    clock.status = status;
    if clock.responses.len() == 2 {
        api.done.notify_one();
    }
    "{}"
}

async fn error(State(api): State<Api>, body: String) -> &'static str {
    eprintln!("the function reported an error: {body}");
    api.done.notify_one();
    "{}"
}

struct Sample {
    init: Duration,
    first: Duration,
    warm: Duration,
    peak_rss_kb: u64,
    status: Option<u64>,
}

/// Peak resident memory of a live process, from `/proc`.
fn peak_rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status.lines().find_map(|l| l.strip_prefix("VmHWM:")).and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok()).unwrap_or(0)
}

/// One cold start of `binary` given `event` twice.
async fn sample(binary: &PathBuf, event: &str, table: &str) -> Result<Sample, Box<dyn std::error::Error>> {
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
        .env("QUEUE_URL", "http://127.0.0.1:4566/000000000000/cold-start")
        .env("RECORDS_TABLE_NAME", local::stack::records_table(table))
        .env("AUTH_TABLE_NAME", shared::store::auth_table_beside(table))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()?;
    tokio::time::timeout(Duration::from_secs(20), api.done.notified()).await?;
    let peak = child.id().map_or(0, peak_rss_kb);
    child.kill().await?;
    server.abort();
    let clock = api.clock.lock().map_err(|_| "clock")?;
    let (Some(first), [_, second, ..], [one, two, ..]) = (clock.first_next, clock.handed.as_slice(), clock.responses.as_slice()) else {
        return Err("no response".into());
    };
    Ok(Sample { init: first - started, first: *one - first, warm: *two - *second, peak_rss_kb: peak, status: clock.status })
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// The sample event of `function`, signed with a real key of tenant `demo` (the events' tenant).
fn event_for(root: &std::path::Path, function: &str, key: &str) -> Result<String, Box<dyn std::error::Error>> {
    let mut event: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(root.join(format!("events/{function}.json")))?)?;
    if event.get("headers").is_some() {
        event["headers"]["authorization"] = serde_json::Value::String(format!("Bearer {key}"));
    }
    Ok(event.to_string())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    // `COLD_START_DIR`: where the release binaries are, when not in this workspace's target.
    let release = std::env::var_os("COLD_START_DIR").map_or_else(|| root.join("target/release"), PathBuf::from);
    let table = "cold-start";
    let clients = local::stack::clients().await;
    local::stack::ensure_table(&clients.dynamodb, table).await.map_err(|e| e.to_string())?;
    local::stack::ensure_records_table(&clients.dynamodb, &local::stack::records_table(table)).await.map_err(|e| e.to_string())?;
    local::stack::ensure_queue(&clients.sqs, "cold-start").await.map_err(|e| e.to_string())?;
    let tenant = shared::domain::tenant::TenantId::parse("demo").map_err(|e| e.to_string())?;
    let issued = shared::domain::api_key::issue(&tenant, "cold-start".into(), shared::domain::tenant::Role::Admin, &shared::domain::now());
    shared::store::Store::new(clients.dynamodb.clone(), table).create(&tenant, &issued.stored).await.map_err(|e| e.to_string())?;

    let asked: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let functions: Vec<String> = if asked.is_empty() {
        let mut all: Vec<String> = shared::http::ROUTES.iter().map(|r| r.function.to_string()).collect();
        all.push(shared::http::routes::NOT_FOUND_FUNCTION.to_string());
        all.into_iter().filter(|f| release.join(f).exists()).collect()
    } else {
        asked
    };
    let mut runs = vec![("hello-world".to_string(), release.join("examples/hello_lambda"), r#"{"hello": "world"}"#.to_string())];
    for function in &functions {
        runs.push((function.clone(), release.join(function), event_for(&root, function, &issued.key)?));
    }
    println!("| function | binary | init (median) | first invoke | warm invoke | peak RSS |");
    println!("|---|---|---|---|---|---|");
    for (name, binary, event) in runs {
        if !binary.exists() {
            return Err(format!("{} is missing: `make bench` builds it", binary.display()).into());
        }
        let mut samples = Vec::new();
        for _ in 0..SAMPLES {
            let s = sample(&binary, &event, table).await?;
            if name != "hello-world" && s.status.is_none_or(|code| code >= 500) {
                return Err(format!("{name} answered {:?}", s.status).into());
            }
            samples.push(s);
        }
        let size = std::fs::metadata(&binary)?.len() as f64 / 1e6;
        let pick = |f: fn(&Sample) -> Duration| median(samples.iter().map(f).collect());
        let rss = {
            let mut v: Vec<u64> = samples.iter().map(|s| s.peak_rss_kb).collect();
            v.sort();
            v[v.len() / 2] as f64 / 1024.0
        };
        println!(
            "| {name} | {size:.1} MB | {} | {} | {} | {rss:.1} MB |",
            ms(pick(|s| s.init)),
            ms(pick(|s| s.first)),
            ms(pick(|s| s.warm))
        );
    }
    println!("({SAMPLES} cold starts each; medians)");
    Ok(())
}
