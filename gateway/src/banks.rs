//! Talking to real acquiring banks over HTTP: the [`Call`]s each bank's
//! [`Acquirer`] builds are sent here. Every call has a time limit
//! (`HAUL_ACQUIRER_TIMEOUT_MS`); a call that runs out of time has an unknown
//! result and is never taken as a refusal.

use std::time::Duration;

use payments::accounts::Credentials;
use payments::acquirers::{self, Acquirer, AnswerError, Body, Call, Charge, InitOutcome, Lookup, Method, Payment};

use crate::app::AppState;

/// The protocol of an account's bank.
pub fn adapter(c: &Credentials) -> Result<Box<dyn Acquirer>, String> {
    acquirers::for_account(c).ok_or_else(|| format!("no adapter for {}", c.account.acquirer))
}

fn base_url<'a>(s: &'a AppState, acquirer: &str) -> &'a str {
    match acquirer {
        acquirers::cloudpayments::ACQUIRER => &s.config.cloudpayments_url,
        acquirers::yookassa::ACQUIRER => &s.config.yookassa_url,
        acquirers::stripe::ACQUIRER => &s.config.stripe_url,
        _ => &s.config.tbank_url,
    }
}

/// Sends one call; the bank's HTTP status and body.
async fn send(s: &AppState, bank: &dyn Acquirer, call: Call) -> Result<(u16, Vec<u8>), reqwest::Error> {
    let url = format!("{}{}", base_url(s, bank.name()), call.path);
    let mut r = match call.method {
        Method::Get => s.http.get(url),
        Method::Post => s.http.post(url),
    }
    .timeout(s.config.acquirer_timeout);
    for (k, v) in call.headers {
        r = r.header(k, v);
    }
    r = match call.body {
        Body::Empty => r,
        Body::Json(v) => r.json(&v),
        Body::Form(pairs) => {
            let mut f = form_urlencoded::Serializer::new(String::new());
            for (k, v) in &pairs {
                f.append_pair(k, v);
            }
            r.header("content-type", "application/x-www-form-urlencoded")
                .body(f.finish())
        }
    };
    let r = r.send().await?;
    let status = r.status().as_u16();
    Ok((status, r.bytes().await?.to_vec()))
}

/// Creates the payment at the bank.
pub async fn init(s: &AppState, bank: &dyn Acquirer, charge: &Charge<'_>) -> InitOutcome {
    match send(s, bank, bank.init(charge)).await {
        Ok((status, body)) => bank.parse_init(status, &body),
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

/// The state of the payment the creation answered as `acquirer_ref` (see
/// [`Acquirer::lookup`]).
pub async fn lookup(s: &AppState, bank: &dyn Acquirer, reference: &str, acquirer_ref: &str) -> Result<Lookup, String> {
    let (status, body) = send(s, bank, bank.lookup(reference, acquirer_ref))
        .await
        .map_err(|e| e.to_string())?;
    bank.parse_lookup(Some(acquirer_ref), status, &body)
        .map_err(|e| e.to_string())
}

/// Whether a creation with no clear answer made a payment (see
/// [`Acquirer::find`]).
pub async fn find(s: &AppState, bank: &dyn Acquirer, charge: &Charge<'_>) -> Result<Lookup, String> {
    let (status, body) = send(s, bank, bank.find(charge)).await.map_err(|e| e.to_string())?;
    bank.parse_lookup(None, status, &body).map_err(|e| e.to_string())
}

/// Captures a payment that waits for it, when the bank has that step; the
/// payment as the capture left it.
pub async fn capture(
    s: &AppState,
    bank: &dyn Acquirer,
    payment: &Payment,
    amount_minor: i64,
    currency: &str,
) -> Result<Option<Payment>, String> {
    let Some(call) = bank.capture(payment, amount_minor, currency) else {
        return Ok(None);
    };
    let (status, body) = send(s, bank, call).await.map_err(|e| e.to_string())?;
    match bank.parse_lookup(Some(&payment.payment_id), status, &body) {
        Ok(Lookup::Found(p)) => Ok(Some(p)),
        Ok(Lookup::NotFound) => Err("the payment to capture is not found".into()),
        Err(e @ AnswerError::Refused(..)) => Err(format!("capture refused: {e}")),
        Err(e) => Err(e.to_string()),
    }
}

/// Lets go of an authorized payment (see [`Acquirer::void`]); the payment
/// as that left it.
pub async fn void(s: &AppState, bank: &dyn Acquirer, payment: &Payment) -> Result<Option<Payment>, String> {
    let Some(call) = bank.void(payment) else {
        return Ok(None);
    };
    let (status, body) = send(s, bank, call).await.map_err(|e| e.to_string())?;
    match bank.parse_lookup(Some(&payment.payment_id), status, &body) {
        Ok(Lookup::Found(p)) => Ok(Some(p)),
        Ok(Lookup::NotFound) => Err("the payment to void is not found".into()),
        Err(e) => Err(e.to_string()),
    }
}

/// Refunds `amount_minor` of a paid payment.
pub async fn refund(
    s: &AppState,
    bank: &dyn Acquirer,
    payment_id: &str,
    amount_minor: i64,
    currency: &str,
    key: &str,
) -> Result<(), String> {
    let (status, body) = send(s, bank, bank.refund(payment_id, amount_minor, currency, key))
        .await
        .map_err(|e| format!("no clear answer: {e}"))?;
    bank.parse_refund(status, &body)
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
