//! Fulfilment: what happens to a paid order on the seller's side. It starts
//! `new` when the order is paid and moves forward only, by the seller:
//! new → confirmed → packed → shipped (carrier, tracking number) →
//! delivered, skipping steps forward if the seller wishes; or cancelled
//! before it ships (everything left is refunded), or returned after
//! (the seller chooses the refund). Every move is recorded with its actor
//! and time and sent as an `order.<state>` webhook in the same transaction.
//!
//! A move that refunds is recorded first and refunds after: the refund is an
//! obligation of the move (its amount is kept on the move), made at once
//! when the bank answers and otherwise retried by the settlement worker,
//! with a bank key derived from the move, so the bank refunds once however
//! often it is asked. The refund and the move's "refunded" mark are written
//! in one transaction: a move is never refunded twice.

use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};

use crate::ids::OrderId;
use crate::state::OrderState;
use crate::store::{order_from_row, Order, StoreError};

/// Where a paid order is on its way to the buyer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fulfilment {
    New,
    Confirmed,
    Packed,
    Shipped,
    Delivered,
    Cancelled,
    Returned,
}

impl Fulfilment {
    pub const ALL: [Fulfilment; 7] = [
        Fulfilment::New,
        Fulfilment::Confirmed,
        Fulfilment::Packed,
        Fulfilment::Shipped,
        Fulfilment::Delivered,
        Fulfilment::Cancelled,
        Fulfilment::Returned,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Fulfilment::New => "new",
            Fulfilment::Confirmed => "confirmed",
            Fulfilment::Packed => "packed",
            Fulfilment::Shipped => "shipped",
            Fulfilment::Delivered => "delivered",
            Fulfilment::Cancelled => "cancelled",
            Fulfilment::Returned => "returned",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.as_str() == s)
    }

    /// The webhook a move here is sent as.
    pub fn event_type(self) -> &'static str {
        match self {
            Fulfilment::New => "order.paid",
            Fulfilment::Confirmed => "order.confirmed",
            Fulfilment::Packed => "order.packed",
            Fulfilment::Shipped => "order.shipped",
            Fulfilment::Delivered => "order.delivered",
            Fulfilment::Cancelled => "order.cancelled",
            Fulfilment::Returned => "order.returned",
        }
    }

    /// The step of the way to the buyer (none for the two ends aside).
    fn step(self) -> Option<u8> {
        match self {
            Fulfilment::New => Some(0),
            Fulfilment::Confirmed => Some(1),
            Fulfilment::Packed => Some(2),
            Fulfilment::Shipped => Some(3),
            Fulfilment::Delivered => Some(4),
            Fulfilment::Cancelled | Fulfilment::Returned => None,
        }
    }

    /// Whether `self → to` is allowed: forward along the way (steps may be
    /// skipped), cancelled before shipping, returned after; nothing leaves
    /// cancelled or returned, and nothing moves back.
    pub fn allows(self, to: Fulfilment) -> bool {
        match (self.step(), to) {
            (None, _) => false,
            (Some(from), Fulfilment::Cancelled) => from < 3,
            (Some(from), Fulfilment::Returned) => from >= 3,
            (Some(from), to) => to.step().is_some_and(|t| t > from),
        }
    }

    /// Whether an order here still waits for the seller to act.
    pub fn is_open(self) -> bool {
        matches!(self, Fulfilment::New | Fulfilment::Confirmed | Fulfilment::Packed)
    }
}

impl std::fmt::Display for Fulfilment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The longest carrier name, tracking number and note.
pub const MAX_CARRIER: usize = 100;
pub const MAX_TRACKING: usize = 100;
pub const MAX_NOTE: usize = 500;

/// A move a seller asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub to: Fulfilment,
    /// Who asks (`key:<id>` for an API key, `retailcrm`, `system`).
    pub actor: String,
    /// Shipped: required.
    pub carrier: Option<String>,
    pub tracking_number: Option<String>,
    pub note: Option<String>,
    /// Returned: how much to refund (0 for nothing); cancelled refunds all
    /// that is left and takes no amount.
    pub refund_minor: Option<i64>,
}

/// One recorded move.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Move {
    pub id: String,
    pub order_id: String,
    pub from: Fulfilment,
    pub to: Fulfilment,
    pub actor: String,
    pub carrier: Option<String>,
    pub tracking_number: Option<String>,
    pub note: Option<String>,
    /// What the move refunds (0: nothing).
    pub refund_minor: i64,
    /// The refund once made (`none` when nothing was left to refund).
    pub refund_id: Option<String>,
    pub at: i64,
}

/// Why a move was refused.
#[derive(Debug, thiserror::Error)]
pub enum MoveError {
    #[error("no such order")]
    UnknownOrder,
    #[error("the order is {0}: fulfilment starts once it is paid")]
    NotPaid(OrderState),
    #[error("fulfilment cannot go from {from} to {to}")]
    Illegal { from: Fulfilment, to: Fulfilment },
    #[error("{field}: {message}")]
    Invalid { field: &'static str, message: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for MoveError {
    fn from(e: sqlx::Error) -> Self {
        MoveError::Store(StoreError::Db(e))
    }
}

/// What [`apply`] did.
#[derive(Debug, Clone)]
pub struct Applied {
    pub order: Order,
    pub moved: Move,
    /// False when the order was already there (the same request again):
    /// nothing changed, no webhook; `moved` is the move that took it there.
    pub fresh: bool,
}

fn text(field: &'static str, v: &Option<String>, max: usize) -> Result<Option<String>, MoveError> {
    match v.as_deref().map(str::trim) {
        None => Ok(None),
        Some("") => Err(MoveError::Invalid {
            field,
            message: "must not be empty".into(),
        }),
        Some(t) if t.chars().count() > max || t.chars().any(char::is_control) => Err(MoveError::Invalid {
            field,
            message: format!("at most {max} characters, none of them control characters"),
        }),
        Some(t) => Ok(Some(t.to_owned())),
    }
}

/// Checks a request's own fields (whatever the order): shipped names its
/// carrier and tracking number, only returned takes an amount.
pub fn check(req: &Request) -> Result<Request, MoveError> {
    let mut req = req.clone();
    req.carrier = text("carrier", &req.carrier, MAX_CARRIER)?;
    req.tracking_number = text("tracking_number", &req.tracking_number, MAX_TRACKING)?;
    req.note = text("note", &req.note, MAX_NOTE)?;
    if req.to == Fulfilment::Shipped {
        for (field, v) in [("carrier", &req.carrier), ("tracking_number", &req.tracking_number)] {
            if v.is_none() {
                return Err(MoveError::Invalid {
                    field,
                    message: "required to ship".into(),
                });
            }
        }
    } else if req.carrier.is_some() || req.tracking_number.is_some() {
        return Err(MoveError::Invalid {
            field: "carrier",
            message: "carrier and tracking_number go with shipped only".into(),
        });
    }
    match (req.to, req.refund_minor) {
        (Fulfilment::Returned, None) => Err(MoveError::Invalid {
            field: "refund_minor",
            message: "a return says how much to refund (0 for nothing)".into(),
        }),
        (Fulfilment::Returned, Some(n)) if n < 0 => Err(MoveError::Invalid {
            field: "refund_minor",
            message: "must not be negative".into(),
        }),
        (Fulfilment::Returned, _) | (_, None) => Ok(req),
        (Fulfilment::Cancelled, Some(_)) => Err(MoveError::Invalid {
            field: "refund_minor",
            message: "a cancellation refunds everything left; it takes no amount".into(),
        }),
        (_, Some(_)) => Err(MoveError::Invalid {
            field: "refund_minor",
            message: "only a return refunds".into(),
        }),
    }
}

fn move_from_row(row: &AnyRow) -> Result<Move, StoreError> {
    let state = |column: &'static str| -> Result<Fulfilment, StoreError> {
        let v: String = row.try_get(column)?;
        Fulfilment::parse(&v).ok_or(StoreError::Corrupt { column, value: v })
    };
    Ok(Move {
        id: row.try_get("id")?,
        order_id: row.try_get("order_id")?,
        from: state("from_state")?,
        to: state("to_state")?,
        actor: row.try_get("actor")?,
        carrier: row.try_get("carrier")?,
        tracking_number: row.try_get("tracking_number")?,
        note: row.try_get("note")?,
        refund_minor: row.try_get("refund_minor")?,
        refund_id: row.try_get("refund_id")?,
        at: row.try_get("at")?,
    })
}

/// Every fulfilment move of an order, oldest first.
pub async fn moves(pool: &AnyPool, order: &str) -> Result<Vec<Move>, StoreError> {
    let rows = sqlx::query("SELECT * FROM fulfilment_moves WHERE order_id = $1 ORDER BY seq")
        .bind(order)
        .fetch_all(pool)
        .await?;
    rows.iter().map(move_from_row).collect()
}

async fn order(pool: &AnyPool, id: &str) -> Result<Option<Order>, StoreError> {
    let row = sqlx::query("SELECT * FROM orders WHERE id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await?;
    row.as_ref().map(order_from_row).transpose()
}

/// How many times a compare-and-set is tried before giving up.
const CAS_TRIES: usize = 8;

/// The webhook payload of an order's fulfilment (after a move).
pub fn event_data(order: &Order, m: &Move) -> serde_json::Value {
    serde_json::json!({
        "order_id": order.id,
        "state": order.state,
        "fulfilment": m.to,
        "previous_fulfilment": m.from,
        "actor": m.actor,
        "carrier": m.carrier,
        "tracking_number": m.tracking_number,
        "note": m.note,
        "refund_minor": m.refund_minor,
        "amount_minor": order.amount_minor,
        "currency": order.currency,
        "refunded_minor": order.refunded_minor,
        "reference": order.reference,
        "offer_id": order.offer_id,
        "at": m.at,
    })
}

/// Moves the order's fulfilment as `req` asks (checked with [`check`]),
/// by compare-and-set, with its record and webhook in one transaction.
/// Asking for the state the order is already in changes nothing.
pub async fn apply(pool: &AnyPool, order_id: &OrderId, req: &Request, now: i64) -> Result<Applied, MoveError> {
    let req = check(req)?;
    for _ in 0..CAS_TRIES {
        let o = order(pool, order_id.as_str()).await?.ok_or(MoveError::UnknownOrder)?;
        let Some(from) = o.fulfilment else {
            return Err(MoveError::NotPaid(o.state));
        };
        if from == req.to {
            let all = moves(pool, o.id.as_str()).await?;
            if let Some(m) = all.into_iter().rev().find(|m| m.to == req.to) {
                return Ok(Applied {
                    order: o,
                    moved: m,
                    fresh: false,
                });
            }
        }
        if !from.allows(req.to) {
            return Err(MoveError::Illegal { from, to: req.to });
        }
        let left = o.amount_minor - o.refunded_minor;
        let refund_minor = match req.to {
            Fulfilment::Cancelled => left,
            Fulfilment::Returned => {
                let asked = req.refund_minor.unwrap_or(0);
                if asked > left {
                    return Err(MoveError::Invalid {
                        field: "refund_minor",
                        message: format!("from 0 to {left}, what is left of the order"),
                    });
                }
                asked
            }
            _ => 0,
        };
        let m = Move {
            id: format!("ful_{}", crate::ids::random_body()),
            order_id: o.id.to_string(),
            from,
            to: req.to,
            actor: req.actor.clone(),
            carrier: req.carrier.clone(),
            tracking_number: req.tracking_number.clone(),
            note: req.note.clone(),
            refund_minor,
            // Nothing to refund: nothing to wait for.
            refund_id: (refund_minor == 0 && matches!(req.to, Fulfilment::Cancelled | Fulfilment::Returned))
                .then(|| "none".to_owned()),
            at: now,
        };
        // The write comes first (SQLite takes its lock at once).
        let mut tx = pool.begin().await?;
        let shipped = req.to == Fulfilment::Shipped;
        let moved = sqlx::query(
            "UPDATE orders SET fulfilment = $1, fulfilment_at = $2, updated_at = $2, \
             carrier = CASE WHEN $3 = 1 THEN $4 ELSE carrier END, \
             tracking_number = CASE WHEN $3 = 1 THEN $5 ELSE tracking_number END \
             WHERE id = $6 AND fulfilment = $7",
        )
        .bind(req.to.as_str())
        .bind(now)
        .bind(i64::from(shipped))
        .bind(req.carrier.clone())
        .bind(req.tracking_number.clone())
        .bind(o.id.as_str())
        .bind(from.as_str())
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if !moved {
            tx.rollback().await?;
            continue;
        }
        sqlx::query(
            "INSERT INTO fulfilment_moves (id, order_id, from_state, to_state, actor, carrier, tracking_number, \
             note, refund_minor, refund_id, at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(&m.id)
        .bind(&m.order_id)
        .bind(from.as_str())
        .bind(req.to.as_str())
        .bind(&m.actor)
        .bind(m.carrier.clone())
        .bind(m.tracking_number.clone())
        .bind(m.note.clone())
        .bind(refund_minor)
        .bind(m.refund_id.clone())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let mut after = o.clone();
        after.fulfilment = Some(req.to);
        after.fulfilment_at = Some(now);
        after.updated_at = now;
        if shipped {
            after.carrier = m.carrier.clone();
            after.tracking_number = m.tracking_number.clone();
        }
        crate::outbox::enqueue(&mut tx, &o.seller_id, req.to.event_type(), &event_data(&after, &m), now).await?;
        tx.commit().await?;
        return Ok(Applied {
            order: after,
            moved: m,
            fresh: true,
        });
    }
    Err(StoreError::Contention("orders").into())
}

/// A move by id.
pub async fn find_move(pool: &AnyPool, id: &str) -> Result<Option<Move>, StoreError> {
    let row = sqlx::query("SELECT * FROM fulfilment_moves WHERE id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await?;
    row.as_ref().map(move_from_row).transpose()
}

/// Moves whose refund is still owed, made before `before` (the newest are
/// being refunded right now), oldest first.
pub async fn refunds_due(pool: &AnyPool, before: i64, limit: i64) -> Result<Vec<Move>, StoreError> {
    let rows = sqlx::query(
        "SELECT * FROM fulfilment_moves WHERE refund_minor > 0 AND refund_id IS NULL AND at < $1 \
         ORDER BY at LIMIT $2",
    )
    .bind(before)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    rows.iter().map(move_from_row).collect()
}

/// Marks a move's refund as nothing left to refund (someone refunded the
/// rest meanwhile).
pub async fn nothing_to_refund(pool: &AnyPool, move_id: &str) -> Result<(), StoreError> {
    sqlx::query("UPDATE fulfilment_moves SET refund_id = 'none' WHERE id = $1 AND refund_id IS NULL")
        .bind(move_id)
        .execute(pool)
        .await?;
    Ok(())
}

/// Flags paid orders still `new` past their seller's confirmation time
/// (`confirm_within_ms`), each once, with an `order.unconfirmed` webhook;
/// how many were flagged.
pub async fn flag_unconfirmed(pool: &AnyPool, now: i64, limit: i64) -> Result<usize, StoreError> {
    let rows = sqlx::query(
        "SELECT o.*, s.confirm_within_ms AS confirm_within FROM orders o JOIN sellers s ON s.id = o.seller_id \
         WHERE o.fulfilment = 'new' AND o.unconfirmed_at IS NULL AND s.confirm_within_ms IS NOT NULL \
         AND o.fulfilment_at + s.confirm_within_ms <= $1 AND o.state IN ('succeeded', 'partially_refunded') \
         ORDER BY o.fulfilment_at LIMIT $2",
    )
    .bind(now)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    let mut flagged = 0;
    for row in &rows {
        let o = order_from_row(row)?;
        let within: i64 = row.try_get("confirm_within")?;
        let mut tx = pool.begin().await?;
        let taken = sqlx::query(
            "UPDATE orders SET unconfirmed_at = $1 WHERE id = $2 AND fulfilment = 'new' AND unconfirmed_at IS NULL",
        )
        .bind(now)
        .bind(o.id.as_str())
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if !taken {
            tx.rollback().await?;
            continue;
        }
        let data = serde_json::json!({
            "order_id": o.id,
            "state": o.state,
            "fulfilment": "new",
            "paid_at": o.fulfilment_at,
            "confirm_by": o.fulfilment_at.map(|t| t + within),
            "amount_minor": o.amount_minor,
            "currency": o.currency,
            "reference": o.reference,
            "offer_id": o.offer_id,
        });
        crate::outbox::enqueue(&mut tx, &o.seller_id, "order.unconfirmed", &data, now).await?;
        tx.commit().await?;
        flagged += 1;
    }
    Ok(flagged)
}

#[cfg(test)]
mod tests {
    use super::Fulfilment as F;
    use super::*;

    #[test]
    fn fulfilment_moves_forward_only() {
        assert!(F::New.allows(F::Confirmed));
        assert!(F::New.allows(F::Shipped), "steps may be skipped");
        assert!(F::Packed.allows(F::Delivered));
        assert!(!F::Shipped.allows(F::Packed), "nothing moves back");
        assert!(!F::Confirmed.allows(F::New));
        assert!(!F::Delivered.allows(F::Delivered));
        for f in [F::New, F::Confirmed, F::Packed] {
            assert!(f.allows(F::Cancelled), "{f} can be cancelled");
            assert!(!f.allows(F::Returned), "{f} has not shipped");
        }
        for f in [F::Shipped, F::Delivered] {
            assert!(!f.allows(F::Cancelled), "{f} has shipped");
            assert!(f.allows(F::Returned));
        }
        for end in [F::Cancelled, F::Returned] {
            for to in F::ALL {
                assert!(!end.allows(to), "{end} is an end");
            }
        }
        for f in F::ALL {
            assert_eq!(F::parse(f.as_str()), Some(f));
        }
        assert_eq!(F::parse("lost"), None);
    }

    fn req(to: F) -> Request {
        Request {
            to,
            actor: "key:key_1".into(),
            carrier: None,
            tracking_number: None,
            note: None,
            refund_minor: None,
        }
    }

    #[test]
    fn requests_carry_what_their_move_needs_and_nothing_else() {
        assert!(check(&req(F::Confirmed)).is_ok());
        let field = |r: &Request| match check(r) {
            Err(MoveError::Invalid { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        assert_eq!(field(&req(F::Shipped)), "carrier");
        let mut shipped = req(F::Shipped);
        shipped.carrier = Some(" CDEK ".into());
        assert_eq!(field(&shipped), "tracking_number");
        shipped.tracking_number = Some("1234567890".into());
        assert_eq!(check(&shipped).unwrap().carrier.as_deref(), Some("CDEK"));
        let mut packed = req(F::Packed);
        packed.tracking_number = Some("1".into());
        assert_eq!(field(&packed), "carrier");
        assert_eq!(field(&req(F::Returned)), "refund_minor");
        let mut returned = req(F::Returned);
        returned.refund_minor = Some(-1);
        assert_eq!(field(&returned), "refund_minor");
        returned.refund_minor = Some(0);
        assert!(check(&returned).is_ok());
        let mut cancelled = req(F::Cancelled);
        cancelled.refund_minor = Some(10);
        assert_eq!(field(&cancelled), "refund_minor");
        let mut noted = req(F::Confirmed);
        noted.note = Some("bell\u{7}".into());
        assert_eq!(field(&noted), "note");
        noted.note = Some("x".repeat(MAX_NOTE + 1));
        assert_eq!(field(&noted), "note");
    }
}
