//! The job handler both runtimes run: it dispatches jobs by kind to the services.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::Utc;

use super::manage::SyncJob;
use super::orphans::{OrphanJob, Orphans, ORPHAN_JOB_KIND};
use crate::ports::{Job, JobError, JobHandler};
use crate::store::{Store, TaskState};

pub struct Worker {
    store: Store,
    sync: Option<Arc<dyn SyncRunner>>,
    orphans: Option<Arc<Orphans>>,
}

/// Runs one sync job to its end, recording progress and the outcome on the task.
#[async_trait]
pub trait SyncRunner: Send + Sync + 'static {
    async fn run(&self, job: &SyncJob) -> Result<(), JobError>;
}

impl Worker {
    pub fn new(store: Store, sync: Option<Arc<dyn SyncRunner>>) -> Self {
        Worker {
            store,
            sync,
            orphans: None,
        }
    }

    /// Runs orphan cleanups too.
    pub fn with_orphans(mut self, orphans: Arc<Orphans>) -> Self {
        self.orphans = Some(orphans);
        self
    }
}

#[async_trait]
impl JobHandler for Worker {
    async fn handle(&self, job: &Job) -> Result<(), JobError> {
        match job.kind.as_str() {
            "sync" => {
                let mut s: SyncJob = serde_json::from_value(job.payload.clone())
                    .map_err(|e| JobError::Permanent(format!("bad sync job: {e}")))?;
                s.deadline_ms = job.deadline_ms;
                match &self.sync {
                    Some(runner) => runner.run(&s).await,
                    None => {
                        let _ = self
                            .store
                            .update_task::<crate::ports::StoreError>(s.task, |t| {
                                if !t.state.is_final() {
                                    t.state = TaskState::Failed;
                                    t.error = Some("sync is not available in this runtime".into());
                                    t.finished = Some(Utc::now());
                                }
                                Ok(())
                            })
                            .await;
                        Err(JobError::Permanent("no sync runner".into()))
                    }
                }
            }
            ORPHAN_JOB_KIND => {
                let mut o: OrphanJob = serde_json::from_value(job.payload.clone())
                    .map_err(|e| JobError::Permanent(format!("bad orphan cleanup job: {e}")))?;
                o.deadline_ms = job.deadline_ms;
                match &self.orphans {
                    Some(orphans) => orphans.run(&o).await,
                    None => Err(JobError::Permanent(
                        "orphan cleanup is not available in this runtime".into(),
                    )),
                }
            }
            other => Err(JobError::Permanent(format!("unknown job kind {other}"))),
        }
    }
}
