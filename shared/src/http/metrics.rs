//! `GET /metrics`: the instance's metrics in the Prometheus text format, for the local binary
//! (on Lambda each instance's counters mean nothing to a scraper; EMF documents replace this).
//!
//! Served only when a token is set (`BERTH_METRICS_TOKEN`): without one the route answers
//! `404`, with one a request must carry `Authorization: Bearer <token>` or is answered `401`.
//! The figures name route templates, statuses and upstream hosts, never repositories.
//!
//! Layering: part of `http`; reads the registry (`observe`) and the gauges (`services`).

use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use http::{header, HeaderMap, HeaderValue, StatusCode};
use sha2::{Digest as _, Sha256};

use crate::config::Secret;
use crate::observe::{exposition, process, Metrics};
use crate::services::observed::Gauges;

pub const PATH: &str = "/metrics";

struct MetricsState {
    token: Option<Secret>,
    metrics: Arc<Metrics>,
    gauges: Gauges,
}

/// The `/metrics` route.
pub fn router(token: Option<Secret>, metrics: Arc<Metrics>, gauges: Gauges) -> Router {
    Router::new()
        .route(PATH, get(serve))
        .with_state(Arc::new(MetricsState { token, metrics, gauges }))
}

/// Whether `headers` carry `Authorization: Bearer <token>` (compared by digest, so the time
/// taken says nothing about the token).
fn authorized(headers: &HeaderMap, token: &Secret) -> bool {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim());
    given.is_some_and(|g| Sha256::digest(g.as_bytes()) == Sha256::digest(token.expose().as_bytes()))
}

fn text(status: StatusCode, body: &'static str) -> Response {
    (status, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response()
}

async fn serve(State(s): State<Arc<MetricsState>>, headers: HeaderMap) -> Response {
    let Some(token) = &s.token else {
        return text(StatusCode::NOT_FOUND, "metrics are off (set BERTH_METRICS_TOKEN)\n");
    };
    if !authorized(&headers, token) {
        let mut r = text(StatusCode::UNAUTHORIZED, "a bearer token is required\n");
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"berth-metrics\""),
        );
        return r;
    }
    let mut families = s.metrics.families();
    families.extend(s.gauges.read().await.families());
    families.extend(process::families(s.metrics.started()));
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, exposition::CONTENT_TYPE)],
        exposition::render(&families),
    )
        .into_response()
}
