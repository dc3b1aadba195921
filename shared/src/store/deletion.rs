//! Deleting a repository version, as pulpcore deletes one (`RepositoryVersion.delete`):
//!
//! - a version with a successor is *squashed* into it: the successor keeps exactly its content,
//!   and its change log and content summary are recomputed against the version before the
//!   deleted one (or against nothing when the deleted one was the oldest left);
//! - the latest version is *reverted*: what it added leaves the repository, what it removed
//!   comes back, and the version before it becomes the latest. Its number is never given out
//!   again (`Repository::next_version`), so whatever was read of it stays true of that number;
//! - the last remaining version is not deleted.
//!
//! One transaction makes a deletion visible: the repository item (its latest version and a
//! note of the deleted version), the deleted version's item and the successor's new summary.
//! The membership rows and change logs are tidied after it; the note stays on the repository
//! until that is done, and the next writer to take the lease finishes it after a crash.
//! Nothing half-done is visible: membership rows answer "is X in version N" the same for every
//! remaining version before, during and after the tidying.
//!
//! The cost is the size of the two change logs involved, never the history before them.

use std::collections::BTreeSet;
use std::time::Duration;

use uuid::Uuid;

use super::{decode, encode, num, Membership, RepositoryVersion, Store, VersionWriter, WriteError};
use crate::domain::{ContentKey, ContentSummary};
use crate::ports::{Cond, Query, StoreError, Write};

/// A squashed version's neighbours and what the next one changes against the previous one
/// once it is gone.
pub(super) type Squashed = (
    Option<RepositoryVersion>,
    RepositoryVersion,
    Vec<ContentKey>,
    Vec<ContentKey>,
);

/// What a version deletion came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deleted {
    /// Folded into the next version, which kept its content.
    Squashed { into: u64 },
    /// It was the latest: its changes were undone and `latest` is the latest now.
    Reverted { latest: u64 },
    /// It is the repository's only version, which is never deleted.
    LastRemaining,
}

impl Store {
    /// Deletes version `number` of `repo` under the repository's lease (taken for `owner`,
    /// waiting up to `wait`). `NotFound` when there is no such version.
    pub async fn delete_version(
        &self,
        repo: Uuid,
        number: u64,
        owner: &str,
        ttl: Duration,
        wait: Duration,
    ) -> Result<Deleted, WriteError> {
        let mut w = self.begin_write(repo, owner, ttl, wait).await?;
        let result = self.delete_under_lease(&mut w, number).await;
        match result {
            Ok(d) => {
                w.commit(None).await?;
                Ok(d)
            }
            Err(e) => {
                // the lease goes either way; a deletion that was made visible is finished by
                // the next writer
                let _ = w.abort().await;
                Err(e)
            }
        }
    }

    async fn delete_under_lease(&self, w: &mut VersionWriter, number: u64) -> Result<Deleted, WriteError> {
        let repo = w.repo.clone();
        let Some(doomed) = self.version(&repo, number).await? else {
            return Err(WriteError::NotFound);
        };
        let prev = self.neighbour(&repo, number, true).await?;
        let next = self.neighbour(&repo, number, false).await?;
        let mut after = repo.clone();
        after.deleted_version = Some(number);
        after.next_version = repo.next_number();
        if let Some(span) = after.versions.as_mut() {
            span.delete(number, next.as_ref().map(|v| v.number));
        }
        let mut writes = vec![Write::delete(
            format!("repo#{}", repo.id),
            format!("v#{}", num(number)),
            Cond::Any,
        )];
        let mut log = None;
        let outcome = match (&prev, &next) {
            (None, None) => return Ok(Deleted::LastRemaining),
            (_, Some(next)) => {
                let (added, removed) = self.squashed_log(repo.id, &doomed, prev.as_ref(), next).await?;
                log = Some((prev.clone(), next.clone(), added.clone(), removed.clone()));
                let base = prev.as_ref().map(|p| p.content_summary.clone()).unwrap_or_default();
                let mut v = next.clone();
                v.base_version = prev.as_ref().map(|p| p.number);
                v.content_summary = ContentSummary::derive(&base, &added, &removed);
                writes.push(Write::put(
                    format!("repo#{}", repo.id),
                    format!("v#{}", num(v.number)),
                    encode(&v)?,
                    Cond::Any,
                ));
                Deleted::Squashed { into: next.number }
            }
            (Some(prev), None) => {
                after.latest_version = prev.number;
                Deleted::Reverted { latest: prev.number }
            }
        };
        writes.push(Write::put(
            format!("repo#{}", repo.id),
            "_",
            encode(&after)?,
            Cond::Rev(w.rev),
        ));
        match self.t.transact(writes).await {
            Ok(()) => {}
            Err(StoreError::Conflict(_)) => return Err(WriteError::LeaseLost),
            Err(e) => return Err(e.into()),
        }
        let (rev, now) = self.repository_rev(repo.id).await?.ok_or(WriteError::NotFound)?;
        if now.lease != repo.lease {
            return Err(WriteError::LeaseLost);
        }
        w.rev = rev;
        w.repo = now;
        self.finish_deletion(w, log).await?;
        Ok(outcome)
    }

    /// The version just below (`below`) or above `number`, among the committed ones.
    async fn neighbour(
        &self,
        repo: &super::Repository,
        number: u64,
        below: bool,
    ) -> Result<Option<RepositoryVersion>, StoreError> {
        let mut q = Query::prefix("v#").after(Some(format!("v#{}", num(number)))).limit(1);
        if below {
            q = q.reverse();
        }
        let rows = self.t.query(&format!("repo#{}", repo.id), q).await?;
        match rows.first() {
            Some(row) => {
                let v: RepositoryVersion = decode(row)?;
                Ok((v.number <= repo.latest_version).then_some(v))
            }
            None => Ok(None),
        }
    }

    /// What `next` changes against `prev` (nothing: the empty repository) once `doomed`, the
    /// version between them, is gone: judged for every unit either change log names.
    async fn squashed_log(
        &self,
        repo: Uuid,
        doomed: &RepositoryVersion,
        prev: Option<&RepositoryVersion>,
        next: &RepositoryVersion,
    ) -> Result<(Vec<ContentKey>, Vec<ContentKey>), StoreError> {
        let mut touched = BTreeSet::new();
        for n in [doomed.number, next.number] {
            touched.extend(self.changes(repo, n, true).await?);
            touched.extend(self.changes(repo, n, false).await?);
        }
        let (mut added, mut removed) = (Vec::new(), Vec::new());
        for k in touched {
            let before = match prev {
                Some(p) => self.contains(repo, p.number, &k).await?,
                None => false,
            };
            let after = self.contains(repo, next.number, &k).await?;
            match (before, after) {
                (false, true) => added.push(k),
                (true, false) => removed.push(k),
                _ => {}
            }
        }
        Ok((added, removed))
    }

    /// Tidies the rows of the deleted version the repository notes, then clears the note.
    /// Runs under the writer's lease, right after the deletion (with the squashed change log
    /// it computed) or after a crash.
    pub(super) async fn finish_deletion(&self, w: &mut VersionWriter, log: Option<Squashed>) -> Result<(), WriteError> {
        let repo = w.repo.clone();
        let Some(number) = repo.deleted_version else {
            return Ok(());
        };
        if number > repo.latest_version {
            // the latest was deleted: undo its changes
            self.undo_changes(repo.id, number).await?;
        } else {
            self.fold_rows(&repo, number, log).await?;
        }
        let mut after = repo.clone();
        after.deleted_version = None;
        w.save(after).await
    }

    /// The rows of version `number`, squashed into the next version: the next version's change
    /// log is rewritten against the version before, the rows only the deleted version held
    /// go, and the deleted version's change log last (it names what is still to be judged).
    async fn fold_rows(&self, repo: &super::Repository, number: u64, log: Option<Squashed>) -> Result<(), StoreError> {
        let (prev, next, added, removed) = match log {
            Some(log) => log,
            None => {
                let prev = self.neighbour(repo, number, true).await?;
                let Some(next) = self.neighbour(repo, number, false).await? else {
                    return Ok(());
                };
                let doomed = RepositoryVersion { number, ..next.clone() };
                let (added, removed) = self.squashed_log(repo.id, &doomed, prev.as_ref(), &next).await?;
                (prev, next, added, removed)
            }
        };
        let next_log = format!("changes#{}#{}", repo.id, num(next.number));
        let want: BTreeSet<String> = added
            .iter()
            .map(|k| format!("a#{}", k.encode()))
            .chain(removed.iter().map(|k| format!("r#{}", k.encode())))
            .collect();
        for row in self.t.query(&next_log, Query::prefix("")).await? {
            if !want.contains(&row.sk) {
                self.t.delete(&next_log, &row.sk, Cond::Any).await?;
            }
        }
        for sk in &want {
            self.t.put(&next_log, sk, b"{}".to_vec(), Cond::Any).await?;
        }
        // a row whose whole life fell between `prev` and `next` is in no version now
        let members = format!("members#{}", repo.id);
        let log = format!("changes#{}#{}", repo.id, num(number));
        let born_after = prev.as_ref().map(|p| p.number);
        for row in self.t.query(&log, Query::prefix("")).await? {
            let enc = &row.sk[2..];
            if let Some(key) = ContentKey::decode(enc) {
                // the rows born after `prev`: those that started in a version since deleted
                let q = Query::prefix(format!("{enc}#")).after(born_after.map(|p| format!("{enc}#{}", num(p))));
                for r in self.t.query(&members, q).await? {
                    let m: Membership = decode(&r)?;
                    if m.added > next.number {
                        break;
                    }
                    if m.removed.is_some_and(|x| x <= next.number) {
                        self.delete_member(repo.id, &key, m.added, Cond::Rev(r.rev)).await?;
                    }
                }
            }
            self.t.delete(&log, &row.sk, Cond::Any).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::store::lists::tests::counting;
    use crate::store::{Repository, RepositoryKind};

    fn blob(i: u64) -> ContentKey {
        ContentKey::Blob(crate::domain::Digest::sha256_of(&i.to_le_bytes()))
    }

    /// Reads a deletion takes after `history` versions, each adding two blobs and removing one.
    async fn reads_to_delete(history: u64, which: impl Fn(u64) -> u64) -> usize {
        let table = counting();
        let store = Store::new(table.clone());
        let repo = Repository::new("r", RepositoryKind::Mirror);
        store.create_repository(&repo).await.unwrap();
        let ttl = Duration::from_secs(60);
        for n in 1..=history {
            let mut w = store.begin_write(repo.id, "w", ttl, Duration::ZERO).await.unwrap();
            w.add(blob(2 * n)).await.unwrap();
            w.add(blob(2 * n + 1)).await.unwrap();
            if n > 1 {
                w.remove(blob(2 * n - 2)).await.unwrap();
            }
            w.commit(None).await.unwrap().unwrap();
        }
        let before = table.reads();
        store
            .delete_version(repo.id, which(history), "d", ttl, Duration::ZERO)
            .await
            .unwrap();
        table.reads() - before
    }

    /// Deleting a version reads its change log and its successor's, never the history before
    /// them: the same reads after 10 versions and after 60.
    #[tokio::test]
    async fn a_deletion_costs_the_same_whatever_the_history() {
        for (name, which) in [
            ("a middle version", (|h| h / 2) as fn(u64) -> u64),
            ("version 0", |_| 0),
            ("the latest", |h| h),
        ] {
            let short = reads_to_delete(10, which).await;
            let long = reads_to_delete(60, which).await;
            assert_eq!(short, long, "{name}: {short} reads after 10 versions, {long} after 60");
            println!("{name}: {short} reads");
            assert!(short <= 30, "{name}: {short} reads");
        }
    }
}
