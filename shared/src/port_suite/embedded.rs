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
