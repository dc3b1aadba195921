//! Every port case on the in-memory adapters.

use std::sync::Arc;

use crate::adapters::memory::{MemoryBlobStore, MemoryTable};
use crate::ports::{BlobStore, Table};

use super::{port_cases, Adapter};

struct Memory {
    table: Arc<dyn Table>,
    blobs: Arc<dyn BlobStore>,
}

impl Adapter for Memory {
    async fn new() -> Self {
        Memory {
            table: Arc::new(MemoryTable::new()),
            blobs: Arc::new(MemoryBlobStore::new()),
        }
    }
    async fn table(&self) -> Arc<dyn Table> {
        self.table.clone()
    }
    async fn blobs(&self) -> Arc<dyn BlobStore> {
        self.blobs.clone()
    }
}

port_cases!(Memory;
    job: retried_and_redelivered_jobs_make_one_version, a_claimed_job_survives_a_restart,
        a_job_that_always_fails_is_dead;
);
