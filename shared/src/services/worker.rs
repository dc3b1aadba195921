//! The job handler both runtimes run: it dispatches each kind of job to its service.
//!
//! Layering: `domain ← ports ← {store, adapters} ← services ← http ← app ← functions/*`; a
//! service: it knows the job types of the queue port and the services that run them.

use std::sync::Arc;

use async_trait::async_trait;

use super::orphans::Orphans;
use super::repair::Repair;
use super::tasks::{Outcome, Tasks};
use crate::ports::{write_scope, Job, JobError, JobHandler, JobKind, SyncJob};
use crate::store::Store;

pub struct Worker {
    store: Store,
    sync: Option<Arc<dyn SyncRunner>>,
    orphans: Option<Arc<Orphans>>,
    repair: Option<Arc<Repair>>,
    schedules: Option<Arc<super::Manage>>,
    copies: Option<Arc<super::Registry>>,
}

/// Runs one sync job to its end, recording progress and the outcome on the task.
#[async_trait]
pub trait SyncRunner: Send + Sync + 'static {
    /// `deadline_ms`: when this run must stop (the job's deadline, Unix milliseconds).
    async fn run(&self, job: &SyncJob, deadline_ms: Option<i64>) -> Result<(), JobError>;
}

impl Worker {
    pub fn new(store: Store, sync: Option<Arc<dyn SyncRunner>>) -> Self {
        Worker {
            store,
            sync,
            orphans: None,
            repair: None,
            schedules: None,
            copies: None,
        }
    }

    /// Runs orphan cleanups too.
    pub fn with_orphans(mut self, orphans: Arc<Orphans>) -> Self {
        self.orphans = Some(orphans);
        self
    }

    /// Fires due schedules when a schedules job comes.
    pub fn with_schedules(mut self, manage: Arc<super::Manage>) -> Self {
        self.schedules = Some(manage);
        self
    }

    /// Copies blobs from upstream into the blob store when a cache-blob job comes.
    pub fn with_blob_copies(mut self, registry: Arc<super::Registry>) -> Self {
        self.copies = Some(registry);
        self
    }

    /// Runs repository version repairs too.
    pub fn with_repair(mut self, repair: Arc<Repair>) -> Self {
        self.repair = Some(repair);
        self
    }
}

#[async_trait]
impl JobHandler for Worker {
    /// Runs the job as one write scope ([`crate::ports::durability`]) and makes its writes
    /// durable before it counts as done.
    async fn handle(&self, job: &Job) -> Result<(), JobError> {
        write_scope(async {
            let outcome = self.dispatch(job).await;
            match self.store.table().flush().await {
                Ok(()) => outcome,
                Err(e) => Err(JobError::Retry(format!(
                    "the job's writes could not be made durable: {e}"
                ))),
            }
        })
        .await
    }
}

impl Worker {
    async fn dispatch(&self, job: &Job) -> Result<(), JobError> {
        match &job.kind {
            JobKind::Sync(s) => match &self.sync {
                Some(runner) => runner.run(s, job.deadline_ms).await,
                None => {
                    let msg = "sync is not available in this runtime";
                    Tasks::new(&self.store).finish(s.task, Outcome::failed(msg)).await;
                    Err(JobError::Permanent(msg.into()))
                }
            },
            JobKind::Orphans(o) => match &self.orphans {
                Some(orphans) => orphans.run(o, job.deadline_ms).await,
                None => Err(JobError::Permanent(
                    "orphan cleanup is not available in this runtime".into(),
                )),
            },
            JobKind::Repair(r) => match &self.repair {
                Some(repair) => repair.run(r, job.deadline_ms).await,
                None => {
                    let msg = "repair is not available in this runtime";
                    Tasks::new(&self.store).finish(r.task, Outcome::failed(msg)).await;
                    Err(JobError::Permanent(msg.into()))
                }
            },
            // a firing that fails is not retried: the next tick fires what is still due
            JobKind::Schedules(_) => match &self.schedules {
                Some(manage) => match manage.fire_schedules(chrono::Utc::now()).await {
                    Ok(f) => {
                        tracing::debug!(started = f.started.len(), waiting = f.waiting, "schedules fired");
                        Ok(())
                    }
                    Err(e) => Err(JobError::Permanent(format!("firing schedules: {e}"))),
                },
                None => Err(JobError::Permanent(
                    "schedules are not available in this runtime".into(),
                )),
            },
            JobKind::CacheBlob(c) => match &self.copies {
                Some(registry) => match registry.copy_blob(c.repository, &c.digest).await {
                    Ok(()) => Ok(()),
                    Err(e @ super::RegistryError::BlobUnknown(_)) => Err(JobError::Permanent(e.to_string())),
                    Err(e) => Err(JobError::Retry(format!("copying {}: {e}", c.digest))),
                },
                None => Err(JobError::Permanent(
                    "copying blobs is not available in this runtime".into(),
                )),
            },
            #[cfg(test)]
            JobKind::Test { .. } => Err(JobError::Permanent("test jobs have no handler".into())),
        }
    }
}
