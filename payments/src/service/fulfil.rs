//! A paid order's fulfilment moves (see [`crate::fulfilment`]) and the
//! refunds they owe: a cancellation refunds everything left, a return what
//! the seller chose. The move is recorded first; its refund is made at once
//! when the bank answers, else by the settlement worker.

use crate::fulfilment::{self, Move, MoveError, Request};
use crate::state::OrderState;
use crate::store::Order;

use super::{refund_key, Error, Payments, Result};

/// What a move did.
#[derive(Debug, Clone)]
pub struct Fulfilled {
    pub order: Order,
    pub moved: Move,
    /// False: the order was there already (nothing changed).
    pub fresh: bool,
    /// The move's refund once made (`none`: nothing was left to refund).
    pub refund_id: Option<String>,
    /// What the move still owes the buyer (retried until refunded).
    pub refund_owed: i64,
}

fn move_error(e: MoveError) -> Error {
    match e {
        MoveError::UnknownOrder => Error::NotFound("order"),
        MoveError::NotPaid(state) => Error::conflict(
            "order_not_paid",
            format!("the order is {state}: fulfilment starts once it is paid"),
        ),
        MoveError::Illegal { from, to } => Error::conflict(
            "illegal_fulfilment_move",
            format!("fulfilment cannot go from {from} to {to}"),
        ),
        MoveError::Invalid { field, message } => Error::Invalid { field, message },
        MoveError::Store(e) => Error::unavailable(e),
    }
}

impl Payments {
    /// Moves `order`'s fulfilment as `req` asks, then makes the refund the
    /// move owes (if any). A bank that does not answer leaves the refund
    /// owed, not the move undone: `refund_owed` says so.
    pub async fn fulfil(&self, order: &Order, req: &Request) -> Result<Fulfilled> {
        let applied = fulfilment::apply(&self.pool, &order.id, req, self.now())
            .await
            .map_err(move_error)?;
        let mut done = Fulfilled {
            refund_id: applied.moved.refund_id.clone(),
            refund_owed: if applied.moved.refund_id.is_some() {
                0
            } else {
                applied.moved.refund_minor
            },
            order: applied.order,
            moved: applied.moved,
            fresh: applied.fresh,
        };
        if done.fresh {
            self.changed(&done.order.id).await;
        }
        if done.refund_owed > 0 {
            match self.refund_move(&done.moved).await {
                Ok(id) => {
                    done.refund_id = Some(id);
                    done.refund_owed = 0;
                    if let Ok(Some(o)) = self.store.order(&done.order.id).await {
                        done.order = o;
                    }
                }
                Err(e) => {
                    tracing::warn!(order = %done.order.id, fulfilment_move = %done.moved.id, error = %e, "a move's refund is owed: retried");
                }
            }
        }
        Ok(done)
    }

    /// Makes the refund a move owes (no more than what is left of the
    /// order), under a bank key of the move's own: asked again, the bank
    /// refunds once, and the record is written once. The refund's id.
    pub async fn refund_move(&self, m: &Move) -> Result<String> {
        let id = crate::ids::OrderId::parse(&m.order_id).map_err(Error::internal)?;
        let order = self
            .store
            .order(&id)
            .await
            .map_err(Error::unavailable)?
            .ok_or(Error::NotFound("order"))?;
        let left = order.amount_minor - order.refunded_minor;
        let amount = m.refund_minor.min(left);
        if amount <= 0 || !matches!(order.state, OrderState::Succeeded | OrderState::PartiallyRefunded) {
            fulfilment::nothing_to_refund(&self.pool, &m.id)
                .await
                .map_err(Error::unavailable)?;
            return Ok("none".into());
        }
        let reason = match (&m.to, &m.note) {
            (fulfilment::Fulfilment::Cancelled, Some(note)) => format!("cancelled: {note}"),
            (fulfilment::Fulfilment::Cancelled, None) => "cancelled".to_owned(),
            (_, Some(note)) => format!("returned: {note}"),
            (_, None) => "returned".to_owned(),
        };
        let reason: String = reason.chars().take(200).collect();
        let key = refund_key(&m.order_id, &order.seller_id, Some(&m.id));
        let r = self
            .refund_for(&order, Some(amount), &reason, &key, Some(&m.id))
            .await?;
        Ok(r.id)
    }

    /// The refunds moves still owe, made at least `grace_ms` ago (the
    /// settlement worker's round).
    pub async fn refund_owed_moves(&self, grace_ms: i64) {
        let due = match fulfilment::refunds_due(&self.pool, self.now() - grace_ms, 100).await {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = ?e, "could not look for refunds owed by fulfilment moves");
                return;
            }
        };
        for m in due {
            match self.refund_move(&m).await {
                Ok(id) => {
                    tracing::info!(order = %m.order_id, fulfilment_move = %m.id, refund = %id, "an owed refund was made")
                }
                Err(e) => {
                    tracing::warn!(order = %m.order_id, fulfilment_move = %m.id, error = %e, "an owed refund failed again: retried")
                }
            }
        }
    }

    /// An order's fulfilment moves, oldest first.
    pub async fn fulfilment_moves(&self, order: &str) -> Result<Vec<Move>> {
        fulfilment::moves(&self.pool, order).await.map_err(Error::unavailable)
    }

    /// The deliveries of the seller's webhooks about an order, oldest first.
    pub async fn order_deliveries(&self, seller: &str, order: &str) -> Result<Vec<crate::outbox::OrderDelivery>> {
        crate::outbox::order_deliveries(&self.pool, seller, order, 200)
            .await
            .map_err(Error::unavailable)
    }

    /// Flags paid orders their seller has not confirmed in time.
    pub async fn flag_unconfirmed(&self) {
        match fulfilment::flag_unconfirmed(&self.pool, self.now(), 100).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(orders = n, "paid orders not confirmed in time were flagged"),
            Err(e) => tracing::warn!(error = ?e, "could not look for unconfirmed orders"),
        }
    }
}
