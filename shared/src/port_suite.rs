//! The port suites: one per port, run against every adapter (DESIGN §6). The embedded
//! adapters run on a fresh temporary directory per test.
//!
//! - table: conditional writes, queries, concurrency;
//! - blob store: verified-before-visible (invariant 3), ranges, uploads, interrupted writes;
//! - store over each table: atomic version commit (invariant 1), serialized writers
//!   (invariant 2), unique names;
//! - store retention over each table: upload sessions and finished tasks expire;
//! - orphans over each table: candidates, references, and units touched meanwhile stay;
//! - job queue: at-least-once delivery across a restart, dedupe, retries, and idempotent
//!   version-making jobs (invariant 4).

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use crate::domain::{ContentKey, ContentType, Digest, Tag};
use crate::jobs::LocalJobQueue;
use crate::ports::{
    BlobStore, ByteRange, ByteStream, Cond, Job, JobError, JobHandler, JobQueue, Query, StoreError, Table,
};
use crate::store::{Repository, RepositoryKind, Retention, Store, Task, TaskState, UploadSession, WriteError};

pub fn stream(b: &[u8]) -> ByteStream {
    let chunks: Vec<Result<Bytes, io::Error>> = b.chunks(7).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
    Box::pin(futures::stream::iter(chunks))
}

pub fn failing_stream(b: &[u8]) -> ByteStream {
    let mut chunks: Vec<Result<Bytes, io::Error>> = vec![Ok(Bytes::copy_from_slice(b))];
    chunks.push(Err(io::Error::new(io::ErrorKind::ConnectionReset, "client went away")));
    Box::pin(futures::stream::iter(chunks))
}

async fn read_all(s: &dyn BlobStore, d: &Digest, r: Option<ByteRange>) -> Vec<u8> {
    let reader = s.open(d, r).await.expect("open");
    crate::adapters::collect(reader.body).await.expect("read")
}

// ---- table -----------------------------------------------------------------------------------

pub async fn table_suite(t: Arc<dyn Table>) {
    // Given an empty table, When an item is written only-if-absent twice, Then the second fails
    assert_eq!(t.get("p", "a").await.unwrap(), None);
    assert_eq!(t.put("p", "a", b"1".to_vec(), Cond::Absent).await.unwrap(), 1);
    assert!(matches!(
        t.put("p", "a", b"2".to_vec(), Cond::Absent).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(t.get("p", "a").await.unwrap().unwrap().value, b"1");
    // revisions guard updates
    assert!(matches!(
        t.put("p", "a", b"x".to_vec(), Cond::Rev(7)).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(t.put("p", "a", b"2".to_vec(), Cond::Rev(1)).await.unwrap(), 2);
    assert_eq!(t.put("p", "a", b"3".to_vec(), Cond::Any).await.unwrap(), 3);
    assert!(matches!(
        t.put("p", "zz", b"x".to_vec(), Cond::Rev(1)).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        t.delete("p", "a", Cond::Rev(1)).await,
        Err(StoreError::Conflict(_))
    ));
    t.delete("p", "a", Cond::Rev(3)).await.unwrap();
    assert_eq!(t.get("p", "a").await.unwrap(), None);
    t.delete("p", "a", Cond::Any).await.unwrap();

    // queries: one partition, prefix, order, after, reverse, limit
    for sk in ["t#b", "t#a", "t#c", "u#a", "s#z"] {
        t.put("q", sk, sk.as_bytes().to_vec(), Cond::Any).await.unwrap();
    }
    t.put("q2", "t#0", b"other".to_vec(), Cond::Any).await.unwrap();
    t.put("qq", "t#0", b"other".to_vec(), Cond::Any).await.unwrap();
    let sks = |rows: Vec<crate::ports::Row>| rows.into_iter().map(|r| r.sk).collect::<Vec<_>>();
    assert_eq!(
        sks(t.query("q", Query::prefix("t#")).await.unwrap()),
        ["t#a", "t#b", "t#c"]
    );
    assert_eq!(sks(t.query("q", Query::prefix("")).await.unwrap()).len(), 5);
    assert_eq!(
        sks(t
            .query("q", Query::prefix("t#").after(Some("t#a".into())))
            .await
            .unwrap()),
        ["t#b", "t#c"]
    );
    assert_eq!(
        sks(t.query("q", Query::prefix("t#").reverse()).await.unwrap()),
        ["t#c", "t#b", "t#a"]
    );
    assert_eq!(
        sks(t
            .query("q", Query::prefix("t#").reverse().after(Some("t#c".into())))
            .await
            .unwrap()),
        ["t#b", "t#a"]
    );
    assert_eq!(
        sks(t.query("q", Query::prefix("t#").limit(2)).await.unwrap()),
        ["t#a", "t#b"]
    );
    assert_eq!(
        sks(t.query("q", Query::prefix("t#").reverse().limit(1)).await.unwrap()),
        ["t#c"]
    );
    assert!(t.query("none", Query::prefix("")).await.unwrap().is_empty());

    // expiry: an expired item reads as absent everywhere, before any sweep removes it
    let now = crate::ports::unix_now();
    let rev = t
        .put_expiring("e", "old", b"x".to_vec(), Cond::Absent, Some(now - 5))
        .await
        .unwrap();
    t.put_expiring("e", "new", b"y".to_vec(), Cond::Absent, Some(now + 3600))
        .await
        .unwrap();
    t.put("e", "keep", b"z".to_vec(), Cond::Any).await.unwrap();
    assert_eq!(t.get("e", "old").await.unwrap(), None);
    assert_eq!(sks(t.query("e", Query::prefix("")).await.unwrap()), ["keep", "new"]);
    assert_eq!(sks(t.query("e", Query::prefix("").limit(1)).await.unwrap()), ["keep"]);
    assert_eq!(
        sks(t.query("e", Query::prefix("").reverse()).await.unwrap()),
        ["new", "keep"]
    );
    assert_eq!(t.get("e", "new").await.unwrap().unwrap().value, b"y");
    assert!(matches!(
        t.put("e", "old", b"x".to_vec(), Cond::Rev(rev)).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        t.delete("e", "old", Cond::Rev(rev)).await,
        Err(StoreError::Conflict(_))
    ));
    t.delete("e", "old", Cond::Absent).await.unwrap();
    assert!(matches!(
        t.put("e", "new", b"y2".to_vec(), Cond::Absent).await,
        Err(StoreError::Conflict(_))
    ));
    // written again, only-if-absent: a new item, with a later revision and no expiry
    let again = t.put("e", "old", b"back".to_vec(), Cond::Absent).await.unwrap();
    assert!(again > 0);
    assert_eq!(t.get("e", "old").await.unwrap().unwrap().value, b"back");
    // a later expiring write, and a plain write that clears the expiry again
    let r = t
        .put_expiring("e", "old", b"gone".to_vec(), Cond::Rev(again), Some(now - 1))
        .await
        .unwrap();
    assert!(r > again);
    assert_eq!(t.get("e", "old").await.unwrap(), None);
    t.put("e", "old", b"kept".to_vec(), Cond::Any).await.unwrap();
    assert_eq!(t.get("e", "old").await.unwrap().unwrap().value, b"kept");
    // the live one's expiry can be moved by a conditional write
    let row = t.get("e", "new").await.unwrap().unwrap();
    t.put_expiring("e", "new", b"y3".to_vec(), Cond::Rev(row.rev), Some(now - 1))
        .await
        .unwrap();
    assert_eq!(sks(t.query("e", Query::prefix("")).await.unwrap()), ["keep", "old"]);

    // concurrency: N tasks increment one counter with compare-and-set; no update is lost
    t.put("c", "n", b"0".to_vec(), Cond::Any).await.unwrap();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let t = t.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..10 {
                loop {
                    let row = t.get("c", "n").await.unwrap().unwrap();
                    let n: u64 = String::from_utf8(row.value).unwrap().parse().unwrap();
                    match t
                        .put("c", "n", (n + 1).to_string().into_bytes(), Cond::Rev(row.rev))
                        .await
                    {
                        Ok(_) => break,
                        Err(StoreError::Conflict(_)) => continue,
                        Err(e) => panic!("{e}"),
                    }
                }
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(t.get("c", "n").await.unwrap().unwrap().value, b"80");

    transact_suite(&t).await;
}

/// Transactions: all or nothing, conditions on every item, and one winner among racers.
async fn transact_suite(t: &Arc<dyn Table>) {
    use crate::ports::Write;
    // Given one existing item, When a transaction's second condition fails, Then nothing changes
    t.put("x", "held", b"h".to_vec(), Cond::Any).await.unwrap();
    let r = t
        .transact(vec![
            Write::put("x", "new", b"n".to_vec(), Cond::Absent),
            Write::put("x", "held", b"h2".to_vec(), Cond::Absent),
        ])
        .await;
    assert!(matches!(r, Err(StoreError::Conflict(_))), "{r:?}");
    assert_eq!(t.get("x", "new").await.unwrap(), None);
    assert_eq!(t.get("x", "held").await.unwrap().unwrap().value, b"h");
    // When every condition holds, Then every write lands, across partitions
    let held = t.get("x", "held").await.unwrap().unwrap();
    t.transact(vec![
        Write::put("x", "new", b"n".to_vec(), Cond::Absent),
        Write::put("y", "other", b"o".to_vec(), Cond::Absent),
        Write::delete("x", "held", Cond::Rev(held.rev)),
        Write::delete("x", "never", Cond::Absent),
    ])
    .await
    .unwrap();
    assert_eq!(t.get("x", "new").await.unwrap().unwrap().value, b"n");
    assert_eq!(t.get("y", "other").await.unwrap().unwrap().rev, 1);
    assert_eq!(t.get("x", "held").await.unwrap(), None);
    // a put under the item's revision bumps it; a stale revision fails
    let row = t.get("x", "new").await.unwrap().unwrap();
    t.transact(vec![Write::put("x", "new", b"n2".to_vec(), Cond::Rev(row.rev))])
        .await
        .unwrap();
    assert_eq!(t.get("x", "new").await.unwrap().unwrap().rev, row.rev + 1);
    assert!(matches!(
        t.transact(vec![Write::put("x", "new", b"n3".to_vec(), Cond::Rev(row.rev))])
            .await,
        Err(StoreError::Conflict(_))
    ));
    // an item twice, or nothing at all, is refused before anything is written
    assert!(t
        .transact(vec![
            Write::put("x", "twice", b"1".to_vec(), Cond::Any),
            Write::put("x", "twice", b"2".to_vec(), Cond::Any),
        ])
        .await
        .is_err());
    assert_eq!(t.get("x", "twice").await.unwrap(), None);
    assert!(t.transact(Vec::new()).await.is_err());

    // Given 16 racers claiming one name with an item each, Then exactly one claim and its
    // item exist, and no loser's item is left
    let mut tasks = Vec::new();
    for i in 0..16 {
        let t = t.clone();
        tasks.push(tokio::spawn(async move {
            t.transact(vec![
                Write::put("names", "one", format!("{i}").into_bytes(), Cond::Absent),
                Write::put("items", format!("{i}"), b"item".to_vec(), Cond::Absent),
            ])
            .await
        }));
    }
    let mut won = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(()) => won += 1,
            Err(StoreError::Conflict(_)) => {}
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(won, 1);
    let winner = String::from_utf8(t.get("names", "one").await.unwrap().unwrap().value).unwrap();
    let items: Vec<String> = t
        .query("items", Query::prefix(""))
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.sk)
        .collect();
    assert_eq!(items, [winner]);
}

// ---- blob store ------------------------------------------------------------------------------

pub async fn blob_suite(s: Arc<dyn BlobStore>) {
    let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let d = Digest::sha256_of(&data);

    // verified before visible: a wrong digest stores nothing
    let wrong = Digest::sha256_of(b"something else");
    assert!(matches!(
        s.put(&wrong, stream(&data)).await,
        Err(StoreError::DigestMismatch { .. })
    ));
    assert_eq!(s.stat(&wrong).await.unwrap(), None);
    // an interrupted body stores nothing
    assert!(matches!(
        s.put(&d, failing_stream(&data[..10])).await,
        Err(StoreError::Body(_))
    ));
    assert_eq!(s.stat(&d).await.unwrap(), None);
    assert!(matches!(s.open(&d, None).await, Err(StoreError::NotFound)));

    assert_eq!(s.put(&d, stream(&data)).await.unwrap(), data.len() as u64);
    assert_eq!(s.stat(&d).await.unwrap(), Some(data.len() as u64));
    assert_eq!(read_all(&*s, &d, None).await, data);
    // idempotent
    assert_eq!(s.put(&d, stream(&data)).await.unwrap(), data.len() as u64);
    // ranges
    assert_eq!(
        read_all(&*s, &d, Some(ByteRange { start: 10, end: 19 })).await,
        &data[10..20]
    );
    let last = data.len() as u64 - 1;
    assert_eq!(
        read_all(&*s, &d, Some(ByteRange { start: last, end: last })).await,
        &data[data.len() - 1..]
    );
    // sha512
    let mut h = crate::domain::Hasher::new(crate::domain::Algorithm::Sha512);
    h.update(b"five!");
    let d512 = h.finish();
    s.put(&d512, stream(b"five!")).await.unwrap();
    assert_eq!(read_all(&*s, &d512, None).await, b"five!");
    // an empty blob
    let de = Digest::sha256_of(b"");
    assert_eq!(s.put(&de, stream(b"")).await.unwrap(), 0);
    assert_eq!(s.stat(&de).await.unwrap(), Some(0));

    s.delete(&d).await.unwrap();
    s.delete(&d).await.unwrap();
    assert_eq!(s.stat(&d).await.unwrap(), None);

    // uploads: chunked, in order
    let id = uuid::Uuid::new_v4().to_string();
    s.upload_create(&id).await.unwrap();
    assert_eq!(s.upload_size(&id).await.unwrap(), 0);
    assert_eq!(s.upload_append(&id, 0, stream(&data[..5000])).await.unwrap(), 5000);
    assert!(matches!(
        s.upload_append(&id, 0, stream(&data[..10])).await,
        Err(StoreError::OutOfOrder { size: 5000 })
    ));
    assert!(matches!(
        s.upload_append(&id, 9000, stream(&data[..10])).await,
        Err(StoreError::OutOfOrder { size: 5000 })
    ));
    assert_eq!(
        s.upload_append(&id, 5000, stream(&data[5000..])).await.unwrap(),
        data.len() as u64
    );
    assert_eq!(
        s.stat(&d).await.unwrap(),
        None,
        "an upload is not a blob until committed"
    );
    assert_eq!(s.upload_commit(&id, &d).await.unwrap(), data.len() as u64);
    assert_eq!(read_all(&*s, &d, None).await, data);
    assert!(matches!(s.upload_size(&id).await, Err(StoreError::NotFound)));

    // a mismatching commit discards the upload and publishes nothing
    let id = uuid::Uuid::new_v4().to_string();
    s.upload_create(&id).await.unwrap();
    s.upload_append(&id, 0, stream(b"abc")).await.unwrap();
    let d_abc = Digest::sha256_of(b"abc");
    assert!(matches!(
        s.upload_commit(&id, &wrong).await,
        Err(StoreError::DigestMismatch { .. })
    ));
    assert_eq!(s.stat(&wrong).await.unwrap(), None);
    assert_eq!(s.stat(&d_abc).await.unwrap(), None);

    // an interrupted chunk: the upload reports what it holds and can be resumed or aborted
    let id = uuid::Uuid::new_v4().to_string();
    s.upload_create(&id).await.unwrap();
    assert!(s.upload_append(&id, 0, failing_stream(b"abc")).await.is_err());
    let size = s.upload_size(&id).await.unwrap();
    assert!(size <= 3);
    s.upload_append(&id, size, stream(&b"abc"[size as usize..]))
        .await
        .unwrap();
    s.upload_commit(&id, &d_abc).await.unwrap();
    assert_eq!(read_all(&*s, &d_abc, None).await, b"abc");

    // sha512 through an upload
    let id = uuid::Uuid::new_v4().to_string();
    s.upload_create(&id).await.unwrap();
    s.upload_append(&id, 0, stream(b"five!")).await.unwrap();
    s.upload_commit(&id, &d512).await.unwrap();

    // abort is idempotent; unknown uploads are not found
    let id = uuid::Uuid::new_v4().to_string();
    s.upload_create(&id).await.unwrap();
    s.upload_abort(&id).await.unwrap();
    s.upload_abort(&id).await.unwrap();
    assert!(matches!(s.upload_size(&id).await, Err(StoreError::NotFound)));
    assert!(matches!(
        s.upload_append(&id, 0, stream(b"x")).await,
        Err(StoreError::NotFound)
    ));
    assert!(s.upload_commit(&id, &d).await.is_err());
}

// ---- store: retention ------------------------------------------------------------------------

/// Upload sessions expire after their start, finished tasks after they finish, and nothing
/// else does: first with the default retention (all kept), then with none at all. Sync
/// checkpoints (expiring, in parts) round-trip.
pub async fn retention_suite(t: Arc<dyn Table>) {
    let upload = |repository| UploadSession {
        id: uuid::Uuid::new_v4(),
        repository,
        created: chrono::Utc::now(),
    };
    let finish = |store: Store, id| async move {
        store
            .update_task::<StoreError>(id, |t| {
                t.state = TaskState::Completed;
                Ok(())
            })
            .await
            .unwrap()
    };
    let keep = Store::new(t.clone());
    let u = upload(uuid::Uuid::new_v4());
    keep.create_upload(&u).await.unwrap();
    assert_eq!(keep.upload(u.id).await.unwrap().map(|x| x.id), Some(u.id));
    let task = Task::new("berth.sync");
    keep.create_task(&task).await.unwrap();
    finish(keep.clone(), task.id).await;
    assert_eq!(keep.task(task.id).await.unwrap().unwrap().state, TaskState::Completed);

    let forget = Store::with_retention(
        t.clone(),
        Retention {
            upload: Duration::ZERO,
            tasks: Some(Duration::ZERO),
        },
    );
    let u = upload(uuid::Uuid::new_v4());
    forget.create_upload(&u).await.unwrap();
    assert!(
        forget.upload(u.id).await.unwrap().is_none(),
        "an upload past its retention is gone"
    );
    let running = Task::new("berth.sync");
    forget.create_task(&running).await.unwrap();
    forget
        .update_task::<StoreError>(running.id, |t| {
            t.state = TaskState::Running;
            Ok(())
        })
        .await
        .unwrap();
    assert!(forget.task(running.id).await.unwrap().is_some(), "a running task stays");
    finish(forget.clone(), running.id).await;
    assert!(
        forget.task(running.id).await.unwrap().is_none(),
        "a finished task past its retention is gone"
    );
    let listed: Vec<_> = forget.tasks().await.unwrap().into_iter().map(|t| t.id).collect();
    assert_eq!(listed, [task.id], "the list skips it too");

    // tasks kept forever
    let forever = Store::with_retention(
        t,
        Retention {
            upload: Duration::ZERO,
            tasks: None,
        },
    );
    let kept = Task::new("berth.sync");
    forever.create_task(&kept).await.unwrap();
    finish(forever.clone(), kept.id).await;
    assert!(forever.task(kept.id).await.unwrap().is_some());

    // sync checkpoints: in parts, replaced whole, removed
    let task = uuid::Uuid::new_v4();
    assert_eq!(forever.checkpoint(task).await.unwrap(), None);
    let big: Vec<u8> = (0..600_000u32).map(|i| (i % 251) as u8).collect();
    forever.put_checkpoint(task, &big).await.unwrap();
    assert_eq!(forever.checkpoint(task).await.unwrap().as_deref(), Some(&big[..]));
    forever.put_checkpoint(task, b"small").await.unwrap();
    assert_eq!(forever.checkpoint(task).await.unwrap().as_deref(), Some(&b"small"[..]));
    forever.delete_checkpoint(task).await.unwrap();
    assert_eq!(forever.checkpoint(task).await.unwrap(), None);
    forever.delete_checkpoint(task).await.unwrap();
}

// ---- store: orphans --------------------------------------------------------------------------

/// Orphan candidates come from the index partitions; what a live repository's rows name is
/// referenced (staged rows included); a unit touched after the candidates were read is not
/// removed.
pub async fn orphan_suite(t: Arc<dyn Table>) {
    let store = Store::new(t);
    let repo = Repository::new("orphans/repo", RepositoryKind::Push);
    store.create_repository(&repo).await.unwrap();
    let rec = |i: u32| crate::store::BlobRecord {
        digest: Digest::sha256_of(&i.to_le_bytes()),
        size: 4,
        created: chrono::Utc::now(),
    };
    for i in 0..4 {
        store.put_blob(&rec(i)).await.unwrap();
    }
    // blob 0 in a committed version, blob 1 pending, blob 2 staged by a write in progress
    let mut w = store.begin_write(repo.id, "v1", TTL, Duration::ZERO).await.unwrap();
    w.add(ContentKey::Blob(rec(0).digest)).await.unwrap();
    w.commit(None).await.unwrap();
    store.add_pending_blob(repo.id, &rec(1).digest).await.unwrap();
    let mut staged = store.begin_write(repo.id, "v2", TTL, Duration::ZERO).await.unwrap();
    staged.add(ContentKey::Blob(rec(2).digest)).await.unwrap();

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
    let orphan = |i: u32| {
        candidates
            .iter()
            .find(|c| c.key == ContentKey::Blob(rec(i).digest))
            .unwrap()
            .clone()
    };
    // blob 3 is touched (a pending upload, then gone again) after the candidates were read:
    // it stays; once read again, it can go
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
    // a version write that adds a listed unit after the candidates were read also keeps it
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

// ---- store: names and leases ------------------------------------------------------------------

fn dist(name: &str, base_path: &str, repository: Option<uuid::Uuid>) -> crate::store::Distribution {
    crate::store::Distribution {
        id: uuid::Uuid::new_v4(),
        name: name.to_owned(),
        base_path: crate::domain::RepoName::parse(base_path).unwrap(),
        repository,
        version: None,
        private: false,
        description: None,
        pulp_labels: Default::default(),
        created: chrono::Utc::now(),
        updated: chrono::Utc::now(),
    }
}

/// Invariant 6: of racing creates of one name exactly one wins and it is the one listed;
/// renames and deletes move names and items together; names left by older versions' crashed
/// creates are taken over or repaired. Invariant 2: a restarted node takes over its earlier
/// life's leases at once.
pub async fn names_suite(t: Arc<dyn Table>) {
    use crate::store::{NodeLife, Remote};
    let store = Store::new(t.clone());
    let racers = 16;

    // Given 16 racers, When each creates a repository, a remote and a distribution of one
    // name, Then exactly one of each wins, and lists hold exactly the winners
    let mut tasks = Vec::new();
    for i in 0..racers {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let repo = Repository::new("race/repo", RepositoryKind::Mirror);
            let r = store.create_repository(&repo).await.map(|_| repo.id);
            let remote = Remote::new("race-remote", "http://127.0.0.1:1", "x");
            let m = store.create_remote(&remote).await.map(|_| remote.id);
            let d = dist("race-dist", &format!("race/d{i}"), None);
            let dd = store.create_distribution(&d).await.map(|_| d.id);
            let b = dist(&format!("race-base-{i}"), "race/base", None);
            let bb = store.create_distribution(&b).await.map(|_| b.id);
            (r, m, dd, bb)
        }));
    }
    let (mut repos, mut remotes, mut dists, mut bases) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for task in tasks {
        let (r, m, d, b) = task.await.unwrap();
        for (res, won) in [(r, &mut repos), (m, &mut remotes), (d, &mut dists), (b, &mut bases)] {
            match res {
                Ok(id) => won.push(id),
                Err(StoreError::Conflict(_)) => {}
                Err(e) => panic!("{e:?}"),
            }
        }
    }
    assert_eq!((repos.len(), remotes.len(), dists.len(), bases.len()), (1, 1, 1, 1));
    let listed: Vec<_> = store
        .repositories()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.name == "race/repo")
        .map(|r| r.id)
        .collect();
    assert_eq!(listed, repos);
    let listed: Vec<_> = store
        .remotes()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.name == "race-remote")
        .map(|r| r.id)
        .collect();
    assert_eq!(listed, remotes);
    assert_eq!(store.distribution(dists[0]).await.unwrap().unwrap().name, "race-dist");
    let base = crate::domain::RepoName::parse("race/base").unwrap();
    assert_eq!(
        store.distribution_by_base_path(&base).await.unwrap().unwrap().id,
        bases[0]
    );

    // renames race creates: whoever wins, the name names exactly one item that carries it
    let a = Repository::new("rename/a", RepositoryKind::Mirror);
    store.create_repository(&a).await.unwrap();
    let (s1, s2) = (store.clone(), store.clone());
    let rename = tokio::spawn(async move {
        s1.update_repository::<StoreError>(a.id, |r| {
            r.name = "rename/b".into();
            Ok(())
        })
        .await
    });
    let create = tokio::spawn(async move {
        s2.create_repository(&Repository::new("rename/b", RepositoryKind::Mirror))
            .await
    });
    let (r1, r2) = (rename.await.unwrap(), create.await.unwrap());
    assert!(r1.is_ok() != r2.is_ok(), "exactly one takes the name: {r1:?} {r2:?}");
    let b = store.repository_by_name("rename/b").await.unwrap().unwrap();
    assert_eq!(b.name, "rename/b");
    assert_eq!(
        store.repository_by_name("rename/a").await.unwrap().is_some(),
        r2.is_ok()
    );
    let names: Vec<_> = store
        .repositories()
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.name)
        .collect();
    assert_eq!(
        names.iter().filter(|n| n.starts_with("rename/")).count(),
        if r2.is_ok() { 2 } else { 1 }
    );
    // a delete takes the name and the item together; the name is free at once
    store.delete_repository(&b).await.unwrap();
    assert!(store.repository(b.id).await.unwrap().is_none());
    store
        .create_repository(&Repository::new("rename/b", RepositoryKind::Mirror))
        .await
        .unwrap();

    // Given what older versions could leave: a name row naming no item, a served repository
    // hidden behind an empty one of the same name, a remote sharing its name
    t.put(
        "repo-names",
        "stale",
        serde_json::to_vec(&uuid::Uuid::new_v4()).unwrap(),
        Cond::Absent,
    )
    .await
    .unwrap();
    let empty = Repository::new("split", RepositoryKind::Push);
    store.create_repository(&empty).await.unwrap();
    let mut hidden = Repository::new("split", RepositoryKind::Push);
    hidden.latest_version = 3;
    t.put(
        &format!("repo#{}", hidden.id),
        "_",
        serde_json::to_vec(&hidden).unwrap(),
        Cond::Absent,
    )
    .await
    .unwrap();
    store
        .create_distribution(&dist("split", "split", Some(hidden.id)))
        .await
        .unwrap();
    let twin = Remote::new("twin", "http://127.0.0.1:1", "x");
    store.create_remote(&twin).await.unwrap();
    let other = Remote::new("twin", "http://127.0.0.1:2", "y");
    t.put(
        "remotes",
        &other.id.to_string(),
        serde_json::to_vec(&other).unwrap(),
        Cond::Absent,
    )
    .await
    .unwrap();
    // When the repair runs, Then every item has its own name, the served repository is listed
    // under its name, and the empty duplicate is gone
    let done = store.repair_names().await.unwrap();
    assert_eq!(done.actions.len(), 3, "{done:?}");
    assert_eq!(store.repository_by_name("split").await.unwrap().unwrap().id, hidden.id);
    assert!(store.repository(empty.id).await.unwrap().is_none());
    assert!(t.get("repo-names", "stale").await.unwrap().is_none());
    let twins: Vec<_> = store
        .remotes()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.name.starts_with("twin"))
        .map(|r| r.name)
        .collect();
    assert_eq!(twins.len(), 2);
    assert_ne!(twins[0], twins[1]);
    assert!(
        store.repair_names().await.unwrap().is_empty(),
        "a second run finds nothing"
    );
    // a stale name row left by an older version's crashed create is taken over by a create
    t.put(
        "repo-names",
        "ghost2",
        serde_json::to_vec(&uuid::Uuid::new_v4()).unwrap(),
        Cond::Absent,
    )
    .await
    .unwrap();
    store
        .create_repository(&Repository::new("ghost2", RepositoryKind::Push))
        .await
        .unwrap();

    // Given a lease held by a killed process of this node, When its next life writes, Then it
    // takes the lease at once; another node's live lease still waits
    let repo = Repository::new("leased", RepositoryKind::Push);
    store.create_repository(&repo).await.unwrap();
    let first = Store::new(t.clone()).with_node(Some(NodeLife::new("node-a")));
    let w = first.begin_write(repo.id, "killed", TTL, Duration::ZERO).await.unwrap();
    std::mem::forget(w); // killed: never commits, never releases
    let other_node = Store::new(t.clone()).with_node(Some(NodeLife::new("node-b")));
    assert!(matches!(
        other_node.begin_write(repo.id, "b", TTL, Duration::ZERO).await,
        Err(WriteError::Busy)
    ));
    let second = Store::new(t.clone()).with_node(Some(NodeLife::new("node-a")));
    let started = std::time::Instant::now();
    let w = second
        .begin_write(repo.id, "restarted", TTL, Duration::ZERO)
        .await
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    w.commit(None).await.unwrap();
}

// ---- store: versions -------------------------------------------------------------------------

fn blob(i: u32) -> ContentKey {
    ContentKey::Blob(Digest::sha256_of(&i.to_le_bytes()))
}

fn tag(name: &str, i: u32) -> ContentKey {
    ContentKey::Tag {
        name: Tag::parse(name).unwrap(),
        manifest: Digest::sha256_of(&i.to_le_bytes()),
    }
}

const TTL: Duration = Duration::from_secs(30);

pub async fn store_suite(t: Arc<dyn Table>) {
    store_suite_slowed(t, 1).await
}

/// The store suite with its short leases (tens of milliseconds) `slow` times longer, for a
/// table whose calls take milliseconds each (a DynamoDB emulator over HTTP).
pub async fn store_suite_slowed(t: Arc<dyn Table>, slow: u32) {
    let ms = |n: u64| Duration::from_millis(n) * slow;
    let store = Store::new(t);
    let repo = Repository::new("suite/repo", RepositoryKind::Push);
    store.create_repository(&repo).await.unwrap();
    assert!(matches!(
        store
            .create_repository(&Repository::new("suite/repo", RepositoryKind::Push))
            .await,
        Err(StoreError::Conflict(_))
    ));
    let id = repo.id;
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
    assert_eq!(store.versions(&repo).await.unwrap().len(), 1, "version 0 exists");

    // version 1: three blobs and a tag
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
    assert_eq!(
        store.tag(id, 1, &Tag::parse("latest").unwrap()).await.unwrap(),
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
    assert_eq!(
        store.tag(id, 2, &Tag::parse("latest").unwrap()).await.unwrap(),
        Some(Digest::sha256_of(&2u32.to_le_bytes()))
    );
    assert_eq!(store.changes(id, 2, true).await.unwrap(), vec![tag("latest", 2)]);
    assert_eq!(store.changes(id, 2, false).await.unwrap().len(), 2);
    assert_eq!(
        store.content(id, 2, ContentType::Blob, None, 10).await.unwrap().len(),
        2
    );
    assert_eq!(store.content(id, 1, ContentType::Blob, None, 2).await.unwrap().len(), 2);

    // a write that changes nothing makes no version
    let mut w = store.begin_write(id, "w3", TTL, Duration::ZERO).await.unwrap();
    w.add(blob(0)).await.unwrap();
    assert!(w.commit(None).await.unwrap().is_none());
    assert_eq!(store.repository(id).await.unwrap().unwrap().latest_version, 2);

    // invariant 1 after a crash: a writer that staged and vanished leaves nothing visible,
    // and the next writer cleans up and commits its own version 3
    let mut w = store.begin_write(id, "crashed", ms(50), Duration::ZERO).await.unwrap();
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
    tokio::time::sleep(ms(80)).await;
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

    // a writer whose lease was taken over cannot commit
    let mut slow = store.begin_write(id, "slow", ms(30), Duration::ZERO).await.unwrap();
    slow.add(blob(70)).await.unwrap();
    tokio::time::sleep(ms(50)).await;
    let fast = store.begin_write(id, "fast", TTL, Duration::ZERO).await.unwrap();
    assert!(matches!(slow.commit(None).await, Err(WriteError::LeaseLost)));
    fast.abort().await.unwrap();
    assert!(!store.contains(id, 4, &blob(70)).await.unwrap());
    assert_eq!(store.repository(id).await.unwrap().unwrap().latest_version, 3);

    // serialized writers: concurrent writers each wait their turn; every one commits
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

    // a dropped writer releases its lease
    let w = store.begin_write(id, "dropped", TTL, Duration::ZERO).await.unwrap();
    drop(w);
    let w = store
        .begin_write(id, "after-drop", TTL, Duration::from_secs(5))
        .await
        .unwrap();
    w.abort().await.unwrap();

    // tags paginate in name order
    let mut w = store.begin_write(id, "tags", TTL, Duration::ZERO).await.unwrap();
    for (i, n) in ["b", "a", "d", "c"].iter().enumerate() {
        w.add(tag(n, i as u32)).await.unwrap();
    }
    w.commit(None).await.unwrap();
    let latest = store.repository(id).await.unwrap().unwrap().latest_version;
    let names = |v: Vec<Tag>| v.into_iter().map(|t| t.to_string()).collect::<Vec<_>>();
    assert_eq!(
        names(store.tags(id, latest, None, 100).await.unwrap()),
        ["a", "b", "c", "d", "latest"]
    );
    assert_eq!(names(store.tags(id, latest, Some("b"), 2).await.unwrap()), ["c", "d"]);
}

// ---- job queue -------------------------------------------------------------------------------

/// A handler that commits a version adding one blob per job, idempotently: a job whose id the
/// repository already remembers is done.
struct VersionJob {
    store: Store,
    repo: uuid::Uuid,
    runs: AtomicUsize,
    fail_first: usize,
}

#[async_trait]
impl JobHandler for VersionJob {
    async fn handle(&self, job: &Job) -> Result<(), JobError> {
        let run = self.runs.fetch_add(1, Ordering::SeqCst);
        let repo = self
            .store
            .repository(self.repo)
            .await
            .map_err(|e| JobError::Retry(e.to_string()))?;
        if repo.is_some_and(|r| r.recent_ops.contains(&job.id)) {
            return Ok(());
        }
        let mut w = self
            .store
            .begin_write(self.repo, &job.id, TTL, Duration::from_secs(5))
            .await
            .map_err(|e| JobError::Retry(e.to_string()))?;
        let n = match job.kind {
            crate::ports::JobKind::Test { blob } => blob as u32,
            _ => 0,
        };
        w.add(blob(n)).await.map_err(|e| JobError::Retry(e.to_string()))?;
        if run < self.fail_first {
            // fail after staging: nothing may become visible
            w.abort().await.ok();
            return Err(JobError::Retry("injected".into()));
        }
        w.commit(Some(&job.id))
            .await
            .map_err(|e| JobError::Retry(e.to_string()))?;
        Ok(())
    }
}

async fn drain(q: &LocalJobQueue, h: &dyn JobHandler) {
    for _ in 0..100 {
        if q.pending().await.unwrap() == 0 {
            return;
        }
        if q.run_one(h).await.unwrap().is_none() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    panic!("jobs did not drain");
}

/// `reopen` gives a table with the same contents, as after a restart.
pub async fn job_suite(t: Arc<dyn Table>, reopen: impl Fn() -> Arc<dyn Table>) {
    let store = Store::new(t.clone());
    let repo = Repository::new("jobs/repo", RepositoryKind::Push);
    store.create_repository(&repo).await.unwrap();
    let q = LocalJobQueue::new(t.clone());
    let job = |id: &str, n: u64| Job::new(id, crate::ports::JobKind::Test { blob: n });
    // dedupe: the same id twice while pending is one job
    q.enqueue(job("j1", 1)).await.unwrap();
    q.enqueue(job("j1", 1)).await.unwrap();
    assert_eq!(q.pending().await.unwrap(), 1);
    let h = VersionJob {
        store: store.clone(),
        repo: repo.id,
        runs: AtomicUsize::new(0),
        fail_first: 1,
    };
    drain(&q, &h).await;
    assert_eq!(
        h.runs.load(Ordering::SeqCst),
        2,
        "retried once after the injected failure"
    );
    let r = store.repository(repo.id).await.unwrap().unwrap();
    assert_eq!(r.latest_version, 1, "one version, despite the failed first attempt");

    // invariant 4: redelivery of a finished job makes no second version
    q.enqueue(job("j1", 1)).await.unwrap();
    drain(&q, &h).await;
    assert_eq!(store.repository(repo.id).await.unwrap().unwrap().latest_version, 1);

    // a job claimed by a process that died is delivered again after a restart
    q.enqueue(job("j2", 2)).await.unwrap();
    let rows = t.query("jobs", Query::prefix("")).await.unwrap();
    let mut item: crate::jobs::JobItem = serde_json::from_slice(&rows[0].value).unwrap();
    item.running = true; // claimed, then the process died
    t.put(
        "jobs",
        &rows[0].sk,
        serde_json::to_vec(&item).unwrap(),
        Cond::Rev(rows[0].rev),
    )
    .await
    .unwrap();
    let t2 = reopen();
    let q2 = LocalJobQueue::new(t2.clone());
    let store2 = Store::new(t2);
    let h2 = Arc::new(VersionJob {
        store: store2.clone(),
        repo: repo.id,
        runs: AtomicUsize::new(0),
        fail_first: 0,
    });
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let workers = q2.start(h2.clone(), 2, stop_rx).await.unwrap();
    for _ in 0..100 {
        if q2.pending().await.unwrap() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(q2.pending().await.unwrap(), 0);
    assert_eq!(store2.repository(repo.id).await.unwrap().unwrap().latest_version, 2);
    // workers pick up newly enqueued jobs by themselves
    q2.enqueue(job("j3", 3)).await.unwrap();
    for _ in 0..100 {
        if store2.repository(repo.id).await.unwrap().unwrap().latest_version == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(store2.repository(repo.id).await.unwrap().unwrap().latest_version, 3);
    stop_tx.send(true).unwrap();
    for w in workers {
        w.await.unwrap();
    }

    // a job that always fails ends in the dead-letter list
    struct Never;
    #[async_trait]
    impl JobHandler for Never {
        async fn handle(&self, _: &Job) -> Result<(), JobError> {
            Err(JobError::Retry("always".into()))
        }
    }
    let mut j = job("doomed", 0);
    j.attempts = crate::jobs::MAX_ATTEMPTS - 1;
    q2.enqueue(j).await.unwrap();
    q2.run_one(&Never).await.unwrap();
    assert_eq!(q2.pending().await.unwrap(), 0);
    assert_eq!(q2.dead_jobs().await.unwrap().len(), 1);
}

// ---- the adapters ----------------------------------------------------------------------------

mod memory {
    use super::*;
    use crate::adapters::memory::{MemoryBlobStore, MemoryTable};

    #[tokio::test]
    async fn table() {
        table_suite(Arc::new(MemoryTable::new())).await;
    }
    #[tokio::test]
    async fn blobs() {
        blob_suite(Arc::new(MemoryBlobStore::new())).await;
    }
    #[tokio::test]
    async fn store() {
        store_suite(Arc::new(MemoryTable::new())).await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn names() {
        names_suite(Arc::new(MemoryTable::new())).await;
    }
    #[tokio::test]
    async fn retention() {
        retention_suite(Arc::new(MemoryTable::new())).await;
    }
    #[tokio::test]
    async fn orphans() {
        orphan_suite(Arc::new(MemoryTable::new())).await;
    }
    #[tokio::test]
    async fn jobs() {
        let t: Arc<dyn Table> = Arc::new(MemoryTable::new());
        let same = t.clone();
        job_suite(t, move || same.clone()).await;
    }
}

#[cfg(feature = "local")]
mod embedded {
    use super::*;
    use crate::adapters::fs::FsBlobStore;
    use crate::adapters::redb_table::RedbTable;

    fn table(dir: &tempfile::TempDir) -> Arc<dyn Table> {
        Arc::new(RedbTable::open(&dir.path().join("t.redb")).unwrap())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn table_() {
        let dir = tempfile::tempdir().unwrap();
        table_suite(table(&dir)).await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn blobs() {
        let dir = tempfile::tempdir().unwrap();
        blob_suite(Arc::new(FsBlobStore::open(dir.path()).await.unwrap())).await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn store() {
        let dir = tempfile::tempdir().unwrap();
        store_suite(table(&dir)).await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn names() {
        let dir = tempfile::tempdir().unwrap();
        names_suite(table(&dir)).await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn retention() {
        let dir = tempfile::tempdir().unwrap();
        retention_suite(table(&dir)).await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn orphans() {
        let dir = tempfile::tempdir().unwrap();
        orphan_suite(table(&dir)).await;
    }

    /// The sweep removes expired items (and only those), and what it removed stays gone
    /// after a reopen.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sweep_removes_expired_items() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.redb");
        let now = crate::ports::unix_now();
        {
            let t = RedbTable::open(&path).unwrap();
            t.put_expiring("p", "gone", b"1".to_vec(), Cond::Any, Some(now - 1))
                .await
                .unwrap();
            t.put_expiring("p", "later", b"2".to_vec(), Cond::Any, Some(now + 3600))
                .await
                .unwrap();
            t.put("p", "kept", b"3".to_vec(), Cond::Any).await.unwrap();
            // expired, then written again without an expiry: no longer due
            t.put_expiring("p", "back", b"4".to_vec(), Cond::Any, Some(now - 1))
                .await
                .unwrap();
            t.put("p", "back", b"5".to_vec(), Cond::Absent).await.unwrap();
            assert_eq!(t.sweep_expired().await.unwrap(), 1);
            assert_eq!(t.sweep_expired().await.unwrap(), 0);
        }
        let t = RedbTable::open(&path).unwrap();
        let rows = t.query("p", Query::prefix("")).await.unwrap();
        let sks: Vec<_> = rows.iter().map(|r| r.sk.as_str()).collect();
        assert_eq!(sks, ["back", "kept", "later"]);
        // written again after the sweep: a fresh item
        assert_eq!(t.put("p", "gone", b"6".to_vec(), Cond::Absent).await.unwrap(), 1);
    }

    /// Staged bytes of uploads idle for longer than the limit are removed; others stay.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sweep_removes_idle_uploads() {
        let dir = tempfile::tempdir().unwrap();
        let s = FsBlobStore::open(dir.path()).await.unwrap();
        s.upload_create("u-1").await.unwrap();
        s.upload_append("u-1", 0, stream(b"half")).await.unwrap();
        assert_eq!(s.sweep_uploads(Duration::from_secs(3600)).await.unwrap(), 0);
        assert_eq!(s.upload_size("u-1").await.unwrap(), 4);
        assert_eq!(s.sweep_uploads(Duration::ZERO).await.unwrap(), 1);
        assert!(matches!(s.upload_size("u-1").await, Err(StoreError::NotFound)));
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn jobs() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.redb");
        let t = RedbTable::open(&path).unwrap();
        let t2 = t.clone(); // redb allows one open handle per file; a restart reopens the same database
        job_suite(Arc::new(t), move || Arc::new(t2.clone())).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn data_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.redb");
        {
            let t = RedbTable::open(&path).unwrap();
            t.put("p", "s", b"v".to_vec(), Cond::Absent).await.unwrap();
        }
        let t = RedbTable::open(&path).unwrap();
        assert_eq!(t.get("p", "s").await.unwrap().unwrap().value, b"v");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn unfinished_writes_are_cleared_at_open() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("tmp")).unwrap();
        std::fs::write(dir.path().join("tmp/partial"), b"half a layer").unwrap();
        let _s = FsBlobStore::open(dir.path()).await.unwrap();
        assert_eq!(std::fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
    }
}

/// The same suites on S3, DynamoDB and SQS, against a moto server at `BERTH_TEST_MOTO`
/// (`./test.sh` starts one). A fresh table, bucket and queue per test, with unique names.
#[cfg(feature = "moto")]
pub(crate) mod moto {
    use super::*;
    use crate::adapters::dynamo_table::DynamoTable;
    use crate::adapters::s3_blobs::S3BlobStore;
    use crate::adapters::sqs_queue::{create_queues_if_missing, Outcome, QueueSpec, SqsJobQueue, SqsPoller};
    use std::sync::Mutex;

    /// The moto endpoint, or a failure saying how to start one: these tests never pass
    /// silently without it.
    pub fn endpoint() -> String {
        match std::env::var("BERTH_TEST_MOTO") {
            Ok(url) if !url.is_empty() => url,
            _ => panic!(
                "BERTH_TEST_MOTO is not set: the `moto` feature runs the AWS adapter suites against a moto \
                 server. Start one and point the tests at it:\n  \
                 python3 -m venv /tmp/moto && /tmp/moto/bin/pip install 'moto[server]'\n  \
                 /tmp/moto/bin/moto_server -H 127.0.0.1 -p 5055 &\n  \
                 BERTH_TEST_MOTO=http://127.0.0.1:5055 cargo test -p berth-shared --features moto\n\
                 (./test.sh does all of this)"
            ),
        }
    }

    /// Dummy credentials on the SDK config itself; nothing global is changed.
    pub async fn config() -> aws_config::SdkConfig {
        crate::adapters::aws::sdk_config_for(&endpoint(), "us-east-1", "testing", "testing").await
    }

    pub fn unique(kind: &str) -> String {
        format!("berth-test-{kind}-{}", &uuid::Uuid::new_v4().simple().to_string()[..12])
    }

    pub async fn table() -> DynamoTable {
        let t = DynamoTable::new(&config().await, unique("table"));
        assert!(t.create_if_missing().await.unwrap());
        assert!(!t.create_if_missing().await.unwrap(), "a second call finds the table");
        t
    }

    /// A bucket store writing 5 MiB parts, so multipart writes are tested with little data.
    pub async fn blobs() -> S3BlobStore {
        let s = S3BlobStore::new(&config().await, unique("bucket"), true).with_part_size(0);
        assert!(s.create_bucket_if_missing().await.unwrap());
        assert!(
            !s.create_bucket_if_missing().await.unwrap(),
            "a second call finds the bucket"
        );
        s
    }

    fn raw_s3(conf: &aws_config::SdkConfig) -> aws_sdk_s3::Client {
        aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(conf).force_path_style(true).build())
    }

    async fn keys(s3: &aws_sdk_s3::Client, bucket: &str, prefix: &str) -> Vec<String> {
        let out = s3.list_objects_v2().bucket(bucket).prefix(prefix).send().await.unwrap();
        out.contents()
            .iter()
            .filter_map(|o| o.key().map(str::to_owned))
            .collect()
    }

    async fn open_multipart_uploads(s3: &aws_sdk_s3::Client, bucket: &str) -> usize {
        let out = s3.list_multipart_uploads().bucket(bucket).send().await.unwrap();
        out.uploads().len()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn table_() {
        table_suite(Arc::new(table().await)).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn blobs_() {
        blob_suite(Arc::new(blobs().await)).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn store() {
        store_suite_slowed(Arc::new(table().await), 20).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn names() {
        names_suite(Arc::new(table().await)).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn retention() {
        retention_suite(Arc::new(table().await)).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn orphans() {
        orphan_suite(Arc::new(table().await)).await;
    }

    /// Expiring items carry their expiry in the table's TTL attribute, so DynamoDB removes
    /// them; a plain write clears it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn expiry_is_the_ttl_attribute() {
        let t = table().await;
        let client = aws_sdk_dynamodb::Client::new(&config().await);
        let ttl = |pk: &'static str| {
            let (client, name) = (client.clone(), t.table_name().to_owned());
            async move {
                let out = client
                    .get_item()
                    .table_name(name)
                    .key("pk", aws_sdk_dynamodb::types::AttributeValue::S(pk.into()))
                    .key("sk", aws_sdk_dynamodb::types::AttributeValue::S("_".into()))
                    .send()
                    .await
                    .unwrap();
                out.item
                    .unwrap()
                    .get("ttl")
                    .map(|v| v.as_n().unwrap().parse::<u64>().unwrap())
            }
        };
        let at = crate::ports::unix_now() + 3600;
        t.put_expiring("a", "_", b"x".to_vec(), Cond::Absent, Some(at))
            .await
            .unwrap();
        assert_eq!(ttl("a").await, Some(at));
        t.put("a", "_", b"y".to_vec(), Cond::Any).await.unwrap();
        assert_eq!(ttl("a").await, None);
        let d = client
            .describe_time_to_live()
            .table_name(t.table_name())
            .send()
            .await
            .unwrap();
        let spec = d.time_to_live_description().unwrap();
        assert_eq!(spec.attribute_name(), Some("ttl"));
        t.delete_table().await.unwrap();
    }

    /// Bodies over one part go through a multipart upload of the final key, completed only
    /// when the digest matches; chunked uploads of any chunk sizes commit the same way.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn large_blobs() {
        let conf = config().await;
        let s = blobs().await;
        let s3 = raw_s3(&conf);
        let part = 5 * 1024 * 1024;
        let data: Vec<u8> = (0..2 * part + 123).map(|i| (i % 241) as u8).collect();
        let d = Digest::sha256_of(&data);
        let chunks = |b: &[u8]| -> Vec<Result<Bytes, io::Error>> {
            b.chunks(1 << 20).map(|c| Ok(Bytes::copy_from_slice(c))).collect()
        };
        let big = |b: &[u8]| -> ByteStream { Box::pin(futures::stream::iter(chunks(b))) };

        // a mismatch after two parts were sent: nothing visible, the multipart upload aborted
        let wrong = Digest::sha256_of(b"not these bytes");
        assert!(matches!(
            s.put(&wrong, big(&data)).await,
            Err(StoreError::DigestMismatch { .. })
        ));
        assert_eq!(s.stat(&wrong).await.unwrap(), None);
        assert_eq!(open_multipart_uploads(&s3, s.bucket()).await, 0);
        // a client that goes away midway: the same
        let mut cut = chunks(&data[..part + 10]);
        cut.push(Err(io::Error::new(io::ErrorKind::ConnectionReset, "client went away")));
        assert!(matches!(
            s.put(&d, Box::pin(futures::stream::iter(cut))).await,
            Err(StoreError::Body(_))
        ));
        assert_eq!(s.stat(&d).await.unwrap(), None);
        assert_eq!(open_multipart_uploads(&s3, s.bucket()).await, 0);

        assert_eq!(s.put(&d, big(&data)).await.unwrap(), data.len() as u64);
        assert_eq!(s.stat(&d).await.unwrap(), Some(data.len() as u64));
        assert_eq!(read_all(&s, &d, None).await, data);
        let across = ByteRange {
            start: part as u64 - 5,
            end: part as u64 + 5,
        };
        assert_eq!(read_all(&s, &d, Some(across)).await, &data[part - 5..=part + 5]);

        // a chunked upload: a chunk larger than a part, then small ones
        let id = uuid::Uuid::new_v4().to_string();
        s.upload_create(&id).await.unwrap();
        let mut off = 0u64;
        for c in [&data[..part + 7], &data[part + 7..part + 100], &data[part + 100..]] {
            off = s.upload_append(&id, off, big(c)).await.unwrap();
        }
        assert_eq!(s.upload_size(&id).await.unwrap(), data.len() as u64);
        s.delete(&d).await.unwrap();
        assert_eq!(s.upload_commit(&id, &d).await.unwrap(), data.len() as u64);
        assert_eq!(read_all(&s, &d, None).await, data);
        assert!(keys(&s3, s.bucket(), &format!("uploads/{id}/")).await.is_empty());
        assert_eq!(open_multipart_uploads(&s3, s.bucket()).await, 0);

        // the presigned URL serves the bytes
        let url = s
            .redirect_url(&d, Duration::from_secs(60))
            .await
            .unwrap()
            .expect("S3 redirects");
        let got = reqwest::get(&url).await.unwrap();
        assert!(got.status().is_success(), "{}", got.status());
        assert_eq!(got.bytes().await.unwrap(), data);
    }

    /// Records each delivery's attempt number and always asks to be retried.
    struct Never(Mutex<Vec<u32>>);

    #[async_trait]
    impl JobHandler for Never {
        async fn handle(&self, job: &Job) -> Result<(), JobError> {
            self.0.lock().unwrap().push(job.attempts);
            Err(JobError::Retry("always".into()))
        }
    }

    fn job(id: &str, n: u64) -> Job {
        Job::new(id, crate::ports::JobKind::Test { blob: n })
    }

    /// Polls until `done` says so, at most `rounds` receives; returns the outcomes seen.
    async fn poll_until(
        p: &SqsPoller,
        h: &dyn JobHandler,
        rounds: usize,
        done: impl Fn(&[Outcome]) -> bool,
    ) -> Vec<Outcome> {
        let mut seen = Vec::new();
        for _ in 0..rounds {
            seen.extend(p.poll_once(h).await.unwrap());
            if done(&seen) {
                return seen;
            }
        }
        panic!("the queue did not get there in {rounds} receives: {seen:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn jobs() {
        let conf = config().await;
        let store = Store::new(Arc::new(table().await));
        let repo = Repository::new("jobs/repo", RepositoryKind::Push);
        store.create_repository(&repo).await.unwrap();
        let sqs = aws_sdk_sqs::Client::new(&conf);
        let spec = QueueSpec {
            max_receive_count: 2,
            visibility_timeout: Duration::from_secs(30),
            ..QueueSpec::new(unique("jobs"))
        };
        let queues = create_queues_if_missing(&sqs, &spec).await.unwrap();
        let again = create_queues_if_missing(&sqs, &spec).await.unwrap();
        assert_eq!(
            (again.url.as_str(), again.dlq_url.as_str()),
            (queues.url.as_str(), queues.dlq_url.as_str())
        );
        let q = SqsJobQueue::from_client(sqs.clone(), &queues.url);
        // retries come back at once
        let poller = SqsPoller::new(sqs.clone(), &queues.url)
            .wait_time(Duration::from_secs(1))
            .backoff(Duration::ZERO, Duration::ZERO);

        // a job that fails once is delivered again and makes one version
        let h = VersionJob {
            store: store.clone(),
            repo: repo.id,
            runs: AtomicUsize::new(0),
            fail_first: 1,
        };
        q.enqueue(job("j1", 1)).await.unwrap();
        let seen = poll_until(&poller, &h, 10, |s| s.contains(&Outcome::Deleted)).await;
        assert_eq!(seen, [Outcome::Retried, Outcome::Deleted]);
        assert_eq!(h.runs.load(Ordering::SeqCst), 2);
        assert_eq!(store.repository(repo.id).await.unwrap().unwrap().latest_version, 1);

        // invariant 4: a redelivered finished job makes no second version
        q.enqueue(job("j1", 1)).await.unwrap();
        poll_until(&poller, &h, 10, |s| s.contains(&Outcome::Deleted)).await;
        assert_eq!(h.runs.load(Ordering::SeqCst), 3);
        assert_eq!(store.repository(repo.id).await.unwrap().unwrap().latest_version, 1);

        // a job that always fails is moved to the dead-letter queue after maxReceiveCount
        let never = Never(Mutex::new(Vec::new()));
        q.enqueue(job("doomed", 0)).await.unwrap();
        for _ in 0..10 {
            if poller.poll_once(&never).await.unwrap().is_empty() {
                break;
            }
        }
        assert_eq!(*never.0.lock().unwrap(), [0, 1], "attempts count the deliveries before");
        assert!(poller.poll_once(&never).await.unwrap().is_empty());
        let dead = sqs
            .receive_message()
            .queue_url(&queues.dlq_url)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap();
        let dead = dead.messages();
        assert_eq!(dead.len(), 1);
        let dead_job: Job = serde_json::from_str(dead[0].body().unwrap()).unwrap();
        assert_eq!(dead_job.id, "doomed");

        // running pollers pick up new jobs by themselves, and stop when told
        let h2 = Arc::new(VersionJob {
            store: store.clone(),
            repo: repo.id,
            runs: AtomicUsize::new(0),
            fail_first: 0,
        });
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let workers = poller.start(h2, 2, stop_rx);
        q.enqueue(job("j3", 3)).await.unwrap();
        for _ in 0..100 {
            if store.repository(repo.id).await.unwrap().unwrap().latest_version == 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(store.repository(repo.id).await.unwrap().unwrap().latest_version, 2);
        stop_tx.send(true).unwrap();
        for w in workers {
            tokio::time::timeout(Duration::from_secs(5), w).await.unwrap().unwrap();
        }
    }

    /// On a FIFO queue the job id deduplicates: a pending id enqueued again is one message.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn fifo_dedupes() {
        let conf = config().await;
        let sqs = aws_sdk_sqs::Client::new(&conf);
        let queues = create_queues_if_missing(&sqs, &QueueSpec::new(format!("{}.fifo", unique("fifo"))))
            .await
            .unwrap();
        assert!(queues.dlq_url.ends_with("-dlq.fifo"));
        let q = SqsJobQueue::from_client(sqs.clone(), &queues.url);
        q.enqueue(job("same", 1)).await.unwrap();
        q.enqueue(job("same", 1)).await.unwrap();
        let poller = SqsPoller::new(sqs, &queues.url)
            .wait_time(Duration::from_secs(1))
            .batch(10);
        struct Ok_;
        #[async_trait]
        impl JobHandler for Ok_ {
            async fn handle(&self, _: &Job) -> Result<(), JobError> {
                Ok(())
            }
        }
        assert_eq!(poller.poll_once(&Ok_).await.unwrap(), [Outcome::Deleted]);
        assert!(poller.poll_once(&Ok_).await.unwrap().is_empty());
    }
}
