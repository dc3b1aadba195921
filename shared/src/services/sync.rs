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
//! Layering: a service; it knows ports and the store, never reqwest.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use bytes::Bytes;
use chrono::Utc;
use futures::{Stream, StreamExt};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use uuid::Uuid;

use super::content::save_manifest;
use super::manage::SyncJob;
use super::worker::SyncRunner;
use crate::domain::filter::TagFilter;
use crate::domain::media::{essence, is_schema1};
use crate::domain::{parse_manifest, ContentKey, ContentType, Digest, DomainError, ParsedManifest, Tag};
use crate::ports::{BlobStore, ByteStream, JobError, StoreError, Upstream, UpstreamError, UpstreamFactory};
use crate::store::{
    BlobRecord, LazyBlob, Policy, ProgressReport, Remote, Repository, ResourceRef, SignatureRecord, SignatureType,
    Store, TaskState, VersionWriter, WriteError,
};

/// Timing of a sync run.
#[derive(Debug, Clone)]
pub struct SyncSettings {
    /// How long the repository lease lasts without renewal.
    pub lease_ttl: Duration,
    /// How often the lease is renewed.
    pub renew_every: Duration,
    /// How often the task is checked for cancellation and progress is written.
    pub poll: Duration,
    /// Signatures fetched per manifest from a lookaside at most.
    pub max_lookaside_signatures: u32,
}

impl Default for SyncSettings {
    fn default() -> Self {
        SyncSettings {
            lease_ttl: Duration::from_secs(60),
            renew_every: Duration::from_secs(20),
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

const TAG_LIST: (&str, &str) = ("Downloading tag list", "sync.downloading.tag_list");
const MANIFESTS: (&str, &str) = ("Processing Manifests", "sync.processing.manifest");
const ARTIFACTS: (&str, &str) = ("Downloading Artifacts", "sync.downloading.artifacts");
const UNASSOCIATING: (&str, &str) = ("Un-Associating Content", "unassociating.content");
const ASSOCIATING: (&str, &str) = ("Associating Content", "associating.content");
const COSIGN_SUFFIXES: [&str; 3] = [".sig", ".att", ".sbom"];

/// What a reference is synced for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
enum Role {
    /// Selected by the filters.
    Selected,
    /// A cosign companion tag of the manifest with this hex digest.
    Companion(String),
    /// A referrer of this manifest.
    Referrer(Digest),
}

#[derive(Debug, Clone)]
enum Ref {
    Tag(Tag),
    Digest(Digest),
}

impl Ref {
    fn as_str(&self) -> &str {
        match self {
            Ref::Tag(t) => t.as_str(),
            Ref::Digest(d) => d.as_str(),
        }
    }
}

/// A synced reference: its tag (if any), its top manifest and every manifest it brings.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Image {
    tag: Option<Tag>,
    top: Digest,
    manifests: Vec<Digest>,
    role: Role,
}

/// What a sync brings, once the references are resolved (every manifest in it is stored):
/// the rest of the run downloads blobs and writes the version. A run that reaches its
/// deadline after planning keeps its plan as the task's checkpoint, and the follow-up starts
/// from it instead of listing tags and checking manifests again.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Plan {
    images: Vec<Image>,
    signatures: Vec<(Digest, Vec<SignatureRecord>)>,
    reports: Vec<ProgressReport>,
}

enum Outcome {
    Image(Image),
    Schema1(String),
    Missing(String),
}

/// The cosign companion tag's subject hex and suffix: `sha256-<hex>.sig` → (`<hex>`, `.sig`).
fn cosign_subject(tag: &str) -> Option<(&str, &str)> {
    let rest = tag.strip_prefix("sha256-")?;
    let (hex, suffix) = match rest.find('.') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let ok = hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit());
    (ok && (suffix.is_empty() || COSIGN_SUFFIXES.contains(&suffix))).then_some((hex, suffix))
}

fn is_foreign(media_type: &str) -> bool {
    media_type.contains("foreign") || media_type.contains("nondistributable")
}

/// One sync in progress.
struct Run<'a> {
    svc: &'a SyncService,
    job: &'a SyncJob,
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

#[async_trait]
impl SyncRunner for SyncService {
    async fn run(&self, job: &SyncJob) -> Result<(), JobError> {
        let store = &self.store;
        let retry = |e: StoreError| JobError::Retry(format!("reading the sync task failed: {e}"));
        let Some(task) = store.task(job.task).await.map_err(retry)? else {
            return Err(JobError::Permanent(format!("sync task {} does not exist", job.task)));
        };
        if task.state.is_final() {
            return Ok(());
        }
        if task.state == TaskState::Canceling {
            self.finish(job, TaskState::Canceled, None, None).await;
            return Ok(());
        }
        let op = job.task.to_string();
        let repo = match store.repository(job.repository).await.map_err(retry)? {
            Some(r) => r,
            None => {
                let msg = "the repository was deleted before the sync ran".to_owned();
                self.finish(job, TaskState::Failed, None, Some(msg.clone())).await;
                return Err(JobError::Permanent(msg));
            }
        };
        if repo.recent_ops.contains(&op) {
            // a redelivery of a job whose version is committed
            self.finish(job, TaskState::Completed, None, None).await;
            return Ok(());
        }
        let remote = match store.remote(job.remote).await.map_err(retry)? {
            Some(r) => r,
            None => {
                let msg = "the remote was deleted before the sync ran".to_owned();
                self.finish(job, TaskState::Failed, None, Some(msg.clone())).await;
                return Err(JobError::Permanent(msg));
            }
        };
        let up = match self.upstreams.client(&remote.upstream_config()) {
            Ok(u) => u,
            Err(e) => {
                let msg = format!("remote {}: {e}", remote.name);
                self.finish(job, TaskState::Failed, None, Some(msg.clone())).await;
                return Err(JobError::Permanent(msg));
            }
        };
        let resumed: Option<Plan> = match store.checkpoint(job.task).await {
            Ok(Some(bytes)) => match serde_json::from_slice(&bytes) {
                Ok(plan) => Some(plan),
                Err(e) => {
                    tracing::warn!(task = %job.task, error = %e, "ignoring an unreadable sync checkpoint");
                    None
                }
            },
            Ok(None) => None,
            Err(e) => return Err(retry(e)),
        };
        let resumed_reports = resumed.as_ref().map(|p| p.reports.clone());
        store
            .update_task::<StoreError>(job.task, |t| {
                if !t.state.is_final() && t.state != TaskState::Canceling {
                    t.state = TaskState::Running;
                    if resumed_reports.is_none() || t.started.is_none() {
                        t.started = Some(Utc::now());
                    }
                    t.progress_reports = resumed_reports.clone().unwrap_or_default();
                    t.error = None;
                }
                Ok(())
            })
            .await
            .map_err(retry)?;
        let run = Run {
            svc: self,
            job,
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
        let reports = run.reports();
        if let Err(SyncError::Deadline) = &outcome {
            let plan = run.plan.lock().ok().and_then(|mut p| p.take());
            if let Some(mut plan) = plan {
                plan.reports = reports.clone().unwrap_or_default();
                let saved = match serde_json::to_vec(&plan) {
                    Ok(bytes) => store.put_checkpoint(job.task, &bytes).await,
                    Err(e) => Err(StoreError::other(e)),
                };
                if let Err(e) = saved {
                    // the follow-up plans again; nothing is lost but time
                    tracing::warn!(task = %job.task, error = %e, "saving the sync checkpoint failed");
                }
            }
        } else if let Err(e) = store.delete_checkpoint(job.task).await {
            tracing::warn!(task = %job.task, error = %e, "removing the sync checkpoint failed");
        }
        match outcome {
            Ok(version) => {
                let created = version.map(|number| ResourceRef::RepositoryVersion {
                    repository: repo.id,
                    kind: repo.kind,
                    number,
                });
                self.finish_with(job, TaskState::Completed, created, None, reports)
                    .await;
                Ok(())
            }
            Err(SyncError::Canceled) => {
                self.finish_with(job, TaskState::Canceled, None, None, reports).await;
                Ok(())
            }
            Err(SyncError::Deadline) => {
                // the task stays running; the follow-up run starts from the checkpoint (when
                // planning was done) and reuses every blob and manifest this one stored
                tracing::info!(task = %job.task, repository = %repo.name, "sync reached its run deadline; continuing in a follow-up");
                Err(JobError::Continue)
            }
            Err(e) => {
                let msg = match e {
                    SyncError::Failed(m) => m,
                    SyncError::Store(e) => format!("storage error: {e}"),
                    SyncError::Write(WriteError::LeaseLost) => {
                        "the sync lost the repository's lease (it stalled longer than the lease lasts)".into()
                    }
                    SyncError::Write(e) => format!("writing the repository version failed: {e}"),
                    SyncError::Canceled => "canceled".into(),
                    SyncError::Deadline => "the run's deadline passed".into(),
                };
                let msg = format!("Sync from {} failed: {msg}", run.up.location());
                tracing::warn!(task = %job.task, repository = %repo.name, error = %msg, "sync failed");
                self.finish_with(job, TaskState::Failed, None, Some(msg.clone()), reports)
                    .await;
                Err(JobError::Permanent(msg))
            }
        }
    }
}

impl SyncService {
    async fn finish(&self, job: &SyncJob, state: TaskState, created: Option<ResourceRef>, error: Option<String>) {
        self.finish_with(job, state, created, error, None).await
    }

    /// Records the outcome on the task (the final state wins over `canceling`).
    async fn finish_with(
        &self,
        job: &SyncJob,
        state: TaskState,
        created: Option<ResourceRef>,
        error: Option<String>,
        reports: Option<Vec<ProgressReport>>,
    ) {
        let result = self
            .store
            .update_task::<StoreError>(job.task, |t| {
                if t.state.is_final() {
                    return Ok(());
                }
                t.state = state;
                t.finished = Some(Utc::now());
                if t.started.is_none() {
                    t.started = t.finished;
                }
                t.error = error.clone();
                t.created_resources = created.iter().cloned().collect();
                t.result = created.clone();
                if let Some(r) = &reports {
                    t.progress_reports = r.clone();
                }
                Ok(())
            })
            .await;
        if let Err(e) = result {
            tracing::error!(task = %job.task, error = %e, "recording the sync outcome failed");
        }
    }
}

impl Run<'_> {
    fn store(&self) -> &Store {
        &self.svc.store
    }

    fn reports(&self) -> Option<Vec<ProgressReport>> {
        self.reports.lock().ok().map(|r| r.clone())
    }

    /// Updates (or adds) the report with `code`.
    fn report(&self, (message, code): (&str, &str), f: impl FnOnce(&mut ProgressReport)) {
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

    fn start(&self, step: (&str, &str), total: Option<u64>) {
        self.report(step, |r| {
            r.state = "running".into();
            r.total = total;
        });
    }

    fn complete(&self, step: (&str, &str)) {
        self.report(step, |r| {
            r.state = "completed".into();
            if r.total.is_some() {
                r.total = Some(r.total.unwrap_or(0).max(r.done));
            }
        });
    }

    fn advance(&self, step: (&str, &str), n: u64) {
        self.report(step, |r| r.done += n);
    }

    /// A warning on the task: one report per kind, naming up to ten items.
    fn warn(&self, code: &str, what: &str, item: &str) {
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
    async fn housekeeping(&self, w: &mut VersionWriter) -> Result<()> {
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
    async fn reused(&self, key: ContentKey) -> Result<()> {
        let base = self.base.load(Ordering::Relaxed);
        if !self.store().contains(self.job.repository, base, &key).await? {
            self.store().touch_stored(&key).await?;
        }
        Ok(())
    }

    /// `Deadline` once the run's deadline has passed.
    fn check_deadline(&self) -> Result<()> {
        match self.job.deadline_ms {
            Some(d) if Utc::now().timestamp_millis() >= d => Err(SyncError::Deadline),
            _ => Ok(()),
        }
    }

    /// Renews the lease when it is due.
    async fn renew(&self, w: &mut VersionWriter) -> Result<()> {
        let due = self
            .last_renew
            .lock()
            .map(|l| l.elapsed() >= self.svc.settings.renew_every)
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
    async fn poll(&self) -> Result<()> {
        if let Ok(mut l) = self.last_poll.lock() {
            *l = Instant::now();
        }
        let reports = self
            .dirty
            .swap(false, Ordering::Relaxed)
            .then(|| self.reports())
            .flatten();
        // one read when nothing changed, one conditional write when progress did
        let t = match reports {
            Some(r) => Some(
                self.store()
                    .update_task::<StoreError>(self.job.task, |t| {
                        if !t.state.is_final() {
                            t.progress_reports = r.clone();
                        }
                        Ok(())
                    })
                    .await?,
            ),
            None => self.store().task(self.job.task).await?,
        };
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
    async fn drive<T>(
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
    async fn lease(&self, repo: &Repository) -> Result<VersionWriter> {
        let owner = format!("sync:{}:{}", self.job.task, Uuid::new_v4());
        loop {
            match self
                .store()
                .begin_write(repo.id, &owner, self.svc.settings.lease_ttl, Duration::from_secs(2))
                .await
            {
                Ok(w) => return Ok(w),
                Err(WriteError::Busy) => self.poll().await?,
                Err(WriteError::NotFound) => {
                    return Err(SyncError::Failed("the repository was deleted during the sync".into()))
                }
                Err(e) => return Err(e.into()),
            }
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
                let v = w.commit(Some(op)).await?;
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

    /// Steps 1 to 5: what to sync.
    async fn make_plan(&self, w: &mut VersionWriter, sigstore: Option<String>, extension: bool) -> Result<Plan> {
        let remote = self.remote.clone();
        let filter = TagFilter::new(
            remote.includes.as_deref().unwrap_or_default(),
            remote.excludes.as_deref().unwrap_or_default(),
        )
        .map_err(|e| failed(format!("remote {}'s include/exclude tags", remote.name), e))?;

        // 1. references
        let (refs, listed): (Vec<Ref>, Option<Vec<String>>) = match filter.literal_includes() {
            Some(tags) => {
                self.report(TAG_LIST, |r| {
                    r.state = "skipped".into();
                    r.total = Some(0);
                });
                let mut refs = Vec::new();
                for t in tags {
                    let tag =
                        Tag::parse(&t).map_err(|e| failed(format!("remote {}'s include_tags", remote.name), e))?;
                    refs.push(Ref::Tag(tag));
                }
                refs.extend(filter.digests.iter().cloned().map(Ref::Digest));
                (refs, None)
            }
            None => {
                let tags = self.list_tags(w).await?;
                let refs = tags
                    .iter()
                    .filter(|t| {
                        if filter.is_empty() {
                            true
                        } else {
                            filter.selects(t) && !t.starts_with("sha256-")
                        }
                    })
                    .filter_map(|t| match Tag::parse(t) {
                        Ok(tag) => Some(Ref::Tag(tag)),
                        Err(_) => {
                            self.warn("sync.skipped.invalid_tag", "Skipped invalid tag names", t);
                            None
                        }
                    })
                    .chain(filter.digests.iter().cloned().map(Ref::Digest))
                    .collect();
                (refs, Some(tags))
            }
        };

        // 2. manifests
        self.start(MANIFESTS, Some(refs.len() as u64));
        let literal = listed.is_none();
        let refs = refs.into_iter().map(|r| (r, Role::Selected)).collect();
        let selected = self.resolve_all(w, refs, true).await?;
        let main_found = selected.iter().any(|o| matches!(o, Outcome::Image(_)));
        if literal && !main_found && !selected.is_empty() && selected.iter().all(|o| matches!(o, Outcome::Missing(_))) {
            return Err(SyncError::Failed(format!(
                "none of the included tags and digests exists at {}",
                self.up.location()
            )));
        }
        let mut images: Vec<Image> = Vec::new();
        for o in selected {
            match o {
                Outcome::Image(i) => images.push(i),
                Outcome::Schema1(r) => {
                    self.warn("sync.skipped.schema1", "Skipped schema 1 manifests (not supported)", &r)
                }
                Outcome::Missing(r) => self.warn("sync.skipped.missing", "Not found upstream", &r),
            }
        }

        // 3. cosign companions and referrers of what was synced
        let synced: BTreeSet<Digest> = images.iter().flat_map(|i| i.manifests.iter().cloned()).collect();
        let by_hex: HashMap<String, Digest> = synced.iter().map(|d| (d.hex().to_owned(), d.clone())).collect();
        let have_tags: HashSet<String> = images
            .iter()
            .filter_map(|i| i.tag.as_ref().map(|t| t.to_string()))
            .collect();
        let mut companions: Vec<(Ref, String)> = Vec::new();
        match &listed {
            Some(tags) if !filter.is_empty() => {
                for t in tags {
                    if have_tags.contains(t) {
                        continue;
                    }
                    if let Some((hex, _)) = cosign_subject(t) {
                        if by_hex.contains_key(hex) {
                            if let Ok(tag) = Tag::parse(t) {
                                companions.push((Ref::Tag(tag), hex.to_owned()));
                            }
                        }
                    }
                }
            }
            Some(_) => {} // no filters: every tag, companions included, is selected already
            None => {
                for d in &synced {
                    for suffix in COSIGN_SUFFIXES {
                        let t = format!("sha256-{}{suffix}", d.hex());
                        if have_tags.contains(&t) {
                            continue;
                        }
                        if let Ok(tag) = Tag::parse(&t) {
                            companions.push((Ref::Tag(tag), d.hex().to_owned()));
                        }
                    }
                }
            }
        }
        if !companions.is_empty() {
            self.report(MANIFESTS, |r| {
                r.total = Some(r.total.unwrap_or(0) + companions.len() as u64)
            });
            let refs = companions
                .into_iter()
                .map(|(r, hex)| (r, Role::Companion(hex)))
                .collect();
            for o in self.resolve_all(w, refs, false).await? {
                if let Outcome::Image(i) = o {
                    images.push(i);
                }
            }
        }
        // companions of companions are not followed; referrers of every selected manifest are
        let subjects: Vec<Digest> = synced.iter().cloned().collect();
        for i in self.referrers(w, &subjects).await? {
            images.push(i);
        }

        // 4. atomic signatures
        let mut signatures: BTreeMap<Digest, Vec<SignatureRecord>> = BTreeMap::new();
        if sigstore.is_some() || extension {
            let targets: Vec<Digest> = images
                .iter()
                .filter(|i| i.role == Role::Selected)
                .flat_map(|i| i.manifests.iter().cloned())
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect();
            let sigstore = sigstore.clone();
            let this = self;
            let stream = futures::stream::iter(targets)
                .map(move |d| {
                    let sigstore = sigstore.clone();
                    async move {
                        let found = this.signatures(&d, sigstore.as_deref()).await?;
                        Ok((d, found))
                    }
                })
                .buffer_unordered(self.concurrency);
            let mut found: Vec<(Digest, Vec<SignatureRecord>)> = Vec::new();
            self.drive(w, stream, |item| {
                found.push(item);
                Ok(())
            })
            .await?;
            for (d, sigs) in found {
                if !sigs.is_empty() {
                    signatures.insert(d, sigs);
                }
            }
        }

        // 5. signed_only
        if self.job.signed_only {
            let cosign_signed: HashSet<String> = images
                .iter()
                .filter_map(|i| i.tag.as_ref())
                .filter_map(|t| cosign_subject(t.as_str()))
                .filter(|(_, suffix)| *suffix == ".sig" || suffix.is_empty())
                .map(|(hex, _)| hex.to_owned())
                .chain(listed.iter().flatten().filter_map(|t| {
                    cosign_subject(t)
                        .filter(|(_, s)| *s == ".sig" || s.is_empty())
                        .map(|(h, _)| h.to_owned())
                }))
                .collect();
            let signed = |d: &Digest| signatures.contains_key(d) || cosign_signed.contains(d.hex());
            // images first; then companions and referrers, kept when their subject is
            let companion_of = |i: &Image| match &i.role {
                Role::Companion(hex) => Some(hex.clone()),
                Role::Referrer(d) => Some(d.hex().to_owned()),
                Role::Selected => i
                    .tag
                    .as_ref()
                    .and_then(|t| cosign_subject(t.as_str()))
                    .map(|(hex, _)| hex.to_owned()),
            };
            let mut kept_hex: HashSet<String> = HashSet::new();
            let mut kept: Vec<Image> = Vec::new();
            let mut rest: Vec<(String, Image)> = Vec::new();
            for i in images {
                if let Some(subject) = companion_of(&i) {
                    rest.push((subject, i));
                    continue;
                }
                let children = &i.manifests[1..];
                if signed(&i.top) || (!children.is_empty() && children.iter().all(signed)) {
                    kept_hex.extend(i.manifests.iter().map(|d| d.hex().to_owned()));
                    kept.push(i);
                } else {
                    let name = i.tag.as_ref().map_or_else(|| i.top.to_string(), |t| t.to_string());
                    self.warn("sync.skipped.unsigned", "Skipped unsigned images (signed_only)", &name);
                }
            }
            kept.extend(
                rest.into_iter()
                    .filter(|(subject, _)| kept_hex.contains(subject))
                    .map(|(_, i)| i),
            );
            images = kept;
            signatures.retain(|d, _| kept_hex.contains(d.hex()));
        }
        self.complete(MANIFESTS);
        Ok(Plan {
            images,
            signatures: signatures.into_iter().collect(),
            reports: Vec::new(),
        })
    }

    /// Steps 6 and 7: the blobs, then the version.
    async fn apply(&self, w: &mut VersionWriter, plan: Plan) -> Result<()> {
        let remote = &self.remote;
        let Plan { images, signatures, .. } = plan;
        let all_manifests: BTreeSet<Digest> = images.iter().flat_map(|i| i.manifests.iter().cloned()).collect();
        let mut parsed: Vec<(Digest, ParsedManifest)> = Vec::with_capacity(all_manifests.len());
        for d in &all_manifests {
            // seen in this run, or stored by the run that made a resumed plan
            match self.known_manifest(d).await? {
                Some(p) => parsed.push((d.clone(), p)),
                None => {
                    return Err(SyncError::Failed(format!(
                        "manifest {d} of the sync's plan is not stored"
                    )))
                }
            }
        }
        let immediate = remote.policy == Policy::Immediate;
        let mut blobs_wanted: BTreeMap<Digest, u64> = BTreeMap::new();
        let mut download: BTreeSet<Digest> = BTreeSet::new();
        for (_, p) in &parsed {
            if let Some(c) = &p.config {
                blobs_wanted.insert(c.digest.clone(), c.size);
                download.insert(c.digest.clone());
            }
            for l in &p.layers {
                if is_foreign(&l.media_type) {
                    continue;
                }
                blobs_wanted.insert(l.digest.clone(), l.size);
                if immediate {
                    download.insert(l.digest.clone());
                }
            }
        }
        let mut missing: Vec<(Digest, u64)> = Vec::new();
        for d in &download {
            self.housekeeping(w).await?;
            if let Some(size) = self.svc.blobs.stat(d).await? {
                if self.store().blob(d).await?.is_none() {
                    self.record_blob(d, size).await?;
                } else {
                    self.reused(ContentKey::Blob(d.clone())).await?;
                }
            } else {
                missing.push((d.clone(), blobs_wanted.get(d).copied().unwrap_or(0)));
            }
        }
        // a resumed run counts on from what its earlier run downloaded
        let remaining = missing.len() as u64;
        self.report(ARTIFACTS, |r| {
            r.state = "running".into();
            r.total = Some(r.done + remaining);
        });
        {
            let this = self;
            let stream = futures::stream::iter(missing)
                .map(move |(d, size)| async move { this.download_blob(&d, size).await })
                .buffer_unordered(self.concurrency);
            self.drive(w, stream, |()| {
                self.advance(ARTIFACTS, 1);
                Ok(())
            })
            .await?;
        }
        self.complete(ARTIFACTS);
        if !immediate {
            for (d, size) in &blobs_wanted {
                self.housekeeping(w).await?;
                if download.contains(d) {
                    continue;
                }
                if self.svc.blobs.stat(d).await?.is_none() {
                    self.store()
                        .put_lazy_blob(
                            self.job.repository,
                            d,
                            &LazyBlob {
                                remote: remote.id,
                                size: *size,
                            },
                        )
                        .await?;
                }
            }
        }

        // 7. the new version's content
        let mut desired: BTreeSet<ContentKey> = BTreeSet::new();
        for i in &images {
            if let Some(t) = &i.tag {
                desired.insert(ContentKey::Tag {
                    name: t.clone(),
                    manifest: i.top.clone(),
                });
            }
        }
        desired.extend(all_manifests.iter().cloned().map(ContentKey::Manifest));
        desired.extend(blobs_wanted.keys().cloned().map(ContentKey::Blob));
        for (_, sigs) in &signatures {
            for s in sigs {
                self.housekeeping(w).await?;
                self.store().put_signature(s).await?;
                desired.insert(ContentKey::Signature(s.digest.clone()));
            }
        }
        self.associate(w, desired).await
    }

    async fn list_tags(&self, w: &mut VersionWriter) -> Result<Vec<String>> {
        self.start(TAG_LIST, None);
        let mut tags: Vec<String> = Vec::new();
        let mut next: Option<String> = None;
        let mut seen_pages: HashSet<String> = HashSet::new();
        loop {
            let page = self
                .up
                .tags_page(next.as_deref())
                .await
                .map_err(|e| failed("downloading the tag list", e))?;
            tags.extend(page.tags);
            self.advance(TAG_LIST, 1);
            match page.next {
                Some(n) if seen_pages.insert(n.clone()) => next = Some(n),
                _ => break,
            }
            self.housekeeping(w).await?;
        }
        self.report(TAG_LIST, |r| {
            r.total = Some(r.done);
            r.state = "completed".into();
        });
        let mut seen = HashSet::new();
        tags.retain(|t| seen.insert(t.clone()));
        Ok(tags)
    }

    /// Resolves references concurrently. With `count`, each advances the manifest progress;
    /// otherwise (probes that may find nothing) only those found do.
    async fn resolve_all(&self, w: &mut VersionWriter, refs: Vec<(Ref, Role)>, count: bool) -> Result<Vec<Outcome>> {
        let this = self;
        let stream = futures::stream::iter(refs)
            .map(move |(r, role)| async move { this.resolve(r, role).await })
            .buffer_unordered(self.concurrency);
        let mut out = Vec::new();
        self.drive(w, stream, |o| {
            if count || matches!(o, Outcome::Image(_)) {
                self.advance(MANIFESTS, 1);
            }
            out.push(o);
            Ok(())
        })
        .await?;
        if !count {
            // companions that were not there do not count as processed manifests
            self.report(MANIFESTS, |r| r.total = Some(r.done));
        }
        Ok(out)
    }

    /// HEAD, then reuse or GET, one reference and every manifest it lists.
    async fn resolve(&self, r: Ref, role: Role) -> Result<Outcome> {
        let at = format!("manifest {} at {}", r.as_str(), self.up.location());
        let head = match self.up.head_manifest(r.as_str()).await {
            Ok(h) => Some(h),
            Err(e) if e.is_not_found() => return Ok(Outcome::Missing(r.as_str().to_owned())),
            // some registries answer HEAD badly; the GET decides
            Err(UpstreamError::Status {
                code: 400 | 405 | 501, ..
            }) => None,
            Err(e) => return Err(failed(format!("checking {at}"), e)),
        };
        if head
            .as_ref()
            .and_then(|h| h.media_type.as_deref())
            .is_some_and(is_schema1)
        {
            return Ok(Outcome::Schema1(r.as_str().to_owned()));
        }
        let known = match &r {
            Ref::Digest(d) => Some(d.clone()),
            Ref::Tag(_) => head.and_then(|h| h.digest),
        };
        let (top, parsed) = match known {
            Some(d) => match self.known_manifest(&d).await? {
                Some(p) => (d, p),
                None => match self.fetch_manifest(&r, Some(&d)).await? {
                    Some(x) => x,
                    None => return Ok(Outcome::Schema1(r.as_str().to_owned())),
                },
            },
            None => match self.fetch_manifest(&r, None).await? {
                Some(x) => x,
                None => return Ok(Outcome::Schema1(r.as_str().to_owned())),
            },
        };
        let mut manifests = vec![top.clone()];
        let mut stack: Vec<Digest> = parsed.manifests.iter().map(|c| c.digest.clone()).collect();
        let mut depth_guard = 0usize;
        while let Some(child) = stack.pop() {
            depth_guard += 1;
            if depth_guard > 10_000 {
                return Err(SyncError::Failed(format!("{at} lists too many manifests")));
            }
            if manifests.contains(&child) {
                continue;
            }
            let p = match self.known_manifest(&child).await? {
                Some(p) => p,
                None => match self.fetch_manifest(&Ref::Digest(child.clone()), Some(&child)).await? {
                    Some((_, p)) => p,
                    None => {
                        return Err(SyncError::Failed(format!(
                            "{at} lists {child}, a schema 1 manifest, which is not supported"
                        )))
                    }
                },
            };
            stack.extend(p.manifests.iter().map(|c| c.digest.clone()));
            manifests.push(child);
        }
        Ok(Outcome::Image(Image {
            tag: match r {
                Ref::Tag(t) => Some(t),
                Ref::Digest(_) => None,
            },
            top,
            manifests,
            role,
        }))
    }

    /// A manifest already stored (or seen in this run).
    async fn known_manifest(&self, d: &Digest) -> Result<Option<ParsedManifest>> {
        if let Some(p) = self.manifests.lock().ok().and_then(|m| m.get(d).cloned()) {
            return Ok(Some(p));
        }
        match self.store().manifest(d).await? {
            Some(rec) => {
                self.reused(ContentKey::Manifest(d.clone())).await?;
                if let Ok(mut m) = self.manifests.lock() {
                    m.insert(d.clone(), rec.parsed.clone());
                }
                Ok(Some(rec.parsed))
            }
            None => Ok(None),
        }
    }

    /// GETs, verifies, parses and stores a manifest. `None` for schema 1.
    async fn fetch_manifest(&self, r: &Ref, expected: Option<&Digest>) -> Result<Option<(Digest, ParsedManifest)>> {
        let at = format!("manifest {} at {}", r.as_str(), self.up.location());
        let m = self
            .up
            .get_manifest(r.as_str())
            .await
            .map_err(|e| failed(format!("downloading {at}"), e))?;
        if m.media_type.as_deref().is_some_and(is_schema1) {
            return Ok(None);
        }
        let digest = match (r, expected) {
            (Ref::Digest(d), _) => {
                let actual = d.recompute(&m.bytes);
                if &actual != d {
                    return Err(SyncError::Failed(format!(
                        "downloading {at}: the manifest hashes to {actual}, not {d}; nothing was stored"
                    )));
                }
                actual
            }
            (Ref::Tag(_), _) => {
                let alg_of = m.digest_header.as_ref().or(expected);
                let actual = match alg_of {
                    Some(h) => h.recompute(&m.bytes),
                    None => Digest::sha256_of(&m.bytes),
                };
                if let Some(h) = &m.digest_header {
                    if &actual != h {
                        return Err(SyncError::Failed(format!(
                            "downloading {at}: the manifest hashes to {actual}, but the registry says {h}; nothing was stored"
                        )));
                    }
                }
                actual
            }
        };
        let content_type = m.media_type.as_deref().map(essence);
        let parsed = match parse_manifest(&m.bytes, content_type.as_deref()) {
            Ok(p) => p,
            Err(DomainError::Schema1) => return Ok(None),
            Err(e) => return Err(failed(format!("{at} is invalid"), e)),
        };
        save_manifest(self.store(), &self.svc.blobs, &digest, &m.bytes, parsed.clone())
            .await
            .map_err(|e| self.store_failure(&format!("storing {at}"), e))?;
        if let Ok(mut seen) = self.manifests.lock() {
            seen.insert(digest.clone(), parsed.clone());
        }
        Ok(Some((digest, parsed)))
    }

    fn store_failure(&self, what: &str, e: StoreError) -> SyncError {
        match e {
            StoreError::DigestMismatch { expected, actual } => SyncError::Failed(format!(
                "{what}: the bytes hash to {actual}, not {expected}; nothing was stored"
            )),
            StoreError::Body(src) if self.canceled.load(Ordering::Relaxed) => {
                let _ = src;
                SyncError::Canceled
            }
            StoreError::Body(src) => SyncError::Failed(format!("{what}: {src}")),
            e => SyncError::Store(e),
        }
    }

    /// Referrers of `subjects` through the OCI 1.1 API, when the upstream has it (the first
    /// subject is asked alone; an upstream without the API answers 404 and is asked no more).
    async fn referrers(&self, w: &mut VersionWriter, subjects: &[Digest]) -> Result<Vec<Image>> {
        let Some((first, others)) = subjects.split_first() else {
            return Ok(Vec::new());
        };
        let list = |s: Digest| async move {
            match self.up.referrers(&s).await {
                Ok(Some(index)) => Ok(Some((s, index))),
                Ok(None) => Ok(None),
                Err(e) if e.is_not_found() => Ok(None),
                Err(e) => Err(failed(format!("listing referrers of {s} at {}", self.up.location()), e)),
            }
        };
        let Some(head) = list(first.clone()).await? else {
            return Ok(Vec::new());
        };
        let mut indexes = vec![head];
        let stream = futures::stream::iter(others.to_vec())
            .map(list)
            .buffer_unordered(self.concurrency);
        self.drive(w, stream, |found| {
            indexes.extend(found);
            Ok(())
        })
        .await?;
        let mut seen: HashSet<Digest> = subjects.iter().cloned().collect();
        let mut refs = Vec::new();
        for (subject, index) in indexes {
            let v: serde_json::Value = serde_json::from_slice(&index).unwrap_or_default();
            for m in v["manifests"].as_array().into_iter().flatten() {
                if let Some(d) = m["digest"].as_str().and_then(|d| Digest::parse(d).ok()) {
                    if seen.insert(d.clone()) {
                        refs.push((Ref::Digest(d), Role::Referrer(subject.clone())));
                    }
                }
            }
        }
        if refs.is_empty() {
            return Ok(Vec::new());
        }
        self.report(MANIFESTS, |r| r.total = Some(r.total.unwrap_or(0) + refs.len() as u64));
        Ok(self
            .resolve_all(w, refs, true)
            .await?
            .into_iter()
            .filter_map(|o| match o {
                Outcome::Image(i) => Some(i),
                _ => None,
            })
            .collect())
    }

    /// Atomic signatures of one manifest.
    async fn signatures(&self, d: &Digest, sigstore: Option<&str>) -> Result<Vec<SignatureRecord>> {
        let mut raw: Vec<(Option<String>, Bytes)> = Vec::new();
        match sigstore {
            Some(s) => {
                for n in 1..=self.svc.settings.max_lookaside_signatures {
                    if self.canceled.load(Ordering::Relaxed) {
                        return Err(SyncError::Canceled);
                    }
                    match self.up.lookaside_signature(s, d, n).await {
                        Ok(Some(b)) => raw.push((None, b)),
                        Ok(None) => break,
                        Err(e) => return Err(failed(format!("downloading signature {n} of {d} from {s}"), e)),
                    }
                }
            }
            None => {
                let found = self
                    .up
                    .extension_signatures(d)
                    .await
                    .map_err(|e| failed(format!("downloading the signatures of {d}"), e))?;
                raw.extend(found.into_iter().map(|s| (s.name, s.content)));
            }
        }
        Ok(raw
            .into_iter()
            .map(|(name, bytes)| {
                let digest = Digest::sha256_of(&bytes);
                SignatureRecord {
                    name: name.unwrap_or_else(|| format!("{d}@{}", &digest.hex()[..32])),
                    digest,
                    signed: d.clone(),
                    kind: SignatureType::Atomic,
                    key_id: None,
                    data: base64::engine::general_purpose::STANDARD.encode(&bytes),
                    created: Utc::now(),
                }
            })
            .collect())
    }

    async fn record_blob(&self, d: &Digest, size: u64) -> Result<()> {
        self.store()
            .put_blob(&BlobRecord {
                digest: d.clone(),
                size,
                created: Utc::now(),
            })
            .await?;
        Ok(())
    }

    /// Streams one blob from upstream into the blob store (verified there), retrying a
    /// broken transfer.
    async fn download_blob(&self, d: &Digest, size: u64) -> Result<()> {
        let at = format!("blob {d} from {}/blobs/{d}", self.up.location());
        let mut attempt = 0u64;
        loop {
            if self.canceled.load(Ordering::Relaxed) {
                return Err(SyncError::Canceled);
            }
            let blob = self
                .up
                .get_blob(d)
                .await
                .map_err(|e| failed(format!("downloading {at}"), e))?;
            let body = cancelable(blob.body, self.canceled.clone());
            match self.svc.blobs.put(d, body).await {
                Ok(n) => {
                    if n != size && size != 0 {
                        tracing::debug!(digest = %d, stated = size, actual = n, "blob size differs from the manifest");
                    }
                    return self.record_blob(d, n).await;
                }
                Err(StoreError::Body(e)) if !self.canceled.load(Ordering::Relaxed) && attempt < self.retries => {
                    tracing::debug!(digest = %d, error = %e, attempt, "blob transfer broke; retrying");
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(100 << attempt.min(6))).await;
                }
                Err(e) => return Err(self.store_failure(&format!("downloading {at}"), e)),
            }
        }
    }

    /// Builds the new version from `desired`: additive or mirror.
    async fn associate(&self, w: &mut VersionWriter, desired: BTreeSet<ContentKey>) -> Result<()> {
        let repo = self.job.repository;
        let base = w.base();
        let mut removals: Vec<ContentKey> = Vec::new();
        if self.job.mirror {
            for ty in ContentType::ALL {
                for k in self.store().content(repo, base, ty, None, usize::MAX).await? {
                    if !desired.contains(&k) {
                        removals.push(k);
                    }
                }
            }
        } else {
            for k in &desired {
                if let ContentKey::Tag { name, manifest } = k {
                    if let Some(old) = self.store().tag(repo, base, name).await? {
                        if &old != manifest {
                            removals.push(ContentKey::Tag {
                                name: name.clone(),
                                manifest: old,
                            });
                        }
                    }
                }
            }
        }
        if !removals.is_empty() {
            self.start(UNASSOCIATING, None);
            for k in removals {
                self.housekeeping(w).await?;
                if w.remove(k).await? {
                    self.advance(UNASSOCIATING, 1);
                }
            }
            self.complete(UNASSOCIATING);
        }
        self.start(ASSOCIATING, None);
        for k in desired {
            self.housekeeping(w).await?;
            if w.add(k).await? {
                self.advance(ASSOCIATING, 1);
            }
        }
        self.complete(ASSOCIATING);
        Ok(())
    }
}

/// Ends `body` with an error as soon as `canceled` is set.
fn cancelable(body: ByteStream, canceled: Arc<AtomicBool>) -> ByteStream {
    Box::pin(body.map(move |chunk| {
        if canceled.load(Ordering::Relaxed) {
            Err(std::io::Error::new(std::io::ErrorKind::Interrupted, "sync canceled"))
        } else {
            chunk
        }
    }))
}

#[cfg(test)]
#[path = "sync_tests.rs"]
mod tests;
