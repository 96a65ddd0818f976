//! Seller API: webhook endpoints. The secret (`whsec_…`) is shown once, when
//! the endpoint is made; deliveries are signed with it (Standard Webhooks).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use payments::outbox::{self, Endpoint, EVENT_TYPES};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::app::AppState;
use crate::error::ApiError;
use crate::extract::{Json, Seller};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/webhook-endpoints", post(create).get(list))
        .route("/v1/webhook-endpoints/{id}/rotate", post(rotate))
        .route("/v1/webhook-endpoints/{id}/deliveries", get(deliveries))
        .route("/v1/webhook-endpoints/{id}/deliveries/{message}/resend", post(resend))
}

fn unavailable(e: sqlx::Error) -> ApiError {
    ApiError::Unavailable(Box::new(e))
}

/// A new secret; the old one keeps signing beside it for a day.
async fn rotate(State(s): State<AppState>, Seller(seller): Seller, Path(id): Path<String>) -> Answer {
    let e = outbox::rotate_secret(&s.pool, seller.as_str(), &id, s.streams.now())
        .await
        .map_err(unavailable)?
        .ok_or(ApiError::NotFound("webhook endpoint"))?;
    let mut v = view(&e);
    v["secret"] = json!(e.secret.expose());
    v["previous_secret_until"] = json!(e.previous.as_ref().map(|(_, until)| until));
    Ok((StatusCode::OK, axum::Json(v)))
}

/// The latest deliveries (100), newest first.
async fn deliveries(State(s): State<AppState>, Seller(seller): Seller, Path(id): Path<String>) -> Answer {
    outbox::endpoint(&s.pool, seller.as_str(), &id)
        .await
        .map_err(unavailable)?
        .ok_or(ApiError::NotFound("webhook endpoint"))?;
    let log = outbox::deliveries(&s.pool, &id, 100).await.map_err(unavailable)?;
    Ok((StatusCode::OK, axum::Json(json!({ "data": log }))))
}

async fn resend(
    State(s): State<AppState>,
    Seller(seller): Seller,
    Path((id, message)): Path<(String, String)>,
) -> Answer {
    outbox::endpoint(&s.pool, seller.as_str(), &id)
        .await
        .map_err(unavailable)?
        .ok_or(ApiError::NotFound("webhook endpoint"))?;
    if !outbox::resend(&s.pool, &id, &message, s.streams.now())
        .await
        .map_err(unavailable)?
    {
        return Err(ApiError::NotFound("delivery"));
    }
    Ok((StatusCode::ACCEPTED, axum::Json(json!({ "resending": true }))))
}

type Answer = Result<(StatusCode, axum::Json<Value>), ApiError>;

fn view(e: &Endpoint) -> Value {
    json!({
        "id": e.id, "url": e.url, "event_types": e.event_types, "enabled": e.enabled,
        "disabled_reason": e.disabled_reason, "created_at": e.created_at,
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewEndpoint {
    url: String,
    /// Omitted or empty: every type.
    #[serde(default)]
    event_types: Vec<String>,
}

async fn create(State(s): State<AppState>, Seller(seller): Seller, Json(body): Json<NewEndpoint>) -> Answer {
    let invalid = |field, message: String| Err(ApiError::InvalidField { field, message });
    if body.url.len() > 2000 {
        return invalid("url", "at most 2000 characters".into());
    }
    if let Err(why) = crate::webhooks::check_url(&body.url, s.config.webhooks_allow_private).await {
        return invalid("url", why);
    }
    let mut types = body.event_types.clone();
    types.sort();
    types.dedup();
    if let Some(bad) = types.iter().find(|t| !EVENT_TYPES.contains(&t.as_str())) {
        return invalid(
            "event_types",
            format!("unknown type {bad:?}; known: {}", EVENT_TYPES.join(", ")),
        );
    }
    let e = outbox::create_endpoint(&s.pool, seller.as_str(), &body.url, &types, s.streams.now())
        .await
        .map_err(|e| ApiError::Unavailable(Box::new(e)))?;
    let mut v = view(&e);
    v["secret"] = json!(e.secret.expose());
    Ok((StatusCode::CREATED, axum::Json(v)))
}

async fn list(State(s): State<AppState>, Seller(seller): Seller) -> Answer {
    let all = outbox::endpoints(&s.pool, seller.as_str())
        .await
        .map_err(|e| ApiError::Unavailable(Box::new(e)))?;
    Ok((
        StatusCode::OK,
        axum::Json(json!({ "data": all.iter().map(view).collect::<Vec<_>>() })),
    ))
}
