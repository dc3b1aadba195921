//! Names and leases over the table port. Invariant 6: of racing creates of one name exactly
//! one wins and it is the one listed; renames and deletes move names and items together; names
//! left by older versions' crashed creates are taken over or repaired. Invariant 2: a
//! restarted node takes over its earlier life's leases at once.

use std::time::Duration;

use crate::domain::RepoName;
use crate::ports::{Cond, StoreError};
use crate::store::{Distribution, NodeLife, Remote, Repository, RepositoryKind, Store, WriteError};

use super::{Adapter, TTL};

fn dist(name: &str, base_path: &str, repository: Option<uuid::Uuid>) -> Distribution {
    Distribution::new(name, RepoName::parse(base_path).unwrap(), repository)
}

/// Given 16 racers, When each creates a repository, a remote and a distribution of one name,
/// Then exactly one of each wins, and lists hold exactly the winners.
pub async fn one_racing_create_wins(a: &impl Adapter) {
    let store = Store::new(a.table().await);
    let racers = 16;
    let mut tasks = Vec::new();
    for i in 0..racers {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let repo = Repository::new("race/repo", RepositoryKind::Mirror);
            let r = store.create_repository(&repo).await.map(|_| repo.id);
            let remote = Remote::new(
                "race-remote",
                "http://127.0.0.1:1",
                crate::domain::RepoName::parse("x").unwrap(),
            );
            let m = store.create_remote(&remote).await.map(|_| remote.id);
            let d = dist("race-dist", &format!("race/d{i}"), None);
            let dd = store.create_distribution(&d).await.map(|_| d.id);
            let b = dist(&format!("race-base-{i}"), "race/base", None);
            let bb = store.create_distribution(&b).await.map(|_| b.id);
            (r, m, dd, bb)
        }));
    }
    let (mut repos, mut remotes, mut dists, mut bases) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for task in tasks {
        let (r, m, d, b) = task.await.unwrap();
        for (res, won) in [(r, &mut repos), (m, &mut remotes), (d, &mut dists), (b, &mut bases)] {
            match res {
                Ok(id) => won.push(id),
                Err(StoreError::Conflict(_)) => {}
                Err(e) => panic!("{e:?}"),
            }
        }
    }
    assert_eq!((repos.len(), remotes.len(), dists.len(), bases.len()), (1, 1, 1, 1));
    let listed: Vec<_> = store
        .repositories()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.name == "race/repo")
        .map(|r| r.id)
        .collect();
    assert_eq!(listed, repos);
    let listed: Vec<_> = store
        .remotes()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.name == "race-remote")
        .map(|r| r.id)
        .collect();
    assert_eq!(listed, remotes);
    assert_eq!(store.distribution(dists[0]).await.unwrap().unwrap().name, "race-dist");
    let base = RepoName::parse("race/base").unwrap();
    assert_eq!(
        store.distribution_by_base_path(&base).await.unwrap().unwrap().id,
        bases[0]
    );
}

/// Renames race creates: whoever wins, the name names exactly one item that carries it; a
/// delete takes the name and the item together, and the name is free at once.
pub async fn renames_race_creates(a: &impl Adapter) {
    let store = Store::new(a.table().await);
    let a = Repository::new("rename/a", RepositoryKind::Mirror);
    store.create_repository(&a).await.unwrap();
    let (s1, s2) = (store.clone(), store.clone());
    let rename = tokio::spawn(async move {
        s1.update_repository::<StoreError>(a.id, |r| {
            r.name = "rename/b".into();
            Ok(())
        })
        .await
    });
    let create = tokio::spawn(async move {
        s2.create_repository(&Repository::new("rename/b", RepositoryKind::Mirror))
            .await
    });
    let (r1, r2) = (rename.await.unwrap(), create.await.unwrap());
    assert!(r1.is_ok() != r2.is_ok(), "exactly one takes the name: {r1:?} {r2:?}");
    let b = store.repository_by_name("rename/b").await.unwrap().unwrap();
    assert_eq!(b.name, "rename/b");
    assert_eq!(
        store.repository_by_name("rename/a").await.unwrap().is_some(),
        r2.is_ok()
    );
    let names: Vec<_> = store
        .repositories()
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.name)
        .collect();
    assert_eq!(
        names.iter().filter(|n| n.starts_with("rename/")).count(),
        if r2.is_ok() { 2 } else { 1 }
    );
    // a delete takes the name and the item together; the name is free at once
    store.delete_repository(&b).await.unwrap();
    assert!(store.repository(b.id).await.unwrap().is_none());
    store
        .create_repository(&Repository::new("rename/b", RepositoryKind::Mirror))
        .await
        .unwrap();
}

/// Given what older versions could leave: a name row naming no item, a served repository
/// hidden behind an empty one of the same name, a remote sharing its name; When the repair
/// runs, Then every item has its own name, the served repository is listed under its name,
/// and the empty duplicate is gone. A stale name row is also taken over by a create.
pub async fn older_versions_leftovers_are_repaired(a: &impl Adapter) {
    let t = a.table().await;
    let store = Store::new(t.clone());
    t.put(
        "repo-names",
        "stale",
        serde_json::to_vec(&uuid::Uuid::new_v4()).unwrap(),
        Cond::Absent,
    )
    .await
    .unwrap();
    let empty = Repository::new("split", RepositoryKind::Push);
    store.create_repository(&empty).await.unwrap();
    let mut hidden = Repository::new("split", RepositoryKind::Push);
    hidden.latest_version = 3;
    t.put(
        &format!("repo#{}", hidden.id),
        "_",
        serde_json::to_vec(&hidden).unwrap(),
        Cond::Absent,
    )
    .await
    .unwrap();
    store
        .create_distribution(&dist("split", "split", Some(hidden.id)))
        .await
        .unwrap();
    let twin = Remote::new(
        "twin",
        "http://127.0.0.1:1",
        crate::domain::RepoName::parse("x").unwrap(),
    );
    store.create_remote(&twin).await.unwrap();
    let other = Remote::new(
        "twin",
        "http://127.0.0.1:2",
        crate::domain::RepoName::parse("y").unwrap(),
    );
    t.put(
        "remotes",
        &other.id.to_string(),
        serde_json::to_vec(&other).unwrap(),
        Cond::Absent,
    )
    .await
    .unwrap();
    let done = store.repair_names().await.unwrap();
    assert_eq!(done.actions.len(), 3, "{done:?}");
    assert_eq!(store.repository_by_name("split").await.unwrap().unwrap().id, hidden.id);
    assert!(store.repository(empty.id).await.unwrap().is_none());
    assert!(t.get("repo-names", "stale").await.unwrap().is_none());
    let twins: Vec<_> = store
        .remotes()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.name.starts_with("twin"))
        .map(|r| r.name)
        .collect();
    assert_eq!(twins.len(), 2);
    assert_ne!(twins[0], twins[1]);
    assert!(
        store.repair_names().await.unwrap().is_empty(),
        "a second run finds nothing"
    );
    // a stale name row left by an older version's crashed create is taken over by a create
    t.put(
        "repo-names",
        "ghost2",
        serde_json::to_vec(&uuid::Uuid::new_v4()).unwrap(),
        Cond::Absent,
    )
    .await
    .unwrap();
    store
        .create_repository(&Repository::new("ghost2", RepositoryKind::Push))
        .await
        .unwrap();
}

/// Given a lease held by a killed process of this node, When its next life writes, Then it
/// takes the lease at once; another node's live lease still waits.
pub async fn a_restarted_node_takes_its_leases(a: &impl Adapter) {
    let t = a.table().await;
    let store = Store::new(t.clone());
    let repo = Repository::new("leased", RepositoryKind::Push);
    store.create_repository(&repo).await.unwrap();
    let first = Store::new(t.clone()).with_node(Some(NodeLife::new("node-a")));
    let w = first.begin_write(repo.id, "killed", TTL, Duration::ZERO).await.unwrap();
    std::mem::forget(w); // killed: never commits, never releases
    let other_node = Store::new(t.clone()).with_node(Some(NodeLife::new("node-b")));
    assert!(matches!(
        other_node.begin_write(repo.id, "b", TTL, Duration::ZERO).await,
        Err(WriteError::Busy)
    ));
    let second = Store::new(t.clone()).with_node(Some(NodeLife::new("node-a")));
    let started = std::time::Instant::now();
    let w = second
        .begin_write(repo.id, "restarted", TTL, Duration::ZERO)
        .await
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    w.commit(None).await.unwrap();
}
