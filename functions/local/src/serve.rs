//! The HTTP server: HTTP/1.1 and HTTP/2 on one port, graceful shutdown; either
//! - plain (h2c for HTTP/2), with an immediate refusal of TLS handshakes (clients probe
//!   `https://` first; closing at once lets them fall back to `http://` without waiting for a
//!   timeout), or
//! - HTTPS ([`crate::tls`]; HTTP/2 by ALPN), answering a plain-HTTP request with a `400` that
//!   says so, and telling the routers the scheme is `https` (`X-Forwarded-Proto`), so the
//!   URLs they derive from requests (the token realm, absolute links) are `https://` ones.
//!
//! What a client can make the server hold is bounded ([`Limits`], each a setting):
//! - open connections: at most `max_connections` (the default is derived from the open-files
//!   limit, which is first raised to its maximum), so the process never runs out of file
//!   descriptors. At the cap, a new connection takes the place of the one that has waited
//!   longest for its client with no request in flight (among a sample); when every connection
//!   has a request in flight, the new one is answered with a minimal `503` and `Retry-After`
//!   and closed;
//! - a request head (request line and headers) must be complete within `header_timeout` of the
//!   connection's accept (the wait for the TLS probe's first byte counts) or of its first byte;
//!   a head is at most [`MAX_HEAD_BYTES`]; with HTTPS the handshake counts too (the TLS
//!   layer reads through the same watch as the requests);
//! - a connection with no request in flight and no bytes for `idle_timeout` is closed, and so is
//!   one whose client stopped reading its response for that long;
//! - while the server is near its cap ([`NEAR_CAP_PERCENT`] of it), both timeouts shrink to
//!   `busy_timeout`, so idle and slow connections make room for new clients;
//! - a request body that sends nothing for `body_timeout` ends with an error (an upload
//!   answers `400 BLOB_UPLOAD_INVALID`: a monolithic one leaves no partial file, a chunk's bytes
//!   stay in its upload session, which the client may resume or which expires).
//!
//! Each request runs with its client's address known to the password checks, which throttle
//! failed logins per client ([`berth::http::auth::with_client_addr`]).

mod conn;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper::service::Service;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use rand::Rng;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;

use self::conn::{ConnState, IdleLimitedBody, Timeouts, TrackedBody, Watched};

/// First byte of a TLS record carrying a handshake (a ClientHello).
const TLS_HANDSHAKE: u8 = 0x16;

/// The largest request head (request line and headers) an HTTP/1 client may send; larger
/// ones get `431`. Also the most a connection buffers of a request body before the handler
/// takes it.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;

/// The share of `max_connections` (in percent) from which the short `busy_timeout` applies.
pub const NEAR_CAP_PERCENT: usize = 75;

/// File descriptors kept aside for blob files, the database and refusals when the connection
/// cap is derived from the open-files limit; each connection is counted twice (its socket and
/// a file it may stream).
pub const FD_RESERVE: u64 = 128;

/// The derived connection cap never exceeds this (each connection may buffer up to
/// [`MAX_HEAD_BYTES`]).
pub const MAX_CONNECTIONS_CEILING: usize = 10_000;

/// Refusals (over the cap) lingering at most; beyond, a refused connection is closed right
/// after its answer.
const MAX_REFUSING: usize = 64;

/// How long a refused connection is read from at most (so closing does not reset the answer
/// away before the client has read it) …
const REFUSAL_LINGER: Duration = Duration::from_secs(1);
/// … stopping once the client has been silent this long.
const REFUSAL_QUIET: Duration = Duration::from_millis(250);

/// Connections looked at when one must make room for a new one: the one among them that has
/// waited longest for its client goes.
const EVICTION_SAMPLE: usize = 16;

/// Connections over the cap while evicted ones are closing, at most (they take from
/// [`FD_RESERVE`]).
const MAX_OVER_CAP: usize = 32;

/// How long the accept loop pauses after an accept error (such as running out of file
/// descriptors), so it does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// The open-files limit the process raises its soft limit to, at most.
const NOFILE_TARGET: u64 = 1 << 20;

/// The bounds on what clients can hold; see the module's documentation.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    pub busy_timeout: Duration,
    pub body_timeout: Duration,
    pub max_connections: usize,
}

impl Limits {
    /// The limits from the configuration; derives the connection cap from the open-files limit
    /// (raised first) when it is not set.
    pub fn from_config(cfg: &crate::config::Config) -> Limits {
        let max_connections = match cfg.max_connections {
            Some(n) => usize::try_from(n).unwrap_or(usize::MAX),
            None => {
                let files = raise_open_files_limit();
                let derived = files.map_or(MAX_CONNECTIONS_CEILING as u64, |f| f.saturating_sub(FD_RESERVE) / 2);
                usize::try_from(derived)
                    .unwrap_or(MAX_CONNECTIONS_CEILING)
                    .clamp(16, MAX_CONNECTIONS_CEILING)
            }
        };
        Limits {
            header_timeout: cfg.header_timeout,
            idle_timeout: cfg.idle_timeout,
            busy_timeout: cfg.busy_timeout,
            body_timeout: cfg.body_timeout,
            max_connections,
        }
    }

    fn timeouts(&self, open: usize) -> Timeouts {
        let near_cap = open.saturating_mul(100) >= self.max_connections.saturating_mul(NEAR_CAP_PERCENT);
        let shorten = |d: Duration| if near_cap { d.min(self.busy_timeout) } else { d };
        Timeouts {
            header: shorten(self.header_timeout),
            idle: shorten(self.idle_timeout),
        }
    }
}

/// Raises the soft open-files limit to the hard one (at most [`NOFILE_TARGET`]); returns the
/// soft limit in force, when known.
#[cfg(unix)]
fn raise_open_files_limit() -> Option<u64> {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let limit = getrlimit(Resource::Nofile);
    let hard = limit.maximum.unwrap_or(NOFILE_TARGET).min(NOFILE_TARGET);
    match limit.current {
        Some(soft) if soft < hard => {
            let raised = Rlimit {
                current: Some(hard),
                maximum: limit.maximum,
            };
            match setrlimit(Resource::Nofile, raised) {
                Ok(()) => Some(hard),
                Err(e) => {
                    tracing::warn!(error = %e, soft, hard, "cannot raise the open-files limit");
                    Some(soft)
                }
            }
        }
        Some(soft) => Some(soft),
        None => Some(NOFILE_TARGET),
    }
}

#[cfg(not(unix))]
fn raise_open_files_limit() -> Option<u64> {
    None
}

pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

/// Whether the connection opens with a TLS handshake; waits for the first byte (the watchdog
/// bounds the wait by the header timeout).
async fn is_tls(stream: &TcpStream) -> bool {
    let mut b = [0u8; 1];
    matches!(stream.peek(&mut b).await, Ok(1) if b[0] == TLS_HANDSHAKE)
}

/// The answer to a connection over the cap.
const REFUSAL: &str = "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Type: text/plain\r\n\
                       Content-Length: 46\r\nConnection: close\r\n\r\n\
                       too many open connections, try again shortly\r\n";

/// The answer to a plain-HTTP request on the HTTPS port.
const PLAIN_ON_TLS: &str = "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: 48\r\n\
                            Connection: close\r\n\r\nClient sent an HTTP request to an HTTPS server.\n";

/// Answers `answer` (a whole response) without waiting: first takes what the client already
/// sent (closing over unread bytes would reset the connection, and the answer with it).
fn answer_now(stream: &TcpStream, answer: &str) {
    let mut sink = [0u8; 4096];
    for _ in 0..16 {
        match stream.try_read(&mut sink) {
            Ok(n) if n > 0 => {}
            _ => break,
        }
    }
    let _ = stream.try_write(answer.as_bytes());
}

/// After [`answer_now`]: closes our side and reads what the client still sends for a moment,
/// so the close does not turn into a reset before the client has read the answer.
async fn linger(mut stream: TcpStream) {
    let _ = stream.shutdown().await;
    let mut sink = [0u8; 4096];
    let _ = tokio::time::timeout(REFUSAL_LINGER, async {
        while let Ok(Ok(n)) = tokio::time::timeout(REFUSAL_QUIET, stream.read(&mut sink)).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
}

/// The open connections, to pick one to close when the cap is reached.
#[derive(Default)]
struct OpenTable(Mutex<Slots>);

#[derive(Default)]
struct Slots {
    slots: Vec<Option<Arc<ConnState>>>,
    free: Vec<usize>,
}

impl OpenTable {
    fn insert(self: &Arc<Self>, state: Arc<ConnState>, counter: &Arc<AtomicUsize>) -> Registered {
        let index = match self.0.lock() {
            Ok(mut t) => match t.free.pop() {
                Some(i) => {
                    t.slots[i] = Some(state);
                    Some(i)
                }
                None => {
                    t.slots.push(Some(state));
                    Some(t.slots.len() - 1)
                }
            },
            Err(_) => None,
        };
        Registered {
            table: self.clone(),
            index,
            _counted: Counted::new(counter),
        }
    }

    /// Asks the connection that has waited longest for its client, with no request in flight,
    /// to close (among a sample, else among all); whether there was one.
    fn evict_one(&self) -> bool {
        let Ok(t) = self.0.lock() else {
            return false;
        };
        let n = t.slots.len();
        if n == 0 {
            return false;
        }
        fn longest_waiting<'a>(conns: impl Iterator<Item = &'a Arc<ConnState>>) -> Option<&'a Arc<ConnState>> {
            conns
                .filter_map(|c| c.waiting_since().map(|w| (w, c)))
                .min_by_key(|(w, _)| *w)
                .map(|(_, c)| c)
        }
        let mut rng = rand::thread_rng();
        let sample = (0..EVICTION_SAMPLE).filter_map(|_| t.slots.get(rng.gen_range(0..n)).and_then(Option::as_ref));
        let pick = longest_waiting(sample).or_else(|| longest_waiting(t.slots.iter().flatten()));
        pick.is_some_and(|c| c.evict())
    }
}

/// A connection's place in the [`OpenTable`] and the open count, until dropped.
struct Registered {
    table: Arc<OpenTable>,
    index: Option<usize>,
    _counted: Counted,
}

impl Drop for Registered {
    fn drop(&mut self) {
        if let (Some(i), Ok(mut t)) = (self.index, self.table.0.lock()) {
            if let Some(slot) = t.slots.get_mut(i) {
                *slot = None;
                t.free.push(i);
            }
        }
    }
}

/// Counts an open connection (or a refusal in progress) until dropped.
struct Counted(Arc<AtomicUsize>);

impl Counted {
    fn new(counter: &Arc<AtomicUsize>) -> Self {
        counter.fetch_add(1, Relaxed);
        Counted(counter.clone())
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}

/// Logs a repeated warning at most every ten seconds, with how often it happened.
struct Throttled {
    last: Option<Instant>,
    count: u64,
}

impl Throttled {
    fn hit(&mut self) -> Option<u64> {
        self.count += 1;
        let due = self.last.is_none_or(|t| t.elapsed() >= Duration::from_secs(10));
        due.then(|| {
            self.last = Some(Instant::now());
            std::mem::take(&mut self.count)
        })
    }
}

/// The service for one connection: the router, with the request body's inactivity limited,
/// the client's address known, and the request counted in flight until its response is sent.
#[derive(Clone)]
struct ConnService {
    router: TowerToHyperService<Router>,
    state: Arc<ConnState>,
    peer: SocketAddr,
    body_timeout: Duration,
    /// The connection is HTTPS.
    https: bool,
}

type ServiceFuture = Pin<Box<dyn Future<Output = Result<Response<TrackedBody<axum::body::Body>>, Infallible>> + Send>>;

impl Service<Request<Incoming>> for ConnService {
    type Response = Response<TrackedBody<axum::body::Body>>;
    type Error = Infallible;
    type Future = ServiceFuture;

    fn call(&self, mut req: Request<Incoming>) -> Self::Future {
        let in_flight = self.state.request_started();
        with_scheme_and_host(&mut req, self.https);
        let req = req.map(|b| IdleLimitedBody::new(b, self.body_timeout));
        let client = self.peer.ip();
        let response = berth::http::auth::with_client_addr(client, self.router.call(req));
        Box::pin(async move {
            let response = response.await?;
            Ok(response.map(|body| TrackedBody::new(body, in_flight)))
        })
    }
}

/// What the routers derive URLs from: `X-Forwarded-Proto: https` on an HTTPS connection
/// (replacing what the client sent), and a `Host` header from an HTTP/2 request's authority
/// (HTTP/2 has no `Host` header).
fn with_scheme_and_host<B>(req: &mut Request<B>, https: bool) {
    if https {
        req.headers_mut()
            .insert("x-forwarded-proto", hyper::header::HeaderValue::from_static("https"));
    }
    if !req.headers().contains_key(hyper::header::HOST) {
        let authority = req.uri().authority().map(|a| a.as_str().to_owned());
        if let Some(host) = authority.and_then(|a| hyper::header::HeaderValue::from_str(&a).ok()) {
            req.headers_mut().insert(hyper::header::HOST, host);
        }
    }
}

/// Serves one connection's requests over `io` until it ends or the server shuts down.
async fn serve_io<I>(
    builder: &Builder<TokioExecutor>,
    io: I,
    service: ConnService,
    watcher: hyper_util::server::graceful::Watcher,
    peer: SocketAddr,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    if let Err(e) = watcher.watch(conn.into_owned()).await {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
}

/// Serves `router` on `listener` within `limits`: HTTPS through `tls` when given, else plain
/// HTTP; until `shutdown`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    tls: Option<TlsAcceptor>,
    shutdown: impl Future<Output = ()>,
) {
    let graceful = GracefulShutdown::new();
    let mut builder = Builder::new(TokioExecutor::new());
    // the header timeout is the watchdog's (hyper's would also cut idle keep-alive connections)
    builder.http1().header_read_timeout(None).max_buf_size(MAX_HEAD_BYTES);
    let router = TowerToHyperService::new(router);
    let open = Arc::new(AtomicUsize::new(0));
    let table = Arc::new(OpenTable::default());
    let refusing = Arc::new(AtomicUsize::new(0));
    let quiet = || Throttled { last: None, count: 0 };
    let (mut accept_errors, mut refusals, mut evictions) = (quiet(), quiet(), quiet());
    tracing::info!(
        max_connections = limits.max_connections,
        header_timeout_s = limits.header_timeout.as_secs(),
        idle_timeout_s = limits.idle_timeout.as_secs(),
        busy_timeout_s = limits.busy_timeout.as_secs(),
        body_timeout_s = limits.body_timeout.as_secs(),
        "connection limits"
    );
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    if let Some(n) = accept_errors.hit() {
                        tracing::warn!(error = %e, times = n, "accept failed");
                    }
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let n_open = open.load(Relaxed);
        let admitted = n_open < limits.max_connections || {
            let evicted = n_open < limits.max_connections.saturating_add(MAX_OVER_CAP) && table.evict_one();
            if let Some(n) = evicted.then(|| evictions.hit()).flatten() {
                tracing::warn!(
                    max_connections = limits.max_connections,
                    closed = n,
                    "at the connection cap: closing waiting connections to make room"
                );
            }
            evicted
        };
        if !admitted {
            if let Some(n) = refusals.hit() {
                tracing::warn!(
                    max_connections = limits.max_connections,
                    refused = n,
                    "at the connection cap with no waiting connection to close: refusing new connections"
                );
            }
            answer_now(&stream, REFUSAL);
            if refusing.load(Relaxed) < MAX_REFUSING {
                let counted = Counted::new(&refusing);
                tokio::spawn(async move {
                    linger(stream).await;
                    drop(counted);
                });
            }
            continue;
        }
        let _ = stream.set_nodelay(true);
        let state = ConnState::new();
        let registered = table.insert(state.clone(), &open);
        let service = ConnService {
            router: router.clone(),
            state: state.clone(),
            peer,
            body_timeout: limits.body_timeout,
            https: tls.is_some(),
        };
        let tls = tls.clone();
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let open = open.clone();
        tokio::spawn(async move {
            let _registered = registered;
            let io_state = state.clone();
            let serve = async move {
                match (is_tls(&stream).await, tls) {
                    (false, None) => serve_io(&builder, Watched::new(stream, io_state), service, watcher, peer).await,
                    (true, None) => {
                        tracing::debug!(%peer, "refused a TLS handshake on the plain-HTTP port");
                        // dropping the stream closes it at once
                    }
                    (true, Some(tls)) => {
                        // the handshake reads through the watch: the header timeout bounds it
                        match tls.accept(Watched::new(stream, io_state)).await {
                            Ok(io) => serve_io(&builder, io, service, watcher, peer).await,
                            Err(e) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        }
                    }
                    (false, Some(_)) => {
                        tracing::debug!(%peer, "answered a plain-HTTP request on the HTTPS port");
                        answer_now(&stream, PLAIN_ON_TLS);
                        linger(stream).await;
                    }
                }
            };
            tokio::select! {
                () = serve => {}
                reason = conn::watchdog(&state, || limits.timeouts(open.load(Relaxed))) => {
                    tracing::debug!(%peer, reason, "closed a stalled connection");
                }
            }
        });
    }
    tracing::info!("shutting down: waiting up to 30 s for open requests");
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(Duration::from_secs(30)) => {
            tracing::warn!("open requests did not finish in 30 s");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_refusals_are_whole_http_responses() {
        let (head, body) = REFUSAL.split_once("\r\n\r\n").unwrap_or_default();
        assert!(head.starts_with("HTTP/1.1 503 "));
        assert!(head.contains("\r\nRetry-After: 1"));
        assert!(head.contains(&format!("\r\nContent-Length: {}", body.len())));
        let (head, body) = PLAIN_ON_TLS.split_once("\r\n\r\n").unwrap_or_default();
        assert!(head.starts_with("HTTP/1.1 400 "));
        assert!(head.contains(&format!("\r\nContent-Length: {}", body.len())));
    }

    #[test]
    fn https_requests_say_so_and_http2_ones_get_a_host() {
        let mut req = Request::get("https://reg.example:8443/v2/")
            .header("x-forwarded-proto", "http")
            .body(())
            .unwrap_or_default();
        with_scheme_and_host(&mut req, true);
        assert_eq!(req.headers()["x-forwarded-proto"], "https");
        assert_eq!(req.headers()["host"], "reg.example:8443");
        let mut req = Request::get("/v2/").header("host", "a:1").body(()).unwrap_or_default();
        with_scheme_and_host(&mut req, false);
        assert_eq!(req.headers()["host"], "a:1");
        assert!(!req.headers().contains_key("x-forwarded-proto"));
    }

    #[test]
    fn timeouts_shrink_near_the_cap() {
        let limits = Limits {
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            busy_timeout: Duration::from_secs(2),
            body_timeout: Duration::from_secs(60),
            max_connections: 100,
        };
        let calm = limits.timeouts(10);
        assert_eq!(
            (calm.header, calm.idle),
            (Duration::from_secs(10), Duration::from_secs(60))
        );
        let busy = limits.timeouts(80);
        assert_eq!(
            (busy.header, busy.idle),
            (Duration::from_secs(2), Duration::from_secs(2))
        );
    }
}
