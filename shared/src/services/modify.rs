//! Changing a repository's content as one new version: add, remove, tag, untag, remove an
//! image, copy tags or manifests from another version. Each operation that changes something
//! commits exactly one version; one that changes nothing commits none.
//!
//! Layering: `domain ← ports ← {store, adapters} ← services ← http ← app ← functions/*`;
//! part of `services`, over the store.

use uuid::Uuid;

use super::invalid::{Invalid, ManageError};
use super::manage::Manage;
use super::versions::Versions;
use crate::domain::{ContentKey, ContentType, Digest, Tag};
use crate::store::{Repository, RepositoryKind, RepositoryVersion};

type Result<T, E = ManageError> = std::result::Result<T, E>;

/// Where a copy reads from: a repository's latest version, or one version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopySource {
    /// The latest version of a mirror repository.
    Latest(Uuid),
    /// A version of any repository.
    Version(Uuid, u64),
}

/// What a copy takes from its source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CopySelection {
    /// Tags, those named when `names` is given.
    Tags { names: Option<Vec<String>> },
    /// Manifests, those with one of `digests` and of one of `media_types` when given.
    Manifests {
        digests: Option<Vec<String>>,
        media_types: Option<Vec<String>>,
    },
}

impl Manage {
    /// A version named by a reference in `field`: the repository and the number.
    pub async fn version_ref(&self, field: &'static str, id: Uuid, n: u64) -> Result<(Repository, u64)> {
        let bad = || ManageError::invalid(field, Invalid::NoObject);
        let repo = self.store().repository(id).await?.ok_or_else(bad)?;
        self.store().version(&repo, n).await?.ok_or_else(bad)?;
        Ok((repo, n))
    }

    /// The content units named by content ids (with the reference each was given as); the
    /// first unknown one is an error on `field`. A reference of the wrong shape has no id.
    pub async fn content_keys(&self, field: &'static str, refs: &[(String, Option<Uuid>)]) -> Result<Vec<ContentKey>> {
        let mut keys = Vec::with_capacity(refs.len());
        for (given, id) in refs {
            let key = match id {
                Some(id) => self.store().content_by_id(*id).await?,
                None => None,
            };
            match key {
                Some(k) => keys.push(k),
                None => return Err(ManageError::invalid(field, Invalid::NoObjectAt(given.clone()))),
            }
        }
        Ok(keys)
    }

    /// Copies the selected tags or manifests of a source version, with everything they
    /// reference, into `repo` as one new version; a copied tag replaces the destination's tag
    /// of that name.
    pub async fn copy(
        &self,
        repo: &Repository,
        source: CopySource,
        selection: CopySelection,
    ) -> Result<Option<RepositoryVersion>> {
        let (source, number) = match source {
            CopySource::Latest(id) => {
                let r = self
                    .store()
                    .repository(id)
                    .await?
                    .filter(|r| r.kind == RepositoryKind::Mirror)
                    .ok_or_else(|| ManageError::invalid("source_repository", Invalid::NoObject))?;
                let n = r.latest_version;
                (r, n)
            }
            CopySource::Version(id, n) => self.version_ref("source_repository_version", id, n).await?,
        };
        let store = self.store();
        let ty = match selection {
            CopySelection::Tags { .. } => ContentType::Tag,
            CopySelection::Manifests { .. } => ContentType::Manifest,
        };
        let mut keys = Vec::new();
        for k in store.content(&source, number, ty, None, usize::MAX).await? {
            let keep = match (&k, &selection) {
                (ContentKey::Tag { name, .. }, CopySelection::Tags { names }) => {
                    names.as_ref().is_none_or(|n| n.iter().any(|x| x == name.as_str()))
                }
                (ContentKey::Manifest(d), CopySelection::Manifests { digests, media_types }) => {
                    let by_digest = digests.as_ref().is_none_or(|ds| ds.iter().any(|x| x == d.as_str()));
                    let by_type = match media_types {
                        None => true,
                        Some(types) => match store.manifest(d).await? {
                            Some(m) => types.contains(&m.parsed.media_type),
                            None => false,
                        },
                    };
                    by_digest && by_type
                }
                _ => false,
            };
            if keep {
                keys.push(k);
            }
        }
        self.add(repo, keys).await
    }

    /// Adds and removes content as one new version. Returns it, or `None` when nothing
    /// changed.
    pub async fn modify(
        &self,
        repo: &Repository,
        add: Vec<ContentKey>,
        remove: Vec<ContentKey>,
    ) -> Result<Option<RepositoryVersion>> {
        let owner = Uuid::new_v4().to_string();
        let mut w = self
            .store()
            .begin_write(repo.id, &owner, super::manage::LEASE_TTL, super::manage::LEASE_WAIT)
            .await?;
        for k in remove {
            w.remove(k).await?;
        }
        for k in add {
            w.add(k).await?;
        }
        Ok(Versions::new(self.store()).commit(w, None).await?)
    }

    /// Tags a manifest of the latest version (moving the tag if it exists).
    pub async fn tag(&self, repo: &Repository, tag: Tag, digest: Digest) -> Result<Option<RepositoryVersion>> {
        let latest = repo.latest_version;
        if !self
            .store()
            .contains(repo.id, latest, &ContentKey::Manifest(digest.clone()))
            .await?
        {
            return Err(ManageError::invalid("digest", Invalid::ManifestNotInRepository));
        }
        let mut remove = Vec::new();
        if let Some(old) = self.store().tag(repo, latest, &tag).await? {
            if old == digest {
                return Ok(None);
            }
            remove.push(ContentKey::Tag {
                name: tag.clone(),
                manifest: old,
            });
        }
        self.modify(
            repo,
            vec![ContentKey::Tag {
                name: tag,
                manifest: digest,
            }],
            remove,
        )
        .await
    }

    pub async fn untag(&self, repo: &Repository, tag: Tag) -> Result<Option<RepositoryVersion>> {
        let Some(d) = self.store().tag(repo, repo.latest_version, &tag).await? else {
            return Err(ManageError::invalid("tag", Invalid::TagNotInRepository));
        };
        self.modify(repo, Vec::new(), vec![ContentKey::Tag { name: tag, manifest: d }])
            .await
    }

    /// Adds content units the store knows (a manifest brings its blobs and, for an index, its
    /// child manifests and their blobs), as one new version.
    pub async fn add(&self, repo: &Repository, keys: Vec<ContentKey>) -> Result<Option<RepositoryVersion>> {
        let mut all = Vec::new();
        let mut stack = keys;
        while let Some(k) = stack.pop() {
            if let ContentKey::Manifest(d) = &k {
                let m = self
                    .store()
                    .manifest(d)
                    .await?
                    .ok_or_else(|| ManageError::invalid("content_units", Invalid::ManifestNotStored(d.clone())))?;
                stack.extend(m.parsed.blob_digests().cloned().map(ContentKey::Blob));
                stack.extend(
                    m.parsed
                        .manifests
                        .iter()
                        .map(|c| ContentKey::Manifest(c.digest.clone())),
                );
            }
            if let ContentKey::Tag { manifest, .. } = &k {
                stack.push(ContentKey::Manifest(manifest.clone()));
            }
            if !all.contains(&k) {
                all.push(k);
            }
        }
        // a tag name appears once per version: an added tag replaces the old one of that name
        let mut remove = Vec::new();
        for k in &all {
            if let ContentKey::Tag { name, manifest } = k {
                if let Some(old) = self.store().tag(repo, repo.latest_version, name).await? {
                    if &old != manifest {
                        remove.push(ContentKey::Tag {
                            name: name.clone(),
                            manifest: old,
                        });
                    }
                }
            }
        }
        self.modify(repo, all, remove).await
    }

    /// Removes an image: the manifest, its tags, and the blobs only it used.
    pub async fn remove_image(&self, repo: &Repository, digest: &Digest) -> Result<Option<RepositoryVersion>> {
        let keys = self.store().image_keys(repo, repo.latest_version, digest).await?;
        if keys.is_empty() {
            return Err(ManageError::invalid("digest", Invalid::ManifestNotInRepository));
        }
        self.modify(repo, Vec::new(), keys).await
    }

    /// Removes content units (`*` removes everything), as one new version.
    pub async fn remove(&self, repo: &Repository, keys: Option<Vec<ContentKey>>) -> Result<Option<RepositoryVersion>> {
        let keys = match keys {
            Some(k) => k,
            None => {
                let mut all = Vec::new();
                for ty in ContentType::ALL {
                    all.extend(
                        self.store()
                            .content(repo, repo.latest_version, ty, None, usize::MAX)
                            .await?,
                    );
                }
                all
            }
        };
        self.modify(repo, Vec::new(), keys).await
    }
}
