//! What each kind of function holds, built once per container during Lambda's init phase, and
//! the narrow views of it that handlers take.
//!
//! | functions | context | settings it needs |
//! |---|---|---|
//! | reads, catalog and key writes | [`Api`] | `TABLE_NAME` (`SOURCE_BUCKET` optional) |
//! | trigger | [`QueueApi`] | and `QUEUE_URL` |
//! | rows and dead letters | [`RecordsApi`] | and `RECORDS_TABLE_NAME` |
//! | worker, scheduler, the local stack | [`App`] | all of them |
//!
//! A missing setting fails the container's init, naming it; no request ever meets a queue or a
//! table that is not there. Each context builds only its own clients, so a function that reads
//! pipelines links no SQS client.

use crate::domain::source_access::SourceBuckets;
use crate::queue::RunQueue;
use crate::store::records::RecordsTable;
use crate::store::Store;

pub type Error = lambda_runtime::Error;

/// The catalog and its rules: every function has these.
pub trait Stores: Send + Sync + 'static {
    fn store(&self) -> &Store;
    /// Where `s3` connectors may read, checked when connectors are written.
    fn source_buckets(&self) -> &SourceBuckets;
}

/// Functions that start runs.
pub trait Queues: Stores {
    fn queue(&self) -> &RunQueue;
}

/// Functions that read what runs wrote.
pub trait Records: Stores {
    fn records(&self) -> &RecordsTable;
}

/// A context built from the deployment's environment.
pub trait Context: Stores + Sized {
    fn from_sdk(sdk: &aws_config::SdkConfig) -> Result<Self, Error>;
}

/// The HTTPS client of every AWS client: rustls over ring, which links far less than aws-lc
/// (the SDK's default) and has no entropy-gathering start-up cost.
pub fn https_client() -> aws_smithy_runtime_api::client::http::SharedHttpClient {
    use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};
    aws_smithy_http_client::Builder::new().tls_provider(Provider::Rustls(CryptoMode::Ring)).build_https()
}

/// aws-config's whole provider chain (profiles, web identity, IMDS...), for the functions that
/// need more than the environment: the worker assumes tenants' roles through STS.
pub async fn load_aws_config() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest()).http_client(https_client()).load().await
}

fn setting(name: &str) -> Result<String, Error> {
    std::env::var(name).map_err(|_| format!("{name} is not set").into())
}

/// `AWS_ENDPOINT_URL_<SERVICE>` (the local stack's emulators), read here because API functions
/// build their configuration without aws-config's loader, which would otherwise read it.
fn endpoint(service: &str) -> Option<String> {
    std::env::var(format!("AWS_ENDPOINT_URL_{service}")).ok().filter(|url| !url.is_empty())
}

fn dynamodb(sdk: &aws_config::SdkConfig) -> aws_sdk_dynamodb::Client {
    let config = aws_sdk_dynamodb::config::Builder::from(sdk);
    aws_sdk_dynamodb::Client::from_conf(match endpoint("DYNAMODB") {
        Some(url) => config.endpoint_url(url).build(),
        None => config.build(),
    })
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
}

impl Api {
    pub fn new(dynamodb: aws_sdk_dynamodb::Client, table: &str) -> Self {
        Self { store: Store::new(dynamodb, table), source_buckets: SourceBuckets::default() }
    }
}

impl Context for Api {
    fn from_sdk(sdk: &aws_config::SdkConfig) -> Result<Self, Error> {
        let mut api = Api::new(dynamodb(sdk), &setting("TABLE_NAME")?);
        api.source_buckets = SourceBuckets::from_env();
        Ok(api)
    }
}

impl Stores for Api {
    fn store(&self) -> &Store {
        &self.store
    }
    fn source_buckets(&self) -> &SourceBuckets {
        &self.source_buckets
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

macro_rules! stores_through_api {
    ($($t:ty),*) => {$(
        impl Stores for $t {
            fn store(&self) -> &Store {
                &self.api.store
            }
            fn source_buckets(&self) -> &SourceBuckets {
                &self.api.source_buckets
            }
        }
    )*};
}
stores_through_api!(QueueApi, RecordsApi, App);

impl Queues for QueueApi {
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
}

impl App {
    pub fn new(dynamodb: aws_sdk_dynamodb::Client, sqs: aws_sdk_sqs::Client, table: &str, queue_url: &str, records_table: &str) -> Self {
        let api = Api::new(dynamodb, table);
        let records = RecordsTable::new(api.store.client().clone(), records_table);
        Self { api, queue: RunQueue::new(sqs, queue_url), records }
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
        let QueueApi { api, queue } = QueueApi::from_sdk(sdk)?;
        let records = RecordsTable::new(api.store.client().clone(), setting("RECORDS_TABLE_NAME")?);
        Ok(Self { api, queue, records })
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
}

impl<T: Queues> Queues for std::sync::Arc<T> {
    fn queue(&self) -> &RunQueue {
        (**self).queue()
    }
}

impl<T: Records> Records for std::sync::Arc<T> {
    fn records(&self) -> &RecordsTable {
        (**self).records()
    }
}
