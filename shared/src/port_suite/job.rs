//! The local job queue over the table port: dedupe of pending ids, retries, at-least-once
//! delivery across a restart, a dead-letter list, and idempotent version-making jobs
//! (invariant 4).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::adapters::local_jobs::{JobItem, LocalJobQueue, MAX_ATTEMPTS};
use crate::ports::{Cond, Job, JobError, JobHandler, JobQueue, Query};
use crate::store::{Repository, RepositoryKind, Store};

use super::{blob, Adapter, TTL};

/// A handler that commits a version adding one blob per job, idempotently: a job whose id the
/// repository already remembers is done. The first `fail_first` runs fail after staging.
pub struct VersionJob {
    pub store: Store,
    pub repo: uuid::Uuid,
    pub runs: AtomicUsize,
    pub fail_first: usize,
}

impl VersionJob {
    pub fn new(store: &Store, repo: uuid::Uuid, fail_first: usize) -> Self {
        VersionJob {
            store: store.clone(),
            repo,
            runs: AtomicUsize::new(0),
            fail_first,
        }
    }
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

/// A test job adding blob `n`.
pub fn job(id: &str, n: u64) -> Job {
    Job::new(id, crate::ports::JobKind::Test { blob: n })
}

/// Polls, `every` apart and at most 100 times, until the repository's latest version is `n`.
pub async fn wait_for_version(store: &Store, repo: uuid::Uuid, n: u64, every: Duration) {
    for _ in 0..100 {
        if store.repository(repo).await.unwrap().unwrap().latest_version == n {
            return;
        }
        tokio::time::sleep(every).await;
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

async fn setup(a: &impl Adapter) -> (Store, Repository, LocalJobQueue) {
    let t = a.table().await;
    let store = Store::new(t.clone());
    let repo = Repository::new("jobs/repo", RepositoryKind::Push);
    store.create_repository(&repo).await.unwrap();
    (store, repo, LocalJobQueue::new(t))
}

/// The same id twice while pending is one job; a failed attempt is retried and the job makes
/// one version; redelivery of a finished job makes no second version (invariant 4).
pub async fn retried_and_redelivered_jobs_make_one_version(a: &impl Adapter) {
    let (store, repo, q) = setup(a).await;
    q.enqueue(job("j1", 1)).await.unwrap();
    q.enqueue(job("j1", 1)).await.unwrap();
    assert_eq!(q.pending().await.unwrap(), 1);
    let h = VersionJob::new(&store, repo.id, 1);
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
}

/// Given version 1 made by a job, a job claimed by a process that died is delivered again
/// after a restart, and the restarted workers pick up newly enqueued jobs by themselves.
pub async fn a_claimed_job_survives_a_restart(a: &impl Adapter) {
    let (store, repo, q) = setup(a).await;
    q.enqueue(job("j1", 1)).await.unwrap();
    drain(&q, &VersionJob::new(&store, repo.id, 0)).await;

    q.enqueue(job("j2", 2)).await.unwrap();
    let t = a.table().await;
    let rows = t.query("jobs", Query::prefix("")).await.unwrap();
    let mut item: JobItem = serde_json::from_slice(&rows[0].value).unwrap();
    item.running = true; // claimed, then the process died
    t.put(
        "jobs",
        &rows[0].sk,
        serde_json::to_vec(&item).unwrap(),
        Cond::Rev(rows[0].rev),
    )
    .await
    .unwrap();
    // the same contents through a new handle, as after a restart
    let t2 = a.table().await;
    let q2 = LocalJobQueue::new(t2.clone());
    let store2 = Store::new(t2);
    let h2 = Arc::new(VersionJob::new(&store2, repo.id, 0));
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
    wait_for_version(&store2, repo.id, 3, Duration::from_millis(20)).await;
    assert_eq!(store2.repository(repo.id).await.unwrap().unwrap().latest_version, 3);
    stop_tx.send(true).unwrap();
    for w in workers {
        w.await.unwrap();
    }
}

/// A job that always fails ends in the dead-letter list.
pub async fn a_job_that_always_fails_is_dead(a: &impl Adapter) {
    let (_store, _repo, q) = setup(a).await;
    struct Never;
    #[async_trait]
    impl JobHandler for Never {
        async fn handle(&self, _: &Job) -> Result<(), JobError> {
            Err(JobError::Retry("always".into()))
        }
    }
    let mut j = job("doomed", 0);
    j.attempts = MAX_ATTEMPTS - 1;
    q.enqueue(j).await.unwrap();
    q.run_one(&Never).await.unwrap();
    assert_eq!(q.pending().await.unwrap(), 0);
    assert_eq!(q.dead_jobs().await.unwrap().len(), 1);
}
