//! Paged lists for the management API. An unfiltered list reads one page, up to its end, and
//! takes its count from a tally (`tally.rs`) or a repository's version span: its cost does not
//! grow with the list. A filtered list scans what it must (one index, or one partition), keeps
//! what its filter accepts, counts it, and reads only one page. What a list costs in table
//! reads is stated on each method, and pinned by the tests below and the port suite's `pages`.
//!
//! Layering: `domain ← ports ← {store, adapters} ← services ← http ← app ← functions/*`;
//! part of `store`, which knows `domain` and `ports` only. The filters themselves are the
//! services' (they pass predicates); the store decides how to read.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{content_id, decode, num, shards, Store};
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

/// A content unit with what its description needs: the record of a blob or a manifest, and
/// when the unit was created.
#[derive(Debug, Clone)]
pub struct ContentUnit {
    pub key: ContentKey,
    pub blob: Option<BlobRecord>,
    pub manifest: Option<ManifestRecord>,
    /// When the unit was created: a blob's, manifest's or signature's record was written, a
    /// tag (or a blob a repository holds before its bytes are fetched) was first added to a
    /// version.
    pub created: Option<DateTime<Utc>>,
}

impl ContentUnit {
    fn new(key: ContentKey) -> Self {
        ContentUnit {
            key,
            blob: None,
            manifest: None,
            created: None,
        }
    }
}

/// The order of a list of content units of several types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ContentOrder {
    /// By type (blobs, manifests, tags, signatures), each in the order its own list has.
    #[default]
    Type,
    /// By the units' ids.
    Id { descending: bool },
}

impl Store {
    /// Repositories of `kind` in name order whose name and id `keep` accepts, and whose item
    /// `keep_item` accepts. Costs one scan of the name index and one read per repository whose
    /// name passed `keep` (the kind is only in the repository item).
    pub async fn repository_page(
        &self,
        kind: RepositoryKind,
        keep: impl Fn(&str, Uuid) -> bool,
        keep_item: impl Fn(&Repository) -> bool,
        page: Page,
    ) -> Result<Listing<Repository>, StoreError> {
        let mut all = Vec::new();
        for row in self.t.query("repo-names", Query::prefix("")).await? {
            let id: Uuid = decode(&row)?;
            if !keep(&row.sk, id) {
                continue;
            }
            if let Some(r) = self.repository(id).await? {
                if r.kind == kind && keep_item(&r) {
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

    /// Distributions in base-path order: one query up to the end of the page, and a count
    /// from the partition's tally, whatever the number of distributions.
    pub async fn distribution_range(&self, page: Page) -> Result<Listing<Distribution>, StoreError> {
        let count = self.count("dists").await? as usize;
        self.range("dists", count, page).await
    }

    /// Tasks, newest first: one query up to the end of the page, and a count from the
    /// partition's tally, whatever the number of tasks.
    pub async fn task_range(&self, page: Page) -> Result<Listing<Task>, StoreError> {
        let count = self.count_tasks().await? as usize;
        self.range("tasks", count, page).await
    }

    /// A page of the items of `pk`, of which there are `count`, in sort-key order.
    async fn range<T: serde::de::DeserializeOwned>(
        &self,
        pk: &str,
        count: usize,
        page: Page,
    ) -> Result<Listing<T>, StoreError> {
        let end = page.offset.saturating_add(page.limit).min(count);
        let mut items = Vec::new();
        if page.offset < end {
            let rows = self.t.query(pk, Query::prefix("").limit(end)).await?;
            for row in rows.iter().skip(page.offset) {
                items.push(decode(row)?);
            }
        }
        Ok(Listing { count, items })
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

    /// Committed versions numbered `lo` to `hi`, newest first (oldest first when
    /// `oldest_first`): one query of one page, whatever the number of versions, and a count
    /// from the repository's [`VersionSpan`](super::VersionSpan). `None` for a repository whose
    /// versions are not counted yet (see `members.rs`, `upgrade`).
    pub async fn version_range_page(
        &self,
        repo: &Repository,
        lo: u64,
        hi: u64,
        oldest_first: bool,
        page: Page,
    ) -> Result<Option<Listing<RepositoryVersion>>, StoreError> {
        let Some(span) = &repo.versions else {
            return Ok(None);
        };
        let hi = hi.min(repo.latest_version);
        let count = span.count(lo, hi) as usize;
        let mut listing = Listing {
            count,
            items: Vec::new(),
        };
        let (skip, limit) = (page.offset as u64, page.limit.min(count));
        let start = if oldest_first {
            span.nth_up(lo, hi, skip)
        } else {
            span.nth_down(lo, hi, skip)
        };
        let (Some(start), true) = (start, limit > 0) else {
            return Ok(Some(listing));
        };
        let pk = format!("repo#{}", repo.id);
        let q = if oldest_first {
            Query::prefix("v#").after(start.checked_sub(1).map(|n| format!("v#{}", num(n))))
        } else {
            Query::prefix("v#")
                .after(Some(format!("v#{}", num(start + 1))))
                .reverse()
        };
        for row in self.t.query(&pk, q.limit(limit)).await? {
            let v: RepositoryVersion = decode(&row)?;
            if v.number >= lo.max(span.first) && v.number <= hi {
                listing.items.push(v);
            }
        }
        Ok(Some(listing))
    }

    /// Every membership row of `key` in the repository: the versions it is in. One query.
    pub async fn memberships(&self, repo: Uuid, key: &ContentKey) -> Result<Vec<Membership>, StoreError> {
        Ok(self.member_rows(repo, key).await?.into_iter().map(|(_, m)| m).collect())
    }

    /// Content of type `ty` in every one of `sets` (in the order of the first; every unit of
    /// the type ever added when `sets` is empty) that `keep` accepts and, when `media_types`
    /// is given, a stored manifest of one of those media types. Costs the scan of the sets
    /// (or of the type's content index), one read per candidate when `media_types` is given,
    /// and one read per unit of the page.
    pub async fn content_page(
        &self,
        ty: ContentType,
        sets: &[ContentSet],
        keep: impl Fn(&ContentKey) -> bool,
        media_types: Option<&[String]>,
        page: Page,
    ) -> Result<Listing<ContentUnit>, StoreError> {
        let keys = self.content_keys(&[ty], sets).await?;
        let mut units = Vec::new();
        for key in keys.into_iter().filter(|k| keep(k)) {
            match media_types {
                None => units.push(ContentUnit::new(key)),
                Some(types) => {
                    let ContentKey::Manifest(d) = &key else { continue };
                    let Some(m) = self.manifest(d).await? else { continue };
                    if types.contains(&m.parsed.media_type) {
                        let mut u = ContentUnit::new(key);
                        u.manifest = Some(m);
                        units.push(u);
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

    /// Content of type `ty` in version `number` of `repo`, in key order, counted by the
    /// version's content summary: reads the version's units up to the end of the page (for
    /// tags, from the tag index), never the rest of the version, and one record per unit of the
    /// page.
    pub async fn version_content_page(
        &self,
        repo: &Repository,
        number: u64,
        ty: ContentType,
        page: Page,
    ) -> Result<Listing<ContentUnit>, StoreError> {
        let Some(version) = self.version(repo, number).await? else {
            return Ok(Listing {
                count: 0,
                items: Vec::new(),
            });
        };
        let count = version.content_summary.present.get(&ty).copied().unwrap_or(0) as usize;
        let end = page.offset.saturating_add(page.limit).min(count);
        let mut items = Vec::new();
        if page.offset < end {
            let keys = self.content(repo, number, ty, None, end).await?;
            for key in keys.into_iter().skip(page.offset) {
                let mut u = ContentUnit::new(key);
                self.describe(&mut u).await?;
                items.push(u);
            }
        }
        Ok(Listing { count, items })
    }

    /// Every unit of `types` ever added, each type in key order, in the order of `types`: the
    /// type's content index, counted by the tallies of its shards, and a page merged from them,
    /// each shard read up to the end of the page only. Costs one read per shard for the
    /// counts, one query per shard of a type the page reaches, and one read per unit of the
    /// page, whatever the number of units.
    pub async fn all_content_page(
        &self,
        types: &[ContentType],
        page: Page,
    ) -> Result<Listing<ContentUnit>, StoreError> {
        let mut counts = Vec::new();
        for ty in types {
            counts.push(self.count_all(&shards::partitions(&content_index(*ty))).await? as usize);
        }
        let mut listing = Listing {
            count: counts.iter().sum(),
            items: Vec::new(),
        };
        let (mut skip, mut want) = (page.offset, page.limit);
        for (ty, n) in types.iter().zip(counts) {
            if want == 0 {
                break;
            }
            if skip >= n {
                skip -= n;
                continue;
            }
            let keys = self.merged_index_page(&content_index(*ty), skip, want).await?;
            want = want.saturating_sub(keys.len());
            skip = 0;
            for key in keys {
                let mut u = ContentUnit::new(key);
                self.describe(&mut u).await?;
                listing.items.push(u);
            }
        }
        Ok(listing)
    }

    /// Units `skip` to `skip + limit` of a content index, in key order, merged from its shards
    /// (read concurrently, each up to `skip + limit` rows).
    async fn merged_index_page(&self, index: &str, skip: usize, limit: usize) -> Result<Vec<ContentKey>, StoreError> {
        let end = skip.saturating_add(limit);
        let partitions = shards::partitions(index);
        let reads = partitions
            .iter()
            .map(|pk| self.t.query(pk, Query::prefix("").limit(end)));
        let mut sks: Vec<String> = futures::future::try_join_all(reads)
            .await?
            .into_iter()
            .flatten()
            .map(|row| row.sk)
            .collect();
        sks.sort_unstable();
        sks.dedup();
        Ok(sks
            .into_iter()
            .skip(skip)
            .take(limit)
            .filter_map(|sk| ContentKey::decode(&sk))
            .collect())
    }

    /// Content of any of `types` in every one of `sets` (every unit of those types ever added
    /// when `sets` is empty) that `keep` accepts, in `order`. Costs the scan of the sets (one
    /// scan per type for the content of a version, one for what a version added or removed)
    /// or of the types' content indexes, and one read per unit of the page.
    pub async fn mixed_content_page(
        &self,
        types: &[ContentType],
        sets: &[ContentSet],
        keep: impl Fn(&ContentKey) -> bool,
        order: ContentOrder,
        page: Page,
    ) -> Result<Listing<ContentUnit>, StoreError> {
        let mut keys: Vec<ContentKey> = self
            .content_keys(types, sets)
            .await?
            .into_iter()
            .filter(|k| keep(k))
            .collect();
        match order {
            ContentOrder::Type => keys.sort_by_cached_key(|k| (k.content_type(), k.encode())),
            ContentOrder::Id { descending } => {
                keys.sort_by_cached_key(content_id);
                if descending {
                    keys.reverse();
                }
            }
        }
        let mut listing = page.cut(keys.into_iter().map(ContentUnit::new));
        for u in &mut listing.items {
            self.describe(u).await?;
        }
        Ok(listing)
    }

    /// The units of `types` in every one of `sets`, in the order of the first (each type in
    /// key order, in the order of `types`); every unit of those types ever added when `sets`
    /// is empty.
    async fn content_keys(&self, types: &[ContentType], sets: &[ContentSet]) -> Result<Vec<ContentKey>, StoreError> {
        let mut keys: Option<Vec<ContentKey>> = None;
        for set in sets {
            let these = match *set {
                ContentSet::InVersion(repo, n) => {
                    let mut these = Vec::new();
                    if let Some(repo) = self.repository(repo).await? {
                        for ty in types {
                            these.extend(self.content(&repo, n, *ty, None, usize::MAX).await?);
                        }
                    }
                    these
                }
                ContentSet::AddedIn(repo, n) | ContentSet::RemovedIn(repo, n) => {
                    let changes = self.changes(repo, n, matches!(set, ContentSet::AddedIn(..))).await?;
                    types
                        .iter()
                        .flat_map(|ty| changes.iter().filter(move |k| k.content_type() == *ty).cloned())
                        .collect()
                }
            };
            keys = Some(match keys {
                None => these,
                Some(k) => {
                    let these: HashSet<ContentKey> = these.into_iter().collect();
                    k.into_iter().filter(|x| these.contains(x)).collect()
                }
            });
        }
        match keys {
            Some(k) => Ok(k),
            None => {
                let mut all = Vec::new();
                for ty in types {
                    all.extend(self.all_content(*ty).await?);
                }
                Ok(all)
            }
        }
    }

    /// One content unit by its id, when it is of type `ty`. One read, plus one for its
    /// description.
    pub async fn content_unit(&self, id: Uuid, ty: ContentType) -> Result<Option<ContentUnit>, StoreError> {
        let Some(key) = self.content_by_id(id).await?.filter(|k| k.content_type() == ty) else {
            return Ok(None);
        };
        let mut u = ContentUnit::new(key);
        self.describe(&mut u).await?;
        Ok(Some(u))
    }

    /// Reads what describes a unit, unless it was read already: the record of a blob, a
    /// manifest or a signature, or, for a tag or a blob without a record, its content index
    /// row. One read (two for a blob whose bytes a repository fetches on first pull).
    async fn describe(&self, u: &mut ContentUnit) -> Result<(), StoreError> {
        match &u.key {
            ContentKey::Blob(d) => {
                u.blob = self.blob(d).await?;
                u.created = match &u.blob {
                    Some(b) => Some(b.created),
                    None => self.content_created(&u.key).await?,
                };
            }
            ContentKey::Manifest(d) => {
                if u.manifest.is_none() {
                    u.manifest = self.manifest(d).await?;
                }
                u.created = u.manifest.as_ref().map(|m| m.created);
            }
            ContentKey::Tag { .. } => u.created = self.content_created(&u.key).await?,
            ContentKey::Signature(d) => u.created = self.signature(d).await?.map(|s| s.created),
        }
        Ok(())
    }
}

/// The partition of the content index of `ty` (before its shards).
fn content_index(ty: ContentType) -> String {
    format!("content#{}", ty.prefix())
}

#[cfg(test)]
pub(super) mod tests;
