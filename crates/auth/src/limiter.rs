//! Slows password guessing: too many failed logins in the last minute and the next attempt is
//! refused (429 with `Retry-After`) before its password is even checked, which also keeps the
//! guesser from spending the server's CPU on bcrypt.
//!
//! Three counts, each a sliding one-minute window:
//! - per user name and client network (`limit`): one user's typos behind an office NAT do
//!   not lock out the other users at that address;
//! - per client network (`limit` × [`ADDRESS_FACTOR`]): a ceiling for one address trying
//!   many names;
//! - per user name (`limit` × [`USER_FACTOR`]): guessing one user's password from rotating
//!   addresses is bounded too.
//!
//! A client network is the address itself for IPv4 and its /64 for IPv6: one host commonly
//! owns a whole /64, and would otherwise get unlimited guesses by changing addresses.
//!
//! An attempt reserves its slot (counts as a failure) *before* the password is checked and
//! gives it back only when it succeeds: concurrent attempts cannot all pass the check before
//! any of them is counted.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::AuthError;

const WINDOW: Duration = Duration::from_secs(60);
/// Keys tracked at most per count; beyond, entries without a recent failure are forgotten.
const MAX_KEYS: usize = 100_000;
/// The per-network ceiling, as a multiple of the per user-and-network limit.
pub(crate) const ADDRESS_FACTOR: usize = 4;
/// The per-user ceiling across networks, as a multiple of the per user-and-network limit.
pub(crate) const USER_FACTOR: usize = 4;

/// The network a client address counts for: IPv4 as is (also when IPv4-mapped), IPv6 by /64.
pub(crate) fn network(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !((1u128 << 64) - 1))),
        },
    }
}

/// Failures in the window, per key.
#[derive(Debug)]
struct Window<K> {
    limit: usize,
    failures: HashMap<K, VecDeque<Instant>>,
}

impl<K: Hash + Eq + Clone> Window<K> {
    fn new(limit: usize) -> Self {
        Window { limit, failures: HashMap::new() }
    }

    /// `Some(seconds until a slot frees)` when `key` is at its limit.
    fn full(&mut self, key: &K, now: Instant) -> Option<u64> {
        let q = self.failures.get_mut(key)?;
        while q.front().is_some_and(|t| now.duration_since(*t) >= WINDOW) {
            q.pop_front();
        }
        if q.len() < self.limit {
            return None;
        }
        let oldest = q.front().copied().unwrap_or(now);
        Some(WINDOW.saturating_sub(now.duration_since(oldest)).as_secs().max(1))
    }

    fn add(&mut self, key: K, at: Instant) {
        if self.failures.len() >= MAX_KEYS && !self.failures.contains_key(&key) {
            self.failures.retain(|_, q| q.back().is_some_and(|t| at.duration_since(*t) < WINDOW));
        }
        let q = self.failures.entry(key).or_default();
        q.push_back(at);
        while q.len() > self.limit {
            q.pop_front();
        }
    }

    /// Gives back a slot reserved at `at`.
    fn release(&mut self, key: &K, at: Instant) {
        if let Some(q) = self.failures.get_mut(key) {
            if let Some(i) = q.iter().rposition(|t| *t == at) {
                q.remove(i);
            }
            if q.is_empty() {
                self.failures.remove(key);
            }
        }
    }
}

#[derive(Debug)]
struct Counts {
    pairs: Window<(String, IpAddr)>,
    networks: Window<IpAddr>,
    users: Window<String>,
}

/// Failed logins per user and network, per network and per user.
#[derive(Debug)]
pub(crate) struct FailedLogins {
    counts: Mutex<Counts>,
}

/// A reserved attempt: counted as a failure unless [`Attempt::succeeded`] is called (also
/// when the login is abandoned half-way).
#[must_use]
pub(crate) struct Attempt<'a> {
    limiter: &'a FailedLogins,
    user: String,
    network: IpAddr,
    at: Instant,
}

impl Attempt<'_> {
    /// The login succeeded: its slot is given back.
    pub(crate) fn succeeded(self) {
        let Ok(mut c) = self.limiter.counts.lock() else { return };
        c.pairs.release(&(self.user.clone(), self.network), self.at);
        c.networks.release(&self.network, self.at);
        c.users.release(&self.user, self.at);
    }
}

impl FailedLogins {
    /// `limit` failures per user and network and minute.
    pub(crate) fn new(limit: usize) -> Self {
        let limit = limit.max(1);
        FailedLogins {
            counts: Mutex::new(Counts {
                pairs: Window::new(limit),
                networks: Window::new(limit.saturating_mul(ADDRESS_FACTOR)),
                users: Window::new(limit.saturating_mul(USER_FACTOR)),
            }),
        }
    }

    /// Reserves a slot for one login attempt of `user` from `client`, or refuses it when any
    /// of the three counts is at its limit. Checking and counting are one step under one lock.
    pub(crate) fn begin(&self, user: &str, client: IpAddr) -> Result<Attempt<'_>, AuthError> {
        let network = network(client);
        let now = Instant::now();
        let attempt = Attempt { limiter: self, user: user.to_string(), network, at: now };
        // A poisoned lock (a panic elsewhere) refuses rather than letting guesses through.
        let Ok(mut c) = self.counts.lock() else { return Err(AuthError::Throttled { retry_after: 60 }) };
        let pair = (attempt.user.clone(), network);
        let wait = [c.pairs.full(&pair, now), c.networks.full(&network, now), c.users.full(&attempt.user, now)].into_iter().flatten().max();
        if let Some(retry_after) = wait {
            return Err(AuthError::Throttled { retry_after });
        }
        c.pairs.add(pair, now);
        c.networks.add(network, now);
        c.users.add(attempt.user.clone(), now);
        Ok(attempt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn throttled(r: Result<Attempt<'_>, AuthError>) -> bool {
        match r {
            Err(AuthError::Throttled { retry_after }) => (1..=60).contains(&retry_after),
            _ => false,
        }
    }

    #[test]
    fn throttles_a_user_at_an_address_but_not_the_other_users_there() {
        let l = FailedLogins::new(3);
        let office = ip("10.0.0.1");
        for _ in 0..3 {
            drop(l.begin("alice", office).unwrap());
        }
        assert!(throttled(l.begin("alice", office)), "alice's fourth failure from the office is refused");
        l.begin("bob", office).unwrap().succeeded();
        l.begin("alice", ip("10.0.0.2")).unwrap().succeeded();
    }

    #[test]
    fn an_address_has_a_higher_ceiling_over_all_names() {
        let l = FailedLogins::new(3);
        let a = ip("10.0.0.1");
        for i in 0..3 * ADDRESS_FACTOR {
            drop(l.begin(&format!("user{i}"), a).unwrap());
        }
        assert!(throttled(l.begin("someone-else", a)), "one address trying many names hits the ceiling");
        l.begin("someone-else", ip("10.0.0.2")).unwrap().succeeded();
    }

    #[test]
    fn one_user_from_rotating_addresses_is_limited() {
        let l = FailedLogins::new(3);
        for i in 0..3 * USER_FACTOR {
            drop(l.begin("alice", ip(&format!("10.0.{}.{}", i / 200, i % 200 + 1))).unwrap());
        }
        assert!(throttled(l.begin("alice", ip("192.0.2.99"))), "a fresh address does not buy more guesses at alice");
        l.begin("bob", ip("192.0.2.99")).unwrap().succeeded();
    }

    #[test]
    fn an_ipv6_slash_64_counts_as_one_client() {
        let l = FailedLogins::new(3);
        for i in 1..=3 {
            drop(l.begin("alice", ip(&format!("2001:db8:1:2::{i:x}"))).unwrap());
        }
        assert!(throttled(l.begin("alice", ip("2001:db8:1:2:ffff:ffff:ffff:ffff"))), "another address of the same /64");
        l.begin("alice", ip("2001:db8:1:3::1")).unwrap().succeeded();
        assert_eq!(network(ip("::ffff:10.0.0.1")), ip("10.0.0.1"), "IPv4-mapped counts as the IPv4 address");
    }

    #[test]
    fn successes_give_their_slot_back() {
        let l = FailedLogins::new(2);
        let a = ip("10.0.0.1");
        for _ in 0..10 {
            l.begin("alice", a).unwrap().succeeded();
        }
        drop(l.begin("alice", a).unwrap());
        drop(l.begin("alice", a).unwrap());
        assert!(throttled(l.begin("alice", a)));
    }

    #[test]
    fn concurrent_attempts_never_pass_more_than_the_limit() {
        let l = std::sync::Arc::new(FailedLogins::new(5));
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(32));
        let threads: Vec<_> = (0..32)
            .map(|_| {
                let (l, barrier) = (l.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    // Every attempt is still "being verified" (not yet failed) while the
                    // others check: the reservation alone must count.
                    usize::from(l.begin("alice", ip("10.0.0.1")).is_ok())
                })
            })
            .collect();
        let passed: usize = threads.into_iter().map(|h| h.join().unwrap()).sum();
        assert_eq!(passed, 5);
    }
}
