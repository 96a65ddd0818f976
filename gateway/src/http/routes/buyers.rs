//! Viewer identities and the buyer side: public offer state, reserve, release.

use secrecy::ExposeSecret;
use std::time::Instant;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use payments::service::HoldEnd;
use serde::Deserialize;
use serde_json::{json, Value};
use streams::ids::{random_token, BuyerId, HoldId, OfferId};

use crate::http::error::ApiError;
use crate::http::extract::{id, ClientAddr, Json, Seller, Viewer};
use crate::jwt;
use crate::reserve::{limit_reserve, reserve_counted};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/viewer-tokens", post(mint_token))
        .route("/v1/viewers/anonymous", post(anonymous))
        .route("/v1/public/streams/{id}", get(public_stream))
        .route("/v1/public/offers/{id}", get(public_offer))
        .route("/v1/offers/{id}/reserve", post(reserve))
        .route("/v1/offers/{id}/holds/{hold}", get(get_hold))
        .route("/v1/offers/{id}/holds/{hold}/release", post(release))
}

type Answer = Result<(StatusCode, axum::Json<Value>), ApiError>;

/// Longest a viewer token may live.
const MAX_TOKEN_TTL_SECS: i64 = 7 * 24 * 3600;
const DEFAULT_TOKEN_TTL_SECS: i64 = 24 * 3600;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MintToken {
    /// The seller's own id for the viewer; Haul scopes it to the seller.
    viewer_id: String,
    ttl_seconds: Option<i64>,
}

fn issue(s: &AppState, viewer: &BuyerId, ttl_secs: i64) -> Value {
    let now = s.streams.now() / 1000;
    let claims = jwt::Claims {
        sub: viewer.to_string(),
        exp: now + ttl_secs,
        iat: Some(now),
        nbf: None,
        sel: None,
    };
    let token = jwt::encode(&claims, s.token_secret.expose_secret().as_bytes());
    json!({ "viewer_id": viewer, "token": token, "expires_at": claims.exp * 1000 })
}

/// A seller mints a token for one of its viewers. The viewer id is scoped to
/// the seller (`<seller id>.<viewer id>`), so no seller can act as another
/// seller's viewer.
async fn mint_token(State(s): State<AppState>, Seller(seller): Seller, Json(b): Json<MintToken>) -> Answer {
    let ttl = b.ttl_seconds.unwrap_or(DEFAULT_TOKEN_TTL_SECS);
    if !(60..=MAX_TOKEN_TTL_SECS).contains(&ttl) {
        return Err(ApiError::InvalidField {
            field: "ttl_seconds",
            message: format!("must be from 60 to {MAX_TOKEN_TTL_SECS}"),
        });
    }
    if b.viewer_id.len() > 64 {
        return Err(ApiError::InvalidField {
            field: "viewer_id",
            message: "must be 1 to 64 characters of A-Z, a-z, 0-9, '_', '.', '-'".into(),
        });
    }
    let viewer = BuyerId::parse(&format!("{seller}.{}", b.viewer_id)).map_err(|_| ApiError::InvalidField {
        field: "viewer_id",
        message: "must be 1 to 64 characters of A-Z, a-z, 0-9, '_', '.', '-'".into(),
    })?;
    Ok((StatusCode::CREATED, axum::Json(issue(&s, &viewer, ttl))))
}

/// Anyone gets an anonymous viewer identity (rate-limited per address).
async fn anonymous(State(s): State<AppState>, ClientAddr(addr): ClientAddr) -> Answer {
    s.limits.per_addr.check(&addr)?;
    let viewer = BuyerId::parse(&format!("anon.{}", random_token(20))).map_err(ApiError::internal)?;
    Ok((
        StatusCode::CREATED,
        axum::Json(issue(&s, &viewer, DEFAULT_TOKEN_TTL_SECS)),
    ))
}

async fn public_stream(State(s): State<AppState>, Path(raw): Path<String>) -> Answer {
    let sid = id(&raw, streams::ids::StreamId::parse)?;
    let stream = s.streams.stream_public(&sid).await?;
    let live = s.payments.livemode(stream.seller_id.as_str()).await?;
    let mut v = serde_json::to_value(&stream).map_err(ApiError::internal)?;
    v["livemode"] = live.into();
    Ok((StatusCode::OK, axum::Json(v)))
}

async fn public_offer(State(s): State<AppState>, Path(raw): Path<String>) -> Answer {
    let oid = id(&raw, OfferId::parse)?;
    let offer = s.streams.offer_public(&oid).await?;
    let live = s.payments.livemode(offer.seller_id.as_str()).await?;
    let mut v = serde_json::to_value(&offer).map_err(ApiError::internal)?;
    v["livemode"] = live.into();
    Ok((StatusCode::OK, axum::Json(v)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Reserve {
    quantity: i64,
    /// The client's id for this tap: a retry with the same id never takes more stock.
    request_id: String,
}

async fn reserve(
    State(s): State<AppState>,
    ClientAddr(addr): ClientAddr,
    Viewer(buyer): Viewer,
    Path(raw): Path<String>,
    Json(b): Json<Reserve>,
) -> Answer {
    let start = Instant::now();
    limit_reserve(&s, &addr, &buyer, start)?;
    let oid = id(&raw, OfferId::parse)?;
    let r = reserve_counted(&s, &addr, &buyer, &oid, b.quantity, &b.request_id, start).await?;
    let status = if r.replayed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    let live = offer_mode(&s, &oid).await?;
    Ok((
        status,
        axum::Json(json!({ "hold": r.hold, "units_left": r.units_left, "replayed": r.replayed, "livemode": live })),
    ))
}

async fn get_hold(
    State(s): State<AppState>,
    Viewer(buyer): Viewer,
    Path((raw_offer, raw_hold)): Path<(String, String)>,
) -> Answer {
    let oid = id(&raw_offer, OfferId::parse)?;
    let hid = id(&raw_hold, HoldId::parse)?;
    let hold = s.streams.buyer_hold(&buyer, &oid, &hid).await?;
    let live = offer_mode(&s, &oid).await?;
    Ok((StatusCode::OK, axum::Json(json!({ "hold": hold, "livemode": live }))))
}

async fn release(
    State(s): State<AppState>,
    Viewer(buyer): Viewer,
    Path((raw_offer, raw_hold)): Path<(String, String)>,
) -> Answer {
    let oid = id(&raw_offer, OfferId::parse)?;
    let hid = id(&raw_hold, HoldId::parse)?;
    let hold = s.streams.release(&buyer, &oid, &hid).await?;
    s.payments.end_with_hold(hid.as_str(), HoldEnd::Released).await;
    let live = offer_mode(&s, &oid).await?;
    Ok((StatusCode::OK, axum::Json(json!({ "hold": hold, "livemode": live }))))
}

/// Is the offer's seller in live mode? (From memory after the first time.)
async fn offer_mode(s: &AppState, offer: &OfferId) -> Result<bool, ApiError> {
    let seller = s.streams.offer_seller(offer).await?;
    Ok(s.payments.livemode(seller.as_str()).await?)
}
