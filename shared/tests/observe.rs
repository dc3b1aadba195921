//! Metrics and the access log through the routers. On every store, a push, a pull and a sync
//! from a real `docker-registry` move the counters and gauges of `GET /metrics` by exactly what
//! they did; `/metrics` refuses without its token and speaks the Prometheus text format; the
//! access log names route templates, users and repositories, never raw paths or query strings,
//! with token authentication on and off.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(feature = "upstream")]

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use berth::app::{LocalApp, Settings};
use berth::config::Secret;
use berth::domain::{media, Digest};
use berth::services::tokens::{TokenKey, Tokens};
use berth::services::AuthMode;
use common::http::{Req, Resp};
use common::pulp::{Backend, On, DISTS, PW, REMOTES, REPOS};
use http::{Method, StatusCode};
use serde_json::{json, Value};

const TOKEN: &str = "metrics-secret";

fn with_metrics(settings: Settings) -> Settings {
    Settings {
        metrics_token: Some(Secret::new(TOKEN)),
        ..settings
    }
}

/// One scrape: each sample's value by its name and labels as written (`name{a="b"}`).
struct Scrape(BTreeMap<String, f64>);

impl Scrape {
    fn get(&self, series: &str) -> f64 {
        self.0.get(series).copied().unwrap_or(0.0)
    }

    /// The sum over the samples of `name` whose labels hold every one of `having`.
    fn sum(&self, name: &str, having: &[&str]) -> f64 {
        self.0
            .iter()
            .filter(|(k, _)| k.starts_with(&format!("{name}{{")) || k.as_str() == name)
            .filter(|(k, _)| having.iter().all(|h| k.contains(h)))
            .map(|(_, v)| v)
            .sum()
    }
}

/// Parses the text format, failing on any line that is neither a `# HELP` / `# TYPE` comment
/// nor a `name{label="value",…} number` sample.
fn parse(text: &str) -> Scrape {
    let label = r#"[a-zA-Z_][a-zA-Z0-9_]*="(?:\\.|[^"\\])*""#;
    let sample = regex::Regex::new(&format!(
        r"^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{{{label}(?:,{label})*\}})?) (-?[0-9]+(?:\.[0-9]+)?(?:e[-+]?[0-9]+)?|NaN|[+-]Inf)$"
    ))
    .unwrap();
    let comment = regex::Regex::new(r"^# (HELP|TYPE) [a-zA-Z_:][a-zA-Z0-9_:]* .+$").unwrap();
    let mut all = BTreeMap::new();
    for line in text.lines() {
        if comment.is_match(line) {
            continue;
        }
        let c = sample
            .captures(line)
            .unwrap_or_else(|| panic!("not a sample: {line:?}"));
        let value: f64 = c[2].replace("+Inf", "inf").parse().unwrap();
        assert!(all.insert(c[1].to_owned(), value).is_none(), "twice: {line}");
    }
    Scrape(all)
}

async fn scrape(router: &axum::Router) -> Scrape {
    let r = Req::get("/metrics")
        .header("authorization", &format!("Bearer {TOKEN}"))
        .send(router)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.header("content-type"), "text/plain; version=0.0.4; charset=utf-8");
    parse(std::str::from_utf8(&r.body).unwrap())
}

fn requests(route: &str, method: &str, status: u16) -> String {
    format!("berth_http_requests_total{{route=\"{route}\",method=\"{method}\",status=\"{status}\"}}")
}

fn by_route(name: &str, route: &str, method: &str) -> String {
    format!("{name}{{route=\"{route}\",method=\"{method}\"}}")
}

fn typed(name: &str, ty: &str) -> String {
    format!("{name}{{type=\"{ty}\"}}")
}

const BLOB: &str = "/v2/{name}/blobs/{digest}";
const MANIFEST: &str = "/v2/{name}/manifests/{reference}";
const UPLOADS: &str = "/v2/{name}/blobs/uploads/";

/// The config `push_image` makes for `layer`.
fn config_of(layer: &[u8]) -> Vec<u8> {
    format!(
        r#"{{"architecture":"amd64","os":"linux","layer":"{}"}}"#,
        Digest::sha256_of(layer)
    )
    .into_bytes()
}

/// What a pull got: the manifest, the blobs' bytes, and how many of them came through Berth (on
/// S3 blob GETs answer `307` to a presigned URL and the client fetches the bytes there).
struct Pulled {
    manifest: Vec<u8>,
    bytes: u64,
    through_berth: u64,
}

/// Pulls `name:tag`: the manifest, then its config and layers.
async fn pull(t: &On, name: &str, tag: &str) -> Pulled {
    let m = Req::get(&format!("/v2/{name}/manifests/{tag}"))
        .header("accept", media::OCI_MANIFEST)
        .send(&t.router)
        .await;
    assert_eq!(m.status, StatusCode::OK, "{}", m.text());
    let v = m.json();
    let mut digests = vec![v["config"]["digest"].as_str().unwrap().to_owned()];
    digests.extend(
        v["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["digest"].as_str().unwrap().to_owned()),
    );
    let (mut bytes, mut through_berth) = (0, 0);
    for d in digests {
        let b = Req::get(&format!("/v2/{name}/blobs/{d}")).send(&t.router).await;
        let body = match b.status {
            StatusCode::OK => {
                through_berth += b.body.len() as u64;
                b.body
            }
            StatusCode::TEMPORARY_REDIRECT => {
                let r = reqwest::get(b.header("location")).await.unwrap();
                assert!(r.status().is_success());
                r.bytes().await.unwrap().to_vec()
            }
            _ => panic!("{}", b.text()),
        };
        assert_eq!(Digest::sha256_of(&body).to_string(), d);
        bytes += body.len() as u64;
    }
    Pulled {
        manifest: m.body,
        bytes,
        through_berth,
    }
}

/// Given a store, When an image is pushed and pulled, Then `/metrics` moved by exactly those
/// requests, their bytes and the content stored; When a repository is synced from a real
/// `docker-registry` and pulled, Then one completed sync run, the upstream's requests and the
/// synced content are counted.
async fn a_push_a_pull_and_a_sync_move_the_figures_by_what_they_did(backend: Backend) {
    let t = on(backend).await;
    // blob GETs answer 307 to S3 on the AWS adapters, 200 with the bytes elsewhere
    let (blob_status, via_s3) = match backend {
        #[cfg(feature = "moto")]
        Backend::Aws => (307, true),
        _ => (200, false),
    };
    let before = scrape(&t.router).await;
    // a push: two monolithic blob uploads and a manifest
    let layer = common::noise(11, 40_000);
    let config = config_of(&layer);
    t.push_image("obs/app", "v1", &layer).await;
    let pulled = pull(&t, "obs/app", "v1").await;
    let manifest = pulled.manifest;
    assert_eq!(pulled.bytes, (config.len() + layer.len()) as u64);
    let after = scrape(&t.router).await;
    let moved = |series: &str| after.get(series) - before.get(series);

    assert_eq!(moved(&requests(UPLOADS, "POST", 201)), 2.0);
    assert_eq!(moved(&requests(MANIFEST, "PUT", 201)), 1.0);
    assert_eq!(moved(&requests(MANIFEST, "GET", 200)), 1.0);
    assert_eq!(moved(&requests(BLOB, "GET", blob_status)), 2.0);
    // the first scrape is counted once it was answered; nothing else happened
    assert_eq!(moved(&requests("/metrics", "GET", 200)), 1.0);
    let all = |s: &Scrape| s.sum("berth_http_requests_total", &[]);
    assert_eq!(all(&after) - all(&before), 7.0);
    let histogram = |s: &Scrape| s.get(&by_route("berth_http_request_duration_seconds_count", MANIFEST, "GET"));
    assert_eq!(histogram(&after) - histogram(&before), 1.0);
    // bytes: the blobs' and the manifest's, in and out
    let pushed = (config.len() + layer.len()) as f64;
    assert_eq!(
        moved(&by_route("berth_http_request_bytes_total", UPLOADS, "POST")),
        pushed
    );
    assert_eq!(
        moved(&by_route("berth_http_request_bytes_total", MANIFEST, "PUT")),
        manifest.len() as f64
    );
    let served = if via_s3 { 0.0 } else { pushed };
    assert_eq!(pulled.through_berth as f64, served);
    assert_eq!(moved(&by_route("berth_http_response_bytes_total", BLOB, "GET")), served);
    assert_eq!(
        moved(&by_route("berth_http_response_bytes_total", MANIFEST, "GET")),
        manifest.len() as f64
    );
    // what the registry holds
    assert_eq!(moved(&typed("berth_content_units", "blob")), 2.0);
    assert_eq!(moved(&typed("berth_content_units", "manifest")), 1.0);
    assert_eq!(moved(&typed("berth_content_units", "tag")), 1.0);
    assert_eq!(moved(&typed("berth_content_bytes", "blob")), pushed);
    assert_eq!(moved(&typed("berth_content_bytes", "manifest")), manifest.len() as f64);
    assert_eq!(after.get("berth_job_queue_depth"), 0.0);
    assert_eq!(after.get("berth_build_info{version=\"0.1.0\"}"), 1.0);
    assert!(after.get("berth_process_start_time_seconds") > 1.6e9);

    // a sync from a real docker-registry of one image, then a pull of it
    let reg = common::DockerRegistry::start().await;
    let up_layer = common::noise(12, 30_000);
    let up_config = br#"{"architecture":"arm64","os":"linux"}"#.to_vec();
    for b in [&up_layer, &up_config] {
        reg.push_blob("up/img", b).await;
    }
    let up_manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": media::OCI_MANIFEST,
        "config": {"mediaType": media::OCI_IMAGE_CONFIG, "digest": Digest::sha256_of(&up_config), "size": up_config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": Digest::sha256_of(&up_layer), "size": up_layer.len()}],
    }))
    .unwrap();
    reg.push_manifest("up/img", "1.0", media::OCI_MANIFEST, &up_manifest)
        .await;
    let r = t
        .post(
            REMOTES,
            json!({"name": "up", "url": reg.base(), "upstream_name": "up/img", "policy": "immediate"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let remote = r.json()["pulp_href"].as_str().unwrap().to_owned();
    let r = t.post(REPOS, json!({"name": "mirror"})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let repo = r.json()["pulp_href"].as_str().unwrap().to_owned();
    let before = scrape(&t.router).await;
    let r = t.post(&format!("{repo}sync/"), json!({"remote": remote})).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    let task = r.json()["task"].as_str().unwrap().to_owned();
    assert!(t.local.jobs.run_one(&*t.app.worker()).await.unwrap().is_some());
    assert_eq!(t.get(&task).await.json()["state"], "completed");
    let r = t
        .post(
            DISTS,
            json!({"name": "mirror", "base_path": "mirror", "repository": repo}),
        )
        .await;
    assert_eq!(t.task(r).await["state"], "completed");
    let pulled = pull(&t, "mirror", "1.0").await;
    assert_eq!(pulled.manifest, up_manifest);
    let after = scrape(&t.router).await;
    let moved = |series: &str| after.get(series) - before.get(series);
    assert_eq!(moved("berth_sync_runs_total{outcome=\"completed\"}"), 1.0);
    assert_eq!(
        after.sum("berth_sync_runs_total", &[]) - before.sum("berth_sync_runs_total", &[]),
        1.0
    );
    assert_eq!(moved("berth_sync_duration_seconds_count{outcome=\"completed\"}"), 1.0);
    // the upstream's requests: at least its tags, manifest and two blobs, all answered
    let host = format!("host=\"{}\"", reg.addr);
    let upstream = |s: &Scrape, class: &str| s.sum("berth_upstream_requests_total", &[&host, class]);
    assert!(upstream(&after, "2xx") - upstream(&before, "2xx") >= 4.0);
    assert_eq!(upstream(&after, "5xx") + upstream(&after, "error"), 0.0);
    assert_eq!(
        after.sum("berth_upstream_requests_total", &[]),
        after.sum("berth_upstream_requests_total", &[&host]),
        "no other upstream host"
    );
    let synced = (up_config.len() + up_layer.len()) as f64;
    assert_eq!(pulled.bytes as f64, synced);
    assert_eq!(moved(&typed("berth_content_units", "blob")), 2.0);
    assert_eq!(moved(&typed("berth_content_units", "manifest")), 1.0);
    assert_eq!(moved(&typed("berth_content_units", "tag")), 1.0);
    assert_eq!(moved(&typed("berth_content_bytes", "blob")), synced);
    assert_eq!(
        moved(&typed("berth_content_bytes", "manifest")),
        up_manifest.len() as f64
    );
    let served = if via_s3 { 0.0 } else { synced };
    assert_eq!(moved(&by_route("berth_http_response_bytes_total", BLOB, "GET")), served);
    assert_eq!(after.get("berth_job_queue_depth"), 0.0);
    // no repository or remote name in any label
    let text = after.0.keys().cloned().collect::<Vec<_>>().join("\n");
    for name in ["obs/app", "mirror", "up/img", "\"up\""] {
        assert!(!text.contains(name), "{name} in the metrics");
    }
}

async fn on(backend: Backend) -> On {
    common::pulp::T::on_with(backend, with_metrics(Settings::default())).await
}

mod memory {
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_push_a_pull_and_a_sync_move_the_figures_by_what_they_did() {
        super::a_push_a_pull_and_a_sync_move_the_figures_by_what_they_did(super::Backend::Memory).await
    }
}

mod embedded {
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_push_a_pull_and_a_sync_move_the_figures_by_what_they_did() {
        super::a_push_a_pull_and_a_sync_move_the_figures_by_what_they_did(super::Backend::Embedded).await
    }
}

#[cfg(feature = "moto")]
mod aws {
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_push_a_pull_and_a_sync_move_the_figures_by_what_they_did() {
        super::a_push_a_pull_and_a_sync_move_the_figures_by_what_they_did(super::Backend::Aws).await
    }
}

#[tokio::test]
async fn metrics_are_off_without_a_token_and_refused_without_the_right_one() {
    // Given no token: 404, whoever asks
    let off = LocalApp::in_memory().app.router();
    let r = Req::get("/metrics").send(&off).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = Req::get("/metrics")
        .header("authorization", "Bearer x")
        .send(&off)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    // Given a token: 401 without it or with another, Basic credentials included
    let app = LocalApp::in_memory_with(with_metrics(Settings::default())).app;
    app.ensure_accounts(Some(PW), &[]).await.unwrap();
    let router = app.router();
    for auth in [
        None,
        Some("Bearer wrong".to_owned()),
        Some(common::http::basic("admin", PW)),
    ] {
        let r = Req::get("/metrics").auth(auth.as_deref()).send(&router).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{auth:?}");
        assert_eq!(r.challenge(), "Bearer realm=\"berth-metrics\"");
        assert!(!r.text().contains("berth_"), "no figures");
    }
    let s = scrape(&router).await;
    // the refusals were counted, under the route's template
    assert_eq!(s.get(&requests("/metrics", "GET", 401)), 3.0);
    assert!(s.0.keys().any(|k| k.starts_with("berth_process_resident_memory_bytes")));
}

/// Every access event of this test binary, as JSON lines (one subscriber for the whole binary:
/// tests run in parallel, each picks its own events by their request ids).
fn captured() -> &'static Mutex<Vec<u8>> {
    static LINES: std::sync::OnceLock<&'static Mutex<Vec<u8>>> = std::sync::OnceLock::new();
    LINES.get_or_init(|| {
        let lines: &'static Mutex<Vec<u8>> = Box::leak(Box::default());
        let subscriber = tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_env_filter("berth::access=info")
            .with_writer(move || Captured(lines))
            .finish();
        tracing::subscriber::set_global_default(subscriber).unwrap();
        lines
    })
}

struct Captured(&'static Mutex<Vec<u8>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The access events of the requests with `ids`, in order; every line must be one JSON object.
fn access_events(ids: &[String]) -> Vec<Value> {
    let text = String::from_utf8(captured().lock().unwrap().clone()).unwrap();
    text.lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .inspect(|v| assert!(v.is_object()))
        .filter(|v| v["target"] == "berth::access")
        .filter(|v| ids.iter().any(|id| v["request_id"] == id.as_str()))
        .collect()
}

/// Sends requests, keeping the id each answer carries.
#[derive(Default)]
struct Client(Mutex<Vec<String>>);

impl Client {
    async fn send(&self, router: &axum::Router, req: Req) -> Resp {
        let r = req.send(router).await;
        let id = r.header("x-request-id").to_owned();
        assert!(!id.is_empty(), "every answer carries its request id");
        self.0.lock().unwrap().push(id);
        r
    }

    fn ids(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

/// Given token authentication on (and off), When clients log in, push, pull and use the
/// management API, Then each request leaves one access event naming its route template, user,
/// repository and request id, and no raw path, query or secret.
async fn requests_leave_one_access_event_each(token_auth: bool) {
    captured();
    let auth = if token_auth {
        AuthMode::Token(Arc::new(Tokens::new(TokenKey::generate(), Duration::from_secs(300))))
    } else {
        AuthMode::Basic
    };
    let app = LocalApp::in_memory_with(Settings {
        auth,
        ..Default::default()
    })
    .app;
    app.ensure_accounts(Some(PW), &[]).await.unwrap();
    let router = app.router();
    let c = Client::default();
    let admin = if token_auth {
        let r = c
            .send(
                &router,
                Req::get("/token?scope=repository:logs/app:pull,push").basic("admin", PW),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK);
        format!("Bearer {}", r.json()["token"].as_str().unwrap())
    } else {
        common::http::basic("admin", PW)
    };
    // an anonymous ping, a push (blob and manifest) and a pull, one with the client's id
    let own = format!("client-id-{token_auth}");
    let r = c.send(&router, Req::get("/v2/").header("x-request-id", &own)).await;
    assert_eq!(
        (r.status, r.header("x-request-id")),
        (StatusCode::UNAUTHORIZED, own.as_str())
    );
    let blob = b"a layer".to_vec();
    let d = Digest::sha256_of(&blob);
    let r = c
        .send(
            &router,
            Req::new(Method::POST, &format!("/v2/logs/app/blobs/uploads/?digest={d}"))
                .header("authorization", &admin)
                .body(blob.clone()),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let generated = r.header("x-request-id").to_owned();
    assert_eq!(generated.len(), 32, "a fresh id: {generated}");
    let r = c
        .send(
            &router,
            Req::get(&format!("/v2/logs/app/blobs/{d}"))
                .header("authorization", &admin)
                .header("x-request-id", "bad id\"}"),
        )
        .await;
    assert_eq!((r.status, r.body.clone()), (StatusCode::OK, blob.clone()));
    assert_ne!(r.header("x-request-id"), "bad id\"}");
    let r = c
        .send(
            &router,
            Req::get("/pulp/api/v3/repositories/container/container/?limit=5").basic("admin", PW),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = c.send(&router, Req::get("/nowhere/secret-path?token=x")).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    let events = access_events(&c.ids());
    let want: Vec<(&str, &str, u16, &str, Option<&str>)> = [
        token_auth.then_some(("GET", "/token", 200, "admin", None)),
        Some(("GET", "/v2/", 401, "anonymous", None)),
        Some(("POST", UPLOADS, 201, "admin", Some("logs/app"))),
        Some(("GET", BLOB, 200, "admin", Some("logs/app"))),
        Some((
            "GET",
            "/pulp/api/v3/repositories/container/container/",
            200,
            "admin",
            None,
        )),
        Some(("GET", "unmatched", 404, "anonymous", None)),
    ]
    .into_iter()
    .flatten()
    .collect();
    let got: Vec<_> = events
        .iter()
        .map(|e| {
            (
                e["method"].as_str().unwrap(),
                e["route"].as_str().unwrap(),
                e["status"].as_u64().unwrap() as u16,
                e["user"].as_str().unwrap(),
                e["repository"].as_str(),
            )
        })
        .collect();
    assert_eq!(got, want);
    for e in &events {
        assert_eq!(e["level"], "INFO");
        assert!(e["latency_ms"].as_f64().unwrap() >= 0.0);
        let line = e.to_string();
        for secret in [PW, "sha256:", "?", "secret-path", "token=", "Bearer"] {
            assert!(!line.contains(secret), "{secret:?} in {line}");
        }
    }
    let find = |route: &str| events.iter().find(|e| e["route"] == route).unwrap();
    assert_eq!(find("/v2/")["request_id"], own.as_str());
    assert_eq!(find(UPLOADS)["request_id"], generated.as_str());
    assert_eq!(
        (find(UPLOADS)["bytes_in"].as_u64(), find(BLOB)["bytes_out"].as_u64()),
        (Some(blob.len() as u64), Some(blob.len() as u64))
    );
    assert_eq!(
        find("/pulp/api/v3/repositories/container/container/")["operation"],
        "repositories_container_container_list"
    );
}

#[tokio::test]
async fn requests_leave_one_access_event_each_with_token_auth() {
    requests_leave_one_access_event_each(true).await
}

#[tokio::test]
async fn requests_leave_one_access_event_each_with_basic_auth() {
    requests_leave_one_access_event_each(false).await
}
