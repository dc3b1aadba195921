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
//! Layering: an adapter of `ports::Upstream`; it knows nothing of services or the store.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use http::{header, HeaderMap, HeaderName, Method, StatusCode};
use reqwest::Url;
use serde::Deserialize;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::domain::media::essence;
use crate::domain::url_policy::Refusal;
use crate::domain::{Digest, UrlPolicy};
use crate::ports::{
    AtomicSignature, ByteStream, ManifestHead, TagPage, Upstream, UpstreamBlob, UpstreamConfig, UpstreamError,
    UpstreamFactory, UpstreamManifest, UpstreamProxy, MANIFEST_ACCEPT,
};

/// Redirects followed per request at most.
pub const MAX_REDIRECTS: usize = 8;
/// Parallel requests per client unless the remote says otherwise.
pub const DEFAULT_CONCURRENCY: u64 = 4;
/// Retries per request unless the remote says otherwise.
pub const DEFAULT_RETRIES: u64 = 3;
/// Largest JSON answer read (tag list pages, manifests, signature lists).
const MAX_SMALL_BODY: usize = 32 * 1024 * 1024;
/// The longest `Retry-After` honoured; longer ones are cut to this.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);
/// The first retry waits this long; each further one twice as long (at most [`MAX_BACKOFF`]).
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// A token is renewed this long before it expires (a quarter of its lifetime when shorter).
const TOKEN_MARGIN: Duration = Duration::from_secs(10);

const SUPPORTS_SIGNATURES: HeaderName = HeaderName::from_static("x-registry-supports-signatures");
const CONTENT_DIGEST: HeaderName = HeaderName::from_static("docker-content-digest");

/// Builds [`HttpUpstream`] clients, one per remote (and its settings), so tokens and
/// connections are reused across syncs and on-demand pulls.
#[derive(Default)]
pub struct HttpUpstreamFactory {
    clients: Mutex<HashMap<String, Arc<HttpUpstream>>>,
    policy: UrlPolicy,
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
        }
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
        let c = Arc::new(HttpUpstream::with_policy(config.clone(), self.policy)?);
        if clients.len() > 256 {
            clients.clear();
        }
        clients.insert(config.key.clone(), c.clone());
        Ok(c)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Challenge {
    Bearer {
        realm: String,
        service: Option<String>,
        scopes: Vec<String>,
    },
    Basic,
}

#[derive(Default)]
struct AuthState {
    challenge: Option<Challenge>,
    token: Option<(String, Instant)>,
    /// Bumped whenever the credentials change, so concurrent 401s fetch one token.
    generation: u64,
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
}

#[derive(Deserialize)]
struct TokenAnswer {
    token: Option<String>,
    access_token: Option<String>,
    expires_in: Option<u64>,
}

#[derive(Deserialize)]
struct TagsAnswer {
    #[serde(default)]
    tags: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct SignaturesAnswer {
    #[serde(default)]
    signatures: Vec<SignatureEntry>,
}

#[derive(Deserialize)]
struct SignatureEntry {
    #[serde(rename = "schemaVersion")]
    schema_version: Option<u64>,
    #[serde(rename = "type")]
    kind: Option<String>,
    name: Option<String>,
    content: Option<String>,
}

fn is_docker_hub(host: &str) -> bool {
    host == "docker.io" || host == "index.docker.io" || (host.starts_with("registry") && host.ends_with(".docker.io"))
}

/// Parses one `WWW-Authenticate` value (`Bearer realm="…",service="…",scope="…"` or `Basic …`).
fn parse_challenge(v: &str) -> Option<Challenge> {
    let v = v.trim();
    let (scheme, rest) = v.split_once(' ').unwrap_or((v, ""));
    if scheme.eq_ignore_ascii_case("basic") {
        return Some(Challenge::Basic);
    }
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let mut params: HashMap<String, String> = HashMap::new();
    let b = rest.as_bytes();
    let mut i = 0;
    while i < b.len() {
        while i < b.len() && (b[i] == b' ' || b[i] == b',') {
            i += 1;
        }
        let ks = i;
        while i < b.len() && b[i] != b'=' {
            i += 1;
        }
        let key = rest[ks..i].trim().to_ascii_lowercase();
        i += 1;
        let mut value = String::new();
        if i < b.len() && b[i] == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' && i + 1 < b.len() {
                    i += 1;
                }
                let ch = rest[i..].chars().next()?;
                value.push(ch);
                i += ch.len_utf8();
            }
            i += 1;
        } else {
            let vs = i;
            while i < b.len() && b[i] != b',' {
                i += 1;
            }
            value = rest[vs.min(b.len())..i.min(b.len())].trim().to_owned();
        }
        if !key.is_empty() {
            params.insert(key, value);
        }
    }
    let realm = params.remove("realm")?;
    let scopes = params
        .remove("scope")
        .map(|s| s.split(' ').filter(|x| !x.is_empty()).map(str::to_owned).collect())
        .unwrap_or_default();
    Some(Challenge::Bearer {
        realm,
        service: params.remove("service"),
        scopes,
    })
}

/// The `next` target of a `Link` header, if any.
fn next_link(headers: &HeaderMap) -> Option<String> {
    for v in headers.get_all(header::LINK) {
        let Ok(v) = v.to_str() else { continue };
        for part in v.split(',') {
            let part = part.trim();
            let Some(end) = part.find('>') else { continue };
            if !part.starts_with('<') {
                continue;
            }
            let target = &part[1..end];
            let params = &part[end + 1..];
            if params
                .split(';')
                .any(|p| p.trim().replace(' ', "").eq_ignore_ascii_case("rel=\"next\"") || p.trim() == "rel=next")
            {
                return Some(target.to_owned());
            }
        }
    }
    None
}

fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get(header::RETRY_AFTER)?.to_str().ok()?.trim();
    v.parse::<u64>().ok().map(Duration::from_secs)
}

fn backoff(attempt: u64) -> Duration {
    let d = FIRST_BACKOFF.saturating_mul(1u32 << attempt.min(16));
    d.min(MAX_BACKOFF)
}

fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme() && a.host_str() == b.host_str() && a.port_or_known_default() == b.port_or_known_default()
}

/// Redacts the query of a URL (presigned URLs carry credentials there).
/// A URL fit for messages: no credentials, and the query (which may hold a presigned
/// signature or a token) replaced by `?…`.
fn shown(url: &Url) -> String {
    let mut u = url.clone();
    let had_query = u.query().is_some();
    u.set_query(None);
    let _ = u.set_password(None);
    let _ = u.set_username("");
    if had_query {
        format!("{u}?…")
    } else {
        u.to_string()
    }
}

/// Resolves names with the system resolver and keeps only the addresses the remote URL
/// policy allows; fails when none is left.
struct PolicyResolver {
    policy: UrlPolicy,
}

/// A name that resolved only to addresses the remote URL policy refuses.
#[derive(Debug)]
struct PolicyRefused(String);

impl std::fmt::Display for PolicyRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PolicyRefused {}

impl reqwest::dns::Resolve for PolicyResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.policy;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let kept = allowed_addresses(policy, &host, found)?;
            Ok(Box::new(kept.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// The addresses of `found` that `policy` allows; an error naming the first refused one when
/// that leaves none.
fn allowed_addresses(policy: UrlPolicy, host: &str, found: Vec<SocketAddr>) -> Result<Vec<SocketAddr>, PolicyRefused> {
    let mut refused: Option<Refusal> = None;
    let mut kept = Vec::with_capacity(found.len());
    for a in found {
        match policy.check_ip(a.ip()) {
            Ok(()) => kept.push(a),
            Err(e) => {
                tracing::debug!(host, address = %a.ip(), "resolved address refused by the remote URL policy");
                refused.get_or_insert(e);
            }
        }
    }
    match refused {
        Some(e) if kept.is_empty() => Err(PolicyRefused(format!("{host} resolves only to refused addresses: {e}"))),
        _ => Ok(kept),
    }
}

/// The remote URL policy's refusal inside a transport error, if that is why it failed.
fn policy_refusal(e: &reqwest::Error) -> Option<&PolicyRefused> {
    let mut src: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(s) = src {
        if let Some(r) = s.downcast_ref::<PolicyRefused>() {
            return Some(r);
        }
        src = s.source();
    }
    None
}

/// A request the remote URL policy refuses, as the error a sync reports.
fn refused(url: &Url, message: impl std::fmt::Display) -> UpstreamError {
    UpstreamError::Transport {
        url: shown(url),
        message: message.to_string(),
    }
}

/// The remote's proxy as reqwest takes it, and its URL as shown in messages. The URL must be
/// `http` or `https` with a host the remote URL policy allows (an IP literal is judged here, a
/// name by the resolver when the proxy is contacted).
fn proxy_of(p: &UpstreamProxy, policy: UrlPolicy) -> Result<(reqwest::Proxy, String), UpstreamError> {
    let url = Url::parse(p.url.trim()).map_err(|e| UpstreamError::Config(format!("proxy_url: not a URL: {e}")))?;
    let at = shown(&url);
    if !matches!(url.scheme(), "http" | "https") {
        return Err(UpstreamError::Config(format!(
            "proxy_url {at}: the scheme {:?} is not http or https",
            url.scheme()
        )));
    }
    policy
        .check_request(&url)
        .map_err(|e| UpstreamError::Config(format!("proxy_url {at}: {e}")))?;
    // credentials in the URL are taken by reqwest (percent-decoded); the fields override them
    let mut proxy =
        reqwest::Proxy::all(url.as_str()).map_err(|e| UpstreamError::Config(format!("proxy_url {at}: {e}")))?;
    if let Some(user) = p.username.as_deref().filter(|u| !u.is_empty()) {
        proxy = proxy.basic_auth(user, p.password.as_deref().unwrap_or(""));
    }
    Ok((proxy, at))
}

/// Whether a transport error is a proxy's `407` to a `CONNECT` (the tunnel's error type is
/// private to hyper-util, so it is known by its message).
fn proxy_auth_refused(e: &reqwest::Error) -> bool {
    let mut src: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(s) = src {
        if s.to_string().contains("proxy authorization required") {
            return true;
        }
        src = s.source();
    }
    false
}

/// An error and its causes, one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut message = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        message.push_str(": ");
        message.push_str(&s.to_string());
        src = s.source();
    }
    message
}

fn transport(url: &Url, e: &reqwest::Error) -> UpstreamError {
    let mut message = if e.is_timeout() {
        "timed out".to_owned()
    } else if e.is_connect() {
        "connection failed".to_owned()
    } else {
        "request failed".to_owned()
    };
    let mut src: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(s) = src {
        message.push_str(": ");
        message.push_str(&s.to_string());
        src = s.source();
    }
    UpstreamError::Transport {
        url: shown(url),
        message,
    }
}

/// A short description of an error answer: the first OCI error message, or nothing.
fn error_detail(body: &[u8]) -> String {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap_or(serde_json::Value::Null);
    let e = &v["errors"][0];
    match (e["code"].as_str(), e["message"].as_str()) {
        (Some(c), Some(m)) => format!("{c}: {m}"),
        (Some(c), None) => c.to_owned(),
        _ => String::new(),
    }
}

impl HttpUpstream {
    /// A client under the default remote URL policy (loopback and private networks allowed).
    pub fn new(cfg: UpstreamConfig) -> Result<Self, UpstreamError> {
        Self::with_policy(cfg, UrlPolicy::default())
    }

    /// A client that connects only where `policy` allows.
    pub fn with_policy(cfg: UpstreamConfig, policy: UrlPolicy) -> Result<Self, UpstreamError> {
        let trimmed = cfg.url.trim_end_matches('/');
        let base =
            Url::parse(&format!("{trimmed}/")).map_err(|e| UpstreamError::Config(format!("url {:?}: {e}", cfg.url)))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(UpstreamError::Config(format!("url {:?}: not http or https", cfg.url)));
        }
        if !base.username().is_empty() || base.password().is_some() {
            return Err(UpstreamError::Config(
                "url must not hold credentials; set username and password instead".into(),
            ));
        }
        policy
            .check_request(&base)
            .map_err(|e| UpstreamError::Config(format!("url {}: {e}", shown(&base))))?;
        let upstream = cfg.upstream_name.trim_matches('/');
        if upstream.is_empty() {
            return Err(UpstreamError::Config("upstream_name is empty".into()));
        }
        let name = if !upstream.contains('/') && base.host_str().is_some_and(is_docker_hub) {
            format!("library/{upstream}")
        } else {
            upstream.to_owned()
        };
        let tls = cfg.tls.parse().map_err(|e| UpstreamError::Config(e.to_string()))?;
        let proxy = cfg.proxy.as_ref().map(|p| proxy_of(p, policy)).transpose()?;
        // redirects are followed by hand, each target checked against the policy (`send`)
        let mut b = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .dns_resolver(Arc::new(PolicyResolver { policy }))
            .connect_timeout(cfg.connect_timeout.unwrap_or(Duration::from_secs(30)))
            .read_timeout(cfg.read_timeout.unwrap_or(Duration::from_secs(120)))
            .user_agent(concat!("berth/", env!("CARGO_PKG_VERSION")))
            .danger_accept_invalid_certs(!cfg.tls_validation);
        if let Some(t) = cfg.total_timeout {
            b = b.timeout(t);
        }
        for (i, der) in tls.roots.iter().enumerate() {
            let c = reqwest::Certificate::from_der(der)
                .map_err(|e| UpstreamError::Config(format!("ca_cert: certificate {}: {}", i + 1, chain(&e))))?;
            b = b.add_root_certificate(c);
        }
        if let Some(pem) = tls.identity_pem() {
            let id = reqwest::Identity::from_pem(pem.as_bytes())
                .map_err(|e| UpstreamError::Config(format!("client_cert and client_key: {}", chain(&e))))?;
            b = b.identity(id);
        }
        let proxy_shown = proxy.as_ref().map(|(_, at)| at.clone());
        if let Some((p, _)) = proxy {
            b = b.proxy(p);
        }
        let http = b.build().map_err(|e| {
            let what = if tls.roots.is_empty() && tls.identity.is_none() {
                ""
            } else {
                " (check ca_cert, client_cert and client_key)"
            };
            UpstreamError::Config(format!("cannot build an HTTP client{what}: {}", chain(&e)))
        })?;
        let concurrency = cfg.download_concurrency.unwrap_or(DEFAULT_CONCURRENCY).clamp(1, 64) as usize;
        Ok(HttpUpstream {
            http,
            base,
            name,
            auth: tokio::sync::Mutex::new(AuthState::default()),
            slots: Arc::new(Semaphore::new(concurrency)),
            next_slot: Mutex::new(None),
            retries: cfg.max_retries.unwrap_or(DEFAULT_RETRIES).min(20),
            cfg,
            policy,
            proxy: proxy_shown,
        })
    }

    /// A proxy's refusal of the proxy credentials, as the error a sync reports.
    fn proxy_refused(&self, url: &Url) -> UpstreamError {
        let proxy = self.proxy.as_deref().unwrap_or("the proxy");
        let given = self.cfg.proxy.as_ref().is_some_and(|p| p.username.is_some()) || proxy_has_credentials(&self.cfg);
        let hint = if given {
            "check proxy_username and proxy_password"
        } else {
            "set proxy_username and proxy_password"
        };
        UpstreamError::Unauthorized {
            url: shown(url),
            code: 407,
            detail: format!("the proxy {proxy} answered 407 Proxy Authentication Required ({hint})"),
        }
    }

    /// A transport error, naming the proxy it went through.
    fn transport(&self, url: &Url, e: &reqwest::Error) -> UpstreamError {
        match (transport(url, e), &self.proxy) {
            (UpstreamError::Transport { url, message }, Some(p)) => UpstreamError::Transport {
                url,
                message: format!("{message} (through the proxy {p})"),
            },
            (other, _) => other,
        }
    }

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

    /// Waits for this request's turn under `rate_limit`.
    async fn pace(&self) {
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
    async fn attempt(
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

    /// The `Authorization` value to send now (renewing an expiring token), and its generation.
    async fn credentials(&self) -> Result<(Option<String>, u64), UpstreamError> {
        let mut st = self.auth.lock().await;
        match st.challenge.clone() {
            Some(Challenge::Basic) => Ok((self.basic(), st.generation)),
            Some(Challenge::Bearer { .. }) => {
                let fresh = st.token.as_ref().is_some_and(|(_, until)| Instant::now() < *until);
                if !fresh {
                    self.fetch_token(&mut st).await?;
                }
                Ok((st.token.as_ref().map(|(t, _)| format!("Bearer {t}")), st.generation))
            }
            None => Ok((None, st.generation)),
        }
    }

    fn basic(&self) -> Option<String> {
        let user = self.cfg.username.as_deref()?;
        let pass = self.cfg.password.as_deref().unwrap_or("");
        let enc = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
        Some(format!("Basic {enc}"))
    }

    /// Handles a 401: learns the challenge and gets new credentials, unless another request
    /// already did since `generation`. `false` when there is nothing more to try.
    async fn reauthenticate(&self, headers: &HeaderMap, generation: u64) -> Result<bool, UpstreamError> {
        let mut st = self.auth.lock().await;
        if st.generation != generation {
            return Ok(true);
        }
        let challenge = headers
            .get_all(header::WWW_AUTHENTICATE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(parse_challenge)
            .min_by_key(|c| matches!(c, Challenge::Basic));
        let Some(challenge) = challenge else {
            return Ok(false);
        };
        if challenge == Challenge::Basic && (self.cfg.username.is_none() || st.challenge == Some(Challenge::Basic)) {
            return Ok(false);
        }
        if matches!(challenge, Challenge::Bearer { .. })
            && st.challenge == Some(challenge.clone())
            && st.token.is_some()
        {
            // the token we had was refused: fetch a new one once
            st.token = None;
        }
        st.challenge = Some(challenge.clone());
        if matches!(challenge, Challenge::Bearer { .. }) {
            self.fetch_token(&mut st).await?;
        }
        st.generation += 1;
        Ok(true)
    }

    async fn fetch_token(&self, st: &mut AuthState) -> Result<(), UpstreamError> {
        let Some(Challenge::Bearer { realm, service, scopes }) = st.challenge.clone() else {
            return Ok(());
        };
        let mut url = Url::parse(&realm).map_err(|e| UpstreamError::Invalid {
            url: shown(&self.base),
            message: format!("the token realm {realm:?} is not a URL: {e}"),
        })?;
        self.policy
            .check_request(&url)
            .map_err(|e| refused(&url, format!("the token realm of {}: {e}", shown(&self.base))))?;
        let ours = format!("repository:{}:pull", self.name);
        let mut all = scopes.clone();
        if !all.contains(&ours) {
            all.push(ours);
        }
        {
            let mut q = url.query_pairs_mut();
            if let Some(s) = &service {
                q.append_pair("service", s);
            }
            for s in &all {
                q.append_pair("scope", s);
            }
            if let Some(u) = &self.cfg.username {
                q.append_pair("account", u);
            }
        }
        let basic = self.basic();
        let u2 = url.clone();
        let resp = self
            .attempt(&url, &move || {
                let mut r = self.http.get(u2.clone());
                if let Some(b) = &basic {
                    r = r.header(header::AUTHORIZATION, b);
                }
                r
            })
            .await?;
        let status = resp.status();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            st.token = None;
            return Err(UpstreamError::Unauthorized {
                url: shown(&url),
                code: status.as_u16(),
                detail: if self.cfg.username.is_some() {
                    "the token service refused the remote's username and password".into()
                } else {
                    "the token service refused an anonymous token; the remote may need a username and password".into()
                },
            });
        }
        if !status.is_success() {
            return Err(UpstreamError::Status {
                url: shown(&url),
                code: status.as_u16(),
                detail: "the token service failed".into(),
            });
        }
        let body = read_small(&url, resp).await?;
        let t: TokenAnswer = serde_json::from_slice(&body).map_err(|e| UpstreamError::Invalid {
            url: shown(&url),
            message: format!("not a token answer: {e}"),
        })?;
        let token = t
            .token
            .or(t.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| UpstreamError::Invalid {
                url: shown(&url),
                message: "the answer holds neither token nor access_token".into(),
            })?;
        // renewed a little before it expires: TOKEN_MARGIN, or a quarter of a short lifetime
        let ttl = Duration::from_secs(t.expires_in.unwrap_or(60).max(1));
        st.token = Some((token, Instant::now() + ttl - (ttl / 4).min(TOKEN_MARGIN)));
        Ok(())
    }

    /// A request to the registry with authentication, redirects and retries. Error statuses
    /// become errors; the answer is a 2xx (or a 404 when `allow_404`).
    async fn send(
        &self,
        method: Method,
        url: Url,
        accept: &[&str],
        allow_404: bool,
    ) -> Result<(reqwest::Response, Url, OwnedSemaphorePermit), UpstreamError> {
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
                    return Ok((resp, target, permit));
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

    async fn get_small(&self, url: Url, accept: &[&str]) -> Result<(HeaderMap, Bytes), UpstreamError> {
        let (resp, at, _permit) = self.send(Method::GET, url, accept, false).await?;
        let headers = resp.headers().clone();
        Ok((headers, read_small(&at, resp).await?))
    }
}

/// Whether the remote's proxy URL holds credentials itself.
fn proxy_has_credentials(cfg: &UpstreamConfig) -> bool {
    cfg.proxy
        .as_ref()
        .and_then(|p| Url::parse(p.url.trim()).ok())
        .is_some_and(|u| !u.username().is_empty() || u.password().is_some())
}

fn unauthorized_detail(body: &[u8], has_credentials: bool) -> String {
    let d = error_detail(body);
    let hint = if has_credentials {
        "the remote's credentials were refused"
    } else {
        "authentication required; the remote has no username and password"
    };
    if d.is_empty() {
        hint.to_owned()
    } else {
        format!("{d} ({hint})")
    }
}

/// Reads a whole (small) body, failing on a truncated one.
async fn read_small(url: &Url, resp: reqwest::Response) -> Result<Bytes, UpstreamError> {
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

fn content_type(h: &HeaderMap) -> Option<String> {
    h.get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(essence)
        .filter(|s| !s.is_empty())
}

fn digest_header(h: &HeaderMap) -> Option<Digest> {
    h.get(CONTENT_DIGEST)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| Digest::parse(v.trim()).ok())
}

/// The body of a blob download: fails when the connection ends before `expected` bytes, and
/// holds the concurrency slot until it is dropped.
fn blob_stream(url: Url, resp: reqwest::Response, expected: Option<u64>, permit: OwnedSemaphorePermit) -> ByteStream {
    struct St {
        inner: futures::stream::BoxStream<'static, reqwest::Result<Bytes>>,
        got: u64,
        expected: Option<u64>,
        url: Url,
        done: bool,
        _permit: OwnedSemaphorePermit,
    }
    let st = St {
        inner: resp.bytes_stream().boxed(),
        got: 0,
        expected,
        url,
        done: false,
        _permit: permit,
    };
    Box::pin(futures::stream::unfold(st, |mut st| async move {
        if st.done {
            return None;
        }
        match st.inner.next().await {
            Some(Ok(b)) => {
                st.got += b.len() as u64;
                if st.expected.is_some_and(|n| st.got > n) {
                    st.done = true;
                    let msg = format!("{} sent more than the {} bytes announced", shown(&st.url), st.got);
                    return Some((Err(io::Error::new(io::ErrorKind::InvalidData, msg)), st));
                }
                Some((Ok(b), st))
            }
            Some(Err(e)) => {
                st.done = true;
                let msg = transport(&st.url, &e).to_string();
                Some((Err(io::Error::new(io::ErrorKind::UnexpectedEof, msg)), st))
            }
            None => {
                st.done = true;
                match st.expected {
                    Some(n) if st.got != n => {
                        let msg = format!("{}: truncated body: {} of {n} bytes", shown(&st.url), st.got);
                        Some((Err(io::Error::new(io::ErrorKind::UnexpectedEof, msg)), st))
                    }
                    _ => None,
                }
            }
        }
    }))
}

#[async_trait]
impl Upstream for HttpUpstream {
    fn location(&self) -> String {
        format!("{}v2/{}", self.base, self.name)
    }

    async fn tags_page(&self, next: Option<&str>) -> Result<TagPage, UpstreamError> {
        let url = match next {
            None => self.v2("tags/list")?,
            Some(n) => {
                let u = self.base.join(n).map_err(|e| UpstreamError::Invalid {
                    url: self.location(),
                    message: format!("bad Link {n:?}: {e}"),
                })?;
                if same_origin(&u, &self.base) {
                    u
                } else {
                    // as Pulp does: the path and query against the remote's URL
                    let mut v = self.base.join(u.path()).map_err(|e| UpstreamError::Invalid {
                        url: self.location(),
                        message: format!("bad Link {n:?}: {e}"),
                    })?;
                    v.set_query(u.query());
                    v
                }
            }
        };
        let (resp, at, _permit) = self.send(Method::GET, url, &["application/json"], false).await?;
        let next = next_link(resp.headers())
            .and_then(|l| at.join(&l).ok())
            .map(|u| u.to_string());
        let body = read_small(&at, resp).await?;
        let t: TagsAnswer = serde_json::from_slice(&body).map_err(|e| UpstreamError::Invalid {
            url: shown(&at),
            message: format!("not a tag list: {e}"),
        })?;
        Ok(TagPage {
            tags: t.tags.unwrap_or_default(),
            next,
        })
    }

    async fn head_manifest(&self, reference: &str) -> Result<ManifestHead, UpstreamError> {
        let url = self.v2(&format!("manifests/{reference}"))?;
        let (resp, _, _permit) = self.send(Method::HEAD, url, &MANIFEST_ACCEPT, false).await?;
        Ok(ManifestHead {
            media_type: content_type(resp.headers()),
            digest: digest_header(resp.headers()),
        })
    }

    async fn get_manifest(&self, reference: &str) -> Result<UpstreamManifest, UpstreamError> {
        let url = self.v2(&format!("manifests/{reference}"))?;
        let (headers, bytes) = self.get_small(url, &MANIFEST_ACCEPT).await?;
        Ok(UpstreamManifest {
            bytes,
            media_type: content_type(&headers),
            digest_header: digest_header(&headers),
        })
    }

    async fn get_blob(&self, digest: &Digest) -> Result<UpstreamBlob, UpstreamError> {
        let url = self.v2(&format!("blobs/{digest}"))?;
        let (resp, at, permit) = self.send(Method::GET, url, &[], false).await?;
        let size = resp.content_length();
        Ok(UpstreamBlob {
            size,
            body: blob_stream(at, resp, size, permit),
        })
    }

    async fn referrers(&self, digest: &Digest) -> Result<Option<Bytes>, UpstreamError> {
        let url = self.v2(&format!("referrers/{digest}"))?;
        let accept = ["application/vnd.oci.image.index.v1+json"];
        match self.send(Method::GET, url, &accept, true).await {
            Ok((resp, at, _permit)) => {
                if resp.status() == StatusCode::NOT_FOUND {
                    return Ok(None);
                }
                let is_index = content_type(resp.headers())
                    .is_some_and(|c| c == "application/vnd.oci.image.index.v1+json" || c == "application/json");
                let body = read_small(&at, resp).await?;
                Ok(is_index.then_some(body))
            }
            Err(UpstreamError::Status {
                code: 400 | 405 | 501, ..
            }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn supports_signatures(&self) -> Result<bool, UpstreamError> {
        let url = self.url("v2/")?;
        let u = url.clone();
        let resp = self.attempt(&url, &move || self.http.get(u.clone())).await?;
        Ok(resp
            .headers()
            .get(SUPPORTS_SIGNATURES)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim() == "1"))
    }

    async fn extension_signatures(&self, digest: &Digest) -> Result<Vec<AtomicSignature>, UpstreamError> {
        let url = self.url(&format!("extensions/v2/{}/signatures/{digest}", self.name))?;
        let (resp, at, _permit) = self.send(Method::GET, url, &["application/json"], true).await?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Ok(Vec::new());
        }
        let body = read_small(&at, resp).await?;
        let a: SignaturesAnswer = serde_json::from_slice(&body).map_err(|e| UpstreamError::Invalid {
            url: shown(&at),
            message: format!("not a signature list: {e}"),
        })?;
        let mut out = Vec::new();
        for s in a.signatures {
            if s.schema_version != Some(2) || s.kind.as_deref() != Some("atomic") {
                continue;
            }
            let Some(content) = s.content else { continue };
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(content.trim())
                .map_err(|e| UpstreamError::Invalid {
                    url: shown(&at),
                    message: format!("signature content is not base64: {e}"),
                })?;
            out.push(AtomicSignature {
                name: s.name,
                content: Bytes::from(bytes),
            });
        }
        Ok(out)
    }

    async fn lookaside_signature(
        &self,
        sigstore: &str,
        digest: &Digest,
        n: u32,
    ) -> Result<Option<Bytes>, UpstreamError> {
        let base = sigstore.trim_end_matches('/');
        let name = self.cfg.upstream_name.trim_matches('/');
        let raw = format!(
            "{base}/{name}@{}={}/signature-{n}",
            digest.algorithm().as_str(),
            digest.hex()
        );
        let url = Url::parse(&raw).map_err(|e| UpstreamError::Config(format!("sigstore {sigstore:?}: {e}")))?;
        let u = url.clone();
        let _permit = self
            .slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| UpstreamError::Config("client closed".into()))?;
        let resp = self.attempt(&url, &move || self.http.get(u.clone())).await?;
        match resp.status() {
            s if s.is_success() => Ok(Some(read_small(&url, resp).await?)),
            StatusCode::NOT_FOUND => Ok(None),
            s => Err(UpstreamError::Status {
                url: shown(&url),
                code: s.as_u16(),
                detail: String::new(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn urls_in_messages_hide_credentials_and_queries() {
        let u = Url::parse("http://user:secret@127.0.0.1:5000/token?scope=x&X-Amz-Signature=abc").unwrap();
        assert_eq!(shown(&u), "http://127.0.0.1:5000/token?…");
        let u = Url::parse("http://127.0.0.1:5000/v2/a/tags/list").unwrap();
        assert_eq!(shown(&u), "http://127.0.0.1:5000/v2/a/tags/list");
    }

    #[test]
    fn parses_bearer_and_basic_challenges() {
        let c = parse_challenge(
            r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push""#,
        )
        .unwrap();
        assert_eq!(
            c,
            Challenge::Bearer {
                realm: "https://auth.example/token".into(),
                service: Some("registry.example".into()),
                scopes: vec!["repository:a/b:pull,push".into()],
            }
        );
        assert_eq!(parse_challenge(r#"Basic realm="x""#), Some(Challenge::Basic));
        assert_eq!(parse_challenge("Negotiate"), None);
        assert_eq!(parse_challenge("Bearer service=x"), None);
        let c = parse_challenge("bearer realm=http://x/t, service=s").unwrap();
        assert!(matches!(c, Challenge::Bearer { ref realm, .. } if realm == "http://x/t"));
    }

    #[test]
    fn finds_the_next_link() {
        let mut h = HeaderMap::new();
        h.insert(
            header::LINK,
            HeaderValue::from_static("</v2/x/tags/list?n=2&last=b>; rel=\"next\""),
        );
        assert_eq!(next_link(&h).as_deref(), Some("/v2/x/tags/list?n=2&last=b"));
        h.insert(header::LINK, HeaderValue::from_static("<http://a/b>; rel=\"prev\""));
        assert_eq!(next_link(&h), None);
    }

    fn cfg(url: &str, name: &str) -> UpstreamConfig {
        UpstreamConfig {
            key: "k".into(),
            url: url.into(),
            upstream_name: name.into(),
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

    #[test]
    fn the_resolver_keeps_only_allowed_addresses() {
        use crate::domain::PrivateNetworks;
        let a = |s: &str| -> SocketAddr { s.parse().unwrap() };
        let deny = UrlPolicy::new(PrivateNetworks::Deny);
        let found = vec![a("127.0.0.1:0"), a("93.184.215.14:0"), a("[::ffff:169.254.169.254]:0")];
        assert_eq!(
            allowed_addresses(UrlPolicy::default(), "h", found.clone()).unwrap(),
            vec![a("127.0.0.1:0"), a("93.184.215.14:0")]
        );
        assert_eq!(allowed_addresses(deny, "h", found).unwrap(), vec![a("93.184.215.14:0")]);
        let e = allowed_addresses(deny, "h", vec![a("10.0.0.1:0"), a("[fe80::1]:0")]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "h resolves only to refused addresses: 10.0.0.1 is a private network address, which the \
             remote URL policy refuses with BERTH_REMOTE_PRIVATE_NETWORKS=deny"
        );
    }

    #[test]
    fn clients_refuse_refused_literal_urls() {
        for url in ["http://169.254.169.254", "http://[fd00:ec2::254]:80", "http://0x7f.1"] {
            let policy = UrlPolicy::new(crate::domain::PrivateNetworks::Deny);
            let e = HttpUpstream::with_policy(cfg(url, "a"), policy).err().unwrap();
            assert!(matches!(e, UpstreamError::Config(_)), "{url}: {e:?}");
        }
        assert!(HttpUpstream::new(cfg("http://0x7f.1", "a")).is_ok());
    }

    #[test]
    fn presigned_queries_are_not_shown() {
        let u = Url::parse("https://bucket.s3/x?X-Amz-Signature=secret").unwrap();
        assert!(!shown(&u).contains("secret"));
    }
}
