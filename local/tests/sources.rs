//! Sources against real services: S3 objects in moto (:4566, or `AWS_ENDPOINT_URL_S3`) and HTTP
//! servers these tests start on 127.0.0.1. Start moto with `scripts/local-stack.sh start`.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region};
use aws_credential_types::Credentials;
use aws_sdk_s3::primitives::ByteStream;
use futures::{stream, StreamExt};
use serde_json::{json, Value};
use shared::domain::connector::Connector;
use shared::domain::ids::ConnectorId;
use shared::domain::run::RunError;
use shared::domain::source_access::SourceBuckets;
use shared::domain::tenant::TenantId;
use shared::engine::source::{open, Position, Source, SourceContext};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

fn connector(kind: &str, config: Value) -> Connector {
    let Value::Object(config) = config else { panic!("config must be an object") };
    Connector {
        id: ConnectorId::generate(),
        name: "test".into(),
        kind: kind.into(),
        description: None,
        config,
        created_at: "t".into(),
        updated_at: "t".into(),
    }
}

/// Batch sizes and records, to the end.
async fn drain(source: &mut dyn Source, max: usize) -> (Vec<usize>, Vec<Value>) {
    let (mut sizes, mut records) = (Vec::new(), Vec::new());
    while let Some(batch) = source.next_batch(max).await.unwrap() {
        sizes.push(batch.len());
        records.extend(batch.into_iter().map(|item| Value::Object(item.expect("a record"))));
    }
    (sizes, records)
}

async fn read(ctx: &SourceContext, kind: &str, config: Value, skip: u64, max: usize) -> (Vec<usize>, Vec<Value>) {
    let from = Position { records: skip, ..Position::default() };
    let mut source = open(&connector(kind, config), &tenant(), ctx, Some(&from)).await.unwrap_or_else(|e| panic!("open: {e:?}"));
    drain(source.as_mut(), max).await
}

async fn open_error(ctx: &SourceContext, kind: &str, config: Value) -> RunError {
    match open(&connector(kind, config), &tenant(), ctx, None).await {
        Ok(_) => panic!("opened"),
        Err(e) => e,
    }
}

// --- S3 ---------------------------------------------------------------------------------------

/// A context on moto, through [`SourceContext::new`] (path-style because the endpoint is set), and
/// a fresh bucket.
async fn s3() -> (SourceContext, String) {
    let endpoint = std::env::var("AWS_ENDPOINT_URL_S3").ok().filter(|v| !v.is_empty()).unwrap_or("http://127.0.0.1:4566".into());
    let sdk = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("local", "local", None, None, "local-stack"))
        .endpoint_url(endpoint.as_str())
        .http_client(shared::context::https_client(std::time::Duration::from_secs(3)))
        .load()
        .await;
    let mut ctx = SourceContext::new(&sdk, true);
    let bucket = format!("sources-{}", uuid::Uuid::new_v4().simple());
    ctx.s3.create_bucket().bucket(&bucket).send().await.unwrap_or_else(|e| {
        panic!(
            "creating a bucket on {endpoint} (is moto running? scripts/local-stack.sh start): {}",
            aws_sdk_s3::error::DisplayErrorContext(e)
        )
    });
    ctx.buckets = SourceBuckets { deployment: Some(bucket.clone()) };
    (ctx, bucket)
}

/// The tenant these tests read for, and its folder of the source bucket.
const TENANT: &str = "t1";
const FOLDER: &str = "tenants/t1/";

fn tenant() -> TenantId {
    TenantId::parse(TENANT).unwrap()
}

/// `path` in the tenant's folder.
fn at(path: &str) -> String {
    format!("{FOLDER}{path}")
}

/// Writes `key` in the tenant's folder.
async fn put(ctx: &SourceContext, bucket: &str, key: &str, body: impl Into<Vec<u8>>) {
    put_raw(ctx, bucket, &at(key), body).await
}

async fn put_raw(ctx: &SourceContext, bucket: &str, key: &str, body: impl Into<Vec<u8>>) {
    let body = ByteStream::from(body.into());
    ctx.s3.put_object().bucket(bucket).key(key).body(body).send().await.unwrap();
}

#[tokio::test]
async fn s3_prefix_reads_every_object_in_key_order_as_one_stream() {
    let (ctx, bucket) = s3().await;
    put(&ctx, &bucket, "in/b.csv", "id,name\n3,c\n4,d\n5,e\n").await;
    put(&ctx, &bucket, "in/a.csv", "id,name\n1,a\n2,b\n").await;
    put(&ctx, &bucket, "in/c.jsonl", "{\"id\":6}\n{\"id\":7,\"deep\":{\"x\":[1]}}\n").await;
    put(&ctx, &bucket, "in/sub/", "").await;
    put(&ctx, &bucket, "in/_SUCCESS", "").await;
    put(&ctx, &bucket, "out/a.csv", "id\n99\n").await;

    let (sizes, records) = read(&ctx, "s3", json!({"bucket": bucket, "prefix": at("in/")}), 0, 4).await;
    assert_eq!(sizes, [4, 3]);
    assert_eq!(
        records,
        [
            json!({"id": "1", "name": "a"}),
            json!({"id": "2", "name": "b"}),
            json!({"id": "3", "name": "c"}),
            json!({"id": "4", "name": "d"}),
            json!({"id": "5", "name": "e"}),
            json!({"id": 6}),
            json!({"id": 7, "deep": {"x": [1]}}),
        ]
    );

    // Resuming skips across objects.
    let (_, records) = read(&ctx, "s3", json!({"bucket": bucket, "prefix": at("in/")}), 4, 100).await;
    assert_eq!(records, [json!({"id": "5", "name": "e"}), json!({"id": 6}), json!({"id": 7, "deep": {"x": [1]}})]);

    // No prefix: the whole bucket; a prefix matching nothing: no records.
    assert_eq!(read(&ctx, "s3", json!({"bucket": bucket}), 0, 100).await.1.len(), 8);
    assert_eq!(read(&ctx, "s3", json!({"bucket": bucket, "prefix": at("nothing/")}), 0, 100).await.0, Vec::<usize>::new());
}

#[tokio::test]
async fn s3_key_reads_one_object_in_its_own_or_the_configured_format() {
    let (ctx, bucket) = s3().await;
    put(&ctx, &bucket, "data/orders.json", json!({"data": {"items": [{"n": 1}, {"n": 2}]}}).to_string()).await;
    put(&ctx, &bucket, "data/export.txt", "n\n1\n2\n3\n").await;

    let (_, records) = read(&ctx, "s3", json!({"bucket": bucket, "key": at("data/orders.json"), "recordsPath": "data.items"}), 0, 10).await;
    assert_eq!(records, [json!({"n": 1}), json!({"n": 2})]);
    let (sizes, _) = read(&ctx, "s3", json!({"bucket": bucket, "key": at("data/export.txt"), "format": "csv"}), 1, 1).await;
    assert_eq!(sizes, [1, 1]);

    let e = open_error(&ctx, "s3", json!({"bucket": bucket, "key": at("data/export.txt")})).await;
    assert_eq!(e.code, "INVALID_CONNECTOR_CONFIG");
    assert!(e.message.starts_with("config.format is required: the format of s3://"), "{}", e.message);
}

#[tokio::test]
async fn s3_failures_name_the_object_and_the_service_error() {
    let (ctx, bucket) = s3().await;
    let e = open_error(&ctx, "s3", json!({"bucket": bucket, "key": at("missing.csv")})).await;
    assert_eq!(e.code, "SOURCE_ERROR");
    assert!(e.message.starts_with(&format!("reading s3://{bucket}/{FOLDER}missing.csv: NoSuchKey")), "{}", e.message);

    let missing = format!("{bucket}-missing");
    let gone = SourceContext { buckets: SourceBuckets { deployment: Some(missing.clone()) }, ..ctx.clone() };
    let e = open_error(&gone, "s3", json!({"bucket": missing, "prefix": at("in/")})).await;
    assert_eq!(e.code, "SOURCE_ERROR");
    assert!(e.message.starts_with(&format!("listing s3://{missing}/{FOLDER}in/: NoSuchBucket")), "{}", e.message);

    put(&ctx, &bucket, "bad.jsonl", "{\"a\":1}\n{\"a\":2}\n{oops}\n").await;
    let mut source = open(&connector("s3", json!({"bucket": bucket, "key": at("bad.jsonl")})), &tenant(), &ctx, None).await.unwrap();
    let e = source.next_batch(10).await.unwrap_err();
    assert_eq!(e.code, "SOURCE_ERROR");
    assert!(e.message.starts_with(&format!("s3://{bucket}/{FOLDER}bad.jsonl: line 3: invalid JSON")), "{}", e.message);
}

#[tokio::test]
async fn s3_a_large_object_is_read_in_full_batches() {
    let (ctx, bucket) = s3().await;
    let lines: String = (0..50_000).map(|i| format!("{{\"i\":{i},\"name\":\"record {i}\",\"ok\":true}}\n")).collect();
    put(&ctx, &bucket, "big/events.ndjson", lines).await;

    let mut source = open(&connector("s3", json!({"bucket": bucket, "prefix": at("big/")})), &tenant(), &ctx, None).await.unwrap();
    let (mut batches, mut next) = (0, 0);
    while let Some(batch) = source.next_batch(1000).await.unwrap() {
        assert_eq!(batch.len(), 1000);
        // In order, none lost or repeated at chunk boundaries.
        for record in &batch {
            assert_eq!(record.as_ref().unwrap()["i"], json!(next));
            next += 1;
        }
        batches += 1;
    }
    assert_eq!((batches, next), (50, 50_000));
}

#[tokio::test]
async fn s3_prefixes_are_listed_page_after_page() {
    let (ctx, bucket) = s3().await;
    // ListObjectsV2 pages hold 1,000 keys: 1,005 objects take two pages.
    stream::iter(0..1005)
        .map(|i| {
            let (ctx, bucket) = (&ctx, &bucket);
            async move { put(ctx, bucket, &format!("many/{i:05}.jsonl"), format!("{{\"i\":{i}}}\n")).await }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
    let (sizes, records) = read(&ctx, "s3", json!({"bucket": bucket, "prefix": at("many/")}), 0, 500).await;
    assert_eq!(sizes, [500, 500, 5]);
    assert!(records.iter().enumerate().all(|(i, r)| r["i"] == json!(i)));
}

// --- HTTP -------------------------------------------------------------------------------------

struct Reply {
    status: &'static str,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
}

fn reply(status: &'static str, content_type: Option<&'static str>, body: impl Into<Vec<u8>>) -> Reply {
    Reply { status, headers: content_type.map(|t| ("Content-Type", t.to_string())).into_iter().collect(), body: body.into() }
}

fn redirect(to: String) -> Reply {
    Reply { status: "302 Found", headers: vec![("Location", to)], body: Vec::new() }
}

type Routes = Arc<dyn Fn(&str, &str) -> Reply + Send + Sync>;

/// A one-request-per-connection HTTP/1.1 server on 127.0.0.1; the request heads it received, and
/// the body bytes it sent.
struct Server {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<String>>>,
    served: Arc<std::sync::atomic::AtomicU64>,
}

impl Server {
    async fn start(routes: impl Fn(&str) -> Reply + Send + Sync + 'static) -> Server {
        Self::start_with_heads(move |path, _| routes(path)).await
    }

    /// Routes that see the request head too.
    async fn start_with_heads(routes: impl Fn(&str, &str) -> Reply + Send + Sync + 'static) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let served = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let (log, routes, count): (_, Routes, _) = (requests.clone(), Arc::new(routes), served.clone());
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let (log, routes, count) = (log.clone(), routes.clone(), count.clone());
                tokio::spawn(async move {
                    let (mut socket, head) = read_head(socket).await;
                    let target = head.split_whitespace().nth(1).unwrap_or("/");
                    let path = target.split('?').next().unwrap_or(target).to_string();
                    log.lock().unwrap().push(head.clone());
                    let reply = routes(&path, &head);
                    count.fetch_add(reply.body.len() as u64, std::sync::atomic::Ordering::SeqCst);
                    let mut out = format!("HTTP/1.1 {}\r\nContent-Length: {}\r\nConnection: close\r\n", reply.status, reply.body.len());
                    for (name, value) in &reply.headers {
                        out.push_str(&format!("{name}: {value}\r\n"));
                    }
                    out.push_str("\r\n");
                    let _ = socket.write_all(out.as_bytes()).await;
                    let _ = socket.write_all(&reply.body).await;
                });
            }
        });
        Server { addr, requests, served }
    }

    fn served(&self) -> u64 {
        self.served.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

/// Reads up to the end of the request head.
async fn read_head(mut socket: TcpStream) -> (TcpStream, String) {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match socket.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    (socket, String::from_utf8_lossy(&head).into_owned())
}

fn http_context(allow_private_addresses: bool) -> SourceContext {
    let config = aws_sdk_s3::Config::builder().behavior_version(BehaviorVersion::latest()).region(Region::new("us-east-1")).build();
    let sts = aws_sdk_sts::Config::builder().behavior_version(BehaviorVersion::latest()).region(Region::new("us-east-1")).build();
    SourceContext::with_clients(aws_sdk_s3::Client::from_conf(config), aws_sdk_sts::Client::from_conf(sts), allow_private_addresses)
}

fn ten() -> Vec<Value> {
    (1..=10).map(|i| json!({"id": i})).collect()
}

#[tokio::test]
async fn http_reads_each_format_from_its_content_type_or_config() {
    let server = Server::start(|path| match path {
        "/array" => reply("200 OK", Some("application/json; charset=utf-8"), Value::Array(ten()).to_string()),
        "/lines" => reply("200 OK", Some("application/x-ndjson"), ten().iter().map(|r| format!("{r}\n")).collect::<String>()),
        "/table" => reply("200 OK", Some("text/plain"), "id,name\n1,a\n2,b\n"),
        "/wrapped" => reply("200 OK", Some("application/json"), json!({"data": {"items": ten()}, "next": null}).to_string()),
        "/untyped" => reply("200 OK", None, "[]"),
        "/html" => reply("200 OK", Some("text/html"), "<html>"),
        _ => reply("404 Not Found", None, ""),
    })
    .await;
    let ctx = http_context(true);

    assert_eq!(read(&ctx, "http", json!({"url": server.url("/array")}), 0, 3).await, (vec![3, 3, 3, 1], ten()));
    assert_eq!(read(&ctx, "http", json!({"url": server.url("/lines")}), 7, 2).await, (vec![2, 1], ten()[7..].to_vec()));
    let (_, records) = read(&ctx, "http", json!({"url": server.url("/table"), "format": "csv"}), 0, 10).await;
    assert_eq!(records, [json!({"id": "1", "name": "a"}), json!({"id": "2", "name": "b"})]);
    let (_, records) = read(&ctx, "http", json!({"url": server.url("/wrapped"), "recordsPath": "data.items"}), 0, 10).await;
    assert_eq!(records, ten());

    let e = open_error(&ctx, "http", json!({"url": server.url("/untyped")})).await;
    assert_eq!(e.code, "INVALID_CONNECTOR_CONFIG");
    assert_eq!(
        e.message,
        format!(
            "config.format is required (json, jsonl or csv): the response from http://{} has no content type it could be told from",
            server.addr
        )
    );
    let e = open_error(&ctx, "http", json!({"url": server.url("/html")})).await;
    assert!(e.message.ends_with("has content type text/html, which is none of them"), "{}", e.message);
}

#[tokio::test]
async fn http_failures_give_the_status_without_the_body_or_headers() {
    let server = Server::start(|path| match path {
        "/fail" => reply("500 Internal Server Error", Some("text/plain"), "secret-body"),
        "/broken" => reply("200 OK", Some("application/x-ndjson"), "{\"a\":1}\n{\"a\":\n"),
        _ => reply("404 Not Found", None, "secret-body"),
    })
    .await;
    let mut ctx = http_context(true);
    ctx.http.retry_base = Duration::from_millis(1);

    let headers = json!({"Authorization": "Bearer secret-token"});
    let e = open_error(&ctx, "http", json!({"url": server.url("/fail?token=secret-query"), "headers": headers})).await;
    let expected = format!("http://{}: status 500 Internal Server Error, 5 times", server.addr);
    assert_eq!((e.code.as_str(), e.message.clone()), ("SOURCE_ERROR", expected));
    let e = open_error(&ctx, "http", json!({"url": server.url("/gone")})).await;
    assert_eq!(e.message, format!("http://{}: status 404 Not Found", server.addr));

    let mut source = open(&connector("http", json!({"url": server.url("/broken")})), &tenant(), &ctx, None).await.unwrap();
    let e = source.next_batch(10).await.unwrap_err();
    assert_eq!(e.code, "SOURCE_ERROR");
    assert!(e.message.starts_with(&format!("the response from http://{}: line 2: invalid JSON", server.addr)), "{}", e.message);
    for request in server.requests() {
        assert!(request.starts_with("GET /"), "{request}");
    }
}

#[tokio::test]
async fn http_headers_go_to_the_configured_origin_only() {
    let other = Server::start(|_| reply("200 OK", Some("application/json"), "[{\"from\":\"other\"}]")).await;
    let elsewhere = other.url("/data");
    let server = Server::start(move |path| match path {
        "/data" => reply("200 OK", Some("application/json"), "[{\"from\":\"origin\"}]"),
        "/moved" => redirect("/data".into()),
        "/away" => redirect(elsewhere.clone()),
        _ => reply("404 Not Found", None, ""),
    })
    .await;
    let ctx = http_context(true);
    let headers = json!({"X-Api-Key": "k-123", "Accept": "application/json"});

    let (_, records) = read(&ctx, "http", json!({"url": server.url("/moved"), "headers": headers}), 0, 10).await;
    assert_eq!(records, [json!({"from": "origin"})]);
    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    for request in &requests {
        let lower = request.to_ascii_lowercase();
        assert!(lower.contains("x-api-key: k-123\r\n") && lower.contains("accept: application/json\r\n"), "{request}");
    }

    let (_, records) = read(&ctx, "http", json!({"url": server.url("/away"), "headers": headers}), 0, 10).await;
    assert_eq!(records, [json!({"from": "other"})]);
    let forwarded = other.requests();
    assert_eq!(forwarded.len(), 1);
    assert!(!forwarded[0].to_ascii_lowercase().contains("x-api-key"), "{}", forwarded[0]);
}

#[tokio::test]
async fn http_redirects_are_checked_and_limited() {
    let port = Arc::new(Mutex::new(0u16));
    let loop_port = port.clone();
    let server = Server::start(move |path| match path {
        "/metadata" => redirect("http://169.254.169.254/latest/meta-data/".into()),
        "/mapped" => redirect("http://[::ffff:169.254.169.254]/".into()),
        "/ftp" => redirect("ftp://127.0.0.1/data".into()),
        "/loop" => redirect(format!("http://localhost:{}/loop", loop_port.lock().unwrap())),
        _ => reply("404 Not Found", None, ""),
    })
    .await;
    *port.lock().unwrap() = server.addr.port();
    let ctx = http_context(true);

    for path in ["/metadata", "/mapped"] {
        let started = Instant::now();
        let e = open_error(&ctx, "http", json!({"url": server.url(path)})).await;
        assert_eq!(e.code, "SOURCE_BLOCKED", "{path}: {}", e.message);
        assert!(started.elapsed() < Duration::from_secs(2));
    }
    let e = open_error(&ctx, "http", json!({"url": server.url("/ftp")})).await;
    assert_eq!(e.message, format!("http://{}: status 302 Found redirects to a location that is not an http or https URL", server.addr));
    let e = open_error(&ctx, "http", json!({"url": server.url("/loop")})).await;
    assert_eq!(
        (e.code.as_str(), e.message.clone()),
        ("SOURCE_ERROR", format!("http://localhost:{}: more than 5 redirects", server.addr.port()))
    );
    assert_eq!(server.requests().iter().filter(|r| r.starts_with("GET /loop ")).count(), 6);
}

#[tokio::test]
async fn http_private_addresses_need_permission_and_metadata_is_never_reached() {
    let server = Server::start(|_| reply("200 OK", Some("application/json"), "[]")).await;

    for url in [server.url("/"), format!("http://localhost:{}/", server.addr.port())] {
        let e = open_error(&http_context(false), "http", json!({"url": url})).await;
        assert_eq!(e.code, "SOURCE_BLOCKED", "{url}");
    }
    assert!(server.requests().is_empty(), "no connection was made");
    let e = open_error(&http_context(false), "http", json!({"url": server.url("/")})).await;
    assert!(e.message.contains("is a loopback address; this deployment does not let sources connect"), "{}", e.message);

    for url in [
        "http://169.254.169.254/latest/meta-data/iam/",
        "http://[fd00:ec2::254]/",
        "http://169.254.170.2/v2/credentials",
        "http://0.0.0.0:80/",
    ] {
        let started = Instant::now();
        let e = open_error(&http_context(true), "http", json!({"url": url})).await;
        assert_eq!(e.code, "SOURCE_BLOCKED", "{url}: {}", e.message);
        assert!(started.elapsed() < Duration::from_millis(500), "{url} took {:?}", started.elapsed());
    }
}

/// A server that sends `first`, then waits for `go` before sending `rest` (or never, to stall).
async fn gated(content_type: &'static str, first: String, rest: String, go: Arc<Notify>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let Ok((socket, _)) = listener.accept().await else { return };
        let (mut socket, _) = read_head(socket).await;
        let length = first.len() + rest.len();
        let head = format!("HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {length}\r\nConnection: close\r\n\r\n");
        let _ = socket.write_all(head.as_bytes()).await;
        let _ = socket.write_all(first.as_bytes()).await;
        go.notified().await;
        let _ = socket.write_all(rest.as_bytes()).await;
    });
    addr
}

#[tokio::test]
async fn http_bodies_stream_records_before_the_response_ends() {
    let lines = |range: std::ops::Range<u32>| range.map(|i| format!("{{\"i\":{i}}}\n")).collect::<String>();
    let go = Arc::new(Notify::new());
    let addr = gated("application/x-ndjson", lines(0..1500), lines(1500..3000), go.clone()).await;
    let ctx = http_context(true);

    let mut source = open(&connector("http", json!({"url": format!("http://{addr}/")})), &tenant(), &ctx, None).await.unwrap();
    // The server holds back the second half until the first batch has arrived.
    let first =
        tokio::time::timeout(Duration::from_secs(10), source.next_batch(1000)).await.expect("the first batch waited for the whole body");
    assert_eq!(first.unwrap().unwrap().len(), 1000);
    go.notify_one();
    let (sizes, records) = drain(source.as_mut(), 1000).await;
    assert_eq!(sizes, [1000, 1000]);
    assert_eq!(records.last(), Some(&json!({"i": 2999})));
}

#[tokio::test]
async fn http_a_stalled_response_fails_after_the_idle_timeout() {
    let go = Arc::new(Notify::new());
    let addr = gated("text/csv", "id\n1\n".into(), "2\n".into(), go.clone()).await;
    let mut ctx = http_context(true);
    ctx.http.idle_timeout = Duration::from_millis(300);

    let mut source = open(&connector("http", json!({"url": format!("http://{addr}/")})), &tenant(), &ctx, None).await.unwrap();
    let started = Instant::now();
    let e = source.next_batch(10).await.unwrap_err();
    assert_eq!(e.code, "SOURCE_ERROR");
    assert_eq!(e.message, format!("the response from http://{addr}: reading failed: no data for 300 ms"));
    assert!(started.elapsed() < Duration::from_secs(5));
    drop(go);
}

#[tokio::test]
async fn http_unreachable_servers_fail_with_the_cause() {
    // A port that was just free: nothing listens there.
    let addr = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
    let e = open_error(&http_context(true), "http", json!({"url": format!("http://{addr}/data?key=secret")})).await;
    assert_eq!(e.code, "SOURCE_ERROR");
    assert!(e.message.starts_with(&format!("http://{addr}: ")), "{}", e.message);
    assert!(!e.message.contains("secret") && !e.message.contains("/data"), "{}", e.message);

    // Offline, the lookup may fail or time out; either way it is said which host it was.
    let mut ctx = http_context(true);
    ctx.http.connect_timeout = Duration::from_secs(2);
    let e = open_error(&ctx, "http", json!({"url": "http://no-such-host.invalid/"})).await;
    assert_eq!(e.code, "SOURCE_ERROR");
    assert!(e.message.contains("look") && e.message.contains("no-such-host.invalid"), "{}", e.message);
}

/// Reads one batch of `first` items, then opens a continuation at the position and reads the
/// rest: the records of both parts, and the continuation's source.
async fn read_in_two(ctx: &SourceContext, kind: &str, config: Value, first: usize) -> (Vec<Value>, Vec<Value>, Position, Position) {
    let connector = connector(kind, config);
    let mut source = open(&connector, &tenant(), ctx, None).await.unwrap();
    let head: Vec<Value> = source.next_batch(first).await.unwrap().unwrap().into_iter().map(|r| Value::Object(r.unwrap())).collect();
    let at = source.position();
    drop(source);
    let mut rest = open(&connector, &tenant(), ctx, Some(&at)).await.unwrap();
    let (_, tail) = drain(rest.as_mut(), 3).await;
    (head, tail, at, rest.position())
}

/// A server of `body` that honours `Range: bytes=N-` (with an ETag) when `ranges` is set.
async fn ranged(body: &'static str, content_type: &'static str, ranges: bool) -> Server {
    Server::start_with_heads(move |_, head| {
        let range = head.lines().find_map(|l| l.strip_prefix("range: bytes=").or_else(|| l.strip_prefix("Range: bytes=")));
        let from = range.and_then(|r| r.trim().trim_end_matches('-').parse::<usize>().ok()).filter(|_| ranges);
        let etag = ("ETag", "\"v1\"".to_string());
        match from {
            Some(n) if n >= body.len() => Reply { status: "416 Range Not Satisfiable", headers: vec![etag], body: Vec::new() },
            Some(n) => Reply {
                status: "206 Partial Content",
                headers: vec![("Content-Type", content_type.to_string()), etag],
                body: body.as_bytes()[n..].to_vec(),
            },
            None => {
                Reply { status: "200 OK", headers: vec![("Content-Type", content_type.to_string()), etag], body: body.as_bytes().to_vec() }
            }
        }
    })
    .await
}

#[tokio::test]
async fn http_continuations_ask_for_the_rest_by_range() {
    const BODY: &str = "id,name\n1,a\n2,b\n3,c\n4,d\n5,e\n";
    let server = ranged(BODY, "text/csv", true).await;
    let (head, tail, at, _) = read_in_two(&http_context(true), "http", json!({"url": server.url("/")}), 2).await;
    assert_eq!(head, [json!({"id": "1", "name": "a"}), json!({"id": "2", "name": "b"})]);
    assert_eq!(tail, [json!({"id": "3", "name": "c"}), json!({"id": "4", "name": "d"}), json!({"id": "5", "name": "e"})]);
    let offset = at.document.as_ref().unwrap().mark.offset;
    assert_eq!(offset, 16);
    // The whole body once, then only what follows the position.
    assert_eq!(server.served(), (BODY.len() + BODY.len() - offset as usize) as u64);
    let requests = server.requests();
    assert!(requests[1].to_ascii_lowercase().contains("range: bytes=16-"), "{}", requests[1]);
    assert!(requests[1].to_ascii_lowercase().contains("if-range: \"v1\""), "{}", requests[1]);

    // A continuation that stopped at the very end reads nothing more.
    let (_, tail, _, _) = read_in_two(&http_context(true), "http", json!({"url": server.url("/")}), 5).await;
    assert!(tail.is_empty());
}

#[tokio::test]
async fn http_servers_that_ignore_ranges_are_read_again_without_decoding_twice() {
    const BODY: &str = "{\"n\":1}\n{\"n\":2}\n{\"n\":3}\n";
    let server = ranged(BODY, "application/x-ndjson", false).await;
    let (head, tail, _, _) = read_in_two(&http_context(true), "http", json!({"url": server.url("/")}), 1).await;
    assert_eq!(head, [json!({"n": 1})]);
    assert_eq!(tail, [json!({"n": 2}), json!({"n": 3})]);
    assert_eq!(server.served(), 2 * BODY.len() as u64);
}

#[tokio::test]
async fn http_sources_resume_by_skipping_without_a_position() {
    let server = Server::start(|_| reply("200 OK", Some("text/csv"), "id\n1\n2\n3\n4\n5\n")).await;
    let (sizes, records) = read(&http_context(true), "http", json!({"url": server.url("/")}), 3, 10).await;
    assert_eq!(sizes, [2]);
    assert_eq!(records, [json!({"id": "4"}), json!({"id": "5"})]);
}

#[tokio::test]
async fn s3_continuations_read_on_by_range_from_their_object_and_offset() {
    let (ctx, bucket) = s3().await;
    let a = "id,name\n1,a\n2,b\n3,c\n";
    let b = "[{\"id\":4},{\"id\":5},{\"id\":6}]";
    let c = "{\"id\":7}\n{\"id\":8}\n";
    put(&ctx, &bucket, "in/a.csv", a).await;
    put(&ctx, &bucket, "in/b.json", b).await;
    put(&ctx, &bucket, "in/c.jsonl", c).await;
    let total = (a.len() + b.len() + c.len()) as u64;
    let config = json!({"bucket": bucket, "prefix": at("in/")});
    for first in 1..8 {
        let (head, tail, at, end) = read_in_two(&ctx, "s3", config.clone(), first).await;
        let ids: Vec<String> = head.iter().chain(&tail).map(|r| r["id"].to_string().trim_matches('"').to_string()).collect();
        assert_eq!(ids, ["1", "2", "3", "4", "5", "6", "7", "8"], "split after {first}");
        // What the continuation fetched: from its offset in its object, and the objects after it.
        let doc = at.document.unwrap();
        let before = match doc.key.as_deref().and_then(|k| k.strip_prefix(FOLDER)) {
            Some("in/a.csv") => 0,
            Some("in/b.json") => a.len(),
            _ => a.len() + b.len(),
        } as u64;
        assert_eq!(end.bytes_read - at.bytes_read, total - before - doc.mark.offset, "split after {first}");
    }
}

#[tokio::test]
async fn s3_an_object_replaced_mid_run_is_not_resumed_at_an_offset() {
    let (ctx, bucket) = s3().await;
    put(&ctx, &bucket, "one.jsonl", "{\"a\":1}\n{\"a\":2}\n").await;
    let connector = connector("s3", json!({"bucket": bucket, "key": at("one.jsonl")}));
    let mut source = open(&connector, &tenant(), &ctx, None).await.unwrap();
    source.next_batch(1).await.unwrap();
    let at = source.position();
    put(&ctx, &bucket, "one.jsonl", "{\"b\":1}\n{\"b\":2}\n{\"b\":3}\n").await;
    let e = match open(&connector, &tenant(), &ctx, Some(&at)).await {
        Ok(_) => panic!("resumed a replaced object"),
        Err(e) => e,
    };
    assert_eq!(e.code, "SOURCE_ERROR");
    assert!(e.message.contains("changed while the run was reading it"), "{}", e.message);
}

#[tokio::test]
async fn unsupported_types_say_so() {
    let e = open_error(&http_context(false), "snowflake", json!({})).await;
    assert_eq!(e.code, "UNSUPPORTED_CONNECTOR");
    assert!(e.message.starts_with("connector type 'snowflake' cannot be executed yet"));
}

#[tokio::test]
async fn s3_a_tenant_reads_only_its_own_folder_of_the_source_bucket() {
    let (ctx, bucket) = s3().await;
    put_raw(&ctx, &bucket, "tenants/t2/secret.jsonl", "{\"secret\":1}\n").await;
    put_raw(&ctx, &bucket, "tenants/t1x/secret.jsonl", "{\"secret\":2}\n").await;
    put(&ctx, &bucket, "mine.jsonl", "{\"mine\":1}\n").await;
    // Another tenant's key or prefix, a look-alike folder, a path outside every folder: refused
    // when the run opens them, whatever was stored.
    for config in [
        json!({"bucket": bucket, "key": "tenants/t2/secret.jsonl"}),
        json!({"key": "tenants/t2/secret.jsonl"}),
        json!({"prefix": "tenants/t2/"}),
        json!({"prefix": "tenants/t1"}),
        json!({"prefix": "tenants/"}),
        json!({"bucket": "another-bucket", "key": "tenants/t1/mine.jsonl"}),
    ] {
        let e = open_error(&ctx, "s3", config.clone()).await;
        assert_eq!(e.code, "SOURCE_BLOCKED", "{config}: {}", e.message);
    }
    // No bucket, no prefix: the tenant's own folder, and nothing of the others.
    assert_eq!(read(&ctx, "s3", json!({}), 0, 10).await.1, [json!({"mine": 1})]);
}

#[tokio::test]
async fn s3_a_customer_bucket_is_read_through_the_tenants_role() {
    let (ctx, _) = s3().await;
    let theirs = format!("customer-{}", uuid::Uuid::new_v4().simple());
    ctx.s3.create_bucket().bucket(&theirs).send().await.unwrap();
    put_raw(&ctx, &theirs, "exports/a.jsonl", "{\"n\":1}\n{\"n\":2}\n").await;
    let role = "arn:aws:iam::123456789012:role/pipelines-reader";
    let (_, records) = read(&ctx, "s3", json!({"bucket": theirs, "roleArn": role, "prefix": "exports/"}), 0, 10).await;
    assert_eq!(records, [json!({"n": 1}), json!({"n": 2})]);
    // Without the role, that bucket is not this deployment's to read.
    let e = open_error(&ctx, "s3", json!({"bucket": theirs, "prefix": "exports/"})).await;
    assert_eq!(e.code, "SOURCE_BLOCKED");
    assert!(e.message.starts_with("config.bucket must be this deployment's source bucket"), "{}", e.message);
    assert!(e.message.contains(&shared::domain::source_access::external_id(&tenant())), "the error tells the external id: {}", e.message);
}

/// The request target (path and query) of a request head.
fn target(head: &str) -> String {
    head.split_whitespace().nth(1).unwrap_or("/").to_string()
}

fn json_reply(body: Value, headers: Vec<(&'static str, String)>) -> Reply {
    let mut headers = headers;
    headers.push(("Content-Type", "application/json".into()));
    Reply { status: "200 OK", headers, body: body.to_string().into_bytes() }
}

#[tokio::test]
async fn http_link_pagination_follows_rel_next_and_resumes_on_its_page() {
    let server = Server::start_with_heads(|path, _| {
        let page = |ids: [u64; 2], next: Option<&str>| {
            let body = Value::Array(ids.iter().map(|i| json!({"id": i})).collect());
            let link = next.map(|n| vec![("Link", format!("<{n}>; rel=\"next\", </p1>; rel=\"first\""))]).unwrap_or_default();
            json_reply(body, link)
        };
        match path {
            "/p1" => page([1, 2], Some("/p2?after=2")),
            "/p2" => page([3, 4], Some("/p3")),
            "/p3" => page([5, 6], None),
            _ => reply("404 Not Found", None, ""),
        }
    })
    .await;
    let config = json!({"url": server.url("/p1"), "pagination": {"type": "link"}});
    let (_, records) = read(&http_context(true), "http", config.clone(), 0, 4).await;
    assert_eq!(records, (1..=6).map(|i| json!({"id": i})).collect::<Vec<_>>());
    // Stopped in the middle of page 2: the continuation starts there, not at page 1.
    let (head, tail, at, _) = read_in_two(&http_context(true), "http", config, 3).await;
    assert_eq!((head.len(), tail.len()), (3, 3));
    assert_eq!(tail, [json!({"id": 4}), json!({"id": 5}), json!({"id": 6})]);
    assert!(at.document.unwrap().key.unwrap().ends_with("/p2?after=2"));
}

#[tokio::test]
async fn http_cursor_and_offset_pagination_read_every_page() {
    let server = Server::start_with_heads(|_, head| {
        let target = target(head);
        let (path, query) = target.split_once('?').unwrap_or((&target, ""));
        let param = |name: &str| query.split('&').find_map(|kv| kv.strip_prefix(&format!("{name}="))).map(str::to_string);
        match path {
            "/cursor" => {
                let (ids, next) = match param("c").as_deref() {
                    None => (vec![1, 2], json!("x")),
                    Some("x") => (vec![3], json!("y")),
                    Some("y") => (vec![4], Value::Null),
                    _ => (vec![], Value::Null),
                };
                json_reply(
                    json!({"data": {"items": ids.iter().map(|i| json!({"id": i})).collect::<Vec<_>>()}, "meta": {"next": next}}),
                    vec![],
                )
            }
            "/offset" => {
                let offset: u64 = param("skip").and_then(|v| v.parse().ok()).unwrap_or(0);
                let ids: Vec<u64> = (offset + 1..=(offset + 2).min(5)).collect();
                json_reply(Value::Array(ids.iter().map(|i| json!({"id": i})).collect()), vec![])
            }
            _ => reply("404 Not Found", None, ""),
        }
    })
    .await;
    let cursor = json!({"url": server.url("/cursor?limit=2"), "recordsPath": "data.items",
                        "pagination": {"type": "cursor", "cursorPath": "meta.next", "param": "c"}});
    let (_, records) = read(&http_context(true), "http", cursor, 0, 10).await;
    assert_eq!(records, (1..=4).map(|i| json!({"id": i})).collect::<Vec<_>>());
    let offset = json!({"url": server.url("/offset"), "pagination": {"type": "offset", "param": "skip", "pageSize": 2}});
    let (_, records) = read(&http_context(true), "http", offset.clone(), 0, 10).await;
    assert_eq!(records, (1..=5).map(|i| json!({"id": i})).collect::<Vec<_>>());
    assert!(server.requests().iter().any(|r| r.contains("/offset?skip=4")), "third page asked by offset");
    let (_, tail, _, _) = read_in_two(&http_context(true), "http", offset, 3).await;
    assert_eq!(tail, [json!({"id": 4}), json!({"id": 5})]);
}

#[tokio::test]
async fn http_throttling_and_server_errors_are_retried() {
    let calls = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let seen = calls.clone();
    let server = Server::start_with_heads(move |_, _| match seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst) {
        0 => Reply { status: "429 Too Many Requests", headers: vec![("Retry-After", "0".into())], body: Vec::new() },
        1 => reply("503 Service Unavailable", None, ""),
        2 => reply("502 Bad Gateway", None, ""),
        _ => reply("200 OK", Some("application/x-ndjson"), "{\"id\":1}\n"),
    })
    .await;
    let mut ctx = http_context(true);
    ctx.http.retry_base = Duration::from_millis(10);
    let (_, records) = read(&ctx, "http", json!({"url": server.url("/")}), 0, 10).await;
    assert_eq!((records, calls.load(std::sync::atomic::Ordering::SeqCst)), (vec![json!({"id": 1})], 4));
    // A server that keeps failing fails the run after the retries, naming the status.
    let server = Server::start(|_| reply("500 Internal Server Error", None, "")).await;
    let e = open_error(&ctx, "http", json!({"url": server.url("/")})).await;
    assert!(e.message.contains("status 500") && e.message.contains("5 times"), "{}", e.message);
    // A 4xx is the client's mistake: no retry.
    let server = Server::start(|_| reply("403 Forbidden", None, "")).await;
    let e = open_error(&ctx, "http", json!({"url": server.url("/")})).await;
    assert!(e.message.ends_with("status 403 Forbidden"), "{}", e.message);
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn http_responses_have_a_byte_cap_and_every_page_passes_the_guard() {
    let big: String = (0..1000).map(|i| format!("{{\"id\":{i}}}\n")).collect();
    let server = Server::start(move |_| reply("200 OK", Some("application/x-ndjson"), big.clone())).await;
    let mut ctx = http_context(true);
    ctx.http.max_response_bytes = 1000;
    let mut source = open(&connector("http", json!({"url": server.url("/")})), &tenant(), &ctx, None).await.unwrap();
    let mut error = None;
    while error.is_none() {
        match source.next_batch(100).await {
            Ok(Some(_)) => {}
            Ok(None) => break,
            Err(e) => error = Some(e),
        }
    }
    assert!(error.expect("the cap is hit").message.contains("larger than"), "a capped response fails");

    // A next page on the metadata address is refused like a first one.
    let server = Server::start(|_| {
        let mut r = reply("200 OK", Some("application/json"), "[{\"id\":1}]");
        r.headers.push(("Link", "<http://169.254.169.254/latest/meta-data/>; rel=\"next\"".into()));
        r
    })
    .await;
    let mut source =
        open(&connector("http", json!({"url": server.url("/"), "pagination": {"type": "link"}})), &tenant(), &http_context(true), None)
            .await
            .unwrap();
    let e = source.next_batch(10).await.unwrap_err();
    assert_eq!(e.code, "SOURCE_BLOCKED", "{}", e.message);
}
