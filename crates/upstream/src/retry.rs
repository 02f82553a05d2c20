//! Exponential backoff with full jitter, honouring `Retry-After`.

use std::time::Duration;

use rand::Rng;

/// How many times and how patiently to retry.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RetryPolicy {
    /// Attempts in total (1 = no retry).
    pub attempts: u32,
    pub base: Duration,
    pub max: Duration,
}

impl RetryPolicy {
    /// The pause before retry number `n` (1-based): random in [cap/2, cap] with
    /// cap = min(max, base * 2^(n-1)),
    /// or the server's `Retry-After` when it gave one (capped at 30 s).
    pub(crate) fn delay(&self, n: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(d) = retry_after {
            return d.min(Duration::from_secs(30));
        }
        let cap = self.base.saturating_mul(1u32 << n.saturating_sub(1).min(16)).min(self.max);
        let millis = cap.as_millis() as u64;
        Duration::from_millis(rand::rng().random_range(millis / 2..=millis.max(1)))
    }
}

/// Parses `Retry-After` in its seconds form (the HTTP-date form is rare from registries).
pub(crate) fn parse_retry_after(v: &str) -> Option<Duration> {
    v.trim().parse::<u64>().ok().map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_and_are_capped() {
        let p = RetryPolicy { attempts: 5, base: Duration::from_millis(100), max: Duration::from_secs(1) };
        assert!(p.delay(1, None) <= Duration::from_millis(100));
        assert!(p.delay(10, None) <= Duration::from_secs(1));
        assert_eq!(p.delay(1, Some(Duration::from_secs(3))), Duration::from_secs(3));
        assert_eq!(p.delay(1, Some(Duration::from_secs(300))), Duration::from_secs(30));
        assert_eq!(parse_retry_after(" 7 "), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
    }
}
