//! Durable orders, attempts, their transitions and the callback inbox, through
//! sqlx's `Any` driver (one set of SQL for SQLite and PostgreSQL).
//!
//! An acquirer's callback is applied in one transaction that first writes its
//! inbox row (so a duplicate finds the row and changes nothing), then moves
//! the attempt and the order with compare-and-set updates along the
//! forward-only tables of [`crate::state`], recording each transition. A
//! callback whose amount, currency or attempt do not match is refused and
//! rolled back whole: nothing changes, not even the inbox.

use sqlx::any::AnyRow;
use sqlx::{Any, AnyPool, Row, Transaction};

use crate::fulfilment::Fulfilment;
use crate::ids::{AttemptId, OrderId};
use crate::state::{AttemptState, OrderState};

/// A failure of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error")]
    Db(#[from] sqlx::Error),
    #[error("corrupt stored value in {column}: {value:?}")]
    Corrupt { column: &'static str, value: String },
    /// Compare-and-set kept losing to concurrent writers.
    #[error("too much contention on {0}")]
    Contention(&'static str),
}

type Result<T> = std::result::Result<T, StoreError>;

/// An order as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    pub id: OrderId,
    pub seller_id: String,
    pub state: OrderState,
    pub amount_minor: i64,
    pub currency: String,
    pub hold_id: Option<String>,
    pub offer_id: Option<String>,
    pub buyer_id: Option<String>,
    pub reference: Option<String>,
    pub refunded_minor: i64,
    pub created_at: i64,
    pub updated_at: i64,
    /// Where a paid order is on its way (`None` until paid).
    pub fulfilment: Option<Fulfilment>,
    /// When it entered that state.
    pub fulfilment_at: Option<i64>,
    /// When it was flagged as not confirmed in the seller's time.
    pub unconfirmed_at: Option<i64>,
    pub carrier: Option<String>,
    pub tracking_number: Option<String>,
    /// What of the amount is delivery (not goods).
    pub delivery_minor: i64,
}

/// An attempt as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub id: AttemptId,
    pub order_id: OrderId,
    pub acquirer: String,
    pub state: AttemptState,
    pub amount_minor: i64,
    pub currency: String,
    pub acquirer_ref: Option<String>,
    /// The seller's account at the acquirer (none for the sandbox).
    pub account_id: Option<String>,
    pub created_at: i64,
    /// It succeeded on an order another attempt had paid (refunded by Haul).
    pub duplicate: bool,
}

/// What a new order is for.
#[derive(Debug, Clone)]
pub struct NewOrder {
    pub seller_id: String,
    pub amount_minor: i64,
    pub currency: String,
    pub hold_id: Option<String>,
    pub offer_id: Option<String>,
    pub buyer_id: Option<String>,
    pub reference: Option<String>,
}

/// One recorded state change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub subject: &'static str,
    pub attempt_id: Option<AttemptId>,
    pub from: Option<String>,
    pub to: String,
    pub cause: String,
    pub at: i64,
}

/// A verified callback from an acquirer, in Haul's terms.
#[derive(Debug, Clone)]
pub struct Callback {
    pub acquirer: String,
    /// The acquirer's id of this notification (or a digest of it), unique per acquirer.
    pub callback_id: String,
    pub attempt_id: AttemptId,
    pub amount_minor: i64,
    pub currency: String,
    pub state: AttemptState,
    pub at: i64,
}

/// What a callback did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallbackOutcome {
    /// The attempt (and maybe the order) moved.
    Applied {
        attempt: AttemptState,
        order: OrderState,
        /// The order had been cancelled or had expired before the money came:
        /// the caller re-takes stock or refunds.
        late_success: bool,
        /// Another attempt had already paid the order: the caller refunds
        /// this one in full.
        duplicate: bool,
    },
    /// Taken before: nothing changed.
    Duplicate,
    /// Taken, but the attempt had already moved past that state.
    Ignored { attempt: AttemptState },
}

/// A refund as stored.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Refund {
    pub id: String,
    pub order_id: OrderId,
    pub attempt_id: AttemptId,
    pub amount_minor: i64,
    pub reason: String,
    pub created_at: i64,
}

/// Why a refund was not made.
#[derive(Debug, thiserror::Error)]
pub enum RefundError {
    #[error("no such order")]
    UnknownOrder,
    #[error("the order is {0}: only paid orders are refunded")]
    NotPaid(OrderState),
    #[error("at most {refundable} can still be refunded")]
    TooMuch { refundable: i64 },
    /// The fulfilment move this refund was for was refunded already.
    #[error("the move was refunded already")]
    MoveRefunded,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for RefundError {
    fn from(e: sqlx::Error) -> Self {
        RefundError::Store(StoreError::Db(e))
    }
}

/// Why a callback was refused (nothing recorded).
#[derive(Debug, thiserror::Error)]
pub enum CallbackError {
    #[error("no such payment attempt")]
    UnknownAttempt,
    #[error("the callback was for another acquirer")]
    WrongAcquirer,
    #[error("amount or currency differ from the attempt's")]
    Mismatch,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for CallbackError {
    fn from(e: sqlx::Error) -> Self {
        CallbackError::Store(StoreError::Db(e))
    }
}

fn corrupt(column: &'static str, value: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        column,
        value: value.into(),
    }
}

pub(crate) fn order_from_row(row: &AnyRow) -> Result<Order> {
    let id: String = row.try_get("id")?;
    let state: String = row.try_get("state")?;
    let fulfilment: Option<String> = row.try_get("fulfilment")?;
    let fulfilment = fulfilment
        .map(|f| Fulfilment::parse(&f).ok_or_else(|| corrupt("orders.fulfilment", f)))
        .transpose()?;
    Ok(Order {
        id: OrderId::parse(&id).map_err(|_| corrupt("orders.id", id))?,
        seller_id: row.try_get("seller_id")?,
        state: OrderState::parse(&state).ok_or_else(|| corrupt("orders.state", state))?,
        amount_minor: row.try_get("amount_minor")?,
        currency: row.try_get("currency")?,
        hold_id: row.try_get("hold_id")?,
        offer_id: row.try_get("offer_id")?,
        buyer_id: row.try_get("buyer_id")?,
        reference: row.try_get("reference")?,
        refunded_minor: row.try_get("refunded_minor")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        fulfilment,
        fulfilment_at: row.try_get("fulfilment_at")?,
        unconfirmed_at: row.try_get("unconfirmed_at")?,
        carrier: row.try_get("carrier")?,
        tracking_number: row.try_get("tracking_number")?,
        delivery_minor: row.try_get("delivery_minor")?,
    })
}

fn attempt_from_row(row: &AnyRow) -> Result<Attempt> {
    let id: String = row.try_get("id")?;
    let order: String = row.try_get("order_id")?;
    let state: String = row.try_get("state")?;
    Ok(Attempt {
        id: AttemptId::parse(&id).map_err(|_| corrupt("payment_attempts.id", id))?,
        order_id: OrderId::parse(&order).map_err(|_| corrupt("payment_attempts.order_id", order))?,
        acquirer: row.try_get("acquirer")?,
        state: AttemptState::parse(&state).ok_or_else(|| corrupt("payment_attempts.state", state))?,
        amount_minor: row.try_get("amount_minor")?,
        currency: row.try_get("currency")?,
        acquirer_ref: row.try_get("acquirer_ref")?,
        account_id: row.try_get("account_id")?,
        created_at: row.try_get("created_at")?,
        duplicate: row.try_get::<i64, _>("duplicate")? != 0,
    })
}

/// The order state an attempt's new state implies, if any.
fn order_follows(order: OrderState, attempt: AttemptState, other_live_attempts: bool) -> Option<OrderState> {
    let to = match attempt {
        AttemptState::Created | AttemptState::Cancelled => return None,
        AttemptState::Pending => OrderState::Pending,
        AttemptState::RequiresAction => OrderState::RequiresAction,
        AttemptState::Succeeded => OrderState::Succeeded,
        // Another attempt may still pay the order.
        AttemptState::Failed if other_live_attempts => return None,
        AttemptState::Failed => OrderState::Failed,
    };
    (order != to && order.allows(to)).then_some(to)
}

/// The seller webhook an order's new state is reported with, if any.
fn event_type(state: OrderState) -> Option<&'static str> {
    match state {
        OrderState::Succeeded => Some("order.paid"),
        OrderState::Failed => Some("order.failed"),
        OrderState::Expired => Some("order.expired"),
        OrderState::Refunded | OrderState::PartiallyRefunded => Some("order.refunded"),
        _ => None,
    }
}

/// Puts the webhook of an order's move in the outbox, in the same
/// transaction as the move.
/// `acquirer`: the one whose answer made the move, when one did.
async fn report(
    tx: &mut Transaction<'_, Any>,
    order: &Order,
    to: OrderState,
    acquirer: Option<&str>,
    now: i64,
) -> Result<()> {
    if let Some(kind) = event_type(to) {
        let mut data = serde_json::json!({
            "order_id": order.id,
            "state": to,
            "amount_minor": order.amount_minor,
            "currency": order.currency,
            "refunded_minor": order.refunded_minor,
            "reference": order.reference,
            "hold_id": order.hold_id,
            "offer_id": order.offer_id,
        });
        if let Some(a) = acquirer {
            data["acquirer"] = a.into();
        }
        data["delivery_minor"] = order.delivery_minor.into();
        // Paid: the seller learns who bought and where it goes.
        if to == OrderState::Succeeded {
            if let Some(buyer) = crate::service::buyer_of(tx, order.id.as_str()).await? {
                for (k, v) in buyer.as_object().into_iter().flatten() {
                    data[k] = v.clone();
                }
            }
        }
        crate::outbox::enqueue(tx, &order.seller_id, kind, &data, now).await?;
    }
    Ok(())
}

/// How many times a compare-and-set is retried before giving up.
const CAS_TRIES: usize = 8;

/// The payments store.
#[derive(Clone)]
pub struct PaymentStore {
    pool: AnyPool,
}

impl PaymentStore {
    pub fn new(pool: AnyPool) -> Self {
        Self { pool }
    }

    async fn record(
        tx: &mut Transaction<'_, Any>,
        order: &OrderId,
        attempt: Option<&AttemptId>,
        from: Option<&str>,
        to: &str,
        cause: &str,
        at: i64,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO payment_transitions (order_id, attempt_id, subject, from_state, to_state, cause, at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(order.as_str())
        .bind(attempt.map(|a| a.as_str().to_owned()))
        .bind(if attempt.is_some() { "attempt" } else { "order" })
        .bind(from.map(str::to_owned))
        .bind(to)
        .bind(cause)
        .bind(at)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// Creates an order in `created`. A second order for the same hold is
    /// not created: the existing one is returned (`false`).
    pub async fn create_order(&self, new: &NewOrder, now: i64) -> Result<(Order, bool)> {
        let id = OrderId::generate();
        let mut tx = self.pool.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO orders (id, seller_id, state, amount_minor, currency, hold_id, offer_id, buyer_id, reference, \
             created_at, updated_at, stream_id) VALUES ($1, $2, 'created', $3, $4, $5, $6, $7, $8, $9, $9, \
             (SELECT f.stream_id FROM offers f WHERE f.id = $6)) \
             ON CONFLICT (hold_id) DO NOTHING",
        )
        .bind(id.as_str())
        .bind(&new.seller_id)
        .bind(new.amount_minor)
        .bind(&new.currency)
        .bind(new.hold_id.clone())
        .bind(new.offer_id.clone())
        .bind(new.buyer_id.clone())
        .bind(new.reference.clone())
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if inserted {
            Self::record(&mut tx, &id, None, None, "created", "order created", now).await?;
            tx.commit().await?;
            let order = self
                .order(&id)
                .await?
                .ok_or_else(|| corrupt("orders.id", id.as_str()))?;
            return Ok((order, true));
        }
        tx.rollback().await?;
        let hold = new.hold_id.as_deref().unwrap_or_default();
        let row = sqlx::query("SELECT * FROM orders WHERE hold_id = $1")
            .bind(hold)
            .fetch_one(&self.pool)
            .await?;
        Ok((order_from_row(&row)?, false))
    }

    pub async fn order(&self, id: &OrderId) -> Result<Option<Order>> {
        let row = sqlx::query("SELECT * FROM orders WHERE id = $1")
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(order_from_row).transpose()
    }

    /// The order of a stream hold, if one was made.
    pub async fn order_for_hold(&self, hold: &str) -> Result<Option<Order>> {
        let row = sqlx::query("SELECT * FROM orders WHERE hold_id = $1")
            .bind(hold)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(order_from_row).transpose()
    }

    /// The attempts of an order, oldest first.
    pub async fn attempts(&self, order: &OrderId) -> Result<Vec<Attempt>> {
        let rows = sqlx::query("SELECT * FROM payment_attempts WHERE order_id = $1 ORDER BY created_at, id")
            .bind(order.as_str())
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(attempt_from_row).collect()
    }

    pub async fn attempt(&self, id: &AttemptId) -> Result<Option<Attempt>> {
        let row = sqlx::query("SELECT * FROM payment_attempts WHERE id = $1")
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(attempt_from_row).transpose()
    }

    /// An order's refunds, oldest first, each with its kind (`order`: the
    /// order's own; `duplicate`: a second charge given back).
    pub async fn refunds_of(&self, order: &OrderId) -> Result<Vec<(Refund, String)>> {
        let rows = sqlx::query("SELECT * FROM refunds WHERE order_id = $1 ORDER BY created_at, id")
            .bind(order.as_str())
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                let attempt: String = r.try_get("attempt_id")?;
                Ok((
                    Refund {
                        id: r.try_get("id")?,
                        order_id: order.clone(),
                        attempt_id: AttemptId::parse(&attempt).map_err(|_| corrupt("refunds.attempt_id", attempt))?,
                        amount_minor: r.try_get("amount_minor")?,
                        reason: r.try_get("reason")?,
                        created_at: r.try_get("created_at")?,
                    },
                    r.try_get("kind")?,
                ))
            })
            .collect()
    }

    /// Every transition of an order and its attempts, oldest first.
    pub async fn transitions(&self, order: &OrderId) -> Result<Vec<Transition>> {
        let rows = sqlx::query("SELECT * FROM payment_transitions WHERE order_id = $1 ORDER BY seq")
            .bind(order.as_str())
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                let subject: String = r.try_get("subject")?;
                let attempt: Option<String> = r.try_get("attempt_id")?;
                Ok(Transition {
                    subject: if subject == "attempt" { "attempt" } else { "order" },
                    attempt_id: attempt
                        .map(|a| AttemptId::parse(&a).map_err(|_| corrupt("payment_transitions.attempt_id", a)))
                        .transpose()?,
                    from: r.try_get("from_state")?,
                    to: r.try_get("to_state")?,
                    cause: r.try_get("cause")?,
                    at: r.try_get("at")?,
                })
            })
            .collect()
    }

    /// Starts an attempt at `acquirer` for the order's whole amount.
    pub async fn create_attempt(&self, order: &Order, acquirer: &str, now: i64) -> Result<Attempt> {
        let id = AttemptId::generate();
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO payment_attempts (id, order_id, acquirer, state, amount_minor, currency, created_at, updated_at) \
             VALUES ($1, $2, $3, 'created', $4, $5, $6, $6)",
        )
        .bind(id.as_str())
        .bind(order.id.as_str())
        .bind(acquirer)
        .bind(order.amount_minor)
        .bind(&order.currency)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        Self::record(
            &mut tx,
            &order.id,
            Some(&id),
            None,
            "created",
            &format!("attempt at {acquirer}"),
            now,
        )
        .await?;
        tx.commit().await?;
        self.attempt(&id)
            .await?
            .ok_or_else(|| corrupt("payment_attempts.id", id.as_str()))
    }

    /// Records where an attempt was made: the seller's account and the
    /// bank's id of the payment.
    pub async fn set_started(
        &self,
        id: &AttemptId,
        account_id: Option<&str>,
        acquirer_ref: &str,
        now: i64,
    ) -> Result<()> {
        sqlx::query("UPDATE payment_attempts SET account_id = $1, acquirer_ref = $2, updated_at = $3 WHERE id = $4")
            .bind(account_id)
            .bind(acquirer_ref)
            .bind(now)
            .bind(id.as_str())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Gives up an attempt the bank never took (it refused to serve, or was
    /// out of service): `created` → `cancelled`, recorded with `cause`; the
    /// order stays open for another attempt.
    pub async fn abandon_attempt(&self, id: &AttemptId, cause: &str, now: i64) -> Result<bool> {
        let Some(attempt) = self.attempt(id).await? else {
            return Ok(false);
        };
        let mut tx = self.pool.begin().await?;
        let moved = sqlx::query(
            "UPDATE payment_attempts SET state = 'cancelled', updated_at = $1 WHERE id = $2 AND state = 'created'",
        )
        .bind(now)
        .bind(id.as_str())
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if moved {
            Self::record(
                &mut tx,
                &attempt.order_id,
                Some(id),
                Some("created"),
                "cancelled",
                cause,
                now,
            )
            .await?;
        }
        tx.commit().await?;
        Ok(moved)
    }

    /// Attempts still open (created, pending, requires action) at a bank
    /// account or the sandbox, made since `since`, neither changed nor asked
    /// about since `before`; the least recently asked first: what
    /// reconciliation polls.
    pub async fn open_attempts(&self, before: i64, since: i64, limit: i64) -> Result<Vec<Attempt>> {
        let rows = sqlx::query(
            "SELECT * FROM payment_attempts WHERE (account_id IS NOT NULL OR acquirer = 'sandbox') \
             AND state IN ('created', 'pending', 'requires_action') AND updated_at < $1 \
             AND (checked_at IS NULL OR checked_at < $1) AND created_at >= $2 \
             ORDER BY COALESCE(checked_at, 0), updated_at LIMIT $3",
        )
        .bind(before)
        .bind(since)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(attempt_from_row).collect()
    }

    /// Records that reconciliation asked the bank about an attempt.
    pub async fn touch_attempt(&self, id: &AttemptId, now: i64) -> Result<()> {
        sqlx::query("UPDATE payment_attempts SET checked_at = $1 WHERE id = $2")
            .bind(now)
            .bind(id.as_str())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Records the account an attempt goes to before the bank is asked.
    pub async fn set_account(&self, id: &AttemptId, account_id: &str) -> Result<()> {
        sqlx::query("UPDATE payment_attempts SET account_id = $1 WHERE id = $2")
            .bind(account_id)
            .bind(id.as_str())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Sets an unpaid order's deadline (see [`Self::overdue_orders`]).
    pub async fn set_deadline(&self, id: &OrderId, at: i64) -> Result<()> {
        sqlx::query("UPDATE orders SET expires_at = $1 WHERE id = $2")
            .bind(at)
            .bind(id.as_str())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Open orders whose deadline passed before `before`.
    pub async fn overdue_orders(&self, before: i64, limit: i64) -> Result<Vec<Order>> {
        let rows = sqlx::query(
            "SELECT * FROM orders WHERE state IN ('created', 'pending', 'requires_action') \
             AND expires_at IS NOT NULL AND expires_at < $1 ORDER BY expires_at LIMIT $2",
        )
        .bind(before)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(order_from_row).collect()
    }

    /// Records the refund of a duplicate charge (the whole attempt), once:
    /// kept apart from the order's refunds (the order's total and state do
    /// not change), with its history line and `payment.duplicate_refunded`
    /// webhook in the same transaction. `false`: recorded before.
    pub async fn record_duplicate_refund(&self, attempt: &Attempt, order: &Order, now: i64) -> Result<bool> {
        // The insert comes first: the unique index answers "recorded
        // before", and the transaction writes from its first statement (no
        // read-then-write lock upgrade for SQLite to refuse).
        let mut tx = self.pool.begin().await?;
        let id = format!("ref_{}", crate::ids::random_body());
        let inserted = sqlx::query(
            "INSERT INTO refunds (id, order_id, attempt_id, amount_minor, reason, created_at, kind) \
             VALUES ($1, $2, $3, $4, $5, $6, 'duplicate')",
        )
        .bind(&id)
        .bind(order.id.as_str())
        .bind(attempt.id.as_str())
        .bind(attempt.amount_minor)
        .bind("duplicate charge: the order was already paid")
        .bind(now)
        .execute(&mut *tx)
        .await;
        match inserted {
            Ok(_) => {}
            // Another node recorded it meanwhile (one row per duplicate).
            Err(sqlx::Error::Database(d)) if d.is_unique_violation() => {
                tx.rollback().await?;
                return Ok(false);
            }
            Err(e) => return Err(e.into()),
        }
        Self::record(
            &mut tx,
            &order.id,
            Some(&attempt.id),
            Some(attempt.state.as_str()),
            attempt.state.as_str(),
            &format!("duplicate charge refunded in full ({id})"),
            now,
        )
        .await?;
        let data = serde_json::json!({
            "order_id": order.id,
            "attempt_id": attempt.id,
            "refund_id": id,
            "acquirer": attempt.acquirer,
            "amount_minor": attempt.amount_minor,
            "currency": attempt.currency,
            "reference": order.reference,
        });
        crate::outbox::enqueue(&mut tx, &order.seller_id, "payment.duplicate_refunded", &data, now).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Duplicate charges not refunded yet, marked before `before` (the
    /// settlement worker's list; the newest are being refunded right now).
    pub async fn unrefunded_duplicates(&self, before: i64, limit: i64) -> Result<Vec<Attempt>> {
        let rows = sqlx::query(
            "SELECT * FROM payment_attempts a WHERE a.duplicate = 1 AND a.updated_at < $1 \
             AND NOT EXISTS (SELECT 1 FROM refunds r WHERE r.attempt_id = a.id AND r.kind = 'duplicate') \
             ORDER BY a.updated_at LIMIT $2",
        )
        .bind(before)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(attempt_from_row).collect()
    }

    /// Records a refund the acquirer has made (full when `amount` is the
    /// rest): the running total, the order's state and its webhook move in
    /// one transaction, and the total can never pass the amount, however
    /// many refunds race. `for_move`: the fulfilment move (a cancellation,
    /// a return) the refund is owed by, marked refunded in the same
    /// transaction, once.
    pub async fn record_refund(
        &self,
        order_id: &OrderId,
        amount: i64,
        reason: &str,
        now: i64,
        for_move: Option<&str>,
    ) -> std::result::Result<Refund, RefundError> {
        for _ in 0..CAS_TRIES {
            let order = self.order(order_id).await?.ok_or(RefundError::UnknownOrder)?;
            if !matches!(order.state, OrderState::Succeeded | OrderState::PartiallyRefunded) {
                return Err(RefundError::NotPaid(order.state));
            }
            let refundable = order.amount_minor - order.refunded_minor;
            if amount <= 0 || amount > refundable {
                return Err(RefundError::TooMuch { refundable });
            }
            let attempt: String = sqlx::query(
                "SELECT id FROM payment_attempts WHERE order_id = $1 AND state = 'succeeded' AND duplicate = 0 \
                 ORDER BY created_at LIMIT 1",
            )
            .bind(order.id.as_str())
            .fetch_one(&self.pool)
            .await?
            .try_get("id")?;
            let to = if amount == refundable {
                OrderState::Refunded
            } else {
                OrderState::PartiallyRefunded
            };
            let mut tx = self.pool.begin().await?;
            let moved = sqlx::query(
                "UPDATE orders SET state = $1, refunded_minor = refunded_minor + $2, updated_at = $3                  WHERE id = $4 AND state = $5 AND refunded_minor = $6",
            )
            .bind(to.as_str())
            .bind(amount)
            .bind(now)
            .bind(order.id.as_str())
            .bind(order.state.as_str())
            .bind(order.refunded_minor)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                == 1;
            if !moved {
                tx.rollback().await?;
                continue;
            }
            let refund = Refund {
                id: format!("ref_{}", crate::ids::random_body()),
                order_id: order.id.clone(),
                attempt_id: AttemptId::parse(&attempt).map_err(|_| corrupt("payment_attempts.id", attempt))?,
                amount_minor: amount,
                reason: reason.to_owned(),
                created_at: now,
            };
            sqlx::query(
                "INSERT INTO refunds (id, order_id, attempt_id, amount_minor, reason, created_at)                  VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&refund.id)
            .bind(refund.order_id.as_str())
            .bind(refund.attempt_id.as_str())
            .bind(amount)
            .bind(reason)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            if let Some(m) = for_move {
                let marked =
                    sqlx::query("UPDATE fulfilment_moves SET refund_id = $1 WHERE id = $2 AND refund_id IS NULL")
                        .bind(&refund.id)
                        .bind(m)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected()
                        == 1;
                if !marked {
                    tx.rollback().await?;
                    return Err(RefundError::MoveRefunded);
                }
            }
            Self::record(
                &mut tx,
                &order.id,
                None,
                Some(order.state.as_str()),
                to.as_str(),
                &format!("refund {} of {amount}: {reason}", refund.id),
                now,
            )
            .await?;
            let mut after = order.clone();
            after.refunded_minor += amount;
            report(&mut tx, &after, to, None, now).await?;
            tx.commit().await?;
            return Ok(refund);
        }
        Err(StoreError::Contention("orders").into())
    }

    /// Records that a paid stream purchase was settled with the stock.
    pub async fn mark_settled(&self, id: &OrderId, now: i64) -> Result<()> {
        sqlx::query("UPDATE orders SET settled_at = $1 WHERE id = $2 AND settled_at IS NULL")
            .bind(now)
            .bind(id.as_str())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Paid stream purchases not settled with the stock, paid before `before`
    /// (ms), oldest first.
    pub async fn unsettled(&self, before: i64, limit: i64) -> Result<Vec<OrderId>> {
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM orders WHERE settled_at IS NULL AND hold_id IS NOT NULL AND state = 'succeeded' \
             AND updated_at < $1 ORDER BY updated_at LIMIT $2",
        )
        .bind(before)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        ids.iter()
            .map(|i| OrderId::parse(i).map_err(|_| corrupt("orders.id", i)))
            .collect()
    }

    /// Moves an order by compare-and-set (cancel, expire, refund bookkeeping).
    /// Returns the state it ended in; refuses moves the lifecycle forbids.
    pub async fn move_order(
        &self,
        id: &OrderId,
        to: OrderState,
        cause: &str,
        now: i64,
    ) -> Result<std::result::Result<OrderState, crate::state::IllegalMove>> {
        for _ in 0..CAS_TRIES {
            let Some(order) = self.order(id).await? else {
                return Err(corrupt("orders.id", id.as_str()));
            };
            if let Err(e) = order.state.step(to) {
                return Ok(Err(e));
            }
            let mut tx = self.pool.begin().await?;
            let moved = sqlx::query("UPDATE orders SET state = $1, updated_at = $2 WHERE id = $3 AND state = $4")
                .bind(to.as_str())
                .bind(now)
                .bind(id.as_str())
                .bind(order.state.as_str())
                .execute(&mut *tx)
                .await?
                .rows_affected()
                == 1;
            if moved {
                Self::record(&mut tx, id, None, Some(order.state.as_str()), to.as_str(), cause, now).await?;
                report(&mut tx, &order, to, None, now).await?;
                tx.commit().await?;
                return Ok(Ok(to));
            }
        }
        Err(StoreError::Contention("orders"))
    }

    /// Applies a verified callback exactly once (see the module docs).
    pub async fn apply_callback(&self, cb: &Callback) -> std::result::Result<CallbackOutcome, CallbackError> {
        for _ in 0..CAS_TRIES {
            if let Some(outcome) = self.try_apply(cb).await? {
                return Ok(outcome);
            }
        }
        Err(StoreError::Contention("payment_attempts").into())
    }

    /// One go at a callback; `None` when a concurrent change won the race
    /// (everything rolled back, try again).
    async fn try_apply(&self, cb: &Callback) -> std::result::Result<Option<CallbackOutcome>, CallbackError> {
        let mut tx = self.pool.begin().await?;
        // Written first: it dedupes, and on SQLite it takes the write lock
        // at once, so concurrent callbacks queue instead of deadlocking.
        let fresh = sqlx::query(
            "INSERT INTO callback_inbox (acquirer, callback_id, attempt_id, reported, outcome, received_at) \
             SELECT $1, $2, id, $3, 'applied', $4 FROM payment_attempts WHERE id = $5 \
             ON CONFLICT (acquirer, callback_id) DO NOTHING",
        )
        .bind(&cb.acquirer)
        .bind(&cb.callback_id)
        .bind(cb.state.as_str())
        .bind(cb.at)
        .bind(cb.attempt_id.as_str())
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        let row = sqlx::query("SELECT * FROM payment_attempts WHERE id = $1")
            .bind(cb.attempt_id.as_str())
            .fetch_optional(&mut *tx)
            .await?;
        let Some(row) = row else {
            tx.rollback().await?;
            return Err(CallbackError::UnknownAttempt);
        };
        let attempt = attempt_from_row(&row)?;
        if attempt.acquirer != cb.acquirer {
            tx.rollback().await?;
            return Err(CallbackError::WrongAcquirer);
        }
        if attempt.amount_minor != cb.amount_minor || attempt.currency != cb.currency {
            tx.rollback().await?;
            return Err(CallbackError::Mismatch);
        }
        if !fresh {
            tx.rollback().await?;
            return Ok(Some(CallbackOutcome::Duplicate));
        }
        let cause = format!("callback {}:{}", cb.acquirer, cb.callback_id);
        if !attempt.state.allows(cb.state) {
            sqlx::query("UPDATE callback_inbox SET outcome = 'ignored' WHERE acquirer = $1 AND callback_id = $2")
                .bind(&cb.acquirer)
                .bind(&cb.callback_id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            return Ok(Some(CallbackOutcome::Ignored { attempt: attempt.state }));
        }
        let moved = sqlx::query("UPDATE payment_attempts SET state = $1, updated_at = $2 WHERE id = $3 AND state = $4")
            .bind(cb.state.as_str())
            .bind(cb.at)
            .bind(attempt.id.as_str())
            .bind(attempt.state.as_str())
            .execute(&mut *tx)
            .await?
            .rows_affected()
            == 1;
        if !moved {
            tx.rollback().await?;
            return Ok(None);
        }
        Self::record(
            &mut tx,
            &attempt.order_id,
            Some(&attempt.id),
            Some(attempt.state.as_str()),
            cb.state.as_str(),
            &cause,
            cb.at,
        )
        .await?;
        let Some((order_state, late_success, duplicate)) =
            Self::order_follows_attempt(&mut tx, &attempt, cb, &cause).await?
        else {
            tx.rollback().await?;
            return Ok(None);
        };
        tx.commit().await?;
        Ok(Some(CallbackOutcome::Applied {
            attempt: cb.state,
            order: order_state,
            late_success,
            duplicate,
        }))
    }

    /// The order of an attempt a callback just moved follows it (and its
    /// webhook is queued), in the same transaction: the order's state then,
    /// and whether this was money for an order already over; `None` when a
    /// concurrent change won the race.
    async fn order_follows_attempt(
        tx: &mut Transaction<'_, Any>,
        attempt: &Attempt,
        cb: &Callback,
        cause: &str,
    ) -> Result<Option<(OrderState, bool, bool)>> {
        let row = sqlx::query("SELECT * FROM orders WHERE id = $1")
            .bind(attempt.order_id.as_str())
            .fetch_one(&mut **tx)
            .await?;
        let order = order_from_row(&row)?;
        let others: i64 = sqlx::query(
            "SELECT COUNT(*) AS n FROM payment_attempts WHERE order_id = $1 AND id <> $2 \
             AND state IN ('created', 'pending', 'requires_action')",
        )
        .bind(order.id.as_str())
        .bind(attempt.id.as_str())
        .fetch_one(&mut **tx)
        .await?
        .try_get("n")?;
        let mut order_state = order.state;
        let mut late_success = false;
        if let Some(to) = order_follows(order.state, cb.state, others > 0) {
            let moved = sqlx::query("UPDATE orders SET state = $1, updated_at = $2 WHERE id = $3 AND state = $4")
                .bind(to.as_str())
                .bind(cb.at)
                .bind(order.id.as_str())
                .bind(order.state.as_str())
                .execute(&mut **tx)
                .await?
                .rows_affected()
                == 1;
            if !moved {
                return Ok(None);
            }
            late_success =
                to == OrderState::Succeeded && matches!(order.state, OrderState::Cancelled | OrderState::Expired);
            // Paid: the seller's part begins.
            if to == OrderState::Succeeded {
                sqlx::query(
                    "UPDATE orders SET fulfilment = 'new', fulfilment_at = $1 WHERE id = $2 AND fulfilment IS NULL",
                )
                .bind(cb.at)
                .bind(order.id.as_str())
                .execute(&mut **tx)
                .await?;
            }
            Self::record(
                tx,
                &order.id,
                None,
                Some(order.state.as_str()),
                to.as_str(),
                cause,
                cb.at,
            )
            .await?;
            report(tx, &order, to, Some(&cb.acquirer), cb.at).await?;
            order_state = to;
        }
        // Money for an order another attempt already paid: a duplicate
        // charge, marked here and refunded by the caller.
        let duplicate = cb.state == AttemptState::Succeeded
            && matches!(
                order.state,
                OrderState::Succeeded | OrderState::PartiallyRefunded | OrderState::Refunded
            );
        if duplicate {
            sqlx::query("UPDATE payment_attempts SET duplicate = 1 WHERE id = $1")
                .bind(attempt.id.as_str())
                .execute(&mut **tx)
                .await?;
            let data = serde_json::json!({
                "order_id": order.id,
                "attempt_id": attempt.id,
                "acquirer": cb.acquirer,
                "amount_minor": attempt.amount_minor,
                "currency": attempt.currency,
                "reference": order.reference,
            });
            crate::outbox::enqueue(tx, &order.seller_id, "payment.duplicate", &data, cb.at).await?;
        }
        Ok(Some((order_state, late_success, duplicate)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_follow_their_attempts_forward_only() {
        use AttemptState as A;
        use OrderState as O;
        assert_eq!(order_follows(O::Created, A::Pending, false), Some(O::Pending));
        assert_eq!(order_follows(O::Pending, A::Succeeded, false), Some(O::Succeeded));
        assert_eq!(order_follows(O::Expired, A::Succeeded, false), Some(O::Succeeded));
        // A failure while another attempt is still live leaves the order be.
        assert_eq!(order_follows(O::Pending, A::Failed, true), None);
        assert_eq!(order_follows(O::Pending, A::Failed, false), Some(O::Failed));
        // Nothing moves a paid order back.
        assert_eq!(order_follows(O::Succeeded, A::Pending, false), None);
        assert_eq!(order_follows(O::Refunded, A::Succeeded, false), None);
        assert_eq!(order_follows(O::Pending, A::Cancelled, false), None);
    }
}
