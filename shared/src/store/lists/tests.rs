//! The paged lists' tests: what each list costs in table reads, pinned.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;

use super::*;
use crate::adapters::memory::MemoryTable;
use crate::domain::{Digest, RepoName};

/// A table that counts its reads (each one DynamoDB request on AWS).
pub(in crate::store) type Counting = crate::port_suite::history::Counted;

/// An empty in-memory table that counts its reads.
pub(in crate::store) fn counting() -> Arc<Counting> {
    Counting::new(Arc::new(MemoryTable::new()))
}

fn digest(i: usize) -> Digest {
    Digest::parse(&format!("sha256:{i:064x}")).unwrap()
}

fn tag(i: usize) -> ContentKey {
    ContentKey::Tag {
        name: crate::domain::Tag::parse(&format!("t{i:03}")).unwrap(),
        manifest: digest(i),
    }
}

/// A store holding `n` remotes, tasks, distributions, blobs and tags (the last two in one
/// version).
async fn store_with(n: usize) -> (Arc<Counting>, Store, Repository) {
    let table = counting();
    let store = Store::new(table.clone());
    let repo = Repository::new("r", RepositoryKind::Mirror);
    store.create_repository(&repo).await.unwrap();
    let mut w = store
        .begin_write(repo.id, "test", Duration::from_secs(60), Duration::from_secs(1))
        .await
        .unwrap();
    for i in 0..n {
        store
            .create_remote(&Remote::new(
                &format!("rem{i:03}"),
                "https://h",
                crate::domain::RepoName::parse("x").unwrap(),
            ))
            .await
            .unwrap();
        store.create_task(&Task::new(&format!("task{i}"))).await.unwrap();
        let d = Distribution::new(
            &format!("d{i:03}"),
            RepoName::parse(&format!("d{i:03}")).unwrap(),
            Some(repo.id),
        );
        store.create_distribution(&d).await.unwrap();
        store
            .put_blob(&BlobRecord {
                digest: digest(i),
                size: 1,
                created: Utc::now(),
            })
            .await
            .unwrap();
        w.add(ContentKey::Blob(digest(i))).await.unwrap();
        w.add(tag(i)).await.unwrap();
        let now = Utc::now();
        store
            .put_worker(&crate::store::WorkerRecord {
                id: Uuid::nil(),
                name: format!("{i}@host"),
                created: now,
                last_heartbeat: now,
                ttl_secs: 30,
                versions: Default::default(),
                current_task: None,
            })
            .await
            .unwrap();
    }
    w.commit(None).await.unwrap();
    let repo = store.repository(repo.id).await.unwrap().unwrap();
    (table, store, repo)
}

/// The reads each list costs for one page of 5, keyed by list.
async fn page_costs(n: usize) -> Vec<(&'static str, usize, usize)> {
    let (table, store, repo) = store_with(n).await;
    let page = Page { limit: 5, offset: 2 };
    let mut out = Vec::new();
    macro_rules! cost {
        ($name:literal, $e:expr) => {{
            let before = table.reads();
            let listing = $e.await.unwrap();
            assert_eq!((listing.count, listing.items.len()), (n, 5), $name);
            out.push(($name, n, table.reads() - before));
        }};
    }
    cost!("remotes", store.remote_page(|_| true, page));
    cost!("tasks", store.task_page(|_| true, page));
    cost!("distributions", store.distribution_page(|_| true, page));
    cost!(
        "blobs of a version",
        store.content_page(
            ContentType::Blob,
            &[ContentSet::InVersion(repo.id, 1)],
            |_| true,
            None,
            page
        )
    );
    cost!(
        "a page of a version's blobs",
        store.version_content_page(&repo, 1, ContentType::Blob, page)
    );
    cost!(
        "a page of a version's tags",
        store.version_content_page(&repo, 1, ContentType::Tag, page)
    );
    cost!(
        "every blob",
        store.content_page(ContentType::Blob, &[], |_| true, None, page)
    );
    // content of every type together: a page of two blobs and three tags
    let mixed = Page {
        limit: 5,
        offset: n - 2,
    };
    let every = ContentType::ALL;
    macro_rules! mixed {
        ($name:literal, $sets:expr) => {{
            let before = table.reads();
            let listing = store
                .mixed_content_page(&every, $sets, |_| true, ContentOrder::Type, mixed)
                .await
                .unwrap();
            assert_eq!(listing.count, 2 * n, $name);
            let types: Vec<ContentType> = listing.items.iter().map(|u| u.key.content_type()).collect();
            assert_eq!(
                types,
                [[ContentType::Blob; 2].as_slice(), &[ContentType::Tag; 3]].concat()
            );
            assert!(listing.items.iter().all(|u| u.created.is_some()), $name);
            out.push(($name, n, table.reads() - before));
        }};
    }
    mixed!("every type of a version", &[ContentSet::InVersion(repo.id, 1)]);
    mixed!("every type a version added", &[ContentSet::AddedIn(repo.id, 1)]);
    mixed!("every unit of every type", &[]);
    // namespaces (each distribution is in its own) and workers: lists of their own
    macro_rules! scan {
        ($name:literal, $e:expr) => {{
            let before = table.reads();
            let all = $e.await.unwrap();
            assert_eq!(all.len(), n, $name);
            out.push(($name, n, table.reads() - before));
            all
        }};
    }
    let namespaces = scan!("namespaces", store.namespaces());
    let workers = scan!("workers", store.workers());
    let before = table.reads();
    assert!(store.namespace(namespaces[n / 2].id).await.unwrap().is_some());
    assert!(store.worker(workers[n / 2].id).await.unwrap().is_some());
    out.push(("a namespace and a worker", n, table.reads() - before));
    let before = table.reads();
    let versions = store
        .version_page(&repo, |_| true, true, Page { limit: 1, offset: 1 })
        .await
        .unwrap();
    assert_eq!((versions.count, versions.items[0].number), (2, 1));
    out.push(("versions", n, table.reads() - before));
    out
}

#[tokio::test]
async fn a_page_costs_the_same_reads_whatever_the_number_of_items() {
    // Given lists of 10 and of 60 items, when one page of 5 is read from each,
    // then each list costs the same reads at both sizes: its scan and the page.
    let small = page_costs(10).await;
    let large = page_costs(60).await;
    let reads: Vec<(&str, usize)> = small.iter().map(|(name, _, r)| (*name, *r)).collect();
    assert_eq!(
        reads,
        vec![
            ("remotes", 1),
            ("tasks", 1),
            ("distributions", 1),
            ("blobs of a version", 7),
            ("a page of a version's blobs", 7),
            ("a page of a version's tags", 7),
            // the content index: one query for each of its 17 partitions (see `shards.rs`)
            ("every blob", 22),
            ("every type of a version", 10),
            ("every type a version added", 6),
            ("every unit of every type", 73),
            ("namespaces", 1),
            ("workers", 1),
            ("a namespace and a worker", 3),
            ("versions", 1),
        ]
    );
    for ((name, _, a), (_, _, b)) in small.iter().zip(&large) {
        assert_eq!(a, b, "{name}: reads grow with the number of items");
    }
}

/// Reads one page of versions takes after `history` versions.
async fn version_page_reads(history: u64) -> usize {
    let table = counting();
    let store = Store::new(table.clone());
    let repo = Repository::new("r", RepositoryKind::Push);
    store.create_repository(&repo).await.unwrap();
    for i in 0..history {
        let mut w = store
            .begin_write(repo.id, "w", Duration::from_secs(60), Duration::ZERO)
            .await
            .unwrap();
        w.add(ContentKey::Blob(digest(i as usize))).await.unwrap();
        w.commit(None).await.unwrap().unwrap();
    }
    let repo = store.repository(repo.id).await.unwrap().unwrap();
    let before = table.reads();
    let page = store
        .version_range_page(&repo, 0, u64::MAX, false, Page { limit: 10, offset: 20 })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(page.count as u64, history + 1);
    assert_eq!(page.items[0].number, history - 20);
    table.reads() - before
}

#[tokio::test]
async fn a_page_of_versions_costs_one_read_after_ten_thousand() {
    assert_eq!(version_page_reads(100).await, 1);
    assert_eq!(version_page_reads(10_000).await, 1);
}

#[tokio::test]
async fn a_page_holds_the_items_after_the_offset_and_counts_all() {
    let l = Page { limit: 2, offset: 3 }.cut(0..10);
    assert_eq!((l.count, l.items), (10, vec![3, 4]));
    let l = Page { limit: 2, offset: 30 }.cut(0..10);
    assert_eq!((l.count, l.items), (10, vec![]));
    assert_eq!(Page::ALL.cut(0..3).items, vec![0, 1, 2]);
}
