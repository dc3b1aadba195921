//! The failed-attempt schedules of password checks: per user name and per client address,
//! bounded in size (see the parent module's documentation for the rules).

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use sha2::Digest as _;
use tokio::time::Instant;

use super::LoginLimits;

/// A schedule key: sha256 of a kind byte and the value, so every entry has the same size
/// whatever the user name.
pub(super) type Key = [u8; 32];

fn key(kind: u8, value: &[u8]) -> Key {
    let mut h = sha2::Sha256::new();
    h.update([kind]);
    h.update(value);
    h.finalize().into()
}

pub(super) fn user_key(name: &str) -> Key {
    key(b'u', name.as_bytes())
}

/// A client's key: its IPv4 address, or the /64 its IPv6 address is in (one host usually has
/// a whole /64 to pick addresses from).
pub(super) fn client_key(addr: IpAddr) -> Key {
    match addr {
        IpAddr::V4(a) => key(b'4', &a.octets()),
        IpAddr::V6(a) => match a.to_ipv4_mapped() {
            Some(v4) => key(b'4', &v4.octets()),
            None => key(b'6', &a.octets()[..8]),
        },
    }
}

/// The schedules one check is on: its user name's, and its client's when known.
#[derive(Debug, Clone, Copy)]
pub(super) struct Keys {
    pub(super) user: Key,
    pub(super) client: Option<Key>,
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
pub(super) struct Throttle {
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
    pub(super) fn reserve(
        &mut self,
        keys: &Keys,
        limits: &LoginLimits,
        now: Instant,
    ) -> Result<(Instant, bool), Duration> {
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
        let client_counted = keys.client.and_then(|k| self.entries.get(&k)).is_some_and(spaced);
        let counted: Vec<Key> = std::iter::once(keys.user)
            .chain(keys.client.filter(|_| client_counted))
            .collect();
        for k in counted {
            self.count(k, turn, limits, now);
        }
        Ok((turn, client_counted))
    }

    /// Counts a failed attempt of a client that did not count it when it started.
    pub(super) fn fail(&mut self, client: Key, limits: &LoginLimits, now: Instant) {
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

    pub(super) fn reset(&mut self, keys: &Keys) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

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
}
