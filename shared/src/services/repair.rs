//! Repairing a repository version (Pulp's `POST <version>/repair/`, pulpcore's
//! `repair_version`): every blob and manifest of the version is read back from the blob store
//! and, with `verify_checksums`, hashed against its digest; what is missing or corrupt is
//! fetched again. Both runtimes run it from a job.
//!
//! One unit, in order (pulpcore's `_repair_artifacts_for_content`):
//! - bytes absent from the blob store count as missing (`repair.missing`), except a blob the
//!   repository fetches on first pull (a lazy pointer of an `on_demand` or `streamed` sync)
//!   whose bytes were never stored: that is remote content, not a stored unit;
//! - bytes whose hash is not the digest count as corrupted (`repair.corrupted`) and are
//!   deleted at once, so no client is served them again;
//! - a missing or corrupt unit is fetched again, verified while stored (the blob store
//!   publishes it only after its digest checked), and counts as repaired (`repair.repaired`).
//!   The sources, in order (each under its own upstream name): for a blob, the remote its
//!   lazy pointer names; then the repository's remote; then every remote that synced into the
//!   repository. A manifest comes first from the copy its record keeps inline;
//! - a blob that cannot be fetched now but has a lazy pointer, or whose remote has the
//!   `on_demand` policy, becomes remote again: the next pull fetches it (a pointer is written
//!   when there was none). It is listed in a warning report (`repair.on_demand`);
//! - any other unit stays missing, as pulpcore leaves an unrepairable artifact, and is listed
//!   in a warning report (`repair.unrepairable`) and the log.
//!
//! Bounds: [`REPAIR_CONCURRENCY`] units are checked at a time, each hashed as a stream (one
//! read chunk in memory), each refetch streamed into the blob store.
//!
//! A run with a deadline (a Lambda invocation's) stops before it and keeps where it got to
//! (the content type, the last unit done and the counts) as the task's checkpoint; the
//! follow-up run goes on from there. A failing store does the same and is retried. Cancel is
//! checked every [`RepairSettings::poll`].
//!
//! Layering: `domain ← ports ← {store, adapters} ← services ← http ← app ← functions/*`; a
//! service.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::Utc;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use uuid::Uuid;

use super::tasks::{Outcome, Started, Tasks};
use crate::domain::{ContentKey, ContentType, Digest, Hasher};
use crate::ports::{BlobStore, JobError, RepairJob, StoreError, UpstreamFactory};
use crate::store::{BlobRecord, LazyBlob, Policy, ProgressReport, Remote, Repository, Store, TaskState};

pub const REPAIR_TASK_NAME: &str = "pulpcore.app.tasks.repository.repair_version";

/// How many units a repair checks (reads, hashes, fetches again) at a time.
pub const REPAIR_CONCURRENCY: usize = 2;

const MISSING: (&str, &str) = ("Identify missing units", "repair.missing");
const CORRUPTED: (&str, &str) = ("Identify corrupted units", "repair.corrupted");
const REPAIRED: (&str, &str) = ("Repair corrupted units", "repair.repaired");
const UNREPAIRABLE: (&str, &str) = ("Unrepairable units", "repair.unrepairable");
const REMOTE_AGAIN: (&str, &str) = (
    "Units left on their remote, fetched on the next pull",
    "repair.on_demand",
);

/// Units read per page of the version's content.
const PAGE: usize = 64;

/// Units named in a warning report at most.
const NAMED: usize = 10;

/// The content types whose bytes live in the blob store, in the order a repair walks them.
const STAGES: [ContentType; 2] = [ContentType::Blob, ContentType::Manifest];

/// Timing of a repair run.
#[derive(Debug, Clone)]
pub struct RepairSettings {
    /// How often progress is written and the task checked for cancellation.
    pub poll: Duration,
}

impl Default for RepairSettings {
    fn default() -> Self {
        RepairSettings {
            poll: Duration::from_secs(1),
        }
    }
}

pub struct Repair {
    store: Store,
    blobs: Arc<dyn BlobStore>,
    upstreams: Option<Arc<dyn UpstreamFactory>>,
    settings: RepairSettings,
}

/// What a run counted so far; kept in the checkpoint of a run that stops early.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Tally {
    missing: u64,
    corrupted: u64,
    repaired: u64,
    unrepairable: u64,
    remote: u64,
    /// The first few units of each warning.
    unrepairable_named: Vec<String>,
    remote_named: Vec<String>,
}

impl Tally {
    /// The task's progress reports, pulpcore's three in `state`, then the warnings.
    fn reports(&self, state: &str) -> Vec<ProgressReport> {
        let count = |(message, code): (&str, &str), done| ProgressReport {
            message: message.into(),
            code: code.into(),
            state: state.into(),
            total: None,
            done,
        };
        let mut out = vec![
            count(MISSING, self.missing),
            count(CORRUPTED, self.corrupted),
            count(REPAIRED, self.repaired),
        ];
        for ((what, code), n, named) in [
            (UNREPAIRABLE, self.unrepairable, &self.unrepairable_named),
            (REMOTE_AGAIN, self.remote, &self.remote_named),
        ] {
            if n == 0 {
                continue;
            }
            let more = if n > named.len() as u64 { ", …" } else { "" };
            out.push(ProgressReport {
                message: format!("{what}: {}{more}", named.join(", ")),
                code: code.into(),
                state: "completed".into(),
                total: Some(n),
                done: n,
            });
        }
        out
    }

    fn add(&mut self, unit: &Checked) {
        match unit.found {
            Found::Missing => self.missing += 1,
            Found::Corrupted => self.corrupted += 1,
            Found::Fine | Found::Remote => {}
        }
        let name = || unit.key.encode();
        match unit.fixed {
            Fixed::Repaired => self.repaired += 1,
            Fixed::RemoteAgain => {
                self.remote += 1;
                if self.remote_named.len() < NAMED {
                    self.remote_named.push(name());
                }
            }
            Fixed::Unrepairable => {
                self.unrepairable += 1;
                if self.unrepairable_named.len() < NAMED {
                    self.unrepairable_named.push(name());
                }
            }
            Fixed::Nothing => {}
        }
    }
}

/// Where a run stopped early: the content type it was walking, the last unit it finished,
/// and what it counted.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Checkpoint {
    stage: usize,
    after: Option<String>,
    tally: Tally,
}

/// What the blob store holds for a unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Found {
    Fine,
    /// Never stored: the repository fetches it on first pull.
    Remote,
    Missing,
    Corrupted,
}

/// What became of a missing or corrupt unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fixed {
    Nothing,
    Repaired,
    RemoteAgain,
    Unrepairable,
}

struct Checked {
    key: ContentKey,
    found: Found,
    fixed: Fixed,
}

/// Why a run stopped before its end.
enum Stop {
    Canceled,
    Deadline,
    Store(StoreError),
}

impl From<StoreError> for Stop {
    fn from(e: StoreError) -> Self {
        Stop::Store(e)
    }
}

fn retry(e: StoreError) -> JobError {
    JobError::Retry(format!("repair: {e}"))
}

impl Repair {
    pub fn new(store: Store, blobs: Arc<dyn BlobStore>, upstreams: Option<Arc<dyn UpstreamFactory>>) -> Self {
        Repair {
            store,
            blobs,
            upstreams,
            settings: RepairSettings::default(),
        }
    }

    pub fn with_settings(mut self, settings: RepairSettings) -> Self {
        self.settings = settings;
        self
    }

    /// Runs a repair job to its end (or to `deadline_ms`, Unix milliseconds, after which it
    /// continues in a follow-up run) and records the outcome on its task. Rerunning it is
    /// harmless: what was repaired reads fine the second time.
    pub async fn run(&self, job: &RepairJob, deadline_ms: Option<i64>) -> Result<(), JobError> {
        let tasks = Tasks::new(&self.store);
        let resumed = self.checkpoint(job).await?;
        let reports = resumed.as_ref().map(|c| c.tally.reports("running"));
        match tasks.start(job.task, reports).await.map_err(retry)? {
            Started::Running(_) => {}
            Started::Finished | Started::Canceled => return Ok(()),
            Started::Missing => return Err(JobError::Permanent(format!("task {} does not exist", job.task))),
        }
        let fail = |msg: String| async move {
            tasks.finish(job.task, Outcome::failed(msg.clone())).await;
            Err(JobError::Permanent(msg))
        };
        let Some(repo) = self.store.repository(job.repository).await.map_err(retry)? else {
            return fail("the repository was deleted before the repair ran".into()).await;
        };
        if self.store.version(&repo, job.version).await.map_err(retry)?.is_none() {
            return fail(format!("version {} of {} does not exist", job.version, repo.name)).await;
        }
        let sources = self.sources(&repo).await.map_err(retry)?;
        tracing::info!(task = %job.task, repository = %repo.name, version = job.version, "repairing a repository version");
        let mut at = resumed.unwrap_or_default();
        let run = Run {
            svc: self,
            job,
            repo: &repo,
            sources: &sources,
            deadline_ms,
        };
        match run.walk(&mut at).await {
            Ok(()) => {
                self.forget_checkpoint(job).await;
                let t = &at.tally;
                tracing::info!(
                    task = %job.task, missing = t.missing, corrupted = t.corrupted, repaired = t.repaired,
                    unrepairable = t.unrepairable, remote = t.remote, "repair finished"
                );
                tasks
                    .finish(
                        job.task,
                        Outcome::completed(None).with_reports(Some(at.tally.reports("completed"))),
                    )
                    .await;
                Ok(())
            }
            Err(Stop::Canceled) => {
                self.forget_checkpoint(job).await;
                tasks
                    .finish(
                        job.task,
                        Outcome::canceled().with_reports(Some(at.tally.reports("canceled"))),
                    )
                    .await;
                Ok(())
            }
            Err(Stop::Deadline) => {
                self.keep_checkpoint(job, &at).await;
                tracing::info!(task = %job.task, "repair reached its run deadline; continuing in a follow-up");
                Err(JobError::Continue)
            }
            Err(Stop::Store(e)) => {
                // the retry goes on from here
                self.keep_checkpoint(job, &at).await;
                let _ = tasks.progress(job.task, Some(at.tally.reports("running"))).await;
                Err(retry(e))
            }
        }
    }

    /// The repository's remote, then the remotes that synced into it (those that still exist).
    async fn sources(&self, repo: &Repository) -> Result<Vec<Remote>, StoreError> {
        let mut ids: Vec<Uuid> = repo.remote.into_iter().collect();
        for id in self.store.sync_sources(repo.id).await? {
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(r) = self.store.remote(id).await? {
                out.push(r);
            }
        }
        Ok(out)
    }

    async fn checkpoint(&self, job: &RepairJob) -> Result<Option<Checkpoint>, JobError> {
        Ok(match self.store.checkpoint(job.task).await.map_err(retry)? {
            Some(bytes) => match serde_json::from_slice(&bytes) {
                Ok(c) => Some(c),
                Err(e) => {
                    tracing::warn!(task = %job.task, error = %e, "ignoring an unreadable repair checkpoint");
                    None
                }
            },
            None => None,
        })
    }

    async fn keep_checkpoint(&self, job: &RepairJob, at: &Checkpoint) {
        let saved = match serde_json::to_vec(at) {
            Ok(bytes) => self.store.put_checkpoint(job.task, &bytes).await,
            Err(e) => Err(StoreError::other(e)),
        };
        if let Err(e) = saved {
            tracing::warn!(task = %job.task, error = %e, "saving the repair checkpoint failed");
        }
    }

    async fn forget_checkpoint(&self, job: &RepairJob) {
        if let Err(e) = self.store.delete_checkpoint(job.task).await {
            tracing::warn!(task = %job.task, error = %e, "removing the repair checkpoint failed");
        }
    }
}

/// One run of a repair job.
struct Run<'a> {
    svc: &'a Repair,
    job: &'a RepairJob,
    repo: &'a Repository,
    /// The repository's remote and the remotes that synced into it, in that order.
    sources: &'a [Remote],
    deadline_ms: Option<i64>,
}

impl Run<'_> {
    /// Walks the version's blobs, then its manifests, from where `at` says, counting into it.
    async fn walk(&self, at: &mut Checkpoint) -> Result<(), Stop> {
        let tasks = Tasks::new(&self.svc.store);
        let mut last_poll = Instant::now();
        while let Some(&ty) = STAGES.get(at.stage) {
            loop {
                let after = at.after.as_deref().and_then(ContentKey::decode);
                let page = self
                    .svc
                    .store
                    .content(self.repo, self.job.version, ty, after.as_ref(), PAGE)
                    .await?;
                let n = page.len();
                // once the run must stop, units not started yet are skipped and those in
                // flight finish, so no unit is left half repaired and none is counted twice
                let stopping = AtomicBool::new(false);
                let mut units = futures::stream::iter(page)
                    .map(|key| {
                        let stopping = &stopping;
                        async move {
                            if stopping.load(Ordering::Relaxed) {
                                return Ok(None);
                            }
                            self.unit(key).await.map(Some)
                        }
                    })
                    .buffered(REPAIR_CONCURRENCY);
                let mut stop: Option<Stop> = None;
                while let Some(checked) = units.next().await {
                    let checked = match checked {
                        Ok(Some(c)) => c,
                        Ok(None) => continue,
                        Err(e) => {
                            stopping.store(true, Ordering::Relaxed);
                            stop.get_or_insert(Stop::Store(e));
                            continue;
                        }
                    };
                    // units come in order: all before this one are done, unless one failed
                    if matches!(stop, Some(Stop::Store(_))) {
                        continue;
                    }
                    at.tally.add(&checked);
                    at.after = Some(checked.key.encode());
                    if stop.is_some() {
                        continue;
                    }
                    if self.deadline_ms.is_some_and(|d| Utc::now().timestamp_millis() >= d) {
                        stopping.store(true, Ordering::Relaxed);
                        stop = Some(Stop::Deadline);
                        continue;
                    }
                    if last_poll.elapsed() >= self.svc.settings.poll {
                        last_poll = Instant::now();
                        let t = tasks.progress(self.job.task, Some(at.tally.reports("running"))).await?;
                        if t.is_none_or(|t| matches!(t.state, TaskState::Canceling | TaskState::Canceled)) {
                            stopping.store(true, Ordering::Relaxed);
                            stop = Some(Stop::Canceled);
                        }
                    }
                }
                if let Some(stop) = stop {
                    return Err(stop);
                }
                if n < PAGE {
                    break;
                }
            }
            at.stage += 1;
            at.after = None;
        }
        Ok(())
    }

    /// Checks one unit and repairs it when it is missing or corrupt.
    async fn unit(&self, key: ContentKey) -> Result<Checked, StoreError> {
        let (d, blob) = match &key {
            ContentKey::Blob(d) => (d.clone(), true),
            ContentKey::Manifest(d) => (d.clone(), false),
            _ => {
                return Ok(Checked {
                    key,
                    found: Found::Fine,
                    fixed: Fixed::Nothing,
                })
            }
        };
        let lazy = if blob {
            self.svc.store.lazy_blob(self.repo.id, &d).await?
        } else {
            None
        };
        let found = self.check(&d, lazy.is_some()).await?;
        let fixed = match found {
            Found::Fine | Found::Remote => Fixed::Nothing,
            Found::Missing | Found::Corrupted => {
                if found == Found::Corrupted {
                    tracing::warn!(digest = %d, repository = %self.repo.name, "digest mismatch; deleting the stored bytes");
                    self.svc.blobs.delete(&d).await?;
                } else {
                    tracing::warn!(digest = %d, repository = %self.repo.name, "stored bytes are missing");
                }
                if blob {
                    self.repair_blob(&d, lazy.as_ref()).await?
                } else {
                    self.repair_manifest(&d).await?
                }
            }
        };
        match fixed {
            Fixed::Unrepairable => {
                tracing::warn!(digest = %d, repository = %self.repo.name, "unrepairable: no source could supply it")
            }
            Fixed::RemoteAgain => {
                tracing::warn!(digest = %d, repository = %self.repo.name, "left on the remote; fetched on the next pull")
            }
            Fixed::Repaired | Fixed::Nothing => {}
        }
        Ok(Checked { key, found, fixed })
    }

    /// What the blob store holds under `d`; `lazy`: the repository has a pointer to fetch it
    /// from upstream.
    async fn check(&self, d: &Digest, lazy: bool) -> Result<Found, StoreError> {
        let absent = || if lazy { Found::Remote } else { Found::Missing };
        if self.svc.blobs.stat(d).await?.is_none() {
            return Ok(absent());
        }
        if !self.job.verify_checksums {
            return Ok(Found::Fine);
        }
        let reader = match self.svc.blobs.open(d, None).await {
            Ok(r) => r,
            Err(StoreError::NotFound) => return Ok(absent()),
            Err(e) => return Err(e),
        };
        let mut body = reader.body;
        let mut h = Hasher::new(d.algorithm());
        while let Some(chunk) = body.next().await {
            h.update(&chunk.map_err(|e| StoreError::Body(Box::new(e)))?);
        }
        Ok(if &h.finish() == d {
            Found::Fine
        } else {
            Found::Corrupted
        })
    }

    /// The remotes a blob may come from: its pointer's, then the repository's sources.
    async fn blob_sources(&self, lazy: Option<&LazyBlob>) -> Result<Vec<Remote>, StoreError> {
        let mut out: Vec<Remote> = Vec::new();
        if let Some(l) = lazy {
            match self.svc.store.remote(l.remote).await? {
                Some(r) => out.push(r),
                None => tracing::warn!(remote = %l.remote, "the remote of an on-demand blob is gone"),
            }
        }
        for r in self.sources {
            if !out.iter().any(|o| o.id == r.id) {
                out.push(r.clone());
            }
        }
        Ok(out)
    }

    async fn repair_blob(&self, d: &Digest, lazy: Option<&LazyBlob>) -> Result<Fixed, StoreError> {
        let sources = self.blob_sources(lazy).await?;
        for remote in &sources {
            if self.fetch_blob(remote, d).await? {
                return Ok(Fixed::Repaired);
            }
        }
        if lazy.is_some() && !sources.is_empty() {
            return Ok(Fixed::RemoteAgain);
        }
        if let Some(remote) = sources.iter().find(|r| r.policy == Policy::OnDemand) {
            if let Some(rec) = self.svc.store.blob(d).await? {
                self.svc
                    .store
                    .put_lazy_blob(
                        self.repo.id,
                        d,
                        &LazyBlob {
                            remote: remote.id,
                            size: rec.size,
                        },
                    )
                    .await?;
                return Ok(Fixed::RemoteAgain);
            }
        }
        Ok(Fixed::Unrepairable)
    }

    /// Streams `d` from `remote` into the blob store. `false` when the remote could not
    /// supply the right bytes; a failing blob store is an error.
    async fn fetch_blob(&self, remote: &Remote, d: &Digest) -> Result<bool, StoreError> {
        let Some(factory) = &self.svc.upstreams else {
            return Ok(false);
        };
        let up = match factory.client(&remote.upstream_config()) {
            Ok(up) => up,
            Err(e) => {
                tracing::warn!(remote = %remote.name, error = %e, "cannot make a client for the remote");
                return Ok(false);
            }
        };
        let blob = match up.get_blob(d).await {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(digest = %d, remote = %remote.name, error = %e, "fetching the blob again failed");
                return Ok(false);
            }
        };
        match self.svc.blobs.put(d, blob.body).await {
            Ok(size) => {
                if self.svc.store.blob(d).await?.is_none() {
                    self.svc
                        .store
                        .put_blob(&BlobRecord {
                            digest: d.clone(),
                            size,
                            created: Utc::now(),
                        })
                        .await?;
                }
                tracing::info!(digest = %d, remote = %remote.name, "repaired a blob");
                Ok(true)
            }
            Err(e @ (StoreError::DigestMismatch { .. } | StoreError::Body(_))) => {
                tracing::warn!(digest = %d, remote = %remote.name, error = %e, "the remote sent unusable bytes");
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// A manifest's bytes again: from the copy its record keeps inline, else from the
    /// repository's remote.
    async fn repair_manifest(&self, d: &Digest) -> Result<Fixed, StoreError> {
        let inline = self.svc.store.manifest(d).await?.and_then(|m| m.inline);
        if let Some(text) = inline {
            if self.put_bytes(d, Bytes::from(text)).await? {
                tracing::info!(digest = %d, "repaired a manifest from its record");
                return Ok(Fixed::Repaired);
            }
        }
        for remote in self.sources {
            if self.fetch_manifest(remote, d).await? {
                return Ok(Fixed::Repaired);
            }
        }
        Ok(Fixed::Unrepairable)
    }

    /// Fetches manifest `d` from `remote` into the blob store; `false` when the remote could
    /// not supply it.
    async fn fetch_manifest(&self, remote: &Remote, d: &Digest) -> Result<bool, StoreError> {
        let Some(factory) = &self.svc.upstreams else {
            return Ok(false);
        };
        let fetched = match factory.client(&remote.upstream_config()) {
            Ok(up) => up.get_manifest(d.as_str()).await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match fetched {
            Ok(m) => {
                if !self.put_bytes(d, m.bytes).await? {
                    tracing::warn!(digest = %d, remote = %remote.name, "the remote sent another manifest");
                    return Ok(false);
                }
                tracing::info!(digest = %d, remote = %remote.name, "repaired a manifest");
                Ok(true)
            }
            Err(e) => {
                tracing::warn!(digest = %d, remote = %remote.name, error = %e, "fetching the manifest again failed");
                Ok(false)
            }
        }
    }

    /// Stores `bytes` under `d`; `false` when they do not hash to it.
    async fn put_bytes(&self, d: &Digest, bytes: Bytes) -> Result<bool, StoreError> {
        let body = Box::pin(futures::stream::once(async move { Ok(bytes) }));
        match self.svc.blobs.put(d, body).await {
            Ok(_) => Ok(true),
            Err(StoreError::DigestMismatch { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }
}
