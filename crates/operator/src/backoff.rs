//! Per-object exponential backoff that never retries before the server's `Retry-After`
//! (kube-runtime has no per-object backoff: kube-rs issue 1916). Reset on success.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::time::Duration;

use rand::Rng;

/// Backoff settings.
#[derive(Clone, Copy, Debug)]
pub struct BackoffPolicy {
    /// Delay after the first failure.
    pub initial: Duration,
    /// Upper bound of the exponential delay (a server hint may exceed it).
    pub max: Duration,
    /// Fraction of random jitter added, 0.0 to 1.0.
    pub jitter: f64,
}

impl Default for BackoffPolicy {
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(500),
            max: Duration::from_secs(300),
            jitter: 0.2,
        }
    }
}

/// Failure counts per key (a `RetryKey` of the operator's `keys` module).
#[derive(Debug)]
pub struct Backoff<K = String> {
    policy: BackoffPolicy,
    failures: HashMap<K, u32>,
}

impl<K> Default for Backoff<K> {
    fn default() -> Self {
        Self {
            policy: BackoffPolicy::default(),
            failures: HashMap::new(),
        }
    }
}

impl<K: Hash + Eq> Backoff<K> {
    /// A tracker with the given policy.
    pub fn new(policy: BackoffPolicy) -> Self {
        Self {
            policy,
            failures: HashMap::new(),
        }
    }

    /// Records a failure of `key` and returns how long to wait before the next attempt: the
    /// exponential delay with jitter, but never less than `retry_after`.
    pub fn next_delay<Q>(&mut self, key: &Q, retry_after: Option<Duration>) -> Duration
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let failures = self.failures.entry(key.to_owned()).or_insert(0);
        *failures = failures.saturating_add(1);
        let exponent = failures.saturating_sub(1).min(20);
        let base = self
            .policy
            .initial
            .saturating_mul(1u32 << exponent)
            .min(self.policy.max);
        let jitter = if self.policy.jitter > 0.0 {
            Duration::try_from_secs_f64(
                base.as_secs_f64() * rand::rng().random_range(0.0..self.policy.jitter),
            )
            .unwrap_or(Duration::ZERO)
        } else {
            Duration::ZERO
        };
        let delay = base.saturating_add(jitter);
        retry_after.map_or(delay, |hint| delay.max(hint))
    }

    /// Forgets the failures of `key` after a success.
    pub fn reset<Q>(&mut self, key: &Q)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.failures.remove(key);
    }

    /// Failures recorded for `key` since its last success.
    pub fn failures<Q>(&self, key: &Q) -> u32
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.failures.get(key).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_jitter() -> Backoff {
        Backoff::new(BackoffPolicy {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(8),
            jitter: 0.0,
        })
    }

    #[test]
    fn delays_double_up_to_the_maximum() {
        let mut b = no_jitter();
        let delays: Vec<u64> = (0..6)
            .map(|_| b.next_delay("ns/a", None).as_secs())
            .collect();
        assert_eq!(delays, [1, 2, 4, 8, 8, 8]);
    }

    #[test]
    fn a_retry_hint_is_never_undercut() {
        let mut b = no_jitter();
        assert_eq!(
            b.next_delay("ns/a", Some(Duration::from_secs(30))),
            Duration::from_secs(30)
        );
        assert_eq!(
            b.next_delay("ns/a", Some(Duration::from_millis(10))),
            Duration::from_secs(2)
        );
    }

    #[test]
    fn objects_back_off_independently_and_reset_on_success() {
        let mut b = no_jitter();
        b.next_delay("ns/a", None);
        b.next_delay("ns/a", None);
        assert_eq!(b.next_delay("ns/b", None), Duration::from_secs(1));
        b.reset("ns/a");
        assert_eq!(b.failures("ns/a"), 0);
        assert_eq!(b.next_delay("ns/a", None), Duration::from_secs(1));
    }

    #[test]
    fn jitter_stays_within_its_fraction() {
        let mut b = Backoff::new(BackoffPolicy {
            initial: Duration::from_secs(10),
            max: Duration::from_secs(10),
            jitter: 0.2,
        });
        for _ in 0..50 {
            let d = b.next_delay("k", None);
            assert!(
                d >= Duration::from_secs(10) && d < Duration::from_secs(12),
                "{d:?}"
            );
        }
    }
}
