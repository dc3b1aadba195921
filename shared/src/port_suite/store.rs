//! The store's versions over the table port: unique repository names, atomic version commit
//! (invariant 1), serialized writers under a lease (invariant 2), listing and tag pages.
//!
//! Each case starts on a repository `suite/repo`; the later ones first replay the history the
//! earlier ones check ([`history`]), so they start from the same versions.

use std::time::Duration;

use crate::domain::{ContentType, Digest, Tag};
use crate::ports::{Cond, StoreError};
use crate::store::{Repository, RepositoryKind, Store, WriteError};

use super::{blob, tag, Adapter, TTL};

/// `n` milliseconds, `A::SLOW` times longer.
fn ms<A: Adapter>(n: u64) -> Duration {
    Duration::from_millis(n) * A::SLOW
}

async fn repo(a: &impl Adapter) -> (Store, uuid::Uuid) {
    let store = Store::new(a.table().await);
    let repo = Repository::new("suite/repo", RepositoryKind::Push);
    store.create_repository(&repo).await.unwrap();
    (store, repo.id)
}

/// Versions 1 to `upto` (at most 3) as the cases below make them: version 1 adds three blobs
/// and the tag `latest`, version 2 moves the tag and removes blob 1, version 3 adds blob 60.
async fn history(store: &Store, id: uuid::Uuid, upto: u64) {
    let steps: [(&[_], &[_]); 3] = [
        (&[blob(0), blob(1), blob(2), tag("latest", 1)], &[]),
        (&[tag("latest", 2)], &[tag("latest", 1), blob(1)]),
        (&[blob(60)], &[]),
    ];
    for (n, (add, remove)) in steps.iter().enumerate().take(upto as usize) {
        let mut w = store
            .begin_write(id, &format!("history-{n}"), TTL, Duration::ZERO)
            .await
            .unwrap();
        for k in *remove {
            w.remove(k.clone()).await.unwrap();
        }
        for k in *add {
            w.add(k.clone()).await.unwrap();
        }
        w.commit(None).await.unwrap().unwrap();
    }
}

/// A repository name is taken once; a name claimed by a create that crashed before writing
/// its item is taken over; version 0 exists from the start.
pub async fn names_are_unique(a: &impl Adapter) {
    let (store, id) = repo(a).await;
    assert!(matches!(
        store
            .create_repository(&Repository::new("suite/repo", RepositoryKind::Push))
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(store.repository_by_name("suite/repo").await.unwrap().unwrap().id, id);
    // a name claimed by a create that crashed before writing its item is taken over
    let ghost = uuid::Uuid::new_v4();
    store
        .table()
        .put("repo-names", "ghost", serde_json::to_vec(&ghost).unwrap(), Cond::Absent)
        .await
        .unwrap();
    store
        .create_repository(&Repository::new("ghost", RepositoryKind::Push))
        .await
        .unwrap();
    assert!(store.repository_by_name("ghost").await.unwrap().is_some());
    let repo = store.repository(id).await.unwrap().unwrap();
    assert_eq!(store.versions(&repo).await.unwrap().len(), 1, "version 0 exists");
}

/// Version 1 (three blobs and a tag), then version 2 (the tag moved, a blob removed): nothing
/// staged is visible before the commit, old versions are immutable, and a write that changes
/// nothing makes no version.
pub async fn versions_commit_atomically(a: &impl Adapter) {
    let (store, id) = repo(a).await;
    let mut w = store.begin_write(id, "w1", TTL, Duration::ZERO).await.unwrap();
    for i in 0..3 {
        assert!(w.add(blob(i)).await.unwrap());
    }
    assert!(!w.add(blob(0)).await.unwrap(), "adding twice is a no-op");
    w.add(tag("latest", 1)).await.unwrap();
    // invariant 1: nothing staged is visible before the commit (readers read the latest
    // committed version)
    let latest = store.repository(id).await.unwrap().unwrap().latest_version;
    assert_eq!(latest, 0);
    assert!(!store.contains(id, latest, &blob(0)).await.unwrap());
    assert!(store
        .version(&store.repository(id).await.unwrap().unwrap(), 1)
        .await
        .unwrap()
        .is_none());
    let v1 = w.commit(Some("op-1")).await.unwrap().unwrap();
    assert_eq!(v1.number, 1);
    assert_eq!(v1.content_summary.added[&ContentType::Blob], 3);
    assert_eq!(v1.content_summary.present[&ContentType::Tag], 1);
    let repo = store.repository(id).await.unwrap().unwrap();
    assert_eq!(repo.latest_version, 1);
    assert!(repo.lease.is_none());
    assert!(repo.recent_ops.contains(&"op-1".to_string()));

    // version 2: move the tag, remove a blob
    let mut w = store.begin_write(id, "w2", TTL, Duration::ZERO).await.unwrap();
    assert!(w.remove(tag("latest", 1)).await.unwrap());
    w.add(tag("latest", 2)).await.unwrap();
    assert!(w.remove(blob(1)).await.unwrap());
    assert!(!w.remove(blob(99)).await.unwrap());
    // readers of version 1 still see everything of version 1 while version 2 is staged
    assert!(store.contains(id, 1, &blob(1)).await.unwrap());
    let r = store.repository(id).await.unwrap().unwrap();
    assert_eq!(
        store.tag(&r, 1, &Tag::parse("latest").unwrap()).await.unwrap(),
        Some(Digest::sha256_of(&1u32.to_le_bytes()))
    );
    let v2 = w.commit(None).await.unwrap().unwrap();
    assert_eq!(v2.content_summary.removed[&ContentType::Blob], 1);
    assert_eq!(v2.content_summary.present[&ContentType::Blob], 2);
    assert_eq!(v2.content_summary.present[&ContentType::Tag], 1);
    assert!(
        store.contains(id, 1, &blob(1)).await.unwrap(),
        "old versions are immutable"
    );
    assert!(!store.contains(id, 2, &blob(1)).await.unwrap());
    let r = store.repository(id).await.unwrap().unwrap();
    assert_eq!(
        store.tag(&r, 2, &Tag::parse("latest").unwrap()).await.unwrap(),
        Some(Digest::sha256_of(&2u32.to_le_bytes()))
    );
    assert_eq!(store.changes(id, 2, true).await.unwrap(), vec![tag("latest", 2)]);
    assert_eq!(store.changes(id, 2, false).await.unwrap().len(), 2);
    assert_eq!(
        store.content(&r, 2, ContentType::Blob, None, 10).await.unwrap().len(),
        2
    );
    assert_eq!(store.content(&r, 1, ContentType::Blob, None, 2).await.unwrap().len(), 2);

    // a write that changes nothing makes no version
    let mut w = store.begin_write(id, "w3", TTL, Duration::ZERO).await.unwrap();
    w.add(blob(0)).await.unwrap();
    assert!(w.commit(None).await.unwrap().is_none());
    assert_eq!(store.repository(id).await.unwrap().unwrap().latest_version, 2);
}

/// Invariant 1 after a crash: a writer that staged and vanished leaves nothing visible, its
/// lease holds off other writers until it expires (invariant 2), and the next writer cleans up
/// and commits its own version 3.
pub async fn a_crashed_writer_leaves_nothing<A: Adapter>(a: &A) {
    let (store, id) = repo(a).await;
    history(&store, id, 2).await;
    let mut w = store
        .begin_write(id, "crashed", ms::<A>(50), Duration::ZERO)
        .await
        .unwrap();
    w.add(blob(50)).await.unwrap();
    w.remove(blob(0)).await.unwrap();
    std::mem::forget(w); // no commit, no abort, no release: a crash
    assert_eq!(store.repository(id).await.unwrap().unwrap().latest_version, 2);
    assert!(store.contains(id, 2, &blob(0)).await.unwrap());
    assert!(!store.contains(id, 2, &blob(50)).await.unwrap());
    // invariant 2: the lease holds off other writers until it expires
    assert!(matches!(
        store.begin_write(id, "w4", TTL, Duration::ZERO).await,
        Err(WriteError::Busy)
    ));
    tokio::time::sleep(ms::<A>(80)).await;
    let mut w = store.begin_write(id, "w4", TTL, Duration::ZERO).await.unwrap();
    w.add(blob(60)).await.unwrap();
    let v3 = w.commit(None).await.unwrap().unwrap();
    assert_eq!(v3.number, 3);
    assert_eq!(v3.content_summary.added.get(&ContentType::Blob), Some(&1));
    assert!(
        v3.content_summary.removed.is_empty(),
        "the crashed writer's removal was undone"
    );
    assert!(!store.contains(id, 3, &blob(50)).await.unwrap());
    assert!(store.contains(id, 3, &blob(0)).await.unwrap());
}

/// A writer whose lease was taken over cannot commit.
pub async fn a_writer_that_lost_its_lease_cannot_commit<A: Adapter>(a: &A) {
    let (store, id) = repo(a).await;
    history(&store, id, 3).await;
    let mut slow = store
        .begin_write(id, "slow", ms::<A>(30), Duration::ZERO)
        .await
        .unwrap();
    slow.add(blob(70)).await.unwrap();
    tokio::time::sleep(ms::<A>(50)).await;
    let fast = store.begin_write(id, "fast", TTL, Duration::ZERO).await.unwrap();
    assert!(matches!(slow.commit(None).await, Err(WriteError::LeaseLost)));
    fast.abort().await.unwrap();
    assert!(!store.contains(id, 4, &blob(70)).await.unwrap());
    assert_eq!(store.repository(id).await.unwrap().unwrap().latest_version, 3);
}

/// Serialized writers: concurrent writers each wait their turn; every one commits; versions
/// are listed newest first, and only committed ones.
pub async fn writers_take_turns(a: &impl Adapter) {
    let (store, id) = repo(a).await;
    history(&store, id, 3).await;
    let mut tasks = Vec::new();
    for i in 0..6u32 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut w = store
                .begin_write(id, &format!("c{i}"), TTL, Duration::from_secs(20))
                .await
                .unwrap();
            w.add(blob(100 + i)).await.unwrap();
            tokio::task::yield_now().await;
            w.commit(None).await.unwrap().unwrap().number
        }));
    }
    let mut numbers = Vec::new();
    for task in tasks {
        numbers.push(task.await.unwrap());
    }
    numbers.sort();
    assert_eq!(numbers, vec![4, 5, 6, 7, 8, 9]);
    let repo = store.repository(id).await.unwrap().unwrap();
    let v9 = store.version(&repo, 9).await.unwrap().unwrap();
    assert_eq!(v9.content_summary.present[&ContentType::Blob], 3 + 6);
    // versions are listed newest first, and only committed ones
    let numbers: Vec<u64> = store.versions(&repo).await.unwrap().iter().map(|v| v.number).collect();
    assert_eq!(numbers, (0..=9).rev().collect::<Vec<_>>());
}

/// A dropped writer releases its lease.
pub async fn a_dropped_writer_releases_its_lease(a: &impl Adapter) {
    let (store, id) = repo(a).await;
    let w = store.begin_write(id, "dropped", TTL, Duration::ZERO).await.unwrap();
    drop(w);
    let w = store
        .begin_write(id, "after-drop", TTL, Duration::from_secs(5))
        .await
        .unwrap();
    w.abort().await.unwrap();
}

/// Tags paginate in name order.
pub async fn tags_paginate(a: &impl Adapter) {
    let (store, id) = repo(a).await;
    history(&store, id, 3).await;
    let mut w = store.begin_write(id, "tags", TTL, Duration::ZERO).await.unwrap();
    for (i, n) in ["b", "a", "d", "c"].iter().enumerate() {
        w.add(tag(n, i as u32)).await.unwrap();
    }
    w.commit(None).await.unwrap();
    let r = store.repository(id).await.unwrap().unwrap();
    let latest = r.latest_version;
    let names = |v: Vec<Tag>| v.into_iter().map(|t| t.to_string()).collect::<Vec<_>>();
    assert_eq!(
        names(store.tags(&r, latest, None, 100).await.unwrap()),
        ["a", "b", "c", "d", "latest"]
    );
    assert_eq!(names(store.tags(&r, latest, Some("b"), 2).await.unwrap()), ["c", "d"]);
}
