//! The local binary as a process: it serves, refuses TLS at once, shuts down gracefully on
//! SIGTERM and keeps its data across restarts.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

struct Server {
    child: Child,
    port: u16,
}

impl Server {
    fn start(data: &std::path::Path) -> Server {
        let port = free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_berth"))
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .env("BERTH_DATA_DIR", data)
            .env("BERTH_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let s = Server { child, port };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        s
    }

    /// One HTTP/1.1 request; returns the status line, and the whole response.
    fn request(&self, method: &str, path: &str, body: &[u8]) -> (String, String) {
        self.request_with(method, path, "", body)
    }

    fn request_with(&self, method: &str, path: &str, headers: &str, body: &[u8]) -> (String, String) {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: localhost\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .unwrap();
        s.write_all(body).unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        (out.lines().next().unwrap_or("").to_owned(), out)
    }

    fn stop(mut self) -> std::process::ExitStatus {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st;
            }
            assert!(Instant::now() < deadline, "server did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn serves_refuses_tls_and_keeps_data_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    // token auth is on by default: the ping answers with the challenge
    let (status, resp) = s.request("GET", "/v2/", b"");
    assert!(status.contains("401"), "{resp}");
    let lower = resp.to_ascii_lowercase();
    assert!(lower.contains("docker-distribution-api-version: registry/2.0"));
    assert!(
        lower.contains("www-authenticate: bearer realm=\"http://localhost/token\",service=\"localhost\""),
        "{resp}"
    );
    // the admin password and the signing key were generated into the data dir, owner-only
    #[cfg(unix)]
    for f in ["admin-password", "token-key.pem"] {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join(f)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{f}");
    }
    let password = std::fs::read_to_string(dir.path().join("admin-password")).unwrap();
    let basic = b64(format!("admin:{}", password.trim()).as_bytes());
    let (status, resp) = s.request_with(
        "GET",
        "/token?service=localhost&scope=repository:keep:pull,push",
        &format!("Authorization: Basic {basic}\r\n"),
        b"",
    );
    assert!(status.contains("200"), "{resp}");
    let token = resp
        .split("\"token\":\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_owned();
    let bearer = format!("Authorization: Bearer {token}\r\n");

    // a TLS ClientHello is answered by closing the connection at once
    let mut c = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let hello = [0x16, 0x03, 0x01, 0x00, 0x2f, 0x01, 0x00, 0x00, 0x2b, 0x03, 0x03];
    c.write_all(&hello).unwrap();
    let t0 = Instant::now();
    let mut buf = [0u8; 64];
    let n = c.read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0, "nothing is sent back to a TLS client");
    assert!(
        t0.elapsed() < Duration::from_secs(1),
        "refused at once, not after a timeout"
    );

    // push a blob, restart, and it is still there
    let digest = "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";
    let (status, _) = s.request("POST", &format!("/v2/keep/blobs/uploads/?digest={digest}"), b"hello");
    assert!(status.contains("401"), "{status}");
    let (status, _) = s.request_with(
        "POST",
        &format!("/v2/keep/blobs/uploads/?digest={digest}"),
        &bearer,
        b"hello",
    );
    assert!(status.contains("201"), "{status}");
    let st = s.stop();
    assert!(st.success(), "graceful shutdown exits 0, got {st}");
    let s = Server::start(dir.path());
    // the key survived the restart: the old token still works
    let (status, resp) = s.request_with("GET", &format!("/v2/keep/blobs/{digest}"), &bearer, b"");
    assert!(status.contains("200"), "{resp}");
    assert!(resp.ends_with("hello"));
    assert!(s.stop().success());
}

fn b64(data: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(data)
}
