//! `rate_limit`: one token bucket for the whole endpoint, like Go's
//! `rate.NewLimiter(rate.Every(interval), burst)` (starts full, one token per interval, at
//! most `burst`), built on `governor`'s GCRA limiter.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota};

/// The endpoint-wide limiter. A burst of 0 (or a zero interval) lets nothing through, as
/// Go's limiter with burst 0 does.
#[derive(Debug)]
pub struct RateLimiter {
    inner: Option<DefaultDirectRateLimiter>,
}

impl RateLimiter {
    /// A full bucket of `burst` tokens, refilled by one every `interval`.
    pub fn new(interval: Duration, burst: u32) -> RateLimiter {
        RateLimiter {
            inner: quota(interval, burst).map(DefaultDirectRateLimiter::direct),
        }
    }

    /// Takes a token if there is one.
    pub fn allow(&self) -> bool {
        self.inner.as_ref().is_some_and(|l| l.check().is_ok())
    }
}

/// The quota of `burst` tokens refilled by one every `interval`; None when nothing may pass.
fn quota(interval: Duration, burst: u32) -> Option<Quota> {
    NonZeroU32::new(burst).and_then(|b| Quota::with_period(interval).map(|q| q.allow_burst(b)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use governor::clock::FakeRelativeClock;

    /// On a fake clock: the refill is checked without sleeping, so a loaded machine that
    /// deschedules the test between two checks cannot refill a token early (it did).
    #[test]
    fn bursts_then_refills_one_token_per_interval() {
        let clock = FakeRelativeClock::default();
        let l = governor::RateLimiter::direct_with_clock(
            quota(Duration::from_millis(50), 2).unwrap(),
            clock.clone(),
        );
        assert!(l.check().is_ok());
        assert!(l.check().is_ok());
        assert!(l.check().is_err());
        clock.advance(Duration::from_millis(49));
        assert!(l.check().is_err());
        clock.advance(Duration::from_millis(1));
        assert!(l.check().is_ok());
        assert!(l.check().is_err());
        clock.advance(Duration::from_secs(10));
        assert!(l.check().is_ok());
        assert!(l.check().is_ok());
        assert!(l.check().is_err(), "at most the burst after a long idle");
    }

    #[test]
    fn the_limiter_starts_full_and_a_burst_of_0_lets_nothing_through() {
        // an hour per token: no refill can happen while the test runs
        let l = RateLimiter::new(Duration::from_secs(3600), 2);
        assert!(l.allow());
        assert!(l.allow());
        assert!(!l.allow());
        let zero = RateLimiter::new(Duration::from_secs(1), 0);
        assert!(!zero.allow());
        let no_interval = RateLimiter::new(Duration::ZERO, 2);
        assert!(!no_interval.allow());
    }
}
