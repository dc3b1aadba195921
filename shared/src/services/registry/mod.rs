//! The registry service: what `/v2` does, independent of HTTP.
//!
//! Names are distribution base paths. Pulls resolve base path → distribution → repository →
//! served version (latest or pinned). Pushes go to push repositories: pushing to a base path
//! with no distribution creates the repository and its distribution; every manifest PUT, tag
//! move or delete that changes something commits a new repository version.
//!
//! - [`pull`]: manifests, blobs (streamed, ranged or redirected) and atomic signatures of the
//!   served version.
//! - [`on_demand`]: blobs a sync left upstream, fetched and verified on the way to the client.
//! - [`lists`]: tag lists, the catalog and referrers.
//! - [`uploads`]: push targets (a push repository and its distribution made on first push),
//!   monolithic, chunked and mounted blob uploads.
//! - [`versions`]: the pushes that commit a repository version: manifest PUT (and its tag),
//!   tag and manifest DELETE, blob DELETE.
//!
//! Layering: `domain ← ports ← {store, adapters} ← services ← http ← app ← functions/*`; this is
//! `services`: it knows `domain`, `ports` and `store`, never HTTP.

mod flights;
mod lists;
mod on_demand;
mod pull;
mod pull_through;
mod uploads;
mod versions;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use uuid::Uuid;

use crate::domain::{Digest, MirrorRoutes, RepoName, Tag};
use crate::ports::{BlobReader, BlobStore, JobQueue, StoreError, UpstreamFactory};
use crate::store::{Distribution, Repository, Store, WriteError};

/// Errors with a meaning for clients; `http` maps each to its OCI code and status.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("blob unknown to registry")]
    BlobUnknown(Digest),
    #[error("blob upload invalid: {0}")]
    BlobUploadInvalid(String),
    #[error("blob upload unknown to registry")]
    BlobUploadUnknown,
    #[error("provided digest did not match uploaded content: {0}")]
    DigestInvalid(String),
    #[error("manifest references a manifest or blob unknown to the repository: {0}")]
    ManifestBlobUnknown(Digest),
    #[error("manifest invalid: {0}")]
    ManifestInvalid(String),
    #[error("manifest unknown: {0}")]
    ManifestUnknown(String),
    #[error("invalid repository name: {0}")]
    NameInvalid(String),
    #[error("repository name not known to registry: {0}")]
    NameUnknown(String),
    #[error("requested access to the resource is denied: {0}")]
    Denied(String),
    #[error("the operation is unsupported: {0}")]
    Unsupported(String),
    #[error("requested range not satisfiable")]
    RangeNotSatisfiable { size: u64 },
    #[error("upload chunk out of order: the upload holds {size} bytes")]
    UploadOutOfOrder { size: u64, upload: Uuid },
    #[error("repository is busy, try again")]
    Busy,
    /// A pull through a cache needs the upstream, which failed; nothing cached could answer.
    #[error("the upstream registry failed: {0}")]
    UpstreamFailed(String),
    /// A blob is being copied from upstream; the client should come back soon.
    #[error("the blob is being fetched from upstream, retry shortly: {0}")]
    NotYet(String),
    /// A pull through a cache needs the upstream, which answers 429.
    #[error("the upstream registry is rate limiting pulls: {0}")]
    UpstreamThrottled(String),
    /// The server's storage is full; nothing was stored. Answered 507 (never a bare 500), with
    /// the source kept for the log.
    #[error("the server is out of storage space")]
    NoSpace(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl From<StoreError> for RegistryError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Body(e) => RegistryError::BlobUploadInvalid(format!("reading the request body failed: {e}")),
            StoreError::DigestMismatch { expected, actual } => {
                RegistryError::DigestInvalid(format!("expected {expected}, content hashes to {actual}"))
            }
            StoreError::Throttled(_) => RegistryError::Busy,
            e @ StoreError::NoSpace(_) => RegistryError::NoSpace(Box::new(e)),
            other => RegistryError::Internal(Box::new(other)),
        }
    }
}

impl From<WriteError> for RegistryError {
    fn from(e: WriteError) -> Self {
        match e {
            WriteError::Busy | WriteError::LeaseLost => RegistryError::Busy,
            WriteError::NotFound => RegistryError::NameUnknown("repository vanished".into()),
            WriteError::Store(e) => e.into(),
        }
    }
}

type Result<T, E = RegistryError> = std::result::Result<T, E>;

#[derive(Debug, Clone)]
pub struct RegistryConfig {
    /// How long a push holds a repository's lease at most.
    pub lease_ttl: Duration,
    /// How long a push waits for another write of the same repository.
    pub lease_wait: Duration,
    /// Lifetime of redirect (presigned) blob URLs.
    pub redirect_ttl: Duration,
    /// How long a tag pulled through a cache is served before it is checked upstream again.
    pub pull_through_ttl: Duration,
    /// Which pull-through distribution serves names no distribution serves.
    pub mirrors: MirrorRoutes,
    /// Whether a blob fetched on demand passes through this process on its way to the
    /// client. `false` on AWS Lambda: a miss answers with the upstream's own redirect (or
    /// waits up to `copy_wait` for the sync worker's copy into S3) and queues the copy.
    pub relay_blobs: bool,
    /// How long a miss that cannot be relayed waits for the copy before asking the client
    /// to come back (`503` with `Retry-After`).
    pub copy_wait: Duration,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        RegistryConfig {
            lease_ttl: crate::ports::LeaseTimings::PUSH.ttl,
            lease_wait: crate::ports::LeaseTimings::PUSH.wait,
            redirect_ttl: Duration::from_secs(600),
            pull_through_ttl: Duration::from_secs(300),
            mirrors: MirrorRoutes::default(),
            relay_blobs: true,
            copy_wait: Duration::from_secs(20),
        }
    }
}

/// A repository as a pull sees it.
#[derive(Clone)]
struct Target {
    repo: Repository,
    version: u64,
}

pub struct ManifestBody {
    pub digest: Digest,
    pub media_type: String,
    pub size: u64,
    pub bytes: Bytes,
}

pub enum BlobBody {
    /// Fetch it from there (S3 presigned URL).
    Redirect(String),
    Stream(BlobReader),
}

pub enum UploadStart {
    /// The blob is in the repository now (monolithic upload or mount).
    Created(Digest),
    /// An upload session to PATCH/PUT.
    Session(Uuid),
}

pub struct PushedManifest {
    pub digest: Digest,
    pub subject: Option<Digest>,
}

pub struct TagsPage {
    pub name: RepoName,
    pub tags: Vec<Tag>,
    pub more: bool,
}

pub struct CatalogPage {
    pub repositories: Vec<RepoName>,
    pub more: bool,
}

pub struct Referrer {
    pub digest: Digest,
    pub media_type: String,
    pub size: u64,
    pub artifact_type: Option<String>,
    pub annotations: std::collections::BTreeMap<String, String>,
}

pub struct Registry {
    store: Store,
    blobs: Arc<dyn BlobStore>,
    cfg: RegistryConfig,
    /// Fetches blobs that on-demand and streamed syncs left upstream.
    upstreams: Option<Arc<dyn UpstreamFactory>>,
    /// Gives pushers what they make (none: nobody owns anything, as with open access).
    accounts: Option<Arc<crate::services::Accounts>>,
    /// One upstream fetch per manifest or blob at a time.
    flights: Arc<flights::Flights>,
    /// Where copies of blobs from upstream are queued when they are not relayed.
    jobs: Option<Arc<dyn JobQueue>>,
}

impl Registry {
    pub fn new(store: Store, blobs: Arc<dyn BlobStore>, cfg: RegistryConfig) -> Self {
        Registry {
            store,
            blobs,
            cfg,
            upstreams: None,
            accounts: None,
            flights: Arc::default(),
            jobs: None,
        }
    }

    /// Makes a pusher the owner of the namespace and distribution its push creates.
    pub fn with_accounts(mut self, accounts: Arc<crate::services::Accounts>) -> Self {
        self.accounts = Some(accounts);
        self
    }

    /// Lets pulls fetch blobs that syncs left upstream (policies `on_demand`, `streamed`).
    pub fn with_upstreams(mut self, upstreams: Option<Arc<dyn UpstreamFactory>>) -> Self {
        self.upstreams = upstreams;
        self
    }

    /// Queues copies of blobs from upstream there (see [`RegistryConfig::relay_blobs`]).
    pub fn with_jobs(mut self, jobs: Arc<dyn JobQueue>) -> Self {
        self.jobs = Some(jobs);
        self
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    async fn target(&self, name: &RepoName) -> Result<Target> {
        self.target_and_distribution(name)
            .await?
            .map(|(t, _)| t)
            .ok_or_else(|| RegistryError::NameUnknown(name.to_string()))
    }

    /// The repository and version `name` serves, with its distribution; `None` when no
    /// distribution serves a repository there.
    async fn target_and_distribution(&self, name: &RepoName) -> Result<Option<(Target, Distribution)>> {
        let Some(dist) = self.store.distribution_by_base_path(name).await? else {
            return Ok(None);
        };
        let Some(repo_id) = dist.repository else {
            return Ok(None);
        };
        let Some(repo) = self.store.repository(repo_id).await? else {
            return Ok(None);
        };
        let version = dist.version.unwrap_or(repo.latest_version);
        Ok(Some((Target { repo, version }, dist)))
    }
}
