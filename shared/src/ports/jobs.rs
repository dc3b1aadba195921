//! The job queue port: the background jobs Berth knows ([`JobKind`]), where they are sent
//! ([`JobQueue`]), who runs them ([`JobHandler`]), and the one policy ([`RetryPolicy`]) that
//! decides what becomes of a job that did not finish, which every consumer (the in-process
//! runner, the SQS poller, the Lambda handler) follows.
//!
//! The job types are plain data: services make them (the management service) and run them
//! (the worker); adapters store and carry them as JSON. They sit here, below both, so that the
//! queue adapters never depend on a service.
//!
//! Layering: `domain ← ports ← {store, adapters} ← services ← http ← app ← functions/*`.

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::StoreError;

/// A unit of background work. `id` makes delivery idempotent: a queue that sees an id twice
/// while the first is pending keeps one, and handlers treat a redelivered id as the same job.
///
/// On the wire (SQS bodies, stored items): `{"id", "kind", "payload", "attempts", "deadline_ms"}`,
/// where `kind` names the job and `payload` holds its arguments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    pub id: String,
    /// What to do, with its arguments.
    #[serde(flatten)]
    pub kind: JobKind,
    /// How many times it was delivered before (0 on the first delivery).
    #[serde(default)]
    pub attempts: u32,
    /// When the runtime stops this run (Lambda's 15 minutes), in milliseconds since the epoch;
    /// a long job stops before it and continues in a follow-up (`JobError::Continue`). Set by
    /// the consumer that runs the job, never by its sender.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline_ms: Option<i64>,
}

/// Every kind of job, with its arguments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "payload")]
pub enum JobKind {
    /// Sync a repository from a remote (Pulp's `…/sync/`).
    #[serde(rename = "sync")]
    Sync(SyncJob),
    /// Remove content no repository references (Pulp's `orphans/cleanup/`).
    #[serde(rename = "orphans")]
    Orphans(OrphanJob),
    /// Check and mend the stored bytes of a repository version (Pulp's `…/versions/<n>/repair/`).
    #[serde(rename = "repair")]
    Repair(RepairJob),
    /// Fire the schedules that are due (on AWS, an EventBridge Scheduler schedule sends this
    /// every minute; the embedded runtime fires them in-process instead).
    #[serde(rename = "schedules")]
    Schedules(ScheduleTick),
    /// Copy a blob a repository holds on demand from its upstream into the blob store (on
    /// AWS, where a pull that misses does not carry the bytes through the registry function).
    #[serde(rename = "cache-blob")]
    CacheBlob(CacheBlobJob),
    /// A job the queue suites run; no handler in the crate knows it.
    #[cfg(test)]
    #[serde(rename = "test")]
    Test { blob: u64 },
}

/// A schedules job's arguments: none (`{}`); the handler fires what is due by its own clock.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleTick {}

/// A cache-blob job's arguments: the repository whose on-demand record says where the blob
/// comes from, and the blob.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheBlobJob {
    pub repository: Uuid,
    pub digest: crate::domain::Digest,
}

/// A sync job's arguments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncJob {
    pub task: Uuid,
    pub repository: Uuid,
    pub remote: Uuid,
    pub mirror: bool,
    pub signed_only: bool,
}

/// An orphan cleanup job's arguments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrphanJob {
    pub task: Uuid,
    /// Content stored or reused more recently than this (seconds) stays.
    pub protection_secs: u64,
    /// Only these units (encoded content keys) are considered, when set.
    #[serde(default)]
    pub only: Option<Vec<String>>,
}

/// A repair job's arguments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepairJob {
    pub task: Uuid,
    pub repository: Uuid,
    /// The version whose content is checked.
    pub version: u64,
    /// Hash the stored bytes too (else only check they exist).
    #[serde(default = "yes")]
    pub verify_checksums: bool,
}

fn yes() -> bool {
    true
}

impl Job {
    /// A job on its first delivery, with the id of the task it runs (the usual id: one job per
    /// task).
    pub fn new(id: impl Into<String>, kind: JobKind) -> Self {
        Job {
            id: id.into(),
            kind,
            attempts: 0,
            deadline_ms: None,
        }
    }

    /// Reads a job from its JSON; a body that is not a job is poison (it can never run).
    pub fn from_json(body: &[u8]) -> Result<Job, Poison> {
        serde_json::from_slice(body).map_err(|e| Poison(e.to_string()))
    }

    /// The task the job runs, when it has one.
    pub fn task(&self) -> Option<Uuid> {
        match &self.kind {
            JobKind::Sync(s) => Some(s.task),
            JobKind::Repair(r) => Some(r.task),
            JobKind::Orphans(o) => Some(o.task),
            JobKind::Schedules(_) | JobKind::CacheBlob(_) => None,
            #[cfg(test)]
            JobKind::Test { .. } => None,
        }
    }

    /// The kind's wire name, for logs.
    pub fn kind_name(&self) -> String {
        serde_json::to_value(&self.kind)
            .ok()
            .and_then(|v| v.get("kind")?.as_str().map(str::to_owned))
            .unwrap_or_default()
    }
}

/// A message that is not a job (unreadable, or a kind this version does not know).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a job: {0}")]
pub struct Poison(pub String);

/// Why a job did not finish.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// Try again later (the queue redelivers it).
    #[error("transient: {0}")]
    Retry(String),
    /// Never retry; the handler has recorded the failure (e.g. on the task).
    #[error("permanent: {0}")]
    Permanent(String),
    /// The run reached its deadline having committed nothing; deliver the job again at once
    /// (work already stored, such as downloaded blobs, is not done again).
    #[error("continues in a follow-up run")]
    Continue,
}

/// Where jobs are sent. Consumers are runtime-specific (the in-process runner, an SQS
/// event source).
#[async_trait]
pub trait JobQueue: Send + Sync + 'static {
    /// Durably enqueues the job; once this returns, the job is delivered at least once, also
    /// across a restart. Enqueueing an id that is still pending is a no-op.
    async fn enqueue(&self, job: Job) -> Result<(), StoreError>;
}

/// How many jobs a queue holds, for metrics.
#[async_trait]
pub trait QueueDepth: Send + Sync + 'static {
    /// Jobs not finished: waiting or running (SQS: messages visible and in flight, as SQS
    /// approximates them). One request or one read of the queue.
    async fn depth(&self) -> Result<u64, StoreError>;
}

/// Runs jobs. Handlers must be idempotent: the same job may be delivered more than once.
#[async_trait]
pub trait JobHandler: Send + Sync + 'static {
    async fn handle(&self, job: &Job) -> Result<(), JobError>;
}

/// What a consumer does with a job after one delivery. Every consumer follows it:
/// - done, failed for good ([`JobError::Permanent`], already recorded on its task) and
///   [`Poison`] (it can never succeed): the message is removed;
/// - [`JobError::Continue`]: delivered again at once, as the same attempt;
/// - [`JobError::Retry`]: delivered again after a backoff that doubles with each attempt, until
///   the attempt limit moves it to the dead letters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Done,
    Failed(String),
    Poison(String),
    Continue,
    Retry {
        after: Duration,
        error: String,
    },
    /// Retryable, but out of attempts: kept aside (dead letters) where it can be looked at.
    GiveUp(String),
}

impl Verdict {
    /// Whether the message leaves the queue for good.
    pub fn removes(&self) -> bool {
        matches!(self, Verdict::Done | Verdict::Failed(_) | Verdict::Poison(_))
    }

    /// Logs the verdict on `job` (its id, or the message id for poison).
    pub fn log(&self, job: &str, kind: &str) {
        match self {
            Verdict::Done => tracing::debug!(job, kind, "job done"),
            Verdict::Failed(error) => tracing::warn!(job, kind, %error, "job failed for good"),
            Verdict::Poison(error) => tracing::error!(message = job, %error, "dropping a message that is not a job"),
            Verdict::Continue => tracing::info!(job, kind, "job continues in a follow-up run"),
            Verdict::Retry { after, error } => {
                tracing::warn!(job, kind, %error, retry_in = ?after, "job will be retried")
            }
            Verdict::GiveUp(error) => tracing::error!(job, kind, %error, "job gave up"),
        }
    }
}

/// How a consumer retries: the backoff, and the attempt limit after which a retryable job is
/// given up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Deliveries after which a job that keeps asking to be retried is given up; `None` when
    /// the queue itself counts them (an SQS redrive policy's `maxReceiveCount`).
    pub max_attempts: Option<u32>,
    /// The delay before the first retry, doubled with each delivery…
    pub first_backoff: Duration,
    /// … up to this.
    pub max_backoff: Duration,
}

impl RetryPolicy {
    /// The in-process runner: eight deliveries, from half a second to about a minute apart.
    pub const LOCAL: RetryPolicy = RetryPolicy {
        max_attempts: Some(8),
        first_backoff: Duration::from_millis(500),
        max_backoff: Duration::from_millis(64_000),
    };

    /// SQS consumers: the redrive policy moves a job to the dead-letter queue; retries are
    /// from ten seconds to fifteen minutes apart.
    pub const SQS: RetryPolicy = RetryPolicy {
        max_attempts: None,
        first_backoff: Duration::from_secs(10),
        max_backoff: Duration::from_secs(15 * 60),
    };

    /// The delay before the next delivery of a job delivered `attempts` times before this one.
    pub fn backoff(&self, attempts: u32) -> Duration {
        let factor = 1u32 << attempts.min(20);
        self.first_backoff.saturating_mul(factor).min(self.max_backoff)
    }

    /// What becomes of a job delivered `attempts` times before, whose run ended with `result`.
    pub fn verdict(&self, attempts: u32, result: Result<(), JobError>) -> Verdict {
        match result {
            Ok(()) => Verdict::Done,
            Err(JobError::Permanent(e)) => Verdict::Failed(e),
            Err(JobError::Continue) => Verdict::Continue,
            Err(JobError::Retry(e)) if self.max_attempts.is_some_and(|max| attempts.saturating_add(1) >= max) => {
                Verdict::GiveUp(e)
            }
            Err(JobError::Retry(error)) => Verdict::Retry {
                after: self.backoff(attempts),
                error,
            },
        }
    }

    /// Reads and runs one delivery: a body that is not a job is poison; otherwise the job,
    /// with how often it was delivered before and the run's deadline, goes to `handler`.
    /// Returns the job (when there was one) and the verdict.
    pub async fn run(
        &self,
        handler: &dyn JobHandler,
        body: &[u8],
        attempts: u32,
        deadline_ms: Option<i64>,
    ) -> (Option<Job>, Verdict) {
        let mut job = match Job::from_json(body) {
            Ok(job) => job,
            Err(Poison(e)) => return (None, Verdict::Poison(e)),
        };
        job.attempts = attempts;
        job.deadline_ms = deadline_ms;
        let verdict = self.verdict(attempts, handler.handle(&job).await);
        (Some(job), verdict)
    }
}

/// How many times a message was delivered before, from SQS's `ApproximateReceiveCount`
/// (which counts this delivery too).
pub fn attempts_from_receives(receives: u32) -> u32 {
    receives.saturating_sub(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sync_job() -> Job {
        let id = |n| Uuid::from_u128(n);
        Job::new(
            "00000000-0000-0000-0000-000000000001",
            JobKind::Sync(SyncJob {
                task: id(1),
                repository: id(2),
                remote: id(3),
                mirror: true,
                signed_only: false,
            }),
        )
    }

    /// Jobs queued or stored by the previous version (untyped `kind` + `payload`) still read.
    #[test]
    fn jobs_in_the_previous_wire_form_still_read() {
        let stored = r#"{"id":"00000000-0000-0000-0000-000000000001","kind":"sync",
            "payload":{"task":"00000000-0000-0000-0000-000000000001",
                       "repository":"00000000-0000-0000-0000-000000000002",
                       "remote":"00000000-0000-0000-0000-000000000003","mirror":true,"signed_only":false},
            "attempts":0}"#;
        assert_eq!(Job::from_json(stored.as_bytes()).unwrap(), sync_job());
        let orphans = r#"{"id":"j","kind":"orphans","attempts":2,"deadline_ms":5,
            "payload":{"task":"00000000-0000-0000-0000-000000000004","protection_secs":86400}}"#;
        let job = Job::from_json(orphans.as_bytes()).unwrap();
        assert_eq!((job.attempts, job.deadline_ms), (2, Some(5)));
        assert_eq!(
            job.kind,
            JobKind::Orphans(OrphanJob {
                task: Uuid::from_u128(4),
                protection_secs: 86_400,
                only: None,
            })
        );
        assert_eq!(job.kind_name(), "orphans");
        let repair = r#"{"id":"r","kind":"repair","payload":{"task":"00000000-0000-0000-0000-000000000005",
            "repository":"00000000-0000-0000-0000-000000000006","version":3}}"#;
        let job = Job::from_json(repair.as_bytes()).unwrap();
        assert_eq!(
            job.kind,
            JobKind::Repair(RepairJob {
                task: Uuid::from_u128(5),
                repository: Uuid::from_u128(6),
                version: 3,
                verify_checksums: true,
            })
        );
        assert_eq!(job.kind_name(), "repair");
    }

    #[test]
    fn jobs_are_written_in_the_same_wire_form() {
        let v = serde_json::to_value(sync_job()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "id": "00000000-0000-0000-0000-000000000001",
                "kind": "sync",
                "payload": {
                    "task": "00000000-0000-0000-0000-000000000001",
                    "repository": "00000000-0000-0000-0000-000000000002",
                    "remote": "00000000-0000-0000-0000-000000000003",
                    "mirror": true,
                    "signed_only": false
                },
                "attempts": 0
            })
        );
    }

    #[test]
    fn unknown_kinds_and_garbage_are_poison() {
        for body in [
            r#"{"id":"j1","kind":"no-such-kind","payload":{}}"#,
            r#"{"id":"j1","kind":"sync","payload":{}}"#,
            "not a job",
        ] {
            assert!(Job::from_json(body.as_bytes()).is_err(), "{body}");
        }
    }

    #[test]
    fn the_policy_removes_retries_or_gives_up() {
        let p = RetryPolicy {
            max_attempts: Some(3),
            first_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(3),
        };
        assert_eq!(p.verdict(0, Ok(())), Verdict::Done);
        assert_eq!(
            p.verdict(0, Err(JobError::Permanent("x".into()))),
            Verdict::Failed("x".into())
        );
        assert_eq!(p.verdict(2, Err(JobError::Continue)), Verdict::Continue);
        let retry = |n| p.verdict(n, Err(JobError::Retry("later".into())));
        assert_eq!(
            retry(0),
            Verdict::Retry {
                after: Duration::from_secs(1),
                error: "later".into()
            }
        );
        assert_eq!(
            retry(1),
            Verdict::Retry {
                after: Duration::from_secs(2),
                error: "later".into()
            }
        );
        assert_eq!(retry(2), Verdict::GiveUp("later".into()));
        // without a limit of its own the queue's redrive policy decides
        assert!(matches!(
            RetryPolicy::SQS.verdict(1000, Err(JobError::Retry("x".into()))),
            Verdict::Retry { after, .. } if after == RetryPolicy::SQS.max_backoff
        ));
        assert!(Verdict::Done.removes() && Verdict::Poison("x".into()).removes());
        assert!(!Verdict::Continue.removes() && !retry(2).removes());
    }

    struct Fails;
    #[async_trait]
    impl JobHandler for Fails {
        async fn handle(&self, job: &Job) -> Result<(), JobError> {
            assert_eq!((job.attempts, job.deadline_ms), (4, Some(9)));
            Err(JobError::Permanent("no".into()))
        }
    }

    #[tokio::test]
    async fn a_delivery_is_read_then_run() {
        let body = serde_json::to_vec(&sync_job()).unwrap();
        let (job, verdict) = RetryPolicy::LOCAL.run(&Fails, &body, 4, Some(9)).await;
        assert_eq!(job.map(|j| j.id), Some(sync_job().id));
        assert_eq!(verdict, Verdict::Failed("no".into()));
        let (job, verdict) = RetryPolicy::LOCAL.run(&Fails, b"{}", 4, Some(9)).await;
        assert!(job.is_none() && matches!(verdict, Verdict::Poison(_)));
    }
}
