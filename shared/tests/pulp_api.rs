//! Router tests for the management API (`/pulp/api/v3/`), in process, on the in-memory store:
//! the document, repositories, remotes, distributions, tasks, filters and headers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;

use berth::domain::{media, Digest};
use common::http::{Req, Resp};
use common::pulp::{DISTS, PUSH, PW, REMOTES, REPOS, T};
use http::{Method, StatusCode};
use serde_json::{json, Value};

#[tokio::test]
async fn document_and_status_are_public_the_rest_needs_credentials() {
    let t = T::new().await;
    let r = t.call(Method::GET, "/pulp/api/v3/docs/api.json", None, None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["info"]["x-pulp-app-versions"]["core"], "3.85.0");
    assert!(r.json()["components"]["securitySchemes"]["basicAuth"].is_object());
    let r = t.call(Method::GET, "/pulp/api/v3/status/", None, None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["versions"][0]["component"], "core");

    let r = t.call(Method::GET, REPOS, None, None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.headers.get("www-authenticate").is_some());
    let r = t.call(Method::GET, REPOS, Some(("admin", "wrong")), None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.json()["detail"], "Invalid username/password.");
    let r = t.call(Method::GET, REPOS, Some(("nobody", PW)), None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    // malformed Authorization headers
    for bad in ["Basic", "Basic !!!", "Bearer xyz", "Basic Zm9v"] {
        let resp = Req::get(REPOS).header("authorization", bad).send(&t.router).await;
        assert_eq!(resp.status, StatusCode::UNAUTHORIZED, "{bad}");
    }
    // read-only users read, but do not write
    let r = t.call(Method::GET, REPOS, Some(("reader", "reader-pw")), None).await;
    assert_eq!(r.status, StatusCode::OK);
    let r = t
        .call(
            Method::POST,
            REPOS,
            Some(("reader", "reader-pw")),
            Some(json!({"name": "x"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(t.get(REPOS).await.json()["count"], 0, "nothing was written");
}

#[tokio::test]
async fn repositories_crud_and_bad_input() {
    let t = T::new().await;
    let r = t.post(REPOS, json!({"name": "foo", "description": "d"})).await;
    assert_eq!(r.status, StatusCode::CREATED);
    let href = r.json()["pulp_href"].as_str().unwrap().to_owned();
    assert!(href.starts_with(REPOS));
    assert_eq!(r.json()["latest_version_href"], format!("{href}versions/0/"));
    assert_eq!(r.json()["versions_href"], format!("{href}versions/"));
    assert!(r.json()["prn"]
        .as_str()
        .unwrap()
        .starts_with("prn:container.containerrepository:"));
    // duplicates and bad fields
    let r = t.post(REPOS, json!({"name": "foo"})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.json(), json!({"name": ["This field must be unique."]}));
    let r = t.post(REPOS, json!({"name": 5, "retain_repo_versions": 0})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.json()["name"].is_array() && r.json()["retain_repo_versions"].is_array());
    let r = t.post(REPOS, json!({})).await;
    assert_eq!(r.json(), json!({"name": ["This field is required."]}));
    let r = t
        .post(
            REPOS,
            json!({"name": "bar", "remote": "/pulp/api/v3/remotes/container/container/not-a-uuid/"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.json()["remote"].is_array());
    let r = t
        .post(
            REPOS,
            json!({"name": "bar", "remote": format!("{REMOTES}{}/", uuid::Uuid::new_v4())}),
        )
        .await;
    assert_eq!(r.json()["remote"][0], "Invalid hyperlink - Object does not exist.");
    // non-JSON body
    let resp = Req::new(Method::POST, REPOS)
        .basic("admin", PW)
        .header("content-type", "application/json")
        .body("{not json")
        .send(&t.router)
        .await;
    assert_eq!(resp.status, StatusCode::BAD_REQUEST);
    assert_eq!(t.get(REPOS).await.json()["count"], 1, "nothing half-created");

    // list filters and pagination
    for n in ["a1", "a2", "b1"] {
        t.post(REPOS, json!({"name": n})).await;
    }
    let r = t.get(&format!("{REPOS}?name=foo&offset=0&limit=1")).await;
    assert_eq!(r.json()["count"], 1);
    assert_eq!(r.json()["results"][0]["name"], "foo");
    let r = t.get(&format!("{REPOS}?name__contains=a")).await;
    assert_eq!(r.json()["count"], 2);
    let r = t.get(&format!("{REPOS}?name__in=a1,b1")).await;
    assert_eq!(r.json()["count"], 2);
    let r = t.get(&format!("{REPOS}?limit=2")).await;
    assert_eq!(r.json()["count"], 4);
    assert_eq!(r.json()["results"].as_array().unwrap().len(), 2);
    assert_eq!(
        r.json()["next"],
        format!("http://reg.example:5000{REPOS}?limit=2&offset=2")
    );
    assert_eq!(r.json()["previous"], Value::Null);
    let r = t.get(r.json()["next"].as_str().unwrap()).await;
    assert_eq!(r.json()["results"].as_array().unwrap().len(), 2);
    assert_eq!(r.json()["next"], Value::Null);
    assert_eq!(r.json()["previous"], format!("http://reg.example:5000{REPOS}?limit=2"));
    let r = t.get(&format!("{REPOS}?fields=name&limit=1")).await;
    assert_eq!(r.json()["results"][0].as_object().unwrap().len(), 1);

    // update (202 task), read, delete (202 task), 404 afterwards
    let task = t
        .task(t.patch(&href, json!({"description": "new", "name": "foo2"})).await)
        .await;
    assert_eq!(task["state"], "completed");
    let r = t.get(&href).await;
    assert_eq!(
        (r.json()["description"].as_str(), r.json()["name"].as_str()),
        (Some("new"), Some("foo2"))
    );
    let r = t.patch(&href, json!({"name": "a1"})).await;
    assert_eq!(r.json(), json!({"name": ["This field must be unique."]}));
    t.task(t.delete(&href).await).await;
    assert_eq!(t.get(&href).await.status, StatusCode::NOT_FOUND);
    assert_eq!(
        t.get(&format!("{REPOS}{}/", uuid::Uuid::new_v4())).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(t.get("/pulp/api/v3/nothing/").await.status, StatusCode::NOT_FOUND);
    let r = t.call(Method::PUT, REPOS, Some(("admin", PW)), Some(json!({}))).await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn remotes_validate_and_hide_secrets() {
    let t = T::new().await;
    let r = t
        .post(
            REMOTES,
            json!({"name": "up", "url": "https://registry-1.docker.io", "upstream_name": "pulp/test-fixture-1",
                   "include_tags": ["v1*"], "exclude_tags": ["*-rc"], "policy": "on_demand",
                   "username": "u", "password": "hunter2"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json());
    assert_eq!(r.json()["includes"], json!(["v1*"]));
    assert_eq!(r.json()["excludes"], json!(["*-rc"]));
    assert_eq!(r.json()["policy"], "on_demand");
    assert!(r.json().get("password").is_none());
    assert!(!r.json().to_string().contains("hunter2"), "passwords are write-only");
    let json = r.json();
    let hidden = json["hidden_fields"].as_array().unwrap();
    assert!(hidden.iter().any(|h| h["name"] == "password" && h["is_set"] == true));
    let href = r.json()["pulp_href"].as_str().unwrap().to_owned();

    let bad = [
        (
            json!({"name": "x", "url": "https://r", "upstream_name": "a", "policy": "sometimes"}),
            "policy",
        ),
        (json!({"name": "x", "url": "ftp://r", "upstream_name": "a"}), "url"),
        (
            json!({"name": "x", "url": "https://u:p@r", "upstream_name": "a"}),
            "url",
        ),
        (
            json!({"name": "x", "url": "https://r", "upstream_name": "A B"}),
            "upstream_name",
        ),
        (
            json!({"name": "x", "url": "https://r", "upstream_name": "a", "include_tags": ["v1["]}),
            "include_tags",
        ),
        (
            json!({"name": "x", "url": "https://r", "upstream_name": "a", "includes": "latest"}),
            "includes",
        ),
        (
            json!({"name": "x", "url": "https://r", "upstream_name": "a", "includes": ["sha256:nothex"]}),
            "includes",
        ),
        (
            json!({"name": "x", "url": "https://r", "upstream_name": "a", "tls_validation": "maybe"}),
            "tls_validation",
        ),
        (
            json!({"name": "x", "url": "https://r", "upstream_name": "a", "download_concurrency": 0}),
            "download_concurrency",
        ),
        (
            json!({"name": "x", "url": "https://r", "upstream_name": "a", "sigstore": "nope"}),
            "sigstore",
        ),
        (
            json!({"name": "x", "url": "https://r", "upstream_name": "a", "headers": [{"X-Key": 1}]}),
            "headers",
        ),
        (
            json!({"name": "x", "url": "https://r", "upstream_name": "a", "headers": [{"bad name": "v"}]}),
            "headers",
        ),
        (
            json!({"name": "x", "url": "https://r", "upstream_name": "a", "headers": "X-Key: v"}),
            "headers",
        ),
        (json!({"name": "up", "url": "https://r", "upstream_name": "a"}), "name"),
        (json!({"url": "https://r"}), "name"),
    ];
    for (body, field) in bad {
        let r = t.post(REMOTES, body.clone()).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}");
        assert!(r.json()[field].is_array(), "{body} → {}", r.json());
    }
    assert_eq!(t.get(REMOTES).await.json()["count"], 1);

    // update: partial keeps the rest; the password stays set
    t.task(
        t.patch(
            &href,
            json!({"url": "http://127.0.0.1:5000", "sigstore": "https://sigs.example/x"}),
        )
        .await,
    )
    .await;
    let r = t.get(&href).await;
    assert_eq!(r.json()["url"], "http://127.0.0.1:5000");
    assert_eq!(r.json()["upstream_name"], "pulp/test-fixture-1");
    assert_eq!(r.json()["sigstore"], "https://sigs.example/x");
    let stored = t
        .app
        .store
        .remote(uuid::Uuid::parse_str(href.rsplit('/').nth(1).unwrap()).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.password.as_deref(), Some("hunter2"));
    // a repository that uses it as default remote forgets it when it is deleted
    let repo = t.post(REPOS, json!({"name": "r", "remote": href})).await;
    assert_eq!(repo.json()["remote"], href);
    t.task(t.delete(&href).await).await;
    let repo = t.get(repo.json()["pulp_href"].as_str().unwrap()).await;
    assert_eq!(repo.json()["remote"], Value::Null);
}

#[tokio::test]
async fn distributions_serve_latest_or_pinned_versions() {
    let t = T::new().await;
    let d1 = t.push_image("team/app", "latest", b"one").await;
    let d2 = t.push_image("team/app", "latest", b"two").await;
    // the push made a push repository and its distribution
    let r = t.get(&format!("{PUSH}?name=team/app")).await;
    assert_eq!(r.json()["count"], 1);
    let repo = r.json()["results"][0].clone();
    let repo_href = repo["pulp_href"].as_str().unwrap().to_owned();
    assert_eq!(repo["latest_version_href"], format!("{repo_href}versions/2/"));
    let dists = t.get(&format!("{DISTS}?name=team/app")).await;
    let dist = dists.json()["results"][0].clone();
    assert_eq!(dist["repository"], repo_href);
    assert_eq!(dist["registry_path"], "reg.example:5000/team/app");
    let dist_href = dist["pulp_href"].as_str().unwrap().to_owned();

    // exact content summaries
    let v1 = t.get(&format!("{repo_href}versions/1/")).await.json();
    let s = &v1["content_summary"];
    assert_eq!(s["added"]["container.blob"]["count"], 2);
    assert_eq!(s["added"]["container.manifest"]["count"], 1);
    assert_eq!(s["added"]["container.tag"]["count"], 1);
    assert_eq!(s["removed"], json!({}));
    let v2 = t.get(&format!("{repo_href}versions/2/")).await.json();
    let s = &v2["content_summary"];
    assert_eq!(s["added"]["container.blob"]["count"], 2);
    assert_eq!(s["removed"]["container.tag"]["count"], 1);
    assert_eq!(s["present"]["container.blob"]["count"], 4);
    assert_eq!(s["present"]["container.manifest"]["count"], 2);
    assert_eq!(s["present"]["container.tag"]["count"], 1);
    // the summary's hrefs list exactly that content
    let added_tags = t
        .get(s["added"]["container.tag"]["href"].as_str().unwrap())
        .await
        .json();
    assert_eq!(added_tags["count"], 1);
    assert_eq!(added_tags["results"][0]["name"], "latest");
    let present_manifests = t
        .get(s["present"]["container.manifest"]["href"].as_str().unwrap())
        .await
        .json();
    let digests: Vec<&str> = present_manifests["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["digest"].as_str().unwrap())
        .collect();
    assert!(digests.contains(&d1.as_str()) && digests.contains(&d2.as_str()));
    let m = present_manifests["results"][0].clone();
    let read = t.get(m["pulp_href"].as_str().unwrap()).await;
    assert_eq!(read.json()["digest"], m["digest"]);
    assert_eq!(read.json()["media_type"], media::OCI_MANIFEST);
    // versions: newest first, number filter
    let vs = t.get(&format!("{repo_href}versions/")).await.json();
    assert_eq!(vs["count"], 3);
    assert_eq!(vs["results"][0]["number"], 2);
    assert_eq!(
        t.get(&format!("{repo_href}versions/?number=1&offset=0&limit=1"))
            .await
            .json()["results"][0]["number"],
        1
    );

    // rollback: pin version 1 (the CLI sends "" for the field it clears)
    let task = t
        .task(
            t.patch(
                &dist_href,
                json!({"repository": "", "repository_version": format!("{repo_href}versions/1/")}),
            )
            .await,
        )
        .await;
    assert_eq!(task["state"], "completed");
    let pulled = t
        .registry(Method::GET, "/v2/team/app/manifests/latest", None, Vec::new())
        .await;
    assert_eq!(pulled.headers["docker-content-digest"], d1.as_str());
    // a pinned distribution refuses pushes
    let r = t
        .registry(Method::POST, "/v2/team/app/blobs/uploads/", None, Vec::new())
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // a version a distribution serves can't be deleted
    assert_eq!(
        t.delete(&format!("{repo_href}versions/1/")).await.status,
        StatusCode::BAD_REQUEST
    );
    // back to latest
    t.task(
        t.patch(&dist_href, json!({"repository": repo_href, "repository_version": ""}))
            .await,
    )
    .await;
    let pulled = t
        .registry(Method::GET, "/v2/team/app/manifests/latest", None, Vec::new())
        .await;
    assert_eq!(pulled.headers["docker-content-digest"], d2.as_str());
    // now version 1 may go; version 2's summary is recomputed against version 0
    t.task(t.delete(&format!("{repo_href}versions/1/")).await).await;
    assert_eq!(
        t.get(&format!("{repo_href}versions/1/")).await.status,
        StatusCode::NOT_FOUND
    );
    let v2 = t.get(&format!("{repo_href}versions/2/")).await.json();
    assert_eq!(v2["base_version"], format!("{repo_href}versions/0/"));
    assert_eq!(v2["content_summary"]["added"]["container.blob"]["count"], 4);
    assert_eq!(v2["content_summary"]["added"]["container.tag"]["count"], 1);
    assert_eq!(v2["content_summary"]["removed"], json!({}));

    // tag / untag / remove_image on the push repository make versions
    let task = t
        .task(
            t.post(&format!("{repo_href}tag/"), json!({"tag": "stable", "digest": d1}))
                .await,
        )
        .await;
    assert_eq!(task["created_resources"][0], format!("{repo_href}versions/3/"));
    let r = t
        .post(
            &format!("{repo_href}tag/"),
            json!({"tag": "x", "digest": Digest::sha256_of(b"none")}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    t.task(t.post(&format!("{repo_href}untag/"), json!({"tag": "stable"})).await)
        .await;
    let task = t
        .task(
            t.post(&format!("{repo_href}remove_image/"), json!({"digest": d1}))
                .await,
        )
        .await;
    assert_eq!(task["created_resources"][0], format!("{repo_href}versions/5/"));
    let v5 = t.get(&format!("{repo_href}versions/5/")).await.json();
    assert_eq!(v5["content_summary"]["removed"]["container.manifest"]["count"], 1);
    assert_eq!(v5["content_summary"]["removed"]["container.blob"]["count"], 2);
}

#[tokio::test]
async fn distribution_bad_input() {
    let t = T::new().await;
    let repo = t.post(REPOS, json!({"name": "r"})).await.json();
    let repo_href = repo["pulp_href"].as_str().unwrap();
    let task = t
        .task(
            t.post(DISTS, json!({"name": "d", "base_path": "a/b", "repository": repo_href}))
                .await,
        )
        .await;
    assert_eq!(task["state"], "completed");
    let dist_href = task["created_resources"][0].as_str().unwrap().to_owned();
    assert!(dist_href.starts_with(DISTS));
    let cases = [
        (json!({"name": "d", "base_path": "x", "repository": repo_href}), "name"),
        (
            json!({"name": "e", "base_path": "a/b", "repository": repo_href}),
            "base_path",
        ),
        (
            json!({"name": "e", "base_path": "a", "repository": repo_href}),
            "base_path",
        ),
        (
            json!({"name": "e", "base_path": "a/b/c", "repository": repo_href}),
            "base_path",
        ),
        (json!({"name": "e", "base_path": "Bad Path"}), "base_path"),
        (
            json!({"name": "e", "base_path": "ok", "repository": repo_href, "repository_version": format!("{repo_href}versions/0/")}),
            "non_field_errors",
        ),
        (
            json!({"name": "e", "base_path": "ok", "repository": "/pulp/api/v3/tasks/"}),
            "repository",
        ),
        (
            json!({"name": "e", "base_path": "ok", "repository_version": format!("{repo_href}versions/9/")}),
            "repository_version",
        ),
        (json!({"name": "e", "base_path": "ok", "private": "perhaps"}), "private"),
        (json!({"name": "e"}), "base_path"),
    ];
    for (body, field) in cases {
        let r = t.post(DISTS, body.clone()).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}");
        assert!(r.json()[field].is_array(), "{body} → {}", r.json());
    }
    assert_eq!(t.get(DISTS).await.json()["count"], 1, "nothing half-created");
    // a/bc does not nest inside a/b
    t.task(t.post(DISTS, json!({"name": "e", "base_path": "a/bc"})).await)
        .await;
    // update and delete
    t.task(t.patch(&dist_href, json!({"base_path": "c", "private": true})).await)
        .await;
    let d = t.get(&dist_href).await.json();
    assert_eq!(
        (d["base_path"].as_str(), d["private"].as_bool()),
        (Some("c"), Some(true))
    );
    assert_eq!(d["repository"], repo_href);
    t.task(t.delete(&dist_href).await).await;
    assert_eq!(t.get(&dist_href).await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn tasks_list_filter_and_cancel() {
    let t = T::new().await;
    let repo = t.post(REPOS, json!({"name": "r"})).await.json();
    let repo_href = repo["pulp_href"].as_str().unwrap().to_owned();
    let remote = t
        .post(
            REMOTES,
            json!({"name": "up", "url": "http://127.0.0.1:9", "upstream_name": "x"}),
        )
        .await
        .json();
    // sync needs a remote: none given and none on the repository
    let r = t.post(&format!("{repo_href}sync/"), json!({})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.json()["remote"].is_array());
    let r = t
        .post(
            &format!("{repo_href}sync/"),
            json!({"remote": remote["pulp_href"], "mirror": "yes-ish"}),
        )
        .await;
    assert!(r.json()["mirror"].is_array());
    let r = t
        .post(
            &format!("{repo_href}sync/"),
            json!({"remote": remote["pulp_href"], "mirror": true}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    let task_href = r.json()["task"].as_str().unwrap().to_owned();
    let task = t.get(&task_href).await.json();
    assert_eq!(task["state"], "waiting");
    assert_eq!(task["name"], "pulp_container.app.tasks.synchronize.synchronize");
    // filters the CLI sends
    let by_repo = t
        .get(&format!("/pulp/api/v3/tasks/?reserved_resources={repo_href}"))
        .await
        .json();
    assert_eq!(by_repo["count"], 1);
    assert_eq!(t.get("/pulp/api/v3/tasks/?state=waiting").await.json()["count"], 1);
    assert_eq!(
        t.get("/pulp/api/v3/tasks/?state__in=completed,failed").await.json()["count"],
        0
    );
    assert_eq!(
        t.get("/pulp/api/v3/tasks/?name__contains=sync").await.json()["count"],
        1
    );
    // cancel a waiting task
    let r = t.patch(&task_href, json!({"state": "canceled"})).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["state"], "canceled");
    let r = t.patch(&task_href, json!({"state": "canceled"})).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    let r = t.patch(&task_href, json!({"state": "running"})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    // the job runs later and finds its task canceled: no version
    let _ = t.local.jobs.run_one(&*t.app.worker()).await.unwrap();
    assert_eq!(t.get(&task_href).await.json()["state"], "canceled");
    assert_eq!(
        t.get(&repo_href).await.json()["latest_version_href"],
        format!("{repo_href}versions/0/")
    );
    // delete a finished task
    let r = t.delete(&task_href).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(t.get(&task_href).await.status, StatusCode::NOT_FOUND);
}

/// Tags are found by their manifest's digest, a list as pulp_container's tag filter takes it
/// (and as pulp-glue sends it), and the API document says so.
#[tokio::test]
async fn tags_are_filtered_by_the_tagged_manifest_s_digest() {
    let t = T::new().await;
    // Given two tags on two manifests
    let d1 = t.push_image("app", "one", b"layer one").await;
    let d2 = t.push_image("app", "two", b"layer two").await;
    let names = |r: &Resp| {
        let mut n: Vec<String> = r.json()["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["name"].as_str().unwrap().to_owned())
            .collect();
        n.sort();
        n
    };
    // When tags are listed by one manifest's digest, Then only its tag comes back
    let r = t
        .get(&format!("/pulp/api/v3/content/container/tags/?name=one&digest={d1}"))
        .await;
    assert_eq!((r.status, names(&r)), (StatusCode::OK, vec!["one".to_owned()]));
    let r = t
        .get(&format!("/pulp/api/v3/content/container/tags/?digest={d2}"))
        .await;
    assert_eq!(names(&r), ["two"]);
    // and by a list of digests, both
    let r = t
        .get(&format!("/pulp/api/v3/content/container/tags/?digest={d1},{d2}"))
        .await;
    assert_eq!(names(&r), ["one", "two"]);
    // The document declares the parameter a list, form style, not exploded
    let doc = t.get("/pulp/api/v3/docs/api.json").await.json();
    let params = doc["paths"]["/pulp/api/v3/content/container/tags/"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .clone();
    let digest = params.iter().find(|p| p["name"] == "digest").unwrap();
    assert_eq!(digest["schema"]["type"], "array", "{digest}");
    assert_eq!(digest["explode"], false, "{digest}");
}

/// The document declares the generic content list (`content_list`, what `pulp content list`
/// and `repository content list --all-types` call) with pulpcore's parameters, types and
/// styles: pulp-glue checks what it sends against them.
#[tokio::test]
async fn the_generic_content_list_is_declared_as_pulpcore_declares_it() {
    let t = T::new().await;
    let doc = t.get("/pulp/api/v3/docs/api.json").await.json();
    let op = &doc["paths"]["/pulp/api/v3/content/"]["get"];
    assert_eq!(op["operationId"], "content_list");
    let params: BTreeMap<&str, &Value> = op["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["name"].as_str().unwrap(), p))
        .collect();
    let types = json!([
        "container.blob",
        "container.manifest",
        "container.tag",
        "container.signature",
        "core.openpgp_publickey",
        "core.openpgp_publicsubkey",
        "core.openpgp_signature",
        "core.openpgp_userattribute",
        "core.openpgp_userid",
        "core.publishedmetadata",
        "file.file"
    ]);
    let list = |items: Value| json!({"type": "array", "items": items});
    for (name, schema, listed) in [
        ("limit", json!({"type": "integer"}), false),
        ("offset", json!({"type": "integer"}), false),
        ("ordering", list(json!({"type": "string", "enum": ["-pk", "pk"]})), true),
        ("prn__in", list(json!({"type": "string"})), true),
        ("pulp_href__in", list(json!({"type": "string"})), true),
        ("pulp_id__in", list(json!({"type": "string", "format": "uuid"})), true),
        ("pulp_type", json!({"type": "string", "enum": types}), false),
        ("pulp_type__in", list(json!({"type": "string", "enum": types})), true),
        ("repository_version", json!({"type": "string"}), false),
        ("repository_version_added", json!({"type": "string"}), false),
        ("repository_version_removed", json!({"type": "string"}), false),
        ("fields", list(json!({"type": "string"})), true),
        ("exclude_fields", list(json!({"type": "string"})), true),
    ] {
        let p = params.get(name).unwrap_or_else(|| panic!("{name} is not declared"));
        assert_eq!((&p["in"], &p["schema"]), (&json!("query"), &schema), "{name}");
        if listed {
            // the field selections are repeated, the filters comma-separated
            let exploded = name.ends_with("fields");
            assert_eq!(
                (&p["style"], &p["explode"]),
                (&json!("form"), &json!(exploded)),
                "{name}"
            );
        }
    }
    assert_eq!(params.len(), 13, "{params:?}");
    assert_eq!(op["security"], json!([{"basicAuth": []}]));
}

/// Every answer carries a `Correlation-ID`, as Pulp's django-guid sends it: the caller's when
/// it is a UUID (hex, with or without dashes), else a fresh one; errors and the API document
/// too.
#[tokio::test]
async fn every_answer_carries_a_correlation_id() {
    let t = T::new().await;
    let id_of = |r: &Resp| r.headers.get("correlation-id").map(|v| v.to_str().unwrap().to_owned());
    let is_fresh = |id: &str| id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit());
    // Given a valid id, with or without dashes, Then it comes back as sent
    for sent in [
        "0f8fad5bd9cb469fa16570867728950e",
        "0F8FAD5B-D9CB-469F-A165-70867728950E",
    ] {
        let r = Req::get("/pulp/api/v3/status/")
            .header("correlation-id", sent)
            .send(&t.router)
            .await;
        assert_eq!(id_of(&r).as_deref(), Some(sent));
    }
    // Given no id, or one that is not a UUID, Then a fresh one comes back, a new one each time
    let none = id_of(&Req::get("/pulp/api/v3/status/").send(&t.router).await).unwrap();
    let junk = id_of(
        &Req::get("/pulp/api/v3/status/")
            .header("correlation-id", "abc123")
            .send(&t.router)
            .await,
    )
    .unwrap();
    assert!(is_fresh(&none) && is_fresh(&junk) && none != junk, "{none} {junk}");
    // and on errors and the API document alike
    for path in [
        "/pulp/api/v3/tasks/",
        "/pulp/api/v3/no/such/",
        "/pulp/api/v3/docs/api.json",
    ] {
        let r = Req::get(path).send(&t.router).await;
        assert!(id_of(&r).is_some_and(|id| is_fresh(&id)), "{path}: {}", r.status);
    }
}
