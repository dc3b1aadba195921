//! Building the upstream client: its TLS settings, its proxy and the resolver that holds the
//! remote URL policy; and how a refusal or a transport error is told (URLs without
//! credentials or queries, the proxy named).
//!
//! Layering: `domain ← ports ← {store, adapters} ← services ← http ← app ← functions/*`; this is
//! an adapter of `ports::Upstream` and knows nothing of services or the store.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::Url;
use tokio::sync::Semaphore;

use super::auth::AuthState;
use super::{is_docker_hub, HttpUpstream, DEFAULT_CONCURRENCY, DEFAULT_RETRIES};
use crate::domain::url_policy::Refusal;
use crate::domain::UrlPolicy;
use crate::ports::{UpstreamConfig, UpstreamError, UpstreamProxy};

/// A URL fit for messages: no credentials, and the query (which may hold a presigned
/// signature or a token) replaced by `?…`.
pub(super) fn shown(url: &Url) -> String {
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
pub(super) struct PolicyResolver {
    policy: UrlPolicy,
}

/// A name that resolved only to addresses the remote URL policy refuses.
#[derive(Debug)]
pub(super) struct PolicyRefused(String);

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
pub(super) fn allowed_addresses(
    policy: UrlPolicy,
    host: &str,
    found: Vec<SocketAddr>,
) -> Result<Vec<SocketAddr>, PolicyRefused> {
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
pub(super) fn policy_refusal(e: &reqwest::Error) -> Option<&PolicyRefused> {
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
pub(super) fn refused(url: &Url, message: impl std::fmt::Display) -> UpstreamError {
    UpstreamError::Transport {
        url: shown(url),
        message: message.to_string(),
    }
}

/// The remote's proxy as reqwest takes it, and its URL as shown in messages. The URL must be
/// `http` or `https` with a host the remote URL policy allows (an IP literal is judged here, a
/// name by the resolver when the proxy is contacted).
pub(super) fn proxy_of(p: &UpstreamProxy, policy: UrlPolicy) -> Result<(reqwest::Proxy, String), UpstreamError> {
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
pub(super) fn proxy_auth_refused(e: &reqwest::Error) -> bool {
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
pub(super) fn chain(e: &dyn std::error::Error) -> String {
    let mut message = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        message.push_str(": ");
        message.push_str(&s.to_string());
        src = s.source();
    }
    message
}

pub(super) fn transport(url: &Url, e: &reqwest::Error) -> UpstreamError {
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
        let upstream = cfg.upstream_name.as_str();
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
            metrics: None,
        })
    }

    /// A proxy's refusal of the proxy credentials, as the error a sync reports.
    pub(super) fn proxy_refused(&self, url: &Url) -> UpstreamError {
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
    pub(super) fn transport(&self, url: &Url, e: &reqwest::Error) -> UpstreamError {
        match (transport(url, e), &self.proxy) {
            (UpstreamError::Transport { url, message }, Some(p)) => UpstreamError::Transport {
                url,
                message: format!("{message} (through the proxy {p})"),
            },
            (other, _) => other,
        }
    }
}

/// Whether the remote's proxy URL holds credentials itself.
pub(super) fn proxy_has_credentials(cfg: &UpstreamConfig) -> bool {
    cfg.proxy
        .as_ref()
        .and_then(|p| Url::parse(p.url.trim()).ok())
        .is_some_and(|u| !u.username().is_empty() || u.password().is_some())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::upstream_http::tests::cfg;

    #[test]
    fn urls_in_messages_hide_credentials_and_queries() {
        let u = Url::parse("http://user:secret@127.0.0.1:5000/token?scope=x&X-Amz-Signature=abc").unwrap();
        assert_eq!(shown(&u), "http://127.0.0.1:5000/token?…");
        let u = Url::parse("http://127.0.0.1:5000/v2/a/tags/list").unwrap();
        assert_eq!(shown(&u), "http://127.0.0.1:5000/v2/a/tags/list");
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
