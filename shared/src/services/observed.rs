//! What the services give metrics: sync runs counted and timed as they end ([`MeteredSync`]),
//! and the gauges read when metrics are asked for ([`Gauges`]): the content the registry holds
//! (from the store's tallies, a bounded number of reads) and the job queue's depth.
//!
//! Layering: `domain ← ports ← {store, adapters} ← services ← http ← app ← functions/*`;
//! part of `services`, recording into `observe`.

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;

use super::worker::SyncRunner;
use crate::observe::metrics::{Family, Sample};
use crate::observe::{Metrics, SyncOutcome};
use crate::ports::{JobError, QueueDepth, SyncJob};
use crate::store::{ContentTotal, Store};

/// A sync runner whose runs are counted by outcome and timed.
pub struct MeteredSync {
    inner: Arc<dyn SyncRunner>,
    metrics: Arc<Metrics>,
}

impl MeteredSync {
    pub fn new(inner: Arc<dyn SyncRunner>, metrics: Arc<Metrics>) -> Self {
        MeteredSync { inner, metrics }
    }
}

#[async_trait]
impl SyncRunner for MeteredSync {
    async fn run(&self, job: &SyncJob, deadline_ms: Option<i64>) -> Result<(), JobError> {
        let start = Instant::now();
        let result = self.inner.run(job, deadline_ms).await;
        let outcome = match &result {
            Ok(()) => SyncOutcome::Completed,
            Err(JobError::Continue) => SyncOutcome::Continued,
            Err(JobError::Retry(_)) => SyncOutcome::Retried,
            Err(JobError::Permanent(_)) => SyncOutcome::Failed,
        };
        self.metrics.record_sync(outcome, start.elapsed().as_secs_f64());
        result
    }
}

/// The gauges read when metrics are asked for.
#[derive(Clone)]
pub struct Gauges {
    store: Store,
    queue: Option<Arc<dyn QueueDepth>>,
}

/// What [`Gauges::read`] found; a figure that could not be read is left out (and logged).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GaugeValues {
    pub content: Option<Vec<ContentTotal>>,
    pub queue_depth: Option<u64>,
}

impl Gauges {
    pub fn new(store: Store, queue: Option<Arc<dyn QueueDepth>>) -> Self {
        Gauges { store, queue }
    }

    /// The content totals (102 table reads at most, see `Store::content_totals`) and the
    /// queue's depth (one read or request), read at once.
    pub async fn read(&self) -> GaugeValues {
        let content = async {
            match self.store.content_totals().await {
                Ok(t) => Some(t),
                Err(e) => {
                    tracing::warn!(error = %e, "metrics: cannot read the content totals");
                    None
                }
            }
        };
        let queue = async {
            match self.queue.as_ref()?.depth().await {
                Ok(n) => Some(n),
                Err(e) => {
                    tracing::warn!(error = %e, "metrics: cannot read the job queue's depth");
                    None
                }
            }
        };
        let (content, queue_depth) = tokio::join!(content, queue);
        GaugeValues { content, queue_depth }
    }

    /// The content totals alone.
    pub async fn content(&self) -> Result<Vec<ContentTotal>, crate::ports::StoreError> {
        self.store.content_totals().await
    }
}

/// The short name of a content type in metrics (`blob`, `manifest`, `tag`, `signature`).
pub fn type_label(t: crate::domain::ContentType) -> &'static str {
    t.pulp_name().trim_start_matches("container.")
}

impl GaugeValues {
    /// The gauges as metric families.
    pub fn families(&self) -> Vec<Family> {
        let mut out = Vec::new();
        if let Some(content) = &self.content {
            let units = content
                .iter()
                .map(|t| Sample::new(vec![("type", type_label(t.content_type).into())], t.units as f64))
                .collect();
            let bytes = content
                .iter()
                .filter_map(|t| {
                    Some(Sample::new(
                        vec![("type", type_label(t.content_type).into())],
                        t.bytes? as f64,
                    ))
                })
                .collect();
            out.push(Family::gauge(
                "berth_content_units",
                "Content units the registry holds (added to some repository version and not removed by orphan \
                 cleanup), by type.",
                units,
            ));
            out.push(Family::gauge(
                "berth_content_bytes",
                "Bytes of the blobs and manifests the registry holds, as stored when each was first added (a blob \
                 of an on-demand remote not fetched then counts 0), by type.",
                bytes,
            ));
        }
        if let Some(n) = self.queue_depth {
            out.push(Family::gauge(
                "berth_job_queue_depth",
                "Jobs (syncs, repairs, cleanups) waiting or running.",
                vec![Sample::new(vec![], n as f64)],
            ));
        }
        out
    }
}
