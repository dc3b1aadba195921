//! Costs that do not grow with history: how many table reads a pull by tag, a tag page and a
//! membership check take after a tag moved once and after it moved many times, and how a
//! repository made before the tag index gets one.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::domain::{Digest, Tag};
use crate::ports::{Cond, Query, Row, StoreError, Table, Write};
use crate::store::{Page, Repository, RepositoryKind, Store};

use super::{blob, tag, Adapter, TTL};

/// Any table, counting its reads (each one request on DynamoDB).
pub struct Counted {
    inner: Arc<dyn Table>,
    reads: AtomicUsize,
}

impl Counted {
    pub fn new(inner: Arc<dyn Table>) -> Arc<Self> {
        Arc::new(Counted {
            inner,
            reads: AtomicUsize::new(0),
        })
    }

    pub fn reads(&self) -> usize {
        self.reads.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl Table for Counted {
    async fn get(&self, pk: &str, sk: &str) -> Result<Option<Row>, StoreError> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.inner.get(pk, sk).await
    }
    async fn put_expiring(
        &self,
        pk: &str,
        sk: &str,
        value: Vec<u8>,
        cond: Cond,
        expires_at: Option<u64>,
    ) -> Result<u64, StoreError> {
        self.inner.put_expiring(pk, sk, value, cond, expires_at).await
    }
    async fn delete(&self, pk: &str, sk: &str, cond: Cond) -> Result<(), StoreError> {
        self.inner.delete(pk, sk, cond).await
    }
    async fn query(&self, pk: &str, q: Query) -> Result<Vec<Row>, StoreError> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.inner.query(pk, q).await
    }
    async fn transact(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        self.inner.transact(writes).await
    }
}

/// Moves `latest` from manifest `from` to each of `to` in turn, one version each.
async fn move_tag(store: &Store, id: uuid::Uuid, mut from: u32, to: std::ops::Range<u32>) {
    for i in to {
        let mut w = store.begin_write(id, "mover", TTL, Duration::ZERO).await.unwrap();
        w.remove(tag("latest", from)).await.unwrap();
        w.add(tag("latest", i)).await.unwrap();
        w.commit(None).await.unwrap().unwrap();
        from = i;
    }
}

/// What each read costs now: pull by tag at the latest and at version 1, a page of 3 tags,
/// and a membership check.
async fn costs(store: &Store, table: &Counted, id: uuid::Uuid) -> [usize; 4] {
    let repo = store.repository(id).await.unwrap().unwrap();
    let latest = Tag::parse("latest").unwrap();
    let mut out = [0; 4];
    let before = table.reads();
    let at = store.tag(&repo, repo.latest_version, &latest).await.unwrap();
    out[0] = table.reads() - before;
    assert!(at.is_some());
    let before = table.reads();
    assert_eq!(
        store.tag(&repo, 1, &latest).await.unwrap(),
        Some(Digest::sha256_of(&4000u32.to_le_bytes()))
    );
    out[1] = table.reads() - before;
    let before = table.reads();
    let page = store.tags(&repo, repo.latest_version, None, 3).await.unwrap();
    out[2] = table.reads() - before;
    let names: Vec<String> = page.iter().map(|t| t.to_string()).collect();
    assert_eq!(names, ["a", "b", "c"]);
    let before = table.reads();
    assert!(store.contains(id, repo.latest_version, &blob(7)).await.unwrap());
    out[3] = table.reads() - before;
    out
}

/// A pull by tag, a tag page and a membership check cost the same reads after a tag moved
/// once and after it moved many more times.
pub async fn reads_do_not_grow_with_a_tag_s_moves<A: Adapter>(a: &A) {
    let table = Counted::new(a.table().await);
    let store = Store::new(table.clone());
    let repo = Repository::new("suite/history", RepositoryKind::Push);
    store.create_repository(&repo).await.unwrap();
    let mut w = store.begin_write(repo.id, "setup", TTL, Duration::ZERO).await.unwrap();
    for (i, t) in ["a", "b", "c", "d", "latest"].iter().enumerate() {
        w.add(tag(t, i as u32 * 1000)).await.unwrap();
    }
    w.add(blob(7)).await.unwrap();
    w.commit(None).await.unwrap().unwrap();
    // the blob comes and goes, so it has history of its own
    for _ in 0..3 {
        let mut w = store.begin_write(repo.id, "blob", TTL, Duration::ZERO).await.unwrap();
        w.remove(blob(7)).await.unwrap();
        w.commit(None).await.unwrap().unwrap();
        let mut w = store.begin_write(repo.id, "blob", TTL, Duration::ZERO).await.unwrap();
        w.add(blob(7)).await.unwrap();
        w.commit(None).await.unwrap().unwrap();
    }
    move_tag(&store, repo.id, 4000, 1..2).await;
    let once = costs(&store, &table, repo.id).await;
    let moves = 400 / A::SLOW;
    move_tag(&store, repo.id, 1, 2..2 + moves).await;
    let many = costs(&store, &table, repo.id).await;
    assert_eq!(once, many, "reads after 1 move, and after {} moves", moves + 1);
    assert_eq!(once[0], 1, "a pull by tag reads one index row");
    assert_eq!(once[1], 1, "so does one at an old version");
    assert_eq!(once[3], 1, "a membership check reads one row");
}

/// Whether the repository is indexed, and what `latest` and the tag list are in each version.
async fn read_all(store: &Store, id: uuid::Uuid) -> (bool, Vec<(Option<Digest>, Vec<Tag>)>) {
    let r = store.repository(id).await.unwrap().unwrap();
    let latest = Tag::parse("latest").unwrap();
    let mut out = Vec::new();
    for n in 0..=r.latest_version {
        let tags = store.tags(&r, n, None, 10).await.unwrap();
        out.push((store.tag(&r, n, &latest).await.unwrap(), tags));
    }
    (r.tag_index, out)
}

/// A repository whose tags were written before the tag index existed is read the old way,
/// and its next writer indexes it: every version's tags read the same before and after.
pub async fn an_older_repository_is_indexed_by_its_next_writer(a: &impl Adapter) {
    let table = a.table().await;
    let store = Store::new(table.clone());
    let repo = Repository::new("suite/older", RepositoryKind::Push);
    store.create_repository(&repo).await.unwrap();
    let mut w = store.begin_write(repo.id, "setup", TTL, Duration::ZERO).await.unwrap();
    w.add(tag("latest", 0)).await.unwrap();
    w.add(tag("other", 9)).await.unwrap();
    w.commit(None).await.unwrap().unwrap();
    move_tag(&store, repo.id, 0, 1..4).await;
    // as an older Berth left it: no index rows, no flag
    let pk = format!("tags#{}", repo.id);
    for row in table.query(&pk, Query::prefix("")).await.unwrap() {
        table.delete(&pk, &row.sk, Cond::Any).await.unwrap();
    }
    let item = table.get(&format!("repo#{}", repo.id), "_").await.unwrap().unwrap();
    let mut old: serde_json::Value = serde_json::from_slice(&item.value).unwrap();
    old["tag_index"] = serde_json::Value::Bool(false);
    old.as_object_mut().unwrap().remove("versions");
    table
        .put(
            &format!("repo#{}", repo.id),
            "_",
            serde_json::to_vec(&old).unwrap(),
            Cond::Rev(item.rev),
        )
        .await
        .unwrap();

    let (indexed, before) = read_all(&store, repo.id).await;
    assert!(!indexed);
    assert_eq!(before[4].0, Some(Digest::sha256_of(&3u32.to_le_bytes())));
    assert_eq!(before[1].1.len(), 2);
    // a writer that changes nothing still indexes the repository
    store
        .begin_write(repo.id, "next", TTL, Duration::ZERO)
        .await
        .unwrap()
        .abort()
        .await
        .unwrap();
    let (indexed, after) = read_all(&store, repo.id).await;
    assert!(indexed);
    assert_eq!(before, after);
    // and counts its versions
    let r = store.repository(repo.id).await.unwrap().unwrap();
    assert_eq!(r.versions.as_ref().map(|s| (s.first, s.deleted.len())), Some((0, 0)));
    let page = store
        .version_range_page(&r, 0, u64::MAX, false, Page { limit: 2, offset: 1 })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(page.count, 5);
    assert_eq!(page.items.iter().map(|v| v.number).collect::<Vec<_>>(), [3, 2]);
}

/// What a version page should hold, computed by reading every version.
async fn expected_page(
    store: &Store,
    repo: &Repository,
    lo: u64,
    hi: u64,
    oldest_first: bool,
    page: Page,
) -> (usize, Vec<u64>) {
    let mut all: Vec<u64> = store
        .versions(repo)
        .await
        .unwrap()
        .iter()
        .map(|v| v.number)
        .filter(|n| (lo..=hi).contains(n))
        .collect();
    if oldest_first {
        all.reverse();
    }
    let items = all.iter().skip(page.offset).take(page.limit).copied().collect();
    (all.len(), items)
}

/// A page of versions is one query, and agrees with reading every version, after versions
/// are deleted from the start, the middle and the end.
pub async fn a_page_of_versions_is_one_read(a: &impl Adapter) {
    let table = Counted::new(a.table().await);
    let store = Store::new(table.clone());
    let repo = Repository::new("suite/versions", RepositoryKind::Push);
    store.create_repository(&repo).await.unwrap();
    let history = 40;
    for i in 0..history {
        let mut w = store.begin_write(repo.id, "w", TTL, Duration::ZERO).await.unwrap();
        w.add(blob(i as u32)).await.unwrap();
        w.commit(None).await.unwrap().unwrap();
    }
    let wait = Duration::from_secs(5);
    for n in [0, 1, 5, 6, 7, history / 2, history] {
        store.delete_version(repo.id, n, "d", TTL, wait).await.unwrap();
    }
    let r = store.repository(repo.id).await.unwrap().unwrap();
    assert_eq!(r.latest_version, history - 1);
    let span = r.versions.clone().unwrap();
    assert_eq!(span.first, 2);
    let pages = [
        Page { limit: 1, offset: 0 },
        Page { limit: 10, offset: 0 },
        Page { limit: 10, offset: 3 },
        Page { limit: 7, offset: 40 },
        Page { limit: 5, offset: 1000 },
    ];
    for (lo, hi) in [
        (0, u64::MAX),
        (4, 9),
        (history / 2 - 3, history / 2 + 3),
        (6, 6),
        (9, 4),
    ] {
        for oldest_first in [false, true] {
            for page in pages {
                let before = table.reads();
                let got = store
                    .version_range_page(&r, lo, hi, oldest_first, page)
                    .await
                    .unwrap()
                    .expect("a new repository counts its versions");
                let reads = table.reads() - before;
                let numbers: Vec<u64> = got.items.iter().map(|v| v.number).collect();
                let want = expected_page(&store, &r, lo, hi, oldest_first, page).await;
                assert_eq!(
                    (got.count, numbers),
                    want,
                    "{lo}..={hi} oldest first {oldest_first} {page:?}"
                );
                assert!(reads <= 1, "{reads} reads");
            }
        }
    }
}
