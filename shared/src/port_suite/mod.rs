//! The port suites: one per port, run against every adapter (DESIGN §6). Test code only; it
//! sits beside the layers it checks (`domain ← ports ← {store, adapters} ← services ← http ←
//! app ← functions/*`): the cases speak to the ports and the store, never to one adapter.
//!
//! Each suite is a module of named cases, and each adapter module turns every case into a test
//! of its own with [`port_cases!`], so a failure names the adapter and the case
//! (`port_suite::embedded::store::a_crashed_writer_leaves_nothing`). Every case gets fresh
//! ports ([`Adapter::new`]): a new temporary directory, or a table, bucket and queue with names
//! of its own on the shared moto server, so cases run in parallel.
//!
//! - [`table`] and [`transact`]: conditional writes, queries, expiry, transactions, concurrency;
//! - [`blob`]: verified-before-visible (invariant 3), ranges, uploads, interrupted writes;
//! - [`store`]: atomic version commit (invariant 1), serialized writers (invariant 2);
//! - [`deletion`]: deleting versions (squashed into the next, or the latest reverted);
//! - [`history`]: reads that cost the same however long a tag's history, the tag index;
//! - [`pages`]: a page of every list the APIs serve costs the same reads at 100 items and at
//!   [`Adapter::MANY`];
//! - [`names`]: unique names under racing creates (invariant 6), repairs, lease take-over;
//! - [`namespaces`]: one namespace of racing creates, removals that race creates, workers'
//!   heartbeats;
//! - [`retention`]: upload sessions and finished tasks expire, checkpoints round-trip;
//! - [`orphan`]: candidates, references, and units touched meanwhile stay;
//! - [`job`]: at-least-once delivery across a restart, dedupe, retries, and idempotent
//!   version-making jobs (invariant 4).
//!
//! Tests that exercise one adapter only sit beside that adapter (`adapters/*.rs`), except the
//! S3 and SQS ones, which stay in [`moto`] (S3's chunked uploads in [`moto_uploads`]). With the
//! `localstack` feature, `localstack` runs the blob cases and the SQS queue's cases (`sqs`, which
//! [`moto`] runs too) again on LocalStack, which checks presigned URLs as S3 does.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::domain::{ContentKey, Digest, Tag};
use crate::ports::{BlobStore, ByteRange, ByteStream, Table};

pub mod blob;
pub mod deletion;
pub mod history;
pub mod job;
pub mod names;
pub mod namespaces;
pub mod orphan;
pub mod pages;
pub mod retention;
pub mod store;
pub mod table;
pub mod transact;

#[cfg(feature = "local")]
mod embedded;
#[cfg(feature = "localstack")]
mod localstack;
mod memory;
#[cfg(feature = "moto")]
pub(crate) mod moto;
#[cfg(feature = "moto")]
mod moto_uploads;
#[cfg(feature = "moto")]
mod sqs;

/// One adapter's ports, fresh for every case.
pub trait Adapter: Sized {
    /// How many times longer the store cases' short leases (tens of milliseconds) are, for a
    /// table whose calls take milliseconds each (a DynamoDB emulator over HTTP).
    const SLOW: u32 = 1;

    /// How long the lists of the page cases grow (from 100).
    const MANY: usize = 10_000;

    /// Fresh, empty ports that share nothing with another case's.
    async fn new() -> Self;

    /// The table; every call hands out the same contents (a second call is a second handle, as
    /// after a restart).
    async fn table(&self) -> Arc<dyn Table>;

    /// The blob store.
    async fn blobs(&self) -> Arc<dyn BlobStore>;
}

/// One `#[test]` per (adapter, case), named `<adapter module>::<suite>::<case>`: every case of
/// the suites every adapter runs, then the suites listed after the adapter, which only some
/// adapters run:
///
/// ```ignore
/// port_cases!(Memory; job: a_claimed_job_survives_a_restart, a_job_that_always_fails_is_dead;);
/// ```
///
/// A new case is a function in its suite's module and a name in the list below.
macro_rules! port_cases {
    ($adapter:ty; $($more:tt)*) => {
        $crate::port_suite::tests_for!($adapter;
            table: conditional_writes, queries, expiry, concurrent_updates;
            transact: a_failed_condition_changes_nothing, every_write_lands, a_revision_read_before_a_deletion_never_holds_again,
                malformed_transactions_are_refused,
                one_racer_wins;
            blob: verified_before_visible, put_read_and_delete, sha512_and_empty_blobs, chunked_upload,
                a_mismatching_commit_publishes_nothing, an_interrupted_chunk_resumes, sha512_upload,
                abort_and_unknown_uploads;
            store: names_are_unique, versions_commit_atomically, a_crashed_writer_leaves_nothing,
                a_writer_that_lost_its_lease_cannot_commit, writers_take_turns,
                a_dropped_writer_releases_its_lease, tags_paginate;
            names: one_racing_create_wins, renames_race_creates, older_versions_leftovers_are_repaired,
                a_restarted_node_takes_its_leases;
            namespaces: racing_creates_make_one_namespace, a_namespace_goes_only_when_empty,
                removals_race_creates, old_distributions_get_their_namespace,
                heartbeats_keep_a_worker_s_identity;
            retention: the_default_keeps_everything, no_retention_forgets, tasks_kept_forever, checkpoints;
            deletion: squashing_keeps_every_remaining_version, deleting_the_latest_reverts_it,
                racing_deletions_and_a_writer;
            history: reads_do_not_grow_with_a_tag_s_moves, an_older_repository_is_indexed_by_its_next_writer,
                a_page_of_versions_is_one_read;
            pages: a_page_of_versions_reads_the_same_at_any_length,
                a_page_of_a_version_s_tags_reads_the_same_at_any_length,
                a_page_of_every_unit_reads_the_same_at_any_length, a_page_of_tasks_reads_the_same_at_any_length,
                a_page_of_repositories_reads_the_same_at_any_length,
                a_page_of_distributions_reads_the_same_at_any_length;
            orphan: candidates_and_references, a_unit_touched_meanwhile_stays, a_unit_added_meanwhile_stays;
            $($more)*
        );
    };
}
pub(crate) use port_cases;

/// The tests [`port_cases!`] asks for: a module per suite, a test per case, each on fresh
/// ports of `$adapter`.
macro_rules! tests_for {
    ($adapter:ty; $($suite:ident: $($case:ident),+ $(,)?;)+) => {
        $(
            mod $suite {
                #[allow(unused_imports)]
                use super::*;
                $(
                    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                    async fn $case() {
                        let ports = <$adapter as $crate::port_suite::Adapter>::new().await;
                        $crate::port_suite::$suite::$case(&ports).await;
                    }
                )+
            }
        )+
    };
}
pub(crate) use tests_for;

/// `b` as a body in chunks of 7 bytes.
pub fn stream(b: &[u8]) -> ByteStream {
    let chunks: Vec<Result<Bytes, io::Error>> = b.chunks(7).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
    Box::pin(futures::stream::iter(chunks))
}

/// `b` as a body whose client goes away after it.
pub fn failing_stream(b: &[u8]) -> ByteStream {
    let mut chunks: Vec<Result<Bytes, io::Error>> = vec![Ok(Bytes::copy_from_slice(b))];
    chunks.push(Err(io::Error::new(io::ErrorKind::ConnectionReset, "client went away")));
    Box::pin(futures::stream::iter(chunks))
}

/// The bytes of a blob, or of a range of it.
pub async fn read_all(s: &dyn BlobStore, d: &Digest, r: Option<ByteRange>) -> Vec<u8> {
    let reader = s.open(d, r).await.expect("open");
    crate::ports::collect(reader.body).await.expect("read")
}

/// The lease of a writer that does not mean to lose it.
pub const TTL: Duration = Duration::from_secs(30);

/// A blob content key, distinct for each `i`.
pub fn blob(i: u32) -> ContentKey {
    ContentKey::Blob(Digest::sha256_of(&i.to_le_bytes()))
}

/// A tag content key naming the manifest digest `i` stands for.
pub fn tag(name: &str, i: u32) -> ContentKey {
    ContentKey::Tag {
        name: Tag::parse(name).unwrap(),
        manifest: Digest::sha256_of(&i.to_le_bytes()),
    }
}
