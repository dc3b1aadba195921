//! A task's life, in one place: every service that starts, finishes or cancels a task goes
//! through [`Tasks`], so the state rules are written once. They are Pulp's (the task states of
//! its API documentation):
//!
//! ```text
//! waiting ──start──▶ running ──finish──▶ completed | failed | canceled
//!    │                  │
//!    │ cancel           │ cancel
//!    ▼                  ▼
//! canceled          canceling ──(the worker notices, or start)──▶ canceled
//! ```
//!
//! - A final state (`completed`, `failed`, `canceled`) never changes again.
//! - `start` turns a waiting (or redelivered, still running) task `running`; a task asked to
//!   cancel before its job ran (`canceling`) becomes `canceled` instead. `started` is when the
//!   task first ran: a follow-up run that resumes it keeps it.
//! - `finish` writes the final state, wins over `canceling`, sets `finished` (and `started`
//!   when the task never ran), the error, what it created and its last progress.
//! - `cancel` cancels a waiting task at once and asks a running one to stop (`canceling`);
//!   canceling twice is harmless; a finished task cannot be canceled.
//!
//! Layering: `domain ← ports ← {store, adapters} ← services ← http ← app ← functions/*`; a
//! service helper over the store.

use chrono::Utc;
use uuid::Uuid;

use crate::ports::StoreError;
use crate::store::{ProgressReport, ResourceRef, Store, Task, TaskState};

/// Starts, finishes and cancels tasks (see the module documentation).
#[derive(Clone, Copy)]
pub struct Tasks<'a> {
    store: &'a Store,
}

/// What `start` found.
#[derive(Debug)]
pub enum Started {
    /// The task is running now: run its job.
    Running(Box<Task>),
    /// It had finished already (a redelivered job): nothing to do.
    Finished,
    /// It was asked to cancel before its job ran, and is canceled now.
    Canceled,
    /// There is no such task.
    Missing,
}

/// How a task ended.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub state: TaskState,
    pub error: Option<String>,
    /// What the task created (`created_resources`) …
    pub created: Vec<ResourceRef>,
    /// … and the one resource it answers with (`result`).
    pub result: Option<ResourceRef>,
    /// Its final progress, when it reports any.
    pub reports: Option<Vec<ProgressReport>>,
}

impl Outcome {
    /// Completed, having created `created` (also its result) or nothing.
    pub fn completed(created: Option<ResourceRef>) -> Self {
        Outcome {
            state: TaskState::Completed,
            error: None,
            created: created.iter().cloned().collect(),
            result: created,
            reports: None,
        }
    }

    pub fn failed(error: impl Into<String>) -> Self {
        Outcome {
            state: TaskState::Failed,
            error: Some(error.into()),
            created: Vec::new(),
            result: None,
            reports: None,
        }
    }

    pub fn canceled() -> Self {
        Outcome {
            state: TaskState::Canceled,
            error: None,
            created: Vec::new(),
            result: None,
            reports: None,
        }
    }

    /// With the task's final progress.
    pub fn with_reports(mut self, reports: Option<Vec<ProgressReport>>) -> Self {
        self.reports = reports;
        self
    }
}

/// Why a task could not be canceled.
#[derive(Debug, thiserror::Error)]
pub enum CancelError {
    #[error("the task has finished already ({})", .0.as_str())]
    Finished(TaskState),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl<'a> Tasks<'a> {
    pub fn new(store: &'a Store) -> Self {
        Tasks { store }
    }

    /// Starts the task's job; `resumed` holds the progress of the run this one continues (a
    /// follow-up run), `None` for a fresh run, which starts with no progress and no error.
    pub async fn start(&self, id: Uuid, resumed: Option<Vec<ProgressReport>>) -> Result<Started, StoreError> {
        let mut found = TaskState::Waiting;
        let result = self
            .store
            .update_task::<StoreError>(id, |t| {
                found = t.state;
                let now = Utc::now();
                match t.state {
                    s if s.is_final() => {}
                    TaskState::Canceling => {
                        t.state = TaskState::Canceled;
                        t.finished = Some(now);
                        t.started.get_or_insert(now);
                    }
                    _ => {
                        t.state = TaskState::Running;
                        t.started.get_or_insert(now);
                        t.progress_reports = resumed.clone().unwrap_or_default();
                        t.error = None;
                    }
                }
                Ok(())
            })
            .await;
        Ok(match result {
            Err(StoreError::NotFound) => Started::Missing,
            Err(e) => return Err(e),
            Ok(_) if found.is_final() => Started::Finished,
            Ok(_) if found == TaskState::Canceling => Started::Canceled,
            Ok(t) => Started::Running(Box::new(t)),
        })
    }

    /// Writes the latest progress of a running task and returns the task (`None` once it is
    /// deleted), so the caller sees a cancel request.
    pub async fn progress(&self, id: Uuid, reports: Option<Vec<ProgressReport>>) -> Result<Option<Task>, StoreError> {
        let Some(reports) = reports else {
            return self.store.task(id).await;
        };
        let r = self
            .store
            .update_task::<StoreError>(id, |t| {
                if !t.state.is_final() {
                    t.progress_reports = reports.clone();
                }
                Ok(())
            })
            .await;
        match r {
            Ok(t) => Ok(Some(t)),
            Err(StoreError::NotFound) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Records how the task ended; a task that has finished already keeps its outcome. A
    /// failure to write is logged: the job's own outcome does not depend on it.
    pub async fn finish(&self, id: Uuid, outcome: Outcome) {
        let result = self
            .store
            .update_task::<StoreError>(id, |t| {
                if t.state.is_final() {
                    return Ok(());
                }
                let now = Utc::now();
                t.state = outcome.state;
                t.finished = Some(now);
                t.started.get_or_insert(now);
                t.error = outcome.error.clone();
                t.created_resources = outcome.created.clone();
                t.result = outcome.result.clone();
                if let Some(r) = &outcome.reports {
                    t.progress_reports = r.clone();
                }
                Ok(())
            })
            .await;
        if let Err(e) = result {
            tracing::error!(task = %id, error = %e, "recording the task's outcome failed");
        }
    }

    /// Cancels a task: a waiting one at once, a running one is asked to stop (`canceling`).
    pub async fn cancel(&self, id: Uuid) -> Result<Task, CancelError> {
        self.store
            .update_task(id, |t| {
                match t.state {
                    TaskState::Waiting => {
                        t.state = TaskState::Canceled;
                        t.finished = Some(Utc::now());
                    }
                    TaskState::Running => t.state = TaskState::Canceling,
                    TaskState::Canceling => {}
                    s => return Err(CancelError::Finished(s)),
                }
                Ok(())
            })
            .await
    }

    /// Records a task that ran and ended inside the request (operations that finish at once).
    pub async fn record(&self, name: &str, reserved: Vec<ResourceRef>, outcome: Outcome) -> Result<Task, StoreError> {
        let mut t = super::manage::owned(Task::new(name));
        let now = Utc::now();
        t.state = outcome.state;
        t.started = Some(now);
        t.finished = Some(now);
        t.reserved_resources = reserved;
        t.error = outcome.error;
        t.created_resources = outcome.created;
        t.result = outcome.result;
        t.progress_reports = outcome.reports.unwrap_or_default();
        self.store.create_task(&t).await?;
        Ok(t)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::adapters::memory::MemoryTable;

    async fn task(store: &Store, state: TaskState) -> Uuid {
        let mut t = Task::new("t");
        t.state = state;
        store.create_task(&t).await.unwrap();
        t.id
    }

    #[tokio::test]
    async fn start_runs_waiting_tasks_and_cancels_canceling_ones() {
        let store = Store::new(Arc::new(MemoryTable::new()));
        let tasks = Tasks::new(&store);
        let id = task(&store, TaskState::Waiting).await;
        let Started::Running(t) = tasks.start(id, None).await.unwrap() else {
            panic!("a waiting task starts");
        };
        let started = t.started;
        assert!(started.is_some());
        // a follow-up run keeps when the task first ran, and takes the progress it resumes
        let report = ProgressReport {
            message: "m".into(),
            code: "c".into(),
            state: "running".into(),
            total: None,
            done: 1,
        };
        let Started::Running(t) = tasks.start(id, Some(vec![report.clone()])).await.unwrap() else {
            panic!("a running task runs again when redelivered");
        };
        assert_eq!((t.started, t.progress_reports), (started, vec![report]));

        tasks.finish(id, Outcome::completed(None)).await;
        assert!(matches!(tasks.start(id, None).await.unwrap(), Started::Finished));

        let id = task(&store, TaskState::Canceling).await;
        assert!(matches!(tasks.start(id, None).await.unwrap(), Started::Canceled));
        let t = store.task(id).await.unwrap().unwrap();
        assert_eq!(t.state, TaskState::Canceled);
        assert!(t.finished.is_some());

        assert!(matches!(
            tasks.start(Uuid::new_v4(), None).await.unwrap(),
            Started::Missing
        ));
    }

    #[tokio::test]
    async fn finish_wins_over_canceling_but_never_over_a_final_state() {
        let store = Store::new(Arc::new(MemoryTable::new()));
        let tasks = Tasks::new(&store);
        let id = task(&store, TaskState::Canceling).await;
        tasks.finish(id, Outcome::failed("boom")).await;
        let t = store.task(id).await.unwrap().unwrap();
        assert_eq!((t.state, t.error.as_deref()), (TaskState::Failed, Some("boom")));
        assert!(t.started.is_some() && t.finished.is_some());
        tasks.finish(id, Outcome::completed(None)).await;
        assert_eq!(store.task(id).await.unwrap().unwrap().state, TaskState::Failed);
    }

    #[tokio::test]
    async fn cancel_follows_pulp() {
        let store = Store::new(Arc::new(MemoryTable::new()));
        let tasks = Tasks::new(&store);
        let waiting = task(&store, TaskState::Waiting).await;
        assert_eq!(tasks.cancel(waiting).await.unwrap().state, TaskState::Canceled);
        let running = task(&store, TaskState::Running).await;
        assert_eq!(tasks.cancel(running).await.unwrap().state, TaskState::Canceling);
        assert_eq!(tasks.cancel(running).await.unwrap().state, TaskState::Canceling);
        assert!(matches!(
            tasks.cancel(waiting).await,
            Err(CancelError::Finished(TaskState::Canceled))
        ));
    }
}
