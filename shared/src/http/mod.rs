//! HTTP: the only code that knows wire formats.
//!
//! - [`oci`]: the OCI distribution API on `/v2`.
//! - [`errors`]: the one table from service errors to OCI codes and statuses.
//! - [`path`]: the `/v2` path parser (one wildcard route, nested names).
//! - [`range`]: `Range` and `Content-Range` headers.
//! - [`durable`]: answers held until the request's writes are durable.
//! - [`ui`]: the read-only web page under `/ui/`.
//! - [`access`]: the access log and the request metrics, around every router.
//! - [`metrics`]: `GET /metrics` (Prometheus text format).
//!
//! Layering: http knows services and domain; handlers are parse → one service call → answer.

pub mod access;
pub mod auth;
pub mod durable;
pub mod errors;
pub mod metrics;
pub mod oci;
pub mod path;
pub mod pulp;
pub mod range;
pub mod ui;

pub use oci::router as oci_router;

/// The scheme clients used: `X-Forwarded-Proto` from a proxy or API Gateway (which terminate
/// TLS in front of Berth), else `http`.
pub fn scheme(headers: &http::HeaderMap) -> &'static str {
    match headers.get("x-forwarded-proto").and_then(|v| v.to_str().ok()) {
        Some(p) if p.trim().eq_ignore_ascii_case("https") => "https",
        _ => "http",
    }
}
