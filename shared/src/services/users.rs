//! Users and passwords: argon2id hashes in the store, verified in constant time, with a short
//! cache of recent successes (so the CLI's bursts of requests don't each pay for a hash) and
//! a delay after failures (so passwords can't be guessed at line rate).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use rand::Rng;
use sha2::Digest as _;

use crate::ports::StoreError;
use crate::store::{Store, User};

const CACHE_TTL: Duration = Duration::from_secs(60);

pub struct Users {
    store: Store,
    /// sha256(user ‖ 0 ‖ password) → when it last verified.
    cache: Mutex<HashMap<[u8; 32], (User, Instant)>>,
    /// user → consecutive failures.
    failures: Mutex<HashMap<String, u32>>,
}

pub fn hash_password(password: &str) -> Result<String, StoreError> {
    let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| StoreError::other_msg(format!("hashing a password failed: {e}")))
}

/// A random password of 24 letters and digits.
pub fn generate_password() -> String {
    const CHARS: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let mut rng = rand::thread_rng();
    (0..24).map(|_| CHARS[rng.gen_range(0..CHARS.len())] as char).collect()
}

impl Users {
    pub fn new(store: Store) -> Self {
        Users {
            store,
            cache: Mutex::new(HashMap::new()),
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// Makes sure the admin account exists. With `password` set, the admin's password is
    /// (re)set to it. Without, a password is generated on first start and returned so the
    /// caller can show it once; later starts keep the stored hash and return `None`.
    pub async fn ensure_admin(&self, password: Option<&str>) -> Result<Option<String>, StoreError> {
        match password {
            Some(p) => {
                if let Some(u) = self.store.user("admin").await? {
                    if verify(&u.password_hash, p).await {
                        return Ok(None);
                    }
                }
                self.set_user("admin", p, true).await?;
                Ok(None)
            }
            None => {
                if self.store.user("admin").await?.is_some() {
                    return Ok(None);
                }
                let p = generate_password();
                let created = self
                    .store
                    .create_user(&User {
                        name: "admin".into(),
                        password_hash: hash_password(&p)?,
                        admin: true,
                    })
                    .await?;
                Ok(created.then_some(p))
            }
        }
    }

    /// Creates or replaces a user.
    pub async fn set_user(&self, name: &str, password: &str, admin: bool) -> Result<(), StoreError> {
        self.store
            .put_user(&User {
                name: name.to_owned(),
                password_hash: hash_password(password)?,
                admin,
            })
            .await?;
        if let Ok(mut c) = self.cache.lock() {
            c.retain(|_, (u, _)| u.name != name);
        }
        Ok(())
    }

    /// The user these credentials belong to, or `None`. Failures are answered after a delay
    /// that grows with consecutive failures for that user name (up to 3 s).
    pub async fn authenticate(&self, name: &str, password: &str) -> Result<Option<User>, StoreError> {
        let key: [u8; 32] = {
            let mut h = sha2::Sha256::new();
            h.update(name.as_bytes());
            h.update([0u8]);
            h.update(password.as_bytes());
            h.finalize().into()
        };
        if let Ok(c) = self.cache.lock() {
            if let Some((u, at)) = c.get(&key) {
                if at.elapsed() < CACHE_TTL {
                    return Ok(Some(u.clone()));
                }
            }
        }
        let user = self.store.user(name).await?;
        let ok = match &user {
            Some(u) => verify(&u.password_hash, password).await,
            None => {
                // spend the same time as a real check, so unknown names don't stand out
                let _ = verify(DUMMY_HASH, password).await;
                false
            }
        };
        if ok {
            if let Ok(mut f) = self.failures.lock() {
                f.remove(name);
            }
            let u = user.ok_or(StoreError::NotFound)?;
            if let Ok(mut c) = self.cache.lock() {
                c.retain(|_, (_, at)| at.elapsed() < CACHE_TTL);
                c.insert(key, (u.clone(), Instant::now()));
            }
            return Ok(Some(u));
        }
        let n = match self.failures.lock() {
            Ok(mut f) => {
                if f.len() > 10_000 {
                    f.clear();
                }
                let e = f.entry(name.to_owned()).or_insert(0);
                *e = e.saturating_add(1);
                *e
            }
            Err(_) => 1,
        };
        let delay = Duration::from_millis((200u64 << n.min(4)).min(3000));
        tracing::warn!(user = %name, failures = n, "authentication failed");
        tokio::time::sleep(delay).await;
        Ok(None)
    }
}

const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$6nBvFxyn1bYM8o1Hf3Su4cWKbU2kjzBDXqgXdUCnz9A";

async fn verify(hash: &str, password: &str) -> bool {
    let (hash, password) = (hash.to_owned(), password.to_owned());
    tokio::task::spawn_blocking(move || match PasswordHash::new(&hash) {
        Ok(h) => Argon2::default().verify_password(password.as_bytes(), &h).is_ok(),
        Err(_) => false,
    })
    .await
    .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::memory::MemoryTable;
    use std::sync::Arc;

    #[tokio::test]
    async fn admin_is_created_once_and_verified() {
        let store = Store::new(Arc::new(MemoryTable::new()));
        let users = Users::new(store.clone());
        let p = users.ensure_admin(None).await.unwrap().unwrap();
        assert_eq!(users.ensure_admin(None).await.unwrap(), None, "shown once");
        assert!(!store.user("admin").await.unwrap().unwrap().password_hash.contains(&p));
        assert!(users.authenticate("admin", &p).await.unwrap().is_some());
        assert!(users.authenticate("admin", &p).await.unwrap().is_some(), "cached");
        assert!(users.authenticate("admin", "wrong").await.unwrap().is_none());
        assert!(users.authenticate("nobody", &p).await.unwrap().is_none());
        users.ensure_admin(Some("s3cret")).await.unwrap();
        assert!(users.authenticate("admin", "s3cret").await.unwrap().is_some());
        assert!(
            users.authenticate("admin", &p).await.unwrap().is_none(),
            "the old password no longer works"
        );
        assert!(PasswordHash::new(DUMMY_HASH).is_ok());
    }
}
