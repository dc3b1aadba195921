//! The local binary's bounds on what clients can hold: slow and idle connections are closed,
//! at the connection cap a waiting connection makes room for a new one (or, when every one has
//! a request in flight, the new one is refused with `503`), a stalled request body ends its
//! request,
//! and a flood of bad passwords neither grows the process's memory nor locks the right
//! password out. Each test sets small timeouts through the flags.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const PASSWORD: &str = "limits-test-password";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

struct Server {
    child: Child,
    port: u16,
    _data: tempfile::TempDir,
    data: std::path::PathBuf,
}

impl Server {
    fn start(args: &[&str]) -> Server {
        let data = tempfile::tempdir().unwrap();
        let port = free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_berth"))
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(args)
            .env("BERTH_DATA_DIR", data.path())
            .env("BERTH_ADMIN_PASSWORD", PASSWORD)
            .env("BERTH_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let s = Server {
            child,
            port,
            data: data.path().to_owned(),
            _data: data,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        s
    }

    fn connect(&self) -> TcpStream {
        let c = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        c
    }

    /// One request on a new connection; the status line and the whole response.
    fn request(&self, method: &str, path: &str, headers: &str) -> (String, String) {
        let mut s = self.connect();
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: localhost\r\n{headers}Content-Length: 0\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        (out.lines().next().unwrap_or("").to_owned(), out)
    }

    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until the server closes `c`; how long that took.
fn time_to_close(c: &mut TcpStream) -> Duration {
    let t0 = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        match c.read(&mut buf) {
            Ok(0) => return t0.elapsed(),
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return t0.elapsed(),
            Err(e) => panic!("the connection was not closed: {e}"),
        }
    }
}

/// Reads one response with a `Content-Length` body from a keep-alive connection.
fn read_response(c: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = c.read(&mut buf).unwrap();
        assert!(n > 0, "closed mid-response: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len: usize = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())?
                })
                .unwrap_or(0);
            if body.len() >= len {
                return text;
            }
        }
    }
}

fn base64(data: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(data)
}

fn basic(user: &str, password: &str) -> String {
    format!(
        "Authorization: Basic {}\r\n",
        base64(format!("{user}:{password}").as_bytes())
    )
}

#[test]
fn slowloris_connections_are_closed_after_the_header_timeout_and_others_are_served() {
    let s = Server::start(&["--header-timeout", "2", "--max-connections", "1000"]);
    // Given 300 connections that sent half a request head, and one that trickles a byte at a time
    let mut slow: Vec<TcpStream> = (0..300)
        .map(|_| {
            let mut c = s.connect();
            c.write_all(b"GET /v2/ HTTP/1.1\r\nHost: loris\r\nX-Wait: ").unwrap();
            c
        })
        .collect();
    let t0 = Instant::now();
    let mut trickle = s.connect();
    trickle.write_all(b"GET /v2/ HTTP/1.1\r\n").unwrap();
    // When a normal client asks meanwhile, it is served at once
    let (status, resp) = s.request("GET", "/v2/", "");
    assert!(status.contains("401"), "{resp}");
    assert!(t0.elapsed() < Duration::from_secs(1), "served in {:?}", t0.elapsed());
    // Then the trickling one is closed after the header timeout although it keeps sending
    let mut sent = 0;
    let closed = loop {
        std::thread::sleep(Duration::from_millis(200));
        if trickle.write_all(b"X").is_err() || t0.elapsed() > Duration::from_secs(8) {
            break t0.elapsed();
        }
        sent += 1;
    };
    assert!(sent >= 5, "it could send for a while ({sent})");
    assert!(closed < Duration::from_secs(6), "closed after {closed:?}");
    // and so are the others, each within the timeout (and a second of slack)
    for c in &mut slow {
        time_to_close(c);
    }
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "all closed in {:?}",
        t0.elapsed()
    );
    // a connection that sends nothing at all (not even the TLS probe's first byte) too
    let mut silent = s.connect();
    let waited = time_to_close(&mut silent);
    assert!(
        waited >= Duration::from_millis(1500) && waited < Duration::from_secs(4),
        "{waited:?}"
    );
}

#[test]
fn idle_keep_alive_connections_are_closed_and_busy_ones_are_not() {
    let s = Server::start(&["--idle-timeout", "2", "--header-timeout", "10"]);
    // Given a keep-alive connection used every second for four seconds
    let mut c = s.connect();
    let t0 = Instant::now();
    for _ in 0..5 {
        c.write_all(b"GET /v2/ HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
        let resp = read_response(&mut c);
        assert!(resp.starts_with("HTTP/1.1 401"), "{resp}");
        std::thread::sleep(Duration::from_secs(1));
    }
    assert!(t0.elapsed() >= Duration::from_secs(4));
    // When it then stays idle, it is closed after the idle timeout
    let waited = time_to_close(&mut c);
    assert!(
        waited < Duration::from_millis(2500),
        "closed {waited:?} after the last response"
    );
}

/// How many of `conns` the server has closed.
fn closed(conns: &[TcpStream]) -> usize {
    conns
        .iter()
        .filter(|c| {
            let mut c: &TcpStream = c;
            c.set_nonblocking(true).unwrap();
            match c.read(&mut [0u8; 16]) {
                Ok(n) => n == 0,
                Err(e) => e.kind() != ErrorKind::WouldBlock,
            }
        })
        .count()
}

#[test]
fn at_the_cap_a_new_client_takes_the_place_of_a_waiting_connection() {
    let s = Server::start(&[
        "--max-connections",
        "20",
        "--busy-timeout",
        "3",
        "--header-timeout",
        "60",
    ]);
    // (the start-up probe's connection is gone)
    std::thread::sleep(Duration::from_millis(500));
    // Given the cap's worth of open connections that have sent nothing
    let held: Vec<TcpStream> = (0..20).map(|_| s.connect()).collect();
    std::thread::sleep(Duration::from_millis(200));
    // When one more client comes, it is served at once
    let t0 = Instant::now();
    let (status, resp) = s.request("GET", "/v2/", "");
    assert!(status.contains("401"), "{resp}");
    assert!(t0.elapsed() < Duration::from_secs(1), "{:?}", t0.elapsed());
    // Then one that had waited for its client was closed to make room (its close runs beside
    // the new client's request, so it may arrive just after that response)
    let mut n = closed(&held);
    while n == 0 && t0.elapsed() < Duration::from_millis(1500) {
        std::thread::sleep(Duration::from_millis(20));
        n = closed(&held);
    }
    assert_eq!(n, 1);
    // and near the cap (75 % of it) the waiting ones are closed after the short busy timeout,
    // until the server is no longer near it
    std::thread::sleep(Duration::from_millis(4000));
    let n = closed(&held);
    assert!((5..20).contains(&n), "{n} closed");
}

#[test]
fn at_the_cap_with_a_request_in_flight_on_each_connection_new_ones_get_503() {
    let s = Server::start(&["--max-connections", "20", "--body-timeout", "60"]);
    let auth = basic("admin", PASSWORD);
    // (a first login, so the others are answered from the cache of recent successes)
    let (status, resp) = s.request("GET", "/pulp/api/v3/tasks/", &auth);
    assert!(status.contains("200"), "{resp}");
    std::thread::sleep(Duration::from_millis(500));
    // Given the cap's worth of connections, each with a request whose body is still coming
    let mut held: Vec<TcpStream> = (0..20)
        .map(|_| {
            let mut c = s.connect();
            write!(
                c,
                "POST /pulp/api/v3/repositories/container/container/ HTTP/1.1\r\nHost: localhost\r\n{auth}\
                 Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"name\""
            )
            .unwrap();
            c
        })
        .collect();
    std::thread::sleep(Duration::from_secs(1));
    // When one more client connects, it gets a clear refusal at once
    let t0 = Instant::now();
    let mut extra = s.connect();
    extra
        .write_all(b"GET /v2/ HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let mut refusal = String::new();
    extra.read_to_string(&mut refusal).unwrap();
    assert!(refusal.starts_with("HTTP/1.1 503"), "{refusal}");
    assert!(refusal.contains("Retry-After: 1"), "{refusal}");
    assert!(t0.elapsed() < Duration::from_secs(1));
    assert_eq!(closed(&held), 0, "requests in flight are not cut");
    // Then, once those clients are done, new ones are served again
    held.clear();
    std::thread::sleep(Duration::from_millis(500));
    let (status, resp) = s.request("GET", "/v2/", "");
    assert!(status.contains("401"), "{resp}");
}

#[test]
fn a_stalled_request_body_ends_the_upload_with_a_client_error() {
    let s = Server::start(&["--body-timeout", "2", "--token-auth", "off"]);
    let auth = basic("admin", PASSWORD);
    let digest = "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";
    // Given a monolithic upload that announces 1000 bytes and sends 10
    let mut c = s.connect();
    write!(
        c,
        "POST /v2/stall/blobs/uploads/?digest={digest} HTTP/1.1\r\nHost: localhost\r\n{auth}\
         Content-Type: application/octet-stream\r\nContent-Length: 1000\r\n\r\n0123456789"
    )
    .unwrap();
    let t0 = Instant::now();
    // When the client then sends nothing, the request ends with a client error after the
    // body timeout
    let resp = read_response(&mut c);
    let waited = t0.elapsed();
    assert!(resp.starts_with("HTTP/1.1 400"), "{resp}");
    assert!(resp.contains("BLOB_UPLOAD_INVALID"), "{resp}");
    assert!(
        waited >= Duration::from_millis(1500) && waited < Duration::from_secs(10),
        "{waited:?}"
    );
    // and nothing is left of the partial write
    let tmp: Vec<_> = std::fs::read_dir(s.data.join("tmp")).unwrap().collect();
    assert!(tmp.is_empty(), "{tmp:?}");
    let (status, _) = s.request("HEAD", &format!("/v2/stall/blobs/{digest}"), &auth);
    assert!(status.contains("404"), "{status}");
}

#[test]
fn a_flood_of_bad_passwords_keeps_memory_bounded_and_the_right_password_works() {
    let s = Server::start(&[]);
    // the hashing pool started with the check of BERTH_ADMIN_PASSWORD; no login has been
    // cached yet
    let (status, resp) = s.request("GET", "/pulp/api/v3/tasks/", "");
    assert!(status.contains("401"), "{resp}");
    let before = s.rss_kib();
    // Given 64 parallel logins with wrong passwords on the management API
    let t0 = Instant::now();
    let answers: Vec<String> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..64)
            .map(|i| {
                let s = &s;
                scope.spawn(move || {
                    s.request("GET", "/pulp/api/v3/tasks/", &basic("admin", &format!("wrong-{i}")))
                        .1
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let flood = t0.elapsed();
    let after = s.rss_kib();
    // Then each is refused (401), or throttled (429 with Retry-After and a detail)
    let denied = answers.iter().filter(|a| a.starts_with("HTTP/1.1 401")).count();
    let throttled: Vec<_> = answers.iter().filter(|a| a.starts_with("HTTP/1.1 429")).collect();
    assert_eq!(denied + throttled.len(), 64, "{answers:?}");
    assert!(throttled.len() >= 32, "most are throttled ({})", throttled.len());
    for a in &throttled {
        assert!(a.to_ascii_lowercase().contains("retry-after: "), "{a}");
        assert!(a.contains("\"detail\":\"Request was throttled."), "{a}");
    }
    // and the process grew by less than the hashing pool's bound (4 threads × 19 MiB) and slack
    let grown_mib = after.saturating_sub(before) / 1024;
    eprintln!(
        "login flood: RSS {} MiB -> {} MiB; {denied} denied, {} throttled in {flood:?}",
        before / 1024,
        after / 1024,
        throttled.len()
    );
    assert!(grown_mib < 100, "RSS grew by {grown_mib} MiB");
    // and the right password still answers promptly
    let t1 = Instant::now();
    let (status, resp) = s.request("GET", "/pulp/api/v3/tasks/", &basic("admin", PASSWORD));
    assert!(status.contains("200"), "{resp}");
    assert!(t1.elapsed() < Duration::from_secs(6), "took {:?}", t1.elapsed());
    // and /token answers a parallel flood with TOOMANYREQUESTS too
    let answers: Vec<String> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..16)
            .map(|i| {
                let s = &s;
                scope.spawn(move || {
                    s.request("GET", "/token?service=localhost", &basic("admin", &format!("bad-{i}")))
                        .1
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let throttled: Vec<_> = answers.iter().filter(|a| a.starts_with("HTTP/1.1 429")).collect();
    assert!(!throttled.is_empty(), "{answers:?}");
    for r in throttled {
        assert!(r.contains("TOOMANYREQUESTS"), "{r}");
        assert!(r.to_ascii_lowercase().contains("retry-after: "), "{r}");
    }
}
