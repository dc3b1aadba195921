//! Namespaces and workers over the table port. Invariant 6 for namespaces: of racing writers
//! of distributions (and of namespaces) in one new namespace exactly one makes it, and every
//! distribution names the namespace its base path starts with, also while a namespace is being
//! removed. Workers: a heartbeat keeps its worker's id and creation time.

use std::time::Duration;

use chrono::Utc;

use crate::domain::RepoName;
use crate::ports::{Cond, StoreError};
use crate::store::{Distribution, Namespace, NamespaceRemoval, Store, WorkerRecord};

use super::Adapter;

fn dist(name: &str, base_path: &str) -> Distribution {
    Distribution::new(name, RepoName::parse(base_path).unwrap(), None)
}

/// Every distribution of the store names the existing namespace of its base path.
async fn every_distribution_has_its_namespace(store: &Store) {
    for d in store.distributions(None, usize::MAX).await.unwrap() {
        let id = d
            .namespace
            .unwrap_or_else(|| panic!("{} has no namespace", d.base_path));
        let ns = store.namespace(id).await.unwrap();
        assert_eq!(
            ns.map(|ns| ns.name),
            Some(d.namespace_name().to_owned()),
            "{}",
            d.base_path
        );
    }
}

/// Given 16 racers, When 12 create distributions in one new namespace and 4 create the
/// namespace itself, Then there is exactly one namespace of that name, every distribution names
/// it, and at most one namespace create succeeded.
pub async fn racing_creates_make_one_namespace(a: &impl Adapter) {
    let store = Store::new(a.table().await);
    let mut tasks = Vec::new();
    for i in 0..16 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            if i % 4 == 0 {
                store.create_namespace(&Namespace::new("race")).await.map(|_| true)
            } else {
                let base = if i == 1 {
                    "race".to_owned()
                } else {
                    format!("race/d{i}")
                };
                store
                    .create_distribution(&dist(&format!("d{i}"), &base))
                    .await
                    .map(|_| false)
            }
        }));
    }
    let mut namespace_creates = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(true) => namespace_creates += 1,
            Ok(false) => {}
            Err(StoreError::Conflict(_)) => {}
            Err(e) => panic!("{e:?}"),
        }
    }
    assert!(namespace_creates <= 1, "{namespace_creates} namespace creates won");
    let all = store.namespaces().await.unwrap();
    assert_eq!(all.iter().map(|n| n.name.as_str()).collect::<Vec<_>>(), ["race"]);
    let dists = store.namespace_distributions("race").await.unwrap();
    assert_eq!(dists.len(), 12, "every distribution was made");
    assert!(dists.iter().all(|d| d.namespace == Some(all[0].id)));
    every_distribution_has_its_namespace(&store).await;
}

/// Given a namespace holding a distribution, When it is removed, Then it is refused with what
/// it holds until that is gone; once removed, a new distribution makes a new namespace, and a
/// distribution moved to another first segment joins (or makes) that namespace, the old one
/// staying.
pub async fn a_namespace_goes_only_when_empty(a: &impl Adapter) {
    let store = Store::new(a.table().await);
    let d = dist("a", "gone/a");
    store.create_distribution(&d).await.unwrap();
    let ns = store.namespace_by_name("gone").await.unwrap().unwrap();
    match store.remove_namespace(ns.id).await.unwrap() {
        NamespaceRemoval::Holds(held) => assert_eq!(held.iter().map(|d| d.id).collect::<Vec<_>>(), [d.id]),
        other => panic!("{other:?}"),
    }
    // a base path that only starts with the name is not in it
    store.create_distribution(&dist("other", "gonely/x")).await.unwrap();
    let stored = store.distribution(d.id).await.unwrap().unwrap();
    assert_eq!(stored.namespace, Some(ns.id));
    store.delete_distribution(&stored).await.unwrap();
    assert_eq!(
        store.namespace(ns.id).await.unwrap(),
        Some(ns.clone()),
        "a namespace outlives its distributions"
    );
    assert_eq!(store.remove_namespace(ns.id).await.unwrap(), NamespaceRemoval::Removed);
    assert_eq!(store.namespace(ns.id).await.unwrap(), None);
    assert!(matches!(store.remove_namespace(ns.id).await, Err(StoreError::NotFound)));
    store.create_distribution(&dist("b", "gone/b")).await.unwrap();
    let again = store.namespace_by_name("gone").await.unwrap().unwrap();
    assert_ne!(again.id, ns.id);

    let before = store
        .distribution_by_base_path(&RepoName::parse("gone/b").unwrap())
        .await
        .unwrap()
        .unwrap();
    let mut after = before.clone();
    after.base_path = RepoName::parse("moved/b").unwrap();
    store.replace_distribution(&before, &after).await.unwrap();
    let moved = store.namespace_by_name("moved").await.unwrap().unwrap();
    assert_eq!(
        store.distribution(before.id).await.unwrap().unwrap().namespace,
        Some(moved.id)
    );
    assert!(store.namespace(again.id).await.unwrap().is_some());
    // a namespace whose name is no first segment holds nothing
    let odd = Namespace::new("moved/b");
    store.create_namespace(&odd).await.unwrap();
    assert_eq!(store.remove_namespace(odd.id).await.unwrap(), NamespaceRemoval::Removed);
    assert!(store.distribution(before.id).await.unwrap().is_some());
    // a taken name is refused
    assert!(matches!(
        store.create_namespace(&Namespace::new("moved")).await,
        Err(StoreError::Conflict(_))
    ));
    every_distribution_has_its_namespace(&store).await;
}

/// Given distributions being created in a namespace, When the namespace is removed meanwhile
/// (deleting what it holds, round after round), Then no distribution is ever left without its
/// namespace.
pub async fn removals_race_creates(a: &impl Adapter) {
    let store = Store::new(a.table().await);
    store.create_distribution(&dist("first", "churn/first")).await.unwrap();
    let ns = store.namespace_by_name("churn").await.unwrap().unwrap();
    let mut creators = Vec::new();
    for i in 0..8 {
        let store = store.clone();
        creators.push(tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(i * 3)).await;
            store
                .create_distribution(&dist(&format!("c{i}"), &format!("churn/c{i}")))
                .await
        }));
    }
    let remover = {
        let store = store.clone();
        tokio::spawn(async move {
            loop {
                match store.remove_namespace(ns.id).await {
                    Ok(NamespaceRemoval::Removed) => return,
                    Ok(NamespaceRemoval::Holds(held)) => {
                        for d in held {
                            store.delete_distribution(&d).await.unwrap();
                        }
                    }
                    Err(StoreError::Conflict(_)) => {}
                    Err(e) => panic!("{e:?}"),
                }
            }
        })
    };
    for c in creators {
        c.await.unwrap().unwrap();
    }
    remover.await.unwrap();
    assert_eq!(store.namespace(ns.id).await.unwrap(), None);
    every_distribution_has_its_namespace(&store).await;
}

/// Given a distribution an older version wrote (no namespace, none made), When the repair
/// runs, Then it is in the namespace of its base path; a second run finds nothing.
pub async fn old_distributions_get_their_namespace(a: &impl Adapter) {
    let t = a.table().await;
    let store = Store::new(t.clone());
    let old = dist("old", "legacy/app");
    t.put("dists", "legacy/app", serde_json::to_vec(&old).unwrap(), Cond::Absent)
        .await
        .unwrap();
    t.put(
        "dist-names",
        "old",
        serde_json::to_vec("legacy/app").unwrap(),
        Cond::Absent,
    )
    .await
    .unwrap();
    t.put(
        "dist-ids",
        &old.id.to_string(),
        serde_json::to_vec("legacy/app").unwrap(),
        Cond::Absent,
    )
    .await
    .unwrap();
    let done = store.repair_names().await.unwrap();
    assert_eq!(done.actions.len(), 1, "{done:?}");
    let ns = store.namespace_by_name("legacy").await.unwrap().unwrap();
    assert_eq!(
        store.distribution(old.id).await.unwrap().unwrap().namespace,
        Some(ns.id)
    );
    assert!(store.repair_names().await.unwrap().is_empty());
}

/// Given a worker's heartbeats, When it beats again, Then its id (derived from its name) and
/// its creation time stay and the last heartbeat moves; the list and the lookup by id find it.
pub async fn heartbeats_keep_a_worker_s_identity(a: &impl Adapter) {
    let store = Store::new(a.table().await);
    let t0 = Utc::now() - chrono::TimeDelta::seconds(60);
    let beat = |at| WorkerRecord {
        id: uuid::Uuid::nil(),
        name: "1@host".into(),
        created: at,
        last_heartbeat: at,
        ttl_secs: 30,
        versions: [("core".to_owned(), "3.85.0".to_owned())].into(),
        current_task: None,
    };
    let first = store.put_worker(&beat(t0)).await.unwrap();
    assert_eq!(first.id, WorkerRecord::id_of("1@host"));
    let now = Utc::now();
    let second = store.put_worker(&beat(now)).await.unwrap();
    assert_eq!((second.id, second.created, second.last_heartbeat), (first.id, t0, now));
    assert_eq!(store.workers().await.unwrap(), vec![second.clone()]);
    assert_eq!(store.worker(first.id).await.unwrap(), Some(second.clone()));
    assert!(second.online_at(now) && !first.online_at(now));
}
