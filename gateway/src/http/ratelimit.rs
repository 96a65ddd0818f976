//! Per-buyer and per-address rate limits (governor, per node).

use std::net::IpAddr;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::config::Rate;
use crate::http::error::ApiError;

/// A keyed limiter, or nothing when the limit is off.
pub struct Limiter<K: std::hash::Hash + Eq + Clone> {
    inner: Option<DefaultKeyedRateLimiter<K>>,
}

impl<K: std::hash::Hash + Eq + Clone> Limiter<K> {
    pub fn new(rate: Option<Rate>) -> Self {
        let inner = rate.map(|r| {
            let period = Duration::from_secs(u64::from(r.per_seconds)) / r.burst.get();
            let quota = Quota::with_period(period.max(Duration::from_nanos(1)))
                .expect("period is positive")
                .allow_burst(r.burst);
            RateLimiter::keyed(quota)
        });
        Self { inner }
    }

    /// Takes one request for `key`, or answers 429 with when to retry.
    pub fn check(&self, key: &K) -> Result<(), ApiError> {
        let Some(limiter) = &self.inner else { return Ok(()) };
        limiter.check_key(key).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            ApiError::RateLimited {
                retry_after_secs: wait.as_secs_f64().ceil().max(1.0) as u64,
            }
        })
    }

    /// Forgets keys that have been idle long enough to be full again.
    pub fn tidy(&self) {
        if let Some(l) = &self.inner {
            l.retain_recent();
            l.shrink_to_fit();
        }
    }
}

/// The limits the buyer endpoints apply.
pub struct Limits {
    pub per_buyer: Limiter<String>,
    pub per_addr: Limiter<IpAddr>,
}
