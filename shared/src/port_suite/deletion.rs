//! Deleting repository versions over the table port: a deleted version is squashed into its
//! successor or, when it is the latest, reverted; every remaining version keeps exactly its
//! content, and its change log and summary describe it against the version before it.

use std::collections::BTreeSet;
use std::time::Duration;

use uuid::Uuid;

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::adapters::memory::MemoryTable;
use crate::domain::{ContentKey, ContentSummary, ContentType};
use crate::ports::{Cond, Query, Row, StoreError, Table, Write};
use crate::store::{Deleted, Repository, RepositoryKind, Store};

use super::{blob, tag, Adapter, TTL};

/// Every unit of version `n`.
pub async fn content_of(store: &Store, id: Uuid, n: u64) -> BTreeSet<ContentKey> {
    let mut out = BTreeSet::new();
    let r = store.repository(id).await.unwrap().unwrap();
    for ty in [
        ContentType::Blob,
        ContentType::Manifest,
        ContentType::Tag,
        ContentType::Signature,
    ] {
        out.extend(store.content(&r, n, ty, None, usize::MAX).await.unwrap());
    }
    out
}

/// Versions 1 to 5 of a new repository:
/// 1 adds blobs 1–3 and `latest`→1; 2 removes blob 1 and moves `latest` to 2; 3 adds blob 4
/// and removes blob 2; 4 adds blob 1 and blob 2 back; 5 removes blob 4 and adds blob 5.
async fn history(a: &impl Adapter) -> (Store, Uuid) {
    let store = Store::new(a.table().await);
    let id = history_in(&store).await;
    (store, id)
}

async fn history_in(store: &Store) -> Uuid {
    let repo = Repository::new("suite/deleting", RepositoryKind::Mirror);
    store.create_repository(&repo).await.unwrap();
    let steps: [(&[_], &[_]); 5] = [
        (&[blob(1), blob(2), blob(3), tag("latest", 1)], &[]),
        (&[tag("latest", 2)], &[blob(1), tag("latest", 1)]),
        (&[blob(4)], &[blob(2)]),
        (&[blob(1), blob(2)], &[]),
        (&[blob(5)], &[blob(4)]),
    ];
    for (n, (add, remove)) in steps.iter().enumerate() {
        let mut w = store
            .begin_write(repo.id, &format!("history-{n}"), TTL, Duration::ZERO)
            .await
            .unwrap();
        for k in *remove {
            assert!(w.remove(k.clone()).await.unwrap());
        }
        for k in *add {
            assert!(w.add(k.clone()).await.unwrap());
        }
        w.commit(None).await.unwrap().unwrap();
    }
    repo.id
}

/// The content of every committed version, oldest first.
async fn snapshot(store: &Store, id: Uuid) -> Vec<(u64, BTreeSet<ContentKey>)> {
    let repo = store.repository(id).await.unwrap().unwrap();
    let mut out = Vec::new();
    for v in store.versions(&repo).await.unwrap().iter().rev() {
        out.push((v.number, content_of(store, id, v.number).await));
    }
    out
}

fn counts<'a>(keys: impl IntoIterator<Item = &'a ContentKey>) -> ContentSummary {
    ContentSummary::derive(&ContentSummary::default(), keys, [])
}

/// Every remaining version holds what `before` recorded for its number, and its change log,
/// base version and summary describe it against the remaining version before it.
async fn check_versions(store: &Store, id: Uuid, before: &[(u64, BTreeSet<ContentKey>)]) {
    let repo = store.repository(id).await.unwrap().unwrap();
    assert_eq!(repo.deleted_version, None, "the deletion was finished");
    let mut prev: Option<(u64, BTreeSet<ContentKey>)> = None;
    for v in store.versions(&repo).await.unwrap().iter().rev() {
        let now = content_of(store, id, v.number).await;
        let was = &before
            .iter()
            .find(|(n, _)| *n == v.number)
            .expect("a version that existed")
            .1;
        assert_eq!(&now, was, "version {} keeps its content", v.number);
        let empty = BTreeSet::new();
        let p = prev.as_ref().map(|(_, c)| c).unwrap_or(&empty);
        let added: BTreeSet<_> = store.changes(id, v.number, true).await.unwrap().into_iter().collect();
        let removed: BTreeSet<_> = store.changes(id, v.number, false).await.unwrap().into_iter().collect();
        assert_eq!(
            added,
            now.difference(p).cloned().collect(),
            "what version {} added",
            v.number
        );
        assert_eq!(
            removed,
            p.difference(&now).cloned().collect(),
            "what version {} removed",
            v.number
        );
        assert_eq!(
            v.base_version,
            prev.as_ref().map(|(n, _)| *n),
            "base of version {}",
            v.number
        );
        let want = ContentSummary::derive(&counts(p), &added, &removed);
        assert_eq!(v.content_summary, want, "summary of version {}", v.number);
        prev = Some((v.number, now));
    }
}

fn slow<A: Adapter>(_: &A) -> u32 {
    A::SLOW
}

async fn delete(store: &Store, id: Uuid, n: u64) -> Deleted {
    store
        .delete_version(id, n, &format!("delete-{n}"), TTL, Duration::ZERO)
        .await
        .unwrap()
}

/// Middle versions, version 0 and the oldest remaining one are squashed into their successors:
/// every remaining version keeps exactly its content and describes it against its new base.
pub async fn squashing_keeps_every_remaining_version(a: &impl Adapter) {
    let (store, id) = history(a).await;
    let before = snapshot(&store, id).await;
    // 3 removed blob 2, which 4 brings back; 4 added blob 1, which 2 removed
    assert_eq!(delete(&store, id, 3).await, Deleted::Squashed { into: 4 });
    check_versions(&store, id, &before).await;
    assert_eq!(delete(&store, id, 0).await, Deleted::Squashed { into: 1 });
    check_versions(&store, id, &before).await;
    assert_eq!(delete(&store, id, 1).await, Deleted::Squashed { into: 2 });
    check_versions(&store, id, &before).await;
    let repo = store.repository(id).await.unwrap().unwrap();
    let left: Vec<u64> = store.versions(&repo).await.unwrap().iter().map(|v| v.number).collect();
    assert_eq!(left, [5, 4, 2]);
    assert!(store.version(&repo, 3).await.unwrap().is_none());
    assert!(matches!(
        store.delete_version(id, 3, "again", TTL, Duration::ZERO).await,
        Err(crate::store::WriteError::NotFound)
    ));
}

/// Deleting the latest version undoes it: the version before is the latest again, with its
/// content, and the next version gets a new number whose content is that one's plus the change.
pub async fn deleting_the_latest_reverts_it(a: &impl Adapter) {
    let (store, id) = history(a).await;
    let before = snapshot(&store, id).await;
    assert_eq!(delete(&store, id, 5).await, Deleted::Reverted { latest: 4 });
    check_versions(&store, id, &before).await;
    let repo = store.repository(id).await.unwrap().unwrap();
    assert_eq!(repo.latest_version, 4);
    assert!(
        content_of(&store, id, 4).await.contains(&blob(4)),
        "what 5 removed is back"
    );
    assert!(
        !content_of(&store, id, 4).await.contains(&blob(5)),
        "what 5 added is gone"
    );
    let mut w = store.begin_write(id, "after", TTL, Duration::ZERO).await.unwrap();
    assert!(w.add(blob(6)).await.unwrap());
    let v = w.commit(None).await.unwrap().unwrap();
    assert_eq!(v.number, 6, "a deleted number is not given out again");
    let mut want = content_of(&store, id, 4).await;
    want.insert(blob(6));
    assert_eq!(content_of(&store, id, 6).await, want);
    assert_eq!(store.changes(id, 6, true).await.unwrap(), vec![blob(6)]);
    // the latest again, then everything down to one version
    assert_eq!(delete(&store, id, 6).await, Deleted::Reverted { latest: 4 });
    check_versions(&store, id, &before).await;
    for n in [0, 1, 2, 3] {
        assert!(matches!(delete(&store, id, n).await, Deleted::Squashed { into } if into == n + 1));
    }
    check_versions(&store, id, &before).await;
    assert_eq!(delete(&store, id, 4).await, Deleted::LastRemaining);
    let repo = store.repository(id).await.unwrap().unwrap();
    assert_eq!(repo.latest_version, 4);
    assert_eq!(content_of(&store, id, 4).await, before[4].1);
    assert!(repo.lease.is_none(), "the lease was let go");
}

/// Deletions of several versions (one of them twice) and a writer, all at once: each
/// deletion happens once, the writer's version holds the latest content plus its unit, and
/// every remaining version keeps its content.
pub async fn racing_deletions_and_a_writer(a: &impl Adapter) {
    let (store, id) = history(a).await;
    let mut before = snapshot(&store, id).await;
    let mut want6 = before[5].1.clone();
    want6.insert(blob(9));
    before.push((6, want6));
    let wait = Duration::from_secs(10) * slow(a);
    let mut deletions = Vec::new();
    for n in [1, 2, 3, 3, 0] {
        let store = store.clone();
        deletions.push(tokio::spawn(async move {
            store
                .delete_version(id, n, &format!("racer-{}", Uuid::new_v4()), TTL, wait)
                .await
        }));
    }
    let writer = {
        let store = store.clone();
        tokio::spawn(async move {
            let mut w = store.begin_write(id, "writer", TTL, wait).await.unwrap();
            w.add(blob(9)).await.unwrap();
            w.commit(None).await.unwrap().unwrap().number
        })
    };
    let mut deleted = 0;
    let mut not_found = 0;
    for d in deletions {
        match d.await.unwrap() {
            Ok(Deleted::Squashed { .. }) => deleted += 1,
            Err(crate::store::WriteError::NotFound) => not_found += 1,
            other => panic!("unexpected: {other:?}"),
        }
    }
    assert_eq!((deleted, not_found), (4, 1));
    assert_eq!(writer.await.unwrap(), 6);
    check_versions(&store, id, &before).await;
    let repo = store.repository(id).await.unwrap().unwrap();
    let left: Vec<u64> = store.versions(&repo).await.unwrap().iter().map(|v| v.number).collect();
    assert_eq!(left, [6, 5, 4]);
}

/// A table that fails every write after the first `left`: a process that dies there.
struct Dying {
    inner: std::sync::Arc<dyn Table>,
    left: AtomicUsize,
}

impl Dying {
    fn write(&self) -> Result<(), StoreError> {
        match self
            .left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        {
            Ok(_) => Ok(()),
            Err(_) => Err(StoreError::other_msg("the process died")),
        }
    }
}

#[async_trait::async_trait]
impl Table for Dying {
    async fn get(&self, pk: &str, sk: &str) -> Result<Option<Row>, StoreError> {
        self.inner.get(pk, sk).await
    }
    async fn put_expiring(
        &self,
        pk: &str,
        sk: &str,
        value: Vec<u8>,
        cond: Cond,
        expires_at: Option<u64>,
    ) -> Result<u64, StoreError> {
        self.write()?;
        self.inner.put_expiring(pk, sk, value, cond, expires_at).await
    }
    async fn delete(&self, pk: &str, sk: &str, cond: Cond) -> Result<(), StoreError> {
        self.write()?;
        self.inner.delete(pk, sk, cond).await
    }
    async fn query(&self, pk: &str, q: Query) -> Result<Vec<Row>, StoreError> {
        self.inner.query(pk, q).await
    }
    async fn transact(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        self.write()?;
        self.inner.transact(writes).await
    }
}

/// A deletion cut short after any number of writes leaves every remaining version exact, and
/// the next writer to take the lease finishes it: for the latest, a middle version and 0.
#[tokio::test]
async fn a_deletion_cut_short_anywhere_is_finished_by_the_next_writer() {
    for doomed in [5, 3, 0] {
        for writes in 0.. {
            let table: std::sync::Arc<dyn Table> = std::sync::Arc::new(MemoryTable::new());
            let store = Store::new(table.clone());
            let id = history_in(&store).await;
            let before = snapshot(&store, id).await;
            let dying = Store::new(std::sync::Arc::new(Dying {
                inner: table,
                left: AtomicUsize::new(writes),
            }));
            let done = dying
                .delete_version(id, doomed, "deleter", TTL, Duration::ZERO)
                .await
                .is_ok();
            // the next writer (the same node, restarted) takes the lease and finishes
            let w = store.begin_write(id, "deleter", TTL, Duration::ZERO).await.unwrap();
            w.abort().await.unwrap();
            check_versions(&store, id, &before).await;
            let repo = store.repository(id).await.unwrap().unwrap();
            let gone = store.version(&repo, doomed).await.unwrap().is_none();
            if done {
                assert!(gone, "version {doomed} deleted after {writes} writes");
                break;
            }
            assert!(writes < 200, "the deletion of {doomed} never finished");
        }
    }
}
