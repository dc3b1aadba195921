//! The pushes that commit repository versions: a manifest PUT (its blobs and child manifests
//! must be in the repository; pushed by tag it moves the tag), a tag or manifest DELETE, and a
//! blob DELETE. Each change is one write under the repository's lease; nothing changed, no
//! version.
//!
//! Layering: `domain ← ports ← {store, adapters} ← services ← http ← app ← functions/*`; this is
//! `services`: it knows `domain`, `ports` and `store`, never HTTP.

use bytes::Bytes;
use uuid::Uuid;

use super::{PushedManifest, Registry, RegistryError, Result};
use crate::domain::media::MediaType;
use crate::domain::{
    parse_manifest, ContentKey, ContentType, Digest, DomainError, ManifestKind, Reference, RepoName, Tag,
};
use crate::services::content::save_manifest;
use crate::services::Versions;
use crate::store::VersionWriter;

impl Registry {
    /// Stores a manifest and commits a version holding it (and its tag, when pushed by tag).
    pub async fn put_manifest(
        &self,
        name: &RepoName,
        reference: &Reference,
        content_type: Option<&MediaType>,
        bytes: Bytes,
    ) -> Result<PushedManifest> {
        let repo = self.push_target(name).await?;
        let parsed = parse_manifest(&bytes, content_type.map(MediaType::as_str)).map_err(|e| match e {
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
            self.point_tag(&mut w, tag, &digest).await?;
        }
        if let Some(v) = Versions::new(&self.store).commit(w, None).await? {
            tracing::info!(repository = %repo.name, version = v.number, %digest, "pushed manifest");
        }
        // the blobs are content of the repository now; they no longer wait for a manifest
        for d in &blob_digests {
            self.store.remove_pending_blob(repo.id, d).await?;
        }
        Ok(PushedManifest { digest, subject })
    }

    /// Points `tag` at `digest` in the version `w` builds (removing where it pointed before).
    pub(super) async fn point_tag(&self, w: &mut VersionWriter, tag: &Tag, digest: &Digest) -> Result<()> {
        if let Some(old) = self.store.tag(w.repository(), w.base(), tag).await? {
            if &old != digest {
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
        Ok(())
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
                    .tag(w.repository(), base, tag)
                    .await?
                    .ok_or_else(|| RegistryError::ManifestUnknown(format!("tag {tag} not found")))?;
                w.remove(ContentKey::Tag {
                    name: tag.clone(),
                    manifest: digest,
                })
                .await?;
            }
            Reference::Digest(d) => {
                let keys = self.store.image_keys(w.repository(), base, d).await?;
                if keys.is_empty() {
                    return Err(RegistryError::ManifestUnknown(format!("manifest {d} not found")));
                }
                for k in keys {
                    w.remove(k).await?;
                }
            }
        }
        Versions::new(&self.store).commit(w, None).await?;
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
            .content(w.repository(), w.base(), ContentType::Manifest, None, usize::MAX)
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
        Versions::new(&self.store).commit(w, None).await?;
        Ok(())
    }

    /// Whether a manifest is an index (for logging and tests).
    pub async fn manifest_kind(&self, digest: &Digest) -> Result<Option<ManifestKind>> {
        Ok(self.store.manifest(digest).await?.map(|m| m.parsed.kind))
    }
}
