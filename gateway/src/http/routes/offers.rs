//! Seller API: offers on lots, and committing holds as sales.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use serde_json::{json, Value};
use streams::ids::{HoldId, LotId, OfferId, StreamId};
use streams::model::Offer;
use streams::service::{NewOffer, OfferEnd, OfferPatch};

use crate::http::error::ApiError;
use crate::http::extract::{id, Json, Seller};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/lots/{id}/offers", post(create))
        .route("/v1/streams/{id}/offers", get(list_offers))
        .route("/v1/offers/{id}", get(get_offer).patch(edit))
        .route("/v1/offers/{id}/end", post(end_now))
        .route("/v1/offers/{id}/start", post(start))
        .route("/v1/offers/{id}/cancel", post(cancel))
        .route("/v1/offers/{id}/holds/{hold}/commit", post(commit))
}

type Answer = Result<(StatusCode, axum::Json<Value>), ApiError>;

/// The body of `POST /v1/lots/{id}/offers`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateOffer {
    /// Unit price in minor units (kopecks, cents).
    price_minor: i64,
    currency: String,
    quantity: i64,
    per_buyer_limit: Option<i64>,
    /// Either a duration from the start…
    duration_seconds: Option<i64>,
    /// …or a fixed end time (Unix milliseconds).
    ends_at: Option<i64>,
    hold_ttl_seconds: Option<i64>,
    /// Start by itself at this time (Unix ms).
    start_at: Option<i64>,
}

fn field(field: &'static str, message: &str) -> ApiError {
    ApiError::InvalidField {
        field,
        message: message.into(),
    }
}

/// An offer with its live stock levels, as the seller sees it.
async fn offer_view(s: &AppState, offer: &Offer) -> Result<Value, ApiError> {
    let levels = s
        .streams
        .inventory()
        .levels(&offer.id)
        .await
        .map_err(|e| ApiError::Unavailable(Box::new(e)))?;
    let units_left = s.streams.units_left(offer).await?;
    let mut v = serde_json::to_value(offer).map_err(ApiError::internal)?;
    v["units_left"] = json!(units_left);
    v["held"] = json!(levels.map(|l| l.held));
    v["sold"] = json!(levels.map(|l| l.sold));
    Ok(v)
}

async fn create(
    State(s): State<AppState>,
    Seller(seller): Seller,
    Path(raw): Path<String>,
    Json(b): Json<CreateOffer>,
) -> Answer {
    let lot_id = id(&raw, LotId::parse)?;
    let end = match (b.duration_seconds, b.ends_at) {
        (Some(secs), None) => OfferEnd::AfterMs(
            secs.checked_mul(1000)
                .ok_or_else(|| field("duration_seconds", "is too large"))?,
        ),
        (None, Some(at)) => OfferEnd::At(at),
        _ => {
            return Err(field(
                "duration_seconds",
                "give exactly one of duration_seconds and ends_at",
            ))
        }
    };
    let hold_ttl_ms = b
        .hold_ttl_seconds
        .map(|t| {
            t.checked_mul(1000)
                .ok_or_else(|| field("hold_ttl_seconds", "is too large"))
        })
        .transpose()?;
    let offer = s
        .streams
        .create_offer(
            &seller,
            NewOffer {
                lot_id,
                price_minor: b.price_minor,
                currency: b.currency,
                quantity: b.quantity,
                per_buyer_limit: b.per_buyer_limit,
                end,
                hold_ttl_ms,
                start_at: b.start_at,
            },
        )
        .await?;
    Ok((StatusCode::CREATED, axum::Json(offer_view(&s, &offer).await?)))
}

async fn list_offers(State(s): State<AppState>, Seller(seller): Seller, Path(raw): Path<String>) -> Answer {
    let sid = id(&raw, StreamId::parse)?;
    let offers = s.streams.offers(&seller, &sid).await?;
    let mut data = Vec::with_capacity(offers.len());
    for o in &offers {
        data.push(offer_view(&s, o).await?);
    }
    Ok((StatusCode::OK, axum::Json(json!({ "data": data }))))
}

async fn get_offer(State(s): State<AppState>, Seller(seller): Seller, Path(raw): Path<String>) -> Answer {
    let oid = id(&raw, OfferId::parse)?;
    let offer = s.streams.offer(&seller, &oid).await?;
    Ok((StatusCode::OK, axum::Json(offer_view(&s, &offer).await?)))
}

async fn start(State(s): State<AppState>, Seller(seller): Seller, Path(raw): Path<String>) -> Answer {
    let oid = id(&raw, OfferId::parse)?;
    let offer = s.streams.start_offer(&seller, &oid).await?;
    Ok((StatusCode::OK, axum::Json(offer_view(&s, &offer).await?)))
}

async fn cancel(State(s): State<AppState>, Seller(seller): Seller, Path(raw): Path<String>) -> Answer {
    let oid = id(&raw, OfferId::parse)?;
    let offer = s.streams.cancel_offer(&seller, &oid).await?;
    Ok((StatusCode::OK, axum::Json(offer_view(&s, &offer).await?)))
}

/// What `PATCH /v1/offers/{id}` may change; what it leaves out stays.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EditOffer {
    price_minor: Option<i64>,
    quantity: Option<i64>,
    per_buyer_limit: Option<i64>,
    duration_seconds: Option<i64>,
    ends_at: Option<i64>,
    extend_seconds: Option<i64>,
    hold_ttl_seconds: Option<i64>,
    /// `null` unschedules a draft.
    #[serde(default, deserialize_with = "present")]
    start_at: Option<Option<i64>>,
}

/// A field given (even as null) is `Some`; left out, `None`.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<i64>>, D::Error> {
    Option::<i64>::deserialize(d).map(Some)
}

fn seconds(field_name: &'static str, v: Option<i64>) -> Result<Option<i64>, ApiError> {
    v.map(|t| t.checked_mul(1000).ok_or_else(|| field(field_name, "is too large")))
        .transpose()
}

/// Changes an offer: any term of a draft; the stock, limit and end of a
/// live one, broadcast to viewers (`offer.updated`).
async fn edit(
    State(s): State<AppState>,
    Seller(seller): Seller,
    Path(raw): Path<String>,
    Json(b): Json<EditOffer>,
) -> Answer {
    let oid = id(&raw, OfferId::parse)?;
    let patch = OfferPatch {
        price_minor: b.price_minor,
        quantity: b.quantity,
        per_buyer_limit: b.per_buyer_limit,
        duration_ms: seconds("duration_seconds", b.duration_seconds)?,
        ends_at: b.ends_at,
        extend_ms: seconds("extend_seconds", b.extend_seconds)?,
        hold_ttl_ms: seconds("hold_ttl_seconds", b.hold_ttl_seconds)?,
        start_at: b.start_at,
    };
    let offer = s.streams.edit_offer(&seller, &oid, patch).await?;
    Ok((StatusCode::OK, axum::Json(offer_view(&s, &offer).await?)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EndNow {
    note: Option<String>,
}

/// Ends a draft or live offer now; viewers see the seller's note.
async fn end_now(
    State(s): State<AppState>,
    Seller(seller): Seller,
    Path(raw): Path<String>,
    Json(b): Json<EndNow>,
) -> Answer {
    let oid = id(&raw, OfferId::parse)?;
    let offer = s.streams.end_offer_now(&seller, &oid, b.note.as_deref()).await?;
    Ok((StatusCode::OK, axum::Json(offer_view(&s, &offer).await?)))
}

async fn commit(
    State(s): State<AppState>,
    Seller(seller): Seller,
    Path((raw_offer, raw_hold)): Path<(String, String)>,
) -> Answer {
    let oid = id(&raw_offer, OfferId::parse)?;
    let hid = id(&raw_hold, HoldId::parse)?;
    let out = s.streams.commit_hold(&seller, &oid, &hid).await?;
    Ok((
        StatusCode::OK,
        axum::Json(json!({
            "hold": out.hold,
            "units_left": out.levels.left,
            "sold": out.levels.sold,
            "offer_sold_out": out.sold_out,
        })),
    ))
}
