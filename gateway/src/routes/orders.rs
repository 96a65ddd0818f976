//! Orders for stream purchases: a viewer's hold becomes an order (one per
//! hold), a payment attempt starts at an acquirer (the hold is kept alive
//! while it runs), and a paid order commits its hold.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use payments::ids::OrderId;
use payments::state::OrderState;
use payments::store::{NewOrder, Order, RefundError};
use serde::Deserialize;
use serde_json::{json, Value};
use streams::ids::{HoldId, OfferId, SellerId};
use streams::service::Error as DomainError;

use crate::app::AppState;
use crate::error::ApiError;
use crate::extract::{id, Caller, Json, Seller, Viewer};

/// How long a hold is kept once its payment has started.
pub const PAYMENT_WINDOW_MS: i64 = 15 * 60 * 1000;
/// Acquirers a buyer may choose (the sandbox, until real ones are configured).
const ACQUIRERS: &[&str] = &[payments::sandbox::ACQUIRER];

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/offers/{id}/holds/{hold}/order", post(order_for_hold))
        .route("/v1/orders/{id}", get(get_order))
        .route("/v1/orders/{id}/refunds", post(refund))
        .route("/v1/orders/{id}/attempts", post(start_attempt))
}

type Answer = Result<(StatusCode, axum::Json<Value>), ApiError>;

fn unavailable(e: impl std::error::Error + Send + Sync + 'static) -> ApiError {
    ApiError::Unavailable(Box::new(e))
}

async fn view(s: &AppState, order: &Order) -> Result<Value, ApiError> {
    let attempts = s.payments.attempts(&order.id).await.map_err(unavailable)?;
    Ok(json!({
        "id": order.id,
        "state": order.state,
        "amount_minor": order.amount_minor,
        "currency": order.currency,
        "hold_id": order.hold_id,
        "offer_id": order.offer_id,
        "attempts": attempts.iter().map(|a| json!({
            "id": a.id, "acquirer": a.acquirer, "state": a.state,
        })).collect::<Vec<_>>(),
        "created_at": order.created_at,
    }))
}

/// The order of a hold (made on first call; the same order after).
async fn order_for_hold(
    State(s): State<AppState>,
    Viewer(buyer): Viewer,
    Path((raw_offer, raw_hold)): Path<(String, String)>,
) -> Answer {
    let offer = id(&raw_offer, OfferId::parse)?;
    let hold = id(&raw_hold, HoldId::parse)?;
    let terms = s.streams.purchase_terms(&buyer, &offer, &hold).await?;
    let (order, created) = s
        .payments
        .create_order(
            &NewOrder {
                seller_id: terms.seller_id.to_string(),
                amount_minor: terms.amount_minor,
                currency: terms.currency.code().to_owned(),
                hold_id: Some(hold.to_string()),
                offer_id: Some(offer.to_string()),
                buyer_id: Some(buyer.to_string()),
                reference: None,
            },
            s.streams.now(),
        )
        .await
        .map_err(unavailable)?;
    // Paying goes through the checkout page, as on a seller's site; the
    // buyer returns to the stream.
    let item = payments::checkout::Item {
        name: terms.title.chars().take(128).collect(),
        quantity: terms.hold.quantity,
        price_minor: terms.unit_price_minor,
        vat: "none".into(),
        payment_method: "full_payment".into(),
        payment_object: "commodity".into(),
    };
    let session = payments::checkout::for_order(
        &s.pool,
        &order,
        &[item],
        &format!("{}/watch/{}", s.public_url, terms.stream_id),
        terms.hold.expires_at.max(s.streams.now()) + PAYMENT_WINDOW_MS,
        s.streams.now(),
    )
    .await
    .map_err(unavailable)?;
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    let mut v = view(&s, &order).await?;
    v["checkout_session"] = json!(session.id);
    v["checkout_url"] = json!(format!("{}/checkout/{}", s.public_url, session.id));
    Ok((status, axum::Json(v)))
}

/// A buyer's own order (another's is not found).
async fn owned(s: &AppState, buyer: &streams::ids::BuyerId, raw: &str) -> Result<Order, ApiError> {
    let oid = id(raw, OrderId::parse)?;
    match s.payments.order(&oid).await.map_err(unavailable)? {
        Some(o) if o.buyer_id.as_deref() == Some(buyer.as_str()) => Ok(o),
        _ => Err(ApiError::NotFound("order")),
    }
}

/// A seller's own order (another's is not found).
async fn sellers(s: &AppState, seller: &SellerId, raw: &str) -> Result<Order, ApiError> {
    let oid = id(raw, OrderId::parse)?;
    match s.payments.order(&oid).await.map_err(unavailable)? {
        Some(o) if o.seller_id == seller.as_str() => Ok(o),
        _ => Err(ApiError::NotFound("order")),
    }
}

/// The buyer's or the seller's view of an order.
async fn get_order(State(s): State<AppState>, caller: Caller, Path(raw): Path<String>) -> Answer {
    let order = match caller {
        Caller::Viewer(buyer) => owned(&s, &buyer, &raw).await?,
        Caller::Seller(seller) => sellers(&s, &seller, &raw).await?,
    };
    let mut v = view(&s, &order).await?;
    v["refunded_minor"] = json!(order.refunded_minor);
    Ok((StatusCode::OK, axum::Json(v)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewRefund {
    /// Omitted: all that is left.
    amount_minor: Option<i64>,
    #[serde(default)]
    reason: Option<String>,
}

/// Refunds through the acquirer of the succeeded attempt, then records it.
pub async fn refund_order(
    s: &AppState,
    order: &Order,
    amount: Option<i64>,
    reason: &str,
) -> Result<payments::store::Refund, ApiError> {
    let amount = amount.unwrap_or(order.amount_minor - order.refunded_minor);
    let attempts = s.payments.attempts(&order.id).await.map_err(unavailable)?;
    let Some(paid) = attempts
        .iter()
        .find(|a| a.state == payments::state::AttemptState::Succeeded)
    else {
        return Err(ApiError::Conflict {
            code: "order_not_paid",
            message: format!("the order is {}", order.state),
        });
    };
    // The sandbox refunds at once; real acquirers are called here.
    if paid.acquirer != payments::sandbox::ACQUIRER {
        return Err(ApiError::Conflict {
            code: "refund_unavailable",
            message: format!("refunds through {} are not available", paid.acquirer),
        });
    }
    s.payments
        .record_refund(&order.id, amount, reason, s.streams.now())
        .await
        .map_err(|e| match e {
            RefundError::UnknownOrder => ApiError::NotFound("order"),
            RefundError::NotPaid(state) => ApiError::Conflict {
                code: "order_not_paid",
                message: format!("the order is {state}"),
            },
            RefundError::TooMuch { refundable } => ApiError::InvalidField {
                field: "amount_minor",
                message: format!("from 1 to {refundable}"),
            },
            RefundError::Store(e) => unavailable(e),
        })
}

async fn refund(
    State(s): State<AppState>,
    Seller(seller): Seller,
    Path(raw): Path<String>,
    Json(body): Json<NewRefund>,
) -> Answer {
    let order = sellers(&s, &seller, &raw).await?;
    let reason = body.reason.unwrap_or_else(|| "requested by the seller".into());
    if reason.is_empty() || reason.chars().count() > 200 {
        return Err(ApiError::InvalidField {
            field: "reason",
            message: "1 to 200 characters".into(),
        });
    }
    let r = refund_order(&s, &order, body.amount_minor, &reason).await?;
    Ok((StatusCode::CREATED, axum::Json(json!(r))))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StartAttempt {
    acquirer: String,
}

/// Starts paying: a new attempt at the chosen acquirer; the hold is kept
/// for [`PAYMENT_WINDOW_MS`] from now.
async fn start_attempt(
    State(s): State<AppState>,
    Viewer(buyer): Viewer,
    Path(raw): Path<String>,
    Json(body): Json<StartAttempt>,
) -> Answer {
    let order = owned(&s, &buyer, &raw).await?;
    if !ACQUIRERS.contains(&body.acquirer.as_str()) {
        return Err(ApiError::InvalidField {
            field: "acquirer",
            message: format!("one of: {}", ACQUIRERS.join(", ")),
        });
    }
    let (attempt, hold_expires_at) = start_payment(&s, &order, &body.acquirer).await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(attempt_view(&s, &attempt, hold_expires_at)),
    ))
}

/// A new attempt for an open order; a stream purchase's hold is kept for
/// [`PAYMENT_WINDOW_MS`] from now first (a hold that is gone refuses).
pub async fn start_payment(
    s: &AppState,
    order: &Order,
    acquirer: &str,
) -> Result<(payments::store::Attempt, Option<i64>), ApiError> {
    if order.state.is_final() {
        return Err(ApiError::Conflict {
            code: "order_final",
            message: format!("the order is {}", order.state),
        });
    }
    let mut hold_expires_at = None;
    if let (Some(offer), Some(hold)) = (&order.offer_id, &order.hold_id) {
        let offer = id(offer, OfferId::parse)?;
        let hold = id(hold, HoldId::parse)?;
        hold_expires_at = Some(
            s.streams
                .extend_hold(&offer, &hold, PAYMENT_WINDOW_MS)
                .await?
                .expires_at,
        );
    }
    let attempt = s
        .payments
        .create_attempt(order, acquirer, s.streams.now())
        .await
        .map_err(unavailable)?;
    Ok((attempt, hold_expires_at))
}

/// A started attempt as the buyer sees it, with where to pay.
pub fn attempt_view(s: &AppState, attempt: &payments::store::Attempt, hold_expires_at: Option<i64>) -> Value {
    json!({
        "id": attempt.id, "order_id": attempt.order_id, "acquirer": attempt.acquirer, "state": attempt.state,
        "amount_minor": attempt.amount_minor, "currency": attempt.currency,
        "hold_expires_at": hold_expires_at,
        // Where the buyer pays: the acquirer's hosted page.
        "redirect_url": format!("{}/sandbox/pay/{}", s.public_url, attempt.id),
    })
}

/// A hold ran out: the seller hears `hold.expired`, and its unpaid order
/// expires with it (a payment that still comes is recorded as late and
/// settled then).
pub async fn expire_with_hold(s: &AppState, expired: &streams::inventory::Hold) {
    let hold = &expired.id;
    match s.streams.offer_seller(&expired.offer_id).await {
        Ok(seller) => {
            let data = json!({
                "hold_id": hold, "offer_id": expired.offer_id, "buyer_id": expired.buyer_id,
                "quantity": expired.quantity, "expired_at": expired.expires_at,
            });
            if let Err(e) =
                payments::outbox::enqueue_now(&s.pool, seller.as_str(), "hold.expired", &data, s.streams.now()).await
            {
                tracing::error!(%hold, error = %e, "could not queue the hold.expired webhook");
            }
        }
        Err(e) => tracing::warn!(%hold, error = %e, "expired hold of an unknown offer"),
    }
    let order = match s.payments.order_for_hold(hold.as_str()).await {
        Ok(Some(o)) => o,
        Ok(None) => return,
        Err(e) => {
            tracing::error!(%hold, error = ?e, "could not read the order of an expired hold");
            return;
        }
    };
    if order.state.is_final() {
        return;
    }
    match s
        .payments
        .move_order(&order.id, OrderState::Expired, "its hold expired", s.streams.now())
        .await
    {
        Ok(Ok(_)) => tracing::info!(order = %order.id, %hold, "order expired with its hold"),
        Ok(Err(_)) => {} // moved on meanwhile (paid, say)
        Err(e) => tracing::error!(order = %order.id, error = ?e, "could not expire an order"),
    }
}

/// The buyer gave the hold back: its unpaid order is cancelled (a payment
/// still in flight that succeeds later is settled as a late one).
pub async fn cancel_with_hold(s: &AppState, hold: &HoldId) {
    let order = match s.payments.order_for_hold(hold.as_str()).await {
        Ok(Some(o)) if !o.state.is_final() => o,
        Ok(_) => return,
        Err(e) => {
            tracing::error!(%hold, error = ?e, "could not read the order of a released hold");
            return;
        }
    };
    match s
        .payments
        .move_order(
            &order.id,
            OrderState::Cancelled,
            "the buyer released its hold",
            s.streams.now(),
        )
        .await
    {
        Ok(Ok(_)) => tracing::info!(order = %order.id, %hold, "order cancelled with its hold"),
        Ok(Err(_)) => {}
        Err(e) => tracing::error!(order = %order.id, error = ?e, "could not cancel an order"),
    }
}

/// A payment failed for good: the buyer's hold goes back to stock (and
/// viewers see the units return).
pub async fn release_after_failure(s: &AppState, order: &OrderId) {
    let Ok(Some(order)) = s.payments.order(order).await else {
        return;
    };
    if order.state != OrderState::Failed {
        return;
    }
    let (Some(offer), Some(hold), Some(buyer)) = (&order.offer_id, &order.hold_id, &order.buyer_id) else {
        return;
    };
    let parsed = (
        OfferId::parse(offer),
        HoldId::parse(hold),
        streams::ids::BuyerId::parse(buyer),
    );
    let (Ok(offer), Ok(hold), Ok(buyer)) = parsed else {
        return;
    };
    match s.streams.release(&buyer, &offer, &hold).await {
        Ok(_) => tracing::info!(order = %order.id, %hold, "payment failed: hold released"),
        Err(e) => tracing::info!(order = %order.id, %hold, error = %e, "payment failed; the hold was already gone"),
    }
}

/// After an order was paid: its hold becomes a sale (the `purchase` event
/// goes out). A payment for a hold that is already gone takes the stock
/// again or is refunded. Each step is idempotent: an order this did not
/// finish (a node stopped, the engine was away) is settled again by
/// [`run_settlement`].
pub async fn settle_paid(s: &AppState, order: &OrderId) {
    let Ok(Some(order)) = s.payments.order(order).await else {
        tracing::error!(%order, "a paid order could not be read back");
        return;
    };
    if order.state != OrderState::Succeeded {
        return;
    }
    let (Some(offer), Some(hold)) = (&order.offer_id, &order.hold_id) else {
        return; // not a stream purchase
    };
    let parsed = (
        SellerId::parse(&order.seller_id),
        OfferId::parse(offer),
        HoldId::parse(hold),
    );
    let (Ok(seller), Ok(offer), Ok(hold)) = parsed else {
        tracing::error!(order = %order.id, "a paid order carries ids that do not parse");
        return;
    };
    match s.streams.commit_hold(&seller, &offer, &hold).await {
        Ok(_) => {
            tracing::info!(order = %order.id, %hold, "paid: hold committed");
            settled(s, &order.id).await;
            return;
        }
        // The hold is gone (expired, released): the late path below.
        Err(DomainError::Hold(_) | DomainError::NotFound(_)) => {
            tracing::warn!(order = %order.id, %hold, "paid after the hold was gone");
        }
        // Anything else may have half happened: never guess with money.
        Err(e) => {
            tracing::error!(order = %order.id, %hold, error = ?e, "paid, but the hold could not be committed: reconcile");
            return;
        }
    }
    // Take the stock again if there is any, else give the money back.
    // Never sold beyond the quantity.
    let buyer = order
        .buyer_id
        .as_deref()
        .and_then(|b| streams::ids::BuyerId::parse(b).ok());
    if let Some(buyer) = buyer {
        // A hold past its time that the sweeper has not reached yet still
        // counts against the buyer's limit: give it back first.
        if let Err(e) = s.streams.release(&buyer, &offer, &hold).await {
            tracing::debug!(order = %order.id, %hold, error = %e, "the lapsed hold was already gone");
        }
        let units = match s.streams.units_for_amount(&offer, order.amount_minor).await {
            Ok(u) => u,
            Err(e) => {
                tracing::error!(order = %order.id, error = %e, "could not work out the units of a late payment");
                return;
            }
        };
        match s.streams.reserve(&buyer, &offer, units, order.id.as_str()).await {
            Ok(again) => {
                match s.streams.commit_hold(&seller, &offer, &again.hold.id).await {
                    Ok(_) => {
                        tracing::info!(order = %order.id, hold = %again.hold.id, "late payment: stock taken again and sold");
                        settled(s, &order.id).await;
                    }
                    Err(e) => {
                        tracing::error!(order = %order.id, error = ?e, "late payment: stock taken again but not committed: reconcile")
                    }
                }
                return;
            }
            Err(DomainError::Refused(_)) => {}
            Err(e) => {
                tracing::error!(order = %order.id, error = ?e, "late payment: could not try to take stock again: reconcile");
                return;
            }
        }
    }
    match refund_order(s, &order, None, "paid after its hold expired and no stock was left").await {
        Ok(r) => {
            tracing::warn!(order = %order.id, refund = %r.id, "late payment refunded");
            settled(s, &order.id).await;
        }
        Err(e) => {
            tracing::error!(order = %order.id, error = %e, "a late payment could not be refunded: settle by hand")
        }
    }
}

async fn settled(s: &AppState, order: &OrderId) {
    if let Err(e) = s.payments.mark_settled(order, s.streams.now()).await {
        // Settled again later, which changes nothing.
        tracing::warn!(%order, error = ?e, "could not record a settlement");
    }
}

/// A paid stream purchase is settled within this long, or settled again.
pub const SETTLE_GRACE_MS: i64 = 30_000;

/// Settles paid stream purchases left unsettled (every node runs this; the
/// steps are idempotent, so two nodes on one order change nothing twice).
pub async fn run_settlement(s: AppState, mut stop: tokio::sync::watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_secs(2)) => {}
            _ = stop.changed() => return,
        }
        let due = match s.payments.unsettled(s.streams.now() - SETTLE_GRACE_MS, 100).await {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = ?e, "could not look for unsettled payments");
                continue;
            }
        };
        for order in due {
            tracing::warn!(%order, "a paid order was not settled with its stock: settling it now");
            s.metrics.settlements_retried(1);
            settle_paid(&s, &order).await;
        }
    }
}
