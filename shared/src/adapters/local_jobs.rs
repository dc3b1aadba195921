//! The in-process job runner: jobs persisted as items of the table port, so they survive a
//! restart when the table does (redb), run by a small pool of workers.
//!
//! Items: pk `jobs`, sk `<job id>` → [`JobItem`]. Enqueueing an id that is pending is a no-op.
//! A worker claims a job with a conditional write and follows the queue port's
//! [`RetryPolicy::LOCAL`]: success, a permanent failure and an item that is not a job delete
//! it, a transient failure puts it back with a backoff, and after [`MAX_ATTEMPTS`] it moves to
//! pk `jobs-dead`. At start, jobs a previous process left claimed are put back, so nothing is
//! lost by a crash.
//!
//! Layering: `domain ← ports ← {store, adapters} ← services ← http ← app ← functions/*`; a
//! queue adapter over the table port, wired in by `app`.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use serde::{Deserialize, Serialize};
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

use crate::ports::{Cond, Job, JobHandler, JobQueue, Query, QueueDepth, RetryPolicy, Row, StoreError, Table, Verdict};

/// Deliveries after which a job that keeps failing moves to the dead jobs.
pub const MAX_ATTEMPTS: u32 = match RetryPolicy::LOCAL.max_attempts {
    Some(n) => n,
    None => u32::MAX,
};
const PK: &str = "jobs";
const DEAD: &str = "jobs-dead";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobItem {
    pub job: Job,
    pub running: bool,
    /// Milliseconds since the epoch before which it is not run.
    pub not_before_ms: i64,
    pub enqueued_ms: i64,
    #[serde(default)]
    pub last_error: Option<String>,
}

/// The queue side: enqueue and wake the workers.
#[derive(Clone)]
pub struct LocalJobQueue {
    table: Arc<dyn Table>,
    wake: Arc<Notify>,
}

impl LocalJobQueue {
    pub fn new(table: Arc<dyn Table>) -> Self {
        LocalJobQueue {
            table,
            wake: Arc::new(Notify::new()),
        }
    }

    /// Jobs that failed [`MAX_ATTEMPTS`] times.
    pub async fn dead_jobs(&self) -> Result<Vec<JobItem>, StoreError> {
        let rows = self.table.query(DEAD, Query::prefix("")).await?;
        rows.iter()
            .map(|r| serde_json::from_slice(&r.value).map_err(StoreError::from))
            .collect()
    }

    /// Jobs not yet finished.
    pub async fn pending(&self) -> Result<usize, StoreError> {
        Ok(self.table.query(PK, Query::prefix("")).await?.len())
    }

    /// Starts `workers` workers running jobs with `handler` until `stop` turns true.
    pub async fn start(
        &self,
        handler: Arc<dyn JobHandler>,
        workers: usize,
        stop: watch::Receiver<bool>,
    ) -> Result<Vec<JoinHandle<()>>, StoreError> {
        // put back what a previous process claimed and never finished
        for row in self.table.query(PK, Query::prefix("")).await? {
            // an item that is not a job is dropped by the first worker that sees it
            let Ok(mut item) = serde_json::from_slice::<JobItem>(&row.value) else {
                continue;
            };
            if item.running {
                item.running = false;
                let _ = self
                    .table
                    .put(PK, &row.sk, serde_json::to_vec(&item)?, Cond::Rev(row.rev))
                    .await;
            }
        }
        Ok((0..workers.max(1))
            .map(|_| {
                let q = self.clone();
                let h = handler.clone();
                let stop = stop.clone();
                tokio::spawn(async move { q.work(h, stop).await })
            })
            .collect())
    }

    async fn work(&self, handler: Arc<dyn JobHandler>, mut stop: watch::Receiver<bool>) {
        loop {
            if *stop.borrow() {
                return;
            }
            let wait = match self.run_one(&*handler).await {
                Ok(Some(())) => continue,
                Ok(None) => self.next_due().await.unwrap_or(Duration::from_secs(5)),
                Err(e) => {
                    tracing::warn!(error = %e, "job runner could not read its queue");
                    Duration::from_secs(1)
                }
            };
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
                _ = stop.changed() => {}
            }
        }
    }

    async fn next_due(&self) -> Option<Duration> {
        let now = Utc::now().timestamp_millis();
        let rows = self.table.query(PK, Query::prefix("")).await.ok()?;
        rows.iter()
            .filter_map(|r| serde_json::from_slice::<JobItem>(&r.value).ok())
            .filter(|i| !i.running)
            .map(|i| Duration::from_millis((i.not_before_ms - now).max(10) as u64))
            .min()
            .map(|d| d.min(Duration::from_secs(5)))
    }

    /// Claims and runs the oldest due job; `None` when there is none.
    pub async fn run_one(&self, handler: &dyn JobHandler) -> Result<Option<()>, StoreError> {
        let now = Utc::now().timestamp_millis();
        let rows = self.table.query(PK, Query::prefix("")).await?;
        let mut due: Vec<(String, u64, JobItem)> = Vec::new();
        for row in rows {
            match serde_json::from_slice::<JobItem>(&row.value) {
                Ok(item) if !item.running && item.not_before_ms <= now => due.push((row.sk, row.rev, item)),
                Ok(_) => {}
                Err(e) => self.drop_poison(&row, e).await?,
            }
        }
        due.sort_by_key(|(_, _, i)| i.enqueued_ms);
        for (sk, rev, mut item) in due {
            item.running = true;
            let rev = match self
                .table
                .put(PK, &sk, serde_json::to_vec(&item)?, Cond::Rev(rev))
                .await
            {
                Ok(rev) => rev,
                Err(StoreError::Conflict(_)) => continue, // another worker took it
                Err(e) => return Err(e),
            };
            let attempts = item.job.attempts;
            let verdict = RetryPolicy::LOCAL.verdict(attempts, handler.handle(&item.job).await);
            verdict.log(&item.job.id, &item.job.kind_name());
            self.settle(&sk, rev, item, verdict).await?;
            return Ok(Some(()));
        }
        Ok(None)
    }

    /// Does what the verdict says with a job that ran.
    async fn settle(&self, sk: &str, rev: u64, mut item: JobItem, verdict: Verdict) -> Result<(), StoreError> {
        item.running = false;
        match verdict {
            Verdict::Done | Verdict::Failed(_) | Verdict::Poison(_) => {
                self.table.delete(PK, sk, Cond::Rev(rev)).await?;
            }
            Verdict::Continue => {
                // due again at once, as the same attempt
                item.not_before_ms = Utc::now().timestamp_millis();
                self.table
                    .put(PK, sk, serde_json::to_vec(&item)?, Cond::Rev(rev))
                    .await?;
            }
            Verdict::Retry { after, error } => {
                item.job.attempts += 1;
                item.last_error = Some(error);
                item.not_before_ms =
                    Utc::now().timestamp_millis() + i64::try_from(after.as_millis()).unwrap_or(i64::MAX / 2);
                self.table
                    .put(PK, sk, serde_json::to_vec(&item)?, Cond::Rev(rev))
                    .await?;
            }
            Verdict::GiveUp(error) => {
                item.job.attempts += 1;
                item.last_error = Some(error);
                self.table.put(DEAD, sk, serde_json::to_vec(&item)?, Cond::Any).await?;
                self.table.delete(PK, sk, Cond::Rev(rev)).await?;
            }
        }
        Ok(())
    }

    /// Removes an item that is not a job (it can never run), logging it.
    async fn drop_poison(&self, row: &Row, e: serde_json::Error) -> Result<(), StoreError> {
        Verdict::Poison(e.to_string()).log(&row.sk, "");
        match self.table.delete(PK, &row.sk, Cond::Rev(row.rev)).await {
            Ok(()) | Err(StoreError::Conflict(_)) | Err(StoreError::NotFound) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

#[async_trait]
impl JobQueue for LocalJobQueue {
    async fn enqueue(&self, job: Job) -> Result<(), StoreError> {
        let now = Utc::now().timestamp_millis();
        let id = job.id.clone();
        let item = JobItem {
            job,
            running: false,
            not_before_ms: now,
            enqueued_ms: now,
            last_error: None,
        };
        match self.table.put(PK, &id, serde_json::to_vec(&item)?, Cond::Absent).await {
            Ok(_) | Err(StoreError::Conflict(_)) => {}
            Err(e) => return Err(e),
        }
        self.wake.notify_waiters();
        self.wake.notify_one();
        Ok(())
    }
}

#[async_trait]
impl QueueDepth for LocalJobQueue {
    async fn depth(&self) -> Result<u64, StoreError> {
        Ok(self.pending().await? as u64)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;
    use crate::adapters::memory::MemoryTable;
    use crate::ports::{JobError, JobKind};

    /// Fails permanently on its first run, asks to be retried on the second.
    #[derive(Default)]
    struct Script(AtomicU32);

    #[async_trait]
    impl JobHandler for Script {
        async fn handle(&self, _: &Job) -> Result<(), JobError> {
            match self.0.fetch_add(1, Ordering::SeqCst) {
                0 => Err(JobError::Permanent("never".into())),
                _ => Err(JobError::Retry("later".into())),
            }
        }
    }

    /// The runner follows the retry policy: poison and permanent failures leave the queue,
    /// a retry comes back after the policy's backoff.
    #[tokio::test]
    async fn the_runner_follows_the_retry_policy() {
        let table: Arc<dyn Table> = Arc::new(MemoryTable::new());
        let q = LocalJobQueue::new(table.clone());
        let h = Script::default();
        // an item that is not a job (e.g. a kind an older or newer version wrote) is dropped
        table
            .put(PK, "junk", b"{\"job\":{}}".to_vec(), Cond::Absent)
            .await
            .unwrap();
        assert_eq!(q.pending().await.unwrap(), 1);
        assert!(q.run_one(&h).await.unwrap().is_none());
        assert_eq!(q.pending().await.unwrap(), 0);
        assert_eq!(h.0.load(Ordering::SeqCst), 0, "poison never reaches the handler");

        q.enqueue(Job::new("p", JobKind::Test { blob: 1 })).await.unwrap();
        q.run_one(&h).await.unwrap();
        assert_eq!(q.pending().await.unwrap(), 0, "a permanent failure is not retried");

        q.enqueue(Job::new("r", JobKind::Test { blob: 2 })).await.unwrap();
        let before = Utc::now().timestamp_millis();
        q.run_one(&h).await.unwrap();
        let rows = table.query(PK, Query::prefix("")).await.unwrap();
        let item: JobItem = serde_json::from_slice(&rows[0].value).unwrap();
        assert_eq!((item.job.attempts, item.running), (1, false));
        let backoff = RetryPolicy::LOCAL.backoff(0).as_millis() as i64;
        assert!(
            item.not_before_ms >= before + backoff,
            "retried after the policy's backoff"
        );
        assert!(q.dead_jobs().await.unwrap().is_empty());
    }
}
