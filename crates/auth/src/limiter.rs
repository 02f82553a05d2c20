//! Slows password guessing: a client address with too many failed logins in the last minute
//! is refused (429 with `Retry-After`) before its password is even checked, which also keeps
//! it from spending the server's CPU on bcrypt.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::AuthError;

const WINDOW: Duration = Duration::from_secs(60);
/// Addresses tracked at most; beyond, the oldest failures are forgotten first.
const MAX_CLIENTS: usize = 100_000;

/// Failed logins per client address, in a sliding one-minute window.
#[derive(Debug)]
pub(crate) struct FailedLogins {
    limit: usize,
    failures: Mutex<HashMap<IpAddr, VecDeque<Instant>>>,
}

impl FailedLogins {
    pub(crate) fn new(limit: usize) -> Self {
        FailedLogins { limit, failures: Mutex::new(HashMap::new()) }
    }

    /// Refuses a client that failed `limit` times within the last minute.
    pub(crate) fn check(&self, client: IpAddr) -> Result<(), AuthError> {
        let Ok(mut map) = self.failures.lock() else { return Ok(()) };
        let now = Instant::now();
        if let Some(q) = map.get_mut(&client) {
            while q.front().is_some_and(|t| now.duration_since(*t) >= WINDOW) {
                q.pop_front();
            }
            if q.len() >= self.limit {
                let oldest = q.front().copied().unwrap_or(now);
                let retry_after = WINDOW.saturating_sub(now.duration_since(oldest)).as_secs().max(1);
                return Err(AuthError::Throttled { retry_after });
            }
        }
        Ok(())
    }

    pub(crate) fn failed(&self, client: IpAddr) {
        let Ok(mut map) = self.failures.lock() else { return };
        let now = Instant::now();
        if map.len() >= MAX_CLIENTS {
            map.retain(|_, q| q.back().is_some_and(|t| now.duration_since(*t) < WINDOW));
        }
        let q = map.entry(client).or_default();
        q.push_back(now);
        while q.len() > self.limit {
            q.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttles_after_the_limit_per_address() {
        let l = FailedLogins::new(3);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        for _ in 0..3 {
            l.check(a).unwrap();
            l.failed(a);
        }
        match l.check(a) {
            Err(AuthError::Throttled { retry_after }) => assert!((1..=60).contains(&retry_after)),
            other => panic!("expected throttling, got {other:?}"),
        }
        l.check(b).unwrap();
    }
}
