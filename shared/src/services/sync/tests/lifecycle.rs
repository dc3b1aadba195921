//! A sync's life: cancellation, redelivery, failures, the repository lease, the run's deadline
//! and checkpoint, lazy blobs and the protection of reused content.

use super::*;

#[tokio::test]
async fn cancel_mid_sync_leaves_no_version() {
    let h = H::new().await;
    h.fake.tagged_image("a", &[b"1", b"2", b"3"]);
    let job = h.job(false, false).await;
    h.fake.with(|s| s.cancel_on_blob = Some((h.store.clone(), job.task)));
    let t = h.run(&job).await;
    assert_eq!(t.state, TaskState::Canceled);
    assert!(t.finished.is_some());
    assert_eq!(h.latest().await, 0);
    let r = h.store.repository(h.repo.id).await.unwrap().unwrap();
    assert!(r.lease.is_none(), "the lease is released");
    // the next sync works
    let t = h.sync(false).await;
    assert_eq!(t.state, TaskState::Completed, "{:?}", t.error);
    assert_eq!(h.latest().await, 1);
}

#[tokio::test]
async fn a_redelivered_job_makes_one_version() {
    let h = H::new().await;
    h.fake.tagged_image("a", &[b"1"]);
    let job = h.job(false, false).await;
    assert_eq!(h.run(&job).await.state, TaskState::Completed);
    // the same message again: the task is final, nothing happens
    h.fake.tagged_image("b", &[b"2"]);
    assert_eq!(h.run(&job).await.state, TaskState::Completed);
    assert_eq!(h.latest().await, 1);
    // a crash after the commit, before the task was updated: the repository remembers
    h.store
        .update_task::<StoreError>(job.task, |t| {
            t.state = TaskState::Running;
            Ok(())
        })
        .await
        .unwrap();
    assert_eq!(h.run(&job).await.state, TaskState::Completed);
    assert_eq!(h.latest().await, 1);
    assert_eq!(h.tags().await, vec!["a"]);
}

#[tokio::test]
async fn a_failure_names_what_and_where() {
    let h = H::new().await;
    h.fake.tagged_image("a", &[b"1"]);
    h.fake.with(|s| {
        s.tag_list_error = Some(UpstreamError::Status {
            url: "http://fake/v2/repo/tags/list".into(),
            code: 500,
            detail: "(retried 1 times)".into(),
        })
    });
    let t = h.sync(false).await;
    assert_eq!(t.state, TaskState::Failed);
    let e = t.error.unwrap();
    assert!(e.contains("tag list"), "{e}");
    assert!(e.contains("http://fake/v2/repo/tags/list"), "{e}");
    assert!(e.contains("500"), "{e}");
    assert_eq!(h.latest().await, 0);
    // the next sync works
    h.fake.with(|s| s.tag_list_error = None);
    assert_eq!(h.sync(false).await.state, TaskState::Completed);
}

#[tokio::test]
async fn a_blob_that_does_not_match_its_digest_stores_nothing() {
    let h = H::new().await;
    h.fake.tagged_image("a", &[b"good", b"evil"]);
    let evil = Digest::sha256_of(b"evil");
    h.fake.with(|s| s.corrupt.insert(evil.clone()));
    let t = h.sync(false).await;
    assert_eq!(t.state, TaskState::Failed);
    let e = t.error.unwrap();
    assert!(e.contains(evil.as_str()) && e.contains("nothing was stored"), "{e}");
    assert!(h.blobs.stat(&evil).await.unwrap().is_none());
    assert!(h.store.blob(&evil).await.unwrap().is_none());
    assert_eq!(h.latest().await, 0);
}

#[tokio::test]
async fn two_syncs_of_one_repository_never_interleave() {
    let h = H::new().await;
    h.fake.tagged_image("a", &[b"1"]);
    // another writer holds the repository
    let w = h
        .store
        .begin_write(h.repo.id, "someone", Duration::from_secs(60), Duration::ZERO)
        .await
        .unwrap();
    let job = h.job(false, false).await;
    let svc = h.svc.clone();
    let j = job.clone();
    let running = tokio::spawn(async move { svc.run(&j, None).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let t = h.store.task(job.task).await.unwrap().unwrap();
    assert_eq!(t.state, TaskState::Running, "the sync waits for the lease");
    assert_eq!(h.latest().await, 0);
    w.abort().await.unwrap();
    running.await.unwrap().unwrap();
    assert_eq!(
        h.store.task(job.task).await.unwrap().unwrap().state,
        TaskState::Completed
    );
    assert_eq!(h.latest().await, 1);
}

#[tokio::test]
async fn pulls_of_lazy_blobs_fetch_verify_and_store_them() {
    use crate::domain::RepoName;
    use crate::services::{BlobBody, Registry, RegistryConfig, RegistryError};
    use crate::store::Distribution;

    for (policy, keep) in [(Policy::OnDemand, true), (Policy::Streamed, false)] {
        let mut h = H::new().await;
        h.fake.tagged_image("a", &[b"good-layer", b"bad-layer"]);
        h.set_remote(|r| r.policy = policy).await;
        assert_eq!(h.sync(false).await.state, TaskState::Completed);
        let (good, bad) = (Digest::sha256_of(b"good-layer"), Digest::sha256_of(b"bad-layer"));
        h.fake.with(|s| s.corrupt.insert(bad.clone()));
        h.store
            .create_distribution(&Distribution::new("m", RepoName::parse("m").unwrap(), Some(h.repo.id)))
            .await
            .unwrap();
        let name = RepoName::parse("m").unwrap();
        let plain = Registry::new(h.store.clone(), h.blobs.clone(), RegistryConfig::default());
        assert!(matches!(
            plain.blob(&name, &good, |_| Ok(None)).await,
            Err(RegistryError::BlobUnknown(_))
        ));
        let reg = Registry::new(h.store.clone(), h.blobs.clone(), RegistryConfig::default())
            .with_upstreams(Some(Arc::new(Factory(h.fake.clone()))));
        assert_eq!(reg.blob_size(&name, &good).await.unwrap(), 10);
        let pull = |d: Digest| {
            let reg = &reg;
            let name = &name;
            async move {
                let BlobBody::Stream(r) = reg.blob(name, &d, |_| Ok(None)).await.unwrap() else {
                    panic!("a stream")
                };
                assert_eq!(r.range, None);
                r.body.collect::<Vec<_>>().await
            }
        };
        let chunks = pull(good.clone()).await;
        assert!(chunks.iter().all(|c| c.is_ok()));
        let bytes: Vec<u8> = chunks.into_iter().flat_map(|c| c.unwrap().to_vec()).collect();
        assert_eq!(bytes, b"good-layer");
        assert_eq!(h.blobs.stat(&good).await.unwrap().is_some(), keep, "{policy:?}");
        assert_eq!(h.store.blob(&good).await.unwrap().is_some(), keep, "{policy:?}");
        // bytes that do not match: the client sees an error, never a whole blob; nothing stored
        let chunks = pull(bad.clone()).await;
        assert!(chunks.last().unwrap().is_err(), "{policy:?}");
        assert!(h.blobs.stat(&bad).await.unwrap().is_none());
    }
}

#[tokio::test]
async fn a_long_sync_keeps_renewing_its_lease() {
    let mut h = H::new().await;
    h.svc = Arc::new(
        SyncService::new(h.store.clone(), h.blobs.clone(), Arc::new(Factory(h.fake.clone()))).with_settings(
            SyncSettings {
                lease: LeaseTimings {
                    ttl: Duration::from_millis(300),
                    renew_every: Duration::from_millis(50),
                    wait: Duration::from_secs(2),
                },
                poll: Duration::from_millis(10),
                ..Default::default()
            },
        ),
    );
    h.fake.tagged_image("a", &[b"slow"]);
    h.fake.with(|s| s.blob_delay = Duration::from_millis(1200));
    let job = h.job(false, false).await;
    let svc = h.svc.clone();
    let j = job.clone();
    let running = tokio::spawn(async move { svc.run(&j, None).await });
    // well past the lease's lifetime, the sync still holds the repository
    tokio::time::sleep(Duration::from_millis(800)).await;
    let other = h
        .store
        .begin_write(h.repo.id, "other", Duration::from_secs(1), Duration::ZERO)
        .await;
    assert!(matches!(other, Err(WriteError::Busy)), "the lease was renewed");
    running.await.unwrap().unwrap();
    assert_eq!(
        h.store.task(job.task).await.unwrap().unwrap().state,
        TaskState::Completed
    );
    assert_eq!(h.latest().await, 1);
}

#[tokio::test]
async fn a_run_that_reaches_its_deadline_continues_in_a_follow_up_without_refetching() {
    let h = H::new().await;
    for i in 0..6u8 {
        h.fake
            .tagged_image(&format!("t{i}"), &[&[i; 3000][..], &[i + 100; 2000][..]]);
    }
    let job = h.job(false, false).await;
    // a deadline that has passed: the run stops at its first check, commits nothing, and asks
    // to continue; the task stays running
    let r = h.svc.run(&job, Some(Utc::now().timestamp_millis() - 1)).await;
    assert!(matches!(r, Err(JobError::Continue)), "{r:?}");
    let t = h.store.task(job.task).await.unwrap().unwrap();
    assert_eq!(t.state, TaskState::Running);
    assert_eq!(h.latest().await, 0, "nothing committed");
    // the follow-up run finishes the work: one version, no blob fetched twice
    // the follow-up runs without a deadline
    assert_eq!(h.run(&job).await.state, TaskState::Completed);
    assert_eq!(h.latest().await, 1);
    let calls = h.fake.calls();
    let mut blobs: Vec<&String> = calls.iter().filter(|c| c.starts_with("blob ")).collect();
    let n = blobs.len();
    blobs.sort();
    blobs.dedup();
    assert_eq!(blobs.len(), n, "no blob was downloaded twice");
}

/// A run whose deadline comes while blobs download keeps its plan as a checkpoint; the
/// follow-up starts from it: no tag list, no manifest request, no stored blob fetched again.
#[tokio::test]
async fn a_follow_up_resumes_from_the_checkpoint_of_a_run_stopped_mid_download() {
    let h = H::new().await;
    for i in 0..6u8 {
        h.fake
            .tagged_image(&format!("t{i}"), &[&[i; 3000][..], &[i + 100; 2000][..]]);
    }
    h.fake.with(|s| s.blob_delay = Duration::from_millis(150));
    let job = h.job(false, false).await;
    let r = h.svc.run(&job, Some(Utc::now().timestamp_millis() + 400)).await;
    assert!(matches!(r, Err(JobError::Continue)), "{r:?}");
    assert_eq!(h.latest().await, 0, "nothing committed");
    let first = h.fake.calls();
    let fetched: Vec<String> = first.iter().filter(|c| c.starts_with("blob ")).cloned().collect();
    assert!(
        !fetched.is_empty(),
        "some blobs were downloaded before the deadline: {first:?}"
    );
    assert!(fetched.len() < 18, "the deadline stopped the downloads: {first:?}");
    assert!(h.store.checkpoint(job.task).await.unwrap().is_some());
    let t = h.store.task(job.task).await.unwrap().unwrap();
    assert_eq!(t.state, TaskState::Running);
    assert!(t
        .progress_reports
        .iter()
        .any(|r| r.code == MANIFESTS.1 && r.state == "completed"));

    // the follow-up runs without a deadline
    h.fake.with(|s| s.blob_delay = Duration::ZERO);
    let t = h.run(&job).await;
    assert_eq!(t.state, TaskState::Completed, "{:?}", t.error);
    let second: Vec<String> = h.fake.calls()[first.len()..].to_vec();
    assert!(
        second.iter().all(|c| c.starts_with("blob ")),
        "the follow-up only downloads blobs: {second:?}"
    );
    for c in &fetched {
        assert!(!second.contains(c), "{c} was downloaded again");
    }
    assert_eq!(fetched.len() + second.len(), 18, "every blob, once");
    assert_eq!(h.latest().await, 1);
    let tags = h.tags().await;
    assert_eq!(tags.len(), 6, "{tags:?}");
    assert!(
        h.store.checkpoint(job.task).await.unwrap().is_none(),
        "the checkpoint is gone"
    );
    // the task's report covers both runs
    let listed = t.progress_reports.iter().find(|r| r.code == TAG_LIST.1).unwrap();
    assert_eq!(listed.state, "completed");
    let artifacts = t.progress_reports.iter().find(|r| r.code == ARTIFACTS.1).unwrap();
    assert_eq!(artifacts.state, "completed");
    assert_eq!((artifacts.done, artifacts.total), (18, Some(18)), "{artifacts:?}");
}

/// A sync that reuses a stored blob no repository holds touches it, which protects it from
/// an orphan cleanup until the sync's version references it; what the base version already
/// holds is not touched again.
#[tokio::test]
async fn a_sync_touches_the_stored_content_it_reuses() {
    let h = H::new().await;
    h.fake.tagged_image("a", &[b"an old orphaned layer"]);
    let d = Digest::sha256_of(b"an old orphaned layer");
    let key = ContentKey::Blob(d.clone());
    h.blobs
        .put(
            &d,
            Box::pin(futures::stream::once(async {
                Ok(Bytes::from_static(b"an old orphaned layer"))
            })),
        )
        .await
        .unwrap();
    h.store
        .put_blob(&BlobRecord {
            digest: d.clone(),
            size: 21,
            created: Utc::now() - chrono::Duration::days(30),
        })
        .await
        .unwrap();
    let month_ago = crate::ports::unix_now() - 30 * 86_400;
    let stored = crate::store::shards::shard("stored", &key.encode());
    let stored_at = || async {
        let row = h.store.table().get(&stored, &key.encode()).await.unwrap().unwrap();
        serde_json::from_slice::<serde_json::Value>(&row.value).unwrap()["at"]
            .as_u64()
            .unwrap()
    };
    let old = serde_json::to_vec(&serde_json::json!({ "at": month_ago })).unwrap();
    h.store
        .table()
        .put(&stored, &key.encode(), old.clone(), crate::ports::Cond::Any)
        .await
        .unwrap();
    assert_eq!(h.sync(false).await.state, TaskState::Completed);
    assert!(stored_at().await > month_ago + 86_400, "the reused blob was touched");
    assert!(
        !h.fake.calls().iter().any(|c| c == &format!("blob {d}")),
        "and not downloaded"
    );
    // once version 1 holds it, a re-sync does not touch it again
    h.store
        .table()
        .put(&stored, &key.encode(), old, crate::ports::Cond::Any)
        .await
        .unwrap();
    let _ = h.sync(false).await;
    assert_eq!(stored_at().await, month_ago);
}
