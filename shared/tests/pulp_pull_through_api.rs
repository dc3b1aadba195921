//! Pull-through remotes (`remotes/container/pull-through/`) and distributions
//! (`distributions/container/pull-through/`) through the management API, on every store: made,
//! read, listed, changed and removed with Pulp's shapes; refused with Pulp's field errors; kept
//! apart from container remotes and distributions; a pull-through distribution lists the
//! distributions pulls through it made, and takes them along when it is deleted; base paths
//! never nest; of racing creates of one name exactly one succeeds.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use berth::domain::RepoName;
use berth::store::Distribution;
use common::pulp::{On, DISTS, REMOTES, REPOS};
use http::{Method, StatusCode};
use serde_json::{json, Value};
use uuid::Uuid;

const PT_REMOTES: &str = "/pulp/api/v3/remotes/container/pull-through/";
const PT_DISTS: &str = "/pulp/api/v3/distributions/container/pull-through/";

fn id_of(href: &Value) -> Uuid {
    let s = href.as_str().unwrap().trim_end_matches('/');
    s.rsplit('/').next().unwrap().parse().unwrap()
}

fn href(v: &Value) -> String {
    v["pulp_href"].as_str().unwrap().to_owned()
}

/// A pull-through remote named `name`; its JSON.
async fn pt_remote(t: &On, name: &str) -> Value {
    let r = t
        .post(PT_REMOTES, json!({"name": name, "url": "https://registry-1.docker.io"}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json());
    r.json()
}

/// A pull-through distribution at `base_path` caching through `remote`; its JSON.
async fn pt_dist(t: &On, name: &str, base_path: &str, remote: &str) -> Value {
    let r = t
        .post(
            PT_DISTS,
            json!({"name": name, "base_path": base_path, "remote": remote}),
        )
        .await;
    let task = t.task(r).await;
    assert_eq!(task["state"], "completed");
    let made = task["created_resources"][0].as_str().unwrap().to_owned();
    assert!(made.starts_with(PT_DISTS), "{made}");
    t.get(&made).await.json()
}

/// The field errors of a 400 answer.
fn refused(r: &common::http::Resp, field: &str) {
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.json());
    assert!(r.json()[field].is_array(), "{field}: {}", r.json());
}

async fn put(t: &On, uri: &str, body: Value) -> common::http::Resp {
    t.call(Method::PUT, uri, Some(("admin", common::pulp::PW)), Some(body))
        .await
}

async fn remotes_have_pulps_shape_and_lifecycle(t: On) {
    // Given a pull-through remote made with filters, credentials and network settings
    let r = t
        .post(
            PT_REMOTES,
            json!({
                "name": "docker-cache",
                "url": "https://registry-1.docker.io",
                "includes": ["library/*", "pulp/*"],
                "excludes": null,
                "username": "u",
                "password": "p",
                "tls_validation": false,
                "rate_limit": 5,
                "download_concurrency": 3,
                "total_timeout": 30.5,
                "headers": [{"X-Trace": "1"}],
                "pulp_labels": {"team": "infra"},
            }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json());
    let made = r.json();
    let id = id_of(&made["pulp_href"]);
    assert_eq!(made["pulp_href"], format!("{PT_REMOTES}{id}/"));
    assert_eq!(made["prn"], format!("prn:container.containerpullthroughremote:{id}"));
    assert_eq!(made["policy"], "on_demand");
    assert_eq!(made["includes"], json!(["library/*", "pulp/*"]));
    assert_eq!(made["excludes"], Value::Null);
    assert_eq!(made["tls_validation"], false);
    assert_eq!(made["rate_limit"], 5);
    assert_eq!(made["download_concurrency"], 3);
    assert_eq!(made["total_timeout"], 30.5);
    assert_eq!(made["pulp_labels"], json!({"team": "infra"}));
    for gone in ["upstream_name", "sigstore", "username", "password"] {
        assert!(made.get(gone).is_none(), "{gone}: {made}");
    }
    let hidden = made["hidden_fields"].as_array().unwrap();
    let is_set = |n: &str| hidden.iter().find(|f| f["name"] == n).unwrap()["is_set"].clone();
    assert_eq!(is_set("username"), true);
    assert_eq!(is_set("client_key"), false);
    assert!(hidden.iter().all(|f| f["name"] != "include_tags"));

    // then it reads back the same, and lists among pull-through remotes only
    let read = t.get(&href(&made)).await;
    assert_eq!(read.status, StatusCode::OK);
    assert_eq!(read.json(), made);
    let listed = t.get(PT_REMOTES).await.json();
    assert_eq!(listed["count"], 1);
    assert_eq!(listed["results"][0]["name"], "docker-cache");
    assert_eq!(
        t.get(&format!("{PT_REMOTES}?name=docker-cache")).await.json()["count"],
        1
    );
    assert_eq!(t.get(&format!("{PT_REMOTES}?name=other")).await.json()["count"], 0);

    // and the kinds do not leak into each other
    let container = t
        .post(
            REMOTES,
            json!({"name": "plain", "url": "https://example.com", "upstream_name": "x"}),
        )
        .await
        .json();
    assert_eq!(t.get(REMOTES).await.json()["count"], 1);
    assert_eq!(t.get(PT_REMOTES).await.json()["count"], 1);
    assert_eq!(t.get(&format!("{REMOTES}{id}/")).await.status, StatusCode::NOT_FOUND);
    let cid = id_of(&container["pulp_href"]);
    assert_eq!(
        t.get(&format!("{PT_REMOTES}{cid}/")).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        t.patch(&format!("{REMOTES}{id}/"), json!({"url": "https://x.example"}))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        t.delete(&format!("{PT_REMOTES}{cid}/")).await.status,
        StatusCode::NOT_FOUND
    );

    // When it is changed in part, then what the body leaves out stays
    let task = t
        .task(
            t.patch(
                &href(&made),
                json!({"excludes": ["library/bad*"], "policy": "on_demand"}),
            )
            .await,
        )
        .await;
    assert_eq!(task["state"], "completed");
    let after = t.get(&href(&made)).await.json();
    assert_eq!(after["excludes"], json!(["library/bad*"]));
    assert_eq!(after["includes"], json!(["library/*", "pulp/*"]));
    assert_eq!(after["rate_limit"], 5);
    let hidden = after["hidden_fields"].as_array().unwrap();
    assert!(hidden.iter().any(|f| f["name"] == "password" && f["is_set"] == true));

    // and in full
    t.task(
        put(
            &t,
            &href(&made),
            json!({"name": "docker-cache", "url": "https://mirror.gcr.io"}),
        )
        .await,
    )
    .await;
    assert_eq!(t.get(&href(&made)).await.json()["url"], "https://mirror.gcr.io");

    // When it is deleted, then it is gone
    let task = t.task(t.delete(&href(&made)).await).await;
    assert_eq!(task["state"], "completed");
    assert_eq!(t.get(&href(&made)).await.status, StatusCode::NOT_FOUND);
    assert_eq!(t.get(PT_REMOTES).await.json()["count"], 0);
}

async fn remotes_refuse_bad_fields(t: On) {
    let url = "https://registry-1.docker.io";
    refused(&t.post(PT_REMOTES, json!({"url": url})).await, "name");
    refused(&t.post(PT_REMOTES, json!({"name": "a"})).await, "url");
    refused(
        &t.post(PT_REMOTES, json!({"name": "a", "url": "not a url"})).await,
        "url",
    );
    for policy in ["immediate", "streamed", "sometimes"] {
        let r = t
            .post(PT_REMOTES, json!({"name": "a", "url": url, "policy": policy}))
            .await;
        refused(&r, "policy");
        assert_eq!(r.json()["policy"][0], format!("\"{policy}\" is not a valid choice."));
    }
    refused(
        &t.post(PT_REMOTES, json!({"name": "a", "url": url, "includes": ["a b"]}))
            .await,
        "includes",
    );
    refused(
        &t.post(PT_REMOTES, json!({"name": "a", "url": url, "excludes": ["x/[y"]}))
            .await,
        "excludes",
    );
    refused(
        &t.post(PT_REMOTES, json!({"name": "a", "url": url, "includes": "library/*"}))
            .await,
        "includes",
    );
    refused(
        &t.post(PT_REMOTES, json!({"name": "a", "url": url, "download_concurrency": 0}))
            .await,
        "download_concurrency",
    );
    assert_eq!(t.get(PT_REMOTES).await.json()["count"], 0, "nothing was made");

    // a name is unique among all remotes, of either kind
    let made = pt_remote(&t, "a").await;
    refused(&t.post(PT_REMOTES, json!({"name": "a", "url": url})).await, "name");
    refused(
        &t.post(REMOTES, json!({"name": "a", "url": url, "upstream_name": "x"}))
            .await,
        "name",
    );
    refused(&t.patch(&href(&made), json!({"policy": "immediate"})).await, "policy");
    refused(
        &t.patch(&href(&made), json!({"includes": ["**/ok", "bad pattern"]}))
            .await,
        "includes",
    );

    // a repository is never synced from, nor defaults to, a pull-through remote
    let id = id_of(&made["pulp_href"]);
    let repo = t.post(REPOS, json!({"name": "r"})).await.json();
    let sync = format!("{}sync/", href(&repo));
    for remote in [href(&made), format!("{REMOTES}{id}/")] {
        refused(&t.post(&sync, json!({ "remote": remote })).await, "remote");
    }
    refused(
        &t.post(REPOS, json!({"name": "r2", "remote": format!("{REMOTES}{id}/")}))
            .await,
        "remote",
    );
    let r = t
        .post(
            "/pulp/api/v3/task-schedules/",
            json!({"name": "s", "repository": href(&repo), "remote": format!("{REMOTES}{id}/"), "dispatch_interval": "00:00:05"}),
        )
        .await;
    refused(&r, "remote");
}

async fn distributions_have_pulps_shape_and_lifecycle(t: On) {
    let remote = pt_remote(&t, "docker-cache").await;
    // Given a pull-through distribution
    let r = t
        .post(
            PT_DISTS,
            json!({
                "name": "docker-cache",
                "base_path": "docker-cache",
                "remote": href(&remote),
                "private": true,
                "hidden": true,
                "description": "Docker Hub",
                "pulp_labels": {"k": "v"},
                "content_guard": null,
                "repository": null,
            }),
        )
        .await;
    let task = t.task(r).await;
    assert_eq!(task["state"], "completed");
    let dist_href = task["created_resources"][0].as_str().unwrap().to_owned();
    let id = id_of(&json!(dist_href));
    assert_eq!(dist_href, format!("{PT_DISTS}{id}/"));
    let d = t.get(&dist_href).await.json();
    assert_eq!(d["prn"], format!("prn:container.containerpullthroughdistribution:{id}"));
    assert_eq!(d["name"], "docker-cache");
    assert_eq!(d["base_path"], "docker-cache");
    assert_eq!(d["remote"], remote["pulp_href"]);
    assert_eq!(d["distributions"], json!([]));
    assert_eq!(d["private"], true);
    assert_eq!(d["hidden"], true);
    assert_eq!(d["description"], "Docker Hub");
    assert_eq!(d["pulp_labels"], json!({"k": "v"}));
    for null in ["repository", "repository_version", "content_guard"] {
        assert_eq!(d[null], Value::Null, "{null}");
    }
    assert!(d["namespace"]
        .as_str()
        .unwrap()
        .starts_with("/pulp/api/v3/pulp_container/namespaces/"));

    // then it lists among pull-through distributions only, and the kinds do not leak
    assert_eq!(t.get(PT_DISTS).await.json()["count"], 1);
    assert_eq!(
        t.get(&format!("{PT_DISTS}?base_path=docker-cache")).await.json()["count"],
        1
    );
    assert_eq!(t.get(&format!("{PT_DISTS}?name=x")).await.json()["count"], 0);
    assert_eq!(t.get(DISTS).await.json()["count"], 0);
    assert_eq!(t.get(&format!("{DISTS}{id}/")).await.status, StatusCode::NOT_FOUND);
    assert_eq!(t.delete(&format!("{DISTS}{id}/")).await.status, StatusCode::NOT_FOUND);
    let plain = t
        .task(t.post(DISTS, json!({"name": "plain", "base_path": "plain"})).await)
        .await["created_resources"][0]
        .clone();
    assert_eq!(t.get(PT_DISTS).await.json()["count"], 1);
    assert_eq!(t.get(DISTS).await.json()["count"], 1);
    let plain_id = id_of(&plain);
    assert_eq!(
        t.get(&format!("{PT_DISTS}{plain_id}/")).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        t.patch(&format!("{PT_DISTS}{plain_id}/"), json!({"description": "x"}))
            .await
            .status,
        StatusCode::NOT_FOUND
    );

    // When it is changed in part, then what the body leaves out stays
    t.task(
        t.patch(&dist_href, json!({"description": "Hub", "private": false}))
            .await,
    )
    .await;
    let after = t.get(&dist_href).await.json();
    assert_eq!(after["description"], "Hub");
    assert_eq!(after["private"], false);
    assert_eq!(after["hidden"], true);
    assert_eq!(after["remote"], remote["pulp_href"]);

    // Given a distribution a pull through it made (its own container remote and repository)
    let child_remote = t
        .post(
            REMOTES,
            json!({"name": "docker-cache/library/busybox", "url": "https://registry-1.docker.io", "upstream_name": "library/busybox"}),
        )
        .await
        .json();
    let repo = t
        .post(REPOS, json!({"name": "docker-cache/library/busybox"}))
        .await
        .json();
    let mut child = Distribution::new(
        "docker-cache/library/busybox",
        RepoName::parse("docker-cache/library/busybox").unwrap(),
        Some(id_of(&repo["pulp_href"])),
    );
    child.remote = Some(id_of(&child_remote["pulp_href"]));
    child.cached_by = Some(id);
    t.app.store.create_distribution(&child).await.unwrap();
    let child_href = format!("{DISTS}{}/", child.id);

    // then the pull-through distribution lists it, and it names its remote
    assert_eq!(t.get(&dist_href).await.json()["distributions"], json!([child_href]));
    assert_eq!(
        t.get(PT_DISTS).await.json()["results"][0]["distributions"],
        json!([child_href])
    );
    let c = t.get(&child_href).await.json();
    assert_eq!(c["remote"], child_remote["pulp_href"]);
    assert_eq!(t.get(DISTS).await.json()["count"], 2);
    assert_eq!(
        t.get(&format!("{DISTS}{plain_id}/")).await.json()["remote"],
        Value::Null
    );

    // and its base path cannot move from over what it cached
    refused(
        &t.patch(&dist_href, json!({"base_path": "elsewhere"})).await,
        "base_path",
    );

    // When the pull-through distribution is deleted, then what it cached goes with it, and
    // their repositories and remotes stay
    let task = t.task(t.delete(&dist_href).await).await;
    assert_eq!(task["state"], "completed");
    assert_eq!(t.get(&dist_href).await.status, StatusCode::NOT_FOUND);
    assert_eq!(t.get(&child_href).await.status, StatusCode::NOT_FOUND);
    assert_eq!(t.get(&href(&repo)).await.status, StatusCode::OK);
    assert_eq!(t.get(&href(&child_remote)).await.status, StatusCode::OK);
    assert_eq!(t.get(PT_DISTS).await.json()["count"], 0);
    assert_eq!(t.get(DISTS).await.json()["count"], 1);
    assert_eq!(t.get(&href(&remote)).await.status, StatusCode::OK, "its remote stays");
}

async fn distributions_refuse_bad_fields(t: On) {
    let remote = href(&pt_remote(&t, "cache").await);
    let container = t
        .post(
            REMOTES,
            json!({"name": "plain", "url": "https://example.com", "upstream_name": "x"}),
        )
        .await
        .json();
    let body = |drop: &str| {
        let mut b = json!({"name": "c", "base_path": "c", "remote": remote});
        b.as_object_mut().unwrap().remove(drop);
        b
    };
    for field in ["name", "base_path", "remote"] {
        let r = t.post(PT_DISTS, body(field)).await;
        refused(&r, field);
        assert_eq!(r.json()[field][0], "This field is required.");
    }
    let r = t
        .post(
            PT_DISTS,
            json!({"name": "c", "base_path": "c", "remote": href(&container)}),
        )
        .await;
    refused(&r, "remote");
    assert_eq!(r.json()["remote"][0], "Invalid hyperlink - Incorrect URL match.");
    let gone = format!("{PT_REMOTES}{}/", Uuid::new_v4());
    let r = t
        .post(PT_DISTS, json!({"name": "c", "base_path": "c", "remote": gone}))
        .await;
    refused(&r, "remote");
    assert_eq!(r.json()["remote"][0], "Invalid hyperlink - Object does not exist.");
    refused(
        &t.post(PT_DISTS, json!({"name": "c", "base_path": "c", "remote": null}))
            .await,
        "remote",
    );
    refused(
        &t.post(PT_DISTS, json!({"name": "c", "base_path": "c", "remote": "nonsense"}))
            .await,
        "remote",
    );
    refused(
        &t.post(
            PT_DISTS,
            json!({"name": "c", "base_path": "Bad Path", "remote": remote}),
        )
        .await,
        "base_path",
    );
    refused(
        &t.post(
            PT_DISTS,
            json!({"name": "c", "base_path": "c", "remote": remote, "repository": format!("{REPOS}{}/", Uuid::new_v4())}),
        )
        .await,
        "repository",
    );
    refused(
        &t.post(
            PT_DISTS,
            json!({"name": "c", "base_path": "c", "remote": remote, "content_guard": "/pulp/api/v3/contentguards/core/content_redirect/x/"}),
        )
        .await,
        "content_guard",
    );
    assert_eq!(t.get(PT_DISTS).await.json()["count"], 0, "nothing was made");
    // a container distribution takes no remote
    refused(
        &t.post(DISTS, json!({"name": "d", "base_path": "d", "remote": remote}))
            .await,
        "remote",
    );
}

async fn base_paths_never_nest(t: On) {
    let remote = href(&pt_remote(&t, "cache").await);
    pt_dist(&t, "cache", "cache", &remote).await;
    t.task(t.post(DISTS, json!({"name": "app", "base_path": "app/x"})).await)
        .await;

    // a container distribution under a pull-through base path is refused
    let r = t.post(DISTS, json!({"name": "under", "base_path": "cache/x"})).await;
    refused(&r, "base_path");
    assert_eq!(r.json()["base_path"][0], "Overlaps with existing distribution 'cache'");
    // and so is a pull-through base path equal to, over or under another distribution's
    for (name, path) in [
        ("same", "cache"),
        ("over", "app"),
        ("under", "app/x/y"),
        ("equal", "app/x"),
    ] {
        let r = t
            .post(PT_DISTS, json!({"name": name, "base_path": path, "remote": remote}))
            .await;
        refused(&r, "base_path");
    }
    // a name is unique among distributions of either kind
    refused(
        &t.post(PT_DISTS, json!({"name": "app", "base_path": "free", "remote": remote}))
            .await,
        "name",
    );
    assert_eq!(t.get(PT_DISTS).await.json()["count"], 1);
    assert_eq!(t.get(DISTS).await.json()["count"], 1);
}

async fn racing_creates_of_one_name_make_one(t: On) {
    let url = "https://registry-1.docker.io";
    let answers =
        futures::future::join_all((0..16).map(|_| t.post(PT_REMOTES, json!({"name": "raced", "url": url})))).await;
    let made: Vec<_> = answers.iter().filter(|r| r.status == StatusCode::CREATED).collect();
    assert_eq!(
        made.len(),
        1,
        "{:?}",
        answers.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    for r in answers.iter().filter(|r| r.status != StatusCode::CREATED) {
        refused(r, "name");
    }
    assert_eq!(t.get(PT_REMOTES).await.json()["count"], 1);

    let remote = href(&made[0].json());
    let answers = futures::future::join_all((0..16).map(|i| {
        t.post(
            PT_DISTS,
            json!({"name": "raced", "base_path": format!("raced-{i}"), "remote": remote}),
        )
    }))
    .await;
    let made = answers.iter().filter(|r| r.status == StatusCode::ACCEPTED).count();
    assert_eq!(made, 1, "{:?}", answers.iter().map(|r| r.status).collect::<Vec<_>>());
    for r in answers.iter().filter(|r| r.status != StatusCode::ACCEPTED) {
        refused(r, "name");
    }
    assert_eq!(t.get(PT_DISTS).await.json()["count"], 1);
}

common::pulp::on_every_store!(
    remotes_have_pulps_shape_and_lifecycle,
    remotes_refuse_bad_fields,
    distributions_have_pulps_shape_and_lifecycle,
    distributions_refuse_bad_fields,
    base_paths_never_nest,
    racing_creates_of_one_name_make_one,
);
