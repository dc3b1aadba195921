//! The access log and the request metrics: one log event per request (target `berth::access`)
//! when its answer's last byte went out (or the client went away), and the same figures counted
//! in the instance's metrics (and, on Lambda, written as an EMF document).
//!
//! An event holds the request id (the client's `X-Request-ID` when it is sane, else API
//! Gateway's, else a fresh one; echoed in the answer's `X-Request-ID`), the method, the route
//! *template* (`/v2/{name}/manifests/{reference}`, the Pulp operation's path pattern, never a
//! raw path or a query string), the Pulp operation's id, the status, the latency in
//! milliseconds, the body bytes received and sent, the user the request acted for (or
//! `anonymous`), for the registry's routes the repository name, and the client's address when
//! the runtime said it.
//!
//! Layering: part of `http`; records into `observe`.

use std::borrow::Cow;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use axum::Router;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use http_body::{Frame, SizeHint};

use super::path::{self, PathError, V2Path};
use super::pulp::ops::{self, Route};
use crate::observe::emf::EmfSink;
use crate::observe::notes::{self, Notes};
use crate::observe::{Metrics, RequestRecord};

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The longest client request id taken as it is.
const MAX_REQUEST_ID: usize = 128;

/// The route of requests no route matched.
pub const UNMATCHED: &str = "unmatched";

/// The request id API Gateway gave a request, put in its extensions by the Lambda glue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayRequestId(pub String);

/// Where requests are counted and, on Lambda, where their EMF documents go.
pub struct Observer {
    pub metrics: Arc<Metrics>,
    pub emf: Option<EmfSink>,
}

/// `router` with every request logged and counted.
pub fn observed(router: Router, observer: Arc<Observer>) -> Router {
    router.layer(axum::middleware::from_fn_with_state(observer, access))
}

/// The client's request id, when it is 1 to 128 letters, digits and `-_.:` (anything else
/// could forge log lines or carry secrets).
pub fn client_request_id(headers: &HeaderMap) -> Option<String> {
    let v = headers.get(&REQUEST_ID)?.to_str().ok()?;
    let sane = !v.is_empty()
        && v.len() <= MAX_REQUEST_ID
        && v.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b));
    sane.then(|| v.to_owned())
}

/// A method as metrics label it: the standard ones by name, any other as `other` (clients may
/// send any token as a method).
fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Where a request went, as logs and metrics name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteInfo {
    /// The route template.
    pub route: Cow<'static, str>,
    /// The repository a registry route names.
    pub repository: Option<String>,
    /// The Pulp operation's id.
    pub operation: Option<&'static str>,
}

impl RouteInfo {
    fn of(route: &'static str) -> Self {
        RouteInfo {
            route: Cow::Borrowed(route),
            repository: None,
            operation: None,
        }
    }
}

/// The route of `path`: the registry's and the Pulp API's parsed as their handlers parse them,
/// others by the route axum matched (`matched`).
pub fn route_of(method: &Method, path: &str, matched: Option<&str>) -> RouteInfo {
    if let Some(rest) = path.strip_prefix("/v2").filter(|r| r.is_empty() || r.starts_with('/')) {
        let rest = rest.strip_prefix('/').unwrap_or(rest);
        let (route, name) = match path::parse(rest) {
            Ok(V2Path::Base) => ("/v2/", None),
            Ok(V2Path::Catalog) => ("/v2/_catalog", None),
            Ok(V2Path::Tags(n)) => ("/v2/{name}/tags/list", Some(n)),
            Ok(V2Path::Manifest(n, _)) => ("/v2/{name}/manifests/{reference}", Some(n)),
            Ok(V2Path::Blob(n, _)) => ("/v2/{name}/blobs/{digest}", Some(n)),
            Ok(V2Path::Uploads(n)) => ("/v2/{name}/blobs/uploads/", Some(n)),
            Ok(V2Path::Upload(n, _)) => ("/v2/{name}/blobs/uploads/{uuid}", Some(n)),
            Ok(V2Path::Referrers(n, _)) => ("/v2/{name}/referrers/{digest}", Some(n)),
            Err(PathError::BadReference(b)) => ("/v2/{name}/manifests/{reference}", Some(b.name)),
            Err(PathError::Invalid(_) | PathError::NoRoute) => (UNMATCHED, None),
        };
        return RouteInfo {
            repository: name.map(|n| n.to_string()),
            ..RouteInfo::of(route)
        };
    }
    if let Some(rest) = path.strip_prefix("/extensions/v2/") {
        let name = rest
            .rsplit_once("/signatures/")
            .and_then(|(n, _)| crate::domain::RepoName::parse(n).ok());
        return match name {
            Some(n) => RouteInfo {
                repository: Some(n.to_string()),
                ..RouteInfo::of("/extensions/v2/{name}/signatures/{digest}")
            },
            None => RouteInfo::of(UNMATCHED),
        };
    }
    if path.starts_with("/pulp/api/v3/") && matched != Some("/pulp/api/v3/docs/api.json") {
        return match ops::route(method, path) {
            Route::Found(m) => RouteInfo {
                operation: Some(m.op.operation_id),
                ..RouteInfo::of(m.op.pattern)
            },
            _ => RouteInfo::of(UNMATCHED),
        };
    }
    match matched {
        Some(m) => RouteInfo {
            route: Cow::Owned(m.to_owned()),
            repository: None,
            operation: None,
        },
        None => RouteInfo::of(UNMATCHED),
    }
}

async fn access(State(obs): State<Arc<Observer>>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let gateway = req.extensions().get::<GatewayRequestId>().map(|g| g.0.clone());
    let id = client_request_id(req.headers())
        .or_else(|| gateway.clone())
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
    let matched = req.extensions().get::<MatchedPath>().map(|m| m.as_str().to_owned());
    let info = route_of(req.method(), req.uri().path(), matched.as_deref());
    let method = req.method().clone();
    let bytes_in = Arc::new(AtomicU64::new(0));
    let notes = Arc::new(Notes::default());
    let counted_in = bytes_in.clone();
    let req = req.map(move |b| Body::new(Counted::new(b, counted_in, None)));
    let mut resp = notes::scope(notes.clone(), next.run(req)).await;
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert(REQUEST_ID, v);
    }
    let entry = Entry {
        obs,
        start,
        id,
        gateway,
        method,
        info,
        status: resp.status().as_u16(),
        bytes_in,
        notes,
        client: super::auth::client_addr(),
    };
    resp.map(|b| Body::new(Counted::new(b, Arc::new(AtomicU64::new(0)), Some(entry))))
}

/// A request whose answer is on its way: logged and counted when the answer ends.
struct Entry {
    obs: Arc<Observer>,
    start: Instant,
    id: String,
    gateway: Option<String>,
    method: Method,
    info: RouteInfo,
    status: u16,
    bytes_in: Arc<AtomicU64>,
    notes: Arc<Notes>,
    client: Option<std::net::IpAddr>,
}

impl Entry {
    fn finish(self, bytes_out: u64, aborted: bool) {
        let seconds = self.start.elapsed().as_secs_f64();
        let user = self.notes.user();
        let record = RequestRecord {
            route: &self.info.route,
            method: method_label(&self.method),
            status: self.status,
            seconds,
            bytes_in: self.bytes_in.load(Ordering::Relaxed),
            bytes_out,
        };
        self.obs.metrics.record_request(&record);
        tracing::info!(
            target: "berth::access",
            request_id = %self.id,
            gateway_request_id = self.gateway.as_deref().filter(|g| *g != self.id),
            method = %self.method,
            route = %self.info.route,
            operation = self.info.operation,
            status = self.status,
            latency_ms = (seconds * 1e6).round() / 1e3,
            bytes_in = record.bytes_in,
            bytes_out,
            user = user.as_deref().unwrap_or("anonymous"),
            repository = self.info.repository.as_deref(),
            client = self.client.map(tracing::field::display),
            aborted = aborted.then_some(true),
            "request"
        );
        if let Some(sink) = &self.obs.emf {
            let now = chrono::Utc::now().timestamp_millis();
            sink.write(&sink.emf.request(&record, &self.id, now));
            for doc in sink.emf.pending(&self.obs.metrics.take_pending(), now) {
                sink.write(&doc);
            }
        }
    }
}

/// A body whose data bytes are counted; with an entry, the entry is finished when the body
/// ends, fails or is dropped.
struct Counted {
    inner: Body,
    count: Arc<AtomicU64>,
    entry: Option<Entry>,
}

impl Counted {
    fn new(inner: Body, count: Arc<AtomicU64>, entry: Option<Entry>) -> Self {
        Counted { inner, count, entry }
    }

    fn finish(&mut self, aborted: bool) {
        if let Some(e) = self.entry.take() {
            e.finish(self.count.load(Ordering::Relaxed), aborted);
        }
    }
}

impl http_body::Body for Counted {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.count.fetch_add(data.len() as u64, Ordering::Relaxed);
                }
                if this.inner.is_end_stream() {
                    this.finish(false);
                }
            }
            Poll::Ready(Some(Err(_))) => this.finish(true),
            Poll::Ready(None) => this.finish(false),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        let aborted = !http_body::Body::is_end_stream(&self.inner);
        self.finish(aborted);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_templates_and_name_the_repository() {
        let get = Method::GET;
        let r = route_of(&get, "/v2/library/alpine/manifests/latest", None);
        assert_eq!(r.route, "/v2/{name}/manifests/{reference}");
        assert_eq!(r.repository.as_deref(), Some("library/alpine"));
        let d = format!("sha256:{}", "a".repeat(64));
        let r = route_of(&get, &format!("/v2/a/b/c/blobs/{d}"), None);
        assert_eq!(
            (r.route.as_ref(), r.repository.as_deref()),
            ("/v2/{name}/blobs/{digest}", Some("a/b/c"))
        );
        let u = uuid::Uuid::new_v4();
        let r = route_of(&Method::PATCH, &format!("/v2/x/blobs/uploads/{u}"), None);
        assert_eq!(r.route, "/v2/{name}/blobs/uploads/{uuid}");
        assert_eq!(route_of(&get, "/v2/", None).route, "/v2/");
        assert_eq!(route_of(&get, "/v2", None).route, "/v2/");
        assert_eq!(route_of(&get, "/v2/_catalog", None).route, "/v2/_catalog");
        assert_eq!(
            route_of(&get, "/v2/x/manifests/%zz", None).repository.as_deref(),
            Some("x")
        );
        assert_eq!(route_of(&get, "/v2/UPPER/tags/list", None).route, UNMATCHED);
        assert_eq!(route_of(&get, "/v2x/secret", None).route, UNMATCHED);
        let r = route_of(&get, &format!("/extensions/v2/x/y/signatures/{d}"), None);
        assert_eq!(
            (r.route.as_ref(), r.repository.as_deref()),
            ("/extensions/v2/{name}/signatures/{digest}", Some("x/y"))
        );
        // the Pulp API by its operations' path patterns
        let r = route_of(
            &Method::POST,
            &format!("/pulp/api/v3/repositories/container/container/{u}/sync/"),
            None,
        );
        assert_eq!(r.route, "/pulp/api/v3/repositories/container/container/{id}/sync/");
        assert_eq!(r.operation, Some("repositories_container_container_sync"));
        assert_eq!(r.repository, None);
        assert_eq!(route_of(&get, "/pulp/api/v3/nothing/here/", None).route, UNMATCHED);
        let doc = "/pulp/api/v3/docs/api.json";
        assert_eq!(route_of(&get, doc, Some(doc)).route, doc);
        // the rest by axum's matched route
        assert_eq!(route_of(&get, "/token", Some("/token")).route, "/token");
        assert_eq!(route_of(&get, "/elsewhere", None).route, UNMATCHED);
        // methods are bounded too
        assert_eq!(method_label(&Method::PATCH), "PATCH");
        assert_eq!(method_label(&Method::from_bytes(b"BREW").unwrap()), "other");
    }

    #[test]
    fn client_request_ids_are_taken_only_when_sane() {
        let id = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(REQUEST_ID, HeaderValue::from_str(v).unwrap());
            client_request_id(&h)
        };
        assert_eq!(id("abc-123_x.y:z").as_deref(), Some("abc-123_x.y:z"));
        assert_eq!(id(""), None);
        assert_eq!(id("a b"), None);
        assert_eq!(id("a\"}{"), None);
        assert_eq!(id(&"x".repeat(129)), None);
        assert_eq!(client_request_id(&HeaderMap::new()), None);
    }
}
