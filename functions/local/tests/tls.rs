//! The local binary serving HTTPS (`--tls-cert`, `--tls-key`): clients that trust the test's
//! CA get HTTP/2 and HTTP/1.1 with `https://` token realms, other clients are refused, changed
//! files are served to new connections (and a bad change is not), connections that never
//! finish their handshake are closed after the header timeout and make room at the cap, and a
//! plain-HTTP request is told it reached an HTTPS server.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;

const PASSWORD: &str = "tls-test-password";

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
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        Ca {
            issuer: rcgen::CertifiedIssuer::self_signed(p, rcgen::KeyPair::generate().unwrap()).unwrap(),
        }
    }

    fn der(&self) -> CertificateDer<'static> {
        self.issuer.der().clone()
    }

    /// A server certificate for `localhost` and 127.0.0.1: (certificate PEM, key PEM, DER).
    fn issue(&self) -> (String, String, Vec<u8>) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut p = rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
        p.distinguished_name.push(rcgen::DnType::CommonName, "localhost");
        p.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        let cert = p.signed_by(&key, &*self.issuer).unwrap();
        (cert.pem(), key.serialize_pem(), cert.der().to_vec())
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

struct Server {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Server {
    /// The binary serving HTTPS with `cert` and `key` (written to files it is given).
    fn start(cert: &str, key: &str, args: &[&str]) -> Server {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("cert.pem"), cert).unwrap();
        std::fs::write(dir.path().join("key.pem"), key).unwrap();
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("log")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_berth"))
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .arg("--tls-cert")
            .arg(dir.path().join("cert.pem"))
            .env("BERTH_TLS_KEY", dir.path().join("key.pem"))
            .args(args)
            .env("BERTH_DATA_DIR", dir.path().join("data"))
            .env("BERTH_ADMIN_PASSWORD", PASSWORD)
            .env("BERTH_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let s = Server { child, port, dir };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !s.log().contains("berth is serving") {
            assert!(Instant::now() < deadline, "server did not start: {}", s.log());
            std::thread::sleep(Duration::from_millis(20));
        }
        s
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.file("log")).unwrap_or_default()
    }

    fn url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.port)
    }

    fn connect(&self) -> TcpStream {
        let c = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        c
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn client_config(ca: &CertificateDer<'static>, alpn: &[&[u8]]) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    roots.add(ca.clone()).unwrap();
    let mut cfg = ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(cfg)
}

/// A TLS connection trusting `ca` only, offering `alpn`.
async fn tls_connect(
    port: u16,
    ca: &CertificateDer<'static>,
    alpn: &[&[u8]],
) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    let name = ServerName::try_from("localhost").unwrap();
    TlsConnector::from(client_config(ca, alpn)).connect(name, tcp).await
}

/// The certificate a new connection is served.
async fn served_cert(port: u16, ca: &CertificateDer<'static>) -> Vec<u8> {
    let tls = tls_connect(port, ca, &[b"h2"]).await.unwrap();
    tls.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

/// One HTTP/2 request over a new TLS connection that trusts `ca` only: the negotiated ALPN
/// protocol, the status, the headers and the body.
async fn h2_get(
    port: u16,
    ca: &CertificateDer<'static>,
    path: &str,
    auth: Option<&str>,
) -> (Vec<u8>, u16, hyper::HeaderMap, String) {
    let tls = tls_connect(port, ca, &[b"h2", b"http/1.1"]).await.unwrap();
    let alpn = tls.get_ref().1.alpn_protocol().unwrap_or_default().to_vec();
    let (mut send, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut req = hyper::Request::get(format!("https://localhost:{port}{path}"));
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    let resp = send
        .send_request(req.body(Empty::<Bytes>::new()).unwrap())
        .await
        .unwrap();
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    (
        alpn,
        parts.status.as_u16(),
        parts.headers,
        String::from_utf8_lossy(&body).into_owned(),
    )
}

fn reqwest_trusting(ca: &CertificateDer<'static>) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_der(ca).unwrap())
        .build()
        .unwrap()
}

fn basic(user: &str, password: &str) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {b64}")
}

/// Waits until the server closes `c`; how long that took.
fn time_to_close(c: &mut impl Read) -> Duration {
    let t0 = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        match c.read(&mut buf) {
            Ok(0) => return t0.elapsed(),
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::ConnectionReset | ErrorKind::UnexpectedEof) => return t0.elapsed(),
            Err(e) => panic!("the connection was not closed: {e}"),
        }
    }
}

/// The first bytes of a ClientHello: a handshake record that never completes.
const PARTIAL_HELLO: [u8; 11] = [0x16, 0x03, 0x01, 0x00, 0x2f, 0x01, 0x00, 0x00, 0x2b, 0x03, 0x03];

#[tokio::test]
async fn clients_trusting_the_ca_get_http2_and_http1_with_https_urls() {
    let ca = Ca::new("berth test CA");
    let (cert, key, _) = ca.issue();
    let s = Server::start(&cert, &key, &[]);
    let realm = format!(
        "Bearer realm=\"https://localhost:{port}/token\",service=\"localhost:{port}\"",
        port = s.port
    );

    // HTTP/2, chosen by ALPN: the challenge names an https realm (and the host from the
    // request's authority, HTTP/2 having no Host header)
    let (alpn, status, headers, _) = h2_get(s.port, &ca.der(), "/v2/", None).await;
    assert_eq!(alpn, b"h2");
    assert_eq!(status, 401);
    assert_eq!(headers["www-authenticate"], realm.as_str());
    // and a token from it works on HTTP/2 too
    let token_path = format!("/token?service=localhost:{}&scope=repository:a/b:pull,push", s.port);
    let (_, status, _, body) = h2_get(s.port, &ca.der(), &token_path, Some(&basic("admin", PASSWORD))).await;
    assert_eq!(status, 200, "{body}");
    let token: serde_json::Value = serde_json::from_str(&body).unwrap();
    let bearer = format!("Bearer {}", token["token"].as_str().unwrap());
    let (_, status, _, body) = h2_get(s.port, &ca.der(), "/v2/a/b/tags/list", Some(&bearer)).await;
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("NAME_UNKNOWN"), "{body}");

    // HTTP/1.1 (reqwest offers only it), from a client trusting the CA only
    let client = reqwest_trusting(&ca.der());
    let resp = client.get(s.url("/v2/")).send().await.unwrap();
    assert_eq!(resp.version(), reqwest::Version::HTTP_11);
    assert_eq!(resp.status(), 401);
    assert_eq!(resp.headers()["www-authenticate"], realm.as_str());
    // what the client says of the scheme does not change what the connection is
    let resp = client
        .get(s.url("/v2/"))
        .header("x-forwarded-proto", "http")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["www-authenticate"], realm.as_str());
    // the Pulp API's absolute URLs are https ones
    let resp = client.get(s.url("/pulp/api/v3/status/")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let status: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(
        status["content_settings"]["content_origin"],
        format!("https://localhost:{}", s.port).as_str()
    );
    // a TLS 1.2-only client is served too
    let mut roots = RootCertStore::empty();
    roots.add(ca.der()).unwrap();
    let tls12 = ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_protocol_versions(&[&rustls::version::TLS12])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", s.port)).await.unwrap();
    let conn = TlsConnector::from(Arc::new(tls12))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    assert_eq!(
        conn.get_ref().1.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_2)
    );

    // a client that does not trust the CA is refused: the default roots, or another CA
    let err = reqwest::Client::new().get(s.url("/v2/")).send().await.unwrap_err();
    assert!(err.is_connect(), "{err:?}");
    let other = Ca::new("another CA");
    let err = reqwest_trusting(&other.der())
        .get(s.url("/v2/"))
        .send()
        .await
        .unwrap_err();
    assert!(format!("{err:?}").contains("UnknownIssuer"), "{err:?}");
    // and so is one asking for a name the certificate does not have
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", s.port)).await.unwrap();
    let wrong = TlsConnector::from(client_config(&ca.der(), &[]))
        .connect(ServerName::try_from("registry.example").unwrap(), tcp)
        .await;
    assert!(wrong.is_err());
    // and the server goes on serving
    let resp = client.get(s.url("/v2/")).send().await.unwrap();
    assert_eq!(resp.status(), 401);
}

/// Replaces the file `name` of the server's as a rename does (as certificate renewers do).
fn replace(s: &Server, name: &str, contents: &str) {
    let tmp = s.file(&format!("{name}.new"));
    std::fs::write(&tmp, contents).unwrap();
    std::fs::rename(&tmp, s.file(name)).unwrap();
}

#[tokio::test]
async fn new_connections_get_a_changed_certificate_and_a_bad_change_is_not_taken() {
    let ca = Ca::new("berth test CA");
    let (cert, key, der) = ca.issue();
    let s = Server::start(&cert, &key, &[]);
    assert_eq!(served_cert(s.port, &ca.der()).await, der);
    // a connection opened before the change keeps working
    let client = reqwest_trusting(&ca.der());
    assert_eq!(client.get(s.url("/v2/")).send().await.unwrap().status(), 401);

    // Given a new certificate written without its key (a mismatched pair), then garbage
    let (cert2, key2, der2) = ca.issue();
    replace(&s, "cert.pem", &cert2);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !s.log().contains("do not load") {
        assert!(Instant::now() < deadline, "the change was not looked at: {}", s.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        s.log().contains("is not the key of the first certificate"),
        "{}",
        s.log()
    );
    // Then the old pair is still served, to new connections too
    assert_eq!(served_cert(s.port, &ca.der()).await, der);
    assert_eq!(client.get(s.url("/v2/")).send().await.unwrap().status(), 401);
    replace(&s, "key.pem", "not a key");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !s.log().contains("no private key in it") {
        assert!(Instant::now() < deadline, "the change was not looked at: {}", s.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(served_cert(s.port, &ca.der()).await, der);

    // When the key arrives, new connections get the new certificate within a few seconds
    let t0 = Instant::now();
    replace(&s, "key.pem", &key2);
    while served_cert(s.port, &ca.der()).await != der2 {
        assert!(t0.elapsed() < Duration::from_secs(10), "not reloaded: {}", s.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "reloaded after {:?}",
        t0.elapsed()
    );
    let fresh = reqwest_trusting(&ca.der());
    assert_eq!(fresh.get(s.url("/v2/")).send().await.unwrap().status(), 401);
}

#[test]
fn connections_that_never_finish_a_handshake_or_a_request_are_closed_after_the_header_timeout() {
    let ca = Ca::new("berth test CA");
    let (cert, key, _) = ca.issue();
    let s = Server::start(&cert, &key, &["--header-timeout", "2"]);
    let t0 = Instant::now();
    // one that sends nothing, one that stops in its ClientHello, one that completes the
    // handshake and sends no request
    let silent = s.connect();
    let mut partial = s.connect();
    partial.write_all(&PARTIAL_HELLO).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let handshaken = rt.block_on(async {
        let tls = tls_connect(s.port, &ca.der(), &[b"http/1.1"]).await.unwrap();
        // back to a blocking socket, keeping the session to read the close with
        let (tcp, session) = tls.into_inner();
        let tcp = tcp.into_std().unwrap();
        tcp.set_nonblocking(false).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        (tcp, session)
    });
    let mut waits = Vec::new();
    for mut c in [silent, partial] {
        time_to_close(&mut c);
        waits.push(t0.elapsed());
    }
    let (tcp, session) = handshaken;
    let mut tls = rustls::StreamOwned::new(session, tcp);
    time_to_close(&mut tls);
    waits.push(t0.elapsed());
    for w in waits {
        assert!(
            w >= Duration::from_millis(1500) && w < Duration::from_secs(4),
            "closed after {w:?}"
        );
    }
}

#[tokio::test]
async fn half_open_handshakes_make_room_at_the_connection_cap() {
    let ca = Ca::new("berth test CA");
    let (cert, key, _) = ca.issue();
    let s = Server::start(
        &cert,
        &key,
        &[
            "--max-connections",
            "4",
            "--header-timeout",
            "60",
            "--busy-timeout",
            "60",
        ],
    );
    // Given the cap taken by connections stopped in their ClientHellos
    let mut held: Vec<TcpStream> = (0..4)
        .map(|_| {
            let mut c = s.connect();
            c.write_all(&PARTIAL_HELLO).unwrap();
            c
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    // When a client comes, it is served at once: one of them made room
    let t0 = Instant::now();
    let resp = reqwest_trusting(&ca.der()).get(s.url("/v2/")).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    assert!(t0.elapsed() < Duration::from_secs(1), "served after {:?}", t0.elapsed());
    let closed = held
        .iter_mut()
        .filter_map(|c| {
            c.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
            let mut b = [0u8; 64];
            match c.read(&mut b) {
                Ok(0) => Some(()),
                Err(e) if e.kind() == ErrorKind::ConnectionReset => Some(()),
                _ => None,
            }
        })
        .count();
    assert!(closed >= 1, "{closed}");
}

#[test]
fn plain_http_on_the_https_port_is_told_so() {
    let ca = Ca::new("berth test CA");
    let (cert, key, _) = ca.issue();
    let s = Server::start(&cert, &key, &[]);
    let mut c = s.connect();
    c.write_all(b"GET /v2/ HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    let t0 = Instant::now();
    let mut out = String::new();
    c.read_to_string(&mut out).unwrap();
    assert!(out.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{out}");
    assert!(
        out.ends_with("\r\n\r\nClient sent an HTTP request to an HTTPS server.\n"),
        "{out}"
    );
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
}

fn start_status(dir: &Path, args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["--listen", &format!("127.0.0.1:{}", free_port())])
        .args(args)
        .env("BERTH_DATA_DIR", dir.join("data"))
        .env("BERTH_ADMIN_PASSWORD", PASSWORD)
        .env("BERTH_LOG", "warn")
        .output()
        .unwrap();
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn a_start_with_a_bad_pair_fails_with_a_clear_error() {
    let ca = Ca::new("berth test CA");
    let (cert, _, _) = ca.issue();
    let (_, other_key, _) = ca.issue();
    let dir = tempfile::tempdir().unwrap();
    let (c, k) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
    std::fs::write(&c, &cert).unwrap();
    std::fs::write(&k, &other_key).unwrap();
    let (c, k) = (c.to_str().unwrap(), k.to_str().unwrap());
    let (code, err) = start_status(dir.path(), &["--tls-cert", c, "--tls-key", k]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("k.pem is not the key of the first certificate in"),
        "{err}"
    );
    let (code, err) = start_status(dir.path(), &["--tls-cert", c, "--tls-key", "/nonexistent/k.pem"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("cannot read /nonexistent/k.pem"), "{err}");
    let (code, err) = start_status(dir.path(), &["--tls-cert", c]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("give both"), "{err}");
    assert!(
        !dir.path().join("data").exists(),
        "nothing is written before the settings are checked"
    );
}
