//! A remote's proxy and TLS settings in the reqwest upstream client, against in-process
//! servers on 127.0.0.1: a small HTTP forward proxy (absolute-form requests and `CONNECT`
//! tunnels, counted, `Proxy-Authorization` checked), fake registries over HTTP and over HTTPS
//! with a CA made in the test and a required client certificate, a whole sync through the
//! proxy, and the management API refusing TLS settings that cannot work.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(feature = "upstream")]

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use axum::routing::any;
use axum::Router;
use base64::Engine as _;
use berth::adapters::upstream_http::HttpUpstream;
use berth::app::{LocalApp, Settings};
use berth::domain::{Digest, PrivateNetworks, UrlPolicy};
use berth::ports::{Upstream, UpstreamConfig, UpstreamError, UpstreamProxy, UpstreamTls};
use berth::store::{Remote, Repository, RepositoryKind, TaskState};
use common::http::Req;
use http::{header, Method, StatusCode};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const MANIFEST: &str = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}"#;
const CONFIG: &[u8] = b"{}";
const TOKEN: &str = "t0k";
const PROXY_USER: &str = "proxy user";
const PROXY_PASS: &str = "p@ss:w/rd";

fn cfg(url: String) -> UpstreamConfig {
    UpstreamConfig {
        key: format!("test-{url}"),
        url,
        upstream_name: berth::domain::RepoName::parse("team/app").unwrap(),
        username: None,
        password: None,
        tls_validation: true,
        download_concurrency: None,
        rate_limit: None,
        max_retries: Some(2),
        total_timeout: None,
        connect_timeout: Some(Duration::from_secs(5)),
        read_timeout: Some(Duration::from_secs(10)),
        headers: vec![],
        proxy: None,
        tls: UpstreamTls::default(),
    }
}

fn with_proxy(mut c: UpstreamConfig, url: String, credentials: Option<(&str, &str)>) -> UpstreamConfig {
    c.proxy = Some(UpstreamProxy {
        url,
        username: credentials.map(|(u, _)| u.to_owned()),
        password: credentials.map(|(_, p)| p.to_owned()),
    });
    c
}

async fn listener() -> (TcpListener, SocketAddr) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let a = l.local_addr().unwrap();
    (l, a)
}

fn reply(status: StatusCode, headers: &[(&str, String)], body: impl Into<Body>) -> Response {
    let mut b = Response::builder().status(status);
    for (k, v) in headers {
        b = b.header(*k, v);
    }
    b.body(body.into()).unwrap()
}

// ---- the fake upstream -------------------------------------------------------------------------

/// What the fake upstream answered: every path asked, on the registry and on the other host.
#[derive(Clone, Default)]
struct Hits {
    registry: Arc<Mutex<Vec<String>>>,
    other: Arc<Mutex<Vec<String>>>,
}

impl Hits {
    fn registry(&self) -> Vec<String> {
        self.registry.lock().unwrap().clone()
    }
    fn other(&self) -> Vec<String> {
        self.other.lock().unwrap().clone()
    }
}

/// The registry's routes: token authentication with its realm on `other`, a tag, a manifest,
/// and blobs redirected to storage on `other`.
fn registry_router(other: String, hits: Hits) -> Router {
    Router::new().fallback(any(move |req: Request| {
        let (other, hits) = (other.clone(), hits.clone());
        async move {
            let path = req.uri().path().to_owned();
            hits.registry.lock().unwrap().push(path.clone());
            let authorized = req
                .headers()
                .get(header::AUTHORIZATION)
                .is_some_and(|v| v.as_bytes() == format!("Bearer {TOKEN}").as_bytes());
            if !authorized {
                let challenge =
                    format!(r#"Bearer realm="{other}/token",service="fake",scope="repository:team/app:pull""#);
                return reply(StatusCode::UNAUTHORIZED, &[("www-authenticate", challenge)], "");
            }
            let digest = Digest::sha256_of(MANIFEST.as_bytes()).to_string();
            match path.as_str() {
                "/v2/" => reply(StatusCode::OK, &[], "{}"),
                "/v2/team/app/tags/list" => reply(
                    StatusCode::OK,
                    &[("content-type", "application/json".into())],
                    r#"{"name":"team/app","tags":["v1"]}"#,
                ),
                p if p == "/v2/team/app/manifests/v1" || p == format!("/v2/team/app/manifests/{digest}") => reply(
                    StatusCode::OK,
                    &[
                        ("content-type", "application/vnd.oci.image.manifest.v1+json".into()),
                        ("docker-content-digest", digest),
                    ],
                    MANIFEST,
                ),
                p if p.starts_with("/v2/team/app/blobs/") => {
                    let d = p.trim_start_matches("/v2/team/app/blobs/");
                    let to = format!("{other}/storage/{d}?X-Amz-Signature=s3cret");
                    reply(StatusCode::TEMPORARY_REDIRECT, &[("location", to)], "")
                }
                _ => reply(StatusCode::NOT_FOUND, &[], ""),
            }
        }
    }))
}

/// The other host: the token realm, blob storage and a sigstore lookaside.
fn other_router(hits: Hits) -> Router {
    Router::new().fallback(any(move |req: Request| {
        let hits = hits.clone();
        async move {
            let path = req.uri().path().to_owned();
            hits.other.lock().unwrap().push(path.clone());
            let config = Digest::sha256_of(CONFIG).to_string();
            match path.as_str() {
                "/token" => reply(
                    StatusCode::OK,
                    &[],
                    format!(r#"{{"token":"{TOKEN}","expires_in":300}}"#),
                ),
                p if p == format!("/storage/{config}") => reply(StatusCode::OK, &[], CONFIG),
                p if p.starts_with("/sigs/team/app@sha256=") && p.ends_with("/signature-1") => {
                    reply(StatusCode::OK, &[], "a signature")
                }
                _ => reply(StatusCode::NOT_FOUND, &[], ""),
            }
        }
    }))
}

/// A fake upstream over plain HTTP: the registry's base URL, the other host's, and the hits.
async fn upstream() -> (String, String, Hits) {
    let hits = Hits::default();
    let (rl, ra) = listener().await;
    let (ol, oa) = listener().await;
    let other = format!("http://{oa}");
    let (r, o) = (registry_router(other.clone(), hits.clone()), other_router(hits.clone()));
    tokio::spawn(async move { axum::serve(rl, r).await.unwrap() });
    tokio::spawn(async move { axum::serve(ol, o).await.unwrap() });
    (format!("http://{ra}"), other, hits)
}

// ---- the forward proxy -------------------------------------------------------------------------

/// A forward proxy on 127.0.0.1 that forwards to loopback addresses only.
struct ForwardProxy {
    addr: SocketAddr,
    /// The request lines it forwarded (`GET http://…/path HTTP/1.1`, `CONNECT host:port …`).
    forwarded: Arc<Mutex<Vec<String>>>,
    /// Requests it refused with `407`.
    refused: Arc<AtomicUsize>,
}

impl ForwardProxy {
    /// A proxy that wants `credentials` (Basic), or none.
    async fn start(credentials: Option<(&str, &str)>) -> Self {
        let expected = credentials.map(|(u, p)| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
            )
        });
        let (l, addr) = listener().await;
        let forwarded = Arc::new(Mutex::new(Vec::new()));
        let refused = Arc::new(AtomicUsize::new(0));
        let (f, r) = (forwarded.clone(), refused.clone());
        tokio::spawn(async move {
            while let Ok((conn, _)) = l.accept().await {
                tokio::spawn(proxy_connection(conn, expected.clone(), f.clone(), r.clone()));
            }
        });
        ForwardProxy {
            addr,
            forwarded,
            refused,
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn forwarded(&self) -> Vec<String> {
        self.forwarded.lock().unwrap().clone()
    }
}

/// Serves one client connection: one request (the upstream is told `connection: close`, so
/// the client opens a new connection for the next one) or one `CONNECT` tunnel.
async fn proxy_connection(
    mut client: TcpStream,
    expected: Option<String>,
    forwarded: Arc<Mutex<Vec<String>>>,
    refused: Arc<AtomicUsize>,
) {
    let mut buf = Vec::new();
    let head_end = loop {
        let mut chunk = [0u8; 4096];
        let n = match client.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > 64 * 1024 {
            return;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let rest = buf[head_end..].to_vec();
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or_default().to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let given = headers
        .iter()
        .find(|(k, _)| k == "proxy-authorization")
        .map(|(_, v)| v.clone());
    if expected.is_some() && given != expected {
        refused.fetch_add(1, Ordering::SeqCst);
        let _ = client
            .write_all(
                b"HTTP/1.1 407 Proxy Authentication Required\r\nproxy-authenticate: Basic realm=\"test\"\r\n\
                  content-length: 0\r\nconnection: close\r\n\r\n",
            )
            .await;
        return;
    }
    let mut parts = request_line.split(' ');
    let (method, target, version) = (
        parts.next().unwrap_or_default().to_owned(),
        parts.next().unwrap_or_default().to_owned(),
        parts.next().unwrap_or("HTTP/1.1").to_owned(),
    );
    forwarded.lock().unwrap().push(request_line.clone());
    let bad = |why: &'static str| format!("HTTP/1.1 {why}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
    if method == "CONNECT" {
        let Some(dest) = target.parse::<SocketAddr>().ok().filter(|a| a.ip().is_loopback()) else {
            let _ = client.write_all(bad("403 Forbidden").as_bytes()).await;
            return;
        };
        let Ok(mut up) = TcpStream::connect(dest).await else {
            let _ = client.write_all(bad("502 Bad Gateway").as_bytes()).await;
            return;
        };
        let _ = client.write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n").await;
        let _ = up.write_all(&rest).await;
        let _ = tokio::io::copy_bidirectional(&mut client, &mut up).await;
        return;
    }
    // a forward proxy takes absolute-form targets only
    let Ok(url) = url::Url::parse(&target) else {
        let _ = client.write_all(bad("400 Bad Request").as_bytes()).await;
        return;
    };
    let dest = format!(
        "{}:{}",
        url.host_str().unwrap_or(""),
        url.port_or_known_default().unwrap_or(80)
    );
    let Some(dest) = dest.parse::<SocketAddr>().ok().filter(|a| a.ip().is_loopback()) else {
        let _ = client.write_all(bad("403 Forbidden").as_bytes()).await;
        return;
    };
    let Ok(mut up) = TcpStream::connect(dest).await else {
        let _ = client.write_all(bad("502 Bad Gateway").as_bytes()).await;
        return;
    };
    let path = match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_owned(),
    };
    let mut out = format!("{method} {path} {version}\r\n");
    for (k, v) in &headers {
        if !matches!(
            k.as_str(),
            "proxy-authorization" | "proxy-connection" | "connection" | "keep-alive"
        ) {
            out.push_str(&format!("{k}: {v}\r\n"));
        }
    }
    out.push_str("connection: close\r\n\r\n");
    let _ = up.write_all(out.as_bytes()).await;
    let _ = up.write_all(&rest).await;
    let _ = tokio::io::copy_bidirectional(&mut client, &mut up).await;
}

// ---- proxy tests -------------------------------------------------------------------------------

#[tokio::test]
async fn every_request_goes_through_the_proxy_with_its_credentials() {
    let (registry, other, hits) = upstream().await;
    let proxy = ForwardProxy::start(Some((PROXY_USER, PROXY_PASS))).await;
    // Given a remote whose proxy wants Basic credentials, and credentials for it
    let up = HttpUpstream::new(with_proxy(
        cfg(registry.clone()),
        proxy.url(),
        Some((PROXY_USER, PROXY_PASS)),
    ))
    .unwrap();

    // When it fetches a manifest (token realm on another host), a blob (redirected to
    // storage on that host) and a lookaside signature
    let m = up.get_manifest("v1").await.unwrap();
    assert_eq!(&m.bytes[..], MANIFEST.as_bytes());
    let blob = up.get_blob(&Digest::sha256_of(CONFIG)).await.unwrap();
    let body: Vec<u8> = futures::StreamExt::collect::<Vec<_>>(blob.body)
        .await
        .into_iter()
        .flat_map(|c| c.unwrap().to_vec())
        .collect();
    assert_eq!(body, CONFIG);
    let sig = up
        .lookaside_signature(&format!("{other}/sigs"), &Digest::sha256_of(MANIFEST.as_bytes()), 1)
        .await
        .unwrap();
    assert_eq!(sig.as_deref(), Some(&b"a signature"[..]));

    // Then every request went through the proxy, in absolute form, and nothing else reached
    // the upstream
    let forwarded = proxy.forwarded();
    let through = |prefix: &str| forwarded.iter().filter(|l| l.contains(&format!(" {prefix}"))).count();
    assert!(
        through(&format!("{registry}/v2/team/app/manifests/v1")) >= 2,
        "{forwarded:#?}"
    );
    assert_eq!(through(&format!("{other}/token?")), 1, "{forwarded:#?}");
    assert_eq!(through(&format!("{other}/storage/")), 1, "{forwarded:#?}");
    assert_eq!(through(&format!("{other}/sigs/team/app@sha256=")), 1, "{forwarded:#?}");
    assert!(forwarded.iter().all(|l| l.starts_with("GET http://")), "{forwarded:#?}");
    assert_eq!(forwarded.len(), hits.registry().len() + hits.other().len());
    assert_eq!(proxy.refused.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn credentials_in_the_proxy_url_are_used() {
    let (registry, _, _) = upstream().await;
    let proxy = ForwardProxy::start(Some((PROXY_USER, PROXY_PASS))).await;
    // percent-encoded, as a URL must carry them
    let url = format!("http://proxy%20user:p%40ss%3Aw%2Frd@{}", proxy.addr);
    let up = HttpUpstream::new(with_proxy(cfg(registry.clone()), url.clone(), None)).unwrap();
    up.get_manifest("v1").await.unwrap();
    assert!(!proxy.forwarded().is_empty());

    // proxy_username and proxy_password win over the URL's
    let up = HttpUpstream::new(with_proxy(cfg(registry), url, Some(("proxy user", "wrong")))).unwrap();
    let e = up.get_manifest("v1").await.unwrap_err();
    assert!(matches!(e, UpstreamError::Unauthorized { code: 407, .. }), "{e}");
}

#[tokio::test]
async fn a_proxy_refusing_the_credentials_fails_at_once_and_clearly() {
    let (registry, _, hits) = upstream().await;
    let proxy = ForwardProxy::start(Some((PROXY_USER, PROXY_PASS))).await;
    for (credentials, hint) in [
        (Some((PROXY_USER, "wrong")), "check proxy_username and proxy_password"),
        (None, "set proxy_username and proxy_password"),
    ] {
        let before = proxy.refused.load(Ordering::SeqCst);
        let up = HttpUpstream::new(with_proxy(cfg(registry.clone()), proxy.url(), credentials)).unwrap();
        let e = up.get_manifest("v1").await.unwrap_err();
        let UpstreamError::Unauthorized {
            code: 407, ref detail, ..
        } = e
        else {
            panic!("{e:?}")
        };
        assert!(detail.contains(&format!("the proxy {}/", proxy.url())), "{detail}");
        assert!(detail.contains(hint), "{detail}");
        assert!(!e.to_string().contains("wrong"), "{e}");
        // not retried
        assert_eq!(proxy.refused.load(Ordering::SeqCst), before + 1);
    }
    assert!(hits.registry().is_empty());

    // the same over a CONNECT tunnel (an https upstream)
    let up = HttpUpstream::new(with_proxy(
        cfg(format!("https://127.0.0.1:{}", proxy.addr.port())),
        proxy.url(),
        Some((PROXY_USER, "wrong")),
    ))
    .unwrap();
    let before = proxy.refused.load(Ordering::SeqCst);
    let e = up.get_manifest("v1").await.unwrap_err();
    assert!(matches!(e, UpstreamError::Unauthorized { code: 407, .. }), "{e:?}");
    assert_eq!(proxy.refused.load(Ordering::SeqCst), before + 1);
}

#[tokio::test]
async fn an_unreachable_proxy_is_named_in_the_error() {
    let (registry, _, hits) = upstream().await;
    // a port nothing listens on
    let (l, dead) = listener().await;
    drop(l);
    let mut c = with_proxy(cfg(registry), format!("http://{dead}"), None);
    c.max_retries = Some(0);
    let e = HttpUpstream::new(c).unwrap().get_manifest("v1").await.unwrap_err();
    let UpstreamError::Transport { message, .. } = &e else {
        panic!("{e:?}")
    };
    assert!(
        message.contains(&format!("through the proxy http://{dead}/")),
        "{message}"
    );
    assert!(hits.registry().is_empty());
}

#[tokio::test]
async fn the_remote_url_policy_holds_for_the_proxy() {
    let deny = UrlPolicy::new(PrivateNetworks::Deny);
    // an IP-literal proxy is judged when the client is built
    for url in [
        "http://169.254.169.254:3128",
        "http://[fd00:ec2::254]:80",
        "ftp://proxy.example",
    ] {
        let c = with_proxy(cfg("https://registry.example".into()), url.into(), None);
        let e = HttpUpstream::new(c).err().unwrap();
        let UpstreamError::Config(m) = &e else { panic!("{e:?}") };
        assert!(m.starts_with("proxy_url "), "{m}");
    }
    let c = with_proxy(
        cfg("https://registry.example".into()),
        "http://127.0.0.1:3128".into(),
        None,
    );
    assert!(HttpUpstream::with_policy(c.clone(), deny).is_err());
    assert!(HttpUpstream::new(c).is_ok());

    // a proxy by name is resolved through the checking resolver: refused, it is never contacted
    let proxy = ForwardProxy::start(None).await;
    let c = with_proxy(
        cfg("http://registry.example".into()),
        format!("http://localhost:{}", proxy.addr.port()),
        None,
    );
    let e = HttpUpstream::with_policy(c, deny)
        .unwrap()
        .get_manifest("v1")
        .await
        .unwrap_err();
    let expected = format!(
        "the proxy http://localhost:{}/: localhost resolves only to refused addresses",
        proxy.addr.port()
    );
    assert!(e.to_string().contains(&expected), "{e}");
    assert!(proxy.forwarded().is_empty());

    // through a proxy, an upstream IP literal is still checked before sending
    let c = with_proxy(cfg("http://registry.example".into()), proxy.url(), None);
    let e = HttpUpstream::with_policy(c, UrlPolicy::default())
        .unwrap()
        .lookaside_signature("http://169.254.169.254/sigs", &Digest::sha256_of(b"x"), 1)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("169.254.169.254"), "{e}");
    assert!(proxy.forwarded().is_empty(), "{:?}", proxy.forwarded());
}

#[tokio::test]
async fn a_whole_sync_goes_through_the_remotes_proxy() {
    let (registry, _, hits) = upstream().await;
    let proxy = ForwardProxy::start(Some((PROXY_USER, PROXY_PASS))).await;
    let local = LocalApp::in_memory_with(Settings::default());
    let app = local.app.clone();
    // Given a remote with a proxy and its credentials
    let mut remote = Remote::new("up", &registry, berth::domain::RepoName::parse("team/app").unwrap());
    remote.proxy_url = Some(proxy.url());
    remote.proxy_username = Some(PROXY_USER.into());
    remote.proxy_password = Some(PROXY_PASS.into());
    app.manage.create_remote(remote.clone()).await.unwrap();
    let repo = app
        .manage
        .create_repository(Repository::new("mirror", RepositoryKind::Mirror))
        .await
        .unwrap();
    // When it syncs
    let t = app.manage.sync(&repo, remote.id, false, false).await.unwrap();
    local.jobs.run_one(&*app.worker()).await.unwrap().unwrap();
    // Then the sync completes, and every request it made went through the proxy
    let t = app.store.task(t.id).await.unwrap().unwrap();
    assert_eq!(t.state, TaskState::Completed, "{:?}", t.error);
    assert_eq!(app.store.repository(repo.id).await.unwrap().unwrap().latest_version, 1);
    let forwarded = proxy.forwarded();
    assert!(!forwarded.is_empty());
    assert_eq!(forwarded.len(), hits.registry().len() + hits.other().len());

    // and with the proxy's password changed to a wrong one, the sync fails saying why
    app.manage
        .update_remote(remote.id, |r| {
            r.proxy_password = Some("wrong".into());
            Ok(())
        })
        .await
        .unwrap();
    let t = app.manage.sync(&repo, remote.id, false, false).await.unwrap();
    local.jobs.run_one(&*app.worker()).await.unwrap().unwrap();
    let t = app.store.task(t.id).await.unwrap().unwrap();
    assert_eq!(t.state, TaskState::Failed);
    let e = t.error.map(|e| e.to_string()).unwrap_or_default();
    assert!(e.contains("407") && e.contains("proxy_password"), "{e}");
}

#[test]
fn the_client_key_changes_with_every_proxy_and_tls_setting() {
    let base = Remote::new(
        "up",
        "https://registry.example",
        berth::domain::RepoName::parse("team/app").unwrap(),
    );
    let key = |r: &Remote| r.upstream_config().key;
    let mut seen = vec![key(&base)];
    let edits: [fn(&mut Remote); 7] = [
        |r| r.proxy_url = Some("http://proxy.example:3128".into()),
        |r| r.proxy_username = Some("u".into()),
        |r| r.proxy_password = Some("proxy-secret".into()),
        |r| r.ca_cert = Some("ca".into()),
        |r| r.client_cert = Some("cert".into()),
        |r| r.client_key = Some("key".into()),
        |r| r.client_key = Some(String::new()),
    ];
    let mut r = base.clone();
    for edit in edits {
        // the same last update: only the settings differ
        edit(&mut r);
        let k = key(&r);
        assert!(!seen.contains(&k), "{k}");
        seen.push(k);
    }
    let c = r.upstream_config();
    let p = c.proxy.unwrap();
    assert_eq!(
        (p.url.as_str(), p.username.as_deref(), p.password.as_deref()),
        ("http://proxy.example:3128", Some("u"), Some("proxy-secret"))
    );
    assert_eq!(c.tls.ca_cert.as_deref(), Some("ca"));
    assert_eq!(c.tls.client_cert.as_deref(), Some("cert"));
    // the secrets stay out of debug output
    r.client_key = Some("key-secret".into());
    let shown = format!("{:?}", r.upstream_config());
    assert!(
        !shown.contains("proxy-secret") && !shown.contains("key-secret"),
        "{shown}"
    );
}

// ---- TLS -----------------------------------------------------------------------------------------

/// A CA made for one test.
struct Ca {
    issuer: rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        p.distinguished_name.push(rcgen::DnType::CommonName, name);
        p.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        Ca {
            issuer: rcgen::CertifiedIssuer::self_signed(p, rcgen::KeyPair::generate().unwrap()).unwrap(),
        }
    }

    fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// A certificate it signs for `names` with `usage`: (certificate, key) as PEM and DER.
    fn issue(&self, names: &[&str], usage: rcgen::ExtendedKeyUsagePurpose) -> Leaf {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut p = rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
        p.distinguished_name.push(rcgen::DnType::CommonName, names[0]);
        p.extended_key_usages = vec![usage];
        let cert = p.signed_by(&key, &*self.issuer).unwrap();
        Leaf {
            cert_pem: cert.pem(),
            cert_der: cert.der().to_vec(),
            key_pem: key.serialize_pem(),
            key_der: key.serialize_der(),
        }
    }
}

struct Leaf {
    cert_pem: String,
    cert_der: Vec<u8>,
    key_pem: String,
    key_der: Vec<u8>,
}

/// Accepts TLS connections for `axum::serve`, recording each handshake: the number of client
/// certificates presented, or why it failed.
struct TlsListener {
    tcp: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    handshakes: Arc<Mutex<Vec<Result<usize, String>>>>,
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((tcp, addr)) = self.tcp.accept().await else {
                continue;
            };
            match self.acceptor.accept(tcp).await {
                Ok(tls) => {
                    let presented = tls.get_ref().1.peer_certificates().map_or(0, |c| c.len());
                    self.handshakes.lock().unwrap().push(Ok(presented));
                    return (tls, addr);
                }
                Err(e) => self.handshakes.lock().unwrap().push(Err(e.to_string())),
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.tcp.local_addr()
    }
}

/// An HTTPS fake upstream whose certificate `server_ca` signed and that requires a client
/// certificate signed by `client_ca`: its base URL (by IP address) and its handshakes.
async fn https_upstream(server_ca: &Ca, client_ca: &Ca) -> (String, Arc<Mutex<Vec<Result<usize, String>>>>) {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server = server_ca.issue(&["localhost", "127.0.0.1"], rcgen::ExtendedKeyUsagePurpose::ServerAuth);
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from(client_ca.issuer.der().to_vec()))
        .unwrap();
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .unwrap();
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            vec![CertificateDer::from(server.cert_der)],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server.key_der)),
        )
        .unwrap();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let (tcp, addr) = listener().await;
    let handshakes = Arc::new(Mutex::new(Vec::new()));
    let l = TlsListener {
        tcp,
        acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
        handshakes: handshakes.clone(),
    };
    // the token realm and storage stay on plain HTTP: this server is the registry
    let (_, other, hits) = upstream().await;
    let router = registry_router(other, hits);
    tokio::spawn(async move { axum::serve(l, router).await.unwrap() });
    (format!("https://{addr}"), handshakes)
}

fn tls(ca: Option<&Ca>, client: Option<&Leaf>) -> UpstreamTls {
    UpstreamTls {
        ca_cert: ca.map(Ca::pem),
        client_cert: client.map(|c| c.cert_pem.clone()),
        client_key: client.map(|c| c.key_pem.clone()),
    }
}

#[tokio::test]
async fn ca_cert_and_client_cert_make_an_https_upstream_work() {
    let (server_ca, client_ca) = (Ca::new("server CA"), Ca::new("client CA"));
    let (url, handshakes) = https_upstream(&server_ca, &client_ca).await;
    let client = client_ca.issue(&["berth"], rcgen::ExtendedKeyUsagePurpose::ClientAuth);
    let get = |t: UpstreamTls| {
        let mut c = cfg(url.clone());
        c.tls = t;
        c.max_retries = Some(0);
        async move { HttpUpstream::new(c).unwrap().get_manifest("v1").await }
    };

    // without ca_cert the server's certificate is not trusted
    let e = get(tls(None, Some(&client))).await.unwrap_err();
    assert!(matches!(e, UpstreamError::Transport { .. }), "{e:?}");
    assert!(e.to_string().to_lowercase().contains("certificate"), "{e}");

    // with ca_cert but no client certificate the server refuses the handshake
    let e = get(tls(Some(&server_ca), None)).await.unwrap_err();
    assert!(matches!(e, UpstreamError::Transport { .. }), "{e:?}");
    let last = handshakes.lock().unwrap().last().cloned().unwrap();
    assert!(last.is_err(), "{last:?}");

    // a client certificate from another CA is refused too
    let stranger = server_ca.issue(&["berth"], rcgen::ExtendedKeyUsagePurpose::ClientAuth);
    assert!(get(tls(Some(&server_ca), Some(&stranger))).await.is_err());

    // with both, the fetch works and the client certificate was presented
    let before = handshakes.lock().unwrap().len();
    let m = get(tls(Some(&server_ca), Some(&client))).await.unwrap();
    assert_eq!(&m.bytes[..], MANIFEST.as_bytes());
    let after = handshakes.lock().unwrap()[before..].to_vec();
    assert!(after.iter().any(|h| h == &Ok(1)), "{after:?}");
    assert!(!after.contains(&Ok(0)), "{after:?}");

    // the key may sit in client_cert itself; ca_cert may be a bundle with commentary
    let combined = UpstreamTls {
        ca_cert: Some(format!("# others\n{}\n# ours\n{}", client_ca.pem(), server_ca.pem())),
        client_cert: Some(format!("{}{}", client.cert_pem, client.key_pem)),
        client_key: None,
    };
    get(combined).await.unwrap();

    // with tls_validation off the server's certificate is not checked (the client one is still sent)
    let mut c = cfg(url.clone());
    c.tls = tls(None, Some(&client));
    c.tls_validation = false;
    HttpUpstream::new(c).unwrap().get_manifest("v1").await.unwrap();
}

#[tokio::test]
async fn tls_through_the_proxy_is_a_connect_tunnel() {
    let (server_ca, client_ca) = (Ca::new("server CA"), Ca::new("client CA"));
    let (url, handshakes) = https_upstream(&server_ca, &client_ca).await;
    let client = client_ca.issue(&["berth"], rcgen::ExtendedKeyUsagePurpose::ClientAuth);
    let proxy = ForwardProxy::start(Some((PROXY_USER, PROXY_PASS))).await;
    let mut c = with_proxy(cfg(url.clone()), proxy.url(), Some((PROXY_USER, PROXY_PASS)));
    c.tls = tls(Some(&server_ca), Some(&client));
    HttpUpstream::new(c).unwrap().get_manifest("v1").await.unwrap();
    let authority = url.trim_start_matches("https://");
    let forwarded = proxy.forwarded();
    assert!(
        forwarded
            .iter()
            .any(|l| l.starts_with(&format!("CONNECT {authority} "))),
        "{forwarded:#?}"
    );
    assert!(handshakes.lock().unwrap().iter().any(|h| h == &Ok(1)));
}

#[tokio::test]
async fn tls_settings_that_cannot_work_fail_the_client_naming_the_field() {
    let ca = Ca::new("CA");
    let leaf = ca.issue(&["berth"], rcgen::ExtendedKeyUsagePurpose::ClientAuth);
    let cases = [
        (tls_of(Some("not a certificate"), None, None), "ca_cert"),
        (tls_of(None, Some(&leaf.cert_pem), None), "client_key"),
        (tls_of(None, None, Some(&leaf.key_pem)), "client_cert"),
        (tls_of(None, Some(&leaf.key_pem), Some(&leaf.key_pem)), "client_cert"),
        (
            tls_of(
                None,
                Some(&leaf.cert_pem),
                Some("-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIBvTBXBgkqhkiG9w0BBQ0wSjAp\n-----END ENCRYPTED PRIVATE KEY-----\n"),
            ),
            "client_key",
        ),
    ];
    for (t, field) in cases {
        let mut c = cfg("https://registry.example".into());
        c.tls = t;
        let e = HttpUpstream::new(c).err().unwrap();
        let UpstreamError::Config(m) = &e else { panic!("{e:?}") };
        assert!(m.starts_with(&format!("{field}: ")), "{m}");
        let key_body = leaf.key_pem.lines().nth(1).unwrap();
        assert!(
            !m.contains(key_body) && !m.contains("MIIBvTBX"),
            "no key material in messages: {m}"
        );
    }
}

fn tls_of(ca: Option<&str>, cert: Option<&str>, key: Option<&str>) -> UpstreamTls {
    UpstreamTls {
        ca_cert: ca.map(str::to_owned),
        client_cert: cert.map(str::to_owned),
        client_key: key.map(str::to_owned),
    }
}

// ---- the management API ----------------------------------------------------------------------

const PW: &str = "test-password";
const REMOTES: &str = "/pulp/api/v3/remotes/container/container/";

async fn api_call(router: &Router, method: Method, uri: &str, body: Value) -> (StatusCode, Value) {
    let r = Req::new(method, uri).basic("admin", PW).json(&body).send(router).await;
    (r.status, r.json())
}

#[tokio::test]
async fn the_api_refuses_tls_settings_that_cannot_work() {
    let local = LocalApp::in_memory_with(Settings::default());
    local.app.users.ensure_admin(Some(PW)).await.unwrap();
    let router = local.app.router();
    let ca = Ca::new("CA");
    let leaf = ca.issue(&["berth"], rcgen::ExtendedKeyUsagePurpose::ClientAuth);
    let base = json!({"name": "r", "url": "https://registry.example", "upstream_name": "team/app"});
    let with = |extra: Value| {
        let mut b = base.clone();
        for (k, v) in extra.as_object().unwrap() {
            b[k] = v.clone();
        }
        b
    };
    let truncated_key = leaf.key_pem.replace("-----END PRIVATE KEY-----", "");
    for (extra, field) in [
        (json!({"ca_cert": "hello"}), "ca_cert"),
        (
            json!({"ca_cert": "-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n"}),
            "ca_cert",
        ),
        (json!({"client_cert": leaf.cert_pem}), "client_key"),
        (json!({"client_key": leaf.key_pem}), "client_cert"),
        (
            json!({"client_cert": leaf.cert_pem, "client_key": truncated_key}),
            "client_key",
        ),
        (
            json!({"client_cert": leaf.cert_pem, "client_key": leaf.cert_pem}),
            "client_key",
        ),
    ] {
        let (s, b) = api_call(&router, Method::POST, REMOTES, with(extra.clone())).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{extra}: {b}");
        assert!(b[field][0].is_string(), "{extra}: {b}");
        let key_body = leaf.key_pem.lines().nth(1).unwrap();
        assert!(!b.to_string().contains(key_body), "no key material in the answer: {b}");
    }

    // good settings are accepted; a later update that breaks them is refused
    let good = with(json!({"ca_cert": ca.pem(), "client_cert": leaf.cert_pem, "client_key": leaf.key_pem}));
    let (s, r) = api_call(&router, Method::POST, REMOTES, good).await;
    assert_eq!(s, StatusCode::CREATED, "{r}");
    let href = r["pulp_href"].as_str().unwrap().to_owned();
    let (s, b) = api_call(&router, Method::PATCH, &href, json!({"ca_cert": "nope"})).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    assert!(b["ca_cert"][0].is_string(), "{b}");
    let (s, b) = api_call(&router, Method::PATCH, &href, json!({"client_key": null})).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    assert!(b["client_key"][0].is_string(), "{b}");
    // and an update of something else leaves them be
    let (s, b) = api_call(&router, Method::PATCH, &href, json!({"upstream_name": "team/other"})).await;
    assert!(s.is_success(), "{b}");
}
