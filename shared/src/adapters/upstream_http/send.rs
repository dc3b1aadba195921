//! One request to an upstream: pacing under `rate_limit`, the concurrency slots, retries with
//! backoff (5xx, timeouts, connection errors, `429` after `Retry-After`), redirects followed
//! by hand with the remote URL policy checked on each target and `Authorization` kept to the
//! registry's own origin, and small answers read whole.
//!
//! Layering: `domain ← ports ← {store, adapters} ← services ← http ← app ← functions/*`; this is
//! an adapter of `ports::Upstream` and knows nothing of services or the store.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use http::{header, HeaderMap, Method, StatusCode};
use reqwest::Url;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;

use super::auth::unauthorized_detail;
use super::connect::{policy_refusal, proxy_auth_refused, refused, shown, transport};
use super::{HttpUpstream, MAX_REDIRECTS};
use crate::ports::UpstreamError;

/// Largest JSON answer read (tag list pages, manifests, signature lists).
const MAX_SMALL_BODY: usize = 32 * 1024 * 1024;
/// The longest `Retry-After` honoured; longer ones are cut to this.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);
/// The first retry waits this long; each further one twice as long (at most [`MAX_BACKOFF`]).
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// What [`HttpUpstream::send_or_stop`] got: the answer (with the URL that gave it and the
/// request's concurrency slot), or the other origin a redirect points to.
pub(super) enum Sent {
    Answer(reqwest::Response, Url, OwnedSemaphorePermit),
    Elsewhere(Url),
}

pub(super) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get(header::RETRY_AFTER)?.to_str().ok()?.trim();
    v.parse::<u64>().ok().map(Duration::from_secs)
}

pub(super) fn backoff(attempt: u64) -> Duration {
    let d = FIRST_BACKOFF.saturating_mul(1u32 << attempt.min(16));
    d.min(MAX_BACKOFF)
}

/// `host:port` of a URL, as metrics name upstream hosts (never a path or credentials).
pub(super) fn authority(url: &Url) -> String {
    let host = url.host_str().unwrap_or("");
    match url.port_or_known_default() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    }
}

pub(super) fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme() && a.host_str() == b.host_str() && a.port_or_known_default() == b.port_or_known_default()
}

/// A short description of an error answer: the first OCI error message, or nothing.
pub(super) fn error_detail(body: &[u8]) -> String {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap_or(serde_json::Value::Null);
    let e = &v["errors"][0];
    match (e["code"].as_str(), e["message"].as_str()) {
        (Some(c), Some(m)) => format!("{c}: {m}"),
        (Some(c), None) => c.to_owned(),
        _ => String::new(),
    }
}

impl HttpUpstream {
    /// Waits for this request's turn under `rate_limit`.
    pub(super) async fn pace(&self) {
        let Some(rate) = self.cfg.rate_limit.filter(|r| *r > 0) else {
            return;
        };
        let interval = Duration::from_secs_f64(1.0 / rate as f64);
        let slot = {
            let Ok(mut next) = self.next_slot.lock() else { return };
            let now = Instant::now();
            let slot = next.map_or(now, |n| n.max(now));
            *next = Some(slot + interval);
            slot
        };
        tokio::time::sleep_until(slot).await;
    }

    /// Sends one request, retrying on transport errors, 5xx and 429. Returns any other answer.
    pub(super) async fn attempt(
        &self,
        url: &Url,
        make: &(dyn Fn() -> reqwest::RequestBuilder + Send + Sync),
    ) -> Result<reqwest::Response, UpstreamError> {
        // an IP-literal host never reaches the resolver: the policy is checked here
        self.policy.check_request(url).map_err(|e| refused(url, e))?;
        let mut attempt = 0u64;
        loop {
            self.pace().await;
            let result = make().send().await;
            if let Some(m) = &self.metrics {
                m.record_upstream(&authority(url), result.as_ref().ok().map(|r| r.status().as_u16()));
            }
            let wait = match result {
                Err(e) => {
                    if let Some(r) = policy_refusal(&e) {
                        return Err(match &self.proxy {
                            Some(p) => refused(url, format!("the proxy {p}: {r}")),
                            None => refused(url, r),
                        });
                    }
                    if self.proxy.is_some() && proxy_auth_refused(&e) {
                        return Err(self.proxy_refused(url));
                    }
                    if attempt >= self.retries {
                        return Err(self.transport(url, &e));
                    }
                    tracing::debug!(url = %shown(url), error = %e, attempt, "upstream request failed; retrying");
                    backoff(attempt)
                }
                Ok(r) if r.status() == StatusCode::PROXY_AUTHENTICATION_REQUIRED && self.proxy.is_some() => {
                    return Err(self.proxy_refused(url));
                }
                Ok(r) if r.status() == StatusCode::TOO_MANY_REQUESTS => {
                    if attempt >= self.retries {
                        return Err(UpstreamError::TooManyRequests {
                            url: shown(url),
                            retries: attempt,
                        });
                    }
                    let wait = retry_after(r.headers()).unwrap_or_else(|| backoff(attempt));
                    tracing::debug!(url = %shown(url), ?wait, "upstream asks to slow down");
                    wait.min(MAX_RETRY_AFTER)
                }
                Ok(r) if r.status().is_server_error() => {
                    if attempt >= self.retries {
                        let code = r.status().as_u16();
                        let body = r.bytes().await.unwrap_or_default();
                        return Err(UpstreamError::Status {
                            url: shown(url),
                            code,
                            detail: format!("{}(retried {attempt} times)", {
                                let d = error_detail(&body);
                                if d.is_empty() {
                                    d
                                } else {
                                    format!("{d} ")
                                }
                            }),
                        });
                    }
                    tracing::debug!(url = %shown(url), status = %r.status(), attempt, "upstream failed; retrying");
                    backoff(attempt)
                }
                Ok(r) => return Ok(r),
            };
            attempt += 1;
            tokio::time::sleep(wait).await;
        }
    }

    /// A request to the registry with authentication, redirects and retries. Error statuses
    /// become errors; the answer is a 2xx (or a 404 when `allow_404`).
    pub(super) async fn send(
        &self,
        method: Method,
        url: Url,
        accept: &[&str],
        allow_404: bool,
    ) -> Result<(reqwest::Response, Url, OwnedSemaphorePermit), UpstreamError> {
        match self.send_or_stop(method, url.clone(), accept, allow_404, false).await? {
            Sent::Answer(resp, at, permit) => Ok((resp, at, permit)),
            Sent::Elsewhere(_) => Err(UpstreamError::Invalid {
                url: shown(&url),
                message: "a redirect was not followed".into(),
            }),
        }
    }

    /// As [`Self::send`]; with `stop_elsewhere`, a redirect to another origin (a CDN, an
    /// object store) is not followed but answered as [`Sent::Elsewhere`].
    pub(super) async fn send_or_stop(
        &self,
        method: Method,
        url: Url,
        accept: &[&str],
        allow_404: bool,
        stop_elsewhere: bool,
    ) -> Result<Sent, UpstreamError> {
        let permit = self
            .slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| UpstreamError::Config("client closed".into()))?;
        let accept = accept.join(", ");
        let mut reauthenticated = false;
        'auth: loop {
            let (authorization, generation) = self.credentials().await?;
            let mut target = url.clone();
            for _ in 0..=MAX_REDIRECTS {
                let own = same_origin(&target, &self.base);
                let auth = authorization.clone().filter(|_| own);
                let (m, t, acc) = (method.clone(), target.clone(), accept.clone());
                let resp = self
                    .attempt(&target, &move || {
                        let mut r = self.http.request(m.clone(), t.clone());
                        for (k, v) in &self.cfg.headers {
                            r = r.header(k.as_str(), v.as_str());
                        }
                        if !acc.is_empty() {
                            r = r.header(header::ACCEPT, acc.as_str());
                        }
                        if let Some(a) = &auth {
                            r = r.header(header::AUTHORIZATION, a.as_str());
                        }
                        r
                    })
                    .await?;
                let status = resp.status();
                if status.is_redirection() && status != StatusCode::NOT_MODIFIED {
                    let loc = resp
                        .headers()
                        .get(header::LOCATION)
                        .and_then(|v| v.to_str().ok())
                        .ok_or_else(|| UpstreamError::Invalid {
                            url: shown(&target),
                            message: format!("{status} without a Location"),
                        })?;
                    let next = target.join(loc).map_err(|e| UpstreamError::Invalid {
                        url: shown(&target),
                        message: format!("bad redirect Location: {e}"),
                    })?;
                    self.policy
                        .check_request(&next)
                        .map_err(|e| refused(&next, format!("redirected there by {}: {e}", shown(&target))))?;
                    if stop_elsewhere && !same_origin(&next, &self.base) {
                        return Ok(Sent::Elsewhere(next));
                    }
                    target = next;
                    continue;
                }
                if status == StatusCode::UNAUTHORIZED && own {
                    if !reauthenticated && self.reauthenticate(resp.headers(), generation).await? {
                        reauthenticated = true;
                        continue 'auth;
                    }
                    let body = resp.bytes().await.unwrap_or_default();
                    return Err(UpstreamError::Unauthorized {
                        url: shown(&target),
                        code: 401,
                        detail: unauthorized_detail(&body, self.cfg.username.is_some()),
                    });
                }
                if status.is_success() || (allow_404 && status == StatusCode::NOT_FOUND) {
                    return Ok(Sent::Answer(resp, target, permit));
                }
                let body = resp.bytes().await.unwrap_or_default();
                return Err(match status {
                    StatusCode::NOT_FOUND => UpstreamError::NotFound { url: shown(&target) },
                    StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => UpstreamError::Unauthorized {
                        url: shown(&target),
                        code: status.as_u16(),
                        detail: unauthorized_detail(&body, self.cfg.username.is_some()),
                    },
                    s => UpstreamError::Status {
                        url: shown(&target),
                        code: s.as_u16(),
                        detail: error_detail(&body),
                    },
                });
            }
            return Err(UpstreamError::Invalid {
                url: shown(&url),
                message: format!("more than {MAX_REDIRECTS} redirects"),
            });
        }
    }

    pub(super) async fn get_small(&self, url: Url, accept: &[&str]) -> Result<(HeaderMap, Bytes), UpstreamError> {
        let (resp, at, _permit) = self.send(Method::GET, url, accept, false).await?;
        let headers = resp.headers().clone();
        Ok((headers, read_small(&at, resp).await?))
    }
}

/// Reads a whole (small) body, failing on a truncated one.
pub(super) async fn read_small(url: &Url, resp: reqwest::Response) -> Result<Bytes, UpstreamError> {
    let expected = resp.content_length();
    let mut out = BytesMut::new();
    let mut s = resp.bytes_stream();
    while let Some(chunk) = s.next().await {
        let chunk = chunk.map_err(|e| transport(url, &e))?;
        if out.len() + chunk.len() > MAX_SMALL_BODY {
            return Err(UpstreamError::Invalid {
                url: shown(url),
                message: format!("answer larger than {MAX_SMALL_BODY} bytes"),
            });
        }
        out.extend_from_slice(&chunk);
    }
    if let Some(n) = expected {
        if out.len() as u64 != n {
            return Err(UpstreamError::Transport {
                url: shown(url),
                message: format!("truncated answer: {} of {n} bytes", out.len()),
            });
        }
    }
    Ok(out.freeze())
}
