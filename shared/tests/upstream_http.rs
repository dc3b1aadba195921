//! The reqwest upstream adapter against small in-process fake registries on 127.0.0.1:
//! token authentication, retries, rate limits, redirects, truncated bodies.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(feature = "upstream")]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use axum::routing::any;
use axum::Router;
use base64::Engine as _;
use berth::adapters::upstream_http::{HttpUpstream, HttpUpstreamFactory};
use berth::domain::Digest;
use berth::ports::{Upstream, UpstreamConfig, UpstreamError, UpstreamFactory};
use futures::StreamExt;
use http::{header, StatusCode};
use tokio::io::AsyncWriteExt;

fn cfg(addr: SocketAddr, name: &str) -> UpstreamConfig {
    UpstreamConfig {
        key: format!("test-{addr}-{name}"),
        url: format!("http://{addr}"),
        upstream_name: berth::domain::RepoName::parse(name).unwrap(),
        username: None,
        password: None,
        tls_validation: true,
        download_concurrency: None,
        rate_limit: None,
        max_retries: Some(3),
        total_timeout: None,
        connect_timeout: Some(Duration::from_secs(2)),
        read_timeout: Some(Duration::from_secs(5)),
        headers: vec![],
        proxy: None,
        tls: Default::default(),
    }
}

async fn listener() -> (tokio::net::TcpListener, SocketAddr) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let a = l.local_addr().unwrap();
    (l, a)
}

fn serve(l: tokio::net::TcpListener, router: Router) {
    tokio::spawn(async move {
        axum::serve(l, router).await.unwrap();
    });
}

fn reply(status: StatusCode, headers: &[(&str, String)], body: impl Into<Body>) -> Response {
    let mut b = Response::builder().status(status);
    for (k, v) in headers {
        b = b.header(*k, v);
    }
    b.body(body.into()).unwrap()
}

fn auth_of(req: &Request) -> String {
    req.headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned()
}

const MANIFEST: &str = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}"#;

fn manifest_reply() -> Response {
    reply(
        StatusCode::OK,
        &[
            ("content-type", "application/vnd.oci.image.manifest.v1+json".into()),
            (
                "docker-content-digest",
                Digest::sha256_of(MANIFEST.as_bytes()).to_string(),
            ),
        ],
        MANIFEST,
    )
}

/// A registry demanding a Bearer token from its own realm, which wants Basic credentials.
/// `valid` is the token the registry accepts now; every token request issues a new one.
struct TokenRegistry {
    addr: SocketAddr,
    token_requests: AtomicUsize,
    issued: AtomicUsize,
    valid: Mutex<String>,
    last_token_query: Mutex<String>,
    expires_in: u64,
}

async fn token_registry(expires_in: u64, use_access_token: bool) -> Arc<TokenRegistry> {
    let (l, addr) = listener().await;
    let st = Arc::new(TokenRegistry {
        addr,
        token_requests: AtomicUsize::new(0),
        issued: AtomicUsize::new(0),
        valid: Mutex::new(String::new()),
        last_token_query: Mutex::new(String::new()),
        expires_in,
    });
    let s = st.clone();
    let router = Router::new().fallback(any(move |req: Request| {
        let s = s.clone();
        async move {
            let path = req.uri().path().to_owned();
            if path == "/token" {
                s.token_requests.fetch_add(1, Ordering::SeqCst);
                *s.last_token_query.lock().unwrap() = req.uri().query().unwrap_or("").to_owned();
                let want = format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode("alice:s3cret")
                );
                if auth_of(&req) != want {
                    return reply(StatusCode::UNAUTHORIZED, &[], "{}");
                }
                let n = s.issued.fetch_add(1, Ordering::SeqCst) + 1;
                let tok = format!("tok{n}");
                *s.valid.lock().unwrap() = tok.clone();
                let key = if use_access_token { "access_token" } else { "token" };
                return reply(
                    StatusCode::OK,
                    &[("content-type", "application/json".into())],
                    format!(r#"{{"{key}":"{tok}","expires_in":{}}}"#, s.expires_in),
                );
            }
            let valid = s.valid.lock().unwrap().clone();
            if valid.is_empty() || auth_of(&req) != format!("Bearer {valid}") {
                let challenge = format!(
                    r#"Bearer realm="http://{}/token",service="fake-registry",scope="repository:team/app:pull""#,
                    s.addr
                );
                return reply(
                    StatusCode::UNAUTHORIZED,
                    &[("www-authenticate", challenge)],
                    r#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#,
                );
            }
            if path == "/v2/team/app/manifests/v1" {
                return manifest_reply();
            }
            reply(StatusCode::NOT_FOUND, &[], "")
        }
    }));
    serve(l, router);
    st
}

#[tokio::test]
async fn a_remote_s_headers_go_with_every_request() {
    // Given an upstream that answers only requests carrying the remote's header
    let (l, addr) = listener().await;
    serve(
        l,
        Router::new().fallback(|req: Request| async move {
            match req.headers().get("x-api-key").and_then(|v| v.to_str().ok()) {
                Some("k1") => manifest_reply(),
                _ => reply(StatusCode::FORBIDDEN, &[], ""),
            }
        }),
    );
    // When a remote with that header in Pulp's spelling asks for a manifest
    let mut remote = berth::store::Remote::new(
        "r",
        &format!("http://{addr}"),
        berth::domain::RepoName::parse("a").unwrap(),
    );
    remote.headers = Some(berth::store::RemoteHeaders::from_json(&serde_json::json!([{"X-Api-Key": "k1"}])).unwrap());
    let up = HttpUpstreamFactory::new().client(&remote.upstream_config()).unwrap();
    // Then it is sent
    assert_eq!(up.get_manifest("v1").await.unwrap().bytes, MANIFEST.as_bytes());
}

#[tokio::test]
async fn bearer_tokens_come_from_the_realm_with_basic_credentials_and_are_cached() {
    let reg = token_registry(300, false).await;
    let mut c = cfg(reg.addr, "team/app");
    c.username = Some("alice".into());
    c.password = Some("s3cret".into());
    let factory = HttpUpstreamFactory::new();
    let up = factory.client(&c).unwrap();
    let m = up.get_manifest("v1").await.unwrap();
    assert_eq!(m.bytes, MANIFEST.as_bytes());
    assert_eq!(m.digest_header, Some(Digest::sha256_of(MANIFEST.as_bytes())));
    let q = reg.last_token_query.lock().unwrap().clone();
    assert!(q.contains("service=fake-registry"), "{q}");
    assert!(q.contains("scope=repository%3Ateam%2Fapp%3Apull"), "{q}");
    // cached: the same client (and the factory's next client for this remote) asks no more
    up.head_manifest("v1").await.unwrap();
    factory.client(&c).unwrap().get_manifest("v1").await.unwrap();
    assert_eq!(reg.token_requests.load(Ordering::SeqCst), 1);
    assert!(matches!(
        up.get_manifest("v2").await,
        Err(UpstreamError::NotFound { .. })
    ));
}

#[tokio::test]
async fn a_refused_token_is_renewed_once_and_access_token_is_accepted() {
    let reg = token_registry(300, true).await;
    let mut c = cfg(reg.addr, "team/app");
    c.username = Some("alice".into());
    c.password = Some("s3cret".into());
    let up = HttpUpstream::new(c).unwrap();
    up.get_manifest("v1").await.unwrap();
    // the registry revokes the token: the next request gets 401, the client fetches a new one
    *reg.valid.lock().unwrap() = "revoked".into();
    reg.issued.store(10, Ordering::SeqCst);
    up.get_manifest("v1").await.unwrap();
    assert_eq!(reg.token_requests.load(Ordering::SeqCst), 2);
    assert_eq!(*reg.valid.lock().unwrap(), "tok11");
}

#[tokio::test]
async fn an_expiring_token_is_renewed_before_use() {
    let reg = token_registry(1, false).await;
    let mut c = cfg(reg.addr, "team/app");
    c.username = Some("alice".into());
    c.password = Some("s3cret".into());
    let up = HttpUpstream::new(c).unwrap();
    up.get_manifest("v1").await.unwrap();
    up.get_manifest("v1").await.unwrap();
    assert_eq!(reg.token_requests.load(Ordering::SeqCst), 1);
    // a token about to expire is fetched again before the request, not after a 401
    tokio::time::sleep(Duration::from_millis(800)).await;
    let issued = reg.issued.load(Ordering::SeqCst);
    up.get_manifest("v1").await.unwrap();
    assert_eq!(reg.token_requests.load(Ordering::SeqCst), 2);
    assert_eq!(reg.issued.load(Ordering::SeqCst), issued + 1);
}

#[tokio::test]
async fn wrong_credentials_fail_clearly() {
    let reg = token_registry(300, false).await;
    let mut c = cfg(reg.addr, "team/app");
    c.username = Some("alice".into());
    c.password = Some("wrong".into());
    let up = HttpUpstream::new(c).unwrap();
    let e = up.get_manifest("v1").await.unwrap_err();
    assert!(matches!(e, UpstreamError::Unauthorized { code: 401, .. }), "{e:?}");
    let msg = e.to_string();
    assert!(msg.contains(&format!("http://{}/token", reg.addr)), "{msg}");
    assert!(msg.contains("refused"), "{msg}");
    // anonymous: the token service refuses too
    let up = HttpUpstream::new(cfg(reg.addr, "team/app")).unwrap();
    assert!(matches!(
        up.get_manifest("v1").await,
        Err(UpstreamError::Unauthorized { .. })
    ));
}

#[tokio::test]
async fn basic_challenges_get_the_remote_credentials() {
    let (l, addr) = listener().await;
    let want = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("bob:pw"));
    serve(
        l,
        Router::new().fallback(any(move |req: Request| {
            let want = want.clone();
            async move {
                if auth_of(&req) != want {
                    return reply(
                        StatusCode::UNAUTHORIZED,
                        &[("www-authenticate", r#"Basic realm="registry""#.into())],
                        "",
                    );
                }
                manifest_reply()
            }
        })),
    );
    let mut c = cfg(addr, "x");
    c.username = Some("bob".into());
    c.password = Some("pw".into());
    HttpUpstream::new(c).unwrap().get_manifest("v1").await.unwrap();
    let e = HttpUpstream::new(cfg(addr, "x"))
        .unwrap()
        .get_manifest("v1")
        .await
        .unwrap_err();
    assert!(matches!(e, UpstreamError::Unauthorized { .. }), "{e:?}");
}

/// A registry whose `/v2/x/manifests/v1` answers `fail` times with `status` (and
/// `Retry-After: 1` on 429), then with the manifest.
async fn flaky(status: StatusCode, fail: usize) -> (SocketAddr, Arc<AtomicUsize>) {
    let (l, addr) = listener().await;
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    serve(
        l,
        Router::new().fallback(any(move || {
            let h = h.clone();
            async move {
                let n = h.fetch_add(1, Ordering::SeqCst);
                if n < fail {
                    let headers: Vec<(&str, String)> = if status == StatusCode::TOO_MANY_REQUESTS {
                        vec![("retry-after", "1".into())]
                    } else {
                        vec![]
                    };
                    return reply(status, &headers, "");
                }
                manifest_reply()
            }
        })),
    );
    (addr, hits)
}

#[tokio::test]
async fn server_errors_are_retried_with_backoff() {
    let (addr, hits) = flaky(StatusCode::SERVICE_UNAVAILABLE, 2).await;
    let up = HttpUpstream::new(cfg(addr, "x")).unwrap();
    up.get_manifest("v1").await.unwrap();
    assert_eq!(hits.load(Ordering::SeqCst), 3);

    // a storm longer than the retries: a clear error with URL and status
    let (addr, hits) = flaky(StatusCode::INTERNAL_SERVER_ERROR, 100).await;
    let mut c = cfg(addr, "x");
    c.max_retries = Some(2);
    let e = HttpUpstream::new(c).unwrap().get_manifest("v1").await.unwrap_err();
    assert_eq!(hits.load(Ordering::SeqCst), 3);
    let msg = e.to_string();
    assert!(matches!(e, UpstreamError::Status { code: 500, .. }), "{e:?}");
    assert!(msg.contains(&format!("http://{addr}/v2/x/manifests/v1")), "{msg}");
    assert!(msg.contains("500"), "{msg}");
}

#[tokio::test]
async fn too_many_requests_waits_for_retry_after() {
    let (addr, hits) = flaky(StatusCode::TOO_MANY_REQUESTS, 1).await;
    let up = HttpUpstream::new(cfg(addr, "x")).unwrap();
    let t0 = Instant::now();
    up.get_manifest("v1").await.unwrap();
    assert!(t0.elapsed() >= Duration::from_millis(950), "{:?}", t0.elapsed());
    assert_eq!(hits.load(Ordering::SeqCst), 2);

    let (addr, _) = flaky(StatusCode::TOO_MANY_REQUESTS, 100).await;
    let mut c = cfg(addr, "x");
    c.max_retries = Some(0);
    let e = HttpUpstream::new(c).unwrap().get_manifest("v1").await.unwrap_err();
    assert!(matches!(e, UpstreamError::TooManyRequests { .. }), "{e:?}");
}

#[tokio::test]
async fn connection_errors_are_retried_then_reported() {
    let (l, addr) = listener().await;
    drop(l);
    let mut c = cfg(addr, "x");
    c.max_retries = Some(1);
    let e = HttpUpstream::new(c).unwrap().tags_page(None).await.unwrap_err();
    assert!(matches!(e, UpstreamError::Transport { .. }), "{e:?}");
    assert!(e.to_string().contains(&addr.to_string()));
}

#[tokio::test]
async fn the_rate_limit_spaces_requests() {
    let (addr, hits) = flaky(StatusCode::OK, 0).await;
    let mut c = cfg(addr, "x");
    c.rate_limit = Some(10);
    let up = HttpUpstream::new(c).unwrap();
    let t0 = Instant::now();
    for _ in 0..6 {
        up.head_manifest("v1").await.unwrap();
    }
    assert!(t0.elapsed() >= Duration::from_millis(450), "{:?}", t0.elapsed());
    assert_eq!(hits.load(Ordering::SeqCst), 6);
}

#[tokio::test]
async fn download_concurrency_bounds_open_downloads() {
    let (l, addr) = listener().await;
    serve(
        l,
        Router::new().fallback(any(|| async { reply(StatusCode::OK, &[], "blob-bytes") })),
    );
    let mut c = cfg(addr, "x");
    c.download_concurrency = Some(1);
    let up = Arc::new(HttpUpstream::new(c).unwrap());
    let d = Digest::sha256_of(b"blob-bytes");
    let first = up.get_blob(&d).await.unwrap();
    // the first download holds the only slot until its body is dropped
    let up2 = up.clone();
    let d2 = d.clone();
    let second = tokio::spawn(async move { up2.get_blob(&d2).await.map(|_| ()) });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!second.is_finished());
    drop(first);
    tokio::time::timeout(Duration::from_secs(5), second)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn blob_redirects_to_another_host_carry_no_credentials() {
    // the "object store" on another port records what it was sent
    let (l2, store_addr) = listener().await;
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let s2 = seen.clone();
    serve(
        l2,
        Router::new().fallback(any(move |req: Request| {
            let s2 = s2.clone();
            async move {
                s2.lock().unwrap().push(auth_of(&req));
                reply(StatusCode::OK, &[], "layer-bytes")
            }
        })),
    );
    let reg = {
        let (l, addr) = listener().await;
        let issued = Arc::new(AtomicUsize::new(0));
        let router = Router::new().fallback(any(move |req: Request| {
            let issued = issued.clone();
            async move {
                if req.uri().path() == "/token" {
                    issued.fetch_add(1, Ordering::SeqCst);
                    return reply(StatusCode::OK, &[], r#"{"token":"secret-token"}"#);
                }
                if auth_of(&req) != "Bearer secret-token" {
                    let ch = format!(r#"Bearer realm="http://{addr}/token",service="s""#);
                    return reply(StatusCode::UNAUTHORIZED, &[("www-authenticate", ch)], "");
                }
                reply(
                    StatusCode::TEMPORARY_REDIRECT,
                    &[("location", format!("http://{store_addr}/bucket/blob?X-Signature=abc"))],
                    "",
                )
            }
        }));
        serve(l, router);
        addr
    };
    let up = HttpUpstream::new(cfg(reg, "x")).unwrap();
    let d = Digest::sha256_of(b"layer-bytes");
    let blob = up.get_blob(&d).await.unwrap();
    let bytes: Vec<u8> = blob
        .body
        .map(|c| c.unwrap().to_vec())
        .collect::<Vec<_>>()
        .await
        .concat();
    assert_eq!(bytes, b"layer-bytes");
    assert_eq!(
        *seen.lock().unwrap(),
        vec![String::new()],
        "no Authorization to the other host"
    );
}

#[tokio::test]
async fn a_truncated_body_is_an_error() {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = l.accept().await else { return };
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = tokio::io::AsyncReadExt::read(&mut sock, &mut buf).await;
                let _ = sock
                    .write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nContent-Type: application/octet-stream\r\n\r\n",
                    )
                    .await;
                let _ = sock.write_all(&[7u8; 50]).await;
                let _ = sock.shutdown().await;
            });
        }
    });
    let up = HttpUpstream::new(cfg(addr, "x")).unwrap();
    let blob = up.get_blob(&Digest::sha256_of(b"whatever")).await.unwrap();
    assert_eq!(blob.size, Some(100));
    let results: Vec<_> = blob.body.collect().await;
    assert!(
        results.iter().any(|r| r.is_err()),
        "the stream must fail, not end early"
    );
    // a small answer (a manifest) fails too
    let e = up.get_manifest("v1").await.unwrap_err();
    assert!(matches!(e, UpstreamError::Transport { .. }), "{e:?}");
}

#[tokio::test]
async fn tag_lists_follow_link_headers() {
    let (l, addr) = listener().await;
    serve(
        l,
        Router::new().fallback(any(|req: Request| async move {
            let q = req.uri().query().unwrap_or("").to_owned();
            if q.is_empty() {
                reply(
                    StatusCode::OK,
                    &[("link", r#"</v2/x/tags/list?n=2&last=b>; rel="next""#.into())],
                    r#"{"name":"x","tags":["a","b"]}"#,
                )
            } else {
                assert_eq!(q, "n=2&last=b");
                reply(StatusCode::OK, &[], r#"{"name":"x","tags":["c"]}"#)
            }
        })),
    );
    let up = HttpUpstream::new(cfg(addr, "x")).unwrap();
    let p1 = up.tags_page(None).await.unwrap();
    assert_eq!(p1.tags, vec!["a", "b"]);
    let next = p1.next.unwrap();
    assert_eq!(next, format!("http://{addr}/v2/x/tags/list?n=2&last=b"));
    let p2 = up.tags_page(Some(&next)).await.unwrap();
    assert_eq!((p2.tags, p2.next), (vec!["c".to_string()], None));
}

#[tokio::test]
async fn signatures_from_the_extension_api_and_a_lookaside() {
    let (l, addr) = listener().await;
    let d = Digest::sha256_of(b"m");
    let hex = d.hex().to_owned();
    serve(
        l,
        Router::new().fallback(any(move |req: Request| {
            let hex = hex.clone();
            async move {
                let path = req.uri().path().to_owned();
                if path == "/v2/" {
                    return reply(
                        StatusCode::UNAUTHORIZED,
                        &[("x-registry-supports-signatures", "1".into())],
                        "",
                    );
                }
                if path == format!("/extensions/v2/x/signatures/sha256:{hex}") {
                    let b64 = base64::engine::general_purpose::STANDARD.encode("sig-one");
                    return reply(
                        StatusCode::OK,
                        &[],
                        format!(
                            r#"{{"signatures":[{{"schemaVersion":2,"type":"atomic","name":"n1","content":"{b64}"}},{{"schemaVersion":2,"type":"other","content":"eA=="}}]}}"#
                        ),
                    );
                }
                if path == format!("/look/x@sha256={hex}/signature-1") {
                    return reply(StatusCode::OK, &[], "lookaside-1");
                }
                reply(StatusCode::NOT_FOUND, &[], "")
            }
        })),
    );
    let up = HttpUpstream::new(cfg(addr, "x")).unwrap();
    assert!(up.supports_signatures().await.unwrap());
    let sigs = up.extension_signatures(&d).await.unwrap();
    assert_eq!(sigs.len(), 1);
    assert_eq!(
        (sigs[0].name.as_deref(), &sigs[0].content[..]),
        (Some("n1"), &b"sig-one"[..])
    );
    let look = format!("http://{addr}/look");
    assert_eq!(
        up.lookaside_signature(&look, &d, 1).await.unwrap().unwrap(),
        &b"lookaside-1"[..]
    );
    assert_eq!(up.lookaside_signature(&look, &d, 2).await.unwrap(), None);
    // no referrers API here
    assert_eq!(up.referrers(&d).await.unwrap(), None);
}
