//! Pulls: a manifest by tag or digest (with the `Accept` rule for tags), a blob's size and
//! bytes (whole, a range, or a redirect to the blob store), and a manifest's atomic signatures,
//! all from the version the base path serves.
//!
//! Layering: `domain ← ports ← {store, adapters} ← services ← http ← app ← functions/*`; this is
//! `services`: it knows `domain`, `ports` and `store`, never HTTP.

use bytes::Bytes;

use super::{BlobBody, ManifestBody, Registry, RegistryError, Result, Target};
use crate::domain::{media::Accept, ContentKey, Digest, Reference, RepoName};
use crate::ports::{ByteRange, StoreError};
use crate::store::{LazyBlob, RepositoryKind, SignatureRecord};

impl Registry {
    /// The manifest `reference` names. A tag pull whose `accept` excludes the stored media
    /// type is `ManifestUnknown`; a digest pull ignores `accept`.
    pub async fn manifest(&self, name: &RepoName, reference: &Reference, accept: &Accept) -> Result<ManifestBody> {
        let served = self.target_and_distribution(name).await?;
        let digest = match self.through_cache(name, served.clone(), reference).await? {
            Some(digest) => digest,
            None => {
                let (t, _) = served.ok_or_else(|| RegistryError::NameUnknown(name.to_string()))?;
                self.local_digest(&t, reference).await?
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
                Bytes::from(crate::ports::collect(r.body).await?)
            }
        };
        Ok(ManifestBody {
            digest,
            media_type: rec.parsed.media_type,
            size: rec.size,
            bytes,
        })
    }

    /// The manifest `reference` names in the served version.
    async fn local_digest(&self, t: &Target, reference: &Reference) -> Result<Digest> {
        match reference {
            Reference::Tag(tag) => self
                .store
                .tag(&t.repo, t.version, tag)
                .await?
                .ok_or_else(|| RegistryError::ManifestUnknown(format!("tag {tag} not found"))),
            Reference::Digest(d) => {
                if !self
                    .store
                    .contains(t.repo.id, t.version, &ContentKey::Manifest(d.clone()))
                    .await?
                {
                    return Err(RegistryError::ManifestUnknown(format!("manifest {d} not found")));
                }
                Ok(d.clone())
            }
        }
    }

    /// Whether a pull of `name` may read `digest`: it is in the served version, or (for a
    /// push repository serving its latest version) uploaded and awaiting a manifest.
    pub(super) async fn blob_visible(&self, t: &Target, digest: &Digest) -> Result<bool> {
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
                    Some(l) => self.fetch_lazy(t.repo.id, digest, l).await,
                    None => Err(RegistryError::BlobUnknown(digest.clone())),
                }
            }
        };
        self.stored_range(digest, size, range).await
    }

    /// A stored blob, whole: a redirect to the blob store, or its bytes.
    pub(super) async fn stored_blob(&self, digest: &Digest) -> Result<BlobBody> {
        let size = self
            .blobs
            .stat(digest)
            .await?
            .ok_or_else(|| RegistryError::BlobUnknown(digest.clone()))?;
        self.stored_range(digest, size, |_| Ok(None)).await
    }

    async fn stored_range(
        &self,
        digest: &Digest,
        size: u64,
        range: impl FnOnce(u64) -> Result<Option<ByteRange>>,
    ) -> Result<BlobBody> {
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
}
