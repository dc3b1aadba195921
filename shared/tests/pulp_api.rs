//! Router tests for the management API (`/pulp/api/v3/`), in process, on the in-memory store.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use axum::Router;
use berth::app::{App, LocalApp};
use berth::domain::{media, Digest};
use common::http::{Req, Resp};
use http::{Method, StatusCode};
use serde_json::{json, Value};

struct T {
    app: App,
    local: LocalApp,
    router: Router,
}

const PW: &str = "test-password";

impl T {
    async fn new() -> T {
        let local = LocalApp::in_memory();
        let app = local.app.clone();
        app.users.ensure_admin(Some(PW)).await.unwrap();
        app.users.set_user("reader", "reader-pw", false).await.unwrap();
        T {
            router: app.router(),
            app,
            local,
        }
    }

    async fn call(&self, method: Method, uri: &str, auth: Option<(&str, &str)>, body: Option<Value>) -> Resp {
        let mut r = Req::new(method, uri).header("host", "reg.example:5000");
        if let Some((u, p)) = auth {
            r = r.basic(u, p);
        }
        if let Some(v) = body {
            r = r.json(&v);
        }
        let r = r.send(&self.router).await;
        if !r.body.is_empty() {
            assert_eq!(
                r.headers.get("content-type").map(|v| v.to_str().unwrap()),
                Some("application/json"),
                "exactly application/json"
            );
        }
        r
    }

    async fn get(&self, uri: &str) -> Resp {
        self.call(Method::GET, uri, Some(("admin", PW)), None).await
    }
    async fn post(&self, uri: &str, body: Value) -> Resp {
        self.call(Method::POST, uri, Some(("admin", PW)), Some(body)).await
    }
    async fn patch(&self, uri: &str, body: Value) -> Resp {
        self.call(Method::PATCH, uri, Some(("admin", PW)), Some(body)).await
    }
    async fn delete(&self, uri: &str) -> Resp {
        self.call(Method::DELETE, uri, Some(("admin", PW)), None).await
    }

    /// Follows a 202 to its task, which must be completed; returns the task.
    async fn task(&self, r: Resp) -> Value {
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.json());
        let json = r.json();
        let obj = json.as_object().unwrap();
        assert_eq!(obj.len(), 1, "exactly one key");
        let t = self.get(r.json()["task"].as_str().unwrap()).await;
        assert_eq!(t.status, StatusCode::OK);
        t.json()
    }

    /// A request to the registry (`/v2`), without credentials (the in-memory app is open).
    async fn registry(&self, m: Method, uri: &str, ct: Option<&str>, body: Vec<u8>) -> Resp {
        let mut r = Req::new(m, uri).body(body);
        if let Some(ct) = ct {
            r = r.header("content-type", ct);
        }
        r.send(&self.router).await
    }

    async fn push_image(&self, name: &str, tag: &str, layer: &[u8]) -> Digest {
        let config = format!(
            r#"{{"architecture":"amd64","os":"linux","layer":"{}"}}"#,
            Digest::sha256_of(layer)
        )
        .into_bytes();
        for b in [&config[..], layer] {
            let d = Digest::sha256_of(b);
            let r = self
                .registry(
                    Method::POST,
                    &format!("/v2/{name}/blobs/uploads/?digest={d}"),
                    None,
                    b.to_vec(),
                )
                .await;
            assert_eq!(r.status, StatusCode::CREATED);
        }
        let m = serde_json::to_vec(&json!({
            "schemaVersion": 2, "mediaType": media::OCI_MANIFEST,
            "config": {"mediaType": media::OCI_IMAGE_CONFIG, "digest": Digest::sha256_of(&config), "size": config.len()},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": Digest::sha256_of(layer), "size": layer.len()}],
        }))
        .unwrap();
        let r = self
            .registry(
                Method::PUT,
                &format!("/v2/{name}/manifests/{tag}"),
                Some(media::OCI_MANIFEST),
                m.clone(),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED);
        Digest::sha256_of(&m)
    }
}

const REPOS: &str = "/pulp/api/v3/repositories/container/container/";
const PUSH: &str = "/pulp/api/v3/repositories/container/container-push/";
const REMOTES: &str = "/pulp/api/v3/remotes/container/container/";
const DISTS: &str = "/pulp/api/v3/distributions/container/container/";

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
    // a version a distribution serves can't be deleted; nor the latest, nor 0
    assert_eq!(
        t.delete(&format!("{repo_href}versions/1/")).await.status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        t.delete(&format!("{repo_href}versions/2/")).await.status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        t.delete(&format!("{repo_href}versions/0/")).await.status,
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

/// `POST /orphans/cleanup/` removes, as a task, the content no live repository references
/// (records and bytes), keeps what any version or pending upload of a live repository uses,
/// and keeps everything newer than the protection time.
#[tokio::test]
async fn orphan_cleanup_removes_what_no_repository_references() {
    let t = T::new().await;
    let (la, lx, lb) = (b"layer A".to_vec(), b"layer X".to_vec(), b"layer B".to_vec());
    t.push_image("a", "v1", &la).await;
    let mx = t.push_image("a", "v2", &lx).await;
    let mb = t.push_image("b", "v1", &lb).await;
    let ma = t.push_image("b", "v2", &la).await; // the same image as a:v1
    let upload = |name: &'static str, bytes: &'static [u8]| {
        let d = Digest::sha256_of(bytes);
        let t = &t;
        async move {
            let uri = format!("/v2/{name}/blobs/uploads/?digest={d}");
            let r = t.registry(Method::POST, &uri, None, bytes.to_vec()).await;
            assert_eq!(r.status, StatusCode::CREATED);
            d
        }
    };
    let pending_b = upload("b", b"uploaded to b, in no version yet").await;
    let pending_a = upload("a", b"uploaded to a, in no version").await;
    let stat = |d: Digest| {
        let blobs = t.app.blobs.clone();
        async move { blobs.stat(&d).await.unwrap().is_some() }
    };
    let lx_d = Digest::sha256_of(&lx);
    let repo_a = t.get(&format!("{PUSH}?name=a")).await.json()["results"][0]["pulp_href"]
        .as_str()
        .unwrap()
        .to_owned();
    let _ = t.task(t.delete(&repo_a).await).await;

    let cleanup = |body: Value| async {
        let r = t.post("/pulp/api/v3/orphans/cleanup/", body).await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.json());
        let href = r.json()["task"].as_str().unwrap().to_owned();
        assert_eq!(t.get(&href).await.json()["state"], "waiting");
        let _ = t.local.jobs.run_one(&*t.app.worker()).await.unwrap();
        let task = t.get(&href).await.json();
        assert_eq!(task["state"], "completed", "{task}");
        assert_eq!(task["name"], "pulpcore.app.tasks.orphan.orphan_cleanup");
        task
    };
    // within the default protection time (a day) nothing goes
    let task = cleanup(json!({})).await;
    assert_eq!(task["progress_reports"][0]["done"], 0, "{task}");
    assert!(stat(lx_d.clone()).await);

    // bad input, and nothing started
    let r = t
        .post("/pulp/api/v3/orphans/cleanup/", json!({"orphan_protection_time": -1}))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.json()["orphan_protection_time"].is_array(), "{}", r.json());
    let r = t
        .post(
            "/pulp/api/v3/orphans/cleanup/",
            json!({"content_hrefs": ["/pulp/api/v3/content/container/blobs/00000000-0000-0000-0000-000000000000/"]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.json()["content_hrefs"].is_array(), "{}", r.json());

    // only the listed units
    let blob_href = t
        .get(&format!("/pulp/api/v3/content/container/blobs/?digest={lx_d}"))
        .await
        .json()["results"][0]["pulp_href"]
        .as_str()
        .unwrap()
        .to_owned();
    let task = cleanup(json!({"orphan_protection_time": 0, "content_hrefs": [blob_href]})).await;
    assert_eq!(task["progress_reports"][0]["done"], 1, "{task}");
    assert!(!stat(lx_d.clone()).await, "the listed orphan is gone");
    assert!(t.app.store.manifest(&mx).await.unwrap().is_some(), "the rest stays");

    // everything orphaned, protection time 0
    let task = cleanup(json!({"orphan_protection_time": 0})).await;
    assert!(task["progress_reports"][0]["done"].as_u64().unwrap() >= 4, "{task}");
    assert!(t.app.store.manifest(&mx).await.unwrap().is_none(), "a:v2 is gone");
    assert!(!stat(mx.clone()).await);
    assert!(
        !stat(pending_a).await,
        "a blob uploaded to the deleted repository is gone"
    );
    // what b uses stays and is served
    for d in [
        Digest::sha256_of(&la),
        Digest::sha256_of(&lb),
        pending_b,
        ma.clone(),
        mb,
    ] {
        assert!(stat(d.clone()).await, "{d} stays");
    }
    let r = t.registry(Method::GET, "/v2/b/manifests/v2", None, Vec::new()).await;
    assert_eq!(r.status, StatusCode::OK);
    let uri = format!("/v2/b/blobs/{}", Digest::sha256_of(&la));
    let r = t.registry(Method::GET, &uri, None, Vec::new()).await;
    assert_eq!(r.status, StatusCode::OK);
    // the content list no longer shows what went
    let r = t
        .get(&format!("/pulp/api/v3/content/container/blobs/?digest={lx_d}"))
        .await;
    assert_eq!(r.json()["count"], 0, "{}", r.json());
    // a second run finds nothing more
    let task = cleanup(json!({"orphan_protection_time": 0})).await;
    assert_eq!(task["progress_reports"][0]["done"], 0, "{task}");

    // deleting b's distribution takes its push repository along (as in Pulp); then all goes
    let dist = t.get(&format!("{DISTS}?name=b")).await.json()["results"][0]["pulp_href"]
        .as_str()
        .unwrap()
        .to_owned();
    let _ = t.task(t.delete(&dist).await).await;
    assert_eq!(t.get(&format!("{PUSH}?name=b")).await.json()["count"], 0);
    let _ = cleanup(json!({"orphan_protection_time": 0})).await;
    assert_eq!(t.get("/pulp/api/v3/content/container/blobs/").await.json()["count"], 0);
    for d in [Digest::sha256_of(&la), Digest::sha256_of(&lb), ma] {
        assert!(!stat(d.clone()).await, "{d} is gone");
    }
}

/// Content only deleted versions held is an orphan; content an older, kept version holds is not.
#[tokio::test]
async fn orphan_cleanup_frees_what_only_deleted_versions_held() {
    let t = T::new().await;
    let lc = b"layer C".to_vec();
    let mc = t.push_image("c", "v1", &lc).await; // version 1
    t.push_image("c", "v2", b"layer D").await; // version 2
    let r = t
        .registry(Method::DELETE, &format!("/v2/c/manifests/{mc}"), None, Vec::new())
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED); // version 3, without c:v1
    let cleanup = || async {
        let r = t
            .post("/pulp/api/v3/orphans/cleanup/", json!({"orphan_protection_time": 0}))
            .await;
        let href = r.json()["task"].as_str().unwrap().to_owned();
        let _ = t.local.jobs.run_one(&*t.app.worker()).await.unwrap();
        t.get(&href).await.json()
    };
    let lc_d = Digest::sha256_of(&lc);
    let _ = cleanup().await;
    assert!(
        t.app.blobs.stat(&lc_d).await.unwrap().is_some(),
        "versions 1 and 2 hold it"
    );
    let repo = t.get(&format!("{PUSH}?name=c")).await.json()["results"][0]["pulp_href"]
        .as_str()
        .unwrap()
        .to_owned();
    for n in [1, 2] {
        let _ = t.task(t.delete(&format!("{repo}versions/{n}/")).await).await;
    }
    let task = cleanup().await;
    assert_eq!(task["state"], "completed", "{task}");
    assert!(
        t.app.blobs.stat(&lc_d).await.unwrap().is_none(),
        "only deleted versions held it"
    );
    assert!(t.app.store.manifest(&mc).await.unwrap().is_none());
    assert!(
        t.app
            .blobs
            .stat(&Digest::sha256_of(b"layer D"))
            .await
            .unwrap()
            .is_some(),
        "version 3 holds c:v2"
    );
}

/// Remote credentials are sealed at rest: the embedded database file never holds the
/// password, the API never shows it, and syncs get it back (the store opens it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_credentials_are_sealed_at_rest() {
    let dir = tempfile::tempdir().unwrap();
    let settings = berth::app::Settings {
        field_key: Some(std::sync::Arc::new(berth::store::FieldKey::from_bytes(&[7u8; 32]))),
        ..Default::default()
    };
    let local = LocalApp::embedded(dir.path(), settings).await.unwrap();
    let app = local.app.clone();
    app.users.ensure_admin(Some(PW)).await.unwrap();
    let t = T {
        router: app.router(),
        app,
        local,
    };
    let secret = "pa55-in-the-clear-nowhere";
    let r = t
        .post(
            REMOTES,
            json!({"name": "up", "url": "https://up.example", "upstream_name": "x",
                   "username": "me", "password": secret, "proxy_password": "proxy-pa55-nowhere"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json());
    assert!(!r.json().to_string().contains(secret));
    let href = r.json()["pulp_href"].as_str().unwrap().to_owned();
    let r = t
        .patch(&href, json!({"description": "x", "url": "https://up2.example"}))
        .await;
    assert!(r.status.is_success(), "{}", r.json());
    let remote = t.app.store.remotes().await.unwrap().remove(0);
    assert_eq!(remote.password.as_deref(), Some(secret), "the store opens it for syncs");
    assert_eq!(remote.upstream_config().password.as_deref(), Some(secret));
    let db = std::fs::read(dir.path().join("berth.redb")).unwrap();
    let holds = |needle: &str| db.windows(needle.len()).any(|w| w == needle.as_bytes());
    assert!(holds("https://up2.example"), "the remote is in the file");
    assert!(
        !holds(secret) && !holds("proxy-pa55-nowhere"),
        "its passwords are not, in the clear"
    );
    assert!(holds("enc:v1:"));
}

/// `copy_tags` and `copy_manifests` promote content from another repository's version into a
/// mirror repository as one new version, with everything the copied units reference.
#[tokio::test]
async fn copy_tags_and_manifests_between_repositories() {
    let t = T::new().await;
    let m1 = t.push_image("team/src", "v1", b"layer one").await;
    let m2 = t.push_image("team/src", "v2", b"layer two").await;
    let src = t.get(&format!("{PUSH}?name=team/src")).await.json()["results"][0].clone();
    let src_v2 = format!("{}versions/2/", src["pulp_href"].as_str().unwrap());
    let dst = t.post(REPOS, json!({"name": "promoted"})).await.json();
    let dst_href = dst["pulp_href"].as_str().unwrap().to_owned();
    let copy_tags = format!("{dst_href}copy_tags/");
    let copy_manifests = format!("{dst_href}copy_manifests/");

    // bad input: no source, both sources, a source that does not exist
    let r = t.post(&copy_tags, json!({"names": ["v1"]})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.json()["non_field_errors"].is_array(), "{}", r.json());
    let r = t
        .post(
            &copy_tags,
            json!({"source_repository": dst_href, "source_repository_version": src_v2}),
        )
        .await;
    assert!(r.json()["non_field_errors"].is_array(), "{}", r.json());
    let r = t
        .post(
            &copy_tags,
            json!({"source_repository_version": format!("{}versions/9/", src["pulp_href"].as_str().unwrap())}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.json()["source_repository_version"].is_array(), "{}", r.json());

    // the CLI's body: a version href and the names (null for every tag)
    let task = t
        .task(
            t.post(
                &copy_tags,
                json!({"source_repository_version": src_v2, "names": ["v1"]}),
            )
            .await,
        )
        .await;
    assert_eq!(task["state"], "completed", "{task}");
    assert!(task["created_resources"][0].as_str().unwrap().ends_with("/versions/1/"));
    let v1 = t.get(&format!("{dst_href}versions/1/")).await.json();
    let present = &v1["content_summary"]["present"];
    assert_eq!(present["container.tag"]["count"], 1, "{v1}");
    assert_eq!(present["container.manifest"]["count"], 1);
    assert_eq!(
        present["container.blob"]["count"], 2,
        "the config and the layer come along"
    );
    let promoted = t.app.store.repository_by_name("promoted").await.unwrap().unwrap();
    assert!(t
        .app
        .store
        .contains(promoted.id, 1, &berth::domain::ContentKey::Manifest(m1.clone()))
        .await
        .unwrap());
    // every OCI manifest of the latest source version, by media type; nothing new is no version
    let task = t
        .task(
            t.post(
                &copy_manifests,
                json!({"source_repository_version": src_v2, "digests": null,
                       "media_types": [media::OCI_MANIFEST]}),
            )
            .await,
        )
        .await;
    assert!(
        task["created_resources"][0].as_str().unwrap().ends_with("/versions/2/"),
        "{task}"
    );
    assert!(t
        .app
        .store
        .contains(promoted.id, 2, &berth::domain::ContentKey::Manifest(m2))
        .await
        .unwrap());
    let task = t
        .task(
            t.post(
                &copy_manifests,
                json!({"source_repository_version": src_v2, "digests": [m1]}),
            )
            .await,
        )
        .await;
    assert_eq!(task["created_resources"], json!([]), "no change, no version");
}

/// Racing first pushes into one new name make one push repository, the one its distribution
/// serves; an orphan cleanup with no protection time afterwards keeps every image, and racing
/// creates of one name through the API give exactly one 201 (DESIGN invariant 6).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_creates_make_one_of_each_and_cleanup_keeps_every_image() {
    let t = std::sync::Arc::new(T::new().await);
    let racers = 16;
    // Given 16 clients, When each pushes an image of its own into one new name at once
    let mut tasks = Vec::new();
    for i in 0..racers {
        let t = t.clone();
        tasks.push(tokio::spawn(async move {
            let layer = format!("racing layer {i}").into_bytes();
            t.push_image("race/new", &format!("t{i}"), &layer).await
        }));
    }
    let mut pushed = Vec::new();
    for task in tasks {
        pushed.push(task.await.unwrap());
    }
    // Then one repository holds the name, and the distribution serves that one
    let listed = t.get(&format!("{PUSH}?name=race/new")).await.json();
    assert_eq!(listed["count"], 1, "{listed}");
    let dist = t.get(&format!("{DISTS}?base_path=race/new")).await.json();
    assert_eq!(dist["count"], 1, "{dist}");
    assert_eq!(dist["results"][0]["repository"], listed["results"][0]["pulp_href"]);
    let all = t.get(&format!("{PUSH}?limit=1000")).await.json();
    assert_eq!(all["count"], 1, "{all}");
    // When orphans are cleaned up with no protection time
    let r = t
        .post("/pulp/api/v3/orphans/cleanup/", json!({"orphan_protection_time": 0}))
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.json());
    let href = r.json()["task"].as_str().unwrap().to_owned();
    let _ = t.local.jobs.run_one(&*t.app.worker()).await.unwrap();
    assert_eq!(t.get(&href).await.json()["state"], "completed");
    // Then every tag still pulls, with its blobs
    for (i, digest) in pushed.iter().enumerate() {
        let r = t
            .registry(Method::GET, &format!("/v2/race/new/manifests/t{i}"), None, Vec::new())
            .await;
        assert_eq!(r.status, StatusCode::OK, "t{i}");
        let bytes = r.body;
        assert_eq!(&Digest::sha256_of(&bytes), digest);
        let m: Value = serde_json::from_slice(&bytes).unwrap();
        for blob in [&m["config"]["digest"], &m["layers"][0]["digest"]] {
            let uri = format!("/v2/race/new/blobs/{}", blob.as_str().unwrap());
            let r = t.registry(Method::GET, &uri, None, Vec::new()).await;
            assert_eq!(r.status, StatusCode::OK, "{uri}");
        }
    }

    // Given 8 clients, When each creates a repository, a remote and a distribution of one
    // name at once, Then exactly one of each is created and listed
    for (list, body) in [
        (REPOS, json!({"name": "x"})),
        (
            REMOTES,
            json!({"name": "x", "url": "http://127.0.0.1:1", "upstream_name": "x"}),
        ),
    ] {
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let (t, body) = (t.clone(), body.clone());
            tasks.push(tokio::spawn(async move { t.post(list, body).await }));
        }
        let mut statuses = Vec::new();
        for task in tasks {
            let r = task.await.unwrap();
            if r.status == StatusCode::BAD_REQUEST {
                assert_eq!(r.json()["name"][0], "This field must be unique.", "{}", r.json());
            }
            statuses.push(r.status);
        }
        assert_eq!(
            statuses.iter().filter(|s| **s == StatusCode::CREATED).count(),
            1,
            "{statuses:?}"
        );
        assert_eq!(statuses.iter().filter(|s| **s == StatusCode::BAD_REQUEST).count(), 7);
        assert_eq!(t.get(&format!("{list}?name=x")).await.json()["count"], 1);
    }
    // distributions are created by a task; a name already taken when asked is refused at once
    let mut tasks = Vec::new();
    for i in 0..8 {
        let t = t.clone();
        tasks.push(tokio::spawn(async move {
            let r = t.post(DISTS, json!({"name": "x", "base_path": format!("x{i}")})).await;
            let _ = t.local.jobs.run_one(&*t.app.worker()).await.unwrap();
            r
        }));
    }
    let mut responses = Vec::new();
    for task in tasks {
        responses.push(task.await.unwrap());
    }
    while t.local.jobs.run_one(&*t.app.worker()).await.unwrap().is_some() {}
    let mut completed = 0;
    for r in responses {
        match r.status {
            StatusCode::ACCEPTED => {
                let task = t.get(r.json()["task"].as_str().unwrap()).await.json();
                match task["state"].as_str().unwrap() {
                    "completed" => completed += 1,
                    "failed" => {}
                    other => panic!("task {other}: {task}"),
                }
            }
            StatusCode::BAD_REQUEST => assert_eq!(r.json()["name"][0], "This field must be unique.", "{}", r.json()),
            other => panic!("{other}: {}", r.json()),
        }
    }
    assert_eq!(completed, 1);
    assert_eq!(t.get(&format!("{DISTS}?name=x")).await.json()["count"], 1);
}
