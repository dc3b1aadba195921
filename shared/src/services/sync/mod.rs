//! The sync service: copies an upstream repository (through the [`Upstream`] port) into a
//! new version of a mirror repository. Both runtimes run it from a job.
//!
//! One run, in order (Pulp's container sync, plus the literal-include shortcut):
//! 1. The task turns `running`; the repository's lease is taken (a second sync of the same
//!    repository waits) and renewed while the sync runs.
//! 2. The references to sync: with literal includes only (tags without wildcards, digests)
//!    those, without listing tags; otherwise the upstream tag list (paginated by `Link`),
//!    filtered (includes, then excludes), plus digest includes.
//! 3. Each reference is checked with HEAD; a manifest already stored is reused, others are
//!    fetched, verified against their digest, parsed and stored; indexes bring every child.
//!    Schema 1 tags are skipped with a warning on the task.
//! 4. Cosign companions (`sha256-<hex>.sig|.att|.sbom`) of the synced manifests come along
//!    even when filters leave them out, and so do OCI 1.1 referrers when the upstream has
//!    the referrers API. Atomic signatures come from the remote's sigstore lookaside or the
//!    signature extension API. `signed_only` then keeps only signed images.
//! 5. Blobs are downloaded (config blobs always; layers only with the `immediate` policy,
//!    the others record where to fetch them on first pull), each verified while stored.
//! 6. The new version: additive (new content; a moved tag replaces its old unit) or mirror
//!    (exactly the synced set). It commits with the task id as the operation id, so a
//!    redelivered job finds its work done. Nothing changed: no version.
//!
//! Cancel (`canceling`) is checked every [`SyncSettings::poll`]; a canceled, failed or lost
//! sync aborts its version writer, so the latest version stays as it was.
//!
//! A run with a deadline (a Lambda invocation's) stops when it passes, commits nothing and asks
//! for a follow-up run. Steps 2 to 4 make a [`Plan`]; a run that stops after planning keeps it
//! as the task's checkpoint, and the follow-up goes straight to the blobs, downloading only
//! those not stored yet.
//!
//! The stages live in their own modules: [`plan`] (steps 2 to 4: what to sync), [`apply`]
//! (steps 5 and 6: the blobs, then the version) and [`progress`] (progress reports, the
//! repository lease, cancellation and the run's deadline). This module holds the entry point
//! and the run's life from job to task outcome.
//!
//! Layering: `domain ← ports ← {store, adapters} ← services ← http ← app ← functions/*`; this is
//! a service: it knows ports and the store, never reqwest.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;

use super::tasks::{Outcome, Started, Tasks};
use super::versions::Versions;
use super::worker::SyncRunner;
use crate::domain::{Digest, ParsedManifest};
use crate::ports::{BlobStore, JobError, LeaseTimings, StoreError, SyncJob, Upstream, UpstreamFactory};
use crate::store::{ProgressReport, Remote, Repository, ResourceRef, Store, VersionWriter, WriteError};

/// Timing of a sync run.
#[derive(Debug, Clone)]
pub struct SyncSettings {
    /// The repository lease: its lifetime, renewal and wait ([`LeaseTimings::SYNC`]).
    pub lease: LeaseTimings,
    /// How often the task is checked for cancellation and progress is written.
    pub poll: Duration,
    /// Signatures fetched per manifest from a lookaside at most.
    pub max_lookaside_signatures: u32,
}

impl Default for SyncSettings {
    fn default() -> Self {
        SyncSettings {
            lease: LeaseTimings::SYNC,
            poll: Duration::from_millis(500),
            max_lookaside_signatures: 64,
        }
    }
}

/// Runs sync jobs.
pub struct SyncService {
    store: Store,
    blobs: Arc<dyn BlobStore>,
    upstreams: Arc<dyn UpstreamFactory>,
    settings: SyncSettings,
}

impl SyncService {
    pub fn new(store: Store, blobs: Arc<dyn BlobStore>, upstreams: Arc<dyn UpstreamFactory>) -> Self {
        SyncService {
            store,
            blobs,
            upstreams,
            settings: SyncSettings::default(),
        }
    }

    pub fn with_settings(mut self, settings: SyncSettings) -> Self {
        self.settings = settings;
        self
    }
}

/// Why a run stopped.
#[derive(Debug)]
enum SyncError {
    Canceled,
    /// The run's deadline came before the end; nothing was committed.
    Deadline,
    /// A failure with its message for the task.
    Failed(String),
    Store(StoreError),
    Write(WriteError),
}

impl From<StoreError> for SyncError {
    fn from(e: StoreError) -> Self {
        SyncError::Store(e)
    }
}

impl From<WriteError> for SyncError {
    fn from(e: WriteError) -> Self {
        SyncError::Write(e)
    }
}

fn failed(what: impl fmt::Display, e: impl fmt::Display) -> SyncError {
    SyncError::Failed(format!("{what}: {e}"))
}

type Result<T, E = SyncError> = std::result::Result<T, E>;

mod apply;
mod plan;
mod progress;

use plan::Plan;

/// One sync in progress.
struct Run<'a> {
    svc: &'a SyncService,
    job: &'a SyncJob,
    /// When this run stops (Unix milliseconds), committing nothing, to continue in a follow-up.
    deadline_ms: Option<i64>,
    remote: Remote,
    up: Arc<dyn Upstream>,
    concurrency: usize,
    retries: u64,
    canceled: Arc<AtomicBool>,
    reports: Mutex<Vec<ProgressReport>>,
    dirty: AtomicBool,
    last_poll: Mutex<Instant>,
    last_renew: Mutex<Instant>,
    /// Manifests seen in this run.
    manifests: Mutex<HashMap<Digest, ParsedManifest>>,
    /// The plan this run resumes from (a checkpoint), then the plan it made or resumed.
    plan: Mutex<Option<Plan>>,
    /// The version this run builds on, once it holds the lease.
    base: std::sync::atomic::AtomicU64,
}

fn retry(e: StoreError) -> JobError {
    JobError::Retry(format!("reading the sync task failed: {e}"))
}

/// What a job needs before it can run: its repository, remote and upstream client.
struct Ready {
    repo: Repository,
    remote: Remote,
    up: Arc<dyn Upstream>,
}

#[async_trait]
impl SyncRunner for SyncService {
    async fn run(&self, job: &SyncJob, deadline_ms: Option<i64>) -> Result<(), JobError> {
        let tasks = Tasks::new(&self.store);
        let resumed = self.resumed_plan(job).await?;
        let resumed_reports = resumed.as_ref().map(|p| p.reports.clone());
        match tasks.start(job.task, resumed_reports.clone()).await.map_err(retry)? {
            Started::Running(_) => {}
            Started::Finished | Started::Canceled => return Ok(()),
            Started::Missing => return Err(JobError::Permanent(format!("sync task {} does not exist", job.task))),
        }
        let op = job.task.to_string();
        let Ready { repo, remote, up } = match self.ready(job, &op).await? {
            Some(ready) => ready,
            // a redelivery of a job whose version is committed
            None => {
                tasks.finish(job.task, Outcome::completed(None)).await;
                return Ok(());
            }
        };
        // where the repository's content came from, for repairs
        self.store.put_sync_source(repo.id, remote.id).await.map_err(retry)?;
        let run = Run {
            svc: self,
            job,
            deadline_ms,
            concurrency: remote.download_concurrency.unwrap_or(4).clamp(1, 64) as usize,
            retries: remote.max_retries.unwrap_or(3).min(20),
            remote,
            up,
            canceled: Arc::new(AtomicBool::new(false)),
            reports: Mutex::new(resumed_reports.unwrap_or_default()),
            dirty: AtomicBool::new(false),
            last_poll: Mutex::new(Instant::now()),
            last_renew: Mutex::new(Instant::now()),
            manifests: Mutex::new(HashMap::new()),
            plan: Mutex::new(resumed),
            base: std::sync::atomic::AtomicU64::new(0),
        };
        let outcome = run.execute(&repo, &op).await;
        run.keep_checkpoint(outcome.as_ref().err()).await;
        self.conclude(&run, &repo, outcome).await
    }
}

impl SyncService {
    /// The plan a run that stopped at its deadline left as the task's checkpoint.
    async fn resumed_plan(&self, job: &SyncJob) -> Result<Option<Plan>, JobError> {
        Ok(match self.store.checkpoint(job.task).await.map_err(retry)? {
            Some(bytes) => match serde_json::from_slice(&bytes) {
                Ok(plan) => Some(plan),
                Err(e) => {
                    tracing::warn!(task = %job.task, error = %e, "ignoring an unreadable sync checkpoint");
                    None
                }
            },
            None => None,
        })
    }

    /// Looks up what the job names; `None` when its version is committed already. A
    /// repository or remote deleted meanwhile, or a remote no client can be made for, fails
    /// the task.
    async fn ready(&self, job: &SyncJob, op: &str) -> Result<Option<Ready>, JobError> {
        let fail = |msg: String| async move {
            Tasks::new(&self.store)
                .finish(job.task, Outcome::failed(msg.clone()))
                .await;
            Err(JobError::Permanent(msg))
        };
        let Some(repo) = self.store.repository(job.repository).await.map_err(retry)? else {
            return fail("the repository was deleted before the sync ran".into()).await;
        };
        if repo.recent_ops.iter().any(|o| o == op) {
            return Ok(None);
        }
        let Some(remote) = self.store.remote(job.remote).await.map_err(retry)? else {
            return fail("the remote was deleted before the sync ran".into()).await;
        };
        match self.upstreams.client(&remote.upstream_config()) {
            Ok(up) => Ok(Some(Ready { repo, remote, up })),
            Err(e) => fail(format!("remote {}: {e}", remote.name)).await,
        }
    }

    /// Records the run's outcome on the task and tells the queue what became of the job.
    async fn conclude(&self, run: &Run<'_>, repo: &Repository, outcome: Result<Option<u64>>) -> Result<(), JobError> {
        let job = run.job;
        let tasks = Tasks::new(&self.store);
        let reports = run.reports();
        match outcome {
            Ok(version) => {
                let created = version.map(|number| ResourceRef::RepositoryVersion {
                    repository: repo.id,
                    kind: repo.kind,
                    number,
                });
                tasks
                    .finish(job.task, Outcome::completed(created).with_reports(reports))
                    .await;
                Ok(())
            }
            Err(SyncError::Canceled) => {
                tasks.finish(job.task, Outcome::canceled().with_reports(reports)).await;
                Ok(())
            }
            Err(SyncError::Deadline) => {
                // the task stays running; the follow-up run starts from the checkpoint (when
                // planning was done) and reuses every blob and manifest this one stored
                tracing::info!(task = %job.task, repository = %repo.name, "sync reached its run deadline; continuing in a follow-up");
                Err(JobError::Continue)
            }
            Err(e) => {
                let msg = format!("Sync from {} failed: {}", run.up.location(), e.message());
                tracing::warn!(task = %job.task, repository = %repo.name, error = %msg, "sync failed");
                tasks
                    .finish(job.task, Outcome::failed(msg.clone()).with_reports(reports))
                    .await;
                Err(JobError::Permanent(msg))
            }
        }
    }
}

impl SyncError {
    /// The failure as the task's error says it.
    fn message(self) -> String {
        match self {
            SyncError::Failed(m) => m,
            SyncError::Store(e) => format!("storage error: {e}"),
            SyncError::Write(WriteError::LeaseLost) => {
                "the sync lost the repository's lease (it stalled longer than the lease lasts)".into()
            }
            SyncError::Write(e) => format!("writing the repository version failed: {e}"),
            SyncError::Canceled => "canceled".into(),
            SyncError::Deadline => "the run's deadline passed".into(),
        }
    }
}

impl Run<'_> {
    /// A run stopped by its deadline keeps its plan as the task's checkpoint; any other end
    /// removes the checkpoint.
    async fn keep_checkpoint(&self, error: Option<&SyncError>) {
        let store = self.store();
        let task = self.job.task;
        if let Some(SyncError::Deadline) = error {
            let plan = self.plan.lock().ok().and_then(|mut p| p.take());
            if let Some(mut plan) = plan {
                plan.reports = self.reports().unwrap_or_default();
                let saved = match serde_json::to_vec(&plan) {
                    Ok(bytes) => store.put_checkpoint(task, &bytes).await,
                    Err(e) => Err(StoreError::other(e)),
                };
                if let Err(e) = saved {
                    // the follow-up plans again; nothing is lost but time
                    tracing::warn!(%task, error = %e, "saving the sync checkpoint failed");
                }
            }
        } else if let Err(e) = store.delete_checkpoint(task).await {
            tracing::warn!(%task, error = %e, "removing the sync checkpoint failed");
        }
    }

    async fn execute(&self, repo: &Repository, op: &str) -> Result<Option<u64>> {
        // the signature source: the lookaside, else the extension API when the upstream has
        // it (asked before taking the lease: a slow upstream must not hold the repository)
        let sigstore = self.remote.sigstore.clone().filter(|s| !s.trim().is_empty());
        let extension = sigstore.is_none() && self.up.supports_signatures().await.unwrap_or(false);
        let mut w = self.lease(repo).await?;
        self.base.store(w.base(), Ordering::Relaxed);
        if let Ok(mut l) = self.last_renew.lock() {
            *l = Instant::now();
        }
        if w.repository().recent_ops.iter().any(|o| o == op) {
            // another delivery of this job committed while we waited
            w.abort().await?;
            return Ok(None);
        }
        match self.sync_into(&mut w, sigstore, extension).await {
            Ok(()) => {
                if let Err(e) = self.poll().await {
                    w.abort().await?;
                    return Err(e);
                }
                let v = Versions::new(self.store()).commit(w, Some(op)).await?;
                if let Some(v) = &v {
                    tracing::info!(task = %self.job.task, repository = %repo.name, version = v.number, "sync committed a version");
                }
                Ok(v.map(|v| v.number))
            }
            Err(e) => {
                if let Err(abort) = w.abort().await {
                    tracing::warn!(task = %self.job.task, error = %abort, "aborting the sync's version failed");
                }
                Err(e)
            }
        }
    }

    async fn sync_into(&self, w: &mut VersionWriter, sigstore: Option<String>, extension: bool) -> Result<()> {
        let resumed = self.plan.lock().ok().and_then(|mut p| p.take());
        let plan = match resumed {
            Some(plan) => {
                tracing::info!(task = %self.job.task, images = plan.images.len(), "sync resumes from its checkpoint");
                plan
            }
            None => self.make_plan(w, sigstore, extension).await?,
        };
        if let Ok(mut p) = self.plan.lock() {
            *p = Some(plan.clone());
        }
        self.apply(w, plan).await
    }
}

#[cfg(test)]
mod tests;
