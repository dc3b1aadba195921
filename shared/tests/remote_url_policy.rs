//! The remote URL policy end to end: the management API refusing remotes whose URLs point at
//! refused addresses, and the reqwest upstream client refusing them when it connects (names
//! through its resolver, IP literals, redirect targets, token realms, a whole sync), against
//! small fake registries on 127.0.0.1.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(feature = "upstream")]

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use axum::routing::any;
use axum::Router;
use berth::adapters::upstream_http::HttpUpstreamFactory;
use berth::app::{LocalApp, Settings};
use berth::domain::{Digest, PrivateNetworks, UrlPolicy};
use berth::ports::{UpstreamConfig, UpstreamError, UpstreamFactory};
use berth::store::{Remote, Repository, RepositoryKind, TaskState};
use common::http::Req;
use http::{Method, StatusCode};
use serde_json::{json, Value};

const ALLOW: UrlPolicy = UrlPolicy {
    private_networks: PrivateNetworks::Allow,
};
const DENY: UrlPolicy = UrlPolicy {
    private_networks: PrivateNetworks::Deny,
};

// ---- the management API ----------------------------------------------------------------------

const PW: &str = "test-password";
const REMOTES: &str = "/pulp/api/v3/remotes/container/container/";

struct Api {
    local: LocalApp,
    router: Router,
}

impl Api {
    async fn new(policy: UrlPolicy) -> Api {
        let local = LocalApp::in_memory_with(Settings {
            remote_urls: policy,
            ..Default::default()
        });
        local.app.users.ensure_admin(Some(PW)).await.unwrap();
        Api {
            router: local.app.router(),
            local,
        }
    }

    async fn call(&self, method: Method, uri: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut r = Req::new(method, uri)
            .basic("admin", PW)
            .header("content-type", "application/json");
        if let Some(v) = body {
            r = r.body(serde_json::to_vec(&v).unwrap());
        }
        let r = r.send(&self.router).await;
        (r.status, r.json())
    }

    async fn create(&self, name: &str, extra: Value) -> (StatusCode, Value) {
        let mut body = json!({"name": name, "upstream_name": "team/app"});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        self.call(Method::POST, REMOTES, Some(body)).await
    }
}

/// Asserts a `400` whose only field error is on `field`, and returns its message.
fn field_error(status: StatusCode, body: &Value, field: &str) -> String {
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let obj = body.as_object().unwrap();
    assert_eq!(obj.keys().collect::<Vec<_>>(), vec![field], "{body}");
    body[field][0].as_str().unwrap().to_owned()
}

/// Refused whatever the setting (metadata, link-local, unspecified, multicast, broadcast, in
/// the spellings the URL parser accepts), with the address the message must name.
const ALWAYS_REFUSED: [(&str, &str); 13] = [
    ("http://169.254.169.254/", "169.254.169.254"),
    ("http://169.254.169.254/latest/meta-data/iam/", "169.254.169.254"),
    ("http://2852039166/", "169.254.169.254"),
    ("http://0xa9.0xfe.0xa9.0xfe/", "169.254.169.254"),
    ("http://[fd00:ec2::254]/", "fd00:ec2::254"),
    ("http://[::ffff:169.254.169.254]/", "::ffff:169.254.169.254"),
    ("http://[64:ff9b::a9fe:a9fe]/", "64:ff9b::a9fe:a9fe"),
    ("http://100.100.100.200/", "100.100.100.200"),
    ("http://192.0.0.192/", "192.0.0.192"),
    ("http://0.0.0.0:5000/", "0.0.0.0"),
    ("http://[fe80::1]/", "fe80::1"),
    ("http://224.0.0.1/", "224.0.0.1"),
    ("http://metadata.google.internal/", "metadata.google.internal"),
];

/// Loopback and private addresses: allowed by default, refused with `deny`.
const PRIVATE: [&str; 9] = [
    "http://127.0.0.1:22",
    "http://2130706433/",
    "http://0x7f.1/",
    "http://localhost:5000",
    "http://[::1]:5000",
    "http://10.0.0.5:5000",
    "http://192.168.1.10",
    "http://100.64.0.1",
    "http://[fd12:3456::1]/",
];

#[tokio::test]
async fn create_and_update_refuse_remotes_that_point_at_refused_addresses() {
    for policy in [ALLOW, DENY] {
        let api = Api::new(policy).await;
        for (i, (url, addr)) in ALWAYS_REFUSED.iter().enumerate() {
            // When a remote is created with a refused url, Then it is a field error on url
            let (s, b) = api.create(&format!("bad{i}"), json!({"url": url})).await;
            let m = field_error(s, &b, "url");
            assert!(m.contains(addr) && m.contains("always refuses"), "{url}: {m}");
            // and with a refused proxy_url or sigstore, on that field
            let (s, b) = api
                .create(
                    &format!("proxy{i}"),
                    json!({"url": "https://registry.example", "proxy_url": url}),
                )
                .await;
            assert!(field_error(s, &b, "proxy_url").contains(addr));
            let (s, b) = api
                .create(
                    &format!("sig{i}"),
                    json!({"url": "https://registry.example", "sigstore": url}),
                )
                .await;
            assert!(field_error(s, &b, "sigstore").contains(addr));
        }
        // nothing was created
        let (_, list) = api.call(Method::GET, REMOTES, None).await;
        assert_eq!(list["count"], 0, "{list}");

        // Given a remote with a public URL
        let (s, r) = api.create("good", json!({"url": "https://registry.example"})).await;
        assert_eq!(s, StatusCode::CREATED, "{r}");
        let href = r["pulp_href"].as_str().unwrap().to_owned();
        for (url, addr) in ALWAYS_REFUSED {
            // When an update points it at a refused address, Then it is refused and unchanged
            let (s, b) = api.call(Method::PATCH, &href, Some(json!({"url": url}))).await;
            assert!(field_error(s, &b, "url").contains(addr), "{url}");
            let (s, b) = api.call(Method::PATCH, &href, Some(json!({"proxy_url": url}))).await;
            assert!(field_error(s, &b, "proxy_url").contains(addr), "{url}");
            let full = json!({"name": "good", "upstream_name": "team/app", "url": url});
            let (s, b) = api.call(Method::PUT, &href, Some(full)).await;
            field_error(s, &b, "url");
        }
        let (_, r) = api.call(Method::GET, &href, None).await;
        assert_eq!(r["url"], "https://registry.example");
        assert_eq!(r["proxy_url"], Value::Null);
        // names are not resolved when a remote is saved
        let (s, b) = api
            .call(
                Method::PATCH,
                &href,
                Some(json!({"url": "http://registry.internal.example:5000"})),
            )
            .await;
        assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    }
}

#[tokio::test]
async fn private_addresses_are_accepted_by_default_and_refused_with_deny() {
    let allow = Api::new(ALLOW).await;
    let deny = Api::new(DENY).await;
    for (i, url) in PRIVATE.iter().enumerate() {
        let (s, b) = allow.create(&format!("p{i}"), json!({"url": url})).await;
        assert_eq!(s, StatusCode::CREATED, "{url}: {b}");
        let (s, b) = deny.create(&format!("p{i}"), json!({"url": url})).await;
        let m = field_error(s, &b, "url");
        assert!(m.contains("BERTH_REMOTE_PRIVATE_NETWORKS=deny"), "{url}: {m}");
        let (s, b) = deny
            .create(
                &format!("proxy{i}"),
                json!({"url": "https://registry.example", "proxy_url": url}),
            )
            .await;
        field_error(s, &b, "proxy_url");
    }
    // the parser's reading is what is judged: these spellings are 127.0.0.1
    for url in ["http://2130706433/", "http://0x7f.1/"] {
        let (s, b) = deny.create("x", json!({"url": url})).await;
        assert!(
            field_error(s, &b, "url").starts_with("127.0.0.1 is a loopback address"),
            "{b}"
        );
    }
    // with deny, public addresses and names still are accepted
    let (s, b) = deny.create("pub", json!({"url": "https://registry-1.docker.io"})).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let (s, b) = deny
        .create("name", json!({"url": "http://registry.internal.example"}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    // an update that leaves a URL alone does not judge it again
    let (_, b) = allow.create("kept", json!({"url": "http://10.0.0.7:5000"})).await;
    let id = b["pulp_href"].as_str().unwrap().rsplit('/').nth(1).unwrap().to_owned();
    let kept = allow
        .local
        .app
        .store
        .remote(id.parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    deny.local.app.store.create_remote(&kept).await.unwrap();
    let (s, b) = deny
        .call(
            Method::PATCH,
            &format!("{REMOTES}{id}/"),
            Some(json!({"name": "renamed"})),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
}

// ---- the upstream client ---------------------------------------------------------------------

const MANIFEST: &str = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}"#;

fn cfg(url: String) -> UpstreamConfig {
    UpstreamConfig {
        key: format!("test-{url}"),
        url,
        upstream_name: berth::domain::RepoName::parse("x").unwrap(),
        username: None,
        password: None,
        tls_validation: true,
        download_concurrency: None,
        // many retries: a refusal that were retried would take far longer than the tests allow
        max_retries: Some(10),
        rate_limit: None,
        total_timeout: None,
        connect_timeout: Some(Duration::from_secs(20)),
        read_timeout: Some(Duration::from_secs(20)),
        headers: vec![],
        proxy: None,
        tls: Default::default(),
    }
}

fn reply(status: StatusCode, headers: &[(&str, String)], body: impl Into<Body>) -> Response {
    let mut b = Response::builder().status(status);
    for (k, v) in headers {
        b = b.header(*k, v);
    }
    b.body(body.into()).unwrap()
}

/// A registry with one image `x:v1` (a manifest and its `{}` config), counting requests.
/// `/v2/x/manifests/redirect` answers `302` to `redirect`, `/v2/x/manifests/token` a Bearer
/// challenge whose realm is `realm`.
async fn registry(redirect: String, realm: String) -> (SocketAddr, Arc<AtomicUsize>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    let config = Digest::sha256_of(b"{}");
    let router = Router::new().fallback(any(move |req: Request| {
        let (h, redirect, realm) = (h.clone(), redirect.clone(), realm.clone());
        async move {
            h.fetch_add(1, Ordering::SeqCst);
            let json = |ct: &str, body: String| reply(StatusCode::OK, &[("content-type", ct.into())], body);
            match req.uri().path() {
                "/v2/" => json("application/json", "{}".into()),
                "/v2/x/tags/list" => json("application/json", r#"{"name":"x","tags":["v1"]}"#.into()),
                "/v2/x/manifests/v1" => reply(
                    StatusCode::OK,
                    &[
                        ("content-type", "application/vnd.oci.image.manifest.v1+json".into()),
                        (
                            "docker-content-digest",
                            Digest::sha256_of(MANIFEST.as_bytes()).to_string(),
                        ),
                    ],
                    MANIFEST,
                ),
                "/v2/x/manifests/redirect" => reply(StatusCode::FOUND, &[("location", redirect)], ""),
                "/v2/x/manifests/token" => reply(
                    StatusCode::UNAUTHORIZED,
                    &[("www-authenticate", format!(r#"Bearer realm="{realm}",service="s""#))],
                    "",
                ),
                p if p == format!("/v2/x/blobs/{config}") => json("application/octet-stream", "{}".into()),
                p if p.starts_with("/v2/x/blobs/") => {
                    reply(StatusCode::TEMPORARY_REDIRECT, &[("location", redirect)], "")
                }
                _ => reply(StatusCode::NOT_FOUND, &[], ""),
            }
        }
    }));
    tokio::spawn(async move { axum::serve(l, router).await.unwrap() });
    (addr, hits)
}

/// A listener on 127.0.0.1 that only counts the connections it accepts.
async fn counting_listener() -> (u16, Arc<AtomicUsize>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let n = Arc::new(AtomicUsize::new(0));
    let c = n.clone();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            c.fetch_add(1, Ordering::SeqCst);
            drop(s);
        }
    });
    (port, n)
}

fn transport_message(e: UpstreamError) -> String {
    match e {
        UpstreamError::Transport { message, .. } => message,
        e => panic!("not a transport error: {e:?}"),
    }
}

#[tokio::test]
async fn a_name_is_judged_by_the_addresses_it_resolves_to() {
    let (addr, hits) = registry(String::new(), String::new()).await;
    let url = format!("http://localhost:{}", addr.port());

    // Given the default policy, When the upstream is reached by name, Then it answers
    let up = HttpUpstreamFactory::with_policy(ALLOW)
        .client(&cfg(url.clone()))
        .unwrap();
    let m = up.get_manifest("v1").await.unwrap();
    assert_eq!(m.bytes, MANIFEST.as_bytes());
    let before = hits.load(Ordering::SeqCst);
    assert!(before > 0);

    // Given deny, Then the client is built (the name is not judged by itself) but every
    // connection is refused by the resolver at once, naming the address and the policy
    let up = HttpUpstreamFactory::with_policy(DENY).client(&cfg(url)).unwrap();
    let started = Instant::now();
    let e = up.get_manifest("v1").await.unwrap_err();
    let took = started.elapsed();
    let text = e.to_string();
    let m = transport_message(e);
    assert!(m.starts_with("localhost resolves only to refused addresses: "), "{m}");
    assert!(
        m.contains("127.0.0.1 is a loopback address") || m.contains("::1 is a loopback address"),
        "{m}"
    );
    assert!(m.contains("BERTH_REMOTE_PRIVATE_NETWORKS=deny"), "{m}");
    assert!(
        text.starts_with(&format!(
            "cannot reach http://localhost:{}/v2/x/manifests/v1",
            addr.port()
        )),
        "{text}"
    );
    assert!(took < Duration::from_secs(5), "not retried: {took:?}");
    assert!(up.tags_page(None).await.is_err());
    assert_eq!(hits.load(Ordering::SeqCst), before, "no request reached the upstream");

    // an IP-literal URL is judged when the client is built
    let e = HttpUpstreamFactory::with_policy(DENY)
        .client(&cfg(format!("http://{addr}")))
        .err()
        .unwrap();
    assert!(
        matches!(e, UpstreamError::Config(ref m) if m.contains("127.0.0.1 is a loopback address")),
        "{e:?}"
    );
}

#[tokio::test]
async fn redirects_to_refused_addresses_are_not_followed() {
    let (port, connections) = counting_listener().await;
    // 0.0.0.0 reaches this machine: the redirect would land on the counting listener
    let (addr, _) = registry(format!("http://0.0.0.0:{port}/stolen"), String::new()).await;
    let up = HttpUpstreamFactory::with_policy(ALLOW)
        .client(&cfg(format!("http://{addr}")))
        .unwrap();
    let e = up.get_manifest("redirect").await.unwrap_err();
    assert!(
        e.to_string()
            .starts_with(&format!("cannot reach http://0.0.0.0:{port}/stolen: ")),
        "{e}"
    );
    let m = transport_message(e);
    assert!(
        m.contains(&format!("redirected there by http://{addr}/v2/x/manifests/redirect")),
        "{m}"
    );
    assert!(
        m.contains("0.0.0.0 is an unspecified address, which the remote URL policy always refuses"),
        "{m}"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(connections.load(Ordering::SeqCst), 0, "never connected");
    // (it would have: the same address, connected to directly, reaches the listener)
    drop(tokio::net::TcpStream::connect(("0.0.0.0", port)).await.unwrap());
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(connections.load(Ordering::SeqCst), 1);

    // a blob redirected to the instance metadata service fails at once, naming it
    let (addr, _) = registry("http://169.254.169.254/latest/meta-data/".into(), String::new()).await;
    let up = HttpUpstreamFactory::with_policy(ALLOW)
        .client(&cfg(format!("http://{addr}")))
        .unwrap();
    let started = Instant::now();
    let e = up.get_blob(&Digest::sha256_of(b"layer")).await.err().unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    let m = transport_message(e);
    assert!(
        m.contains("169.254.169.254 is a cloud metadata service address, which the remote URL policy always refuses"),
        "{m}"
    );
}

#[tokio::test]
async fn a_token_realm_at_a_refused_address_is_not_asked() {
    let (port, connections) = counting_listener().await;
    let (addr, _) = registry(String::new(), format!("http://0.0.0.0:{port}/token")).await;
    let up = HttpUpstreamFactory::with_policy(ALLOW)
        .client(&cfg(format!("http://{addr}")))
        .unwrap();
    let m = transport_message(up.get_manifest("token").await.unwrap_err());
    assert!(
        m.starts_with(&format!(
            "the token realm of http://{addr}/: 0.0.0.0 is an unspecified address"
        )),
        "{m}"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(connections.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_sync_from_a_refused_address_fails_with_the_reason() {
    let (addr, hits) = registry(String::new(), String::new()).await;
    let url = format!("http://localhost:{}", addr.port());
    for (policy, ok) in [(ALLOW, true), (DENY, false)] {
        // Given a remote saved earlier (as under another setting) and a repository
        let local = LocalApp::in_memory_with(Settings {
            remote_urls: policy,
            ..Default::default()
        });
        let app = local.app.clone();
        let remote = Remote::new("up", &url, berth::domain::RepoName::parse("x").unwrap());
        app.store.create_remote(&remote).await.unwrap();
        let repo = app
            .manage
            .create_repository(Repository::new("mirror", RepositoryKind::Mirror))
            .await
            .unwrap();
        // When it syncs
        let before = hits.load(Ordering::SeqCst);
        let t = app.manage.sync(&repo, remote.id, false, false).await.unwrap();
        local.jobs.run_one(&*app.worker()).await.unwrap().unwrap();
        let t = app.store.task(t.id).await.unwrap().unwrap();
        if ok {
            assert_eq!(t.state, TaskState::Completed, "{:?}", t.error);
            assert_eq!(app.store.repository(repo.id).await.unwrap().unwrap().latest_version, 1);
        } else {
            // Then it fails, saying which address the policy refused, and reached nothing
            assert_eq!(t.state, TaskState::Failed);
            let e = t.error.clone().unwrap_or_default();
            assert!(e.contains("localhost resolves only to refused addresses"), "{e}");
            assert!(e.contains("BERTH_REMOTE_PRIVATE_NETWORKS=deny"), "{e}");
            assert_eq!(hits.load(Ordering::SeqCst), before);
            assert_eq!(app.store.repository(repo.id).await.unwrap().unwrap().latest_version, 0);
        }
    }
}
