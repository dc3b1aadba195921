//! Pages that cost the same however long the list: a page of versions, of a version's tags,
//! of every unit of a type, of tasks, of repositories and of distributions takes the same
//! number of table reads at 100 items and at [`Adapter::MANY`], and holds the right items.

use std::future::Future;
use std::time::Duration;

use futures::StreamExt;

use crate::domain::{ContentType, RepoName};
use crate::store::{Distribution, Listing, Page, Repository, RepositoryKind, Store, Task};

use super::history::Counted;
use super::{blob, tag, Adapter, TTL};

/// The page every case reads: past the first, so that an offset is walked.
const PAGE: Page = Page { limit: 10, offset: 20 };

/// How many creates run at once while a list grows.
const AT_ONCE: usize = 4;

/// Runs `make(i)` for each `i` in `range`, [`AT_ONCE`] at a time.
async fn grow<F, Fut>(range: std::ops::Range<usize>, make: F)
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = ()>,
{
    futures::stream::iter(range.map(make))
        .buffer_unordered(AT_ONCE)
        .collect::<Vec<()>>()
        .await;
}

/// The reads `list` takes, after a first call (which may count a list once).
async fn reads_of<T, Fut>(table: &Counted, list: impl Fn() -> Fut) -> (usize, Listing<T>)
where
    Fut: Future<Output = Listing<T>>,
{
    list().await;
    let before = table.reads();
    let listing = list().await;
    (table.reads() - before, listing)
}

/// Grows a list from 100 items to `many`, reading the same page at each size: the reads must
/// not change, and the page must hold what `check` expects at that size.
async fn same_reads<T, F, Fut, G, GFut>(
    table: &Counted,
    many: usize,
    make: G,
    list: F,
    check: impl Fn(usize, &Listing<T>),
) where
    F: Fn() -> Fut,
    Fut: Future<Output = Listing<T>>,
    G: Fn(usize) -> GFut,
    GFut: Future<Output = ()>,
{
    grow(0..100, &make).await;
    let (small, at_100) = reads_of(table, &list).await;
    check(100, &at_100);
    grow(100..many, &make).await;
    let (large, at_many) = reads_of(table, &list).await;
    check(many, &at_many);
    assert_eq!(small, large, "reads of one page at 100 items and at {many}");
}

pub async fn a_page_of_versions_reads_the_same_at_any_length<A: Adapter>(a: &A) {
    let table = Counted::new(a.table().await);
    let store = Store::new(table.clone());
    let repo = Repository::new("pages/versions", RepositoryKind::Push);
    store.create_repository(&repo).await.unwrap();
    // versions are made one after another
    let commit = |range: std::ops::Range<usize>| {
        let store = &store;
        async move {
            for i in range {
                let mut w = store.begin_write(repo.id, "w", TTL, Duration::ZERO).await.unwrap();
                w.add(blob(i as u32)).await.unwrap();
                w.commit(None).await.unwrap().unwrap();
            }
        }
    };
    let list = || async {
        let r = store.repository(repo.id).await.unwrap().unwrap();
        store
            .version_range_page(&r, 0, u64::MAX, false, PAGE)
            .await
            .unwrap()
            .unwrap()
    };
    let check = |n: usize, l: &Listing<crate::store::RepositoryVersion>| {
        assert_eq!(l.count, n + 1);
        let numbers: Vec<u64> = l.items.iter().map(|v| v.number).collect();
        let top = n as u64 - 20;
        assert_eq!(numbers, (top - 9..=top).rev().collect::<Vec<_>>());
    };
    commit(0..100).await;
    let (small, at_100) = reads_of(&table, list).await;
    check(100, &at_100);
    commit(100..A::MANY).await;
    let (large, at_many) = reads_of(&table, list).await;
    check(A::MANY, &at_many);
    assert_eq!(small, large, "reads of one page at 100 versions and at {}", A::MANY);
}

pub async fn a_page_of_a_version_s_tags_reads_the_same_at_any_length<A: Adapter>(a: &A) {
    let table = Counted::new(a.table().await);
    let store = Store::new(table.clone());
    let repo = Repository::new("pages/tags", RepositoryKind::Push);
    store.create_repository(&repo).await.unwrap();
    let add = |range: std::ops::Range<usize>| {
        let store = &store;
        async move {
            let mut w = store.begin_write(repo.id, "w", TTL, Duration::ZERO).await.unwrap();
            for i in range {
                w.add(tag(&format!("t{i:06}"), i as u32)).await.unwrap();
            }
            w.commit(None).await.unwrap().unwrap();
        }
    };
    add(0..100).await;
    let list = || async {
        let r = store.repository(repo.id).await.unwrap().unwrap();
        store
            .version_content_page(&r, r.latest_version, ContentType::Tag, PAGE)
            .await
            .unwrap()
    };
    let check = |n: usize, l: &Listing<crate::store::ContentUnit>| {
        assert_eq!(l.count, n);
        let names: Vec<String> = l.items.iter().map(|u| u.key.encode()).collect();
        let want: Vec<String> = (20..30).map(|i| tag(&format!("t{i:06}"), i).encode()).collect();
        assert_eq!(names, want);
    };
    let (small, at_100) = reads_of(&table, list).await;
    check(100, &at_100);
    add(100..A::MANY).await;
    let (large, at_many) = reads_of(&table, list).await;
    check(A::MANY, &at_many);
    assert_eq!(small, large, "reads of one page at 100 tags and at {}", A::MANY);
}

pub async fn a_page_of_every_unit_reads_the_same_at_any_length<A: Adapter>(a: &A) {
    let table = Counted::new(a.table().await);
    let store = Store::new(table.clone());
    let make = |i: usize| {
        let store = &store;
        async move {
            store.record_content(&blob(i as u32)).await.unwrap();
        }
    };
    let list = || async { store.all_content_page(&ContentType::ALL, PAGE).await.unwrap() };
    same_reads(&table, A::MANY, make, list, |n, l| {
        assert_eq!(l.count, n);
        let mut all: Vec<String> = (0..n).map(|i| blob(i as u32).encode()).collect();
        all.sort();
        let want: Vec<String> = all[20..30].to_vec();
        assert_eq!(l.items.iter().map(|u| u.key.encode()).collect::<Vec<_>>(), want);
    })
    .await;
}

pub async fn a_page_of_tasks_reads_the_same_at_any_length<A: Adapter>(a: &A) {
    let table = Counted::new(a.table().await);
    let store = Store::new(table.clone());
    let made = std::sync::Mutex::new(Vec::new());
    let make = |_: usize| {
        let (store, made) = (&store, &made);
        async move {
            let t = Task::new("berth.sync");
            store.create_task(&t).await.unwrap();
            made.lock().unwrap().push((t.created, t.id));
        }
    };
    let list = || async { store.task_range(PAGE).await.unwrap() };
    same_reads(&table, A::MANY, make, list, |n, l| {
        assert_eq!(l.count, n);
        let mut all = made.lock().unwrap().clone();
        all.sort_by(|a, b| b.cmp(a));
        let want: Vec<uuid::Uuid> = all[20..30].iter().map(|(_, id)| *id).collect();
        let got: Vec<uuid::Uuid> = l.items.iter().map(|t| t.id).collect();
        assert_eq!(got.len(), 10);
        // tasks made in the same microsecond may list in either order
        let times = |ids: &[uuid::Uuid]| -> Vec<_> {
            ids.iter()
                .map(|id| all.iter().find(|(_, x)| x == id).unwrap().0)
                .collect()
        };
        assert_eq!(times(&got), times(&want));
    })
    .await;
}

pub async fn a_page_of_repositories_reads_the_same_at_any_length<A: Adapter>(a: &A) {
    let table = Counted::new(a.table().await);
    let store = Store::new(table.clone());
    let make = |i: usize| {
        let store = &store;
        async move {
            // every tenth a mirror: a kind's page skips the other kind
            let kind = if i % 10 == 3 {
                RepositoryKind::Mirror
            } else {
                RepositoryKind::Push
            };
            let r = Repository::new(&format!("r{i:06}"), kind);
            store.create_repository(&r).await.unwrap();
        }
    };
    let list = || async { store.repository_range(RepositoryKind::Push, PAGE).await.unwrap() };
    same_reads(&table, A::MANY, make, list, |n, l| {
        let push: Vec<String> = (0..n).filter(|i| i % 10 != 3).map(|i| format!("r{i:06}")).collect();
        assert_eq!(l.count, push.len());
        assert_eq!(l.items.iter().map(|r| r.name.clone()).collect::<Vec<_>>(), push[20..30]);
    })
    .await;
}

pub async fn a_page_of_distributions_reads_the_same_at_any_length<A: Adapter>(a: &A) {
    let table = Counted::new(a.table().await);
    let store = Store::new(table.clone());
    let path = |i: usize| format!("d{i:06}/app");
    let make = |i: usize| {
        let store = &store;
        async move {
            let d = Distribution::new(&format!("d{i}"), RepoName::parse(&path(i)).unwrap(), None);
            store.create_distribution(&d).await.unwrap();
        }
    };
    let list = || async { store.distribution_range(PAGE).await.unwrap() };
    same_reads(&table, A::MANY, make, list, |n, l| {
        assert_eq!(l.count, n);
        let got: Vec<String> = l.items.iter().map(|d| d.base_path.as_str().to_owned()).collect();
        assert_eq!(got, (20..30).map(path).collect::<Vec<_>>());
    })
    .await;
}
