//! Pull-through caching end to end: a real `docker-registry` upstream behind a proxy that
//! counts every request it gets, the whole app (memory and embedded stores), and pulls
//! through `/v2/cache/<upstream path>`. The second pull asks upstream nothing; a tag past the
//! TTL costs one HEAD; an index's other platforms are never fetched; concurrent first pulls
//! make one upstream GET each; an upstream outage still serves what is cached.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(feature = "upstream")]

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use axum::routing::any;
use axum::Router;
use berth::app::{LocalApp, Settings};
use berth::domain::{ContentType, Digest, MirrorRoutes, RepoName};
use berth::services::RegistryConfig;
use berth::store::{Distribution, Policy, Remote, RemoteKind, RepositoryKind};
use common::http::{Req, Resp};
use common::{DockerRegistry, Fixture};
use http::{Method, StatusCode};

const ACCEPT_ALL: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";

/// A proxy in front of the upstream that records `METHOD /path` of every request, and can
/// pretend the upstream is down.
#[derive(Clone)]
struct Counter {
    seen: Arc<Mutex<Vec<String>>>,
    down: Arc<std::sync::atomic::AtomicBool>,
    /// Answer blob GETs with a redirect to the registry itself (another origin), as
    /// registries on a CDN or object store do.
    redirect_blobs: Arc<std::sync::atomic::AtomicBool>,
    url: String,
}

impl Counter {
    async fn start(target: String) -> Self {
        let seen: Arc<Mutex<Vec<String>>> = Arc::default();
        let down: Arc<std::sync::atomic::AtomicBool> = Arc::default();
        let redirect_blobs: Arc<std::sync::atomic::AtomicBool> = Arc::default();
        let http = reqwest::Client::new();
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", l.local_addr().unwrap());
        let (s, d, rb) = (seen.clone(), down.clone(), redirect_blobs.clone());
        let router = Router::new().fallback(any(move |req: Request| {
            let (seen, down, http, target) = (s.clone(), d.clone(), http.clone(), target.clone());
            let redirect = rb.load(std::sync::atomic::Ordering::SeqCst);
            async move {
                let path = req.uri().path_and_query().map(|p| p.to_string()).unwrap_or_default();
                if path != "/v2/" {
                    seen.lock()
                        .unwrap()
                        .push(format!("{} {}", req.method(), req.uri().path()));
                }
                if down.load(std::sync::atomic::Ordering::SeqCst) {
                    return Response::builder().status(503).body(Body::empty()).unwrap();
                }
                if redirect && req.method() == Method::GET && path.contains("/blobs/sha256:") {
                    return Response::builder()
                        .status(307)
                        .header("location", format!("{target}{path}"))
                        .body(Body::empty())
                        .unwrap();
                }
                let mut out = http.request(req.method().clone(), format!("{target}{path}"));
                for (k, v) in req.headers() {
                    if k != http::header::HOST {
                        out = out.header(k, v);
                    }
                }
                let r = out.send().await.unwrap();
                let mut b = Response::builder().status(r.status());
                for (k, v) in r.headers() {
                    b = b.header(k, v);
                }
                b.body(Body::from_stream(r.bytes_stream())).unwrap()
            }
        }));
        tokio::spawn(async move { axum::serve(l, router).await.unwrap() });
        Counter {
            seen,
            down,
            redirect_blobs,
            url,
        }
    }

    /// The requests since the last call.
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.seen.lock().unwrap())
    }
}

struct Cache {
    app: berth::app::App,
    /// The in-process job queue (memory and embedded stores).
    jobs: Option<berth::adapters::local_jobs::LocalJobQueue>,
    router: Router,
    up: Counter,
    fx: Fixture,
    _reg: DockerRegistry,
    _dir: Option<tempfile::TempDir>,
}

#[derive(Clone, Copy, Debug)]
enum Backend {
    Memory,
    Embedded,
    /// S3, DynamoDB and SQS of the moto server at `BERTH_TEST_MOTO`.
    #[cfg(feature = "moto")]
    Moto,
}

#[cfg(not(feature = "moto"))]
const BACKENDS: [Backend; 2] = [Backend::Memory, Backend::Embedded];
#[cfg(feature = "moto")]
const BACKENDS: [Backend; 3] = [Backend::Memory, Backend::Embedded, Backend::Moto];

impl Cache {
    /// An upstream holding the fixture at `test/fixture`, and a Berth caching it at `cache/`.
    async fn start(backend: Backend, ttl: Duration, includes: &[&str], excludes: &[&str]) -> Self {
        Self::start_with(backend, ttl, includes, excludes, MirrorRoutes::default()).await
    }

    async fn start_with(
        backend: Backend,
        ttl: Duration,
        includes: &[&str],
        excludes: &[&str],
        mirrors: MirrorRoutes,
    ) -> Self {
        let registry = RegistryConfig {
            pull_through_ttl: ttl,
            mirrors,
            ..Default::default()
        };
        Self::start_configured(backend, registry, includes, excludes).await
    }

    async fn start_configured(
        backend: Backend,
        registry: RegistryConfig,
        includes: &[&str],
        excludes: &[&str],
    ) -> Self {
        Self::start_full(backend, registry, includes, excludes, None, false).await
    }

    /// With token auth on and the cache private or public.
    async fn start_authed(private: bool) -> Self {
        let key = berth::services::tokens::TokenKey::generate();
        let tokens = berth::services::tokens::Tokens::new(key, Duration::from_secs(300));
        let auth = berth::services::AuthMode::Token(Arc::new(tokens));
        let c = Self::start_full(
            Backend::Memory,
            RegistryConfig::default(),
            &[],
            &[],
            Some(auth),
            private,
        )
        .await;
        c.app.ensure_accounts(Some("admin-pw"), &[]).await.unwrap();
        c
    }

    async fn start_full(
        backend: Backend,
        registry: RegistryConfig,
        includes: &[&str],
        excludes: &[&str],
        auth: Option<berth::services::AuthMode>,
        private: bool,
    ) -> Self {
        let reg = DockerRegistry::start().await;
        let fx = common::fill(&reg, "test/fixture").await;
        let up = Counter::start(reg.base()).await;
        let mut settings = Settings {
            registry,
            ..Default::default()
        };
        if let Some(a) = auth {
            settings.auth = a;
        }
        let (app, jobs, dir) = match backend {
            Backend::Memory => {
                let l = LocalApp::in_memory_with(settings);
                (l.app, Some(l.jobs), None)
            }
            Backend::Embedded => {
                let dir = tempfile::tempdir().unwrap();
                let l = LocalApp::embedded(dir.path(), settings).await.unwrap();
                (l.app, Some(l.jobs), Some(dir))
            }
            #[cfg(feature = "moto")]
            Backend::Moto => {
                let sdk =
                    berth::adapters::aws::sdk_config_for(&common::moto::endpoint(), "us-east-1", "testing", "testing")
                        .await;
                let aws = berth::app::AwsApp::connect(&sdk, &common::moto::settings(true), settings)
                    .await
                    .unwrap();
                (aws.app, None, None)
            }
        };
        let store = &app.store;
        let mut remote = Remote::new("hub", &up.url, RepoName::parse("unused").unwrap());
        remote.kind = RemoteKind::PullThrough;
        remote.policy = Policy::OnDemand;
        remote.max_retries = Some(0);
        let list = |v: &[&str]| (!v.is_empty()).then(|| v.iter().map(|s| s.to_string()).collect());
        remote.includes = list(includes);
        remote.excludes = list(excludes);
        store.create_remote(&remote).await.unwrap();
        let mut dist = Distribution::new("cache", RepoName::parse("cache").unwrap(), None);
        dist.pull_through = true;
        dist.remote = Some(remote.id);
        dist.private = private;
        store.create_distribution(&dist).await.unwrap();
        up.take();
        Cache {
            router: app.router(),
            app,
            jobs,
            up,
            fx,
            _reg: reg,
            _dir: dir,
        }
    }

    async fn get(&self, path: &str) -> Resp {
        Req::new(Method::GET, path)
            .headers(&[("accept", ACCEPT_ALL)])
            .send(&self.router)
            .await
    }

    async fn manifest(&self, reference: &str) -> Resp {
        self.get(&format!("/v2/cache/test/fixture/manifests/{reference}")).await
    }

    async fn blob(&self, d: &Digest) -> Resp {
        self.get(&format!("/v2/cache/test/fixture/blobs/{d}")).await
    }

    /// A blob's bytes, following a redirect to the blob store (S3).
    async fn blob_bytes(&self, d: &Digest) -> Vec<u8> {
        let b = self.blob(d).await;
        if b.status == StatusCode::TEMPORARY_REDIRECT {
            let r = reqwest::get(b.header("location")).await.unwrap();
            assert!(r.status().is_success(), "{d}: {}", r.status());
            return r.bytes().await.unwrap().to_vec();
        }
        assert_eq!(b.status, StatusCode::OK, "{d}: {}", b.text());
        b.body
    }

    /// Pulls `tag` (an image) and its config and layers, checking every byte.
    async fn pull(&self, tag: &str) -> Digest {
        let m = self.manifest(tag).await;
        assert_eq!(m.status, StatusCode::OK, "{}", m.text());
        let digest = Digest::sha256_of(&m.body);
        assert_eq!(m.header("docker-content-digest"), digest.as_str());
        for d in blob_digests(&m.body) {
            assert_eq!(Digest::sha256_of(&self.blob_bytes(&d).await), d);
        }
        digest
    }

    async fn present(&self) -> BTreeMap<ContentType, u64> {
        let store = &self.app.store;
        let repo = store.repository_by_name("cache/test/fixture").await.unwrap().unwrap();
        let v = store.version(&repo, repo.latest_version).await.unwrap().unwrap();
        v.content_summary.present
    }
}

fn blob_digests(manifest: &[u8]) -> Vec<Digest> {
    let v: serde_json::Value = serde_json::from_slice(manifest).unwrap();
    let mut out = Vec::new();
    if let Some(c) = v["config"]["digest"].as_str() {
        out.push(Digest::parse(c).unwrap());
    }
    for l in v["layers"].as_array().into_iter().flatten() {
        out.push(Digest::parse(l["digest"].as_str().unwrap()).unwrap());
    }
    out
}

fn count(seen: &[String], prefix: &str) -> usize {
    seen.iter().filter(|s| s.starts_with(prefix)).count()
}

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
        c._reg.push_manifest("test/fixture", "docker", &mt, &rc).await;
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
async fn a_client_that_stops_reading_does_not_hold_up_the_others() {
    use futures::StreamExt as _;
    use tower::ServiceExt as _;
    let c = Cache::start(Backend::Memory, Duration::from_secs(300), &[], &[]).await;
    // a 32 MB layer: far more than the chunks in flight to one client
    let layer = common::noise(7, 32 << 20);
    let ld = c._reg.push_blob("test/big", &layer).await;
    let config = br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let cd = c._reg.push_blob("test/big", config).await;
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": ld, "size": layer.len()}],
    });
    c._reg
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

/// A token for `scope` from `/token`, anonymous or with Basic credentials.
async fn token(c: &Cache, creds: Option<(&str, &str)>, scope: &str) -> String {
    let mut r =
        Req::new(Method::GET, &format!("/token?service=reg.example&scope={scope}")).header("host", "reg.example");
    if let Some((u, p)) = creds {
        r = r.basic(u, p);
    }
    let r = r.send(&c.router).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    r.json()["token"].as_str().unwrap().to_owned()
}

async fn get_with(c: &Cache, path: &str, token: &str) -> Resp {
    Req::new(Method::GET, path)
        .header("host", "reg.example")
        .headers(&[("accept", ACCEPT_ALL), ("authorization", &format!("Bearer {token}"))])
        .send(&c.router)
        .await
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
