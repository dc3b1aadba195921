//! Blob pushes: the push repository behind a base path (made with its distribution on the first
//! push; mirrors and pinned distributions refuse), monolithic uploads, cross-repository mounts
//! and upload sessions (status, chunks in order, the verified last chunk, cancel).
//!
//! Layering: `domain ← ports ← {store, adapters} ← services ← http ← app ← functions/*`; this is
//! `services`: it knows `domain`, `ports` and `store`, never HTTP.

use chrono::Utc;
use uuid::Uuid;

use super::{Registry, RegistryError, Result, UploadStart};
use crate::domain::{Digest, RepoName};
use crate::ports::{ByteStream, StoreError};
use crate::store::{BlobRecord, Distribution, ObjectKind, ObjectRef, Repository, RepositoryKind, UploadSession};

impl Registry {
    /// The push repository behind `name`, created with its distribution when the base path
    /// is new. Mirrors, pinned distributions and distributions without a repository refuse.
    pub(super) async fn push_target(&self, name: &RepoName) -> Result<Repository> {
        // racing first pushes: a loser finds the winner's repository, then its distribution
        for _ in 0..6 {
            if let Some(dist) = self.store.distribution_by_base_path(name).await? {
                return self.pushable(&dist).await;
            }
            if let Some((pt, _)) = self.store.pull_through_of(name).await? {
                return Err(RegistryError::Denied(format!(
                    "{name} is under the pull-through cache {}, which cannot be pushed to",
                    pt.base_path
                )));
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
            let dist = Distribution::new(name.as_str(), name.clone(), Some(repo.id));
            let ns_name = crate::services::access::namespace_of(name.as_str());
            let new_namespace = self.store.namespace_by_name(ns_name).await?.is_none();
            match self.store.create_distribution(&dist).await {
                Ok(()) => {
                    tracing::info!(base_path = %name, repository = %repo.id, "created push repository and distribution");
                    self.own_pushed(&dist, new_namespace.then_some(ns_name)).await?;
                    return Ok(repo);
                }
                Err(StoreError::Conflict(_)) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(RegistryError::Busy)
    }

    /// The pusher who made `dist` (and namespace `new_namespace`) owns them, as in Pulp.
    async fn own_pushed(&self, dist: &Distribution, new_namespace: Option<&str>) -> Result<()> {
        let (Some(accounts), Some(who)) = (&self.accounts, crate::services::acting::actor()) else {
            return Ok(());
        };
        if let Some(ns) = new_namespace {
            if let Some(ns) = self.store.namespace_by_name(ns).await? {
                accounts
                    .give_owner(
                        &who,
                        "container.containernamespace_owner",
                        ObjectRef::new(ObjectKind::Namespace, ns.id),
                    )
                    .await?;
            }
        }
        accounts
            .give_owner(
                &who,
                "container.containerdistribution_owner",
                ObjectRef::new(ObjectKind::Distribution, dist.id),
            )
            .await?;
        Ok(())
    }

    async fn pushable(&self, dist: &Distribution) -> Result<Repository> {
        if dist.pull_through || dist.cached_by.is_some() {
            return Err(RegistryError::Denied(format!(
                "distribution {} is a pull-through cache and cannot be pushed to",
                dist.name
            )));
        }
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

    pub(super) async fn pushable_existing(&self, name: &RepoName) -> Result<Repository> {
        let dist = self
            .store
            .distribution_by_base_path(name)
            .await?
            .ok_or_else(|| RegistryError::NameUnknown(name.to_string()))?;
        self.pushable(&dist).await
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
}
