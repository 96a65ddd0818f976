//! Orders for stream purchases: a viewer's hold becomes an order (one per
//! hold), a payment attempt starts at an acquirer, and a seller refunds.
//! What happens to money and stock is the payments service's.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use payments::ids::OrderId;
use payments::store::{NewOrder, Order};
use serde::Deserialize;
use serde_json::{json, Value};
use streams::ids::{HoldId, OfferId, SellerId};

use crate::http::error::ApiError;
use crate::http::extract::{id, Caller, Json, Seller, Viewer};
use crate::state::AppState;

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
    let attempts = s.payments.store().attempts(&order.id).await.map_err(unavailable)?;
    let live = s.payments.livemode(&order.seller_id).await?;
    Ok(json!({
        "id": order.id,
        "livemode": live,
        "state": order.state,
        "amount_minor": order.amount_minor,
        "currency": order.currency,
        "hold_id": order.hold_id,
        "offer_id": order.offer_id,
        "attempts": attempts.iter().map(|a| json!({
            "id": a.id, "acquirer": a.acquirer, "state": a.state,
            // Succeeded after another attempt had paid: refunded by Haul.
            "duplicate": a.duplicate,
        })).collect::<Vec<_>>(),
        "created_at": order.created_at,
    }))
}

/// The order of a hold (made on first call; the same order after), with
/// the checkout page that pays it; the buyer returns to the stream.
async fn order_for_hold(
    State(s): State<AppState>,
    Viewer(buyer): Viewer,
    Path((raw_offer, raw_hold)): Path<(String, String)>,
) -> Answer {
    let offer = id(&raw_offer, OfferId::parse)?;
    let hold = id(&raw_hold, HoldId::parse)?;
    let terms = s.streams.purchase_terms(&buyer, &offer, &hold).await?;
    let new = NewOrder {
        seller_id: terms.seller_id.to_string(),
        amount_minor: terms.amount_minor,
        currency: terms.currency.code().to_owned(),
        hold_id: Some(hold.to_string()),
        offer_id: Some(offer.to_string()),
        buyer_id: Some(buyer.to_string()),
        reference: None,
    };
    let item = payments::checkout::Item {
        name: terms.title.chars().take(128).collect(),
        quantity: terms.hold.quantity,
        price_minor: terms.unit_price_minor,
        vat: "none".into(),
        payment_method: "full_payment".into(),
        payment_object: "commodity".into(),
    };
    let back = format!("{}/watch/{}", s.public_url, terms.stream_id);
    let made = s
        .payments
        .stream_order(&new, item, &back, terms.hold.expires_at)
        .await?;
    let status = if made.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let mut v = view(&s, &made.order).await?;
    v["checkout_session"] = json!(made.session);
    v["checkout_url"] = json!(made.checkout_url);
    Ok((status, axum::Json(v)))
}

/// A buyer's own order (another's is not found).
async fn owned(s: &AppState, buyer: &streams::ids::BuyerId, raw: &str) -> Result<Order, ApiError> {
    let oid = id(raw, OrderId::parse)?;
    match s.payments.store().order(&oid).await.map_err(unavailable)? {
        Some(o) if o.buyer_id.as_deref() == Some(buyer.as_str()) => Ok(o),
        _ => Err(ApiError::NotFound("order")),
    }
}

/// A seller's own order (another's is not found).
async fn sellers(s: &AppState, seller: &SellerId, raw: &str) -> Result<Order, ApiError> {
    let oid = id(raw, OrderId::parse)?;
    match s.payments.store().order(&oid).await.map_err(unavailable)? {
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
    let bank_key = payments::service::refund_key(order.id.as_str(), seller.as_str(), seller_key);
    let r = s.payments.refund(&order, body.amount_minor, &reason, &bank_key).await?;
    Ok((StatusCode::CREATED, axum::Json(json!(r))))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StartAttempt {
    acquirer: String,
}

/// Starts paying: a new attempt at the chosen acquirer; the hold is kept
/// for [`payments::service::PAYMENT_WINDOW_MS`] from now.
async fn start_attempt(
    State(s): State<AppState>,
    Viewer(buyer): Viewer,
    Path(raw): Path<String>,
    Json(body): Json<StartAttempt>,
) -> Answer {
    let order = owned(&s, &buyer, &raw).await?;
    let started = s.payments.start_payment(&order, &body.acquirer).await?;
    let mut v = super::attempt_view(&started);
    v["livemode"] = s.payments.livemode(&order.seller_id).await?.into();
    Ok((StatusCode::CREATED, axum::Json(v)))
}
