//! Berth's data model, written once over the [`Table`] port.
//!
//! Layering: `store` knows `domain` and `ports` only.
//!
//! ## Items
//!
//! | pk | sk | value |
//! |---|---|---|
//! | `blob#<digest>` | `_` | [`BlobRecord`] |
//! | `manifest#<digest>` | `_` | [`ManifestRecord`] |
//! | `subject#<digest>` | `<manifest digest>` | [`ReferrerRecord`] |
//! | `repo#<id>` | `_` | [`Repository`] (the commit point: `latest_version`, lease, the next number, a deletion being tidied) |
//! | `repo#<id>` | `v#<number>` | [`RepositoryVersion`] (visible when `number <= latest_version`) |
//! | `repo-names` | `<name>` | repository id (unique names) |
//! | `repos#<kind>` | `<name>` | repository id: the repositories of one kind (see `repo_kinds.rs`) |
//! | `members#<id>` | `<content key>#<version_added>` | [`Membership`] |
//! | `tags#<id>` | `<tag>#<version_added>` | [`TagRow`]: the tag index (see `members.rs`) |
//! | `changes#<id>#<number>` | `a#<content key>` / `r#<content key>` | what version `number` added / removed |
//! | `pending#<id>` | `<digest>` | a blob uploaded to the repository, not yet in a version |
//! | `dists` | `<base path>` | [`Distribution`] |
//! | `dist-names` | `<name>` | base path (unique names) |
//! | `namespaces` | `<name>` | [`Namespace`] (see `namespaces.rs`) |
//! | `workers` | `<name>` | [`WorkerRecord`] (see `workers.rs`) |
//! | `upload#<id>` | `_` | [`UploadSession`] (expires [`Retention::upload`] after its start) |
//!
//! The content index (`content#<type>#`) and `stored` are spread over shards (see `shards.rs`).
//!
//! Tasks finished longer than [`Retention::tasks`] ago are removed as new tasks are made (see
//! `manage.rs`). Counted partitions keep their counts in `tally#<partition>` (see `tally.rs`).
//!
//! Signatures and on-demand blob pointers: see `synced.rs`. What the registry holds, counted for
//! metrics: see `totals.rs`.
//!
//! Numbers in sort keys are zero-padded to 10 digits so they sort numerically.
//!
//! ## Versions (DESIGN invariants 1 and 2)
//!
//! A writer takes the repository's lease (a conditional write of the repository item), cleans
//! up whatever an earlier writer staged for the next version and never committed, stages
//! membership rows and change-log rows for version N+1, and commits by one conditional write
//! of the repository item setting `latest_version = N+1` and dropping the lease. Content X is
//! in version N iff some membership row of X has `added <= N < removed`. Readers of version N
//! never see rows staged for N+1, committed or not.
//!
//! Deleting a version (squashed into the next, or the latest reverted) is in `deletion.rs`.

mod accounts;
mod deletion;
mod lists;
mod manage;
mod members;
mod model;
mod namespaces;
mod orphans;
mod pull_through;
mod pull_through_index;
mod remote;
mod repair;
mod repo_kinds;
mod schedules;
mod secrets;
pub(crate) mod shards;
mod synced;
mod tally;
mod tasks;
mod totals;
mod versions;
mod workers;

use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use uuid::Uuid;

pub use accounts::{Group, Holder, ObjectKind, ObjectRef, RoleAssignment};
pub use deletion::Deleted;
pub use lists::{ContentOrder, ContentSet, ContentUnit, Listing, Page};
pub use manage::content_id;
pub use members::TagRow;
pub use model::*;
pub use namespaces::NamespaceRemoval;
pub use orphans::OrphanCandidate;
pub use pull_through::TagCheck;
pub use remote::{Policy, Remote, RemoteHeaders, RemoteKind};
pub use repair::NameRepairs;
pub use schedules::{Schedule, ScheduledWork};
pub use secrets::FieldKey;
pub use totals::ContentTotal;
pub use versions::{VersionWriter, WriteError};

use crate::domain::{ContentKey, ContentType, Digest, RepoName};
use crate::ports::{Cond, Query, Row, StoreError, Table, Write};
use tally::Counted;

const PAGE: usize = 500;

pub(crate) fn num(n: u64) -> String {
    format!("{n:010}")
}

fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>, StoreError> {
    Ok(serde_json::to_vec(v)?)
}

fn decode<T: DeserializeOwned>(row: &Row) -> Result<T, StoreError> {
    Ok(serde_json::from_slice(&row.value)?)
}

/// How long items that clean up after themselves live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// A blob upload session, from its start: an upload not finished by then is gone
    /// (`BLOB_UPLOAD_UNKNOWN`). Its staged bytes are removed later by the blob store's own
    /// cleanup (the bucket's lifecycle rules, the embedded store's sweep).
    pub upload: Duration,
    /// A finished task, from when it finished; `None` keeps tasks until they are deleted.
    pub tasks: Option<Duration>,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            upload: Duration::from_secs(24 * 3600),
            tasks: Some(Duration::from_secs(30 * 24 * 3600)),
        }
    }
}

/// The Unix second `after` from now.
fn expiry_in(after: Duration) -> u64 {
    crate::ports::unix_now().saturating_add(after.as_secs())
}

/// Which process writes: a node (a stable name for one place Berth runs, of which one process
/// runs at a time, such as the local binary on its data directory) and the life of its current
/// process (new at every start). Leases name both, so a restarted process takes over at once
/// what its previous life held when it was killed (DESIGN invariant 2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeLife {
    pub node: String,
    pub life: String,
}

impl NodeLife {
    /// A new life of `node`.
    pub fn new(node: impl Into<String>) -> Self {
        NodeLife {
            node: node.into(),
            life: Uuid::new_v4().to_string(),
        }
    }
}

/// Berth's metadata, over any table adapter. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    t: Arc<dyn Table>,
    retention: Retention,
    /// Seals remote credentials at rest when set.
    field_key: Option<Arc<FieldKey>>,
    /// This process, when it is the only one of its node (leases then survive it briefly).
    node: Option<Arc<NodeLife>>,
}

impl Store {
    pub fn new(table: Arc<dyn Table>) -> Self {
        Self::with_retention(table, Retention::default())
    }

    pub fn with_retention(table: Arc<dyn Table>, retention: Retention) -> Self {
        Store {
            t: table,
            retention,
            field_key: None,
            node: None,
        }
    }

    /// This store, naming `node` in the leases it takes.
    pub fn with_node(mut self, node: Option<NodeLife>) -> Self {
        self.node = node.map(Arc::new);
        self
    }

    /// This store, sealing remote credentials with `key`.
    pub fn with_field_key(mut self, key: Option<Arc<FieldKey>>) -> Self {
        self.field_key = key;
        self
    }

    pub fn retention(&self) -> Retention {
        self.retention
    }

    pub fn table(&self) -> &Arc<dyn Table> {
        &self.t
    }

    async fn get_json<T: DeserializeOwned>(&self, pk: &str, sk: &str) -> Result<Option<(u64, T)>, StoreError> {
        match self.t.get(pk, sk).await? {
            Some(row) => Ok(Some((row.rev, decode(&row)?))),
            None => Ok(None),
        }
    }

    /// Creates a named item: the name row `names/name → value` and `items` (which create the
    /// item it names), in one transaction, so of racing creators exactly one wins and no state
    /// exists with a name and no item or the reverse (DESIGN invariant 6). `Conflict` when the
    /// name is taken. A name row whose item (`item_of` the name row) is missing, or does not
    /// carry the name (`names_it` of the item row), was left by a create that crashed in a
    /// version before names and items were written together, and is replaced.
    pub(crate) async fn create_named<V: Serialize>(
        &self,
        (names, name): (&str, &str),
        value: &V,
        items: Vec<Write>,
        counted: &[(&str, Vec<tally::Counted<'_>>)],
        item_of: impl Fn(&Row) -> Result<(String, String), StoreError>,
        names_it: impl Fn(&Row) -> Result<bool, StoreError>,
    ) -> Result<(), StoreError> {
        let mut name_cond = Cond::Absent;
        for _ in 0..3 {
            let mut writes = vec![Write::put(names, name, encode(value)?, name_cond)];
            writes.extend(items.iter().cloned());
            match self.transact_counted(writes, counted).await {
                Err(StoreError::Conflict(c)) => {
                    let Some(row) = self.t.get(names, name).await? else {
                        if !self.conditions_hold(&items).await? {
                            // another of our items is taken, or a row held changed
                            return Err(StoreError::Conflict(c));
                        }
                        // the name was freed meanwhile
                        name_cond = Cond::Absent;
                        continue;
                    };
                    let (pk, sk) = item_of(&row)?;
                    let live = match self.t.get(&pk, &sk).await? {
                        Some(item) => names_it(&item)?,
                        None => false,
                    };
                    if live {
                        return Err(StoreError::Conflict(c));
                    }
                    tracing::warn!(names, name, "replacing a name row that names no item");
                    name_cond = Cond::Rev(row.rev);
                }
                other => return other,
            }
        }
        Err(StoreError::Conflict(format!("{names}/{name} kept changing")))
    }

    // ---- content -------------------------------------------------------------------------

    /// Records a blob whose bytes are stored and verified. Idempotent.
    pub async fn put_blob(&self, rec: &BlobRecord) -> Result<(), StoreError> {
        self.t
            .put(&format!("blob#{}", rec.digest), "_", encode(rec)?, Cond::Any)
            .await?;
        self.touch_stored(&ContentKey::Blob(rec.digest.clone())).await
    }

    pub async fn blob(&self, digest: &Digest) -> Result<Option<BlobRecord>, StoreError> {
        Ok(self.get_json(&format!("blob#{digest}"), "_").await?.map(|(_, v)| v))
    }

    /// Records a manifest whose bytes are stored and verified, and its referrer entry when it
    /// has a subject. Idempotent.
    pub async fn put_manifest(&self, rec: &ManifestRecord) -> Result<(), StoreError> {
        if let Some(subject) = &rec.parsed.subject {
            let r = ReferrerRecord {
                digest: rec.digest.clone(),
                media_type: rec.parsed.media_type.clone(),
                size: rec.size,
                artifact_type: rec.parsed.artifact_type.clone(),
                annotations: rec.parsed.annotations.clone(),
            };
            self.t
                .put(
                    &format!("subject#{}", subject.digest),
                    rec.digest.as_str(),
                    encode(&r)?,
                    Cond::Any,
                )
                .await?;
        }
        self.t
            .put(&format!("manifest#{}", rec.digest), "_", encode(rec)?, Cond::Any)
            .await?;
        self.touch_stored(&ContentKey::Manifest(rec.digest.clone())).await
    }

    pub async fn manifest(&self, digest: &Digest) -> Result<Option<ManifestRecord>, StoreError> {
        Ok(self.get_json(&format!("manifest#{digest}"), "_").await?.map(|(_, v)| v))
    }

    /// Every manifest stored with `subject` as its subject, in any repository.
    pub async fn referrers(&self, subject: &Digest) -> Result<Vec<ReferrerRecord>, StoreError> {
        let rows = self.t.query(&format!("subject#{subject}"), Query::prefix("")).await?;
        rows.iter().map(decode).collect()
    }

    // ---- repositories ----------------------------------------------------------------------

    /// Creates a repository with its empty version 0, its name and its item in one
    /// transaction. `Conflict` when the name is taken.
    pub async fn create_repository(&self, repo: &Repository) -> Result<(), StoreError> {
        let v0 = RepositoryVersion {
            repository: repo.id,
            number: 0,
            base_version: None,
            content_summary: Default::default(),
            created: repo.created,
        };
        let pk = format!("repo#{}", repo.id);
        let listed = repo_kinds::Listed::kind(repo.kind);
        let items = vec![
            Write::put(&pk, "_", encode(repo)?, Cond::Absent),
            Write::put(&pk, format!("v#{}", num(0)), encode(&v0)?, Cond::Absent),
            Write::put(&listed.index, &repo.name, encode(&repo.id)?, Cond::Any),
        ];
        self.create_named(
            ("repo-names", &repo.name),
            &repo.id,
            items,
            &[("repo-names", vec![Counted::of(&repo.name, &listed.class, 1)])],
            |row| Ok((format!("repo#{}", decode::<Uuid>(row)?), "_".to_owned())),
            |_| Ok(true),
        )
        .await
    }

    pub async fn repository(&self, id: Uuid) -> Result<Option<Repository>, StoreError> {
        Ok(self.repository_rev(id).await?.map(|(_, r)| r))
    }

    pub(crate) async fn repository_rev(&self, id: Uuid) -> Result<Option<(u64, Repository)>, StoreError> {
        self.get_json(&format!("repo#{id}"), "_").await
    }

    pub async fn repository_by_name(&self, name: &str) -> Result<Option<Repository>, StoreError> {
        match self.get_json::<Uuid>("repo-names", name).await? {
            Some((_, id)) => self.repository(id).await,
            None => Ok(None),
        }
    }

    /// A committed version (`None` for numbers above `latest_version`).
    pub async fn version(&self, repo: &Repository, number: u64) -> Result<Option<RepositoryVersion>, StoreError> {
        if number > repo.latest_version {
            return Ok(None);
        }
        Ok(self
            .get_json(&format!("repo#{}", repo.id), &format!("v#{}", num(number)))
            .await?
            .map(|(_, v)| v))
    }

    /// Committed versions, newest first.
    pub async fn versions(&self, repo: &Repository) -> Result<Vec<RepositoryVersion>, StoreError> {
        let rows = self
            .t
            .query(&format!("repo#{}", repo.id), Query::prefix("v#").reverse())
            .await?;
        let mut out = Vec::new();
        for row in &rows {
            let v: RepositoryVersion = decode(row)?;
            if v.number <= repo.latest_version {
                out.push(v);
            }
        }
        Ok(out)
    }

    /// What version `number` added (`added = true`) or removed.
    pub async fn changes(&self, repo: Uuid, number: u64, added: bool) -> Result<Vec<ContentKey>, StoreError> {
        let rows = self
            .t
            .query(
                &format!("changes#{repo}#{}", num(number)),
                Query::prefix(if added { "a#" } else { "r#" }),
            )
            .await?;
        Ok(rows.iter().filter_map(|r| ContentKey::decode(&r.sk[2..])).collect())
    }

    /// What removing the image `digest` from version `number` removes: the manifest, the
    /// tags pointing to it, and the blobs no other manifest of the version uses. Empty when
    /// the manifest is not in the version.
    pub async fn image_keys(
        &self,
        repo: &Repository,
        number: u64,
        digest: &Digest,
    ) -> Result<Vec<ContentKey>, StoreError> {
        let mkey = ContentKey::Manifest(digest.clone());
        if !self.contains(repo.id, number, &mkey).await? {
            return Ok(Vec::new());
        }
        let mut keys = vec![mkey];
        for key in self.content(repo, number, ContentType::Tag, None, usize::MAX).await? {
            if matches!(&key, ContentKey::Tag { manifest, .. } if manifest == digest) {
                keys.push(key);
            }
        }
        let mut still_used = std::collections::HashSet::new();
        for key in self
            .content(repo, number, ContentType::Manifest, None, usize::MAX)
            .await?
        {
            if let ContentKey::Manifest(other) = key {
                if &other != digest {
                    if let Some(m) = self.manifest(&other).await? {
                        still_used.extend(m.parsed.blob_digests().cloned());
                    }
                }
            }
        }
        if let Some(rec) = self.manifest(digest).await? {
            for b in rec.parsed.blob_digests() {
                if !still_used.contains(b) {
                    keys.push(ContentKey::Blob(b.clone()));
                }
            }
        }
        Ok(keys)
    }

    // ---- pending blobs ----------------------------------------------------------------------

    /// Marks a blob as uploaded to (or mounted into) the repository, before any version
    /// references it (then touches it, for a cleanup running meanwhile: see `orphans.rs`).
    pub async fn add_pending_blob(&self, repo: Uuid, digest: &Digest) -> Result<(), StoreError> {
        self.t
            .put(&format!("pending#{repo}"), digest.as_str(), b"{}".to_vec(), Cond::Any)
            .await?;
        self.touch_stored(&ContentKey::Blob(digest.clone())).await
    }

    pub async fn is_pending_blob(&self, repo: Uuid, digest: &Digest) -> Result<bool, StoreError> {
        Ok(self.t.get(&format!("pending#{repo}"), digest.as_str()).await?.is_some())
    }

    pub async fn remove_pending_blob(&self, repo: Uuid, digest: &Digest) -> Result<(), StoreError> {
        self.t
            .delete(&format!("pending#{repo}"), digest.as_str(), Cond::Any)
            .await
    }

    // ---- distributions ----------------------------------------------------------------------

    /// Creates a distribution: its name, its base path, its id index and its namespace (made
    /// when it is the first distribution of it) in one transaction. `Conflict` when its name or
    /// base path is taken. The stored distribution names its namespace.
    pub async fn create_distribution(&self, d: &Distribution) -> Result<(), StoreError> {
        self.write_holding_namespace(d, |d, mut items| async move {
            items.push(Write::put("dists", d.base_path.as_str(), encode(&d)?, Cond::Absent));
            items.extend(pull_through_index::rows(&d, true)?);
            items.push(Write::put(
                "dist-ids",
                d.id.to_string(),
                encode(&d.base_path)?,
                Cond::Absent,
            ));
            self.create_named(
                ("dist-names", &d.name),
                &d.base_path,
                items,
                &[("dists", vec![Counted::added(d.base_path.as_str())])],
                |row| Ok(("dists".to_owned(), decode::<String>(row)?)),
                |item| Ok(decode::<Distribution>(item)?.name == d.name),
            )
            .await
        })
        .await
    }

    pub async fn distribution_by_base_path(&self, base_path: &RepoName) -> Result<Option<Distribution>, StoreError> {
        Ok(self.get_json("dists", base_path.as_str()).await?.map(|(_, d)| d))
    }

    /// Distributions in base-path order after `after`, at most `limit`.
    pub async fn distributions(&self, after: Option<&str>, limit: usize) -> Result<Vec<Distribution>, StoreError> {
        let rows = self
            .t
            .query("dists", Query::prefix("").after(after.map(str::to_owned)).limit(limit))
            .await?;
        rows.iter().map(decode).collect()
    }

    // ---- uploads ---------------------------------------------------------------------------

    pub async fn create_upload(&self, u: &UploadSession) -> Result<(), StoreError> {
        let expires = expiry_in(self.retention.upload);
        self.t
            .put_expiring(
                &format!("upload#{}", u.id),
                "_",
                encode(u)?,
                Cond::Absent,
                Some(expires),
            )
            .await
            .map(|_| ())
    }

    pub async fn upload(&self, id: Uuid) -> Result<Option<UploadSession>, StoreError> {
        Ok(self.get_json(&format!("upload#{id}"), "_").await?.map(|(_, u)| u))
    }

    pub async fn delete_upload(&self, id: Uuid) -> Result<(), StoreError> {
        self.t.delete(&format!("upload#{id}"), "_", Cond::Any).await
    }
}

/// The content key of a membership row's sort key (`<key>#<version_added>`).
fn key_of_member(sk: &str) -> Option<ContentKey> {
    let (key, _) = sk.rsplit_once('#')?;
    ContentKey::decode(key)
}
