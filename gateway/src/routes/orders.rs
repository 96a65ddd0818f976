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
/// Refunds `amount` (the rest when `None`) of a paid order: a bank is asked
/// first, under `bank_key` (the bank's idempotency key: the same key asks
/// for the same refund, so a retry after a failure to record it is not
/// refunded twice), and only what it refunded is recorded.
pub async fn refund_order(
    s: &AppState,
    order: &Order,
    amount: Option<i64>,
    reason: &str,
    bank_key: &str,
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
    if !matches!(order.state, OrderState::Succeeded | OrderState::PartiallyRefunded) {
        return Err(ApiError::Conflict {
            code: "order_not_paid",
            message: format!("the order is {}", order.state),
        });
    }
    let refundable = order.amount_minor - order.refunded_minor;
    if !(1..=refundable).contains(&amount) {
        return Err(ApiError::InvalidField {
            field: "amount_minor",
            message: format!("from 1 to {refundable}"),
        });
    }
    // The sandbox refunds at once; a bank is asked first, and only what it
    // refunded is recorded.
    if paid.acquirer != payments::sandbox::ACQUIRER {
        let (Some(account), Some(payment)) = (&paid.account_id, &paid.acquirer_ref) else {
            return Err(ApiError::Conflict {
                code: "refund_unavailable",
                message: format!("refunds through {} are not available", paid.acquirer),
            });
        };
        let creds = payments::accounts::credentials(&s.pool, &s.vault, &order.seller_id, account)
            .await
            .map_err(|e| ApiError::Internal(Box::new(e)))?
            .ok_or(ApiError::Conflict {
                code: "refund_unavailable",
                message: "the bank account of this payment was removed".into(),
            })?;
        let bank = payments::service::bank::adapter(&creds).map_err(ApiError::internal)?;
        // The bank names the payment to refund its own way (CloudPayments'
        // transaction, Stripe's PaymentIntent): ask it first.
        let found = payments::service::bank::lookup(&s.transport, bank.as_ref(), paid.id.as_str(), payment)
            .await
            .map_err(|why| ApiError::Acquirer {
                code: "refund_failed",
                message: format!("{} did not answer about the payment: {why}", paid.acquirer),
            })?;
        let payments::acquirers::Lookup::Found(found) = found else {
            return Err(ApiError::Acquirer {
                code: "refund_failed",
                message: format!("{} does not know the payment", paid.acquirer),
            });
        };
        payments::service::bank::refund(
            &s.transport,
            bank.as_ref(),
            &found.payment_id,
            amount,
            &order.currency,
            bank_key,
        )
        .await
        .map_err(|why| ApiError::Acquirer {
            code: "refund_failed",
            message: format!("{} did not refund: {why}", paid.acquirer),
        })?;
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
    headers: axum::http::HeaderMap,
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
    // The seller's Idempotency-Key (the middleware lets one request per key
    // run at a time) makes the bank's key: a retry of a refund whose
    // recording failed asks the bank for the same refund. Without one, each
    // request is a refund of its own.
    let seller_key = headers.get("idempotency-key").and_then(|v| v.to_str().ok());
    let bank_key = refund_key(order.id.as_str(), seller.as_str(), seller_key);
    let r = refund_order(&s, &order, body.amount_minor, &reason, &bank_key).await?;
    Ok((StatusCode::CREATED, axum::Json(json!(r))))
}

/// A bank idempotency key for a refund (at most 64 characters, as
/// YooKassa allows): derived from the seller's key, else random.
fn refund_key(order: &str, seller: &str, seller_key: Option<&str>) -> String {
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
    let started = start_payment(&s, &order, &body.acquirer).await?;
    Ok((StatusCode::CREATED, axum::Json(attempt_view(&started))))
}

/// A started attempt: where the buyer pays.
pub struct Started {
    pub attempt: payments::store::Attempt,
    pub hold_expires_at: Option<i64>,
    pub redirect_url: String,
}

/// The bank accounts to try for `acquirer`, in order: the seller's enabled
/// accounts at that bank, then its other enabled accounts by priority
/// (failover); only banks that take the order's currency.
async fn candidates(
    s: &AppState,
    seller: &str,
    acquirer: &str,
    currency: &str,
) -> Result<Vec<payments::accounts::Account>, ApiError> {
    let all = payments::accounts::list(&s.pool, seller).await.map_err(unavailable)?;
    let (mut first, rest): (Vec<_>, Vec<_>) = all
        .into_iter()
        .filter(|a| a.enabled && payments::acquirers::takes(&a.acquirer, currency))
        .partition(|a| a.acquirer == acquirer);
    if first.is_empty() {
        return Ok(Vec::new());
    }
    first.extend(rest);
    Ok(first)
}

/// The acquirers a seller's buyers may choose for `currency`: its enabled
/// banks that take it, then the sandbox (test mode).
pub async fn offered(s: &AppState, seller: &str, currency: &str) -> Result<Vec<String>, ApiError> {
    let mut out: Vec<String> = Vec::new();
    for a in payments::accounts::list(&s.pool, seller).await.map_err(unavailable)? {
        if a.enabled && !out.contains(&a.acquirer) && payments::acquirers::takes(&a.acquirer, currency) {
            out.push(a.acquirer);
        }
    }
    out.push(payments::sandbox::ACQUIRER.to_owned());
    Ok(out)
}

/// A new attempt for an open order; a stream purchase's hold is kept for
/// [`PAYMENT_WINDOW_MS`] from now first (a hold that is gone refuses). At a
/// real bank, a refusal to serve or an outage moves on to the seller's next
/// bank as a new attempt; no clear answer stops there (the attempt waits for
/// reconciliation, and no other attempt starts meanwhile).
pub async fn start_payment(s: &AppState, order: &Order, acquirer: &str) -> Result<Started, ApiError> {
    if order.state.is_final() {
        return Err(ApiError::Conflict {
            code: "order_final",
            message: format!("the order is {}", order.state),
        });
    }
    let sandbox = acquirer == payments::sandbox::ACQUIRER;
    let mut banks = Vec::new();
    if !sandbox {
        banks = candidates(s, &order.seller_id, acquirer, &order.currency).await?;
        if banks.is_empty() {
            return Err(ApiError::InvalidField {
                field: "acquirer",
                message: format!(
                    "one of: {}",
                    offered(s, &order.seller_id, &order.currency).await?.join(", ")
                ),
            });
        }
        let attempts = s.payments.attempts(&order.id).await.map_err(unavailable)?;
        if attempts
            .iter()
            .any(|a| a.account_id.is_some() && a.acquirer_ref.is_none() && !a.state.is_final())
        {
            return Err(ApiError::Conflict {
                code: "payment_in_progress",
                message: "a bank has not answered about the last attempt yet; it is being checked".into(),
            });
        }
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
    if sandbox {
        let attempt = s
            .payments
            .create_attempt(order, acquirer, s.streams.now())
            .await
            .map_err(unavailable)?;
        let redirect_url = format!("{}/sandbox/pay/{}", s.public_url, attempt.id);
        return Ok(Started {
            attempt,
            hold_expires_at,
            redirect_url,
        });
    }
    let parts = ChargeParts::of(s, order).await?;
    let mut reasons = Vec::new();
    let mut needs_contact = false;
    for bank in banks {
        // A bank that fiscalizes needs the buyer's email or phone for the
        // receipt (54-FZ); without one it is not asked.
        if bank.settings.get("taxation").is_some() && parts.email.is_none() && parts.phone.is_none() {
            needs_contact = true;
            reasons.push(format!("{}: the receipt needs the buyer's email", bank.acquirer));
            continue;
        }
        if !s.breakers.allows(&bank.id) {
            reasons.push(format!("{}: out of rotation after outages", bank.acquirer));
            continue;
        }
        let creds = payments::accounts::credentials(&s.pool, &s.vault, &order.seller_id, &bank.id)
            .await
            .map_err(|e| ApiError::Internal(Box::new(e)))?
            .ok_or(ApiError::NotFound("acquirer account"))?;
        let adapter = payments::service::bank::adapter(&creds).map_err(ApiError::internal)?;
        if !adapter.accepts(&order.currency) {
            reasons.push(format!("{}: does not take {}", bank.acquirer, order.currency));
            continue;
        }
        let attempt = s
            .payments
            .create_attempt(order, &bank.acquirer, s.streams.now())
            .await
            .map_err(unavailable)?;
        s.payments
            .set_account(&attempt.id, &bank.id)
            .await
            .map_err(unavailable)?;
        let charge = parts.charge(order, attempt.id.as_str());
        use payments::acquirers::InitOutcome;
        let outcome = payments::service::bank::init(&s.transport, adapter.as_ref(), &charge).await;
        let made = match &outcome {
            InitOutcome::Redirect { url, acquirer_ref } => Some((url.clone(), acquirer_ref)),
            // The bank's form runs in a page of Haul's.
            InitOutcome::Embedded { token, acquirer_ref } => Some((
                format!("{}/yookassa/confirm/{}?token={token}", s.public_url, attempt.id),
                acquirer_ref,
            )),
            _ => None,
        };
        if let Some((url, acquirer_ref)) = made {
            s.breakers.succeeded(&bank.id);
            s.payments
                .set_started(&attempt.id, Some(&bank.id), acquirer_ref, s.streams.now())
                .await
                .map_err(unavailable)?;
            let attempt = s
                .payments
                .attempt(&attempt.id)
                .await
                .map_err(unavailable)?
                .ok_or(ApiError::NotFound("attempt"))?;
            return Ok(Started {
                attempt,
                hold_expires_at,
                redirect_url: url,
            });
        }
        match outcome {
            InitOutcome::Redirect { .. } | InitOutcome::Embedded { .. } => {}
            InitOutcome::Refused { code, message } => {
                let why = format!("refused by {} ({code}): {message}", bank.acquirer);
                moved_on(s, &bank.id, &attempt.id, &why).await;
                reasons.push(why);
            }
            InitOutcome::Unavailable { why } => {
                let why = format!("{} is unavailable: {why}", bank.acquirer);
                moved_on(s, &bank.id, &attempt.id, &why).await;
                reasons.push(why);
            }
            InitOutcome::Unknown { why } => {
                tracing::warn!(attempt = %attempt.id, bank = %bank.id, %why, "no clear answer from the bank: reconciliation decides");
                return Err(ApiError::Acquirer {
                    code: "acquirer_no_answer",
                    message: "the bank did not answer clearly; the payment is being checked, try again in a minute"
                        .into(),
                });
            }
        }
    }
    if needs_contact {
        return Err(ApiError::InvalidField {
            field: "customer_email",
            message: "the buyer's email is needed for the receipt".into(),
        });
    }
    Err(ApiError::Acquirer {
        code: "acquirers_unavailable",
        message: format!("no bank could take the payment: {}", reasons.join("; ")),
    })
}

/// What a bank is told about an order's payment besides the attempt: the
/// receipt lines, the buyer's contacts, where the buyer comes back to.
pub struct ChargeParts {
    items: Vec<payments::checkout::Item>,
    email: Option<String>,
    phone: Option<String>,
    back: String,
    description: String,
    notification_url: String,
}

impl ChargeParts {
    pub async fn of(s: &AppState, order: &Order) -> Result<ChargeParts, ApiError> {
        let session = payments::checkout::by_order_id(&s.pool, order.id.as_str())
            .await
            .map_err(unavailable)?;
        let (items, email, phone, back) = match session {
            Some(cs) => (
                cs.items,
                cs.customer_email,
                cs.customer_phone,
                format!("{}/checkout/{}?return=1", s.public_url, cs.id),
            ),
            None => (
                vec![payments::checkout::Item {
                    name: format!("Order {}", order.id),
                    quantity: 1,
                    price_minor: order.amount_minor,
                    vat: "none".into(),
                    payment_method: "full_payment".into(),
                    payment_object: "commodity".into(),
                }],
                None,
                None,
                s.public_url.clone(),
            ),
        };
        let description = order.reference.clone().unwrap_or_else(|| items[0].name.clone());
        Ok(ChargeParts {
            items,
            email,
            phone,
            back,
            description,
            notification_url: format!("{}/v1/callbacks/tbank", s.public_url),
        })
    }

    /// The charge of one attempt (T-Bank is told per payment where to
    /// report; the other banks' notification addresses are account settings).
    pub fn charge<'a>(&'a self, order: &'a Order, attempt: &'a str) -> payments::acquirers::Charge<'a> {
        payments::acquirers::Charge {
            reference: attempt,
            amount_minor: order.amount_minor,
            currency: &order.currency,
            description: &self.description,
            items: &self.items,
            email: self.email.as_deref(),
            phone: self.phone.as_deref(),
            success_url: &self.back,
            fail_url: &self.back,
            notification_url: &self.notification_url,
        }
    }
}

/// A bank refused to serve or was out: the attempt is given up (the order
/// stays open) and the account's breaker counts it.
async fn moved_on(s: &AppState, account: &str, attempt: &payments::ids::AttemptId, why: &str) {
    tracing::warn!(%attempt, %account, %why, "the bank did not take the payment: next bank");
    if s.breakers.failed(account) {
        tracing::warn!(%account, "bank account taken out of rotation");
    }
    if let Err(e) = s.payments.abandon_attempt(attempt, why, s.streams.now()).await {
        tracing::error!(%attempt, error = ?e, "could not record a refused attempt");
    }
}

/// A started attempt as the buyer sees it, with where to pay.
pub fn attempt_view(started: &Started) -> Value {
    let attempt = &started.attempt;
    json!({
        "id": attempt.id, "order_id": attempt.order_id, "acquirer": attempt.acquirer, "state": attempt.state,
        "amount_minor": attempt.amount_minor, "currency": attempt.currency,
        "hold_expires_at": started.hold_expires_at,
        // Where the buyer pays: the acquirer's hosted page.
        "redirect_url": started.redirect_url,
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
    end_with_hold(s, hold, OrderState::Expired, "its hold expired").await;
}

/// The buyer gave the hold back: its unpaid order is cancelled (a payment
/// still in flight that succeeds later is settled as a late one).
pub async fn cancel_with_hold(s: &AppState, hold: &HoldId) {
    end_with_hold(s, hold, OrderState::Cancelled, "the buyer released its hold").await;
}

/// Moves the unpaid order of a hold that ended to `to` (nothing when it has
/// none, or it moved on meanwhile — paid, say).
async fn end_with_hold(s: &AppState, hold: &HoldId, to: OrderState, cause: &str) {
    let order = match s.payments.order_for_hold(hold.as_str()).await {
        Ok(Some(o)) if !o.state.is_final() => o,
        Ok(_) => return,
        Err(e) => {
            tracing::error!(%hold, error = ?e, "could not read the order of an ended hold");
            return;
        }
    };
    match s.payments.move_order(&order.id, to, cause, s.streams.now()).await {
        Ok(Ok(_)) => tracing::info!(order = %order.id, %hold, state = %to, "order ended with its hold"),
        Ok(Err(_)) => {}
        Err(e) => tracing::error!(order = %order.id, error = ?e, "could not end an order with its hold"),
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
    // One full refund per order: a second try asks the bank for the same one.
    let key = format!("rf-late-{}", order.id);
    match refund_order(
        s,
        &order,
        None,
        "paid after its hold expired and no stock was left",
        &key,
    )
    .await
    {
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
/// How often the settlement worker looks.
const SETTLE_TICK: std::time::Duration = std::time::Duration::from_secs(2);

/// Settles paid stream purchases left unsettled (every node runs this; the
/// steps are idempotent, so two nodes on one order change nothing twice).
pub async fn run_settlement(s: AppState, mut stop: tokio::sync::watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(SETTLE_TICK) => {}
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

#[cfg(test)]
mod refund_key_tests {
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
