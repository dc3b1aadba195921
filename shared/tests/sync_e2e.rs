//! Sync end to end: a real `docker-registry` upstream, the whole app in memory (management
//! service, job queue, worker with the reqwest upstream client), and pulls through `/v2`.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(feature = "upstream")]

mod common;

use std::collections::BTreeMap;

use axum::extract::Request;
use axum::routing::any;
use axum::Router;
use base64::Engine as _;
use berth::app::{App, LocalApp};
use berth::domain::{media, ContentType, Digest, RepoName};
use berth::services::{DistributionSpec, Serves};
use berth::store::{Remote, Repository, RepositoryKind, ResourceRef, Task, TaskState};
use common::http::{Req, Resp};
use http::{Method, StatusCode};
use serde_json::{json, Value};

struct Berth {
    local: LocalApp,
    app: App,
    router: Router,
}

impl Berth {
    fn new() -> Self {
        let local = LocalApp::in_memory();
        let app = local.app.clone();
        Berth {
            router: app.router(),
            app,
            local,
        }
    }

    async fn send(&self, method: Method, uri: &str, headers: &[(&str, &str)], body: Vec<u8>) -> Resp {
        Req::new(method, uri)
            .headers(headers)
            .body(body)
            .send(&self.router)
            .await
    }

    async fn get(&self, uri: &str) -> Resp {
        self.send(Method::GET, uri, &[], vec![]).await
    }

    async fn remote(&self, name: &str, url: &str, upstream: &str, extra: Value) -> Remote {
        let mut v = json!({
            "id": uuid::Uuid::new_v4(),
            "name": name,
            "url": url,
            "upstream_name": upstream,
            "created": chrono::Utc::now(),
            "updated": chrono::Utc::now(),
            "max_retries": 1,
        });
        for (k, x) in extra.as_object().unwrap() {
            v[k] = x.clone();
        }
        self.app
            .manage
            .create_remote(serde_json::from_value(v).unwrap())
            .await
            .unwrap()
    }

    /// A mirror repository served at `base_path`.
    async fn mirror(&self, base_path: &str) -> Repository {
        let repo = self
            .app
            .manage
            .create_repository(Repository::new(base_path, RepositoryKind::Mirror))
            .await
            .unwrap();
        self.app
            .manage
            .create_distribution(DistributionSpec {
                name: base_path.into(),
                base_path: RepoName::parse(base_path).unwrap(),
                serves: Serves::Latest(repo.id),
                private: false,
                description: None,
                pulp_labels: BTreeMap::new(),
            })
            .await
            .unwrap();
        repo
    }

    /// Starts a sync through the management service and runs its job with the app's worker.
    async fn sync(&self, repo: &Repository, remote: &Remote, mirror: bool) -> Task {
        let t = self.app.manage.sync(repo, remote.id, mirror, false).await.unwrap();
        assert_eq!(t.state, TaskState::Waiting);
        let worker = self.app.worker();
        assert!(self.local.jobs.run_one(&*worker).await.unwrap().is_some());
        self.app.store.task(t.id).await.unwrap().unwrap()
    }

    async fn latest(&self, repo: &Repository) -> u64 {
        self.app
            .store
            .repository(repo.id)
            .await
            .unwrap()
            .unwrap()
            .latest_version
    }

    async fn present(&self, repo: &Repository) -> BTreeMap<ContentType, u64> {
        let r = self.app.store.repository(repo.id).await.unwrap().unwrap();
        let v = self.app.store.version(&r, r.latest_version).await.unwrap().unwrap();
        v.content_summary.present
    }
}

/// A sigstore lookaside on a free port holding one signature of `digest`.
async fn lookaside(name: &str, digest: &Digest, signature: &'static [u8]) -> String {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let path = format!("/{name}@sha256={}/signature-1", digest.hex());
    let router = Router::new().fallback(any(move |req: Request| {
        let path = path.clone();
        async move {
            if req.uri().path() == path {
                (StatusCode::OK, signature.to_vec())
            } else {
                (StatusCode::NOT_FOUND, Vec::new())
            }
        }
    }));
    tokio::spawn(async move { axum::serve(l, router).await.unwrap() });
    format!("http://{addr}")
}

const ACCEPT_ALL: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";

#[tokio::test]
async fn syncs_a_real_registry_and_serves_it_through_v2() {
    let reg = common::DockerRegistry::start().await;
    let fx = common::fill(&reg, "test/fixture").await;
    let b = Berth::new();
    let sigstore = lookaside("test/fixture", &fx.docker, b"atomic-signature").await;
    let remote = b
        .remote("fixture", &reg.base(), "test/fixture", json!({"sigstore": sigstore}))
        .await;
    let repo = b.mirror("mirror").await;

    // Given a synced repository
    let t = b.sync(&repo, &remote, false).await;
    assert_eq!(t.state, TaskState::Completed, "{:?}", t.error);
    assert_eq!(
        t.created_resources,
        vec![ResourceRef::RepositoryVersion {
            repository: repo.id,
            kind: RepositoryKind::Mirror,
            number: 1
        }]
    );
    let codes: Vec<&str> = t.progress_reports.iter().map(|r| r.code.as_str()).collect();
    for c in [
        "sync.downloading.tag_list",
        "sync.processing.manifest",
        "sync.downloading.artifacts",
        "associating.content",
    ] {
        assert!(codes.contains(&c), "{codes:?}");
    }
    // 5 layers, 4 image configs, the signature's config and payload; 6 manifests; 6 tags;
    // 1 atomic signature
    let present = b.present(&repo).await;
    assert_eq!(present[&ContentType::Blob], 11);
    assert_eq!(present[&ContentType::Manifest], 6);
    assert_eq!(present[&ContentType::Tag], 6);
    assert_eq!(present[&ContentType::Signature], 1);
    // and the generic content list shows them together, each type with its times
    b.app.users.ensure_admin(Some("admin-pw")).await.unwrap();
    let v1 = berth::http::pulp::render::version_href(repo.id, RepositoryKind::Mirror, 1);
    let r = Req::get(&format!("/pulp/api/v3/content/?repository_version={v1}&limit=100"))
        .basic("admin", "admin-pw")
        .send(&b.router)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json());
    let mut kinds = BTreeMap::new();
    for item in r.json()["results"].as_array().unwrap() {
        let href = item["pulp_href"].as_str().unwrap();
        *kinds
            .entry(href.split('/').nth_back(2).unwrap().to_owned())
            .or_insert(0) += 1;
        assert!(item["pulp_created"].is_string(), "{item}");
    }
    let want: BTreeMap<String, i32> = [("blobs", 11), ("manifests", 6), ("tags", 6), ("signatures", 1)]
        .map(|(k, n)| (k.to_owned(), n))
        .into();
    assert_eq!(kinds, want);

    // Then pulls get exactly what upstream has
    let r = b.get("/v2/mirror/tags/list").await;
    let mut tags: Vec<String> = serde_json::from_value(r.json()["tags"].clone()).unwrap();
    tags.sort();
    let mut want: Vec<String> = fx.tags.iter().map(|(t, ..)| t.clone()).collect();
    want.sort();
    assert_eq!(tags, want);
    for (tag, bytes, mt) in &fx.tags {
        let r = b
            .send(
                Method::GET,
                &format!("/v2/mirror/manifests/{tag}"),
                &[("accept", ACCEPT_ALL)],
                vec![],
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{tag}");
        assert_eq!(&r.body, bytes, "{tag}");
        assert_eq!(r.header("content-type"), mt);
        assert_eq!(r.header("docker-content-digest"), Digest::sha256_of(bytes).as_str());
    }
    for child in [&fx.amd64, &fx.arm64] {
        let r = b.get(&format!("/v2/mirror/manifests/{child}")).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(Digest::sha256_of(&r.body), *child);
    }
    for (d, bytes) in &fx.blobs {
        let r = b.get(&format!("/v2/mirror/blobs/{d}")).await;
        assert_eq!(r.status, StatusCode::OK, "{d}");
        assert_eq!(&r.body, bytes, "{d}");
    }
    // Berth serves the atomic signature through the extension API
    let r = b.get(&format!("/extensions/v2/mirror/signatures/{}", fx.docker)).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("x-registry-supports-signatures"), "1");
    let sigs = r.json()["signatures"].clone();
    assert_eq!(sigs.as_array().unwrap().len(), 1);
    assert_eq!(sigs[0]["type"], "atomic");
    assert_eq!(sigs[0]["schemaVersion"], 2);
    assert_eq!(
        base64::engine::general_purpose::STANDARD
            .decode(sigs[0]["content"].as_str().unwrap())
            .unwrap(),
        b"atomic-signature"
    );
    let r = b
        .get(&format!(
            "/extensions/v2/mirror/signatures/{}",
            Digest::sha256_of(b"nope")
        ))
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.json()["errors"][0]["code"], "MANIFEST_UNKNOWN");
    let r = b.get(&format!("/extensions/v2/mirror/signatures/{}", fx.amd64)).await;
    assert_eq!(r.json()["signatures"], json!([]));
    // a mirror refuses pushes
    let r = b
        .send(
            Method::PUT,
            "/v2/mirror/manifests/pushed",
            &[("content-type", media::OCI_INDEX)],
            fx.manifest("multi").to_vec(),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.json()["errors"][0]["code"], "DENIED");

    // When nothing changed upstream, a sync makes no version
    let t = b.sync(&repo, &remote, false).await;
    assert_eq!(t.state, TaskState::Completed, "{:?}", t.error);
    assert!(t.created_resources.is_empty());
    assert_eq!(b.latest(&repo).await, 1);

    // A mirror sync of one literal tag keeps that image and its cosign companion only
    let narrow = b
        .remote("narrow", &reg.base(), "test/fixture", json!({"includes": ["docker"]}))
        .await;
    let t = b.sync(&repo, &narrow, true).await;
    assert_eq!(t.state, TaskState::Completed, "{:?}", t.error);
    assert_eq!(b.latest(&repo).await, 2);
    let r = b.get("/v2/mirror/tags/list").await;
    let mut tags: Vec<String> = serde_json::from_value(r.json()["tags"].clone()).unwrap();
    tags.sort();
    assert_eq!(tags, vec!["docker".to_string(), fx.signature_tag.clone()]);
    let r = b.get(&format!("/v2/mirror/manifests/{}", fx.index)).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let present = b.present(&repo).await;
    assert_eq!(present[&ContentType::Manifest], 2);
    assert!(!present.contains_key(&ContentType::Signature));
}

#[tokio::test]
async fn on_demand_and_streamed_layers_are_fetched_when_pulled() {
    let reg = common::DockerRegistry::start().await;
    let fx = common::fill(&reg, "lazy/fixture").await;
    let layer = fx.docker_layers[0].clone();
    let layer_bytes = fx.blobs.iter().find(|(d, _)| *d == layer).unwrap().1.clone();
    for (policy, stored) in [("on_demand", true), ("streamed", false)] {
        let b = Berth::new();
        let remote = b
            .remote(
                "lazy",
                &reg.base(),
                "lazy/fixture",
                json!({"policy": policy, "includes": ["docker"]}),
            )
            .await;
        let repo = b.mirror("lazy").await;
        let t = b.sync(&repo, &remote, false).await;
        assert_eq!(t.state, TaskState::Completed, "{policy}: {:?}", t.error);
        assert!(
            b.app.blobs.stat(&layer).await.unwrap().is_none(),
            "{policy}: no layer yet"
        );
        let m = b.app.store.manifest(&fx.docker).await.unwrap().unwrap();
        let config = m.parsed.config.unwrap().digest;
        assert!(
            b.app.blobs.stat(&config).await.unwrap().is_some(),
            "{policy}: config stored"
        );

        let r = b
            .send(Method::HEAD, &format!("/v2/lazy/blobs/{layer}"), &[], vec![])
            .await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.header("content-length"), layer_bytes.len().to_string());
        let r = b.get(&format!("/v2/lazy/blobs/{layer}")).await;
        assert_eq!(r.status, StatusCode::OK, "{policy}");
        assert_eq!(r.body, layer_bytes, "{policy}");
        assert_eq!(
            b.app.blobs.stat(&layer).await.unwrap().is_some(),
            stored,
            "{policy}: stored after the pull?"
        );
        // a second pull works the same way
        let r = b.get(&format!("/v2/lazy/blobs/{layer}")).await;
        assert_eq!(r.body, layer_bytes, "{policy}");
    }
}

#[tokio::test]
async fn faults_fail_the_task_clearly_and_the_next_sync_works() {
    let reg = common::DockerRegistry::start().await;
    common::fill(&reg, "good/repo").await;
    let b = Berth::new();
    let repo = b.mirror("m").await;

    // a repository that does not exist upstream
    let missing = b.remote("missing", &reg.base(), "no/such", json!({})).await;
    let t = b.sync(&repo, &missing, false).await;
    assert_eq!(t.state, TaskState::Failed);
    let e = t.error.unwrap();
    assert!(e.contains(&format!("{}/v2/no/such/tags/list", reg.base())), "{e}");
    assert!(e.contains("404"), "{e}");

    // an upstream nobody listens on
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let down = b
        .remote(
            "down",
            &format!("http://127.0.0.1:{port}"),
            "x",
            json!({"max_retries": 0}),
        )
        .await;
    let t = b.sync(&repo, &down, false).await;
    assert_eq!(t.state, TaskState::Failed);
    let e = t.error.unwrap();
    assert!(e.contains("cannot reach") && e.contains(&port.to_string()), "{e}");
    assert_eq!(b.latest(&repo).await, 0);

    // fixed: the next sync works
    let fixed = b
        .app
        .manage
        .update_remote(missing.id, |r| {
            r.upstream_name = berth::domain::RepoName::parse("good/repo").unwrap();
            Ok(())
        })
        .await
        .unwrap();
    let t = b.sync(&repo, &fixed, false).await;
    assert_eq!(t.state, TaskState::Completed, "{:?}", t.error);
    assert_eq!(b.latest(&repo).await, 1);
}
