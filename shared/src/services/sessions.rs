//! Logins of the web page: a password checked as every login is ([`Users::authenticate`]:
//! the same accounts, the same throttling per user and per client address), and a session
//! that remembers it. A session is sealed (AES-256-GCM under the instance's field key, so
//! every instance sharing that key reads it, and no one without the key can make or read
//! one): the user's name, the fingerprint of the password it logged in with and when it
//! ends. Nothing is stored: a session works until it expires ([`SESSION_LIFETIME`]), or
//! until its user is deleted, deactivated or has a password set again (even the same one),
//! whichever comes first. Logging out forgets the session in the browser.
//!
//! Layering: `domain ← ports ← {store, adapters} ← services ← http ← app ← functions/*`;
//! part of `services`.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::accounts::{Accounts, Identity};
use super::users::{password_fingerprint, Login, Users};
use crate::ports::StoreError;
use crate::store::FieldKey;

/// How long a session lasts after its login.
pub const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 3600);

/// What a sealed session starts with ([`FieldKey::seal`]'s prefix, left out of the value).
const SEALED: &str = "enc:v1:";

/// The associated data of a sealed session: no other sealed value (a remote's credentials
/// are sealed under the remote's id and the field's name) opens as a session.
const FIELD: &str = "web-session";

#[derive(Serialize, Deserialize)]
struct Claims {
    /// The user's name.
    u: String,
    /// The fingerprint of the password it logged in with.
    f: String,
    /// When the session ends, in seconds since the epoch.
    x: i64,
}

/// The outcome of a password check.
#[derive(Debug, Clone)]
pub enum Checked {
    /// The password is right: who logged in, and (for a session) its sealed value.
    User { identity: Identity, session: String },
    /// Wrong name or password, or a user that may not log in (inactive, no password).
    Denied,
    /// Not checked now: too many failures for this user or client. Try after the duration.
    Throttled(Duration),
}

pub struct Sessions {
    key: Arc<FieldKey>,
    users: Arc<Users>,
    accounts: Arc<Accounts>,
}

impl Sessions {
    /// Sessions sealed with `key`; without one, with a key drawn now (sessions then end
    /// with the process and work on it only).
    pub fn new(key: Option<Arc<FieldKey>>, users: Arc<Users>, accounts: Arc<Accounts>) -> Self {
        let key = key.unwrap_or_else(|| Arc::new(FieldKey::from_bytes(&rand::random())));
        Sessions { key, users, accounts }
    }

    /// Checks `name`'s `password`, sent by `client`; a right one comes with a session that
    /// lasts [`SESSION_LIFETIME`] from `now` (seconds since the epoch).
    pub async fn check(
        &self,
        name: &str,
        password: &str,
        client: Option<IpAddr>,
        now: i64,
    ) -> Result<Checked, StoreError> {
        let user = match self.users.authenticate(name, password, client).await? {
            Login::User(u) => u,
            Login::Denied => return Ok(Checked::Denied),
            Login::Throttled { retry_after } => return Ok(Checked::Throttled(retry_after)),
        };
        let Some(identity) = self.accounts.login_identity(&user).await? else {
            return Ok(Checked::Denied);
        };
        let claims = Claims {
            u: user.name.clone(),
            f: password_fingerprint(&user),
            x: now.saturating_add(SESSION_LIFETIME.as_secs() as i64),
        };
        let plain = serde_json::to_string(&claims).map_err(StoreError::other)?;
        let sealed = self.key.seal(Uuid::nil(), FIELD, &plain)?;
        let session = sealed.strip_prefix(SEALED).unwrap_or(&sealed).to_owned();
        Ok(Checked::User { identity, session })
    }

    /// Who a session (the value [`Sessions::check`] gave) belongs to at `now`: `None` when it
    /// is not one of ours, has expired, or its user is gone, inactive or has another password.
    /// One read of the user.
    pub async fn identity(&self, session: &str, now: i64) -> Result<Option<Identity>, StoreError> {
        let Ok(plain) = self.key.open(Uuid::nil(), FIELD, &format!("{SEALED}{session}")) else {
            return Ok(None);
        };
        let Ok(claims) = serde_json::from_str::<Claims>(&plain) else {
            return Ok(None);
        };
        if claims.x <= now {
            return Ok(None);
        }
        let Some(user) = self.users.by_refresh(&claims.u, &claims.f).await? else {
            return Ok(None);
        };
        self.accounts.login_identity(&user).await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::adapters::memory::MemoryTable;
    use crate::store::Store;

    async fn sessions() -> (Sessions, Arc<Users>) {
        let store = Store::new(Arc::new(MemoryTable::new()));
        let users = Arc::new(Users::new(store.clone()));
        let accounts = Arc::new(Accounts::new(store));
        users.set_user("ann", "correct-horse-9", false).await.unwrap();
        (Sessions::new(None, users.clone(), accounts), users)
    }

    fn session(c: Checked) -> String {
        match c {
            Checked::User { session, .. } => session,
            other => panic!("not a login: {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_session_names_its_user_until_it_expires_or_the_password_changes() {
        let (s, users) = sessions().await;
        let now = 1_800_000_000;
        let v = session(s.check("ann", "correct-horse-9", None, now).await.unwrap());
        let who = s.identity(&v, now + 60).await.unwrap().unwrap();
        assert_eq!(who.user.as_deref(), Some("ann"));
        let end = now + SESSION_LIFETIME.as_secs() as i64;
        assert!(s.identity(&v, end - 1).await.unwrap().is_some());
        assert!(s.identity(&v, end).await.unwrap().is_none(), "expired");
        users.set_user("ann", "correct-horse-9", false).await.unwrap();
        assert!(
            s.identity(&v, now + 60).await.unwrap().is_none(),
            "the password was set again"
        );
    }

    #[tokio::test]
    async fn wrong_passwords_and_forged_or_foreign_sessions_are_refused() {
        let (s, _) = sessions().await;
        let now = 1_800_000_000;
        assert!(matches!(
            s.check("ann", "wrong", None, now).await.unwrap(),
            Checked::Denied
        ));
        assert!(matches!(
            s.check("nobody", "wrong", None, now).await.unwrap(),
            Checked::Denied
        ));
        let v = session(s.check("ann", "correct-horse-9", None, now).await.unwrap());
        // a changed byte, plain claims, another instance's key
        let mut bytes = v.clone().into_bytes();
        bytes[20] = if bytes[20] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(bytes).unwrap();
        assert!(s.identity(&tampered, now).await.unwrap().is_none());
        let plain = r#"{"u":"ann","f":"x","x":9999999999}"#;
        assert!(s.identity(plain, now).await.unwrap().is_none());
        let (other, _) = sessions().await;
        assert!(other.identity(&v, now).await.unwrap().is_none());
        // a remote's sealed credential is no session
        let key = Arc::new(FieldKey::from_seed("k"));
        let (_, users) = sessions().await;
        let s = Sessions::new(
            Some(key.clone()),
            users,
            Arc::new(Accounts::new(Store::new(Arc::new(MemoryTable::new())))),
        );
        let sealed = key.seal(Uuid::nil(), "password", plain).unwrap();
        assert!(s
            .identity(sealed.strip_prefix(SEALED).unwrap(), now)
            .await
            .unwrap()
            .is_none());
    }
}
