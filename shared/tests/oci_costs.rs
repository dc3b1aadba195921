//! What requests cost in table calls (each one DynamoDB request on AWS), and that answers wait
//! for the table to make the request's writes durable. In process, on a counting table.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use axum::body::Body;
use berth::app::App;
use berth::domain::media;
use common::oci::T;
use http::{Method, StatusCode};

/// A table that counts the calls made through it (each is one DynamoDB request on AWS).
struct Counting {
    inner: berth::adapters::memory::MemoryTable,
    reads: std::sync::atomic::AtomicUsize,
    writes: std::sync::atomic::AtomicUsize,
    /// The partitions written to.
    written: std::sync::Mutex<std::collections::BTreeSet<String>>,
    /// Writes (`'w'`) and flushes (`'F'` from a write scope that wrote, `'f'` from one that did
    /// not, `'-'` from no scope), in order.
    log: std::sync::Mutex<String>,
}

impl Counting {
    fn new() -> Arc<Self> {
        Arc::new(Counting {
            inner: berth::adapters::memory::MemoryTable::new(),
            reads: Default::default(),
            writes: Default::default(),
            written: Default::default(),
            log: Default::default(),
        })
    }

    /// The registry and API on this table, in memory.
    fn app(self: &Arc<Self>) -> T {
        let jobs = Arc::new(berth::adapters::local_jobs::LocalJobQueue::new(self.clone()));
        T::of(App::new(
            self.clone(),
            Arc::new(berth::adapters::memory::MemoryBlobStore::new()),
            jobs,
            Default::default(),
        ))
    }

    fn wrote(&self, pk: &str) {
        self.writes.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.written.lock().unwrap().insert(pk.to_owned());
        self.log.lock().unwrap().push('w');
        // as a table whose writes wait for a flush marks them in the write scope
        berth::ports::durability::note_write(0);
    }
}

#[async_trait::async_trait]
impl berth::ports::Table for Counting {
    async fn get(&self, pk: &str, sk: &str) -> Result<Option<berth::ports::Row>, berth::ports::StoreError> {
        self.reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.get(pk, sk).await
    }
    async fn put_expiring(
        &self,
        pk: &str,
        sk: &str,
        value: Vec<u8>,
        cond: berth::ports::Cond,
        expires_at: Option<u64>,
    ) -> Result<u64, berth::ports::StoreError> {
        self.wrote(pk);
        self.inner.put_expiring(pk, sk, value, cond, expires_at).await
    }
    async fn delete(&self, pk: &str, sk: &str, cond: berth::ports::Cond) -> Result<(), berth::ports::StoreError> {
        self.wrote(pk);
        self.inner.delete(pk, sk, cond).await
    }
    async fn query(
        &self,
        pk: &str,
        q: berth::ports::Query,
    ) -> Result<Vec<berth::ports::Row>, berth::ports::StoreError> {
        self.reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.query(pk, q).await
    }
    async fn transact(&self, writes: Vec<berth::ports::Write>) -> Result<(), berth::ports::StoreError> {
        for w in &writes {
            self.wrote(&w.pk);
        }
        self.inner.transact(writes).await
    }
    async fn flush(&self) -> Result<(), berth::ports::StoreError> {
        use berth::ports::durability::{scope_state, ScopeState};
        self.log.lock().unwrap().push(match scope_state() {
            ScopeState::Wrote(_) => 'F',
            ScopeState::Clean => 'f',
            ScopeState::Unscoped => '-',
        });
        Ok(())
    }
}

/// Every request runs as one write scope, and its answer waits for a flush after its writes:
/// each request of a push writes and then flushes (from a scope that wrote), nothing is written
/// after the last flush, and a pull flushes from a scope that wrote nothing (which costs the
/// embedded table nothing).
#[tokio::test]
async fn answers_wait_for_a_flush_after_the_writes() {
    let table = Counting::new();
    let t = table.app();
    t.image("flush/app", "1", &[b"layer one", b"layer two"]).await;
    let log = table.log.lock().unwrap().clone();
    // config, two layers, manifest: four requests that write, each ending in its flush
    assert_eq!(log.matches('F').count(), 4, "{log}");
    assert!(log.ends_with('F'), "{log}");
    assert!(!log.contains("FF") && !log.contains('-') && !log.contains('f'), "{log}");
    let before = log.len();
    let r = t.get("/v2/flush/app/manifests/1").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(&table.log.lock().unwrap()[before..], "f");
}

/// Serving a manifest by tag costs a fixed, small number of metadata reads (DynamoDB requests
/// on AWS), however many tags and versions the repository has: the distribution, the
/// repository, the tag's row in the tag index, the manifest record.
#[tokio::test]
async fn a_manifest_by_tag_costs_four_metadata_reads() {
    let table = Counting::new();
    let t = table.app();
    for i in 0..20 {
        t.image("count/me", &format!("t{i}"), &[format!("layer {i}").as_bytes()])
            .await;
    }
    t.image("count/me", "t5", &[b"moved"]).await; // a tag with history
    for reference in ["t5", "t19"] {
        let before = table.reads.load(std::sync::atomic::Ordering::SeqCst);
        let r = t
            .send(
                Method::GET,
                &format!("/v2/count/me/manifests/{reference}"),
                &[("accept", media::OCI_MANIFEST)],
                Body::empty(),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK);
        let reads = table.reads.load(std::sync::atomic::Ordering::SeqCst) - before;
        assert_eq!(reads, 4, "{reference}: reads per manifest GET by tag");
    }
}

/// A push costs the same table reads and writes into a repository with a long history as
/// into a young one: an image (its config blob, a layer, its manifest and tag), and a move of
/// `latest`, after 20 and after 2,000 images and moves.
#[tokio::test]
async fn a_push_costs_the_same_however_long_the_history() {
    let table = Counting::new();
    let t = table.app();
    let load = |c: &std::sync::atomic::AtomicUsize| c.load(std::sync::atomic::Ordering::SeqCst);
    let mut next = 0;
    let mut costs = Vec::new();
    for until in [20, 2000] {
        while next < until {
            t.image("grow/app", &format!("t{next}"), &[format!("layer {next}").as_bytes()])
                .await;
            t.image("grow/app", "latest", &[format!("layer {next}").as_bytes()])
                .await;
            next += 1;
        }
        let (reads, writes) = (load(&table.reads), load(&table.writes));
        t.image("grow/app", &format!("t{next}"), &[format!("layer {next}").as_bytes()])
            .await;
        let image = (load(&table.reads) - reads, load(&table.writes) - writes);
        let (reads, writes) = (load(&table.reads), load(&table.writes));
        t.image("grow/app", "latest", &[format!("layer {next}").as_bytes()])
            .await;
        let moved = (load(&table.reads) - reads, load(&table.writes) - writes);
        next += 1;
        costs.push((image, moved));
    }
    assert_eq!(
        costs[0], costs[1],
        "(reads, writes) of an image and of a move, young and old"
    );
}

/// The partitions every repository shares. None of them is written by a push into an existing
/// repository: on DynamoDB one partition takes about 1,000 writes a second, so a partition every
/// push wrote would cap the whole registry.
const REGISTRY_WIDE: &[&str] = &[
    "stored",
    "content#b#",
    "content#m#",
    "content#t#",
    "content#s#",
    "tasks",
    "jobs",
    "dists",
    "dist-names",
    "dist-ids",
    "repo-names",
    "remotes",
    "remote-names",
    "namespaces",
    "ns-ids",
    "workers",
    "users",
];

/// Pushes into an existing repository write its own partitions and shards of the
/// registry-wide indexes, never one of the registry-wide partitions.
#[tokio::test]
async fn a_push_writes_no_registry_wide_partition() {
    let table = Counting::new();
    let t = table.app();
    // the first push creates the repository, its distribution and namespace
    t.image("spread/app", "v0", &[b"first"]).await;
    table.written.lock().unwrap().clear();
    for i in 1..=8 {
        t.image("spread/app", &format!("v{i}"), &[format!("layer {i}").as_bytes()])
            .await;
    }
    t.image("spread/app", "v3", &[b"v3 moved"]).await;
    let written = table.written.lock().unwrap().clone();
    for pk in REGISTRY_WIDE {
        assert!(!written.contains(*pk), "a push wrote the registry-wide partition {pk}");
        let tally = format!("tally#{pk}");
        assert!(!written.contains(&tally), "a push wrote the count of {pk}");
        let bytes = format!("tally#bytes#{pk}");
        assert!(!written.contains(&bytes), "a push wrote the bytes of {pk}");
    }
    // the registry-wide indexes took their writes in shards, spread over several
    let shards = |index: &str| written.iter().filter(|pk| pk.starts_with(&format!("{index}/"))).count();
    assert!(shards("stored") >= 4, "{written:?}");
    assert!(shards("content#b#") >= 4, "{written:?}");
    // and everything else written belongs to one repository, upload or unit (or is a
    // shard's count or bytes, which live beside their shard)
    for pk in &written {
        let pk = pk.strip_prefix("tally#").unwrap_or(pk);
        let pk = pk.strip_prefix("bytes#").unwrap_or(pk);
        let shard = REGISTRY_WIDE.iter().any(|index| {
            pk.strip_prefix(index)
                .and_then(|r| r.strip_prefix('/'))
                .is_some_and(|x| x.len() == 1)
        });
        let own = pk.split_once('#').is_some_and(|(_, id)| id.len() >= 36);
        assert!(shard || own, "{pk}: neither a shard nor a partition of its own");
    }
}
