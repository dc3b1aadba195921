//! Users and passwords: argon2id hashes in the store, verified in constant time, with a short
//! cache of recent successes (so the CLI's bursts of requests don't each pay for a hash).
//!
//! What a password check may cost is bounded, whoever asks:
//! - **Hashing** runs on a small fixed pool of threads ([`LoginLimits::hash_threads`]), each
//!   reusing one Argon2 work area (19 MiB for the default parameters), fed by a bounded queue
//!   ([`LoginLimits::hash_queue`]); a check that finds the queue full is answered
//!   [`Login::Throttled`] at once. At most `hash_threads` work areas exist at any time.
//! - **Failed attempts** are spaced out per user name and per client address (IPv6 by /64):
//!   after [`LoginLimits::free_failures`] attempts, each further one gets a turn ("not before")
//!   behind the previous one, the spacing doubling from [`LoginLimits::first_step`] up to
//!   [`LoginLimits::max_step`]. A check waits for its turn (an async sleep: no thread, no hash),
//!   and one whose turn is more than [`LoginLimits::max_wait`] away is answered
//!   [`Login::Throttled`] at once. On a user name, turns are taken when a check starts, so
//!   parallel guesses at one account are spaced out like sequential ones. On a client address
//!   only failed checks count until it is past its free failures (many accounts logging in at
//!   once from one CI host are not held back), and from then on every check counts when it
//!   starts. A success resets the user's and the client's schedules.
//! - **Identical checks in flight** (the same name and password, as when many clients of one
//!   CI job log in at once) share one verification and one turn.
//! - The schedule table holds at most [`LoginLimits::max_keys`] entries (fixed-size hashed
//!   keys); beyond it the entries whose turns ended longest ago are dropped, and an entry with
//!   no attempt for [`LoginLimits::forget_after`] is forgotten.
//!
//! A cached correct password costs no hash and is never throttled.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use argon2::password_hash::{PasswordHasher, SaltString};
use argon2::Argon2;
use rand::Rng;
use sha2::Digest as _;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::ports::StoreError;
use crate::store::{Store, User};

mod hash_pool;
mod throttle;

use hash_pool::{Busy, HashPool, DUMMY_HASH};
use throttle::{client_key, user_key, Keys, Throttle};

const CACHE_TTL: Duration = Duration::from_secs(60);

/// The bounds on password checking. [`Default`] holds the values Berth runs with.
#[derive(Debug, Clone)]
pub struct LoginLimits {
    /// Threads that run Argon2, each with one reused work area (19 MiB with the default
    /// parameters): the machine's parallelism, at most [`MAX_HASH_THREADS`].
    pub hash_threads: usize,
    /// Checks that may wait for a hashing thread ([`HASH_QUEUE`]); beyond, `Throttled`.
    pub hash_queue: usize,
    /// Failed attempts a user name or client address may make before its attempts are spaced
    /// out ([`FREE_FAILURES`]).
    pub free_failures: u32,
    /// The spacing before the first spaced-out attempt ([`FIRST_STEP`]); it doubles with each
    /// further one …
    pub first_step: Duration,
    /// … up to this ([`MAX_STEP`]).
    pub max_step: Duration,
    /// A check whose turn is further away than this is answered `Throttled` at once
    /// ([`MAX_WAIT`]).
    pub max_wait: Duration,
    /// A user name or client address with no attempt for this long starts afresh
    /// ([`FORGET_AFTER`]).
    pub forget_after: Duration,
    /// Entries the schedule table holds at most ([`MAX_KEYS`]).
    pub max_keys: usize,
}

/// At most this many hashing threads, whatever the machine.
pub const MAX_HASH_THREADS: usize = 4;
/// Checks that may wait for a hashing thread.
pub const HASH_QUEUE: usize = 64;
/// Failed attempts before attempts are spaced out.
pub const FREE_FAILURES: u32 = 3;
/// The first spacing; it doubles with each further failed attempt.
pub const FIRST_STEP: Duration = Duration::from_millis(250);
/// The longest spacing between two attempts on one user name or client address.
pub const MAX_STEP: Duration = Duration::from_secs(2);
/// The longest a check waits for its turn; further away, it is refused at once.
pub const MAX_WAIT: Duration = Duration::from_secs(10);
/// How long a user name's or client's failures are remembered after its last attempt.
pub const FORGET_AFTER: Duration = Duration::from_secs(15 * 60);
/// Entries (user names and client addresses) the schedule table holds at most.
pub const MAX_KEYS: usize = 10_000;

impl Default for LoginLimits {
    fn default() -> Self {
        LoginLimits {
            hash_threads: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
                .clamp(1, MAX_HASH_THREADS),
            hash_queue: HASH_QUEUE,
            free_failures: FREE_FAILURES,
            first_step: FIRST_STEP,
            max_step: MAX_STEP,
            max_wait: MAX_WAIT,
            forget_after: FORGET_AFTER,
            max_keys: MAX_KEYS,
        }
    }
}

/// The outcome of a login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Login {
    /// The credentials are right.
    User(User),
    /// They are wrong, or there is no such user.
    Denied,
    /// Not checked: too many recent failures for this user or client, or every hashing thread
    /// is busy. Try again after `retry_after`.
    Throttled { retry_after: Duration },
}

pub struct Users {
    store: Store,
    limits: LoginLimits,
    /// sha256(user ‖ 0 ‖ password) → when it last verified.
    cache: Mutex<HashMap<[u8; 32], (User, Instant)>>,
    throttle: Mutex<Throttle>,
    hasher: HashPool,
    /// sha256(user ‖ 0 ‖ password) of checks in flight → their outcome, once known (`None`
    /// inside: the check failed with an error, and each waiter checks for itself).
    inflight: Mutex<HashMap<[u8; 32], watch::Receiver<Shared>>>,
}

/// What a check in flight tells identical checks waiting on it: nothing yet, its outcome, or
/// (`Some(None)`) that it failed with an error.
type Shared = Option<Option<Login>>;

/// Removes a check's entry from the in-flight table when the check ends, however it ends
/// (a dropped sender tells its waiters to check for themselves).
struct Inflight<'a> {
    users: &'a Users,
    key: [u8; 32],
    tx: watch::Sender<Shared>,
}

impl Drop for Inflight<'_> {
    fn drop(&mut self) {
        if let Ok(mut m) = self.users.inflight.lock() {
            m.remove(&self.key);
        }
    }
}

pub fn hash_password(password: &str) -> Result<String, StoreError> {
    let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| StoreError::other_msg(format!("hashing a password failed: {e}")))
}

/// What a refresh token remembers of its user's password: a digest of the stored hash, which
/// changes whenever the password is set (a new salt each time), even to the same password.
pub fn password_fingerprint(u: &User) -> String {
    let d = sha2::Sha256::digest(u.password_hash.as_bytes());
    d[..12].iter().map(|b| format!("{b:02x}")).collect()
}

/// A random password of 24 letters and digits.
pub fn generate_password() -> String {
    const CHARS: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let mut rng = rand::thread_rng();
    (0..24).map(|_| CHARS[rng.gen_range(0..CHARS.len())] as char).collect()
}

impl Users {
    pub fn new(store: Store) -> Self {
        Self::with_limits(store, LoginLimits::default())
    }

    /// Users with other bounds on password checking (tests).
    pub fn with_limits(store: Store, limits: LoginLimits) -> Self {
        Users {
            store,
            cache: Mutex::new(HashMap::new()),
            throttle: Mutex::new(Throttle::default()),
            hasher: HashPool::new(limits.hash_threads, limits.hash_queue),
            limits,
            inflight: Mutex::new(HashMap::new()),
        }
    }

    /// Makes sure the admin account exists. With `password` set, the admin's password is
    /// (re)set to it. Without, a password is generated on first start and returned so the
    /// caller can show it once; later starts keep the stored hash and return `None`.
    pub async fn ensure_admin(&self, password: Option<&str>) -> Result<Option<String>, StoreError> {
        match password {
            Some(p) => {
                if let Some(u) = self.store.user("admin").await? {
                    if self.hasher.verify(&u.password_hash, p).await == Ok(true) {
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
                let created = match self
                    .store
                    .create_user(&User::new("admin", hash_password(&p)?, true))
                    .await
                {
                    Ok(_) => true,
                    Err(StoreError::Conflict(_)) => false,
                    Err(e) => return Err(e),
                };
                Ok(created.then_some(p))
            }
        }
    }

    /// Creates a user or sets the password (and superuser flag) of the one stored, keeping
    /// everything else it has (its number, groups and roles).
    pub async fn set_user(&self, name: &str, password: &str, admin: bool) -> Result<(), StoreError> {
        let hash = hash_password(password)?;
        self.store
            .upsert_user(&User::new(name, hash.clone(), admin), |u| {
                u.password_hash = hash.clone();
                u.admin = admin;
            })
            .await?;
        self.forget(name);
        Ok(())
    }

    /// Drops what the password cache knows of `name` (its password or flags changed, or it
    /// was deleted).
    pub fn forget(&self, name: &str) {
        if let Ok(mut c) = self.cache.lock() {
            c.retain(|_, (u, _)| u.name != name);
        }
    }

    /// The user a refresh token names, when it exists and still has the password the token
    /// was issued under (`fingerprint`, [`password_fingerprint`]). One read.
    pub async fn by_refresh(&self, name: &str, fingerprint: &str) -> Result<Option<User>, StoreError> {
        Ok(self
            .store
            .user(name)
            .await?
            .filter(|u| password_fingerprint(u) == fingerprint))
    }

    /// Checks credentials sent by `client` (its address, when the runtime knows it). Within
    /// the bounds described in the module's documentation: a cached success answers at once;
    /// otherwise the check waits for its turn on the user's and the client's schedules, or is
    /// refused with [`Login::Throttled`].
    pub async fn authenticate(&self, name: &str, password: &str, client: Option<IpAddr>) -> Result<Login, StoreError> {
        let cache_key: [u8; 32] = {
            let mut h = sha2::Sha256::new();
            h.update(name.as_bytes());
            h.update([0u8]);
            h.update(password.as_bytes());
            h.finalize().into()
        };
        if let Ok(c) = self.cache.lock() {
            if let Some((u, at)) = c.get(&cache_key) {
                if at.elapsed() < CACHE_TTL {
                    return Ok(Login::User(u.clone()));
                }
            }
        }
        loop {
            // share the outcome of an identical check in flight
            let (mut rx, guard) = {
                let Ok(mut m) = self.inflight.lock() else {
                    return self.check(name, password, client, cache_key).await;
                };
                match m.get(&cache_key) {
                    Some(rx) => (rx.clone(), None),
                    None => {
                        let (tx, rx) = watch::channel(None);
                        m.insert(cache_key, rx.clone());
                        (
                            rx,
                            Some(Inflight {
                                users: self,
                                key: cache_key,
                                tx,
                            }),
                        )
                    }
                }
            };
            if let Some(guard) = guard {
                let result = self.check(name, password, client, cache_key).await;
                guard.tx.send_replace(Some(result.as_ref().ok().cloned()));
                return result;
            }
            let shared = match rx.wait_for(Option::is_some).await {
                Ok(outcome) => outcome.clone(),
                Err(_) => continue, // that check was dropped (its client went away)
            };
            return match shared {
                Some(Some(login)) => Ok(login),
                // the shared check failed with an error: check for ourselves
                _ => self.check(name, password, client, cache_key).await,
            };
        }
    }

    /// One check, on its turn.
    async fn check(
        &self,
        name: &str,
        password: &str,
        client: Option<IpAddr>,
        cache_key: [u8; 32],
    ) -> Result<Login, StoreError> {
        let keys = Keys {
            user: user_key(name),
            client: client.map(client_key),
        };
        let turn = match self.throttle.lock() {
            Ok(mut t) => t.reserve(&keys, &self.limits, Instant::now()),
            Err(_) => Err(Duration::from_secs(1)),
        };
        let (turn, client_counted) = match turn {
            Ok(turn) => turn,
            Err(retry_after) => {
                tracing::warn!(user = %name, client = ?client, "login throttled: too many failed attempts");
                return Ok(Login::Throttled { retry_after });
            }
        };
        tokio::time::sleep_until(turn).await;
        let user = self.store.user(name).await?;
        // an unknown name costs the same as a known one, so names don't stand out
        let hash = user.as_ref().map_or(DUMMY_HASH, |u| u.password_hash.as_str());
        let ok = match self.hasher.verify(hash, password).await {
            Ok(ok) => ok && user.is_some(),
            Err(Busy) => {
                tracing::warn!(user = %name, client = ?client, "login refused: every password-hashing thread is busy");
                return Ok(Login::Throttled {
                    retry_after: Duration::from_secs(1),
                });
            }
        };
        match user {
            Some(u) if ok && u.is_active => {
                if let Ok(mut t) = self.throttle.lock() {
                    t.reset(&keys);
                }
                if let Ok(mut c) = self.cache.lock() {
                    c.retain(|_, (_, at)| at.elapsed() < CACHE_TTL);
                    c.insert(cache_key, (u.clone(), Instant::now()));
                }
                Ok(Login::User(u))
            }
            _ => {
                if !client_counted {
                    if let (Ok(mut t), Some(k)) = (self.throttle.lock(), keys.client) {
                        t.fail(k, &self.limits, Instant::now());
                    }
                }
                tracing::warn!(user = %name, client = ?client, "authentication failed");
                Ok(Login::Denied)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::hash_pool::verify_with;
    use super::*;
    use crate::adapters::memory::MemoryTable;
    use argon2::password_hash::PasswordHash;
    use std::net::Ipv4Addr;
    use std::sync::Arc;

    fn user(login: Login) -> Option<User> {
        match login {
            Login::User(u) => Some(u),
            _ => None,
        }
    }

    #[tokio::test]
    async fn admin_is_created_once_and_verified() {
        let store = Store::new(Arc::new(MemoryTable::new()));
        let users = Users::new(store.clone());
        let p = users.ensure_admin(None).await.unwrap().unwrap();
        assert_eq!(users.ensure_admin(None).await.unwrap(), None, "shown once");
        assert!(!store.user("admin").await.unwrap().unwrap().password_hash.contains(&p));
        assert!(user(users.authenticate("admin", &p, None).await.unwrap()).is_some());
        assert!(
            user(users.authenticate("admin", &p, None).await.unwrap()).is_some(),
            "cached"
        );
        assert_eq!(users.authenticate("admin", "wrong", None).await.unwrap(), Login::Denied);
        assert_eq!(users.authenticate("nobody", &p, None).await.unwrap(), Login::Denied);
        users.ensure_admin(Some("s3cret")).await.unwrap();
        assert!(user(users.authenticate("admin", "s3cret", None).await.unwrap()).is_some());
        assert_eq!(
            users.authenticate("admin", &p, None).await.unwrap(),
            Login::Denied,
            "the old password no longer works"
        );
        assert!(PasswordHash::new(DUMMY_HASH).is_ok());
    }

    #[test]
    fn the_pool_verifies_like_the_library() {
        let hash = hash_password("right").unwrap();
        let mut memory = Vec::new();
        assert!(verify_with(&mut memory, &hash, b"right"));
        assert!(!verify_with(&mut memory, &hash, b"wrong"));
        assert!(!verify_with(&mut memory, DUMMY_HASH, b"right"));
        assert!(!verify_with(&mut memory, "not a hash", b"right"));
        let area = memory.len();
        assert!(verify_with(&mut memory, &hash, b"right"));
        assert_eq!(memory.len(), area, "the work area is reused");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn parallel_logins_with_the_right_password_are_not_throttled() {
        // Given one hashing thread and the default schedules
        let store = Store::new(Arc::new(MemoryTable::new()));
        let limits = LoginLimits {
            hash_threads: 1,
            ..LoginLimits::default()
        };
        let users = Arc::new(Users::with_limits(store, limits));
        users.set_user("ci", "right", false).await.unwrap();
        for n in 0..8 {
            users.set_user(&format!("robot{n}"), "right", false).await.unwrap();
        }
        // When 32 clients of one host log in to one account, and 8 to 8 accounts, at once
        let mut checks = Vec::new();
        for i in 0..40 {
            let users = users.clone();
            checks.push(tokio::spawn(async move {
                let name = if i < 32 {
                    "ci".to_owned()
                } else {
                    format!("robot{}", i - 32)
                };
                users
                    .authenticate(&name, "right", Some(IpAddr::V4(Ipv4Addr::LOCALHOST)))
                    .await
                    .unwrap()
            }));
        }
        // Then every one is let in
        for c in checks {
            assert!(matches!(c.await.unwrap(), Login::User(_)));
        }
    }

    #[tokio::test]
    async fn the_queue_is_bounded() {
        // Given one hashing thread and a queue of one
        let store = Store::new(Arc::new(MemoryTable::new()));
        let limits = LoginLimits {
            hash_threads: 1,
            hash_queue: 1,
            ..LoginLimits::default()
        };
        let users = Arc::new(Users::with_limits(store, limits));
        users.set_user("u", "right", false).await.unwrap();
        // When many checks from different clients arrive at once
        let checks: Vec<_> = (0..8u8)
            .map(|i| {
                let users = users.clone();
                tokio::spawn(async move {
                    let client = IpAddr::V4(Ipv4Addr::new(198, 51, 100, i));
                    users.authenticate(&format!("n{i}"), "x", Some(client)).await.unwrap()
                })
            })
            .collect();
        let mut throttled = 0;
        for c in checks {
            if matches!(c.await.unwrap(), Login::Throttled { .. }) {
                throttled += 1;
            }
        }
        // Then those beyond the thread and the queue are refused, not queued
        assert!(throttled >= 1, "the full queue refuses");
        assert!(user(users.authenticate("u", "right", None).await.unwrap()).is_some());
    }
}
