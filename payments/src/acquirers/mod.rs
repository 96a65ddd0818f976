//! Real acquiring banks' protocols, without HTTP: how to sign and build each
//! request, how to read each answer, how to verify and read each
//! notification, and how the bank's statuses map onto attempt states. The
//! gateway sends the requests and applies what comes back through the store,
//! like the sandbox's callbacks.
//!
//! Each module documents its bank's amount units, currency rules and status
//! mapping next to the code.

pub mod tbank;

use crate::checkout::Item;
use crate::state::AttemptState;

/// What one attempt asks the bank to charge.
#[derive(Debug, Clone)]
pub struct Charge<'a> {
    /// Our attempt id: unique per try, the bank's order id.
    pub reference: &'a str,
    pub amount_minor: i64,
    pub currency: &'a str,
    pub description: &'a str,
    /// 54-FZ receipt lines; they sum to the amount.
    pub items: &'a [Item],
    pub email: Option<&'a str>,
    pub phone: Option<&'a str>,
    pub success_url: &'a str,
    pub fail_url: &'a str,
    pub notification_url: &'a str,
}

/// What creating a payment at a bank came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InitOutcome {
    /// Created: send the buyer to `url`.
    Redirect { url: String, acquirer_ref: String },
    /// The bank answered that it will not take this payment (a blocked
    /// terminal, a method not allowed, …): nothing was created, so another
    /// bank may take it.
    Refused { code: String, message: String },
    /// The bank is out of service (5xx, connection refused): nothing was
    /// created that a buyer could pay.
    Unavailable { why: String },
    /// No clear answer (a timeout, an unreadable body): a payment may exist;
    /// the attempt waits for reconciliation.
    Unknown { why: String },
}

/// A bank status in Haul's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mapped {
    State(AttemptState),
    /// A status this adapter does not know: change nothing, poll again.
    Unknown,
}

/// Equal bytes, compared in time that does not depend on where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
