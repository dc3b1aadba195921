//! Wiring: adapters into the store and services, services into routers. Both runtimes call
//! this; they differ only in the adapters they pass.

use std::sync::Arc;

use axum::Router;

use crate::adapters::local_jobs::LocalJobQueue;
use crate::adapters::memory::{MemoryBlobStore, MemoryTable};
use crate::domain::UrlPolicy;
use crate::http;
use crate::http::access::Observer;
use crate::http::auth::RegistryAuth;
use crate::observe::emf::EmfSink;
use crate::observe::Metrics;
use crate::ports::{BlobStore, JobHandler, JobQueue, QueueDepth, StoreError, Table, UpstreamFactory};
use crate::services::observed::{Gauges, MeteredSync};
use crate::services::{
    AccessRules, Accounts, AuthMode, Heartbeats, Manage, Orphans, Registry, RegistryConfig, Repair, SyncRunner,
    SyncService, Users, Worker,
};
use crate::store::{FieldKey, NodeLife, Retention, Store};

/// Settings every runtime shares; [`crate::config::Config::settings`] builds them from the
/// configuration.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    pub registry: RegistryConfig,
    /// The URL clients use, for absolute links; derived from each request when unset.
    pub public_url: Option<String>,
    /// How the registry authenticates (`Open` unless the runtime says otherwise).
    pub auth: AuthMode,
    /// How long upload sessions and finished tasks are kept.
    pub retention: Retention,
    /// The key remote credentials are sealed with at rest (none: stored as given).
    pub field_key: Option<Arc<FieldKey>>,
    /// This process as a life of its node, when it is the only process of that node (the
    /// local binary on its data directory): leases its previous life held are taken over at
    /// once after a restart instead of waiting for them to expire.
    pub node: Option<NodeLife>,
    /// Which addresses remotes may make Berth contact (`BERTH_REMOTE_PRIVATE_NETWORKS`):
    /// checked when a remote is saved and again whenever the upstream client connects.
    pub remote_urls: UrlPolicy,
    /// The bearer token `GET /metrics` asks for (`BERTH_METRICS_TOKEN`); none: `/metrics`
    /// answers `404`.
    pub metrics_token: Option<crate::config::Secret>,
    /// Where CloudWatch EMF documents go (the Lambda functions); none: no EMF.
    pub emf: Option<EmfSink>,
}

/// The role the read-only users of `BERTH_READONLY_USERS` hold everywhere: they view and pull
/// every namespace's distributions.
pub const READONLY_ROLE: &str = "container.containernamespace_consumer";

/// The services of one Berth instance.
#[derive(Clone)]
pub struct App {
    pub store: Store,
    pub blobs: Arc<dyn BlobStore>,
    pub registry: Arc<Registry>,
    pub manage: Arc<Manage>,
    pub users: Arc<Users>,
    /// Identities, users, groups and roles.
    pub accounts: Arc<Accounts>,
    /// Clients for upstream registries (syncs, on-demand pulls); `None` in a build without
    /// the `upstream` feature.
    pub upstreams: Option<Arc<dyn UpstreamFactory>>,
    pub settings: Settings,
    /// This instance's counters and histograms (requests, syncs, upstream requests).
    pub metrics: Arc<Metrics>,
    /// The job queue's depth, for metrics (set by the runtime that knows its queue).
    pub queue_depth: Option<Arc<dyn QueueDepth>>,
}

/// The upstream client this build has: reqwest with the `upstream` feature.
pub fn default_upstreams() -> Option<Arc<dyn UpstreamFactory>> {
    upstreams_with(UrlPolicy::default())
}

/// The upstream client this build has, connecting only where `urls` allows.
pub fn upstreams_with(urls: UrlPolicy) -> Option<Arc<dyn UpstreamFactory>> {
    metered_upstreams(urls, None)
}

/// The upstream client this build has, connecting only where `urls` allows and counting its
/// requests in `metrics`.
pub fn metered_upstreams(urls: UrlPolicy, metrics: Option<Arc<Metrics>>) -> Option<Arc<dyn UpstreamFactory>> {
    #[cfg(feature = "upstream")]
    {
        let factory = crate::adapters::upstream_http::HttpUpstreamFactory::with_policy(urls);
        Some(Arc::new(match metrics {
            Some(m) => factory.with_metrics(m),
            None => factory,
        }))
    }
    #[cfg(not(feature = "upstream"))]
    {
        let _ = (urls, metrics);
        None
    }
}

impl App {
    pub fn new(table: Arc<dyn Table>, blobs: Arc<dyn BlobStore>, jobs: Arc<dyn JobQueue>, settings: Settings) -> Self {
        let metrics = Arc::new(Metrics::for_settings(&settings));
        let upstreams = metered_upstreams(settings.remote_urls, Some(metrics.clone()));
        Self::assemble(table, blobs, jobs, settings, upstreams, metrics)
    }

    /// An instance with the given upstream clients (tests pass fakes; their requests are not
    /// counted).
    pub fn with_upstreams(
        table: Arc<dyn Table>,
        blobs: Arc<dyn BlobStore>,
        jobs: Arc<dyn JobQueue>,
        settings: Settings,
        upstreams: Option<Arc<dyn UpstreamFactory>>,
    ) -> Self {
        let metrics = Arc::new(Metrics::for_settings(&settings));
        Self::assemble(table, blobs, jobs, settings, upstreams, metrics)
    }

    fn assemble(
        table: Arc<dyn Table>,
        blobs: Arc<dyn BlobStore>,
        jobs: Arc<dyn JobQueue>,
        settings: Settings,
        upstreams: Option<Arc<dyn UpstreamFactory>>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let store = Store::with_retention(table, settings.retention)
            .with_field_key(settings.field_key.clone())
            .with_node(settings.node.clone());
        let accounts = Arc::new(Accounts::new(store.clone()));
        let registry = Arc::new(
            Registry::new(store.clone(), blobs.clone(), settings.registry.clone())
                .with_upstreams(upstreams.clone())
                .with_accounts(accounts.clone())
                .with_jobs(jobs.clone()),
        );
        App {
            manage: Arc::new(
                Manage::new(store.clone(), jobs)
                    .with_url_policy(settings.remote_urls)
                    .with_accounts(accounts.clone()),
            ),
            users: Arc::new(Users::new(store.clone())),
            accounts,
            store,
            blobs,
            registry,
            upstreams,
            settings,
            metrics,
            queue_depth: None,
        }
    }

    /// The job handler for this instance's jobs: syncs run when an upstream client exists;
    /// repairs fetch again from upstream only then.
    pub fn worker(&self) -> Arc<dyn JobHandler> {
        let sync = self
            .upstreams
            .clone()
            .map(|u| Arc::new(SyncService::new(self.store.clone(), self.blobs.clone(), u)) as Arc<dyn SyncRunner>)
            .map(|s| Arc::new(MeteredSync::new(s, self.metrics.clone())) as Arc<dyn SyncRunner>);
        let orphans = Arc::new(Orphans::new(self.store.clone(), self.blobs.clone()));
        let repair = Arc::new(Repair::new(
            self.store.clone(),
            self.blobs.clone(),
            self.upstreams.clone(),
        ));
        Arc::new(
            Worker::new(self.store.clone(), sync)
                .with_orphans(orphans)
                .with_repair(repair)
                .with_schedules(self.manage.clone())
                .with_blob_copies(self.registry.clone()),
        )
    }

    /// Fires due schedules now and then every `every` (the embedded runtime's timer; on AWS a
    /// schedules job does it), until `stop` turns true.
    pub fn start_schedules(
        &self,
        every: std::time::Duration,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        let manage = self.manage.clone();
        tokio::spawn(async move {
            loop {
                if let Err(e) = manage.fire_schedules(chrono::Utc::now()).await {
                    tracing::warn!(error = %e, "firing schedules failed");
                }
                tokio::select! {
                    _ = tokio::time::sleep(every) => {}
                    _ = stop.wait_for(|s| *s) => return,
                }
            }
        })
    }

    /// The workers of this instance's job runner, named `names` (one per job it runs at once),
    /// heartbeating into the store: what the management API lists as workers and the status
    /// document as online workers. Run jobs with [`Heartbeats::attend`] of [`App::worker`].
    pub fn heartbeats(&self, names: Vec<String>) -> Arc<Heartbeats> {
        let versions = [
            ("core", http::pulp::CORE_VERSION),
            ("container", http::pulp::CONTAINER_VERSION),
        ]
        .into_iter()
        .map(|(c, v)| (c.to_owned(), v.to_owned()))
        .collect();
        Heartbeats::new(self.store.clone(), names, versions)
    }

    fn registry_auth(&self) -> Arc<RegistryAuth> {
        Arc::new(RegistryAuth {
            mode: self.settings.auth.clone(),
            rules: AccessRules::new(self.store.clone()).with_mirrors(self.settings.registry.mirrors.clone()),
            users: self.users.clone(),
            accounts: self.accounts.clone(),
            public_url: self.settings.public_url.clone(),
        })
    }

    fn registry_routes(&self) -> Router {
        let auth = self.registry_auth();
        let router = http::oci_router(self.registry.clone(), auth.clone()).merge(http::auth::token_router(auth));
        http::durable::durable_answers(router, self.store.table().clone())
    }

    /// The management API under `/pulp/api/v3/`, and the web page under `/ui/`.
    fn api_routes(&self) -> Router {
        let router = http::pulp::router(http::pulp::PulpState {
            manage: self.manage.clone(),
            users: self.users.clone(),
            accounts: self.accounts.clone(),
            public_url: self.settings.public_url.clone(),
        })
        .merge(http::ui::router(http::ui::UiState::new(
            self.manage.clone(),
            self.users.clone(),
            self.accounts.clone(),
            self.settings.field_key.clone(),
            self.settings.public_url.clone(),
        )));
        http::durable::durable_answers(router, self.store.table().clone())
    }

    /// `router` with each request logged and counted (see [`http::access`]).
    fn observed(&self, router: Router) -> Router {
        let observer = Arc::new(Observer {
            metrics: self.metrics.clone(),
            emf: self.settings.emf.clone(),
        });
        http::access::observed(router, observer)
    }

    /// The gauges metrics read: the content the store holds, the job queue's depth.
    pub fn gauges(&self) -> Gauges {
        Gauges::new(self.store.clone(), self.queue_depth.clone())
    }

    /// The registry: `/v2`, `/extensions/v2` and `/token`.
    pub fn registry_router(&self) -> Router {
        self.observed(self.registry_routes())
    }

    /// The management API under `/pulp/api/v3/`, and the web page under `/ui/`.
    pub fn api_router(&self) -> Router {
        self.observed(self.api_routes())
    }

    /// Every router this instance serves, and `/metrics`.
    pub fn router(&self) -> Router {
        let metrics = http::metrics::router(self.settings.metrics_token.clone(), self.metrics.clone(), self.gauges());
        self.observed(self.registry_routes().merge(self.api_routes()).merge(metrics))
    }

    /// Sets up the accounts the configuration names: the admin (with `admin_password`, or a
    /// password generated now when there is no admin yet, which is returned) and the
    /// read-only users. The error names the account that failed.
    pub async fn ensure_accounts(
        &self,
        admin_password: Option<&str>,
        readonly: &[crate::config::ReadonlyUser],
    ) -> Result<Option<String>, String> {
        let generated = self
            .users
            .ensure_admin(admin_password)
            .await
            .map_err(|e| format!("cannot set up the admin account: {e:?}"))?;
        self.store
            .number_users()
            .await
            .map_err(|e| format!("cannot number the users: {e:?}"))?;
        for user in readonly {
            self.users
                .set_user(&user.name, user.password.expose(), false)
                .await
                .map_err(|e| format!("cannot set up user {}: {e:?}", user.name))?;
            self.accounts
                .ensure_global_role(&user.name, READONLY_ROLE)
                .await
                .map_err(|e| format!("cannot set up user {}: {e:?}", user.name))?;
        }
        Ok(generated)
    }
}

/// An instance with an in-process job queue over the same table.
pub struct LocalApp {
    pub app: App,
    pub jobs: LocalJobQueue,
    #[cfg(feature = "local")]
    embedded: Option<(
        crate::adapters::redb_table::RedbTable,
        Arc<crate::adapters::fs::FsBlobStore>,
    )>,
}

impl LocalApp {
    fn with(table: Arc<dyn Table>, blobs: Arc<dyn BlobStore>, settings: Settings) -> Self {
        let jobs = LocalJobQueue::new(table.clone());
        let mut app = App::new(table, blobs, Arc::new(jobs.clone()), settings);
        app.queue_depth = Some(Arc::new(jobs.clone()));
        LocalApp {
            app,
            jobs,
            #[cfg(feature = "local")]
            embedded: None,
        }
    }

    /// Removes, now and then every `every`, what has expired from the embedded store:
    /// upload sessions and finished tasks past their retention, and the staged bytes of
    /// uploads idle for longer than an upload session lives. Stops when `stop` turns true.
    #[cfg(feature = "local")]
    pub fn start_housekeeping(
        &self,
        every: std::time::Duration,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) -> Option<tokio::task::JoinHandle<()>> {
        let (table, blobs) = self.embedded.clone()?;
        let idle = self.app.settings.retention.upload;
        Some(tokio::spawn(async move {
            loop {
                match table.sweep_expired().await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(items = n, "removed expired items"),
                    Err(e) => tracing::warn!(error = ?e, "sweeping expired items failed"),
                }
                match blobs.sweep_uploads(idle).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(uploads = n, "removed abandoned uploads"),
                    Err(e) => tracing::warn!(error = ?e, "sweeping abandoned uploads failed"),
                }
                tokio::select! {
                    _ = tokio::time::sleep(every) => {}
                    _ = stop.wait_for(|s| *s) => return,
                }
            }
        }))
    }

    /// An instance over `table` and `blobs` with the in-process job queue in the same table
    /// (tests run the management API this way on DynamoDB and S3 without SQS).
    pub fn over(table: Arc<dyn Table>, blobs: Arc<dyn BlobStore>, settings: Settings) -> Self {
        Self::with(table, blobs, settings)
    }

    /// Everything in memory (tests).
    pub fn in_memory() -> Self {
        Self::in_memory_with(Settings::default())
    }

    pub fn in_memory_with(settings: Settings) -> Self {
        Self::with(Arc::new(MemoryTable::new()), Arc::new(MemoryBlobStore::new()), settings)
    }

    /// The embedded store under `data_dir`: `blobs/`, `uploads/`, `tmp/` and `berth.redb`.
    #[cfg(feature = "local")]
    pub async fn embedded(data_dir: &std::path::Path, settings: Settings) -> Result<Self, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(StoreError::other)?;
        let table = crate::adapters::redb_table::RedbTable::open(&data_dir.join("berth.redb"))?;
        let blobs = Arc::new(crate::adapters::fs::FsBlobStore::open(data_dir).await?);
        let mut local = Self::with(Arc::new(table.clone()), blobs.clone(), settings);
        local.embedded = Some((table, blobs));
        Ok(local)
    }
}

/// Where the AWS backend keeps its data.
#[cfg(feature = "aws")]
#[derive(Debug, Clone)]
pub struct AwsSettings {
    pub bucket: String,
    pub table: String,
    pub queue: AwsQueue,
    /// Address the bucket in the URL path (emulators) instead of in the host name.
    pub s3_path_style: bool,
    /// Create the bucket, the table and the queues when they are missing.
    pub init: bool,
}

/// The job queue, by URL or by name.
#[cfg(feature = "aws")]
#[derive(Debug, Clone)]
pub enum AwsQueue {
    Url(String),
    Name(String),
}

/// How Berth and its clients reach S3, beyond the SDK configuration.
#[cfg(feature = "aws")]
#[derive(Debug, Clone, Default)]
pub struct S3Endpoints {
    /// The endpoint Berth's S3 client uses, for messages (`AWS_ENDPOINT_URL_S3` or
    /// `AWS_ENDPOINT_URL`; `None`: the SDK configuration's, else AWS's own).
    pub endpoint: Option<String>,
    /// The endpoint presigned URLs name, when clients reach S3 at another address.
    pub public: Option<String>,
}

/// Everything the AWS backend needs from the configuration.
#[cfg(feature = "aws")]
#[derive(Debug, Clone)]
pub struct AwsSetup {
    pub settings: AwsSettings,
    pub s3: S3Endpoints,
}

/// A start-up failure on the AWS backend: what was tried (the bucket at its endpoint, the
/// table, the queue) and why it failed.
#[cfg(feature = "aws")]
#[derive(Debug)]
pub struct ConnectError {
    pub tried: String,
    pub source: StoreError,
}

#[cfg(feature = "aws")]
impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.tried, self.source)?;
        let mut cause = std::error::Error::source(&self.source);
        while let Some(e) = cause {
            write!(f, ": {e}")?;
            cause = e.source();
        }
        Ok(())
    }
}

#[cfg(feature = "aws")]
impl std::error::Error for ConnectError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// Where a service's requests go, for messages: `endpoint`, else the SDK configuration's,
/// else AWS's own in the configured region.
#[cfg(feature = "aws")]
fn endpoint_of(sdk: &aws_config::SdkConfig, endpoint: Option<&str>, service: &str) -> String {
    match endpoint.or(sdk.endpoint_url()) {
        Some(e) => e.to_owned(),
        None => format!(
            "AWS's {service} endpoint in {}",
            sdk.region().map_or("no region (set AWS_REGION)", |r| r.as_ref())
        ),
    }
}

/// How the bucket is addressed, for messages: `<bucket> at <url>`, naming the host a
/// virtual-hosted request resolves.
#[cfg(feature = "aws")]
fn s3_target(sdk: &aws_config::SdkConfig, aws: &AwsSettings, s3: &S3Endpoints) -> String {
    let endpoint = endpoint_of(sdk, s3.endpoint.as_deref(), "S3");
    let bucket = &aws.bucket;
    match url::Url::parse(&endpoint) {
        Ok(mut url) if !aws.s3_path_style && url.host_str().is_some() => {
            let host = format!("{bucket}.{}", url.host_str().unwrap_or_default());
            let _ = url.set_host(Some(&host));
            format!(
                "the S3 bucket {bucket} at {url} (the bucket in the host name; BERTH_S3_PATH_STYLE=on puts it in \
                 the path of {endpoint})"
            )
        }
        Ok(url) if aws.s3_path_style => format!("the S3 bucket {bucket} at {}{bucket}", url.as_str()),
        _ => format!("the S3 bucket {bucket} at {endpoint}"),
    }
}

/// An instance on S3, DynamoDB and SQS, with a poller that runs the queue's jobs in process.
#[cfg(feature = "aws")]
pub struct AwsApp {
    pub app: App,
    pub poller: crate::adapters::sqs_queue::SqsPoller,
    pub queue_url: String,
    /// The job queue (for follow-ups of jobs that reach a run's deadline).
    pub queue: Arc<dyn JobQueue>,
}

#[cfg(feature = "aws")]
impl AwsApp {
    /// Connects to the bucket, table and queue of `aws` (creating them first when `aws.init`).
    pub async fn connect(
        sdk: &aws_config::SdkConfig,
        aws: &AwsSettings,
        settings: Settings,
    ) -> Result<Self, ConnectError> {
        Self::connect_with(sdk, aws, &S3Endpoints::default(), settings).await
    }

    /// Connects as [`AwsApp::connect`] does, presigning blob URLs for `s3.public` when set.
    /// The error names what failed: the bucket at the address its requests went to, the
    /// table, or the queue.
    pub async fn connect_with(
        sdk: &aws_config::SdkConfig,
        aws: &AwsSettings,
        s3: &S3Endpoints,
        settings: Settings,
    ) -> Result<Self, ConnectError> {
        use crate::adapters::dynamo_table::DynamoTable;
        use crate::adapters::s3_blobs::S3BlobStore;
        use crate::adapters::sqs_queue::{create_queues_if_missing, queue_url, QueueSpec, SqsJobQueue, SqsPoller};

        let failed = |tried: String| move |source: StoreError| ConnectError { tried, source };
        let table = DynamoTable::new(sdk, &aws.table);
        let mut blobs = S3BlobStore::new(sdk, &aws.bucket, aws.s3_path_style);
        if let Some(public) = &s3.public {
            blobs = blobs.with_public_endpoint(public);
        }
        let sqs = aws_sdk_sqs::Client::new(sdk);
        let sqs_at = endpoint_of(sdk, None, "SQS");
        if aws.init {
            table.create_if_missing().await.map_err(failed(format!(
                "cannot create the DynamoDB table {} at {}",
                aws.table,
                endpoint_of(sdk, None, "DynamoDB")
            )))?;
            blobs
                .create_bucket_if_missing()
                .await
                .map_err(failed(format!("cannot create {}", s3_target(sdk, aws, s3))))?;
        }
        let create_queue = |name: String| {
            let sqs = sqs.clone();
            let tried = format!("cannot create the SQS queue {name} at {sqs_at}");
            async move {
                create_queues_if_missing(&sqs, &QueueSpec::new(&name))
                    .await
                    .map_err(failed(tried))
            }
        };
        let url = match &aws.queue {
            AwsQueue::Url(url) => {
                if aws.init {
                    create_queue(url.rsplit('/').next().unwrap_or(url).to_owned()).await?;
                }
                url.clone()
            }
            AwsQueue::Name(name) if aws.init => create_queue(name.clone()).await?.url,
            AwsQueue::Name(name) => match queue_url(&sqs, name).await {
                Err(StoreError::NotFound) => {
                    return Err(ConnectError {
                        tried: format!("cannot find the SQS queue {name} at {sqs_at}"),
                        source: StoreError::other_msg("the queue does not exist (BERTH_AWS_INIT=1 creates it)"),
                    })
                }
                r => r.map_err(failed(format!("cannot find the SQS queue {name} at {sqs_at}")))?,
            },
        };
        let queue = SqsJobQueue::from_client(sqs.clone(), &url);
        let jobs: Arc<dyn JobQueue> = Arc::new(queue.clone());
        let mut app = App::new(Arc::new(table), Arc::new(blobs), jobs.clone(), settings);
        app.queue_depth = Some(Arc::new(queue));
        Ok(AwsApp {
            app,
            poller: SqsPoller::new(sqs, &url),
            queue: jobs,
            queue_url: url,
        })
    }
}

#[cfg(all(test, feature = "aws"))]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn sdk(endpoint: Option<&str>) -> aws_config::SdkConfig {
        let b = aws_config::SdkConfig::builder().region(aws_config::Region::new("eu-west-1"));
        match endpoint {
            Some(e) => b.endpoint_url(e).build(),
            None => b.build(),
        }
    }

    fn aws(path_style: bool) -> AwsSettings {
        AwsSettings {
            bucket: "blobs".into(),
            table: "meta".into(),
            queue: AwsQueue::Name("jobs".into()),
            s3_path_style: path_style,
            init: true,
        }
    }

    #[test]
    fn start_up_errors_name_the_address_the_bucket_was_reached_at() {
        // the S3 endpoint (AWS_ENDPOINT_URL_S3) is named over the SDK's general one
        let s3 = S3Endpoints {
            endpoint: Some("http://localhost:4566".into()),
            public: None,
        };
        let general = sdk(Some("http://elsewhere:1"));
        let target = s3_target(&general, &aws(false), &s3);
        assert!(target.contains("http://blobs.localhost:4566/"), "{target}");
        assert!(target.contains("BERTH_S3_PATH_STYLE=on"), "{target}");
        let target = s3_target(&general, &aws(true), &s3);
        assert!(target.contains("http://localhost:4566/blobs"), "{target}");
        // without one, the SDK's, else AWS's own in the region
        let target = s3_target(&general, &aws(true), &S3Endpoints::default());
        assert!(target.contains("http://elsewhere:1/blobs"), "{target}");
        let target = s3_target(&sdk(None), &aws(false), &S3Endpoints::default());
        assert!(target.contains("blobs") && target.contains("eu-west-1"), "{target}");
    }
}
