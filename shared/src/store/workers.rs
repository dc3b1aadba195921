//! The workers of the job runners, as their heartbeats leave them (Pulp's workers).
//!
//! | pk | sk | value |
//! |---|---|---|
//! | `workers` | `<name>` | [`WorkerRecord`] (expires [`WORKER_RECORD_KEPT`] after its last heartbeat) |
//!
//! Each worker writes only its own item, so heartbeats never contend; a worker that stopped
//! heartbeating is listed (as missing) until its item expires, as Pulp forgets workers missing
//! for a week.
//!
//! Layering: `domain ← ports ← {store, adapters} ← services ← http ← app ← functions/*`;
//! part of `store`, which knows `domain` and `ports` only.

use std::time::Duration;

use uuid::Uuid;

use super::{decode, encode, expiry_in, Store, WorkerRecord};
use crate::ports::{Cond, Query, StoreError};

const WORKERS: &str = "workers";

/// How long a worker's item outlives its last heartbeat.
pub const WORKER_RECORD_KEPT: Duration = Duration::from_secs(7 * 24 * 3600);

impl Store {
    /// Records a worker's heartbeat: `rec` as given, except its id (derived from the name) and
    /// its creation time, which a record already there keeps. The item expires
    /// [`WORKER_RECORD_KEPT`] later.
    pub async fn put_worker(&self, rec: &WorkerRecord) -> Result<WorkerRecord, StoreError> {
        loop {
            let existing = self.t.get(WORKERS, &rec.name).await?;
            let mut rec = rec.clone();
            rec.id = WorkerRecord::id_of(&rec.name);
            let cond = match &existing {
                Some(row) => {
                    rec.created = decode::<WorkerRecord>(row)?.created;
                    Cond::Rev(row.rev)
                }
                None => Cond::Absent,
            };
            let expires = Some(expiry_in(WORKER_RECORD_KEPT));
            match self
                .t
                .put_expiring(WORKERS, &rec.name, encode(&rec)?, cond, expires)
                .await
            {
                Ok(_) => return Ok(rec),
                Err(StoreError::Conflict(_)) => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Every worker heard from within [`WORKER_RECORD_KEPT`], in name order. One scan of the
    /// workers partition.
    pub async fn workers(&self) -> Result<Vec<WorkerRecord>, StoreError> {
        let rows = self.t.query(WORKERS, Query::prefix("")).await?;
        rows.iter().map(decode).collect()
    }

    /// The worker of `id`. One scan of the workers partition (ids are derived from names).
    pub async fn worker(&self, id: Uuid) -> Result<Option<WorkerRecord>, StoreError> {
        Ok(self.workers().await?.into_iter().find(|w| w.id == id))
    }
}
