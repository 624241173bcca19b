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
        let quota = NonZeroU32::new(burst)
            .and_then(|b| Quota::with_period(interval).map(|q| q.allow_burst(b)));
        RateLimiter {
            inner: quota.map(DefaultDirectRateLimiter::direct),
        }
    }

    /// Takes a token if there is one.
    pub fn allow(&self) -> bool {
        self.inner.as_ref().is_some_and(|l| l.check().is_ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bursts_then_refills() {
        let l = RateLimiter::new(Duration::from_millis(50), 2);
        assert!(l.allow());
        assert!(l.allow());
        assert!(!l.allow());
        std::thread::sleep(Duration::from_millis(60));
        assert!(l.allow());
        assert!(!l.allow());
        let zero = RateLimiter::new(Duration::from_secs(1), 0);
        assert!(!zero.allow());
    }
}
