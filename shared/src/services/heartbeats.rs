//! The job runners' workers as the management API lists them (Pulp's workers), and the status
//! document counts them: each worker (a slot of the in-process runner, an execution
//! environment of the sync-worker function) records a heartbeat in the store when it starts a
//! job, every [`HEARTBEAT_EVERY`] while the job runs, and when it ends it; an in-process runner
//! also heartbeats while idle, as it can take a job at any moment. A worker is online while its
//! last heartbeat is younger than its time to live ([`WORKER_TTL`], Pulp's), missing after.
//!
//! Layering: `domain ← ports ← {store, adapters} ← services ← http ← app ← functions/*`;
//! part of `services`, over the store and the job port.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use uuid::Uuid;

use super::invalid::ManageError;
use super::manage::Manage;
use super::namespaces::{Sort, SortKey, SortValue};
use super::NameFilter;
use crate::ports::{Job, JobError, JobHandler};
use crate::store::{Listing, Page, Store, WorkerRecord};

type Result<T, E = ManageError> = std::result::Result<T, E>;

/// How long after its last heartbeat a worker counts as online (Pulp's `WORKER_TTL`).
pub const WORKER_TTL: Duration = Duration::from_secs(30);

/// How often a worker heartbeats (a third of its time to live, as Pulp's workers do).
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(10);

struct Slot {
    name: String,
    busy: AtomicBool,
    task: Mutex<Option<Uuid>>,
}

/// The workers of one job runner, and their heartbeats.
pub struct Heartbeats {
    store: Store,
    slots: Vec<Slot>,
    versions: BTreeMap<String, String>,
}

impl Heartbeats {
    /// Workers named `names` (one per job the runner runs at once), of a build implementing
    /// `versions` (component → version).
    pub fn new(store: Store, names: Vec<String>, versions: BTreeMap<String, String>) -> Arc<Self> {
        let slots = names
            .into_iter()
            .map(|name| Slot {
                name,
                busy: AtomicBool::new(false),
                task: Mutex::new(None),
            })
            .collect();
        Arc::new(Heartbeats { store, slots, versions })
    }

    /// The workers' names.
    pub fn names(&self) -> Vec<&str> {
        self.slots.iter().map(|s| s.name.as_str()).collect()
    }

    /// Records worker `i`'s heartbeat; a failure is logged (the next heartbeat tries again).
    async fn beat(&self, i: usize) {
        let Some(slot) = self.slots.get(i) else { return };
        let current_task = *slot.task.lock().unwrap_or_else(|e| e.into_inner());
        let now = Utc::now();
        let rec = WorkerRecord {
            id: WorkerRecord::id_of(&slot.name),
            name: slot.name.clone(),
            created: now,
            last_heartbeat: now,
            ttl_secs: WORKER_TTL.as_secs(),
            versions: self.versions.clone(),
            current_task,
        };
        if let Err(e) = self.store.put_worker(&rec).await {
            tracing::warn!(worker = %slot.name, error = %e, "could not record a worker's heartbeat");
        }
    }

    /// Records every worker's heartbeat.
    pub async fn beat_all(&self) {
        for i in 0..self.slots.len() {
            self.beat(i).await;
        }
    }

    /// Heartbeats for every worker now and every [`HEARTBEAT_EVERY`] until `stop` turns true:
    /// for a runner that lives in the process and takes jobs whenever they come.
    pub fn keep_beating(self: &Arc<Self>, mut stop: watch::Receiver<bool>) -> JoinHandle<()> {
        let beats = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(HEARTBEAT_EVERY);
            loop {
                let stopped = tokio::select! {
                    _ = tick.tick() => false,
                    _ = stop.wait_for(|s| *s) => true,
                };
                if stopped {
                    return;
                }
                beats.beat_all().await;
            }
        })
    }

    /// `handler`, run by these workers: a job takes a free worker, which names the job's task
    /// and heartbeats while it runs.
    pub fn attend(self: &Arc<Self>, handler: Arc<dyn JobHandler>) -> Arc<dyn JobHandler> {
        Arc::new(Attended {
            beats: self.clone(),
            inner: handler,
        })
    }

    /// Takes a free worker for a job of `task`.
    fn claim(self: &Arc<Self>, task: Option<Uuid>) -> Option<Claimed> {
        let i = self.slots.iter().position(|s| {
            s.busy
                .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        })?;
        *self.slots[i].task.lock().unwrap_or_else(|e| e.into_inner()) = task;
        Some(Claimed { beats: self.clone(), i })
    }
}

/// A worker running a job; free again when dropped.
struct Claimed {
    beats: Arc<Heartbeats>,
    i: usize,
}

impl Drop for Claimed {
    fn drop(&mut self) {
        let slot = &self.beats.slots[self.i];
        *slot.task.lock().unwrap_or_else(|e| e.into_inner()) = None;
        slot.busy.store(false, Ordering::Release);
    }
}

struct Attended {
    beats: Arc<Heartbeats>,
    inner: Arc<dyn JobHandler>,
}

#[async_trait]
impl JobHandler for Attended {
    async fn handle(&self, job: &Job) -> Result<(), JobError> {
        let Some(claimed) = self.beats.claim(job.task()) else {
            tracing::debug!(job = %job.id, "more jobs than workers; this one runs without heartbeats");
            return self.inner.handle(job).await;
        };
        let i = claimed.i;
        self.beats.beat(i).await;
        let work = self.inner.handle(job);
        tokio::pin!(work);
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + HEARTBEAT_EVERY, HEARTBEAT_EVERY);
        let result = loop {
            tokio::select! {
                r = &mut work => break r,
                _ = tick.tick() => self.beats.beat(i).await,
            }
        };
        drop(claimed);
        self.beats.beat(i).await;
        result
    }
}

/// A range of times, as Pulp's date-time lookups give it (`__lt`, `__gte`, `__range`, …).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TimeFilter {
    pub exact: Option<DateTime<Utc>>,
    pub lt: Option<DateTime<Utc>>,
    pub lte: Option<DateTime<Utc>>,
    pub gt: Option<DateTime<Utc>>,
    pub gte: Option<DateTime<Utc>>,
    /// Inclusive at both ends.
    pub range: Option<(DateTime<Utc>, DateTime<Utc>)>,
    /// Whether the time must be unset (`true`) or set (`false`).
    pub isnull: Option<bool>,
}

impl TimeFilter {
    /// Whether `t` (a time that is always set) passes.
    pub fn matches(&self, t: DateTime<Utc>) -> bool {
        self.exact.is_none_or(|x| t == x)
            && self.lt.is_none_or(|x| t < x)
            && self.lte.is_none_or(|x| t <= x)
            && self.gt.is_none_or(|x| t > x)
            && self.gte.is_none_or(|x| t >= x)
            && self.range.is_none_or(|(a, b)| a <= t && t <= b)
            && self.isnull != Some(true)
    }
}

/// Filters on workers, as Pulp's worker list takes them, and their order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkerFilter {
    pub names: NameFilter,
    pub last_heartbeat: TimeFilter,
    /// Online (`true`) or not.
    pub online: Option<bool>,
    /// Missing (`true`: not online) or not.
    pub missing: Option<bool>,
    pub sort: Sort,
}

fn worker_value(w: &WorkerRecord, key: SortKey) -> SortValue {
    match key {
        SortKey::Name => SortValue::Text(w.name.clone()),
        SortKey::Id => SortValue::Id(w.id),
        SortKey::Created => SortValue::Time(w.created),
        SortKey::Updated | SortKey::LastHeartbeat | SortKey::Field(_) => SortValue::Time(w.last_heartbeat),
    }
}

/// The record as the API shows it at `now`: a worker that is not online runs nothing.
fn as_of(mut w: WorkerRecord, now: DateTime<Utc>) -> WorkerRecord {
    if !w.online_at(now) {
        w.current_task = None;
    }
    w
}

impl Manage {
    /// The workers the filter accepts, in its order (by name when it gives none). One scan of
    /// the workers.
    pub async fn workers(&self, f: &WorkerFilter, page: Page) -> Result<Listing<WorkerRecord>> {
        let now = Utc::now();
        let mut all: Vec<WorkerRecord> = self
            .store()
            .workers()
            .await?
            .into_iter()
            .filter(|w| {
                let online = w.online_at(now);
                f.names.matches(&w.name, w.id)
                    && f.last_heartbeat.matches(w.last_heartbeat)
                    && f.online.is_none_or(|o| o == online)
                    && f.missing.is_none_or(|m| m != online)
            })
            .map(|w| as_of(w, now))
            .collect();
        f.sort.order(&mut all, worker_value);
        Ok(page.cut(all))
    }

    pub async fn worker(&self, id: Uuid) -> Result<WorkerRecord> {
        let w = self.store().worker(id).await?.ok_or(ManageError::NotFound)?;
        Ok(as_of(w, Utc::now()))
    }

    /// The workers online now, by name (what the status document lists).
    pub async fn online_workers(&self) -> Result<Vec<WorkerRecord>> {
        let f = WorkerFilter {
            online: Some(true),
            ..WorkerFilter::default()
        };
        Ok(self.workers(&f, Page::ALL).await?.items)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::adapters::memory::MemoryTable;
    use crate::ports::{JobKind, OrphanJob};

    /// Holds its job until told to finish, reporting the worker's record meanwhile.
    struct Gate(tokio::sync::Notify);

    #[async_trait]
    impl JobHandler for Gate {
        async fn handle(&self, _: &Job) -> Result<(), JobError> {
            self.0.notified().await;
            Ok(())
        }
    }

    #[tokio::test]
    async fn a_worker_names_the_task_it_runs_and_frees_itself_after() {
        // Given a runner of two workers
        let store = Store::new(Arc::new(MemoryTable::new()));
        let beats = Heartbeats::new(store.clone(), vec!["1@h".into(), "2@h".into()], BTreeMap::new());
        let gate = Arc::new(Gate(tokio::sync::Notify::new()));
        let handler = beats.attend(gate.clone());
        let task = Uuid::new_v4();
        let job = Job::new(
            "j",
            JobKind::Orphans(OrphanJob {
                task,
                protection_secs: 0,
                only: None,
            }),
        );
        // When a job runs, Then its worker heartbeats naming the task; the other is free
        let running = tokio::spawn(async move { handler.handle(&job).await });
        let named = |store: Store| async move {
            store
                .workers()
                .await
                .unwrap()
                .into_iter()
                .map(|w| (w.name, w.current_task))
                .collect::<Vec<_>>()
        };
        for _ in 0..100 {
            if !named(store.clone()).await.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(named(store.clone()).await, vec![("1@h".to_owned(), Some(task))]);
        assert!(beats.claim(None).is_some_and(|c| c.i == 1));
        // and once it ends, the worker is free and says so
        gate.0.notify_one();
        running.await.unwrap().unwrap();
        assert_eq!(named(store.clone()).await, vec![("1@h".to_owned(), None)]);
        assert!(beats.claim(None).is_some_and(|c| c.i == 0));
    }

    #[test]
    fn time_filters_follow_pulp_s_lookups() {
        let t = Utc::now();
        let s = chrono::TimeDelta::seconds(1);
        let f = |f: TimeFilter| f.matches(t);
        assert!(f(TimeFilter::default()));
        assert!(f(TimeFilter {
            lt: Some(t + s),
            gte: Some(t),
            ..Default::default()
        }));
        assert!(!f(TimeFilter {
            lt: Some(t),
            ..Default::default()
        }));
        assert!(f(TimeFilter {
            range: Some((t, t)),
            ..Default::default()
        }));
        assert!(!f(TimeFilter {
            isnull: Some(true),
            ..Default::default()
        }));
    }
}
