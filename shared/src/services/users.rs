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
use std::sync::{mpsc, Arc, Mutex, OnceLock};
use std::time::Duration;

use argon2::password_hash::{Output, PasswordHash, PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use rand::Rng;
use sha2::Digest as _;
use tokio::sync::{oneshot, watch};
use tokio::time::Instant;

use crate::ports::StoreError;
use crate::store::{Store, User};

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
    inflight: Mutex<HashMap<[u8; 32], watch::Receiver<Option<Option<Login>>>>>,
}

/// Removes a check's entry from the in-flight table when the check ends, however it ends
/// (a dropped sender tells its waiters to check for themselves).
struct Inflight<'a> {
    users: &'a Users,
    key: [u8; 32],
    tx: watch::Sender<Option<Option<Login>>>,
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

/// A random password of 24 letters and digits.
pub fn generate_password() -> String {
    const CHARS: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let mut rng = rand::thread_rng();
    (0..24).map(|_| CHARS[rng.gen_range(0..CHARS.len())] as char).collect()
}

/// A schedule key: sha256 of a kind byte and the value, so every entry has the same size
/// whatever the user name.
type Key = [u8; 32];

fn key(kind: u8, value: &[u8]) -> Key {
    let mut h = sha2::Sha256::new();
    h.update([kind]);
    h.update(value);
    h.finalize().into()
}

fn user_key(name: &str) -> Key {
    key(b'u', name.as_bytes())
}

/// A client's key: its IPv4 address, or the /64 its IPv6 address is in (one host usually has
/// a whole /64 to pick addresses from).
fn client_key(addr: IpAddr) -> Key {
    match addr {
        IpAddr::V4(a) => key(b'4', &a.octets()),
        IpAddr::V6(a) => match a.to_ipv4_mapped() {
            Some(v4) => key(b'4', &v4.octets()),
            None => key(b'6', &a.octets()[..8]),
        },
    }
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
            Some(u) if ok => {
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

/// The schedules one check is on: its user name's, and its client's when known.
#[derive(Debug, Clone, Copy)]
struct Keys {
    user: Key,
    client: Option<Key>,
}

/// One user name's or client's schedule.
#[derive(Debug, Clone, Copy)]
struct Entry {
    /// Attempts since the last success (each counted as failed until it succeeds; on a client
    /// below its free failures, only the failed ones).
    attempts: u32,
    /// The turn given to the latest spaced-out attempt.
    next: Instant,
    /// When the latest attempt started.
    last: Instant,
}

/// The failed-attempt schedules, by key.
#[derive(Debug, Default)]
struct Throttle {
    entries: HashMap<Key, Entry>,
}

impl Throttle {
    /// The spacing before the `n`th spaced-out attempt (from 1).
    fn step(n: u32, limits: &LoginLimits) -> Duration {
        let doubled = limits
            .first_step
            .saturating_mul(1u32.checked_shl(n.saturating_sub(1)).unwrap_or(u32::MAX));
        doubled.min(limits.max_step)
    }

    /// Takes a turn for one attempt: when it may be checked, or how long to wait before
    /// trying again when that turn is more than `max_wait` away (then nothing is taken). The
    /// attempt counts on the user name at once, and on the client when the client is past its
    /// free failures (the flag returned); otherwise the client counts it only if it fails
    /// ([`Self::fail`]).
    fn reserve(&mut self, keys: &Keys, limits: &LoginLimits, now: Instant) -> Result<(Instant, bool), Duration> {
        let live = |e: &Entry| now.saturating_duration_since(e.last) < limits.forget_after;
        let spaced = |e: &Entry| live(e) && e.attempts >= limits.free_failures;
        let mut turn = now;
        for k in std::iter::once(&keys.user).chain(keys.client.as_ref()) {
            if let Some(e) = self.entries.get(k).filter(|e| spaced(e)) {
                let n = e.attempts + 1 - limits.free_failures;
                turn = turn.max(e.next.max(now) + Self::step(n, limits));
            }
        }
        let wait = turn.saturating_duration_since(now);
        if wait > limits.max_wait {
            let retry = (wait - limits.max_wait).as_secs_f64().ceil().max(1.0);
            return Err(Duration::from_secs_f64(retry));
        }
        let client_counted = keys
            .client
            .and_then(|k| self.entries.get(&k))
            .is_some_and(|e| spaced(e));
        let counted: Vec<Key> = std::iter::once(keys.user)
            .chain(keys.client.filter(|_| client_counted))
            .collect();
        for k in counted {
            self.count(k, turn, limits, now);
        }
        Ok((turn, client_counted))
    }

    /// Counts a failed attempt of a client that did not count it when it started.
    fn fail(&mut self, client: Key, limits: &LoginLimits, now: Instant) {
        self.count(client, now, limits, now);
    }

    /// Counts one attempt on `k`, whose turn is `turn`.
    fn count(&mut self, k: Key, turn: Instant, limits: &LoginLimits, now: Instant) {
        if !self.entries.contains_key(&k) && self.entries.len() >= limits.max_keys {
            self.evict(1, limits, now);
        }
        let fresh = Entry {
            attempts: 0,
            next: now,
            last: now,
        };
        let e = self.entries.entry(k).or_insert(fresh);
        if now.saturating_duration_since(e.last) >= limits.forget_after {
            *e = fresh;
        }
        e.attempts = e.attempts.saturating_add(1);
        e.last = now;
        e.next = e.next.max(turn);
    }

    fn reset(&mut self, keys: &Keys) {
        self.entries.remove(&keys.user);
        if let Some(k) = &keys.client {
            self.entries.remove(k);
        }
    }

    /// Makes room for `room` new entries: drops the forgotten entries, then, when still full,
    /// the quarter whose turns ended longest ago.
    fn evict(&mut self, room: usize, limits: &LoginLimits, now: Instant) {
        self.entries
            .retain(|_, e| now.saturating_duration_since(e.last) < limits.forget_after);
        if self.entries.len() + room <= limits.max_keys {
            return;
        }
        let mut by_turn: Vec<(Instant, Key)> = self.entries.iter().map(|(k, e)| (e.next, *k)).collect();
        let n = (by_turn.len() / 4).max(room).min(by_turn.len());
        if n == 0 {
            return;
        }
        by_turn.select_nth_unstable_by_key(n - 1, |(next, _)| *next);
        for (_, k) in &by_turn[..n] {
            self.entries.remove(k);
        }
    }
}

/// Every hashing thread is busy and the queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Busy;

struct HashJob {
    hash: String,
    password: String,
    reply: oneshot::Sender<bool>,
}

/// A fixed pool of threads that verify passwords, fed by a bounded queue; started on first use.
/// The threads end when the pool is dropped.
struct HashPool {
    threads: usize,
    queue: usize,
    sender: OnceLock<Option<mpsc::SyncSender<HashJob>>>,
}

impl HashPool {
    fn new(threads: usize, queue: usize) -> Self {
        HashPool {
            threads: threads.max(1),
            queue: queue.max(1),
            sender: OnceLock::new(),
        }
    }

    fn start(&self) -> Option<mpsc::SyncSender<HashJob>> {
        let (tx, rx) = mpsc::sync_channel::<HashJob>(self.queue);
        let rx = Arc::new(Mutex::new(rx));
        let mut started = 0;
        for i in 0..self.threads {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("berth-hash-{i}"))
                .spawn(move || hash_worker(&rx));
            match spawned {
                Ok(_) => started += 1,
                Err(e) => tracing::error!(error = %e, "cannot start a password-hashing thread"),
            }
        }
        (started > 0).then_some(tx)
    }

    /// Whether `password` matches the PHC-format `hash`; `Busy` when the queue is full.
    async fn verify(&self, hash: &str, password: &str) -> Result<bool, Busy> {
        let Some(tx) = self.sender.get_or_init(|| self.start()) else {
            return Ok(false);
        };
        let (reply, answer) = oneshot::channel();
        let job = HashJob {
            hash: hash.to_owned(),
            password: password.to_owned(),
            reply,
        };
        match tx.try_send(job) {
            Ok(()) => Ok(answer.await.unwrap_or(false)),
            Err(mpsc::TrySendError::Full(_)) => Err(Busy),
            Err(mpsc::TrySendError::Disconnected(_)) => Ok(false),
        }
    }
}

/// One hashing thread: takes jobs until the pool is dropped, reusing one work area.
fn hash_worker(jobs: &Mutex<mpsc::Receiver<HashJob>>) {
    let mut memory: Vec<Block> = Vec::new();
    loop {
        let job = match jobs.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        let Ok(job) = job else { return };
        let ok = verify_with(&mut memory, &job.hash, job.password.as_bytes());
        let _ = job.reply.send(ok);
    }
}

/// The largest Argon2 work area a stored hash may ask for (64 MiB); larger ones fail to verify.
const MAX_BLOCKS: usize = 64 * 1024;

/// Argon2 verification of `password` against a PHC-format `hash`, in the caller's work area
/// (grown when the hash needs more, never shrunk).
fn verify_with(memory: &mut Vec<Block>, hash: &str, password: &[u8]) -> bool {
    let Ok(parsed) = PasswordHash::new(hash) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
        return false;
    };
    let Ok(algorithm) = Algorithm::try_from(parsed.algorithm) else {
        return false;
    };
    let version = match parsed.version.map(Version::try_from) {
        None => Version::default(),
        Some(Ok(v)) => v,
        Some(Err(_)) => return false,
    };
    let Ok(params) = Params::try_from(&parsed) else {
        return false;
    };
    if params.block_count() > MAX_BLOCKS {
        return false;
    }
    let mut salt_buf = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_buf) else {
        return false;
    };
    if memory.len() < params.block_count() {
        memory.resize(params.block_count(), Block::default());
    }
    let mut out = [0u8; Output::MAX_LENGTH];
    let Some(out) = out.get_mut(..expected.len()) else {
        return false;
    };
    let argon = Argon2::new(algorithm, version, params);
    if argon
        .hash_password_into_with_memory(password, salt, out, &mut memory[..])
        .is_err()
    {
        return false;
    }
    // `Output`'s equality is constant-time
    Output::new(out).is_ok_and(|computed| computed == expected)
}

const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$6nBvFxyn1bYM8o1Hf3Su4cWKbU2kjzBDXqgXdUCnz9A";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::memory::MemoryTable;
    use std::net::Ipv4Addr;

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

    fn quick() -> LoginLimits {
        LoginLimits {
            free_failures: 2,
            first_step: Duration::from_millis(100),
            max_step: Duration::from_millis(400),
            max_wait: Duration::from_secs(1),
            ..LoginLimits::default()
        }
    }

    #[test]
    fn parallel_attempts_are_spaced_out_and_refused_beyond_the_wait() {
        // Given a schedule with two free failures, steps of 100 ms doubling to 400 ms, 1 s wait
        let limits = quick();
        let mut t = Throttle::default();
        let now = Instant::now();
        let keys = Keys {
            user: user_key("admin"),
            client: Some(client_key(IpAddr::V4(Ipv4Addr::LOCALHOST))),
        };
        // When attempts at one account arrive all at once
        let turns: Vec<_> = (0..8).map(|_| t.reserve(&keys, &limits, now)).collect();
        // Then the free ones go at once, the next ones 100, 200, 400, 400 ms apart, and the
        // ones that would wait over a second are refused with a time to come back
        let got: Vec<_> = turns.iter().map(|r| r.map(|(i, _)| (i - now).as_millis())).collect();
        let refused = Err(Duration::from_secs(1));
        assert_eq!(
            got,
            [Ok(0), Ok(0), Ok(100), Ok(300), Ok(700), refused, refused, refused]
        );
        // and a success resets them
        t.reset(&keys);
        assert_eq!(t.reserve(&keys, &limits, now), Ok((now, false)));
    }

    #[test]
    fn a_client_is_throttled_across_user_names_once_it_failed_and_the_table_is_bounded() {
        let limits = LoginLimits {
            max_keys: 100,
            ..quick()
        };
        let mut t = Throttle::default();
        let now = Instant::now();
        let client = client_key(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)));
        let keys = |i: usize| Keys {
            user: user_key(&format!("u{i}")),
            client: Some(client),
        };
        // Given many accounts logging in at once from one client, Then none is held back
        for i in 0..10 {
            assert_eq!(t.reserve(&keys(i), &limits, now), Ok((now, false)));
        }
        // Given the client's failures, Then its attempts on any account are spaced and refused
        t.fail(client, &limits, now);
        t.fail(client, &limits, now);
        let mut refused = 0;
        for i in 10..1000 {
            if t.reserve(&keys(i), &limits, now).is_err() {
                refused += 1;
            }
        }
        assert!(
            refused > 980,
            "one client guessing many names is throttled too ({refused})"
        );
        for i in 0..1000u32 {
            let other = client_key(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i)));
            t.fail(other, &limits, now);
            assert!(t.entries.len() <= limits.max_keys);
        }
        // forgotten after a quiet while
        let later = now + limits.forget_after + Duration::from_secs(1);
        let fresh = Keys {
            user: user_key("someone"),
            client: Some(client),
        };
        assert_eq!(t.reserve(&fresh, &limits, later), Ok((later, false)));
        // IPv6 clients are keyed by their /64
        let a: IpAddr = "2001:db8::1".parse().unwrap();
        let b: IpAddr = "2001:db8::ffff:1".parse().unwrap();
        let c: IpAddr = "2001:db8:0:1::1".parse().unwrap();
        assert_eq!(client_key(a), client_key(b));
        assert_ne!(client_key(a), client_key(c));
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
                let name = if i < 32 { "ci".to_owned() } else { format!("robot{}", i - 32) };
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
