//! What `/token` gives whom: an access token for the part of the requested scopes the caller
//! may have, and, when asked for (`offline_token=true` on a GET, `access_type=offline` on the
//! OAuth2 POST), a refresh token that the client trades for access tokens later without the
//! password. Callers prove who they are with a password (throttled as every login is), with a
//! refresh token, or not at all (anonymous, who gets what anyone may do and never a refresh
//! token).
//!
//! A refresh token works while its user exists with the password it was issued under, and for
//! at most [`REFRESH_LIFETIME`](super::tokens::REFRESH_LIFETIME): deleting a user or setting a password ends its refresh tokens
//! at their next use. Access tokens are not looked up again; they end when they expire
//! ([`Tokens::lifetime`]).

use std::net::IpAddr;
use std::time::Duration;

use super::access::AccessRules;
use super::accounts::{Accounts, Identity};
use super::tokens::{Access, Claims, Tokens};
use super::users::{password_fingerprint, Login, Users};
use crate::ports::StoreError;

/// How the caller proves who it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credentials {
    Anonymous,
    Password { user: String, password: String },
    Refresh(String),
}

/// One request for a token.
#[derive(Debug, Clone)]
pub struct TokenRequest {
    pub credentials: Credentials,
    /// The audience of the tokens: the registry's service name.
    pub service: String,
    pub scopes: Vec<Access>,
    /// Whether a refresh token is wanted too.
    pub offline: bool,
}

/// What was issued.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    pub token: String,
    pub claims: Claims,
    pub refresh_token: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum GrantError {
    /// Wrong password, unknown user, or a refresh token that is not (or no longer) good.
    #[error("{0}")]
    Denied(&'static str),
    /// Too many failed logins; try again after the duration.
    #[error("too many failed login attempts")]
    Throttled(Duration),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Issues the tokens `req` asks for, to the caller its credentials prove, from `client`.
pub async fn grant_token(
    tokens: &Tokens,
    users: &Users,
    accounts: &Accounts,
    rules: &AccessRules,
    req: TokenRequest,
    client: Option<IpAddr>,
) -> Result<IssuedToken, GrantError> {
    let user = match &req.credentials {
        Credentials::Anonymous => None,
        Credentials::Password { user, password } => match users.authenticate(user, password, client).await? {
            Login::User(u) => Some(u),
            Login::Denied => return Err(GrantError::Denied("invalid username or password")),
            Login::Throttled { retry_after } => return Err(GrantError::Throttled(retry_after)),
        },
        Credentials::Refresh(token) => {
            let (name, fingerprint) = tokens
                .verify_refresh(token, &req.service)
                .map_err(|_| GrantError::Denied("invalid refresh token"))?;
            let Some(u) = users.by_refresh(&name, &fingerprint).await? else {
                return Err(GrantError::Denied(
                    "the refresh token's user no longer exists or has another password; log in again",
                ));
            };
            Some(u)
        }
    };
    let identity = match &user {
        Some(u) => accounts
            .login_identity(u)
            .await?
            .ok_or(GrantError::Denied("invalid username or password"))?,
        None => Identity::anonymous(),
    };
    let mut access = rules.grant(&identity, req.scopes.clone()).await?;
    let asked: usize = req.scopes.iter().map(|a| a.actions.len()).sum();
    let given: usize = access.iter().map(|a| a.actions.len()).sum();
    if given < asked && identity.is_authenticated() {
        // roles given moments ago through another process count at once
        if let Some(fresh) = accounts.refreshed(&identity).await? {
            access = rules.grant(&fresh, req.scopes).await?;
        }
    }
    let sub = identity.user.as_deref().unwrap_or("");
    let (token, claims) = tokens.issue(sub, &req.service, access);
    let refresh_token = match (&user, req.offline) {
        (Some(u), true) => Some(tokens.issue_refresh(&u.name, &req.service, &password_fingerprint(u))),
        _ => None,
    };
    Ok(IssuedToken {
        token,
        claims,
        refresh_token,
    })
}
