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
    table: conditional_writes, queries, expiry, concurrent_updates;
    transact: a_failed_condition_changes_nothing, every_write_lands, malformed_transactions_are_refused,
        one_racer_wins;
    blob: verified_before_visible, put_read_and_delete, sha512_and_empty_blobs, chunked_upload,
        a_mismatching_commit_publishes_nothing, an_interrupted_chunk_resumes, sha512_upload,
        abort_and_unknown_uploads;
    store: names_are_unique, versions_commit_atomically, a_crashed_writer_leaves_nothing,
        a_writer_that_lost_its_lease_cannot_commit, writers_take_turns, a_dropped_writer_releases_its_lease,
        tags_paginate;
    names: one_racing_create_wins, renames_race_creates, older_versions_leftovers_are_repaired,
        a_restarted_node_takes_its_leases;
    retention: the_default_keeps_everything, no_retention_forgets, tasks_kept_forever, checkpoints;
    orphan: candidates_and_references, a_unit_touched_meanwhile_stays, a_unit_added_meanwhile_stays;
    job: retried_and_redelivered_jobs_make_one_version, a_claimed_job_survives_a_restart,
        a_job_that_always_fails_is_dead;
);
