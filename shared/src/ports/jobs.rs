use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::StoreError;

/// A unit of background work. `id` makes delivery idempotent: a queue that sees an id twice
/// while the first is pending keeps one, and handlers treat a redelivered id as the same job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    pub id: String,
    /// What to do, e.g. `sync`; handlers dispatch on it.
    pub kind: String,
    /// The job's arguments.
    pub payload: serde_json::Value,
    /// How many times it was delivered before (0 on the first delivery).
    #[serde(default)]
    pub attempts: u32,
    /// When the runtime stops this run (Lambda's 15 minutes), in milliseconds since the epoch;
    /// a long job stops before it and continues in a follow-up (`JobError::Continue`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline_ms: Option<i64>,
}

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

/// Runs jobs. Handlers must be idempotent: the same job may be delivered more than once.
#[async_trait]
pub trait JobHandler: Send + Sync + 'static {
    async fn handle(&self, job: &Job) -> Result<(), JobError>;
}
