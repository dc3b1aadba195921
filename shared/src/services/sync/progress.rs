//! A sync run's housekeeping: progress reports written to the task, cancellation checks, the
//! repository lease (taken, renewed) and the run's deadline.
//!
//! Layering: `domain ← ports ← {store, adapters} ← services ← http ← app ← functions/*`; part of
//! the sync service.

use std::sync::atomic::Ordering;

use chrono::Utc;
use futures::{Stream, StreamExt};
use tokio::time::Instant;
use uuid::Uuid;

use super::{Result, Run, SyncError};
use crate::domain::ContentKey;
use crate::services::tasks::Tasks;
use crate::store::{ProgressReport, Repository, Store, TaskState, VersionWriter, WriteError};

impl Run<'_> {
    pub(super) fn store(&self) -> &Store {
        &self.svc.store
    }

    pub(super) fn reports(&self) -> Option<Vec<ProgressReport>> {
        self.reports.lock().ok().map(|r| r.clone())
    }

    /// Updates (or adds) the report with `code`.
    pub(super) fn report(&self, (message, code): (&str, &str), f: impl FnOnce(&mut ProgressReport)) {
        if let Ok(mut reports) = self.reports.lock() {
            let i = match reports.iter().position(|r| r.code == code) {
                Some(i) => i,
                None => {
                    reports.push(ProgressReport {
                        message: message.to_owned(),
                        code: code.to_owned(),
                        state: "running".into(),
                        total: None,
                        done: 0,
                    });
                    reports.len() - 1
                }
            };
            f(&mut reports[i]);
            self.dirty.store(true, Ordering::Relaxed);
        }
    }

    pub(super) fn start(&self, step: (&str, &str), total: Option<u64>) {
        self.report(step, |r| {
            r.state = "running".into();
            r.total = total;
        });
    }

    pub(super) fn complete(&self, step: (&str, &str)) {
        self.report(step, |r| {
            r.state = "completed".into();
            if r.total.is_some() {
                r.total = Some(r.total.unwrap_or(0).max(r.done));
            }
        });
    }

    pub(super) fn advance(&self, step: (&str, &str), n: u64) {
        self.report(step, |r| r.done += n);
    }

    /// A warning on the task: one report per kind, naming up to ten items.
    pub(super) fn warn(&self, code: &str, what: &str, item: &str) {
        tracing::warn!(task = %self.job.task, %code, item, "{what}");
        self.report((what, code), |r| {
            r.state = "completed".into();
            r.done += 1;
            r.total = Some(r.done);
            if r.done <= 10 {
                r.message = if r.done == 1 {
                    format!("{what}: {item}")
                } else {
                    format!("{}, {item}", r.message)
                };
            } else if r.done == 11 {
                r.message.push_str(", …");
            }
        });
    }

    /// Writes progress, checks for cancellation and renews the lease, at most every `poll`.
    pub(super) async fn housekeeping(&self, w: &mut VersionWriter) -> Result<()> {
        if self.canceled.load(Ordering::Relaxed) {
            return Err(SyncError::Canceled);
        }
        self.check_deadline()?;
        let due = self
            .last_poll
            .lock()
            .map(|l| l.elapsed() >= self.svc.settings.poll)
            .unwrap_or(true);
        if due {
            self.poll().await?;
        }
        self.renew(w).await
    }

    /// A stored blob or manifest this run will reference: unless the version it builds on
    /// holds it already, it is touched, which protects it from orphan cleanups until the new
    /// version references it.
    pub(super) async fn reused(&self, key: ContentKey) -> Result<()> {
        let base = self.base.load(Ordering::Relaxed);
        if !self.store().contains(self.job.repository, base, &key).await? {
            self.store().touch_stored(&key).await?;
        }
        Ok(())
    }

    /// `Deadline` once the run's deadline has passed.
    pub(super) fn check_deadline(&self) -> Result<()> {
        match self.deadline_ms {
            Some(d) if Utc::now().timestamp_millis() >= d => Err(SyncError::Deadline),
            _ => Ok(()),
        }
    }

    /// Renews the lease when it is due.
    pub(super) async fn renew(&self, w: &mut VersionWriter) -> Result<()> {
        let due = self
            .last_renew
            .lock()
            .map(|l| l.elapsed() >= self.svc.settings.lease.renew_every)
            .unwrap_or(true);
        if due {
            w.renew().await?;
            if let Ok(mut l) = self.last_renew.lock() {
                *l = Instant::now();
            }
        }
        Ok(())
    }

    /// Checks the task for cancellation and writes progress.
    pub(super) async fn poll(&self) -> Result<()> {
        if let Ok(mut l) = self.last_poll.lock() {
            *l = Instant::now();
        }
        let reports = self
            .dirty
            .swap(false, Ordering::Relaxed)
            .then(|| self.reports())
            .flatten();
        // one read when nothing changed, one conditional write when progress did
        let t = Tasks::new(self.store()).progress(self.job.task, reports).await?;
        let Some(t) = t else {
            return Err(SyncError::Failed("the task was deleted during the sync".into()));
        };
        if matches!(t.state, TaskState::Canceling | TaskState::Canceled) {
            self.canceled.store(true, Ordering::Relaxed);
            return Err(SyncError::Canceled);
        }
        Ok(())
    }

    /// Runs `items` to the end, doing housekeeping meanwhile; the first error stops it.
    pub(super) async fn drive<T>(
        &self,
        w: &mut VersionWriter,
        items: impl Stream<Item = Result<T>>,
        mut each: impl FnMut(T) -> Result<()>,
    ) -> Result<()> {
        let mut items = std::pin::pin!(items);
        let mut tick = tokio::time::interval(self.svc.settings.poll);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                next = items.next() => match next {
                    None => return Ok(()),
                    Some(Ok(t)) => each(t)?,
                    Some(Err(e)) => return Err(e),
                },
                _ = tick.tick() => {
                    if self.canceled.load(Ordering::Relaxed) {
                        return Err(SyncError::Canceled);
                    }
                    // what is in flight is dropped; what finished is stored and reused
                    self.check_deadline()?;
                    self.poll().await?;
                    self.renew(w).await?;
                }
            }
        }
    }

    /// Takes the repository's lease, waiting (and watching for cancellation) while another
    /// write holds it.
    pub(super) async fn lease(&self, repo: &Repository) -> Result<VersionWriter> {
        let owner = format!("sync:{}:{}", self.job.task, Uuid::new_v4());
        let lease = self.svc.settings.lease;
        loop {
            match self.store().begin_write(repo.id, &owner, lease.ttl, lease.wait).await {
                Ok(w) => return Ok(w),
                Err(WriteError::Busy) => self.poll().await?,
                Err(WriteError::NotFound) => {
                    return Err(SyncError::Failed("the repository was deleted during the sync".into()))
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
}
