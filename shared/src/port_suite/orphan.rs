//! Orphans over the table port: candidates come from the index partitions; what a live
//! repository's rows name is referenced (staged rows included); a unit touched after the
//! candidates were read is not removed.

use std::time::Duration;

use crate::domain::{ContentKey, Digest, Tag};
use crate::store::{BlobRecord, Repository, RepositoryKind, Store, VersionWriter};

use super::{Adapter, TTL};

fn rec(i: u32) -> BlobRecord {
    BlobRecord {
        digest: Digest::sha256_of(&i.to_le_bytes()),
        size: 4,
        created: chrono::Utc::now(),
    }
}

/// Four blobs: blob 0 in a committed version, blob 1 pending, blob 2 staged by the write in
/// progress returned, blob 3 in nothing.
async fn four_blobs(a: &impl Adapter) -> (Store, Repository, VersionWriter) {
    let store = Store::new(a.table().await);
    let repo = Repository::new("orphans/repo", RepositoryKind::Push);
    store.create_repository(&repo).await.unwrap();
    for i in 0..4 {
        store.put_blob(&rec(i)).await.unwrap();
    }
    let mut w = store.begin_write(repo.id, "v1", TTL, Duration::ZERO).await.unwrap();
    w.add(ContentKey::Blob(rec(0).digest)).await.unwrap();
    w.commit(None).await.unwrap();
    store.add_pending_blob(repo.id, &rec(1).digest).await.unwrap();
    let mut staged = store.begin_write(repo.id, "v2", TTL, Duration::ZERO).await.unwrap();
    staged.add(ContentKey::Blob(rec(2).digest)).await.unwrap();
    (store, repo, staged)
}

/// Every blob is a candidate; the committed, pending and staged ones are referenced.
pub async fn candidates_and_references(a: &impl Adapter) {
    let (store, _repo, _staged) = four_blobs(a).await;
    let candidates = store.orphan_candidates().await.unwrap();
    let keys: Vec<ContentKey> = candidates.iter().map(|c| c.key.clone()).collect();
    for i in 0..4 {
        assert!(keys.contains(&ContentKey::Blob(rec(i).digest)), "blob {i} is listed");
    }
    assert!(candidates.iter().all(|c| c.touched.is_some()));
    let referenced = store.referenced_content().await.unwrap();
    for i in 0..3 {
        assert!(
            referenced.contains(&ContentKey::Blob(rec(i).digest)),
            "blob {i} is referenced"
        );
    }
    assert!(!referenced.contains(&ContentKey::Blob(rec(3).digest)));
}

/// Blob 3 is touched (a pending upload, then gone again) after the candidates were read: it
/// stays; once read again, it can go.
pub async fn a_unit_touched_meanwhile_stays(a: &impl Adapter) {
    let (store, repo, _staged) = four_blobs(a).await;
    let candidates = store.orphan_candidates().await.unwrap();
    let orphan = |i: u32| {
        candidates
            .iter()
            .find(|c| c.key == ContentKey::Blob(rec(i).digest))
            .unwrap()
            .clone()
    };
    store.add_pending_blob(repo.id, &rec(3).digest).await.unwrap();
    store.remove_pending_blob(repo.id, &rec(3).digest).await.unwrap();
    assert!(!store.forget_candidate(&orphan(3)).await.unwrap());
    let again = store.orphan_candidates().await.unwrap();
    let c = again.iter().find(|c| c.key == ContentKey::Blob(rec(3).digest)).unwrap();
    assert!(store.forget_candidate(c).await.unwrap());
    assert!(!store
        .orphan_candidates()
        .await
        .unwrap()
        .iter()
        .any(|c| c.key == ContentKey::Blob(rec(3).digest)));
}

/// A version write that adds a listed unit after the candidates were read also keeps it.
pub async fn a_unit_added_meanwhile_stays(a: &impl Adapter) {
    let (store, repo, staged) = four_blobs(a).await;
    let listed = store.orphan_candidates().await.unwrap();
    staged.abort().await.unwrap();
    let mut w = store.begin_write(repo.id, "v3", TTL, Duration::ZERO).await.unwrap();
    w.add(ContentKey::Tag {
        name: Tag::parse("x").unwrap(),
        manifest: rec(0).digest,
    })
    .await
    .unwrap();
    w.add(ContentKey::Blob(rec(2).digest)).await.unwrap();
    w.commit(None).await.unwrap();
    let c = listed
        .iter()
        .find(|c| c.key == ContentKey::Blob(rec(2).digest))
        .unwrap();
    assert!(!store.forget_candidate(c).await.unwrap());
}
