//! Talking to real acquiring banks over HTTP; the protocols themselves are
//! in [`payments::acquirers`]. Every call has a time limit; a call that
//! runs out of time has an unknown result and is never taken as a refusal.

use std::time::Duration;

use payments::accounts::Credentials;
use payments::acquirers::tbank::{self, Terminal};
use payments::acquirers::{Charge, InitOutcome};

use crate::app::AppState;

/// How long one call to a bank may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

pub fn terminal(c: &Credentials) -> Terminal {
    Terminal {
        terminal_key: c.account.account.clone(),
        password: c.secret.clone(),
        taxation: c.account.settings["taxation"].as_str().map(str::to_owned),
    }
}

async fn post(s: &AppState, method: &str, body: &serde_json::Value) -> Result<(u16, Vec<u8>), reqwest::Error> {
    let r = s
        .http
        .post(format!("{}/{method}", s.config.tbank_url))
        .timeout(CALL_TIMEOUT)
        .json(body)
        .send()
        .await?;
    let status = r.status().as_u16();
    Ok((status, r.bytes().await?.to_vec()))
}

/// Creates the payment at T-Bank.
pub async fn tbank_init(s: &AppState, c: &Credentials, charge: &Charge<'_>) -> InitOutcome {
    match post(s, "Init", &tbank::init_body(&terminal(c), charge)).await {
        Ok((status, body)) => tbank::parse_init(status, &body),
        // Refused connections are an outage (nothing reached the bank);
        // anything later may have created a payment.
        Err(e) if e.is_connect() => InitOutcome::Unavailable {
            why: format!("could not connect: {e}"),
        },
        Err(e) => InitOutcome::Unknown {
            why: format!("no clear answer: {e}"),
        },
    }
}

/// The payment's state at T-Bank.
pub async fn tbank_state(s: &AppState, c: &Credentials, payment_id: &str) -> Result<tbank::State, String> {
    let (status, body) = post(s, "GetState", &tbank::get_state_body(&terminal(c), payment_id))
        .await
        .map_err(|e| e.to_string())?;
    if status >= 500 {
        return Err(format!("HTTP {status}"));
    }
    tbank::parse_state(&terminal(c), &body).map_err(|e| e.to_string())
}

/// The payments T-Bank has under an order id (our attempt id).
pub async fn tbank_check_order(s: &AppState, c: &Credentials, order_id: &str) -> Result<Vec<tbank::State>, String> {
    let (status, body) = post(s, "CheckOrder", &tbank::check_order_body(&terminal(c), order_id))
        .await
        .map_err(|e| e.to_string())?;
    if status >= 500 {
        return Err(format!("HTTP {status}"));
    }
    tbank::parse_check_order(&terminal(c), &body).map_err(|e| e.to_string())
}

/// Refunds `amount_minor` of a confirmed payment (T-Bank's `Cancel`).
pub async fn tbank_refund(s: &AppState, c: &Credentials, payment_id: &str, amount_minor: i64) -> Result<(), String> {
    let (status, body) = post(s, "Cancel", &tbank::cancel_body(&terminal(c), payment_id, amount_minor))
        .await
        .map_err(|e| format!("no clear answer: {e}"))?;
    if status >= 500 {
        return Err(format!("HTTP {status}"));
    }
    let v: serde_json::Value = serde_json::from_slice(&body).map_err(|_| "not JSON".to_owned())?;
    if v["Success"].as_bool() == Some(true) {
        Ok(())
    } else {
        Err(format!(
            "refused: {} {}",
            v["ErrorCode"].as_str().unwrap_or("?"),
            v["Message"].as_str().unwrap_or("")
        ))
    }
}

/// Takes a failing bank account out of rotation: after [`TRIP_AFTER`]
/// outages in a row it is skipped for [`COOL_DOWN`], then one payment probes
/// it; success closes the breaker, another outage opens it again.
#[derive(Default)]
pub struct Breakers {
    accounts: std::sync::Mutex<std::collections::HashMap<String, Breaker>>,
}

#[derive(Default, Clone, Copy)]
struct Breaker {
    failures: u32,
    open_until: Option<std::time::Instant>,
    probing: bool,
}

pub const TRIP_AFTER: u32 = 3;
pub const COOL_DOWN: Duration = Duration::from_secs(30);

impl Breakers {
    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, Breaker>> {
        self.accounts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// May a payment go to this account now? (A half-open breaker lets one
    /// probe through at a time.)
    pub fn allows(&self, account: &str) -> bool {
        let mut all = self.lock();
        let b = all.entry(account.to_owned()).or_default();
        match b.open_until {
            None => true,
            Some(t) if std::time::Instant::now() < t => false,
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
            b.open_until = Some(std::time::Instant::now() + COOL_DOWN);
            return !was_open;
        }
        false
    }

    /// Accounts out of rotation now.
    pub fn open(&self) -> usize {
        let now = std::time::Instant::now();
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
        b.lock().get_mut("acq_a").unwrap().open_until = Some(std::time::Instant::now());
        assert!(b.allows("acq_a"));
        assert!(!b.allows("acq_a"));
        b.succeeded("acq_a");
        assert!(b.allows("acq_a"));
        assert_eq!(b.open(), 0);
    }
}
