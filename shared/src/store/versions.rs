//! The version writer: lease, staging, commit (invariants 1 and 2 of DESIGN §4).

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::Utc;
use uuid::Uuid;

use super::{encode, num, Membership, Repository, RepositoryVersion, Store, RECENT_OPS};
use crate::domain::{ContentKey, ContentSummary};
use crate::ports::{Cond, Query, StoreError};

/// Why a write could not go ahead.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("repository not found")]
    NotFound,
    /// Another writer holds the repository and did not let go in time.
    #[error("repository is busy with another write")]
    Busy,
    /// The lease expired and another writer took over; nothing of this write is visible.
    #[error("lost the repository lease")]
    LeaseLost,
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

/// Stages version N+1 of one repository while holding its lease. Call [`commit`] or
/// [`abort`]; a writer dropped without either releases its lease in the background.
///
/// [`commit`]: VersionWriter::commit
/// [`abort`]: VersionWriter::abort
pub struct VersionWriter {
    pub(super) store: Store,
    pub(super) repo: Repository,
    /// The revision of the repository item this writer last wrote (its lease).
    pub(super) rev: u64,
    ttl: Duration,
    added: BTreeSet<ContentKey>,
    removed: BTreeSet<ContentKey>,
    done: bool,
}

impl Store {
    /// Takes the repository's lease for `owner`, waiting up to `wait` for another writer to
    /// finish, then cleans up anything staged for the next version by a writer that never
    /// committed.
    pub async fn begin_write(
        &self,
        repo: Uuid,
        owner: &str,
        ttl: Duration,
        wait: Duration,
    ) -> Result<VersionWriter, WriteError> {
        let deadline = tokio::time::Instant::now() + wait;
        let mut backoff = Duration::from_millis(5);
        let (rev, repo) = loop {
            let (rev, mut r) = self.repository_rev(repo).await?.ok_or(WriteError::NotFound)?;
            let held = r
                .lease
                .as_ref()
                .is_some_and(|l| l.until_ms > now_ms() && l.owner != owner && !self.outlived(l));
            if held {
                if tokio::time::Instant::now() >= deadline {
                    return Err(WriteError::Busy);
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_millis(200));
                continue;
            }
            r.lease = Some(self.lease_for(owner, ttl));
            match self
                .t
                .put(&format!("repo#{}", r.id), "_", encode(&r)?, Cond::Rev(rev))
                .await
            {
                Ok(rev) => break (rev, r),
                Err(StoreError::Conflict(_)) => continue,
                Err(e) => return Err(e.into()),
            }
        };
        let mut w = VersionWriter {
            store: self.clone(),
            repo,
            rev,
            ttl,
            added: BTreeSet::new(),
            removed: BTreeSet::new(),
            done: false,
        };
        w.store.clean_uncommitted(&w.repo).await?;
        if w.repo.deleted_version.is_some() {
            self.finish_deletion(&mut w, None).await?;
        }
        self.upgrade(&mut w).await?;
        Ok(w)
    }

    /// A lease for `owner` until `ttl` from now, naming this process when the store knows it.
    fn lease_for(&self, owner: &str, ttl: Duration) -> super::Lease {
        super::Lease {
            owner: owner.to_owned(),
            until_ms: now_ms() + ttl.as_millis() as i64,
            node: self.node.as_ref().map(|n| n.node.clone()),
            life: self.node.as_ref().map(|n| n.life.clone()),
        }
    }

    /// Whether `lease` was taken by an earlier life of this node's process: its holder is
    /// gone (a node runs one process at a time), so the lease is free whatever its expiry.
    fn outlived(&self, lease: &super::Lease) -> bool {
        match (&self.node, &lease.node, &lease.life) {
            (Some(me), Some(node), Some(life)) => *node == me.node && *life != me.life,
            _ => false,
        }
    }

    /// Undoes whatever was staged for the next version and never committed.
    async fn clean_uncommitted(&self, repo: &Repository) -> Result<(), StoreError> {
        self.undo_changes(repo.id, repo.next_number()).await
    }

    /// Undoes the changes version `number` made to the membership rows, by its change log:
    /// what it added leaves, what it removed comes back. The log goes with them, and the
    /// version's row. Each step can be repeated, so a crash anywhere leaves work the next
    /// call finishes.
    pub(super) async fn undo_changes(&self, repo: Uuid, number: u64) -> Result<(), StoreError> {
        let changes = format!("changes#{repo}#{}", num(number));
        for row in self.t.query(&changes, Query::prefix("")).await? {
            let (op, key) = row.sk.split_at(2);
            let Some(key) = ContentKey::decode(key) else {
                self.t.delete(&changes, &row.sk, Cond::Any).await?;
                continue;
            };
            if op == "a#" {
                self.delete_member(repo, &key, number, Cond::Any).await?;
            } else if let Some((r, mut m)) = self.member_at(repo, &key, number.saturating_sub(1)).await? {
                // the row it removed is the unit's last one before it
                if m.removed == Some(number) {
                    m.removed = None;
                    self.put_member(repo, &key, &m, Cond::Rev(r.rev)).await?;
                }
            }
            self.t.delete(&changes, &row.sk, Cond::Any).await?;
        }
        self.t
            .delete(&format!("repo#{repo}"), &format!("v#{}", num(number)), Cond::Any)
            .await
    }
}

impl VersionWriter {
    pub fn repository(&self) -> &Repository {
        &self.repo
    }

    /// The version this write starts from.
    pub fn base(&self) -> u64 {
        self.repo.latest_version
    }

    fn next(&self) -> u64 {
        self.repo.next_number()
    }

    fn changes(&self) -> String {
        format!("changes#{}#{}", self.repo.id, num(self.next()))
    }

    /// Whether `key` is in the version being built (base plus staged changes).
    pub async fn contains(&self, key: &ContentKey) -> Result<bool, StoreError> {
        if self.added.contains(key) {
            return Ok(true);
        }
        if self.removed.contains(key) {
            return Ok(false);
        }
        self.store.contains(self.repo.id, self.base(), key).await
    }

    /// Adds `key` to the next version; `false` when it is already there.
    pub async fn add(&mut self, key: ContentKey) -> Result<bool, StoreError> {
        if self.added.contains(&key) {
            return Ok(false);
        }
        let enc = key.encode();
        if self.removed.remove(&key) {
            // removed earlier in this write: undo the removal
            let next = self.next();
            if let Some((r, mut m)) = self.store.member_at(self.repo.id, &key, self.base()).await? {
                if m.removed == Some(next) {
                    m.removed = None;
                    self.store.put_member(self.repo.id, &key, &m, Cond::Rev(r.rev)).await?;
                }
            }
            self.store
                .t
                .delete(&self.changes(), &format!("r#{enc}"), Cond::Any)
                .await?;
            return Ok(true);
        }
        if self.store.contains(self.repo.id, self.base(), &key).await? {
            return Ok(false);
        }
        // change log first, so a crash leaves a row the next writer can find and undo
        self.store
            .t
            .put(&self.changes(), &format!("a#{enc}"), b"{}".to_vec(), Cond::Any)
            .await?;
        let m = Membership {
            added: self.next(),
            removed: None,
        };
        self.store.put_member(self.repo.id, &key, &m, Cond::Any).await?;
        // the unit's id, and its index row rewritten after the row that references it (an
        // orphan cleanup running meanwhile relies on this order: see `orphans.rs`)
        self.store.record_content(&key).await?;
        self.added.insert(key);
        Ok(true)
    }

    /// Removes `key` from the next version; `false` when it is not there.
    pub async fn remove(&mut self, key: ContentKey) -> Result<bool, StoreError> {
        if self.removed.contains(&key) {
            return Ok(false);
        }
        let enc = key.encode();
        if self.added.remove(&key) {
            self.store
                .delete_member(self.repo.id, &key, self.next(), Cond::Any)
                .await?;
            self.store
                .t
                .delete(&self.changes(), &format!("a#{enc}"), Cond::Any)
                .await?;
            return Ok(true);
        }
        let base = self.base();
        let Some((row, mut m)) = self
            .store
            .member_at(self.repo.id, &key, base)
            .await?
            .filter(|(_, m)| m.in_version(base))
        else {
            return Ok(false);
        };
        self.store
            .t
            .put(&self.changes(), &format!("r#{enc}"), b"{}".to_vec(), Cond::Any)
            .await?;
        m.removed = Some(self.next());
        self.store
            .put_member(self.repo.id, &key, &m, Cond::Rev(row.rev))
            .await?;
        self.removed.insert(key);
        Ok(true)
    }

    /// Extends the lease (long writes call this well before it expires).
    pub async fn renew(&mut self) -> Result<(), WriteError> {
        let mut r = self.repo.clone();
        r.lease = Some(self.store.lease_for(self.owner(), self.ttl));
        match self
            .store
            .t
            .put(&format!("repo#{}", r.id), "_", encode(&r)?, Cond::Rev(self.rev))
            .await
        {
            Ok(rev) => {
                self.rev = rev;
                self.repo = r;
                Ok(())
            }
            Err(StoreError::Conflict(_)) => Err(WriteError::LeaseLost),
            Err(e) => Err(e.into()),
        }
    }

    /// Writes `after` as the repository item under this writer's lease, which it keeps.
    pub(super) async fn save(&mut self, after: Repository) -> Result<(), WriteError> {
        match self
            .store
            .t
            .put(&format!("repo#{}", after.id), "_", encode(&after)?, Cond::Rev(self.rev))
            .await
        {
            Ok(rev) => {
                self.rev = rev;
                self.repo = after;
                Ok(())
            }
            Err(StoreError::Conflict(_)) => Err(WriteError::LeaseLost),
            Err(e) => Err(e.into()),
        }
    }

    fn owner(&self) -> &str {
        self.repo.lease.as_ref().map(|l| l.owner.as_str()).unwrap_or("")
    }

    /// Makes the staged changes visible as version N+1 with one conditional write, and lets
    /// go of the lease. Returns `None` (and creates no version) when nothing changed.
    /// `op` is remembered on the repository so a redelivered job can tell it is done.
    pub async fn commit(mut self, op: Option<&str>) -> Result<Option<RepositoryVersion>, WriteError> {
        self.done = true;
        let mut repo = self.repo.clone();
        repo.lease = None;
        let version = if self.added.is_empty() && self.removed.is_empty() {
            None
        } else {
            let base = self
                .store
                .version(&self.repo, self.base())
                .await?
                .map(|v| v.content_summary)
                .unwrap_or_default();
            let v = RepositoryVersion {
                repository: repo.id,
                number: self.next(),
                base_version: Some(self.base()),
                content_summary: ContentSummary::derive(&base, &self.added, &self.removed),
                created: Utc::now(),
            };
            self.store
                .t
                .put(
                    &format!("repo#{}", repo.id),
                    &format!("v#{}", num(v.number)),
                    encode(&v)?,
                    Cond::Any,
                )
                .await?;
            repo.latest_version = v.number;
            repo.updated = v.created;
            Some(v)
        };
        if let Some(op) = op {
            repo.recent_ops.push_back(op.to_owned());
            while repo.recent_ops.len() > RECENT_OPS {
                repo.recent_ops.pop_front();
            }
        }
        match self
            .store
            .t
            .put(&format!("repo#{}", repo.id), "_", encode(&repo)?, Cond::Rev(self.rev))
            .await
        {
            Ok(_) => Ok(version),
            Err(StoreError::Conflict(_)) => Err(WriteError::LeaseLost),
            Err(e) => Err(e.into()),
        }
    }

    /// Drops the staged changes and the lease.
    pub async fn abort(mut self) -> Result<(), WriteError> {
        self.done = true;
        release(&self.store, &self.repo, self.rev).await
    }
}

async fn release(store: &Store, repo: &Repository, rev: u64) -> Result<(), WriteError> {
    store.clean_uncommitted(repo).await?;
    let mut r = repo.clone();
    r.lease = None;
    match store
        .t
        .put(&format!("repo#{}", r.id), "_", encode(&r)?, Cond::Rev(rev))
        .await
    {
        Ok(_) | Err(StoreError::Conflict(_)) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

impl Drop for VersionWriter {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            let (store, repo, rev) = (self.store.clone(), self.repo.clone(), self.rev);
            handle.spawn(async move {
                if let Err(e) = release(&store, &repo, rev).await {
                    tracing::warn!(repository = %repo.id, error = %e, "releasing an abandoned write failed");
                }
            });
        }
    }
}
