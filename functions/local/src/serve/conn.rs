//! One connection's bounds: what it has been doing ([`ConnState`], fed by [`Watched`] I/O and
//! by the requests it carries), the watchdog that closes it when it stalls, and the request
//! body that ends with an error when the client stops sending it.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::{Instant, Sleep};

/// How often a watchdog looks again when nothing is due (the server may have come near its
/// cap meanwhile, which shortens the timeouts).
const RECHECK: Duration = Duration::from_secs(1);

/// "No time yet" in the millisecond fields.
const NONE: u64 = u64::MAX;

/// What a connection has been doing, in milliseconds since it was accepted.
pub struct ConnState {
    accepted: Instant,
    /// The last byte read or written.
    last_io: AtomicU64,
    /// When the request head being read began: the accept for the first request, else the
    /// first byte after the previous request; `NONE` while a request is in flight.
    head_started: AtomicU64,
    /// Requests dispatched whose responses are not yet fully sent.
    in_flight: AtomicUsize,
    /// The last write could not proceed (the client is not reading).
    write_blocked: AtomicBool,
    /// Asked to close to make room for a new connection.
    evicted: AtomicBool,
    evict: Notify,
}

impl ConnState {
    pub fn new() -> Arc<Self> {
        Arc::new(ConnState {
            accepted: Instant::now(),
            last_io: AtomicU64::new(0),
            head_started: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            write_blocked: AtomicBool::new(false),
            evicted: AtomicBool::new(false),
            evict: Notify::new(),
        })
    }

    /// Since when the connection has been waiting for its client without a request in flight
    /// (`None` while one is in flight, or once it was asked to close).
    pub fn waiting_since(&self) -> Option<Instant> {
        if self.in_flight.load(Relaxed) > 0 || self.evicted.load(Relaxed) {
            return None;
        }
        Some(match self.head_started.load(Relaxed) {
            NONE => self.at(self.last_io.load(Relaxed)),
            h => self.at(h),
        })
    }

    /// Asks the connection to close now if it still has no request in flight; whether it was
    /// not asked already.
    pub fn evict(&self) -> bool {
        let first = self.evicted.compare_exchange(false, true, Relaxed, Relaxed).is_ok();
        if first {
            self.evict.notify_one();
        }
        first
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.accepted.elapsed().as_millis()).unwrap_or(NONE - 1)
    }

    fn at(&self, ms: u64) -> Instant {
        self.accepted + Duration::from_millis(ms)
    }

    fn read_some(&self) {
        let now = self.now_ms();
        self.last_io.store(now, Relaxed);
        if self.in_flight.load(Relaxed) == 0 {
            let _ = self.head_started.compare_exchange(NONE, now, Relaxed, Relaxed);
        }
    }

    fn wrote(&self, progressed: bool) {
        if progressed {
            self.last_io.store(self.now_ms(), Relaxed);
        }
        self.write_blocked.store(!progressed, Relaxed);
    }

    /// A request was dispatched: its response is in flight until the guard is dropped.
    pub fn request_started(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Relaxed);
        self.head_started.store(NONE, Relaxed);
        InFlight(self.clone())
    }
}

/// A request in flight; dropped when its response has been sent (or abandoned).
pub struct InFlight(Arc<ConnState>);

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Relaxed) == 1 {
            // idle from now on: the next request's head is timed from its first byte, and
            // the idle timeout from now
            self.0.last_io.store(self.0.now_ms(), Relaxed);
        }
    }
}

/// The timeouts a watchdog enforces.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// A request head must be complete this long after it began.
    pub header: Duration,
    /// No request in flight and no bytes (or a response the client does not read) this long.
    pub idle: Duration,
}

/// Resolves when the connection has stalled past its timeouts, or was evicted with no request
/// in flight, saying how; `timeouts` is asked afresh at each look (it is shorter while the
/// server is near its connection cap).
pub async fn watchdog(state: &ConnState, timeouts: impl Fn() -> Timeouts) -> &'static str {
    loop {
        if state.evicted.load(Relaxed) {
            if state.in_flight.load(Relaxed) == 0 {
                return "closed to make room for a new connection";
            }
            // a request started meanwhile: it goes on
            state.evicted.store(false, Relaxed);
        }
        let t = timeouts();
        let now = Instant::now();
        let last_io = state.at(state.last_io.load(Relaxed));
        let (deadline, reason) = if state.in_flight.load(Relaxed) == 0 {
            let idle = (last_io + t.idle, "idle timeout");
            match state.head_started.load(Relaxed) {
                NONE => idle,
                h => std::cmp::min_by_key((state.at(h) + t.header, "header timeout"), idle, |x| x.0),
            }
        } else if state.write_blocked.load(Relaxed) {
            (last_io + t.idle, "the client stopped reading its response")
        } else {
            // a request is being handled; its body has its own timeout
            (now + RECHECK, "")
        };
        if deadline <= now && !reason.is_empty() {
            return reason;
        }
        tokio::select! {
            () = tokio::time::sleep_until(deadline.min(now + RECHECK)) => {}
            () = state.evict.notified() => {}
        }
    }
}

/// A connection's I/O, reporting progress to its [`ConnState`].
pub struct Watched<T> {
    inner: T,
    state: Arc<ConnState>,
}

impl<T> Watched<T> {
    pub fn new(inner: T, state: Arc<ConnState>) -> Self {
        Watched { inner, state }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.state.read_some();
        }
        r
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.state.wrote(r.is_ready());
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.state.wrote(r.is_ready());
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The request body went quiet for longer than the body timeout.
#[derive(Debug)]
pub struct BodyTimeout(Duration);

impl std::fmt::Display for BodyTimeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the client sent no request body bytes for {} s", self.0.as_secs())
    }
}

impl std::error::Error for BodyTimeout {}

/// A request body that fails with [`BodyTimeout`] when it is waited on for `timeout` without a
/// byte arriving. Time the handler spends elsewhere does not count.
pub struct IdleLimitedBody<B> {
    inner: B,
    timeout: Duration,
    /// Armed while the body is being waited on.
    sleep: Option<Pin<Box<Sleep>>>,
}

impl<B> IdleLimitedBody<B> {
    pub fn new(inner: B, timeout: Duration) -> Self {
        IdleLimitedBody {
            inner,
            timeout,
            sleep: None,
        }
    }
}

impl<B> Body for IdleLimitedBody<B>
where
    B: Body + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = B::Data;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                this.sleep = None;
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending => {
                let timeout = this.timeout;
                let sleep = this.sleep.get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                match sleep.as_mut().poll(cx) {
                    Poll::Ready(()) => {
                        this.sleep = None;
                        Poll::Ready(Some(Err(Box::new(BodyTimeout(timeout)))))
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A response body that keeps its request counted as in flight until it is sent or dropped.
pub struct TrackedBody<B> {
    inner: B,
    _in_flight: InFlight,
}

impl<B> TrackedBody<B> {
    pub fn new(inner: B, in_flight: InFlight) -> Self {
        TrackedBody {
            inner,
            _in_flight: in_flight,
        }
    }
}

impl<B: Body + Unpin> Body for TrackedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
