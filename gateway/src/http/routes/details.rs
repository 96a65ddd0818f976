//! Buyer details at checkout: the seller's settings (what stream purchases
//! ask, the delivery options with prices — the seller's default and a
//! stream's own), and the buyer's side on the checkout page, which reads
//! what is asked (and what the buyer gave or kept before) and gives it
//! before paying. The buyer's side answers no other origin: it carries
//! personal data.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use payments::details::{self, Ask, Given};
use serde_json::{json, Value};
use streams::ids::StreamId;

use crate::http::error::ApiError;
use crate::http::extract::{id, ClientAddr, Json, Seller};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/checkout-settings", get(read_default).put(set_default))
        .route(
            "/v1/streams/{id}/checkout-settings",
            get(read_stream).put(set_stream).delete(clear_stream),
        )
        .route("/v1/checkout/sessions/{id}/details", get(read_details).post(give))
}

type Answer = Result<(StatusCode, axum::Json<Value>), ApiError>;

fn settings_view(scope: &str, ask: Option<Ask>, inherited: bool) -> Answer {
    let a = ask.unwrap_or_default();
    Ok((
        StatusCode::OK,
        axum::Json(json!({
            "scope": if scope.is_empty() { "seller" } else { "stream" },
            "fields": a.fields, "delivery": a.delivery,
            // A stream without its own settings uses the seller's.
            "inherited": inherited,
        })),
    ))
}

async fn read_default(State(s): State<AppState>, Seller(seller): Seller) -> Answer {
    settings_view("", s.payments.checkout_settings(seller.as_str(), "").await?, false)
}

async fn set_default(State(s): State<AppState>, Seller(seller): Seller, Json(ask): Json<Ask>) -> Answer {
    s.payments
        .set_checkout_settings(seller.as_str(), "", Some(&ask))
        .await?;
    settings_view("", Some(ask), false)
}

async fn owned_stream(s: &AppState, seller: &streams::ids::SellerId, raw: &str) -> Result<StreamId, ApiError> {
    let sid = id(raw, StreamId::parse)?;
    s.streams.stream(seller, &sid).await?;
    Ok(sid)
}

async fn read_stream(State(s): State<AppState>, Seller(seller): Seller, Path(raw): Path<String>) -> Answer {
    let sid = owned_stream(&s, &seller, &raw).await?;
    match s.payments.checkout_settings(seller.as_str(), sid.as_str()).await? {
        Some(own) => settings_view(sid.as_str(), Some(own), false),
        None => settings_view(
            sid.as_str(),
            s.payments.checkout_settings(seller.as_str(), "").await?,
            true,
        ),
    }
}

async fn set_stream(
    State(s): State<AppState>,
    Seller(seller): Seller,
    Path(raw): Path<String>,
    Json(ask): Json<Ask>,
) -> Answer {
    let sid = owned_stream(&s, &seller, &raw).await?;
    s.payments
        .set_checkout_settings(seller.as_str(), sid.as_str(), Some(&ask))
        .await?;
    settings_view(sid.as_str(), Some(ask), false)
}

/// The stream goes back to the seller's settings.
async fn clear_stream(State(s): State<AppState>, Seller(seller): Seller, Path(raw): Path<String>) -> Answer {
    let sid = owned_stream(&s, &seller, &raw).await?;
    s.payments
        .set_checkout_settings(seller.as_str(), sid.as_str(), None)
        .await?;
    settings_view(
        sid.as_str(),
        s.payments.checkout_settings(seller.as_str(), "").await?,
        true,
    )
}

/// What the checkout page asks and what the buyer gave or kept (same
/// origin only: no `Access-Control-Allow-Origin`).
async fn read_details(State(s): State<AppState>, Path(raw): Path<String>) -> Answer {
    let (seller, session) = s.payments.session_by_id(&raw).await?;
    let live = s.payments.livemode(&seller).await?;
    let ask = session.ask.clone().filter(Ask::asks);
    let saved = match (&ask, &session.buyer) {
        (Some(_), None) => s.payments.saved_details(&session).await?,
        _ => None,
    };
    Ok((
        StatusCode::OK,
        axum::Json(json!({
            "livemode": live,
            "asked": ask.is_some(),
            "fields": ask.as_ref().map(|a| a.fields),
            "delivery": ask.as_ref().map(|a| &a.delivery),
            "given": session.buyer,
            "saved": saved,
        })),
    ))
}

/// The buyer gives their details and delivery before paying; the order's
/// total follows the delivery chosen.
async fn give(
    State(s): State<AppState>,
    ClientAddr(addr): ClientAddr,
    Path(raw): Path<String>,
    Json(given): Json<Given>,
) -> Answer {
    // No key here (the session id is the capability): limited per address.
    s.limits.per_addr.check(&addr)?;
    let (seller, session) = s.payments.session_by_id(&raw).await?;
    let live = s.payments.livemode(&seller).await?;
    let Some(ask) = session.ask.clone().filter(Ask::asks) else {
        return Err(ApiError::Conflict {
            code: "nothing_asked",
            message: "this checkout asks for no details".into(),
        });
    };
    let checked = details::check(&ask, &given).map_err(|e| ApiError::InvalidPath {
        field: e.field,
        message: e.message,
    })?;
    let session = s.payments.give_details(&session, checked, given.save).await?;
    let order = s.payments.session_order(&session).await?;
    Ok((
        StatusCode::OK,
        axum::Json(json!({
            "livemode": live, "amount_minor": order.amount_minor, "currency": order.currency,
            "delivery_minor": order.delivery_minor, "items": session.items, "given": session.buyer,
        })),
    ))
}
