//! Every port case on the embedded adapters (files and redb), each in a temporary directory
//! of its own.

use std::sync::Arc;

use tokio::sync::OnceCell;

use crate::adapters::fs::FsBlobStore;
use crate::adapters::redb_table::RedbTable;
use crate::ports::{BlobStore, Table};

use super::{port_cases, Adapter};

struct Embedded {
    dir: tempfile::TempDir,
    /// redb allows one open handle per file: a restart reopens the same database.
    table: OnceCell<RedbTable>,
    blobs: OnceCell<Arc<FsBlobStore>>,
}

impl Adapter for Embedded {
    /// Every commit is written to disk, and the cases run side by side.
    const SLOW: u32 = 5;

    async fn new() -> Self {
        Embedded {
            dir: tempfile::tempdir().unwrap(),
            table: OnceCell::new(),
            blobs: OnceCell::new(),
        }
    }
    async fn table(&self) -> Arc<dyn Table> {
        let t = self
            .table
            .get_or_init(|| async { RedbTable::open(&self.dir.path().join("t.redb")).unwrap() })
            .await;
        Arc::new(t.clone())
    }
    async fn blobs(&self) -> Arc<dyn BlobStore> {
        self.blobs
            .get_or_init(|| async { Arc::new(FsBlobStore::open(self.dir.path()).await.unwrap()) })
            .await
            .clone()
    }
}
port_cases!(Embedded;
    job: retried_and_redelivered_jobs_make_one_version, a_claimed_job_survives_a_restart,
        a_job_that_always_fails_is_dead;
);
