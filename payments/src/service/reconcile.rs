//! Reconciliation: attempts at real banks that are still open are polled
//! through each bank's status API until they end. What the bank says is
//! applied like a notification (deduplicated with them: one payment's
//! status takes effect once, whichever way it came). An attempt whose
//! creation had no clear answer is looked up by what it sent: no payment at
//! the bank gives it up (and the buyer may try again, at any bank), a
//! payment found is followed from then on. Where the bank disagrees with a
//! state we already hold, it is reported (log, metric and the seller's
//! `payment.disagreement` webhook).

use crate::accounts::{self, Credentials};
use crate::acquirers::{Acquirer, Lookup, Mapped, Payment};
use crate::outbox;
use crate::sandbox;
use crate::sandbox_ledger;
use crate::state::AttemptState;
use crate::store::{Attempt, Callback, CallbackError, Order};

use super::{bank, Outcome, Payments};

/// An open attempt is polled once it has been quiet this long.
pub const QUIET_MS: i64 = 30_000;

/// Attempts older than this are no longer polled (every bank's payment
/// page has long expired; what is still open is the seller's to look at).
pub const HORIZON_MS: i64 = 7 * 24 * 3_600_000;

/// What one poll of an attempt came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reconciled {
    /// Not at a real bank: nothing to poll.
    Skipped,
    /// The bank or our store could not be asked; polled again later.
    Error,
    /// Nothing new.
    Unchanged,
    /// The bank never made the payment: the attempt is given up.
    GivenUp,
    /// The bank's answer moved the attempt.
    Moved,
    /// The bank's word differs from ours, and ours stands.
    Disagreement,
    /// A bank status this build does not know.
    Unknown,
}

impl Reconciled {
    pub fn as_str(self) -> &'static str {
        match self {
            Reconciled::Skipped => "skipped",
            Reconciled::Error => "error",
            Reconciled::Unchanged => "unchanged",
            Reconciled::GivenUp => "given_up",
            Reconciled::Moved => "moved",
            Reconciled::Disagreement => "disagreement",
            Reconciled::Unknown => "unknown",
        }
    }
}

impl Payments {
    /// Polls one attempt; answers what it came to. `report`: tell the
    /// seller of a disagreement (`payment.disagreement`).
    pub async fn reconcile(&self, attempt: &Attempt, report: bool) -> Reconciled {
        if attempt.acquirer == sandbox::ACQUIRER {
            return self.reconcile_sandbox(attempt, report).await;
        }
        let Some(account) = &attempt.account_id else {
            return Reconciled::Skipped;
        };
        let Some((order, creds)) = self.attempt_context(attempt, account).await else {
            return Reconciled::Error;
        };
        let adapter = match bank::adapter(&creds) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(attempt = %attempt.id, error = %e, "reconciliation: no adapter");
                return Reconciled::Error;
            }
        };
        let bank = adapter.as_ref();
        let mut state = match self.bank_payment(bank, &order, attempt, account).await {
            Ok(p) => p,
            Err(r) => return r,
        };
        // An authorized payment waiting for capture is captured while the
        // attempt and its order stand, else let go.
        if bank.capture(&state, attempt.amount_minor, &attempt.currency).is_some() {
            match self.capture_or_void(bank, attempt, &state).await {
                Ok(p) => state = p,
                Err(e) => {
                    tracing::warn!(attempt = %attempt.id, error = %e, "reconciliation: capture failed");
                    return Reconciled::Error;
                }
            }
        }
        let to = match bank.map_status(&state.status) {
            Mapped::State(st) => st,
            Mapped::Unknown => {
                tracing::warn!(attempt = %attempt.id, status = %state.status, "reconciliation: unknown bank status");
                return Reconciled::Unknown;
            }
        };
        if to == attempt.state {
            return Reconciled::Unchanged;
        }
        let callback = Callback {
            acquirer: attempt.acquirer.clone(),
            callback_id: format!("{}:{}", state.payment_id, state.status),
            attempt_id: attempt.id.clone(),
            amount_minor: state.amount_minor.unwrap_or(attempt.amount_minor),
            currency: attempt.currency.clone(),
            state: to,
            at: self.now(),
        };
        let status = &state.status;
        match self.apply(&callback).await {
            Ok(Outcome::Applied) => {
                tracing::warn!(attempt = %attempt.id, from = %attempt.state, to = %to, "reconciliation: the bank's answer moved the attempt");
                Reconciled::Moved
            }
            Ok(Outcome::Ignored) => {
                let why = "the attempt already ended otherwise";
                self.disagreement(&order, attempt, status, why, report).await;
                Reconciled::Disagreement
            }
            Ok(_) => Reconciled::Unchanged,
            Err(CallbackError::Store(e)) => {
                tracing::warn!(attempt = %attempt.id, error = ?e, "reconciliation: could not apply");
                Reconciled::Error
            }
            Err(e) => {
                self.disagreement(&order, attempt, status, &e.to_string(), report).await;
                Reconciled::Disagreement
            }
        }
    }

    /// A sandbox attempt: the sandbox's own verdict (its book, as a bank's
    /// status API answers) is applied like its callbacks would be — for a
    /// callback lost, refused or never sent.
    async fn reconcile_sandbox(&self, attempt: &Attempt, report: bool) -> Reconciled {
        let verdict = match self.pool.acquire().await {
            Ok(mut conn) => sandbox_ledger::verdict(&mut conn, attempt.id.as_str()).await,
            Err(e) => Err(e),
        };
        let status = match verdict {
            Ok(Some(v)) => v,
            // The buyer has not paid (yet).
            Ok(None) => return Reconciled::Unchanged,
            Err(e) => {
                tracing::warn!(attempt = %attempt.id, error = %e, "reconciliation: the sandbox's book could not be read");
                return Reconciled::Error;
            }
        };
        let Some(to) = AttemptState::parse(&status) else {
            tracing::warn!(attempt = %attempt.id, %status, "reconciliation: unknown sandbox status");
            return Reconciled::Unknown;
        };
        if to == attempt.state {
            return Reconciled::Unchanged;
        }
        let callback = Callback {
            acquirer: attempt.acquirer.clone(),
            callback_id: format!("status:{}:{status}", attempt.id),
            attempt_id: attempt.id.clone(),
            amount_minor: attempt.amount_minor,
            currency: attempt.currency.clone(),
            state: to,
            at: self.now(),
        };
        match self.apply(&callback).await {
            Ok(Outcome::Applied) => {
                tracing::warn!(attempt = %attempt.id, from = %attempt.state, to = %to, "reconciliation: the sandbox's verdict moved the attempt");
                Reconciled::Moved
            }
            Ok(Outcome::Ignored) => {
                if let Ok(Some(order)) = self.store.order(&attempt.order_id).await {
                    self.disagreement(&order, attempt, &status, "the attempt already ended otherwise", report)
                        .await;
                }
                Reconciled::Disagreement
            }
            Ok(_) => Reconciled::Unchanged,
            Err(e) => {
                tracing::warn!(attempt = %attempt.id, error = %e, "reconciliation: could not apply the sandbox's verdict");
                Reconciled::Error
            }
        }
    }

    /// The order of an attempt and the credentials of its bank account.
    async fn attempt_context(&self, attempt: &Attempt, account: &str) -> Option<(Order, Credentials)> {
        let order = match self.store.order(&attempt.order_id).await {
            Ok(Some(o)) => o,
            _ => return None,
        };
        match accounts::credentials(&self.pool, &self.vault, &order.seller_id, account).await {
            Ok(Some(c)) => Some((order, c)),
            Ok(None) => {
                tracing::error!(attempt = %attempt.id, %account, "reconciliation: the attempt's bank account is gone");
                None
            }
            Err(e) => {
                tracing::error!(attempt = %attempt.id, error = %e, "reconciliation: credentials do not open");
                None
            }
        }
    }

    /// The bank's payment of an attempt; one found for an attempt whose
    /// creation had no clear answer is recorded as made, none there gives
    /// the attempt up.
    async fn bank_payment(
        &self,
        bank: &dyn Acquirer,
        order: &Order,
        attempt: &Attempt,
        account: &str,
    ) -> Result<Payment, Reconciled> {
        let found = match &attempt.acquirer_ref {
            Some(made) => bank::lookup(self.transport(), bank, attempt.id.as_str(), made).await,
            // The creation had no clear answer: ask by what it sent.
            None => match self.charge_parts(order).await {
                Ok(parts) => bank::find(self.transport(), bank, &parts.charge(order, attempt.id.as_str())).await,
                Err(_) => return Err(Reconciled::Error),
            },
        };
        let found = found.map_err(|e| {
            tracing::warn!(attempt = %attempt.id, error = %e, "reconciliation: no status from the bank");
            Reconciled::Error
        })?;
        match (found, &attempt.acquirer_ref) {
            (Lookup::Found(p), Some(_)) => Ok(p),
            (Lookup::Found(p), None) => {
                tracing::warn!(attempt = %attempt.id, payment = %p.payment_id, "reconciliation: the bank did create the payment");
                let made = p.created_as.as_deref().unwrap_or(&p.payment_id);
                if let Err(e) = self
                    .store
                    .set_started(&attempt.id, Some(account), made, self.now())
                    .await
                {
                    tracing::error!(attempt = %attempt.id, error = ?e, "reconciliation: could not record the payment");
                    return Err(Reconciled::Error);
                }
                Ok(p)
            }
            // Created, but nothing paid yet (CloudPayments' order waits for the buyer).
            (Lookup::NotFound, Some(_)) => Err(Reconciled::Unchanged),
            (Lookup::NotFound, None) => {
                let cause = "reconciliation: the bank has no payment for this attempt";
                Err(match self.store.abandon_attempt(&attempt.id, cause, self.now()).await {
                    Ok(true) => {
                        tracing::info!(attempt = %attempt.id, "reconciliation: the bank never took it; given up");
                        Reconciled::GivenUp
                    }
                    Ok(false) => Reconciled::Unchanged,
                    Err(e) => {
                        tracing::error!(attempt = %attempt.id, error = ?e, "reconciliation: could not give up");
                        Reconciled::Error
                    }
                })
            }
        }
    }

    /// The bank's word differs from ours and ours stands: logged, counted
    /// (the reconciliation metric) and told to the seller
    /// (`payment.disagreement`), whose books should follow the bank's.
    async fn disagreement(&self, order: &Order, attempt: &Attempt, bank_status: &str, why: &str, report: bool) {
        tracing::error!(attempt = %attempt.id, ours = %attempt.state, bank = %bank_status, %why, "reconciliation: the bank disagrees with our records");
        if !report {
            return;
        }
        let data = serde_json::json!({
            "order_id": order.id, "attempt_id": attempt.id, "acquirer": attempt.acquirer,
            "our_state": attempt.state, "bank_status": bank_status, "reason": why,
        });
        if let Err(e) = self
            .notify_seller(&order.seller_id, "payment.disagreement", &data)
            .await
        {
            tracing::error!(attempt = %attempt.id, error = %e, "could not queue the payment.disagreement webhook");
        }
    }

    /// Queues a webhook event for a seller's endpoints.
    pub async fn notify_seller(
        &self,
        seller: &str,
        kind: &str,
        data: &serde_json::Value,
    ) -> Result<Option<String>, sqlx::Error> {
        outbox::enqueue_now(&self.pool, seller, kind, data, self.now()).await
    }
}
