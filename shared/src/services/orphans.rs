//! Orphan cleanup (Pulp's `POST /orphans/cleanup/`): removes content no live repository
//! references, with its records and its bytes, and keeps whatever was stored or reused within
//! the protection time. Both runtimes run it from a job.
//!
//! What counts as referenced, and why a push or a sync running meanwhile is safe: `store/orphans.rs`.
//! Content of a deleted repository becomes orphaned; content in any version of a live
//! repository (not only the latest) stays, as every version can be served again.
//!
//! Layering: `domain ← ports ← {store, adapters} ← services ← http ← app ← functions/*`; a
//! service.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::tasks::{Outcome, Started, Tasks};
use crate::domain::{ContentKey, Digest};
use crate::ports::{BlobStore, JobError, OrphanJob, StoreError};
use crate::store::{ProgressReport, Store};

pub const ORPHAN_CLEANUP_TASK_NAME: &str = "pulpcore.app.tasks.orphan.orphan_cleanup";

/// Pulp's default protection time: a day.
pub const DEFAULT_PROTECTION: Duration = Duration::from_secs(24 * 3600);

const CONTENT: (&str, &str) = ("Clean up orphan Content", "clean-up.content");
const ARTIFACTS: (&str, &str) = ("Clean up orphan Artifacts", "clean-up.artifacts");

pub struct Orphans {
    store: Store,
    blobs: Arc<dyn BlobStore>,
}

fn retry(e: StoreError) -> JobError {
    JobError::Retry(format!("orphan cleanup: {e}"))
}

impl Orphans {
    pub fn new(store: Store, blobs: Arc<dyn BlobStore>) -> Self {
        Orphans { store, blobs }
    }

    /// Runs a cleanup job to its end (or to `deadline_ms`, Unix milliseconds, after which it
    /// continues in a follow-up run) and records the outcome on its task. Rerunning it is
    /// harmless (what was removed stays removed).
    pub async fn run(&self, job: &OrphanJob, deadline_ms: Option<i64>) -> Result<(), JobError> {
        let tasks = Tasks::new(&self.store);
        match tasks.start(job.task, None).await.map_err(retry)? {
            Started::Running(_) => {}
            Started::Finished | Started::Canceled => return Ok(()),
            Started::Missing => return Err(JobError::Permanent(format!("task {} does not exist", job.task))),
        }
        // a retry runs it again from the start; a job that runs out of retries leaves the task
        // running, like any job the queue gives up on
        let (units, objects) = self.clean(job, deadline_ms).await?;
        let reports = vec![report(CONTENT, units), report(ARTIFACTS, objects)];
        tasks
            .finish(job.task, Outcome::completed(None).with_reports(Some(reports)))
            .await;
        tracing::info!(task = %job.task, units, objects, "orphan cleanup finished");
        Ok(())
    }

    /// Returns how many units and stored objects (blob-store objects) it removed.
    async fn clean(&self, job: &OrphanJob, deadline_ms: Option<i64>) -> Result<(u64, u64), JobError> {
        let cutoff = Utc::now() - chrono::Duration::seconds(i64::try_from(job.protection_secs).unwrap_or(i64::MAX / 2));
        let only: Option<HashSet<String>> = job.only.as_ref().map(|v| v.iter().cloned().collect());
        // the index first, then what references it (the order makes concurrent writers safe)
        let candidates = self.store.orphan_candidates().await.map_err(retry)?;
        let referenced = self.store.referenced_content().await.map_err(retry)?;
        let (mut units, mut objects) = (0u64, 0u64);
        for c in candidates {
            if deadline_ms.is_some_and(|d| Utc::now().timestamp_millis() >= d) {
                return Err(JobError::Continue);
            }
            if referenced.contains(&c.key) || only.as_ref().is_some_and(|o| !o.contains(&c.key.encode())) {
                continue;
            }
            let touched = c
                .touched
                .and_then(|at| DateTime::<Utc>::from_timestamp(i64::try_from(at).ok()?, 0));
            let created = self.created(&c.key).await.map_err(retry)?;
            if touched.max(created).is_some_and(|at| at > cutoff) {
                continue;
            }
            if !self.store.forget_candidate(&c).await.map_err(retry)? {
                continue; // touched meanwhile
            }
            units += 1;
            match &c.key {
                ContentKey::Blob(d) | ContentKey::Manifest(d) => {
                    // one digest may be both a blob and a manifest: the bytes stay while either is used
                    let other = match &c.key {
                        ContentKey::Blob(_) => ContentKey::Manifest(d.clone()),
                        _ => ContentKey::Blob(d.clone()),
                    };
                    if !referenced.contains(&other) && self.delete_bytes(d).await.map_err(retry)? {
                        objects += 1;
                    }
                    if matches!(c.key, ContentKey::Blob(_)) {
                        self.store.delete_blob_record(d).await.map_err(retry)?;
                    } else {
                        self.store.delete_manifest_record(d).await.map_err(retry)?;
                    }
                }
                ContentKey::Signature(d) => self.store.delete_signature_record(d).await.map_err(retry)?,
                ContentKey::Tag { .. } => {}
            }
        }
        Ok((units, objects))
    }

    /// When the unit's record was written (`None` for tags, and for units with no record).
    async fn created(&self, key: &ContentKey) -> Result<Option<DateTime<Utc>>, StoreError> {
        Ok(match key {
            ContentKey::Blob(d) => self.store.blob(d).await?.map(|r| r.created),
            ContentKey::Manifest(d) => self.store.manifest(d).await?.map(|r| r.created),
            ContentKey::Signature(d) => self.store.signature(d).await?.map(|r| r.created),
            ContentKey::Tag { .. } => None,
        })
    }

    async fn delete_bytes(&self, d: &Digest) -> Result<bool, StoreError> {
        // the unit is forgotten durably before its bytes go: after a crash no record is left
        // naming bytes that are gone
        self.store.table().flush().await?;
        if self.blobs.stat(d).await?.is_none() {
            return Ok(false);
        }
        match self.blobs.delete(d).await {
            Ok(()) => Ok(true),
            Err(StoreError::NotFound) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

fn report((message, code): (&str, &str), done: u64) -> ProgressReport {
    ProgressReport {
        message: message.into(),
        code: code.into(),
        state: "completed".into(),
        total: Some(done),
        done,
    }
}
