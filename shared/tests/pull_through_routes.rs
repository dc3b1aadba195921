//! How clients reach a pull-through cache: daemons asking for un-prefixed names (docker's
//! `registry-mirrors`, containerd's `?ns=`), the AWS registry function's way with no blob bytes
//! through it, and token auth on private and public caches.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(feature = "upstream")]

mod common;

use std::sync::Arc;
use std::time::Duration;

use berth::domain::{Digest, MirrorRoutes, RepoName};
use berth::services::RegistryConfig;
use common::cache::{blob_digests, count, get_with, token, Backend, Cache};
use common::http::Req;
use http::{Method, StatusCode};

#[tokio::test]
async fn daemons_pull_unprefixed_names_through_the_mirror_routes() {
    // docker's registry-mirrors: names no distribution serves go to the default cache
    let routes = MirrorRoutes {
        default: Some(RepoName::parse("cache").unwrap()),
        by_ns: vec![],
    };
    let c = Cache::start_with(Backend::Memory, Duration::from_secs(300), &[], &[], routes).await;
    let m = c.get("/v2/test/fixture/manifests/docker").await;
    assert_eq!(m.status, StatusCode::OK, "{}", m.text());
    assert_eq!(Digest::sha256_of(&m.body), c.fx.docker);
    for d in blob_digests(&m.body) {
        let b = c.get(&format!("/v2/test/fixture/blobs/{d}")).await;
        assert_eq!(Digest::sha256_of(&b.body), d);
    }
    // the same cache as the prefixed path
    assert_eq!(c.pull("docker").await, c.fx.docker);
    let seen = c.up.take();
    assert_eq!(count(&seen, "GET /v2/test/fixture/manifests/"), 1, "{seen:?}");
    // a name a distribution serves stays Berth's own
    let config = b"{}".to_vec();
    let cd = Digest::sha256_of(&config);
    let up = Req::new(Method::POST, &format!("/v2/mine/app/blobs/uploads/?digest={cd}"))
        .body(config)
        .send(&c.router)
        .await;
    assert_eq!(up.status, StatusCode::CREATED, "{}", up.text());
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{cd}","size":2}},"layers":[]}}"#
    );
    let put = Req::new(Method::PUT, "/v2/mine/app/manifests/v1")
        .headers(&[("content-type", "application/vnd.oci.image.manifest.v1+json")])
        .body(manifest.clone().into_bytes())
        .send(&c.router)
        .await;
    assert_eq!(put.status, StatusCode::CREATED, "{}", put.text());
    let own = c.get("/v2/mine/app/manifests/v1").await;
    assert_eq!(own.status, StatusCode::OK, "{}", own.text());
    assert_eq!(own.body, manifest.as_bytes());
    assert!(c.up.take().iter().all(|s| !s.contains("mine/app")));

    // containerd's hosts.toml mirrors: ?ns=<upstream host> picks the cache
    let routes = MirrorRoutes {
        default: None,
        by_ns: MirrorRoutes::parse_ns("upstream.example=cache").unwrap(),
    };
    let c = Cache::start_with(Backend::Memory, Duration::from_secs(300), &[], &[], routes).await;
    let m = c.get("/v2/test/fixture/manifests/docker?ns=upstream.example").await;
    assert_eq!(m.status, StatusCode::OK, "{}", m.text());
    assert_eq!(Digest::sha256_of(&m.body), c.fx.docker);
    let other = c.get("/v2/test/fixture/manifests/docker?ns=other.example").await;
    assert_eq!(other.code(), "NAME_UNKNOWN", "{}", other.text());
    let none = c.get("/v2/test/fixture/manifests/docker").await;
    assert_eq!(none.code(), "NAME_UNKNOWN", "{}", none.text());
}

/// The AWS registry function's way (`relay_blobs: false`): no blob bytes pass through it. A
/// miss goes to the upstream's redirect target when it has one, and the copy into the blob
/// store is queued once however many clients miss; an upstream serving bytes itself is
/// waited for up to `copy_wait`, then the client is asked to come back.
#[tokio::test]
async fn without_relaying_a_miss_redirects_or_waits_for_the_queued_copy() {
    let registry = RegistryConfig {
        relay_blobs: false,
        copy_wait: Duration::from_millis(300),
        ..Default::default()
    };
    let c = Arc::new(Cache::start_configured(Backend::Memory, registry, &[], &[]).await);
    let m = c.manifest("docker").await;
    assert_eq!(m.status, StatusCode::OK, "{}", m.text());
    let blobs = blob_digests(&m.body);
    let worker = c.app.worker();
    let jobs = c.jobs.as_ref().unwrap();

    // an upstream serving bytes itself: 503 with Retry-After until the worker copied it
    let first = c.blob(&blobs[0]).await;
    assert_eq!(first.status, StatusCode::SERVICE_UNAVAILABLE, "{}", first.text());
    assert_eq!(first.header("retry-after"), "5");
    assert_eq!(jobs.pending().await.unwrap(), 1);
    assert!(jobs.run_one(&*worker).await.unwrap().is_some());
    let again = c.blob(&blobs[0]).await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.text());
    assert_eq!(Digest::sha256_of(&again.body), blobs[0]);

    // an upstream redirecting blobs: every miss goes there, one copy is queued
    c.up.redirect_blobs.store(true, std::sync::atomic::Ordering::SeqCst);
    c.up.take();
    let layer = blobs[1].clone();
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let (c, layer) = (c.clone(), layer.clone());
        tasks.push(tokio::spawn(async move { c.blob(&layer).await }));
    }
    for t in tasks {
        let r = t.await.unwrap();
        assert_eq!(r.status, StatusCode::TEMPORARY_REDIRECT, "{}", r.text());
        assert!(r
            .header("location")
            .ends_with(&format!("/v2/test/fixture/blobs/{layer}")));
        assert!(
            !r.header("location").starts_with(&c.up.url),
            "sent to the upstream's target"
        );
    }
    assert_eq!(jobs.pending().await.unwrap(), 1, "one copy for 16 misses");
    assert!(jobs.run_one(&*worker).await.unwrap().is_some());
    let stored = c.blob(&layer).await;
    assert_eq!(stored.status, StatusCode::OK);
    assert_eq!(Digest::sha256_of(&stored.body), layer);
}

#[tokio::test]
async fn a_private_cache_needs_a_token_with_pull_and_a_public_one_does_not() {
    let scope = "repository:cache/test/fixture:pull";
    let path = "/v2/cache/test/fixture/manifests/docker";
    // private: anonymous callers get no pull, and nothing is asked upstream for them
    let c = Cache::start_authed(true).await;
    let anon = token(&c, None, scope).await;
    let r = get_with(&c, path, &anon).await;
    assert!(matches!(r.status.as_u16(), 401 | 403), "{}", r.text());
    assert_eq!(c.up.take(), Vec::<String>::new());
    let admin = token(&c, Some(("admin", "admin-pw")), scope).await;
    let r = get_with(&c, path, &admin).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let dist = c
        .app
        .store
        .distribution_by_base_path(&RepoName::parse("cache/test/fixture").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert!(dist.private, "the cached path is private like its cache");
    let anon = token(&c, None, scope).await;
    let r = get_with(&c, path, &anon).await;
    assert!(matches!(r.status.as_u16(), 401 | 403), "{}", r.text());

    // public: an anonymous token pulls through
    let c = Cache::start_authed(false).await;
    let anon = token(&c, None, scope).await;
    let r = get_with(&c, path, &anon).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(Digest::sha256_of(&r.body), c.fx.docker);
}

#[tokio::test]
async fn with_basic_auth_a_private_cache_needs_credentials_and_a_public_one_does_not() {
    let path = "/v2/cache/test/fixture/manifests/docker";
    let accept = ("accept", common::cache::ACCEPT_ALL);
    let c = Cache::start_auth_mode(berth::services::AuthMode::Basic, true).await;
    let r = Req::new(Method::GET, path).headers(&[accept]).send(&c.router).await;
    assert!(matches!(r.status.as_u16(), 401 | 403), "{}", r.text());
    assert_eq!(
        c.up.take(),
        Vec::<String>::new(),
        "nothing is asked upstream for a refused pull"
    );
    let r = Req::new(Method::GET, path)
        .headers(&[accept])
        .basic("admin", "admin-pw")
        .send(&c.router)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let c = Cache::start_auth_mode(berth::services::AuthMode::Basic, false).await;
    let r = Req::new(Method::GET, path).headers(&[accept]).send(&c.router).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(Digest::sha256_of(&r.body), c.fx.docker);
}
