//! Takes a failing bank account out of rotation: after [`TRIP_AFTER`]
//! outages in a row it is skipped for [`COOL_DOWN`], then one payment probes
//! it; success closes the breaker, another outage opens it again. Per node,
//! in memory.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

#[derive(Default)]
pub struct Breakers {
    accounts: Mutex<HashMap<String, Breaker>>,
}

#[derive(Default, Clone, Copy)]
struct Breaker {
    failures: u32,
    open_until: Option<Instant>,
    probing: bool,
}

pub const TRIP_AFTER: u32 = 3;
pub const COOL_DOWN: Duration = Duration::from_secs(30);

impl Breakers {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Breaker>> {
        self.accounts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// May a payment go to this account now? (A half-open breaker lets one
    /// probe through at a time.)
    pub fn allows(&self, account: &str) -> bool {
        let mut all = self.lock();
        let b = all.entry(account.to_owned()).or_default();
        match b.open_until {
            None => true,
            Some(t) if Instant::now() < t => false,
            Some(_) if b.probing => false,
            Some(_) => {
                b.probing = true;
                true
            }
        }
    }

    pub fn succeeded(&self, account: &str) {
        self.lock().insert(account.to_owned(), Breaker::default());
    }

    /// An outage or a refusal to serve; true when it opened the breaker.
    pub fn failed(&self, account: &str) -> bool {
        let mut all = self.lock();
        let b = all.entry(account.to_owned()).or_default();
        b.failures += 1;
        b.probing = false;
        if b.failures >= TRIP_AFTER {
            let was_open = b.open_until.is_some();
            b.open_until = Some(Instant::now() + COOL_DOWN);
            return !was_open;
        }
        false
    }

    /// Accounts out of rotation now.
    pub fn open(&self) -> usize {
        let now = Instant::now();
        self.lock()
            .values()
            .filter(|b| b.open_until.is_some_and(|t| now < t))
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_breaker_opens_after_outages_and_probes_back() {
        let b = Breakers::default();
        assert!(b.allows("acq_a"));
        assert!(!b.failed("acq_a"));
        assert!(!b.failed("acq_a"));
        assert!(b.failed("acq_a"), "the third outage opens it");
        assert!(!b.allows("acq_a"));
        assert!(b.allows("acq_b"), "others are not affected");
        assert_eq!(b.open(), 1);
        // After the cool-down one probe goes through, not two.
        b.lock().get_mut("acq_a").unwrap().open_until = Some(Instant::now());
        assert!(b.allows("acq_a"));
        assert!(!b.allows("acq_a"));
        b.succeeded("acq_a");
        assert!(b.allows("acq_a"));
        assert_eq!(b.open(), 0);
    }
}
