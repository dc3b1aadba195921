//! Authentication against an upstream: the `WWW-Authenticate` challenge, the token dance
//! (realm, service, scopes, `token` or `access_token`, renewed before it expires and after a
//! refused one) and Basic credentials.
//!
//! Layering: `domain ← ports ← {store, adapters} ← services ← http ← app ← functions/*`; this is
//! an adapter of `ports::Upstream` and knows nothing of services or the store.

use std::collections::HashMap;
use std::time::Duration;

use base64::Engine as _;
use http::{header, HeaderMap, StatusCode};
use reqwest::Url;
use serde::Deserialize;
use tokio::time::Instant;

use super::connect::{refused, shown};
use super::send::{error_detail, read_small};
use super::HttpUpstream;
use crate::ports::UpstreamError;

/// A token is renewed this long before it expires (a quarter of its lifetime when shorter).
const TOKEN_MARGIN: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Challenge {
    Bearer {
        realm: String,
        service: Option<String>,
        scopes: Vec<String>,
    },
    Basic,
}

#[derive(Default)]
pub(super) struct AuthState {
    challenge: Option<Challenge>,
    token: Option<(String, Instant)>,
    /// Bumped whenever the credentials change, so concurrent 401s fetch one token.
    generation: u64,
}

#[derive(Deserialize)]
struct TokenAnswer {
    token: Option<String>,
    access_token: Option<String>,
    expires_in: Option<u64>,
}

/// Parses one `WWW-Authenticate` value (`Bearer realm="…",service="…",scope="…"` or `Basic …`).
pub(super) fn parse_challenge(v: &str) -> Option<Challenge> {
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

impl HttpUpstream {
    /// The `Authorization` value to send now (renewing an expiring token), and its generation.
    pub(super) async fn credentials(&self) -> Result<(Option<String>, u64), UpstreamError> {
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

    pub(super) fn basic(&self) -> Option<String> {
        let user = self.cfg.username.as_deref()?;
        let pass = self.cfg.password.as_deref().unwrap_or("");
        let enc = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
        Some(format!("Basic {enc}"))
    }

    /// Handles a 401: learns the challenge and gets new credentials, unless another request
    /// already did since `generation`. `false` when there is nothing more to try.
    pub(super) async fn reauthenticate(&self, headers: &HeaderMap, generation: u64) -> Result<bool, UpstreamError> {
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

    pub(super) async fn fetch_token(&self, st: &mut AuthState) -> Result<(), UpstreamError> {
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
}

pub(super) fn unauthorized_detail(body: &[u8], has_credentials: bool) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
