//! The upstream port over HTTP (reqwest, rustls).
//!
//! - Authentication: anonymous first; a `401` with `WWW-Authenticate: Bearer realm=…,
//!   service=…, scope=…` makes the client GET the realm with the service and the scopes
//!   (adding `repository:<name>:pull`), with Basic credentials when the remote has them, and
//!   take `token` or `access_token`. The token is kept per client (the factory keeps one
//!   client per remote), renewed before it expires and on a later `401`. A `Basic`
//!   challenge is answered with the remote's username and password.
//! - Redirects are followed by hand (at most [`MAX_REDIRECTS`]); `Authorization` goes only to
//!   the registry's own scheme, host and port, never to a redirect target elsewhere (an S3 or
//!   CDN URL).
//! - Retries with exponential backoff on 5xx, timeouts and connection errors, and on `429`
//!   after `Retry-After`; at most `max_retries` (default 3) per request.
//! - At most `download_concurrency` (default 4) requests at once (a blob download holds its
//!   slot until its body is read), at most `rate_limit` requests per second.
//! - Docker Hub: an upstream name without `/` gets `library/` when the URL is Docker Hub's.
//! - The remote URL policy ([`UrlPolicy`]) holds for every connection: the remote's URL when
//!   the client is built, every request's IP-literal host (the resolver is not asked about
//!   those) including each redirect target and the token realm, and every address a name
//!   resolves to (a resolver that drops refused addresses and fails when none is left). A
//!   refusal fails the request at once, naming the address and the policy; it is not retried.
//! - A remote's `proxy_url` carries every request (registry, token realm, sigstore lookaside,
//!   redirect targets) through that HTTP proxy, with Basic `Proxy-Authorization` from
//!   `proxy_username` / `proxy_password` or from credentials in the URL; it replaces the
//!   environment's `HTTP_PROXY` / `HTTPS_PROXY`. The policy holds for the proxy too: its
//!   IP-literal host when the client is built, its name through the checking resolver. The
//!   proxy resolves upstream names itself, so with a proxy only upstream IP literals are
//!   checked (before each request). A `407` fails at once, naming the proxy.
//! - TLS: `ca_cert` certificates are trusted besides the built-in roots; `client_cert` with
//!   `client_key` (PKCS#8, RSA or EC, unencrypted PEM) is presented when the upstream asks for
//!   a client certificate. Settings that do not parse fail the client's creation with the
//!   field named.
//!
//! The client is split by what each part is about:
//!
//! - [`connect`]: building the client (TLS, proxy, the checking resolver) and the remote URL
//!   policy's refusals; how transport errors are told.
//! - [`auth`]: the challenge, the token dance and Basic credentials.
//! - [`send`]: one request with retries, pacing, redirects and the concurrency slots.
//! - [`api`]: the port's operations: tags, manifests, blobs, referrers, signatures.
//!
//! Every attempt of every request (token realms, redirect targets and lookaside signatures
//! included) is counted by host and status class when the factory was given metrics.
//!
//! Layering: `domain ← ports ← {store, adapters} ← services ← http ← app ← functions/*`; this is
//! an adapter of `ports::Upstream` and knows nothing of services or the store.

mod api;
mod auth;
mod connect;
mod send;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use reqwest::Url;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::domain::UrlPolicy;
use crate::observe::Metrics;
use crate::ports::{Upstream, UpstreamConfig, UpstreamError, UpstreamFactory};

use auth::AuthState;

/// Redirects followed per request at most.
pub const MAX_REDIRECTS: usize = 8;
/// Parallel requests per client unless the remote says otherwise.
pub const DEFAULT_CONCURRENCY: u64 = 4;
/// Retries per request unless the remote says otherwise.
pub const DEFAULT_RETRIES: u64 = 3;

/// Builds [`HttpUpstream`] clients, one per remote (and its settings), so tokens and
/// connections are reused across syncs and on-demand pulls.
#[derive(Default)]
pub struct HttpUpstreamFactory {
    clients: Mutex<HashMap<String, Arc<HttpUpstream>>>,
    policy: UrlPolicy,
    metrics: Option<Arc<Metrics>>,
}

impl HttpUpstreamFactory {
    /// Clients under the default remote URL policy (loopback and private networks allowed).
    pub fn new() -> Self {
        Self::default()
    }

    /// Clients that connect only where `policy` allows.
    pub fn with_policy(policy: UrlPolicy) -> Self {
        HttpUpstreamFactory {
            clients: Mutex::default(),
            policy,
            metrics: None,
        }
    }

    /// Clients that count their requests in `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }
}

impl UpstreamFactory for HttpUpstreamFactory {
    fn client(&self, config: &UpstreamConfig) -> Result<Arc<dyn Upstream>, UpstreamError> {
        let mut clients = self
            .clients
            .lock()
            .map_err(|_| UpstreamError::Config("client cache poisoned".into()))?;
        if let Some(c) = clients.get(&config.key) {
            if c.cfg == *config {
                return Ok(c.clone());
            }
        }
        let mut c = HttpUpstream::with_policy(config.clone(), self.policy)?;
        c.metrics = self.metrics.clone();
        let c = Arc::new(c);
        if clients.len() > 256 {
            clients.clear();
        }
        clients.insert(config.key.clone(), c.clone());
        Ok(c)
    }
}

/// One upstream repository over HTTP.
pub struct HttpUpstream {
    http: reqwest::Client,
    cfg: UpstreamConfig,
    base: Url,
    /// The name in `/v2/<name>/…` (with `library/` on Docker Hub).
    name: String,
    auth: tokio::sync::Mutex<AuthState>,
    slots: Arc<Semaphore>,
    next_slot: Mutex<Option<Instant>>,
    retries: u64,
    policy: UrlPolicy,
    /// The remote's proxy as shown in messages (no credentials).
    proxy: Option<String>,
    /// Where each request is counted, by host and status class.
    metrics: Option<Arc<Metrics>>,
}

fn is_docker_hub(host: &str) -> bool {
    host == "docker.io" || host == "index.docker.io" || (host.starts_with("registry") && host.ends_with(".docker.io"))
}

impl HttpUpstream {
    /// The name used in `/v2/<name>/…` paths.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn url(&self, path: &str) -> Result<Url, UpstreamError> {
        self.base
            .join(path.trim_start_matches('/'))
            .map_err(|e| UpstreamError::Config(format!("bad path {path:?}: {e}")))
    }

    fn v2(&self, rest: &str) -> Result<Url, UpstreamError> {
        self.url(&format!("v2/{}/{rest}", self.name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn cfg(url: &str, name: &str) -> UpstreamConfig {
        UpstreamConfig {
            key: "k".into(),
            url: url.into(),
            upstream_name: crate::domain::RepoName::parse(name).unwrap(),
            username: None,
            password: None,
            tls_validation: true,
            download_concurrency: None,
            rate_limit: None,
            max_retries: None,
            total_timeout: None,
            connect_timeout: None,
            read_timeout: None,
            headers: vec![],
            proxy: None,
            tls: Default::default(),
        }
    }

    #[test]
    fn docker_hub_names_get_library() {
        let u = HttpUpstream::new(cfg("https://registry-1.docker.io", "alpine")).unwrap();
        assert_eq!(u.name(), "library/alpine");
        let u = HttpUpstream::new(cfg("https://registry-1.docker.io/", "org/app")).unwrap();
        assert_eq!(u.name(), "org/app");
        let u = HttpUpstream::new(cfg("http://127.0.0.1:5000", "alpine")).unwrap();
        assert_eq!(u.name(), "alpine");
        assert_eq!(u.location(), "http://127.0.0.1:5000/v2/alpine");
        assert!(HttpUpstream::new(cfg("ftp://x", "a")).is_err());
        assert!(HttpUpstream::new(cfg("http://u:p@x", "a")).is_err());
    }
}
