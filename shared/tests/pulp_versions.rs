//! Router tests for the life of repository versions after they are committed, as pulpcore
//! has it: deleting the latest, a middle one and version 0 (the rest keep their content), the
//! protected versions a distribution serves, the last remaining version, and
//! `retain_repo_versions`; each on the in-memory store, the embedded store and DynamoDB and S3
//! on moto.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::pulp::{on_every_store, On, DISTS, REPOS, T};
use http::StatusCode;
use serde_json::{json, Value};

const PROTECTED: &str = "The repository version cannot be deleted because it (or its publications) are currently \
                         being used to distribute content. Please update the necessary distributions first.";

/// The manifest href of an image pushed to `src` (a push repository the tests take content from).
async fn manifest(t: &T, tag: &str) -> String {
    let d = t.push_image("src", tag, tag.as_bytes()).await;
    let r = t
        .get(&format!("/pulp/api/v3/content/container/manifests/?digest={d}"))
        .await
        .json();
    r["results"][0]["pulp_href"].as_str().unwrap().to_owned()
}

async fn repo(t: &T, name: &str) -> String {
    let r = t.post(REPOS, json!({"name": name})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json());
    r.json()["pulp_href"].as_str().unwrap().to_owned()
}

/// Adds (`add`) or removes one unit as a new version; returns the version's number.
async fn change(t: &T, repo: &str, unit: &str, add: bool) -> u64 {
    let op = if add { "add" } else { "remove" };
    let r = t.post(&format!("{repo}{op}/"), json!({"content_units": [unit]})).await;
    let task = t.task(r).await;
    assert_eq!(task["state"], "completed", "{task}");
    let href = task["created_resources"][0].as_str().unwrap();
    href.trim_end_matches('/').rsplit('/').next().unwrap().parse().unwrap()
}

async fn numbers(t: &T, repo: &str) -> Vec<u64> {
    let r = t.get(&format!("{repo}versions/")).await.json();
    r["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["number"].as_u64().unwrap())
        .collect()
}

/// The manifests (hrefs, sorted) of a version.
async fn manifests_in(t: &T, repo: &str, n: u64) -> Vec<String> {
    let r = t
        .get(&format!(
            "/pulp/api/v3/content/container/manifests/?repository_version={repo}versions/{n}/"
        ))
        .await
        .json();
    let mut out: Vec<String> = r["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["pulp_href"].as_str().unwrap().to_owned())
        .collect();
    out.sort();
    out
}

async fn version(t: &T, repo: &str, n: u64) -> Value {
    let r = t.get(&format!("{repo}versions/{n}/")).await;
    assert_eq!(r.status, StatusCode::OK, "version {n}");
    r.json()
}

async fn delete_version(t: &T, repo: &str, n: u64) -> Value {
    t.task(t.delete(&format!("{repo}versions/{n}/")).await).await
}

on_every_store!(
    versions_are_deleted_as_pulpcore_deletes_them,
    retain_repo_versions_keeps_the_newest_and_what_is_served
);

async fn versions_are_deleted_as_pulpcore_deletes_them(t: On) {
    let (a, b, c, d) = (
        manifest(&t, "a").await,
        manifest(&t, "b").await,
        manifest(&t, "c").await,
        manifest(&t, "d").await,
    );
    let repo = repo(&t, "versions").await;
    // 1: +a  2: +b  3: +c
    assert_eq!(change(&t, &repo, &a, true).await, 1);
    assert_eq!(change(&t, &repo, &b, true).await, 2);
    assert_eq!(change(&t, &repo, &c, true).await, 3);
    let v2 = manifests_in(&t, &repo, 2).await;
    assert_eq!(v2.len(), 2);

    // the latest: its changes are undone, the one before is the latest again
    let task = delete_version(&t, &repo, 3).await;
    assert_eq!(task["state"], "completed", "{task}");
    assert_eq!(task["name"], "pulpcore.app.tasks.repository.delete_version");
    let r = t.get(&repo).await.json();
    assert_eq!(r["latest_version_href"], format!("{repo}versions/2/"));
    assert_eq!(manifests_in(&t, &repo, 2).await, v2);
    assert_eq!(t.get(&format!("{repo}versions/3/")).await.status, StatusCode::NOT_FOUND);
    // and its number is not given out again
    assert_eq!(change(&t, &repo, &d, true).await, 4);
    let v4 = manifests_in(&t, &repo, 4).await;
    assert_eq!(v4.len(), 3, "a, b and d: c went with version 3");
    assert!(v4.contains(&a) && !v4.contains(&c));

    // version 0 and a middle one are squashed into their successors
    assert_eq!(delete_version(&t, &repo, 0).await["state"], "completed");
    let v1 = version(&t, &repo, 1).await;
    assert_eq!(v1["base_version"], Value::Null);
    assert_eq!(v1["content_summary"]["added"]["container.manifest"]["count"], 1);
    assert_eq!(v1["content_summary"]["removed"], json!({}));
    assert_eq!(delete_version(&t, &repo, 2).await["state"], "completed");
    assert_eq!(numbers(&t, &repo).await, [4, 1]);
    assert_eq!(manifests_in(&t, &repo, 4).await, v4);
    let s = version(&t, &repo, 4).await;
    assert_eq!(s["base_version"], format!("{repo}versions/1/"));
    assert_eq!(
        s["content_summary"]["added"]["container.manifest"]["count"], 2,
        "b and d against 1"
    );
    assert_eq!(s["content_summary"]["present"]["container.manifest"]["count"], 3);
    // what a version added, as the content filter reads it
    let added = t
        .get(&format!(
            "/pulp/api/v3/content/container/manifests/?repository_version_added={repo}versions/4/"
        ))
        .await
        .json();
    assert_eq!(added["count"], 2);

    // a distribution serving the latest protects it; one pinning a version protects that one
    let r = t
        .post(
            DISTS,
            json!({"name": "latest", "base_path": "versions", "repository": repo}),
        )
        .await;
    let dist_latest = t.task(r).await["created_resources"][0].as_str().unwrap().to_owned();
    let r = t.delete(&format!("{repo}versions/4/")).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.json(), json!([PROTECTED]));
    let r = t
        .post(
            DISTS,
            json!({"name": "pinned", "base_path": "versions-1", "repository_version": format!("{repo}versions/1/")}),
        )
        .await;
    let dist_pinned = t.task(r).await["created_resources"][0].as_str().unwrap().to_owned();
    assert_eq!(
        t.delete(&format!("{repo}versions/1/")).await.status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(numbers(&t, &repo).await, [4, 1], "refusals change nothing");
    t.task(t.delete(&dist_latest).await).await;
    t.task(t.delete(&dist_pinned).await).await;

    // the last remaining version is not deleted: the task fails and says why
    assert_eq!(delete_version(&t, &repo, 1).await["state"], "completed");
    let task = delete_version(&t, &repo, 4).await;
    assert_eq!(task["state"], "failed", "{task}");
    assert_eq!(
        task["error"]["description"],
        "Cannot delete repository version. Repositories must have at least one repository version."
    );
    assert_eq!(numbers(&t, &repo).await, [4]);
    assert_eq!(manifests_in(&t, &repo, 4).await, v4);
    assert_eq!(
        t.delete(&format!("{repo}versions/9/")).await.status,
        StatusCode::NOT_FOUND
    );
}

async fn retain_repo_versions_keeps_the_newest_and_what_is_served(t: On) {
    let units = [
        manifest(&t, "a").await,
        manifest(&t, "b").await,
        manifest(&t, "c").await,
        manifest(&t, "d").await,
        manifest(&t, "e").await,
    ];
    let repo = repo(&t, "retained").await;
    for u in &units[..3] {
        change(&t, &repo, u, true).await;
    }
    assert_eq!(numbers(&t, &repo).await, [3, 2, 1, 0]);
    let v3 = manifests_in(&t, &repo, 3).await;
    // setting it applies it at once
    let r = t.patch(&repo, json!({"retain_repo_versions": 2})).await;
    assert_eq!(t.task(r).await["state"], "completed");
    assert_eq!(numbers(&t, &repo).await, [3, 2]);
    assert_eq!(manifests_in(&t, &repo, 3).await, v3);
    assert_eq!(t.get(&repo).await.json()["retain_repo_versions"], 2);
    // and after every new version
    change(&t, &repo, &units[3], true).await;
    assert_eq!(numbers(&t, &repo).await, [4, 3]);
    let v4 = version(&t, &repo, 4).await;
    assert_eq!(v4["content_summary"]["present"]["container.manifest"]["count"], 4);
    // a served latest is kept and not counted
    let r = t
        .post(
            DISTS,
            json!({"name": "retained", "base_path": "retained", "repository": repo}),
        )
        .await;
    t.task(r).await;
    change(&t, &repo, &units[4], true).await;
    assert_eq!(numbers(&t, &repo).await, [5, 4, 3]);
    assert_eq!(manifests_in(&t, &repo, 5).await.len(), 5);
    // the field takes 1 or more
    let r = t.patch(&repo, json!({"retain_repo_versions": 0})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}
