//! Pull-through caching against a real `docker-registry` upstream behind a proxy that counts
//! every request it gets (and can pretend to be down, or redirect blob GETs elsewhere), with the
//! whole app on memory, redb or moto caching it at `/v2/cache/<upstream path>`.

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
use berth::store::{Distribution, Policy, Remote, RemoteKind};
use http::{Method, StatusCode};

use super::http::{Req, Resp};
use super::{DockerRegistry, Fixture};

pub const ACCEPT_ALL: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";

/// A proxy in front of the upstream that records `METHOD /path` of every request, and can
/// pretend the upstream is down.
#[derive(Clone)]
pub struct Counter {
    seen: Arc<Mutex<Vec<String>>>,
    pub down: Arc<std::sync::atomic::AtomicBool>,
    /// Answer blob GETs with a redirect to the registry itself (another origin), as
    /// registries on a CDN or object store do.
    pub redirect_blobs: Arc<std::sync::atomic::AtomicBool>,
    pub url: String,
}

impl Counter {
    pub async fn start(target: String) -> Self {
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
    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.seen.lock().unwrap())
    }
}

pub struct Cache {
    pub app: berth::app::App,
    /// The in-process job queue (memory and embedded stores).
    pub jobs: Option<berth::adapters::local_jobs::LocalJobQueue>,
    pub router: Router,
    pub up: Counter,
    pub fx: Fixture,
    pub reg: DockerRegistry,
    _dir: Option<tempfile::TempDir>,
}

#[derive(Clone, Copy, Debug)]
pub enum Backend {
    Memory,
    Embedded,
    /// S3, DynamoDB and SQS of the moto server at `BERTH_TEST_MOTO`.
    #[cfg(feature = "moto")]
    Moto,
}

#[cfg(not(feature = "moto"))]
pub const BACKENDS: [Backend; 2] = [Backend::Memory, Backend::Embedded];
#[cfg(feature = "moto")]
pub const BACKENDS: [Backend; 3] = [Backend::Memory, Backend::Embedded, Backend::Moto];

impl Cache {
    /// An upstream holding the fixture at `test/fixture`, and a Berth caching it at `cache/`.
    pub async fn start(backend: Backend, ttl: Duration, includes: &[&str], excludes: &[&str]) -> Self {
        Self::start_with(backend, ttl, includes, excludes, MirrorRoutes::default()).await
    }

    pub async fn start_with(
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

    pub async fn start_configured(
        backend: Backend,
        registry: RegistryConfig,
        includes: &[&str],
        excludes: &[&str],
    ) -> Self {
        Self::start_full(backend, registry, includes, excludes, None, false).await
    }

    /// With token auth on and the cache private or public.
    pub async fn start_authed(private: bool) -> Self {
        let key = berth::services::tokens::TokenKey::generate();
        let tokens = berth::services::tokens::Tokens::new(key, Duration::from_secs(300));
        Self::start_auth_mode(berth::services::AuthMode::Token(Arc::new(tokens)), private).await
    }

    /// With the given auth mode (Basic: `BERTH_TOKEN_AUTH=off`) and the cache private or public.
    pub async fn start_auth_mode(auth: berth::services::AuthMode, private: bool) -> Self {
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
        let fx = super::fill(&reg, "test/fixture").await;
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
                    berth::adapters::aws::sdk_config_for(&super::moto::endpoint(), "us-east-1", "testing", "testing")
                        .await;
                let aws = berth::app::AwsApp::connect(&sdk, &super::moto::settings(true), settings)
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
            reg,
            _dir: dir,
        }
    }

    pub async fn get(&self, path: &str) -> Resp {
        Req::new(Method::GET, path)
            .headers(&[("accept", ACCEPT_ALL)])
            .send(&self.router)
            .await
    }

    pub async fn manifest(&self, reference: &str) -> Resp {
        self.get(&format!("/v2/cache/test/fixture/manifests/{reference}")).await
    }

    pub async fn blob(&self, d: &Digest) -> Resp {
        self.get(&format!("/v2/cache/test/fixture/blobs/{d}")).await
    }

    /// A blob's bytes, following a redirect to the blob store (S3).
    pub async fn blob_bytes(&self, d: &Digest) -> Vec<u8> {
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
    pub async fn pull(&self, tag: &str) -> Digest {
        let m = self.manifest(tag).await;
        assert_eq!(m.status, StatusCode::OK, "{}", m.text());
        let digest = Digest::sha256_of(&m.body);
        assert_eq!(m.header("docker-content-digest"), digest.as_str());
        for d in blob_digests(&m.body) {
            assert_eq!(Digest::sha256_of(&self.blob_bytes(&d).await), d);
        }
        digest
    }

    pub async fn present(&self) -> BTreeMap<ContentType, u64> {
        let store = &self.app.store;
        let repo = store.repository_by_name("cache/test/fixture").await.unwrap().unwrap();
        let v = store.version(&repo, repo.latest_version).await.unwrap().unwrap();
        v.content_summary.present
    }
}

pub fn blob_digests(manifest: &[u8]) -> Vec<Digest> {
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

pub fn count(seen: &[String], prefix: &str) -> usize {
    seen.iter().filter(|s| s.starts_with(prefix)).count()
}

/// A token for `scope` from `/token`, anonymous or with Basic credentials.
pub async fn token(c: &Cache, creds: Option<(&str, &str)>, scope: &str) -> String {
    let mut r =
        Req::new(Method::GET, &format!("/token?service=reg.example&scope={scope}")).header("host", "reg.example");
    if let Some((u, p)) = creds {
        r = r.basic(u, p);
    }
    let r = r.send(&c.router).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    r.json()["token"].as_str().unwrap().to_owned()
}

pub async fn get_with(c: &Cache, path: &str, token: &str) -> Resp {
    Req::new(Method::GET, path)
        .header("host", "reg.example")
        .headers(&[("accept", ACCEPT_ALL), ("authorization", &format!("Bearer {token}"))])
        .send(&c.router)
        .await
}
