//! Paged lists for the management API: each method scans what it must (one index, or one
//! partition), keeps what its filter accepts, counts it, and reads or returns only one page.
//! What a list costs in table reads is stated on each method, and pinned by the tests below.
//!
//! Layering: `domain ← ports ← {store, adapters} ← services ← http ← app ← functions/*`;
//! part of `store`, which knows `domain` and `ports` only. The filters themselves are the
//! services' (they pass predicates); the store decides how to read.

use uuid::Uuid;

use super::{decode, Store};
use crate::domain::{ContentKey, ContentType};
use crate::ports::{Query, StoreError};
use crate::store::{
    BlobRecord, Distribution, ManifestRecord, Membership, Remote, Repository, RepositoryKind, RepositoryVersion, Task,
};

/// Which part of a list to return: `limit` items after skipping `offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub limit: usize,
    pub offset: usize,
}

impl Page {
    /// Every item.
    pub const ALL: Page = Page {
        limit: usize::MAX,
        offset: 0,
    };

    /// Counts `items` and keeps this page of them.
    pub fn cut<T>(&self, items: impl IntoIterator<Item = T>) -> Listing<T> {
        let mut count = 0;
        let mut out = Vec::new();
        for x in items {
            if count >= self.offset && out.len() < self.limit {
                out.push(x);
            }
            count += 1;
        }
        Listing { count, items: out }
    }
}

/// One page of a list and how many items the whole list has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing<T> {
    pub count: usize,
    pub items: Vec<T>,
}

impl<T> Listing<T> {
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Listing<U> {
        Listing {
            count: self.count,
            items: self.items.into_iter().map(f).collect(),
        }
    }
}

/// A set of content units of one repository a content list can be restricted to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentSet {
    /// The content of version `n`.
    InVersion(Uuid, u64),
    /// What version `n` added.
    AddedIn(Uuid, u64),
    /// What version `n` removed.
    RemovedIn(Uuid, u64),
}

/// A content unit with the records its description needs (a blob's or a manifest's).
#[derive(Debug, Clone)]
pub struct ContentUnit {
    pub key: ContentKey,
    pub blob: Option<BlobRecord>,
    pub manifest: Option<ManifestRecord>,
}

impl Store {
    /// Repositories of `kind` in name order whose name and id `keep` accepts. Costs one scan
    /// of the name index and one read per repository whose name passed `keep` (the kind is
    /// only in the repository item).
    pub async fn repository_page(
        &self,
        kind: RepositoryKind,
        keep: impl Fn(&str, Uuid) -> bool,
        page: Page,
    ) -> Result<Listing<Repository>, StoreError> {
        let mut all = Vec::new();
        for row in self.t.query("repo-names", Query::prefix("")).await? {
            let id: Uuid = decode(&row)?;
            if !keep(&row.sk, id) {
                continue;
            }
            if let Some(r) = self.repository(id).await? {
                if r.kind == kind {
                    all.push(r);
                }
            }
        }
        Ok(page.cut(all))
    }

    /// Remotes in name order that `keep` accepts. One scan of the remotes partition;
    /// credentials are opened for the page only.
    pub async fn remote_page(&self, keep: impl Fn(&Remote) -> bool, page: Page) -> Result<Listing<Remote>, StoreError> {
        let rows = self.t.query("remotes", Query::prefix("")).await?;
        let mut all: Vec<Remote> = rows.iter().map(decode).collect::<Result<_, _>>()?;
        all.sort_by(|a, b| a.name.cmp(&b.name));
        let mut listing = page.cut(all.into_iter().filter(|r| keep(r)));
        for r in &mut listing.items {
            super::secrets::open_remote(self.field_key.as_deref(), r);
        }
        Ok(listing)
    }

    /// Distributions in base-path order that `keep` accepts. One scan of the distributions
    /// partition.
    pub async fn distribution_page(
        &self,
        keep: impl Fn(&Distribution) -> bool,
        page: Page,
    ) -> Result<Listing<Distribution>, StoreError> {
        let all = self.distributions(None, usize::MAX).await?;
        Ok(page.cut(all.into_iter().filter(|d| keep(d))))
    }

    /// Tasks, newest first, that `keep` accepts. One scan of the tasks partition.
    pub async fn task_page(&self, keep: impl Fn(&Task) -> bool, page: Page) -> Result<Listing<Task>, StoreError> {
        let rows = self.t.query("tasks", Query::prefix("")).await?;
        let all: Vec<Task> = rows.iter().map(decode).collect::<Result<_, _>>()?;
        Ok(page.cut(all.into_iter().filter(|t| keep(t))))
    }

    /// Committed versions, newest first (oldest first when `oldest_first`), that `keep`
    /// accepts. One scan of the repository's partition.
    pub async fn version_page(
        &self,
        repo: &Repository,
        keep: impl Fn(&RepositoryVersion) -> bool,
        oldest_first: bool,
        page: Page,
    ) -> Result<Listing<RepositoryVersion>, StoreError> {
        let mut all = self.versions(repo).await?;
        if oldest_first {
            all.reverse();
        }
        Ok(page.cut(all.into_iter().filter(|v| keep(v))))
    }

    /// Every membership row of `key` in the repository: the versions it is in. One query.
    pub async fn memberships(&self, repo: Uuid, key: &ContentKey) -> Result<Vec<Membership>, StoreError> {
        Ok(self.member_rows(repo, key).await?.into_iter().map(|(_, m)| m).collect())
    }

    /// Content of type `ty` in every one of `sets` (in the order of the first; every unit of
    /// the type ever added when `sets` is empty) that `keep` accepts and, when `media_types`
    /// is given, a stored manifest of one of those media types. Costs the scan of the sets
    /// (or of the type's content index), one read per candidate when `media_types` is given,
    /// and one read per blob or manifest of the page.
    pub async fn content_page(
        &self,
        ty: ContentType,
        sets: &[ContentSet],
        keep: impl Fn(&ContentKey) -> bool,
        media_types: Option<&[String]>,
        page: Page,
    ) -> Result<Listing<ContentUnit>, StoreError> {
        let mut keys: Option<Vec<ContentKey>> = None;
        for set in sets {
            let these = match *set {
                ContentSet::InVersion(repo, n) => self.content(repo, n, ty, None, usize::MAX).await?,
                ContentSet::AddedIn(repo, n) | ContentSet::RemovedIn(repo, n) => self
                    .changes(repo, n, matches!(set, ContentSet::AddedIn(..)))
                    .await?
                    .into_iter()
                    .filter(|k| k.content_type() == ty)
                    .collect(),
            };
            keys = Some(match keys {
                Some(k) => k.into_iter().filter(|x| these.contains(x)).collect(),
                None => these,
            });
        }
        let keys = match keys {
            Some(k) => k,
            None => self.all_content(ty).await?,
        };
        let mut units = Vec::new();
        for key in keys.into_iter().filter(|k| keep(k)) {
            match media_types {
                None => units.push(ContentUnit {
                    key,
                    blob: None,
                    manifest: None,
                }),
                Some(types) => {
                    let ContentKey::Manifest(d) = &key else { continue };
                    let Some(m) = self.manifest(d).await? else { continue };
                    if types.iter().any(|t| *t == m.parsed.media_type) {
                        units.push(ContentUnit {
                            key,
                            blob: None,
                            manifest: Some(m),
                        });
                    }
                }
            }
        }
        let mut listing = page.cut(units);
        for u in &mut listing.items {
            self.describe(u).await?;
        }
        Ok(listing)
    }

    /// One content unit by its id, when it is of type `ty`. One read, plus one for a blob or a
    /// manifest.
    pub async fn content_unit(&self, id: Uuid, ty: ContentType) -> Result<Option<ContentUnit>, StoreError> {
        let Some(key) = self.content_by_id(id).await?.filter(|k| k.content_type() == ty) else {
            return Ok(None);
        };
        let mut u = ContentUnit {
            key,
            blob: None,
            manifest: None,
        };
        self.describe(&mut u).await?;
        Ok(Some(u))
    }

    /// Reads the record of a blob or manifest unit, unless it was read already.
    async fn describe(&self, u: &mut ContentUnit) -> Result<(), StoreError> {
        match &u.key {
            ContentKey::Blob(d) => u.blob = self.blob(d).await?,
            ContentKey::Manifest(d) if u.manifest.is_none() => u.manifest = self.manifest(d).await?,
            _ => {}
        }
        Ok(())
    }
}
