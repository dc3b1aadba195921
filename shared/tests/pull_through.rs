//! Pull-through caching end to end: a real `docker-registry` upstream behind a proxy that
//! counts every request it gets, the whole app (memory, redb and moto), and pulls through
//! `/v2/cache/<upstream path>`. The second pull asks upstream nothing; a tag past the TTL costs
//! one HEAD; an index's other platforms are never fetched; concurrent first pulls make one
//! upstream GET each; an upstream outage still serves what is cached; a client that goes away
//! or stops reading leaves the blob whole and holds up nobody.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(feature = "upstream")]

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use berth::domain::{ContentType, Digest, RepoName};
use berth::store::{RemoteKind, RepositoryKind};
use common::cache::{blob_digests, count, Backend, Cache, ACCEPT_ALL, BACKENDS};
use common::http::Req;
use http::{Method, StatusCode};

#[tokio::test]
async fn the_first_pull_fetches_and_the_second_asks_upstream_nothing() {
    for backend in BACKENDS {
        let c = Cache::start(backend, Duration::from_secs(300), &[], &[]).await;
        let digest = c.pull("docker").await;
        assert_eq!(digest, c.fx.docker, "{backend:?}");
        let seen = c.up.take();
        assert_eq!(
            count(&seen, "GET /v2/test/fixture/manifests/"),
            1,
            "{backend:?} {seen:?}"
        );
        assert_eq!(count(&seen, "GET /v2/test/fixture/blobs/"), 2, "{backend:?} {seen:?}");
        // a repository keeping one version, a distribution and a remote, named after the path
        let store = &c.app.store;
        let repo = store.repository_by_name("cache/test/fixture").await.unwrap().unwrap();
        assert_eq!(repo.kind, RepositoryKind::Mirror);
        assert_eq!(repo.retain_repo_versions, Some(1));
        let dist = store
            .distribution_by_base_path(&RepoName::parse("cache/test/fixture").unwrap())
            .await
            .unwrap()
            .unwrap();
        assert!(dist.cached_by.is_some() && dist.repository == Some(repo.id));
        let remote = store.remote(dist.remote.unwrap()).await.unwrap().unwrap();
        assert_eq!(remote.kind, RemoteKind::Container);
        assert_eq!(remote.upstream_name.as_str(), "test/fixture");
        let present = c.present().await;
        assert_eq!(present[&ContentType::Tag], 1);
        assert_eq!(present[&ContentType::Manifest], 1);
        assert_eq!(present[&ContentType::Blob], 2);

        // the second pull, by tag and by digest, is served from the cache
        assert_eq!(c.pull("docker").await, digest);
        assert_eq!(c.pull(digest.as_str()).await, digest);
        let h = Req::new(Method::HEAD, "/v2/cache/test/fixture/manifests/docker")
            .headers(&[("accept", ACCEPT_ALL)])
            .send(&c.router)
            .await;
        assert_eq!(h.status, StatusCode::OK);
        assert_eq!(c.up.take(), Vec::<String>::new(), "{backend:?}");

        // a second tag adds to the one version kept
        c.pull("v2-rc").await;
        let present = c.present().await;
        assert_eq!(present[&ContentType::Tag], 2, "{backend:?}");
        let repo = store.repository_by_name("cache/test/fixture").await.unwrap().unwrap();
        // retention as pulpcore applies it: the served (latest) version and one more
        let kept: Vec<u64> = store.versions(&repo).await.unwrap().iter().map(|v| v.number).collect();
        assert_eq!(kept, vec![2, 1], "{backend:?}");
    }
}

#[tokio::test]
async fn past_the_ttl_a_tag_costs_one_head_and_a_moved_tag_is_seen() {
    for backend in BACKENDS {
        let c = Cache::start(backend, Duration::ZERO, &[], &[]).await;
        let first = c.pull("docker").await;
        c.up.take();
        // nothing changed: one HEAD, no GET
        assert_eq!(c.pull("docker").await, first);
        let seen = c.up.take();
        assert_eq!(
            seen,
            vec!["HEAD /v2/test/fixture/manifests/docker".to_owned()],
            "{backend:?}"
        );
        // the tag moves upstream: one HEAD, one GET, the new image
        let (_, rc, mt) = c.fx.tags.iter().find(|(t, ..)| t == "v2-rc").unwrap().clone();
        c.reg.push_manifest("test/fixture", "docker", &mt, &rc).await;
        c.up.take();
        let moved = c.pull("docker").await;
        assert_eq!(moved, Digest::sha256_of(&rc), "{backend:?}");
        let seen = c.up.take();
        assert_eq!(count(&seen, "HEAD /v2/test/fixture/manifests/docker"), 1, "{seen:?}");
        assert_eq!(count(&seen, "GET /v2/test/fixture/manifests/docker"), 1, "{seen:?}");
        assert_eq!(c.present().await[&ContentType::Tag], 1, "{backend:?}: the tag moved");
    }
}

#[tokio::test]
async fn an_index_fetches_only_the_platform_pulled() {
    let c = Cache::start(Backend::Memory, Duration::from_secs(300), &[], &[]).await;
    let m = c.manifest("multi").await;
    assert_eq!(m.status, StatusCode::OK, "{}", m.text());
    assert_eq!(Digest::sha256_of(&m.body), c.fx.index);
    let amd = c.pull(c.fx.amd64.as_str()).await;
    assert_eq!(amd, c.fx.amd64);
    let seen = c.up.take();
    assert!(
        !seen.iter().any(|s| s.contains(c.fx.arm64.as_str())),
        "the arm64 manifest was fetched: {seen:?}"
    );
    assert_eq!(count(&seen, "GET /v2/test/fixture/manifests/"), 2, "{seen:?}");
    assert_eq!(count(&seen, "GET /v2/test/fixture/blobs/"), 3, "{seen:?}");
    assert_eq!(c.present().await[&ContentType::Manifest], 2);
}

#[tokio::test]
async fn filters_refuse_other_names_and_pushes_are_denied() {
    let c = Cache::start(Backend::Memory, Duration::from_secs(300), &["other/*"], &[]).await;
    let m = c.manifest("docker").await;
    assert_eq!(m.status, StatusCode::NOT_FOUND, "{}", m.text());
    assert_eq!(m.code(), "NAME_UNKNOWN");
    assert_eq!(c.up.take(), Vec::<String>::new());
    let c = Cache::start(Backend::Memory, Duration::from_secs(300), &[], &["test/*"]).await;
    assert_eq!(c.manifest("docker").await.code(), "NAME_UNKNOWN");
    let c = Cache::start(Backend::Memory, Duration::from_secs(300), &["test/*"], &["*/other"]).await;
    c.pull("docker").await;
    // no pushes into a cache, cached path or not
    for name in ["cache/test/fixture", "cache/new/thing"] {
        let r = Req::new(Method::POST, &format!("/v2/{name}/blobs/uploads/"))
            .send(&c.router)
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{name}: {}", r.text());
        assert_eq!(r.code(), "DENIED");
    }
    // a tag upstream lacks is unknown, and nothing is made for a path upstream lacks
    assert_eq!(c.manifest("nope").await.code(), "MANIFEST_UNKNOWN");
    let r = c.get("/v2/cache/test/missing/manifests/latest").await;
    assert_eq!(r.code(), "MANIFEST_UNKNOWN", "{}", r.text());
    assert!(c
        .app
        .store
        .repository_by_name("cache/test/missing")
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn an_upstream_outage_still_serves_what_is_cached() {
    for backend in BACKENDS {
        let c = Cache::start(backend, Duration::ZERO, &[], &[]).await;
        let d = c.pull("docker").await;
        c.up.down.store(true, std::sync::atomic::Ordering::SeqCst);
        assert_eq!(c.pull("docker").await, d, "{backend:?}");
        assert_eq!(c.pull(d.as_str()).await, d, "{backend:?}");
        let r = c.manifest("v2-rc").await;
        assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{backend:?}: {}", r.text());
        c.up.down.store(false, std::sync::atomic::Ordering::SeqCst);
        c.pull("v2-rc").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixteen_first_pulls_make_one_upstream_get_each() {
    for backend in BACKENDS {
        let c = Arc::new(Cache::start(backend, Duration::from_secs(300), &[], &[]).await);
        let mut tasks = Vec::new();
        for _ in 0..16 {
            let c = c.clone();
            tasks.push(tokio::spawn(async move { c.pull("multi").await }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap(), c.fx.index);
        }
        let mut tasks = Vec::new();
        for _ in 0..16 {
            let c = c.clone();
            tasks.push(tokio::spawn(async move { c.pull(c.fx.docker.as_str()).await }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap(), c.fx.docker);
        }
        let seen = c.up.take();
        let mut per: BTreeMap<&str, usize> = BTreeMap::new();
        for s in &seen {
            *per.entry(s.as_str()).or_default() += 1;
        }
        assert!(per.values().all(|n| *n == 1), "{backend:?}: {per:#?}");
        assert_eq!(count(&seen, "GET /v2/test/fixture/manifests/"), 2, "{seen:?}");
        assert_eq!(count(&seen, "GET /v2/test/fixture/blobs/"), 2, "{seen:?}");
    }
}

#[tokio::test]
async fn a_client_gone_mid_layer_leaves_no_partial_blob() {
    use futures::StreamExt as _;
    use tower::ServiceExt as _;
    for backend in BACKENDS {
        let c = Cache::start(backend, Duration::from_secs(300), &[], &[]).await;
        let m = c.manifest("docker").await;
        let layer = blob_digests(&m.body).pop().unwrap();
        let req = http::Request::get(format!("/v2/cache/test/fixture/blobs/{layer}"))
            .body(axum::body::Body::empty())
            .unwrap();
        let resp = c.router.clone().oneshot(req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let mut body = resp.into_body().into_data_stream();
        let first = body.next().await.unwrap().unwrap();
        assert!(!first.is_empty());
        drop(body);
        // the transfer finishes without the client, and only the whole blob is stored
        let blobs = c.app.blobs.clone();
        for _ in 0..100 {
            if blobs.stat(&layer).await.unwrap().is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(Digest::sha256_of(&c.blob_bytes(&layer).await), layer, "{backend:?}");
        let seen = c.up.take();
        assert_eq!(
            count(&seen, &format!("GET /v2/test/fixture/blobs/{layer}")),
            1,
            "{seen:?}"
        );
    }
}

#[tokio::test]
async fn a_client_that_stops_reading_does_not_hold_up_the_others() {
    use futures::StreamExt as _;
    use tower::ServiceExt as _;
    let c = Cache::start(Backend::Memory, Duration::from_secs(300), &[], &[]).await;
    // a 32 MB layer: far more than the chunks in flight to one client
    let layer = common::noise(7, 32 << 20);
    let ld = c.reg.push_blob("test/big", &layer).await;
    let config = br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let cd = c.reg.push_blob("test/big", config).await;
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": ld, "size": layer.len()}],
    });
    c.reg
        .push_manifest(
            "test/big",
            "v1",
            "application/vnd.oci.image.manifest.v1+json",
            &serde_json::to_vec(&manifest).unwrap(),
        )
        .await;
    let m = c.get("/v2/cache/test/big/manifests/v1").await;
    assert_eq!(m.status, StatusCode::OK, "{}", m.text());
    let req = http::Request::get(format!("/v2/cache/test/big/blobs/{ld}"))
        .body(axum::body::Body::empty())
        .unwrap();
    let resp = c.router.clone().oneshot(req).await.unwrap();
    let mut stalled = resp.into_body().into_data_stream();
    assert!(!stalled.next().await.unwrap().unwrap().is_empty());
    // the first client holds its response open and reads no more; another pull completes
    let t0 = std::time::Instant::now();
    let other = tokio::time::timeout(Duration::from_secs(40), async {
        let b = c.get(&format!("/v2/cache/test/big/blobs/{ld}")).await;
        assert_eq!(b.status, StatusCode::OK, "{}", b.status);
        b.body
    })
    .await
    .expect("a stalled client held up the blob");
    assert_eq!(Digest::sha256_of(&other), ld);
    assert!(t0.elapsed() < Duration::from_secs(25), "{:?}", t0.elapsed());
    let seen = c.up.take();
    assert_eq!(count(&seen, &format!("GET /v2/test/big/blobs/{ld}")), 1, "{seen:?}");
    drop(stalled);
}
