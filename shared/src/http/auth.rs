//! Registry authentication on the wire: the `WWW-Authenticate` challenge, Bearer tokens and
//! Basic credentials, and the `/token` endpoint.
//!
//! Password checks are throttled per user and per client address ([`Users::authenticate`]);
//! the runtime makes the client's address known by running each request inside
//! [`with_client_addr`]. A throttled login is answered `429 TOOMANYREQUESTS` with
//! `Retry-After`.

use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use base64::Engine as _;
use http::{header, HeaderMap, HeaderValue, StatusCode};
use serde_json::json;

use super::errors::{HttpAnswer, OciCode, OciError};
use crate::domain::RepoName;
use crate::services::tokens::{parse_scope, Claims, TokenError};
use crate::services::{AccessRules, AuthMode, Identity, Login, Users};

tokio::task_local! {
    static CLIENT_ADDR: IpAddr;
}

/// Runs `request`, the handling of one request, with the address of the client that sent it
/// known to the password checks (which throttle failed logins per client).
pub async fn with_client_addr<F: Future>(addr: IpAddr, request: F) -> F::Output {
    CLIENT_ADDR.scope(addr, request).await
}

/// The address of the client whose request is being handled, when the runtime said it.
pub fn client_addr() -> Option<IpAddr> {
    CLIENT_ADDR.try_with(|a| *a).ok()
}

/// Whole seconds for a `Retry-After` header (at least 1).
pub fn retry_after_secs(d: Duration) -> u64 {
    d.as_secs_f64().ceil().max(1.0) as u64
}

/// `429 TOOMANYREQUESTS` with `Retry-After`, for a throttled login.
fn throttled(retry_after: Duration) -> OciError {
    let secs = retry_after_secs(retry_after);
    OciError::new(
        OciCode::TooManyRequests,
        "too many failed login attempts; try again later",
    )
    .detail(json!({ "retry_after": secs }))
    .header(header::RETRY_AFTER, HeaderValue::from(secs))
}

/// What a request needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Need {
    /// Any authenticated session (the `/v2/` ping).
    Session,
    Catalog,
    /// `repository:<name>:<action>`.
    Repo(RepoName, &'static str),
}

impl Need {
    fn scope(&self) -> Option<String> {
        match self {
            Need::Session => None,
            Need::Catalog => Some("registry:catalog:*".into()),
            Need::Repo(name, "push") => Some(format!("repository:{name}:pull,push")),
            Need::Repo(name, action) => Some(format!("repository:{name}:{action}")),
        }
    }
}

pub struct RegistryAuth {
    pub mode: AuthMode,
    pub rules: AccessRules,
    pub users: Arc<Users>,
    pub public_url: Option<String>,
}

/// The outcome of a check: who called, and (token mode) what the token grants.
pub struct Granted {
    pub identity: Identity,
    pub claims: Option<Claims>,
}

impl Granted {
    /// Whether a cross-repository mount source may be read.
    pub async fn may_pull(&self, auth: &RegistryAuth, name: &RepoName) -> bool {
        match (&auth.mode, &self.claims) {
            (AuthMode::Open, _) => true,
            (AuthMode::Token(_), Some(c)) => c.allows("repository", name.as_str(), "pull"),
            (AuthMode::Token(_), None) => false,
            (AuthMode::Basic, _) => auth.rules.may_pull(&self.identity, name).await.unwrap_or(false),
        }
    }
}

fn basic(headers: &HeaderMap) -> Option<Result<(String, String), ()>> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = v.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    Some(
        base64::engine::general_purpose::STANDARD
            .decode(rest.trim())
            .ok()
            .and_then(|raw| String::from_utf8(raw).ok())
            .and_then(|s| s.split_once(':').map(|(u, p)| (u.to_owned(), p.to_owned())))
            .ok_or(()),
    )
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
}

impl RegistryAuth {
    /// The host clients use, which is the token service's name and the tokens' audience.
    pub fn service(&self, headers: &HeaderMap) -> String {
        match &self.public_url {
            Some(u) => u.split("://").nth(1).unwrap_or(u).trim_end_matches('/').to_owned(),
            None => headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .filter(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_graphic() && b != b'"'))
                .unwrap_or("localhost")
                .to_owned(),
        }
    }

    fn realm(&self, headers: &HeaderMap) -> String {
        match &self.public_url {
            Some(u) => format!("{}/token", u.trim_end_matches('/')),
            None => format!("{}://{}/token", super::scheme(headers), self.service(headers)),
        }
    }

    fn challenge(&self, headers: &HeaderMap, need: &Need, error: Option<&str>, message: &str) -> OciError {
        let mut err = OciError::new(OciCode::Unauthorized, message);
        let value = match &self.mode {
            AuthMode::Token(_) => {
                let mut v = format!(
                    "Bearer realm=\"{}\",service=\"{}\"",
                    self.realm(headers),
                    self.service(headers)
                );
                if let Some(s) = need.scope() {
                    v.push_str(&format!(",scope=\"{s}\""));
                }
                if let Some(e) = error {
                    v.push_str(&format!(",error=\"{e}\""));
                }
                v
            }
            _ => "Basic realm=\"berth\"".to_owned(),
        };
        if let Ok(v) = HeaderValue::from_str(&value) {
            err.headers.push((header::WWW_AUTHENTICATE, v));
        }
        if let Need::Repo(name, action) = need {
            err.detail = json!([{"Type": "repository", "Name": name, "Action": action}]);
        }
        err
    }

    /// Checks a request; answers who it is, or the 401/403 to send.
    pub async fn check(&self, headers: &HeaderMap, need: &Need) -> Result<Granted, OciError> {
        match &self.mode {
            AuthMode::Open => Ok(Granted {
                identity: Identity {
                    user: None,
                    admin: true,
                },
                claims: None,
            }),
            AuthMode::Token(tokens) => {
                let Some(token) = bearer(headers) else {
                    return Err(self.challenge(headers, need, None, "authentication required"));
                };
                let claims = match tokens.verify(token, &self.service(headers)) {
                    Ok(c) => c,
                    Err(e) => {
                        let msg = match e {
                            TokenError::Expired => "token expired",
                            _ => "invalid token",
                        };
                        return Err(self.challenge(headers, need, Some("invalid_token"), msg));
                    }
                };
                let ok = match need {
                    Need::Session => true,
                    Need::Catalog => claims.allows("registry", "catalog", "*"),
                    Need::Repo(name, action) => claims.allows("repository", name.as_str(), action),
                };
                if !ok {
                    return Err(self.challenge(headers, need, Some("insufficient_scope"), "insufficient scope"));
                }
                let identity = Identity {
                    user: (!claims.sub.is_empty()).then(|| claims.sub.clone()),
                    admin: false,
                };
                Ok(Granted {
                    identity,
                    claims: Some(claims),
                })
            }
            AuthMode::Basic => {
                let identity = match basic(headers) {
                    None => Identity::anonymous(),
                    Some(Err(())) => return Err(self.challenge(headers, need, None, "malformed credentials")),
                    Some(Ok((u, p))) => match self.users.authenticate(&u, &p, client_addr()).await {
                        Ok(Login::User(user)) => Identity {
                            user: Some(user.name),
                            admin: user.admin,
                        },
                        Ok(Login::Denied) => {
                            return Err(self.challenge(headers, need, None, "invalid username or password"))
                        }
                        Ok(Login::Throttled { retry_after }) => return Err(throttled(retry_after)),
                        Err(e) => {
                            return Err(crate::services::RegistryError::Internal(Box::new(e)).into());
                        }
                    },
                };
                let ok = match need {
                    Need::Session | Need::Catalog => true,
                    Need::Repo(name, "pull") => self
                        .rules
                        .may_pull(&identity, name)
                        .await
                        .map_err(|e| OciError::from(crate::services::RegistryError::from(e)))?,
                    Need::Repo(_, _) => self.rules.may_push(&identity),
                };
                if ok {
                    Ok(Granted { identity, claims: None })
                } else if identity.user.is_none() {
                    Err(self.challenge(headers, need, None, "authentication required"))
                } else {
                    Err(OciError::new(
                        OciCode::Denied,
                        "requested access to the resource is denied",
                    ))
                }
            }
        }
    }
}

/// `GET /token`: issues a token for the requested scopes, anonymous or with Basic auth.
pub fn token_router(auth: Arc<RegistryAuth>) -> Router {
    Router::new()
        .route("/token", get(token))
        .route("/token/", get(token))
        .with_state(auth)
}

async fn token(State(auth): State<Arc<RegistryAuth>>, req: Request) -> Response {
    let AuthMode::Token(tokens) = &auth.mode else {
        return OciError::http(HttpAnswer::NoSuchEndpoint, "token authentication is off").into_response();
    };
    let headers = req.headers();
    let query: Vec<(String, String)> = req
        .uri()
        .query()
        .and_then(|q| serde_urlencoded::from_str(q).ok())
        .unwrap_or_default();
    let unauthorized = |msg: &str| {
        OciError::new(OciCode::Unauthorized, msg)
            .header(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"berth\""),
            )
            .into_response()
    };
    let identity = match basic(headers) {
        None => {
            if headers.get(header::AUTHORIZATION).is_some() {
                return unauthorized("unsupported authorization scheme");
            }
            Identity::anonymous()
        }
        Some(Err(())) => return unauthorized("malformed credentials"),
        Some(Ok((u, p))) => match auth.users.authenticate(&u, &p, client_addr()).await {
            Ok(Login::User(user)) => Identity {
                user: Some(user.name),
                admin: user.admin,
            },
            Ok(Login::Denied) => return unauthorized("invalid username or password"),
            Ok(Login::Throttled { retry_after }) => return throttled(retry_after).into_response(),
            Err(e) => return OciError::from(crate::services::RegistryError::Internal(Box::new(e))).into_response(),
        },
    };
    let requested: Vec<_> = query
        .iter()
        .filter(|(k, _)| k == "scope")
        .flat_map(|(_, v)| v.split(' ').filter_map(parse_scope).collect::<Vec<_>>())
        .collect();
    let access = match auth.rules.grant(&identity, requested).await {
        Ok(a) => a,
        Err(e) => return OciError::from(crate::services::RegistryError::from(e)).into_response(),
    };
    let service = query
        .iter()
        .find(|(k, _)| k == "service")
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| auth.service(headers));
    let (jwt, claims) = tokens.issue(identity.user.as_deref().unwrap_or(""), &service, access);
    let issued = chrono::DateTime::from_timestamp(claims.iat, 0)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default();
    let body = json!({
        "token": jwt,
        "access_token": jwt,
        "expires_in": claims.exp - claims.iat,
        "issued_at": issued,
    });
    let mut r = (StatusCode::OK, serde_json::to_vec(&body).unwrap_or_default()).into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}
