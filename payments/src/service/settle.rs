//! What follows a payment's end: a paid stream purchase's hold becomes a
//! sale (or the stock is taken again, or the money goes back), a failed
//! one's hold returns to stock, an unpaid order ends with its hold; and
//! refunds, which a bank makes first and the store records after.

use crate::accounts;
use crate::acquirers::Lookup;
use crate::fulfilment::{self, Fulfilment};
use crate::ids::OrderId;
use crate::sandbox;
use crate::state::{AttemptState, OrderState};
use crate::store::{Order, Refund, RefundError};

use super::{bank, Error, Payments, Result, StockError};

/// A paid stream purchase is settled within this long, or settled again.
pub const SETTLE_GRACE_MS: i64 = 30_000;

/// How a hold ended without being paid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldEnd {
    /// It ran out.
    Expired,
    /// The buyer gave it back.
    Released,
}

/// A bank idempotency key for a refund (at most 64 characters, as
/// YooKassa allows): derived from the seller's key, else random.
pub fn refund_key(order: &str, seller: &str, seller_key: Option<&str>) -> String {
    use sha2::{Digest, Sha256};
    let part = match seller_key {
        Some(k) => {
            let d = Sha256::digest(format!("{seller}\n{order}\n{k}").as_bytes());
            d.iter().take(16).map(|b| format!("{b:02x}")).collect::<String>()
        }
        None => (0..16).map(|_| format!("{:02x}", rand::random::<u8>())).collect(),
    };
    format!("rf-{part}")
}

fn not_paid(state: OrderState) -> Error {
    Error::conflict("order_not_paid", format!("the order is {state}"))
}

fn refundable_range(refundable: i64) -> Error {
    Error::Invalid {
        field: "amount_minor",
        message: format!("from 1 to {refundable}"),
    }
}

impl Payments {
    /// Refunds `amount` (the rest when `None`) of a paid order: a bank is
    /// asked first, under `bank_key` (the bank's idempotency key: the same
    /// key asks for the same refund, so a retry after a failure to record
    /// it is not refunded twice), and only what it refunded is recorded.
    pub async fn refund(&self, order: &Order, amount: Option<i64>, reason: &str, bank_key: &str) -> Result<Refund> {
        self.refund_for(order, amount, reason, bank_key, None).await
    }

    /// [`Payments::refund`], owed by the fulfilment move `for_move` when
    /// one is named (marked refunded with the refund, once).
    pub(super) async fn refund_for(
        &self,
        order: &Order,
        amount: Option<i64>,
        reason: &str,
        bank_key: &str,
        for_move: Option<&str>,
    ) -> Result<Refund> {
        let amount = amount.unwrap_or(order.amount_minor - order.refunded_minor);
        let attempts = self.store.attempts(&order.id).await.map_err(Error::unavailable)?;
        let Some(paid) = attempts
            .iter()
            .find(|a| a.state == AttemptState::Succeeded && !a.duplicate)
        else {
            return Err(not_paid(order.state));
        };
        if !matches!(order.state, OrderState::Succeeded | OrderState::PartiallyRefunded) {
            return Err(not_paid(order.state));
        }
        let refundable = order.amount_minor - order.refunded_minor;
        if !(1..=refundable).contains(&amount) {
            return Err(refundable_range(refundable));
        }
        // The sandbox refunds at once; a bank is asked first.
        if paid.acquirer != sandbox::ACQUIRER {
            self.bank_refund(order, paid, amount, bank_key).await?;
        }
        let recorded = self
            .store
            .record_refund(&order.id, amount, reason, self.now(), for_move)
            .await;
        if recorded.is_ok() {
            self.changed(&order.id).await;
        }
        recorded.map_err(|e| match e {
            RefundError::UnknownOrder => Error::NotFound("order"),
            RefundError::NotPaid(state) => not_paid(state),
            RefundError::TooMuch { refundable } => refundable_range(refundable),
            RefundError::MoveRefunded => Error::conflict("already_refunded", "this move was refunded already"),
            RefundError::Store(e) => Error::unavailable(e),
        })
    }

    /// Asks the bank of the paid attempt to refund `amount`.
    async fn bank_refund(&self, order: &Order, paid: &crate::store::Attempt, amount: i64, key: &str) -> Result<()> {
        let (Some(account), Some(payment)) = (&paid.account_id, &paid.acquirer_ref) else {
            let why = format!("refunds through {} are not available", paid.acquirer);
            return Err(Error::conflict("refund_unavailable", why));
        };
        let creds = accounts::credentials(&self.pool, &self.vault, &order.seller_id, account)
            .await
            .map_err(Error::internal)?
            .ok_or_else(|| Error::conflict("refund_unavailable", "the bank account of this payment was removed"))?;
        let adapter = bank::adapter(&creds).map_err(Error::internal)?;
        // The bank names the payment to refund its own way (CloudPayments'
        // transaction, Stripe's PaymentIntent): ask it first.
        let found = bank::lookup(self.transport(), adapter.as_ref(), paid.id.as_str(), payment)
            .await
            .map_err(|why| {
                let message = format!("{} did not answer about the payment: {why}", paid.acquirer);
                Error::bank("refund_failed", message)
            })?;
        let Lookup::Found(found) = found else {
            let message = format!("{} does not know the payment", paid.acquirer);
            return Err(Error::bank("refund_failed", message));
        };
        bank::refund(
            self.transport(),
            adapter.as_ref(),
            &found.payment_id,
            amount,
            &order.currency,
            key,
        )
        .await
        .map_err(|why| Error::bank("refund_failed", format!("{} did not refund: {why}", paid.acquirer)))
    }

    /// Refunds a duplicate charge (an attempt that succeeded on an order
    /// another attempt had paid) in full through its own bank — the sandbox
    /// at once — and records it apart from the order's refunds, once. What
    /// fails here is tried again by the settlement worker with the same
    /// refund key, so the bank refunds it once.
    pub async fn refund_duplicate(&self, attempt: &crate::ids::AttemptId) {
        let attempt = match self.store.attempt(attempt).await {
            Ok(Some(a)) if a.duplicate => a,
            Ok(_) => return,
            Err(e) => {
                tracing::error!(%attempt, error = ?e, "a duplicate charge could not be read: retried later");
                return;
            }
        };
        let order = match self.store.order(&attempt.order_id).await {
            Ok(Some(o)) => o,
            other => {
                tracing::error!(attempt = %attempt.id, result = ?other.err(), "a duplicate charge's order could not be read: retried later");
                return;
            }
        };
        if attempt.acquirer != sandbox::ACQUIRER {
            let key = format!("rf-dup-{}", attempt.id);
            if let Err(e) = self.bank_refund(&order, &attempt, attempt.amount_minor, &key).await {
                tracing::error!(attempt = %attempt.id, error = %e, "a duplicate charge could not be refunded yet: retried later");
                return;
            }
        }
        match self.store.record_duplicate_refund(&attempt, &order, self.now()).await {
            Ok(true) => tracing::warn!(order = %order.id, attempt = %attempt.id, "duplicate charge refunded"),
            Ok(false) => {}
            Err(e) => {
                tracing::error!(attempt = %attempt.id, error = ?e, "a duplicate refund could not be recorded: retried later")
            }
        }
    }

    /// A hold ended unpaid: its open order moves with it (expired or
    /// cancelled; nothing when it has none, or it moved on meanwhile — paid,
    /// say). A payment that still comes is settled as a late one.
    pub async fn end_with_hold(&self, hold: &str, how: HoldEnd) {
        let (to, cause) = match how {
            HoldEnd::Expired => (OrderState::Expired, "its hold expired"),
            HoldEnd::Released => (OrderState::Cancelled, "the buyer released its hold"),
        };
        let order = match self.store.order_for_hold(hold).await {
            Ok(Some(o)) if !o.state.is_final() => o,
            Ok(_) => return,
            Err(e) => {
                tracing::error!(%hold, error = ?e, "could not read the order of an ended hold");
                return;
            }
        };
        match self.store.move_order(&order.id, to, cause, self.now()).await {
            Ok(Ok(_)) => {
                tracing::info!(order = %order.id, %hold, state = %to, "order ended with its hold");
                self.changed(&order.id).await;
            }
            Ok(Err(_)) => {}
            Err(e) => tracing::error!(order = %order.id, error = ?e, "could not end an order with its hold"),
        }
    }

    /// Expires unpaid orders whose deadline passed [`super::SETTLE_GRACE_MS`]
    /// ago: normally their hold's expiry ended them already; these are the
    /// ones whose hold was gone from the engine (lost with Redis, say). The
    /// hold, if it is still there, goes back to stock; `order.expired` goes
    /// out; a payment that still comes follows the late-payment rule.
    pub async fn expire_overdue(&self) {
        let now = self.now();
        let due = match self.store.overdue_orders(now - super::SETTLE_GRACE_MS, 100).await {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = ?e, "could not look for overdue orders");
                return;
            }
        };
        for order in due {
            if let (Some(buyer), Some(offer), Some(hold)) = (&order.buyer_id, &order.offer_id, &order.hold_id) {
                match self.stock.release(buyer, offer, hold).await {
                    Ok(()) | Err(StockError::Gone) => {}
                    // It goes back when its own expiry is swept.
                    Err(e) => {
                        tracing::warn!(order = %order.id, error = ?e, "an overdue order's hold could not be released")
                    }
                }
            }
            let cause = "its deadline passed (its hold was gone)";
            match self
                .store
                .move_order(&order.id, OrderState::Expired, cause, self.now())
                .await
            {
                Ok(Ok(_)) => {
                    tracing::warn!(order = %order.id, "overdue order expired by its deadline");
                    self.changed(&order.id).await;
                }
                Ok(Err(_)) => {}
                Err(e) => tracing::error!(order = %order.id, error = ?e, "could not expire an overdue order"),
            }
        }
    }

    /// A payment failed for good: the buyer's hold goes back to stock (and
    /// viewers see the units return).
    pub(super) async fn release_after_failure(&self, order: &OrderId) {
        let Ok(Some(order)) = self.store.order(order).await else {
            return;
        };
        if order.state != OrderState::Failed {
            return;
        }
        let (Some(offer), Some(hold), Some(buyer)) = (&order.offer_id, &order.hold_id, &order.buyer_id) else {
            return;
        };
        match self.stock.release(buyer, offer, hold).await {
            Ok(()) => tracing::info!(order = %order.id, %hold, "payment failed: hold released"),
            Err(e) => tracing::info!(order = %order.id, %hold, error = %e, "payment failed; the hold was already gone"),
        }
    }

    /// After an order was paid: its hold becomes a sale (the `purchase`
    /// event goes out). A payment for a hold that is already gone takes the
    /// stock again or is refunded. Each step is idempotent: an order this
    /// did not finish (a node stopped, the engine was away) is settled again
    /// by the settlement worker.
    pub async fn settle_paid(&self, order: &OrderId) {
        let Ok(Some(order)) = self.store.order(order).await else {
            tracing::error!(%order, "a paid order could not be read back");
            return;
        };
        if order.state != OrderState::Succeeded {
            return;
        }
        // Cancelled before its stock was settled: it keeps none (the hold
        // runs out and its units return).
        if order.fulfilment == Some(Fulfilment::Cancelled) {
            self.settled(&order.id).await;
            return;
        }
        let (Some(offer), Some(hold)) = (&order.offer_id, &order.hold_id) else {
            return; // not a stream purchase
        };
        match self.stock.commit(&order.seller_id, offer, hold).await {
            Ok(()) => {
                tracing::info!(order = %order.id, %hold, "paid: hold committed");
                self.settled(&order.id).await;
                return;
            }
            // The hold is gone (expired, released): the late path below.
            Err(StockError::Gone) => {
                tracing::warn!(order = %order.id, %hold, "paid after the hold was gone");
            }
            // Anything else may have half happened: never guess with money.
            Err(e) => {
                tracing::error!(order = %order.id, %hold, error = ?e, "paid, but the hold could not be committed: reconcile");
                return;
            }
        }
        if let Some(buyer) = &order.buyer_id {
            if !self.take_again(&order, buyer, offer, hold).await {
                return;
            }
        }
        // Nothing to sell it: the order is cancelled by Haul and refunded in
        // full, as a move whose refund is owed until made (a second try
        // finds the move and asks the bank for the same refund).
        let cancel = fulfilment::Request {
            to: Fulfilment::Cancelled,
            actor: "system".into(),
            carrier: None,
            tracking_number: None,
            note: Some("paid after its hold expired and no stock was left".into()),
            refund_minor: None,
        };
        // Once the cancellation is recorded its refund is owed by the move
        // (retried by the settlement worker): the order is settled, and
        // never takes stock again.
        match self.fulfil(&order, &cancel).await {
            Ok(done) => {
                tracing::warn!(order = %order.id, refund = ?done.refund_id, owed = done.refund_owed, "late payment cancelled and refunded");
                self.settled(&order.id).await;
            }
            Err(e) => {
                tracing::error!(order = %order.id, error = %e, "a late payment could not be cancelled: retried")
            }
        }
    }

    /// A late payment takes the stock again if there is any (never sold
    /// beyond the quantity). Whether to refund it instead: `false` when it
    /// was sold, or when anything failed (settled again later).
    async fn take_again(&self, order: &Order, buyer: &str, offer: &str, hold: &str) -> bool {
        // A hold past its time that the sweeper has not reached yet still
        // counts against the buyer's limit: give it back first.
        if let Err(e) = self.stock.release(buyer, offer, hold).await {
            tracing::debug!(order = %order.id, %hold, error = %e, "the lapsed hold was already gone");
        }
        match self
            .stock
            .retake(
                buyer,
                offer,
                order.amount_minor - order.delivery_minor,
                order.id.as_str(),
            )
            .await
        {
            Ok(again) => {
                match self.stock.commit(&order.seller_id, offer, &again).await {
                    Ok(()) => {
                        tracing::info!(order = %order.id, hold = %again, "late payment: stock taken again and sold");
                        self.settled(&order.id).await;
                    }
                    Err(e) => {
                        tracing::error!(order = %order.id, error = ?e, "late payment: stock taken again but not committed: reconcile")
                    }
                }
                false
            }
            Err(StockError::SoldOut) => true,
            Err(e) => {
                tracing::error!(order = %order.id, error = ?e, "late payment: could not try to take stock again: reconcile");
                false
            }
        }
    }

    async fn settled(&self, order: &OrderId) {
        if let Err(e) = self.store.mark_settled(order, self.now()).await {
            // Settled again later, which changes nothing.
            tracing::warn!(%order, error = ?e, "could not record a settlement");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::refund_key;

    #[test]
    fn the_sellers_key_makes_a_stable_bank_key_and_no_key_a_fresh_one() {
        let a = refund_key("ord_1", "sel_1", Some("retry-me"));
        assert_eq!(a, refund_key("ord_1", "sel_1", Some("retry-me")));
        assert_ne!(a, refund_key("ord_1", "sel_2", Some("retry-me")));
        assert_ne!(a, refund_key("ord_2", "sel_1", Some("retry-me")));
        assert_ne!(refund_key("ord_1", "sel_1", None), refund_key("ord_1", "sel_1", None));
        assert!(a.len() <= 64 && a.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
    }
}
