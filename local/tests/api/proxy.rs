//! A fault-injecting HTTP proxy in front of DynamoDB Local or moto: the real SDK talks to it as
//! to AWS, and it passes each request on, or fails it the ways AWS and networks fail:
//! - **throttle**: answers DynamoDB's (or SQS's) throttling error without passing it on;
//! - **lose**: passes it on, so the write happens, then cuts the response off mid-body (the
//!   caller cannot know whether it happened);
//! - **delay**: passes it on after a pause.
//!
//! Faults come from a seeded generator, so a failing run is reproducible, and are counted, so a
//! test can show they happened.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::response::Response;

/// How often each fault strikes, out of 1000 requests.
#[derive(Debug, Clone, Copy)]
pub struct Faults {
    pub throttle: u64,
    pub lose: u64,
    pub delay: u64,
    pub delay_for: Duration,
    pub seed: u64,
}

#[derive(Debug, Default)]
pub struct Counts {
    pub passed: AtomicU64,
    pub throttled: AtomicU64,
    pub lost: AtomicU64,
    pub delayed: AtomicU64,
}

impl Counts {
    pub fn faults(&self) -> u64 {
        self.throttled.load(Ordering::Relaxed) + self.lost.load(Ordering::Relaxed) + self.delayed.load(Ordering::Relaxed)
    }
}

pub struct Proxy {
    pub url: String,
    pub counts: Arc<Counts>,
    on: Arc<AtomicBool>,
}

impl Proxy {
    /// Stops injecting faults (requests pass on untouched).
    pub fn heal(&self) {
        self.on.store(false, Ordering::Relaxed);
    }
}

enum Fault {
    Pass,
    Throttle,
    Lose,
    Delay,
}

struct State {
    upstream: String,
    http: reqwest::Client,
    faults: Faults,
    rng: Mutex<u64>,
    counts: Arc<Counts>,
    on: Arc<AtomicBool>,
}

impl State {
    fn draw(&self) -> Fault {
        if !self.on.load(Ordering::Relaxed) {
            return Fault::Pass;
        }
        // xorshift64: small, seeded, good enough to spread faults.
        let roll = {
            let mut x = self.rng.lock().unwrap();
            *x ^= *x << 13;
            *x ^= *x >> 7;
            *x ^= *x << 17;
            *x % 1000
        };
        let f = self.faults;
        match roll {
            r if r < f.throttle => Fault::Throttle,
            r if r < f.throttle + f.lose => Fault::Lose,
            r if r < f.throttle + f.lose + f.delay => Fault::Delay,
            _ => Fault::Pass,
        }
    }
}

/// Starts a proxy to `upstream` (`http://127.0.0.1:8000`).
pub async fn start(upstream: &str, faults: Faults) -> Proxy {
    let counts = Arc::new(Counts::default());
    let on = Arc::new(AtomicBool::new(true));
    let state = Arc::new(State {
        upstream: upstream.trim_end_matches('/').to_string(),
        http: reqwest::Client::new(),
        faults,
        rng: Mutex::new(faults.seed.max(1)),
        counts: counts.clone(),
        on: on.clone(),
    });
    let app = axum::Router::new().fallback(move |req: Request| {
        let state = state.clone();
        async move { serve(&state, req).await }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    Proxy { url, counts, on }
}

fn throttled(req: &Request) -> Response {
    // DynamoDB's awsJson error; SQS (awsJson too) names its own.
    let dynamodb = req.headers().get("x-amz-target").and_then(|v| v.to_str().ok()).is_some_and(|t| t.starts_with("DynamoDB"));
    let (kind, status) = match dynamodb {
        true => ("com.amazonaws.dynamodb.v20120810#ThrottlingException", 400),
        false => ("com.amazonaws.sqs#RequestThrottled", 400),
    };
    let body = format!(r#"{{"__type":"{kind}","message":"Rate of requests exceeds the allowed throughput."}}"#);
    Response::builder()
        .status(status)
        .header("content-type", "application/x-amz-json-1.0")
        .header("x-amzn-query-error", "RequestThrottled;Sender")
        .body(Body::from(body))
        .unwrap()
}

async fn serve(state: &State, req: Request) -> Response {
    let fault = state.draw();
    if let Fault::Throttle = fault {
        state.counts.throttled.fetch_add(1, Ordering::Relaxed);
        return throttled(&req);
    }
    if let Fault::Delay = fault {
        state.counts.delayed.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(state.faults.delay_for).await;
    }
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX).await.unwrap_or_default();
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut upstream = state.http.request(parts.method.clone(), format!("{}{path}", state.upstream)).body(body);
    for (name, value) in &parts.headers {
        if name != "host" && name != "content-length" {
            upstream = upstream.header(name, value);
        }
    }
    let answer = match upstream.send().await {
        Ok(answer) => answer,
        Err(_) => return Response::builder().status(502).body(Body::empty()).unwrap(),
    };
    let mut reply = Response::builder().status(answer.status().as_u16());
    for (name, value) in answer.headers() {
        if name != "content-length" && name != "transfer-encoding" && name != "connection" {
            reply = reply.header(name, value);
        }
    }
    let bytes = answer.bytes().await.unwrap_or_default();
    if let Fault::Lose = fault {
        // The upstream did the work; the caller gets half an answer and a dead connection.
        state.counts.lost.fetch_add(1, Ordering::Relaxed);
        let half = bytes.slice(..bytes.len() / 2);
        let cut = futures::stream::iter([Ok::<Bytes, std::io::Error>(half), Err(std::io::Error::other("connection lost"))]);
        return reply.header("content-length", bytes.len()).body(Body::from_stream(cut)).unwrap();
    }
    state.counts.passed.fetch_add(1, Ordering::Relaxed);
    reply.body(Body::from(bytes)).unwrap()
}
