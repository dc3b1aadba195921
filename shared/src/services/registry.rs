//! The registry service: what `/v2` does, independent of HTTP.
//!
//! Names are distribution base paths. Pulls resolve base path → distribution → repository →
//! served version (latest or pinned). Pushes go to push repositories: pushing to a base path
//! with no distribution creates the repository and its distribution; every manifest PUT, tag
//! move or delete that changes something commits a new repository version.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::Utc;
use uuid::Uuid;

use super::content::save_manifest;
use crate::domain::{
    media::Accept, parse_manifest, ContentKey, ContentType, Digest, DomainError, ManifestKind, Reference, RepoName, Tag,
};
use crate::ports::{BlobReader, BlobStore, ByteRange, ByteStream, StoreError, UpstreamError, UpstreamFactory};
use crate::store::{
    BlobRecord, Distribution, LazyBlob, Policy, Repository, RepositoryKind, SignatureRecord, Store, UploadSession,
    WriteError,
};

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
}

impl Default for RegistryConfig {
    fn default() -> Self {
        RegistryConfig {
            lease_ttl: crate::ports::LeaseTimings::PUSH.ttl,
            lease_wait: crate::ports::LeaseTimings::PUSH.wait,
            redirect_ttl: Duration::from_secs(600),
        }
    }
}

/// A repository as a pull sees it.
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
}

impl Registry {
    pub fn new(store: Store, blobs: Arc<dyn BlobStore>, cfg: RegistryConfig) -> Self {
        Registry {
            store,
            blobs,
            cfg,
            upstreams: None,
        }
    }

    /// Lets pulls fetch blobs that syncs left upstream (policies `on_demand`, `streamed`).
    pub fn with_upstreams(mut self, upstreams: Option<Arc<dyn UpstreamFactory>>) -> Self {
        self.upstreams = upstreams;
        self
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    async fn target(&self, name: &RepoName) -> Result<Target> {
        let unknown = || RegistryError::NameUnknown(name.to_string());
        let dist = self.store.distribution_by_base_path(name).await?.ok_or_else(unknown)?;
        let repo_id = dist.repository.ok_or_else(unknown)?;
        let repo = self.store.repository(repo_id).await?.ok_or_else(unknown)?;
        let version = dist.version.unwrap_or(repo.latest_version);
        Ok(Target { repo, version })
    }

    // ---- pull ------------------------------------------------------------------------------

    /// The manifest `reference` names. A tag pull whose `accept` excludes the stored media
    /// type is `ManifestUnknown`; a digest pull ignores `accept`.
    pub async fn manifest(&self, name: &RepoName, reference: &Reference, accept: &Accept) -> Result<ManifestBody> {
        let t = self.target(name).await?;
        let digest = match reference {
            Reference::Tag(tag) => self
                .store
                .tag(t.repo.id, t.version, tag)
                .await?
                .ok_or_else(|| RegistryError::ManifestUnknown(format!("tag {tag} not found")))?,
            Reference::Digest(d) => {
                if !self
                    .store
                    .contains(t.repo.id, t.version, &ContentKey::Manifest(d.clone()))
                    .await?
                {
                    return Err(RegistryError::ManifestUnknown(format!("manifest {d} not found")));
                }
                d.clone()
            }
        };
        let rec = self
            .store
            .manifest(&digest)
            .await?
            .ok_or_else(|| RegistryError::ManifestUnknown(format!("manifest {digest} not found")))?;
        if matches!(reference, Reference::Tag(_)) && !accept.allows(&rec.parsed.media_type) {
            return Err(RegistryError::ManifestUnknown(format!(
                "the manifest is {}, which the Accept header does not allow",
                rec.parsed.media_type
            )));
        }
        let bytes = match rec.inline {
            Some(s) => Bytes::from(s),
            None => {
                let r = self.blobs.open(&digest, None).await?;
                Bytes::from(crate::adapters::collect(r.body).await?)
            }
        };
        Ok(ManifestBody {
            digest,
            media_type: rec.parsed.media_type,
            size: rec.size,
            bytes,
        })
    }

    /// Whether a pull of `name` may read `digest`: it is in the served version, or (for a
    /// push repository serving its latest version) uploaded and awaiting a manifest.
    async fn blob_visible(&self, t: &Target, digest: &Digest) -> Result<bool> {
        if self
            .store
            .contains(t.repo.id, t.version, &ContentKey::Blob(digest.clone()))
            .await?
        {
            return Ok(true);
        }
        Ok(t.repo.kind == RepositoryKind::Push
            && t.version == t.repo.latest_version
            && self.store.is_pending_blob(t.repo.id, digest).await?)
    }

    /// Where a blob of the served version that the blob store lacks is fetched from, when
    /// this registry can fetch from upstreams.
    async fn lazy(&self, t: &Target, digest: &Digest) -> Result<Option<LazyBlob>> {
        if self.upstreams.is_none() {
            return Ok(None);
        }
        Ok(self.store.lazy_blob(t.repo.id, digest).await?)
    }

    /// The blob's size (for HEAD).
    pub async fn blob_size(&self, name: &RepoName, digest: &Digest) -> Result<u64> {
        let t = self.target(name).await?;
        if !self.blob_visible(&t, digest).await? {
            return Err(RegistryError::BlobUnknown(digest.clone()));
        }
        if let Some(size) = self.blobs.stat(digest).await? {
            return Ok(size);
        }
        match self.lazy(&t, digest).await? {
            Some(l) => Ok(l.size),
            None => Err(RegistryError::BlobUnknown(digest.clone())),
        }
    }

    /// The blob's bytes, or the range `range(size)` picks. `range` gets the blob's size and
    /// answers the inclusive range to serve (`None` for all) or `RangeNotSatisfiable`.
    /// A blob a sync left upstream is fetched from there (whole, whatever the range) and,
    /// for `on_demand` remotes, stored on the way.
    pub async fn blob(
        &self,
        name: &RepoName,
        digest: &Digest,
        range: impl FnOnce(u64) -> Result<Option<ByteRange>>,
    ) -> Result<BlobBody> {
        let t = self.target(name).await?;
        if !self.blob_visible(&t, digest).await? {
            return Err(RegistryError::BlobUnknown(digest.clone()));
        }
        let size = match self.blobs.stat(digest).await? {
            Some(size) => size,
            None => {
                return match self.lazy(&t, digest).await? {
                    Some(l) => self.fetch_lazy(digest, l).await,
                    None => Err(RegistryError::BlobUnknown(digest.clone())),
                }
            }
        };
        if let Some(url) = self.blobs.redirect_url(digest, self.cfg.redirect_ttl).await? {
            return Ok(BlobBody::Redirect(url));
        }
        let r = range(size)?;
        match self.blobs.open(digest, r).await {
            Ok(reader) => Ok(BlobBody::Stream(reader)),
            Err(StoreError::NotFound) => Err(RegistryError::BlobUnknown(digest.clone())),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn tags(&self, name: &RepoName, n: Option<usize>, last: Option<&str>) -> Result<TagsPage> {
        let t = self.target(name).await?;
        let limit = n.unwrap_or(usize::MAX - 1);
        let mut tags = self
            .store
            .tags(t.repo.id, t.version, last, limit.saturating_add(1))
            .await?;
        let more = tags.len() > limit;
        tags.truncate(limit);
        Ok(TagsPage {
            name: name.clone(),
            tags,
            more,
        })
    }

    /// Base paths in order after `last`, at most `n`, of the distributions `visible` admits
    /// (it gets the distribution's `private` flag).
    pub async fn catalog(
        &self,
        n: Option<usize>,
        last: Option<&str>,
        visible: impl Fn(bool) -> bool,
    ) -> Result<CatalogPage> {
        let limit = n.unwrap_or(10_000);
        let mut out = Vec::new();
        let mut cursor = last.map(str::to_owned);
        loop {
            let page = self.store.distributions(cursor.as_deref(), 500).await?;
            let full = page.len() == 500;
            cursor = page.last().map(|d| d.base_path.to_string());
            for d in page {
                if visible(d.private) {
                    if out.len() == limit {
                        return Ok(CatalogPage {
                            repositories: out,
                            more: true,
                        });
                    }
                    out.push(d.base_path);
                }
            }
            if !full {
                return Ok(CatalogPage {
                    repositories: out,
                    more: false,
                });
            }
        }
    }

    /// Manifests in the served version whose subject is `subject`, optionally of one
    /// artifact type.
    pub async fn referrers(
        &self,
        name: &RepoName,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Vec<Referrer>> {
        let t = self.target(name).await?;
        let mut out = Vec::new();
        for r in self.store.referrers(subject).await? {
            if artifact_type.is_some_and(|a| r.artifact_type.as_deref() != Some(a)) {
                continue;
            }
            if self
                .store
                .contains(t.repo.id, t.version, &ContentKey::Manifest(r.digest.clone()))
                .await?
            {
                out.push(Referrer {
                    digest: r.digest,
                    media_type: r.media_type,
                    size: r.size,
                    artifact_type: r.artifact_type,
                    annotations: r.annotations,
                });
            }
        }
        Ok(out)
    }

    /// Streams a blob from the upstream a sync left it at, verifying its digest on the way:
    /// the last chunk reaches the client only after the bytes verified (and, for
    /// `on_demand`, were stored), so a bad or broken transfer never looks complete.
    async fn fetch_lazy(&self, digest: &Digest, lazy: LazyBlob) -> Result<BlobBody> {
        let unknown = || RegistryError::BlobUnknown(digest.clone());
        let Some(factory) = &self.upstreams else {
            return Err(unknown());
        };
        let Some(remote) = self.store.remote(lazy.remote).await? else {
            tracing::warn!(%digest, remote = %lazy.remote, "the remote of an on-demand blob is gone");
            return Err(unknown());
        };
        let up = factory
            .client(&remote.upstream_config())
            .map_err(|e| RegistryError::Internal(Box::new(e)))?;
        let blob = match up.get_blob(digest).await {
            Ok(b) => b,
            Err(UpstreamError::NotFound { .. }) => return Err(unknown()),
            Err(e) => {
                tracing::warn!(%digest, remote = %remote.name, error = %e, "fetching an on-demand blob failed");
                return Err(RegistryError::Internal(Box::new(e)));
            }
        };
        let keep = remote.policy != Policy::Streamed;
        let body = tee_verified(
            digest.clone(),
            blob.body,
            keep.then(|| (self.store.clone(), self.blobs.clone())),
        );
        Ok(BlobBody::Stream(BlobReader {
            size: lazy.size,
            range: None,
            body,
        }))
    }

    /// The atomic signatures of a manifest in the served version.
    pub async fn signatures(&self, name: &RepoName, digest: &Digest) -> Result<Vec<SignatureRecord>> {
        let t = self.target(name).await?;
        if !self
            .store
            .contains(t.repo.id, t.version, &ContentKey::Manifest(digest.clone()))
            .await?
        {
            return Err(RegistryError::ManifestUnknown(format!("manifest {digest} not found")));
        }
        let mut out = Vec::new();
        for s in self.store.signatures_of(digest).await? {
            if self
                .store
                .contains(t.repo.id, t.version, &ContentKey::Signature(s.digest.clone()))
                .await?
            {
                out.push(s);
            }
        }
        Ok(out)
    }

    // ---- push ------------------------------------------------------------------------------

    /// The push repository behind `name`, created with its distribution when the base path
    /// is new. Mirrors, pinned distributions and distributions without a repository refuse.
    async fn push_target(&self, name: &RepoName) -> Result<Repository> {
        // racing first pushes: a loser finds the winner's repository, then its distribution
        for _ in 0..6 {
            if let Some(dist) = self.store.distribution_by_base_path(name).await? {
                return self.pushable(&dist).await;
            }
            let repo = match self.store.repository_by_name(name.as_str()).await? {
                Some(r) => r,
                None => {
                    let r = Repository::new(name.as_str(), RepositoryKind::Push);
                    match self.store.create_repository(&r).await {
                        Ok(()) => r,
                        Err(StoreError::Conflict(_)) => continue,
                        Err(e) => return Err(e.into()),
                    }
                }
            };
            if repo.kind != RepositoryKind::Push {
                return Err(RegistryError::Denied(format!(
                    "repository {} is a mirror and cannot be pushed to",
                    repo.name
                )));
            }
            let dist = Distribution {
                id: Uuid::new_v4(),
                name: name.to_string(),
                base_path: name.clone(),
                repository: Some(repo.id),
                version: None,
                private: false,
                description: None,
                pulp_labels: Default::default(),
                created: Utc::now(),
                updated: Utc::now(),
            };
            match self.store.create_distribution(&dist).await {
                Ok(()) => {
                    tracing::info!(base_path = %name, repository = %repo.id, "created push repository and distribution");
                    return Ok(repo);
                }
                Err(StoreError::Conflict(_)) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(RegistryError::Busy)
    }

    async fn pushable(&self, dist: &Distribution) -> Result<Repository> {
        if dist.version.is_some() {
            return Err(RegistryError::Denied(format!(
                "distribution {} serves a pinned repository version",
                dist.name
            )));
        }
        let repo_id = dist
            .repository
            .ok_or_else(|| RegistryError::Denied(format!("distribution {} serves no repository", dist.name)))?;
        let repo = self
            .store
            .repository(repo_id)
            .await?
            .ok_or_else(|| RegistryError::NameUnknown(dist.base_path.to_string()))?;
        if repo.kind != RepositoryKind::Push {
            return Err(RegistryError::Denied(format!(
                "repository {} is a mirror and cannot be pushed to",
                repo.name
            )));
        }
        Ok(repo)
    }

    async fn record_blob(&self, repo: &Repository, digest: &Digest, size: u64) -> Result<()> {
        self.store
            .put_blob(&BlobRecord {
                digest: digest.clone(),
                size,
                created: Utc::now(),
            })
            .await?;
        self.store.add_pending_blob(repo.id, digest).await?;
        Ok(())
    }

    /// Starts an upload: a monolithic POST (`digest` + body), a cross-repository mount
    /// (`mount` + `from`, falling back to a session when it can't mount), or a session.
    pub async fn start_upload(
        &self,
        name: &RepoName,
        digest: Option<Digest>,
        mount: Option<(Digest, Option<RepoName>)>,
        body: ByteStream,
    ) -> Result<UploadStart> {
        let repo = self.push_target(name).await?;
        if let Some((d, Some(from))) = mount {
            if let Ok(t) = self.target(&from).await {
                if self.blob_visible(&t, &d).await? && self.blobs.stat(&d).await?.is_some() {
                    self.store.add_pending_blob(repo.id, &d).await?;
                    return Ok(UploadStart::Created(d));
                }
            }
        }
        if let Some(d) = digest {
            let size = self.blobs.put(&d, body).await?;
            self.record_blob(&repo, &d, size).await?;
            return Ok(UploadStart::Created(d));
        }
        let id = Uuid::new_v4();
        self.blobs.upload_create(&id.to_string()).await?;
        self.store
            .create_upload(&UploadSession {
                id,
                repository: repo.id,
                created: Utc::now(),
            })
            .await?;
        Ok(UploadStart::Session(id))
    }

    async fn session(&self, name: &RepoName, id: Uuid) -> Result<(Repository, UploadSession)> {
        let s = self.store.upload(id).await?.ok_or(RegistryError::BlobUploadUnknown)?;
        let repo = self.push_target(name).await?;
        if s.repository != repo.id {
            return Err(RegistryError::BlobUploadUnknown);
        }
        Ok((repo, s))
    }

    /// The upload's size so far.
    pub async fn upload_status(&self, name: &RepoName, id: Uuid) -> Result<u64> {
        self.session(name, id).await?;
        match self.blobs.upload_size(&id.to_string()).await {
            Ok(n) => Ok(n),
            Err(StoreError::NotFound) => Err(RegistryError::BlobUploadUnknown),
            Err(e) => Err(e.into()),
        }
    }

    /// Appends a chunk. `start` is the `Content-Range` start when the client sent one; it
    /// must equal the current size (`UploadOutOfOrder`, answered 416, otherwise).
    pub async fn upload_chunk(&self, name: &RepoName, id: Uuid, start: Option<u64>, body: ByteStream) -> Result<u64> {
        self.session(name, id).await?;
        let key = id.to_string();
        let size = match self.blobs.upload_size(&key).await {
            Ok(n) => n,
            Err(StoreError::NotFound) => return Err(RegistryError::BlobUploadUnknown),
            Err(e) => return Err(e.into()),
        };
        let offset = start.unwrap_or(size);
        match self.blobs.upload_append(&key, offset, body).await {
            Ok(n) => Ok(n),
            Err(StoreError::OutOfOrder { size }) => Err(RegistryError::UploadOutOfOrder { size, upload: id }),
            Err(StoreError::NotFound) => Err(RegistryError::BlobUploadUnknown),
            Err(e) => Err(e.into()),
        }
    }

    /// Appends the last chunk (possibly empty), verifies `digest` and publishes the blob.
    pub async fn finish_upload(&self, name: &RepoName, id: Uuid, digest: &Digest, body: ByteStream) -> Result<()> {
        let (repo, _) = self.session(name, id).await?;
        let key = id.to_string();
        let size = self.blobs.upload_size(&key).await.map_err(|e| match e {
            StoreError::NotFound => RegistryError::BlobUploadUnknown,
            e => e.into(),
        })?;
        if let Err(e) = self.blobs.upload_append(&key, size, body).await {
            return Err(match e {
                StoreError::OutOfOrder { size } => RegistryError::UploadOutOfOrder { size, upload: id },
                e => e.into(),
            });
        }
        match self.blobs.upload_commit(&key, digest).await {
            Ok(size) => {
                self.record_blob(&repo, digest, size).await?;
                self.store.delete_upload(id).await?;
                Ok(())
            }
            Err(e) => {
                // a digest mismatch discards the upload; nothing was published
                let _ = self.blobs.upload_abort(&key).await;
                let _ = self.store.delete_upload(id).await;
                Err(e.into())
            }
        }
    }

    pub async fn cancel_upload(&self, name: &RepoName, id: Uuid) -> Result<()> {
        self.session(name, id).await?;
        self.blobs.upload_abort(&id.to_string()).await?;
        self.store.delete_upload(id).await?;
        Ok(())
    }

    /// Stores a manifest and commits a version holding it (and its tag, when pushed by tag).
    pub async fn put_manifest(
        &self,
        name: &RepoName,
        reference: &Reference,
        content_type: Option<&str>,
        bytes: Bytes,
    ) -> Result<PushedManifest> {
        let repo = self.push_target(name).await?;
        let parsed = parse_manifest(&bytes, content_type).map_err(|e| match e {
            DomainError::Schema1 => RegistryError::ManifestInvalid(
                "schema 1 manifests are not supported; push a schema 2 or OCI manifest".into(),
            ),
            other => RegistryError::ManifestInvalid(other.to_string()),
        })?;
        let digest = match reference {
            Reference::Digest(d) => {
                let actual = d.recompute(&bytes);
                if &actual != d {
                    return Err(RegistryError::DigestInvalid(format!(
                        "the manifest hashes to {actual}, not {d}"
                    )));
                }
                actual
            }
            Reference::Tag(_) => Digest::sha256_of(&bytes),
        };
        let owner = Uuid::new_v4().to_string();
        let mut w = self
            .store
            .begin_write(repo.id, &owner, self.cfg.lease_ttl, self.cfg.lease_wait)
            .await?;
        // every referenced blob and child manifest must already be in the repository
        for d in parsed.blob_digests() {
            let known =
                w.contains(&ContentKey::Blob(d.clone())).await? || self.store.is_pending_blob(repo.id, d).await?;
            if !known || self.blobs.stat(d).await?.is_none() {
                return Err(RegistryError::ManifestBlobUnknown(d.clone()));
            }
        }
        for m in &parsed.manifests {
            if !w.contains(&ContentKey::Manifest(m.digest.clone())).await? {
                return Err(RegistryError::ManifestBlobUnknown(m.digest.clone()));
            }
        }
        // bytes first, verified; then the record; then membership
        let subject = parsed.subject.as_ref().map(|s| s.digest.clone());
        let blob_digests: Vec<Digest> = parsed.blob_digests().cloned().collect();
        save_manifest(&self.store, &self.blobs, &digest, &bytes, parsed).await?;
        w.add(ContentKey::Manifest(digest.clone())).await?;
        for d in &blob_digests {
            w.add(ContentKey::Blob(d.clone())).await?;
        }
        if let Reference::Tag(tag) = reference {
            if let Some(old) = self.store.tag(repo.id, w.base(), tag).await? {
                if old != digest {
                    w.remove(ContentKey::Tag {
                        name: tag.clone(),
                        manifest: old,
                    })
                    .await?;
                }
            }
            w.add(ContentKey::Tag {
                name: tag.clone(),
                manifest: digest.clone(),
            })
            .await?;
        }
        if let Some(v) = w.commit(None).await? {
            tracing::info!(repository = %repo.name, version = v.number, %digest, "pushed manifest");
        }
        // the blobs are content of the repository now; they no longer wait for a manifest
        for d in &blob_digests {
            self.store.remove_pending_blob(repo.id, d).await?;
        }
        Ok(PushedManifest { digest, subject })
    }

    /// Deletes a tag (by tag) or a manifest with its tags and the blobs only it used (by
    /// digest), as a new version.
    pub async fn delete_manifest(&self, name: &RepoName, reference: &Reference) -> Result<()> {
        let repo = self.pushable_existing(name).await?;
        let owner = Uuid::new_v4().to_string();
        let mut w = self
            .store
            .begin_write(repo.id, &owner, self.cfg.lease_ttl, self.cfg.lease_wait)
            .await?;
        let base = w.base();
        match reference {
            Reference::Tag(tag) => {
                let digest = self
                    .store
                    .tag(repo.id, base, tag)
                    .await?
                    .ok_or_else(|| RegistryError::ManifestUnknown(format!("tag {tag} not found")))?;
                w.remove(ContentKey::Tag {
                    name: tag.clone(),
                    manifest: digest,
                })
                .await?;
            }
            Reference::Digest(d) => {
                let keys = self.store.image_keys(repo.id, base, d).await?;
                if keys.is_empty() {
                    return Err(RegistryError::ManifestUnknown(format!("manifest {d} not found")));
                }
                for k in keys {
                    w.remove(k).await?;
                }
            }
        }
        w.commit(None).await?;
        Ok(())
    }

    /// Deletes a blob from the repository: an upload not yet used, or a blob of the latest
    /// version that no manifest there references.
    pub async fn delete_blob(&self, name: &RepoName, digest: &Digest) -> Result<()> {
        let repo = self.pushable_existing(name).await?;
        let was_pending = self.store.is_pending_blob(repo.id, digest).await?;
        if was_pending {
            self.store.remove_pending_blob(repo.id, digest).await?;
        }
        let key = ContentKey::Blob(digest.clone());
        if !self.store.contains(repo.id, repo.latest_version, &key).await? {
            return if was_pending {
                Ok(())
            } else {
                Err(RegistryError::BlobUnknown(digest.clone()))
            };
        }
        let owner = Uuid::new_v4().to_string();
        let mut w = self
            .store
            .begin_write(repo.id, &owner, self.cfg.lease_ttl, self.cfg.lease_wait)
            .await?;
        for m in self
            .store
            .content(repo.id, w.base(), ContentType::Manifest, None, usize::MAX)
            .await?
        {
            if let ContentKey::Manifest(md) = m {
                if let Some(rec) = self.store.manifest(&md).await? {
                    if rec.parsed.blob_digests().any(|b| b == digest) {
                        return Err(RegistryError::Denied(format!(
                            "blob is referenced by manifest {md}; delete the manifest first"
                        )));
                    }
                }
            }
        }
        w.remove(key).await?;
        w.commit(None).await?;
        Ok(())
    }

    async fn pushable_existing(&self, name: &RepoName) -> Result<Repository> {
        let dist = self
            .store
            .distribution_by_base_path(name)
            .await?
            .ok_or_else(|| RegistryError::NameUnknown(name.to_string()))?;
        self.pushable(&dist).await
    }

    /// Whether a manifest is an index (for logging and tests).
    pub async fn manifest_kind(&self, digest: &Digest) -> Result<Option<ManifestKind>> {
        Ok(self.store.manifest(digest).await?.map(|m| m.parsed.kind))
    }
}

/// Passes `body` on, hashing it; holds back the last chunk until the digest verified (and,
/// with `keep`, the blob store accepted the same bytes), else ends with an error. The
/// transfer runs to its end even when the client goes away, so a kept blob is stored.
fn tee_verified(digest: Digest, mut body: ByteStream, keep: Option<(Store, Arc<dyn BlobStore>)>) -> ByteStream {
    use futures::StreamExt;
    type Chunk = std::result::Result<Bytes, std::io::Error>;
    let (tx, rx) = tokio::sync::mpsc::channel::<Chunk>(8);
    let (store_tx, stored) = match keep {
        Some((store, blobs)) => {
            let (stx, srx) = tokio::sync::mpsc::channel::<Chunk>(8);
            let d = digest.clone();
            let handle = tokio::spawn(async move {
                let stream: ByteStream = Box::pin(futures::stream::unfold(srx, |mut rx| async move {
                    rx.recv().await.map(|c| (c, rx))
                }));
                let size = blobs.put(&d, stream).await?;
                store
                    .put_blob(&BlobRecord {
                        digest: d,
                        size,
                        created: Utc::now(),
                    })
                    .await?;
                Ok::<u64, StoreError>(size)
            });
            (Some(stx), Some(handle))
        }
        None => (None, None),
    };
    tokio::spawn(async move {
        let mut hasher = crate::domain::Hasher::new(digest.algorithm());
        let mut held: Option<Bytes> = None;
        let mut client = true;
        let mut store_tx = store_tx;
        let bad = |msg: String| std::io::Error::new(std::io::ErrorKind::InvalidData, msg);
        while let Some(chunk) = body.next().await {
            match chunk {
                Ok(b) => {
                    hasher.update(&b);
                    if let Some(s) = &store_tx {
                        if s.send(Ok(b.clone())).await.is_err() {
                            store_tx = None;
                        }
                    }
                    if let Some(prev) = held.replace(b) {
                        if client && tx.send(Ok(prev)).await.is_err() {
                            client = false;
                            if store_tx.is_none() {
                                return;
                            }
                        }
                    }
                }
                Err(e) => {
                    let msg = format!("fetching {digest} from upstream failed: {e}");
                    if let Some(s) = &store_tx {
                        let _ = s.send(Err(bad(msg.clone()))).await;
                    }
                    let _ = tx.send(Err(bad(msg))).await;
                    return;
                }
            }
        }
        drop(store_tx);
        let actual = hasher.finish();
        let mut verdict = if actual == digest {
            Ok(())
        } else {
            Err(format!("upstream sent bytes hashing to {actual}, not {digest}"))
        };
        if let Some(h) = stored {
            match h.await {
                Ok(Ok(_)) => tracing::info!(%digest, "stored an on-demand blob"),
                Ok(Err(e)) => {
                    tracing::warn!(%digest, error = %e, "storing an on-demand blob failed");
                    if verdict.is_ok() {
                        verdict = Err(format!("storing {digest} failed"));
                    }
                }
                Err(e) => {
                    tracing::warn!(%digest, error = %e, "storing an on-demand blob failed");
                    if verdict.is_ok() {
                        verdict = Err(format!("storing {digest} failed"));
                    }
                }
            }
        }
        if !client {
            return;
        }
        match verdict {
            Ok(()) => {
                if let Some(last) = held {
                    let _ = tx.send(Ok(last)).await;
                }
            }
            Err(msg) => {
                tracing::warn!(%digest, "{msg}");
                let _ = tx.send(Err(bad(msg))).await;
            }
        }
    });
    Box::pin(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|c| (c, rx))
    }))
}
