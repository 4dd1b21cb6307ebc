//! What each kind of function holds, built once per container during Lambda's init phase, and
//! the narrow views of it that handlers take.
//!
//! | functions | context | settings it needs |
//! |---|---|---|
//! | reads, catalog and key writes | [`Api`] | `TABLE_NAME`, `AUTH_TABLE_NAME` (`SOURCE_BUCKET` optional) |
//! | trigger | [`QueueApi`] | and `QUEUE_URL` |
//! | rows and dead letters | [`RecordsApi`] | and `RECORDS_TABLE_NAME` |
//! | scheduler | [`SchedulerApi`] | [`QueueApi`]'s and `TICK_QUEUE_URL` (its shard messages) |
//! | worker, the local stack | [`App`] | all of them but `AUTH_TABLE_NAME` (they serve no request) |
//!
//! A missing setting fails the container's init, naming it; no request ever meets a queue or a
//! table that is not there. Each context builds only its own clients, so a function that reads
//! pipelines links no SQS client.

use std::time::Duration;

use aws_smithy_runtime_api::client::http::{HttpClient, HttpConnectorSettings, SharedHttpClient, SharedHttpConnector};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;

use crate::domain::source_access::SourceBuckets;
use crate::queue::RunQueue;
use crate::settings::Quotas;
use crate::store::records::RecordsTable;
use crate::store::Store;

pub type Error = lambda_runtime::Error;

/// The catalog and its rules: every function has these.
pub trait Stores: Send + Sync + 'static {
    fn store(&self) -> &Store;
    /// Where `s3` connectors may read, checked when connectors are written.
    fn source_buckets(&self) -> &SourceBuckets;
    /// What one tenant may hold or do at once.
    fn quotas(&self) -> &Quotas;
}

/// Functions that start runs.
pub trait Queues: Stores {
    fn queue(&self) -> &RunQueue;
}

/// Functions that read what runs wrote.
pub trait Records: Stores {
    fn records(&self) -> &RecordsTable;
}

/// Functions that read tenants' sources (previews, connector tests, the worker).
#[cfg(feature = "engine")]
pub trait Sources: Stores {
    fn sources(&self) -> &crate::engine::source::SourceContext;
}

/// A context built from the deployment's environment.
pub trait Context: Stores + Sized {
    fn from_sdk(sdk: &aws_config::SdkConfig) -> Result<Self, Error>;
}

/// The roots every AWS endpoint's certificate chains to (Amazon Trust Services). To reach an
/// endpoint behind another CA (a TLS-inspecting proxy), add its root to this file.
pub const AWS_ROOTS: &str = include_str!("../certs/aws-roots.pem");

/// The HTTPS client of every AWS client of the process: rustls over ring, which links far less
/// than aws-lc (the SDK's default) and has no entropy-gathering start-up cost. Connections
/// give up connecting after `connect_timeout`.
///
/// Two choices make init several times faster (measured in `docs/benchmarks.md`):
/// - It trusts [`AWS_ROOTS`], not the system's store, whose some 150 certificates take ≈4 ms to
///   read and parse.
/// - It is one connector, built here once. The SDK's own client builds a TLS configuration
///   (≈2 ms) when each service client is built, to validate it, and again on each client's
///   first request.
pub fn https_client(connect_timeout: Duration) -> SharedHttpClient {
    use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider, TlsContext, TrustStore};
    let roots = TrustStore::empty().with_native_roots(false).with_pem_certificate(AWS_ROOTS.as_bytes());
    let connector = aws_smithy_http_client::Connector::builder()
        .connector_settings(HttpConnectorSettings::builder().connect_timeout(connect_timeout).build())
        .sleep_impl(aws_smithy_async::rt::sleep::TokioSleep::new())
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .tls_context(TlsContext::builder().with_trust_store(roots).build().unwrap_or_default())
        .build();
    SharedHttpClient::new(OneConnector(SharedHttpConnector::new(connector)))
}

/// An HTTP client that hands every request the same connector (and so the same pool).
#[derive(Debug)]
struct OneConnector(SharedHttpConnector);

impl HttpClient for OneConnector {
    fn http_connector(&self, _: &HttpConnectorSettings, _: &RuntimeComponents) -> SharedHttpConnector {
        self.0.clone()
    }
}

/// aws-config's whole provider chain (profiles, web identity, IMDS...), for the functions that
/// need more than the environment: the worker assumes tenants' roles through STS.
pub async fn load_aws_config() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest()).http_client(https_client(Duration::from_millis(3100))).load().await
}

fn setting(name: &str) -> Result<String, Error> {
    std::env::var(name).map_err(|_| format!("{name} is not set").into())
}

/// `AWS_ENDPOINT_URL_<SERVICE>` (the local stack's emulators), read here because API functions
/// build their configuration without aws-config's loader, which would otherwise read it.
fn endpoint(service: &str) -> Option<String> {
    std::env::var(format!("AWS_ENDPOINT_URL_{service}")).ok().filter(|url| !url.is_empty())
}

#[cfg(feature = "engine")]
fn eventbridge(sdk: &aws_config::SdkConfig) -> aws_sdk_eventbridge::Client {
    let config = aws_sdk_eventbridge::config::Builder::from(sdk);
    aws_sdk_eventbridge::Client::from_conf(match endpoint("EVENTBRIDGE") {
        Some(url) => config.endpoint_url(url).build(),
        None => config.build(),
    })
}

fn dynamodb(sdk: &aws_config::SdkConfig) -> aws_sdk_dynamodb::Client {
    let config = aws_sdk_dynamodb::config::Builder::from(sdk);
    aws_sdk_dynamodb::Client::from_conf(match endpoint("DYNAMODB") {
        Some(url) => config.endpoint_url(url).build(),
        None => config.build(),
    })
}

/// Sources through this function's AWS environment (`SOURCES_ALLOW_PRIVATE`, `SOURCE_BUCKET`),
/// with the emulators' endpoints when set.
#[cfg(feature = "engine")]
fn sources(sdk: &aws_config::SdkConfig) -> crate::engine::source::SourceContext {
    let mut config = sdk.to_builder();
    if let Some(url) = endpoint("S3") {
        config.set_endpoint_url(Some(url));
    }
    crate::engine::source::SourceContext::from_env(&config.build())
}

fn sqs(sdk: &aws_config::SdkConfig) -> aws_sdk_sqs::Client {
    let config = aws_sdk_sqs::config::Builder::from(sdk);
    aws_sdk_sqs::Client::from_conf(match endpoint("SQS") {
        Some(url) => config.endpoint_url(url).build(),
        None => config.build(),
    })
}

/// An API function's context: the table, and the source-bucket rule.
#[derive(Clone, Debug)]
pub struct Api {
    pub store: Store,
    pub source_buckets: SourceBuckets,
    pub quotas: Quotas,
}

impl Api {
    /// The store over `table`, with the quotas of the environment ([`Quotas::from_env`]).
    pub fn new(dynamodb: aws_sdk_dynamodb::Client, table: &str) -> Self {
        Self { store: Store::new(dynamodb, table), source_buckets: SourceBuckets::default(), quotas: Quotas::from_env() }
    }
}

impl Api {
    /// The table, its source-bucket rule, and the auth table when `auth` (functions that
    /// authenticate requests).
    fn from_settings(sdk: &aws_config::SdkConfig, auth: bool) -> Result<Self, Error> {
        let mut api = Api::new(dynamodb(sdk), &setting("TABLE_NAME")?);
        if auth {
            api.store = api.store.with_auth_table(setting("AUTH_TABLE_NAME")?);
        }
        api.source_buckets = SourceBuckets::from_env();
        Ok(api)
    }
}

impl Context for Api {
    fn from_sdk(sdk: &aws_config::SdkConfig) -> Result<Self, Error> {
        Self::from_settings(sdk, true)
    }
}

impl Stores for Api {
    fn store(&self) -> &Store {
        &self.store
    }
    fn source_buckets(&self) -> &SourceBuckets {
        &self.source_buckets
    }
    fn quotas(&self) -> &Quotas {
        &self.quotas
    }
}

/// [`Api`] and the run queue.
#[derive(Clone, Debug)]
pub struct QueueApi {
    pub api: Api,
    pub queue: RunQueue,
}

impl Context for QueueApi {
    fn from_sdk(sdk: &aws_config::SdkConfig) -> Result<Self, Error> {
        Ok(Self { api: Api::from_sdk(sdk)?, queue: RunQueue::new(sqs(sdk), setting("QUEUE_URL")?) })
    }
}

/// The scheduler: [`QueueApi`] and the tick queue its shard messages go through.
pub struct SchedulerApi {
    pub api: Api,
    pub queue: RunQueue,
    pub ticks: RunQueue,
}

impl Context for SchedulerApi {
    fn from_sdk(sdk: &aws_config::SdkConfig) -> Result<Self, Error> {
        let QueueApi { api, queue } = QueueApi::from_sdk(sdk)?;
        Ok(Self { api, queue, ticks: RunQueue::new(sqs(sdk), setting("TICK_QUEUE_URL")?) })
    }
}

/// [`Api`] and the records table.
#[derive(Clone, Debug)]
pub struct RecordsApi {
    pub api: Api,
    pub records: RecordsTable,
}

impl Context for RecordsApi {
    fn from_sdk(sdk: &aws_config::SdkConfig) -> Result<Self, Error> {
        let api = Api::from_sdk(sdk)?;
        let records = RecordsTable::new(api.store.client().clone(), setting("RECORDS_TABLE_NAME")?);
        Ok(Self { api, records })
    }
}

/// [`Api`] and tenants' sources: previews and connector tests.
#[cfg(feature = "engine")]
#[derive(Clone, Debug)]
pub struct SourcesApi {
    pub api: Api,
    pub sources: crate::engine::source::SourceContext,
}

#[cfg(feature = "engine")]
impl Context for SourcesApi {
    fn from_sdk(sdk: &aws_config::SdkConfig) -> Result<Self, Error> {
        Ok(Self { api: Api::from_sdk(sdk)?, sources: sources(sdk) })
    }
}

#[cfg(feature = "engine")]
impl Sources for SourcesApi {
    fn sources(&self) -> &crate::engine::source::SourceContext {
        &self.sources
    }
}

macro_rules! stores_through_api {
    ($($t:ty),*) => {$(
        impl Stores for $t {
            fn store(&self) -> &Store {
                &self.api.store
            }
            fn source_buckets(&self) -> &SourceBuckets {
                &self.api.source_buckets
            }
            fn quotas(&self) -> &Quotas {
                &self.api.quotas
            }
        }
    )*};
}
stores_through_api!(QueueApi, SchedulerApi, RecordsApi, App);
#[cfg(feature = "engine")]
stores_through_api!(SourcesApi);

impl Queues for QueueApi {
    fn queue(&self) -> &RunQueue {
        &self.queue
    }
}

impl Queues for SchedulerApi {
    fn queue(&self) -> &RunQueue {
        &self.queue
    }
}

impl Records for RecordsApi {
    fn records(&self) -> &RecordsTable {
        &self.records
    }
}

/// Everything: the worker's and the scheduler's context, and the local stack's (which serves
/// every endpoint from one process).
#[derive(Clone, Debug)]
pub struct App {
    pub api: Api,
    pub queue: RunQueue,
    pub records: RecordsTable,
    /// Where runs' ends are announced (`EVENT_BUS_NAME`); none, none announced.
    #[cfg(feature = "engine")]
    pub events: Option<crate::events::RunEvents>,
    /// Tenants' sources; [`App::new`]'s reach none until [`App::with_sources`].
    #[cfg(feature = "engine")]
    pub sources: crate::engine::source::SourceContext,
}

impl App {
    pub fn new(dynamodb: aws_sdk_dynamodb::Client, sqs: aws_sdk_sqs::Client, table: &str, queue_url: &str, records_table: &str) -> Self {
        let api = Api::new(dynamodb, table);
        let records = RecordsTable::new(api.store.client().clone(), records_table);
        Self {
            api,
            queue: RunQueue::new(sqs, queue_url),
            records,
            #[cfg(feature = "engine")]
            events: None,
            #[cfg(feature = "engine")]
            sources: crate::engine::source::SourceContext::new(&aws_config::SdkConfig::builder().build(), false),
        }
    }

    #[cfg(feature = "engine")]
    pub fn with_sources(mut self, sources: crate::engine::source::SourceContext) -> Self {
        self.sources = sources;
        self
    }

    /// Announces runs' ends on `bus`.
    #[cfg(feature = "engine")]
    pub fn with_events(mut self, client: aws_sdk_eventbridge::Client, bus: &str) -> Self {
        self.events = Some(crate::events::RunEvents::new(client, bus));
        self
    }

    pub fn with_quotas(mut self, quotas: Quotas) -> Self {
        self.api.quotas = quotas;
        self
    }

    pub fn with_source_bucket(mut self, bucket: &str) -> Self {
        self.api.source_buckets = SourceBuckets { deployment: Some(bucket.to_string()) };
        self
    }

    /// From the environment, as [`Context::from_sdk`], loading the AWS configuration first.
    pub async fn from_env() -> Result<Self, Error> {
        Self::from_sdk(&load_aws_config().await)
    }
}

impl Context for App {
    fn from_sdk(sdk: &aws_config::SdkConfig) -> Result<Self, Error> {
        let api = Api::from_settings(sdk, false)?;
        let queue = RunQueue::new(sqs(sdk), setting("QUEUE_URL")?);
        let records = RecordsTable::new(api.store.client().clone(), setting("RECORDS_TABLE_NAME")?);
        #[cfg(feature = "engine")]
        let events =
            std::env::var("EVENT_BUS_NAME").ok().filter(|b| !b.is_empty()).map(|bus| crate::events::RunEvents::new(eventbridge(sdk), bus));
        Ok(Self {
            api,
            queue,
            records,
            #[cfg(feature = "engine")]
            events,
            #[cfg(feature = "engine")]
            sources: sources(sdk),
        })
    }
}

impl Queues for App {
    fn queue(&self) -> &RunQueue {
        &self.queue
    }
}

impl Records for App {
    fn records(&self) -> &RecordsTable {
        &self.records
    }
}

/// A context shared between tasks (the local stack's) is the context.
impl<T: Stores> Stores for std::sync::Arc<T> {
    fn store(&self) -> &Store {
        (**self).store()
    }
    fn source_buckets(&self) -> &SourceBuckets {
        (**self).source_buckets()
    }
    fn quotas(&self) -> &Quotas {
        (**self).quotas()
    }
}

impl<T: Queues> Queues for std::sync::Arc<T> {
    fn queue(&self) -> &RunQueue {
        (**self).queue()
    }
}

#[cfg(feature = "engine")]
impl Sources for App {
    fn sources(&self) -> &crate::engine::source::SourceContext {
        &self.sources
    }
}

#[cfg(feature = "engine")]
impl<T: Sources> Sources for std::sync::Arc<T> {
    fn sources(&self) -> &crate::engine::source::SourceContext {
        (**self).sources()
    }
}

impl<T: Records> Records for std::sync::Arc<T> {
    fn records(&self) -> &RecordsTable {
        (**self).records()
    }
}

#[cfg(test)]
mod tests {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::CertificateDer;

    #[test]
    fn the_aws_roots_are_amazons_four_and_starfields_cross_signer() {
        let certs: Vec<_> = CertificateDer::pem_slice_iter(super::AWS_ROOTS.as_bytes()).collect::<Result<_, _>>().unwrap();
        let named = |name: &[u8]| certs.iter().filter(|c| c.windows(name.len()).any(|w| w == name)).count();
        assert_eq!((certs.len(), named(b"Amazon Root CA "), named(b"Starfield Services Root")), (5, 4, 1));
    }
}
