//! The life of repository versions after they are committed: which ones are protected, deleting
//! one (squashed into its successor, or reverted when it is the latest: `store/deletion.rs`),
//! and the retention pulpcore applies after every new version (`retain_repo_versions`).
//!
//! Layering: `domain ← ports ← {store, adapters} ← services ← http ← app ← functions/*`;
//! this module is part of `services` and knows `domain`, `ports` and `store` only.

use std::collections::BTreeSet;

use uuid::Uuid;

use super::invalid::{Invalid, ManageError};
use super::manage::{LEASE_TTL, LEASE_WAIT};
use crate::ports::StoreError;
use crate::store::{Deleted, Repository, RepositoryVersion, Store, VersionWriter, WriteError};

/// Versions of one repository: protection, deletion, retention.
pub struct Versions<'a> {
    store: &'a Store,
}

impl<'a> Versions<'a> {
    pub fn new(store: &'a Store) -> Self {
        Versions { store }
    }

    /// The versions a distribution serves, which are not deleted: every version one pins,
    /// and the latest when one serves the repository's latest version.
    pub async fn protected(&self, repo: &Repository) -> Result<BTreeSet<u64>, StoreError> {
        let mut out = BTreeSet::new();
        for d in self.store.distributions(None, usize::MAX).await? {
            if d.repository == Some(repo.id) {
                out.insert(d.version.unwrap_or(repo.latest_version));
            }
        }
        Ok(out)
    }

    /// Deletes version `number`: refused while a distribution serves it; `LastRemaining`
    /// when it is the only version left (which stays).
    pub async fn delete(&self, repo: &Repository, number: u64) -> Result<Deleted, ManageError> {
        self.store.version(repo, number).await?.ok_or(ManageError::NotFound)?;
        if self.protected(repo).await?.contains(&number) {
            return Err(ManageError::Refused(Invalid::VersionProtected));
        }
        let owner = Uuid::new_v4().to_string();
        Ok(self
            .store
            .delete_version(repo.id, number, &owner, LEASE_TTL, LEASE_WAIT)
            .await?)
    }

    /// Deletes the oldest versions beyond the repository's `retain_repo_versions`, as pulpcore
    /// does after each new version and when the setting changes: protected versions are
    /// kept and not counted. Returns the numbers deleted. A version another writer deletes
    /// first, or a repository busy with another write, ends the pass (the next one resumes).
    pub async fn retain(&self, repo: Uuid) -> Result<Vec<u64>, StoreError> {
        let Some(repo) = self.store.repository(repo).await? else {
            return Ok(Vec::new());
        };
        let Some(keep) = repo.retain_repo_versions.filter(|n| *n > 0) else {
            return Ok(Vec::new());
        };
        let protected = self.protected(&repo).await?;
        let doomed: Vec<u64> = self
            .store
            .versions(&repo)
            .await?
            .iter()
            .map(|v| v.number)
            .filter(|n| !protected.contains(n))
            .skip(keep as usize)
            .collect();
        let mut deleted = Vec::new();
        for n in doomed {
            let owner = Uuid::new_v4().to_string();
            match self
                .store
                .delete_version(repo.id, n, &owner, LEASE_TTL, LEASE_WAIT)
                .await
            {
                Ok(Deleted::LastRemaining) => break,
                Ok(_) => deleted.push(n),
                Err(WriteError::Store(e)) => return Err(e),
                Err(_) => break,
            }
        }
        Ok(deleted)
    }

    /// Commits the writer's version, then applies the repository's retention when it has
    /// one. A failed retention is logged, never the committing operation's failure (the next
    /// version retries it).
    pub async fn commit(&self, w: VersionWriter, op: Option<&str>) -> Result<Option<RepositoryVersion>, WriteError> {
        let repo = w.repository().id;
        let retains = w.repository().retain_repo_versions.is_some();
        let v = w.commit(op).await?;
        if v.is_some() && retains {
            self.retain_logged(repo).await;
        }
        Ok(v)
    }

    async fn retain_logged(&self, repo: Uuid) {
        match self.retain(repo).await {
            Ok(d) if !d.is_empty() => {
                tracing::info!(repository = %repo, deleted = ?d, "deleted versions beyond retain_repo_versions")
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(repository = %repo, error = %e, "applying retain_repo_versions failed"),
        }
    }
}
