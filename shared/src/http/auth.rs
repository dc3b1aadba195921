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
use crate::services::{
    grant_token, AccessRules, Accounts, AuthMode, Credentials, GrantError, Identity, Login, TokenRequest, Users,
};

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
    pub accounts: Arc<Accounts>,
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

/// Basic credentials: `None` when there are none, which includes an empty user name and
/// password (containers/image sends `Basic Og==`, ":", when it holds no credentials for the
/// registry); `Some(Err)` when they don't decode.
fn basic(headers: &HeaderMap) -> Option<Result<(String, String), ()>> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = v.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .ok()
        .and_then(|raw| String::from_utf8(raw).ok())
        .and_then(|s| s.split_once(':').map(|(u, p)| (u.to_owned(), p.to_owned())));
    match decoded {
        Some((u, p)) if u.is_empty() && p.is_empty() => None,
        Some(creds) => Some(Ok(creds)),
        None => Some(Err(())),
    }
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
                identity: Identity::superuser(""),
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
                // the token's access was granted when it was issued; its user must still be
                // there (and active) for it to work
                let identity = if claims.sub.is_empty() {
                    Identity::anonymous()
                } else {
                    match self.accounts.identity(&claims.sub).await {
                        Ok(Some(id)) => id,
                        Ok(None) => {
                            return Err(self.challenge(
                                headers,
                                need,
                                Some("invalid_token"),
                                "the token's user no longer exists or is disabled",
                            ))
                        }
                        Err(e) => return Err(crate::services::RegistryError::from(e).into()),
                    }
                };
                Ok(Granted {
                    identity,
                    claims: Some(claims),
                })
            }
            AuthMode::Basic => {
                let mut identity = match basic(headers) {
                    None => Identity::anonymous(),
                    Some(Err(())) => return Err(self.challenge(headers, need, None, "malformed credentials")),
                    Some(Ok((u, p))) => match self.users.authenticate(&u, &p, client_addr()).await {
                        Ok(Login::User(user)) => match self.accounts.login_identity(&user).await {
                            Ok(Some(id)) => id,
                            Ok(None) => {
                                return Err(self.challenge(headers, need, None, "invalid username or password"))
                            }
                            Err(e) => return Err(crate::services::RegistryError::from(e).into()),
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
                let mut ok = self.allows(&identity, need).await?;
                if !ok && identity.is_authenticated() {
                    // roles given moments ago elsewhere count at once
                    if let Some(fresh) = self
                        .accounts
                        .refreshed(&identity)
                        .await
                        .map_err(|e| OciError::from(crate::services::RegistryError::from(e)))?
                    {
                        ok = self.allows(&fresh, need).await?;
                        identity = fresh;
                    }
                }
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

impl RegistryAuth {
    /// Whether `identity` may do what `need` asks (Basic mode).
    async fn allows(&self, identity: &Identity, need: &Need) -> Result<bool, OciError> {
        let store = |e| OciError::from(crate::services::RegistryError::from(e));
        Ok(match need {
            // an anonymous ping is challenged, so that clients holding credentials
            // (`login`, skopeo and podman pushes) learn they should send them; anonymous
            // pulls of public content go on without a ping's answer
            Need::Session => identity.user.is_some(),
            Need::Catalog => true,
            Need::Repo(name, "pull") => self.rules.may_pull(identity, name).await.map_err(store)?,
            Need::Repo(name, _) => self.rules.may_push(identity, name).await.map_err(store)?,
        })
    }
}

/// `/token`: the Docker token protocol's `GET` (Basic credentials or none, `scope`, `service`,
/// `offline_token`) and its OAuth2 `POST` (a form: `grant_type=password` with `username` and
/// `password`, or `grant_type=refresh_token` with `refresh_token`; `service`, `scope`,
/// `access_type=offline`, `client_id`), as containerd and docker send them.
pub fn token_router(auth: Arc<RegistryAuth>) -> Router {
    Router::new()
        .route("/token", get(token_get).post(token_post))
        .route("/token/", get(token_get).post(token_post))
        .with_state(auth)
}

/// The largest OAuth2 form `POST /token` reads.
const MAX_TOKEN_FORM: usize = 64 * 1024;

/// `401` with a Basic challenge, as `/token` answers credentials it does not take.
fn token_unauthorized(msg: &str) -> Response {
    OciError::new(OciCode::Unauthorized, msg)
        .header(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"berth\""),
        )
        .into_response()
}

/// The scopes of `scope` parameters: each may hold several, separated by spaces.
fn scopes<'a>(values: impl Iterator<Item = &'a str>) -> Vec<crate::services::tokens::Access> {
    values.flat_map(|v| v.split(' ').filter_map(parse_scope)).collect()
}

async fn token_get(State(auth): State<Arc<RegistryAuth>>, req: Request) -> Response {
    let headers = req.headers();
    let query: Vec<(String, String)> = req
        .uri()
        .query()
        .and_then(|q| serde_urlencoded::from_str(q).ok())
        .unwrap_or_default();
    let field = |name: &str| query.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    let credentials = match basic(headers) {
        None if headers.get(header::AUTHORIZATION).is_some() && !is_basic(headers) => {
            return token_unauthorized("unsupported authorization scheme")
        }
        None => Credentials::Anonymous,
        Some(Err(())) => return token_unauthorized("malformed credentials"),
        Some(Ok((user, password))) => Credentials::Password { user, password },
    };
    let request = TokenRequest {
        credentials,
        service: field("service").map_or_else(|| auth.service(headers), str::to_owned),
        scopes: scopes(query.iter().filter(|(k, _)| k == "scope").map(|(_, v)| v.as_str())),
        offline: field("offline_token").is_some_and(|v| v.eq_ignore_ascii_case("true")),
    };
    issue(&auth, request, false).await
}

async fn token_post(State(auth): State<Arc<RegistryAuth>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body = match axum::body::to_bytes(body, MAX_TOKEN_FORM).await {
        Ok(b) => b,
        Err(_) => return OciError::http(HttpAnswer::BadQuery, "the token request form is too large").into_response(),
    };
    let Ok(form) = serde_urlencoded::from_bytes::<Vec<(String, String)>>(&body) else {
        return OciError::http(HttpAnswer::BadQuery, "the token request is no form").into_response();
    };
    let field = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let credentials = match field("grant_type").as_deref() {
        Some("password") => match (field("username"), field("password")) {
            (Some(user), Some(password)) if !user.is_empty() => Credentials::Password { user, password },
            _ => {
                return OciError::http(HttpAnswer::BadQuery, "grant_type=password needs username and password")
                    .into_response()
            }
        },
        Some("refresh_token") => match field("refresh_token") {
            Some(t) if !t.is_empty() => Credentials::Refresh(t),
            _ => {
                return OciError::http(HttpAnswer::BadQuery, "grant_type=refresh_token needs refresh_token")
                    .into_response()
            }
        },
        Some(other) => {
            return OciError::http(
                HttpAnswer::BadQuery,
                format!("unsupported grant_type {other:?}; use password or refresh_token"),
            )
            .into_response()
        }
        None => return OciError::http(HttpAnswer::BadQuery, "grant_type is missing").into_response(),
    };
    let request = TokenRequest {
        credentials,
        service: field("service").unwrap_or_else(|| auth.service(&parts.headers)),
        scopes: scopes(form.iter().filter(|(k, _)| k == "scope").map(|(_, v)| v.as_str())),
        offline: field("access_type").as_deref() == Some("offline"),
    };
    issue(&auth, request, true).await
}

/// Whether the request's `Authorization` is of the `Basic` scheme.
fn is_basic(headers: &HeaderMap) -> bool {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .is_some_and(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
}

/// Issues what `request` asks for and renders it: `token` and `access_token`, `expires_in`,
/// `issued_at`, `refresh_token` when one was issued, and (OAuth2) `scope`.
async fn issue(auth: &RegistryAuth, request: TokenRequest, oauth: bool) -> Response {
    let AuthMode::Token(tokens) = &auth.mode else {
        return OciError::http(HttpAnswer::NoSuchEndpoint, "token authentication is off").into_response();
    };
    let issued = match grant_token(tokens, &auth.users, &auth.accounts, &auth.rules, request, client_addr()).await {
        Ok(i) => i,
        Err(GrantError::Denied(msg)) => return token_unauthorized(msg),
        Err(GrantError::Throttled(retry_after)) => return throttled(retry_after).into_response(),
        Err(GrantError::Store(e)) => return OciError::from(crate::services::RegistryError::from(e)).into_response(),
    };
    let claims = &issued.claims;
    crate::observe::notes::note_user(Some(&claims.sub));
    let issued_at = chrono::DateTime::from_timestamp(claims.iat, 0)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default();
    let mut body = json!({
        "token": issued.token,
        "access_token": issued.token,
        "expires_in": claims.exp - claims.iat,
        "issued_at": issued_at,
    });
    if let Some(r) = &issued.refresh_token {
        body["refresh_token"] = json!(r);
    }
    if oauth {
        let granted: Vec<String> = claims
            .access
            .iter()
            .map(|a| format!("{}:{}:{}", a.kind, a.name, a.actions.join(",")))
            .collect();
        body["scope"] = json!(granted.join(" "));
    }
    let mut r = (StatusCode::OK, serde_json::to_vec(&body).unwrap_or_default()).into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}
