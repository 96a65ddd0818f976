//! Seller API: webhook endpoints. The secret (`whsec_…`) is shown once, when
//! the endpoint is made; deliveries are signed with it (Standard Webhooks).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, patch, post};
use axum::{Extension, Router};
use payments::outbox::{Endpoint, EVENT_TYPES};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::http::error::ApiError;
use crate::http::extract::{Json, Seller};
use crate::http::idempotency::ShownOnce;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/webhook-endpoints", post(create).get(list))
        .route("/v1/webhook-endpoints/{id}", patch(update).delete(remove))
        .route("/v1/webhook-endpoints/{id}/rotate", post(rotate))
        .route("/v1/webhook-endpoints/{id}/deliveries", get(deliveries))
        .route("/v1/webhook-endpoints/{id}/deliveries/{message}/resend", post(resend))
}

/// A new secret; the old one keeps signing beside it for a day.
async fn rotate(State(s): State<AppState>, Seller(seller): Seller, Path(id): Path<String>) -> SecretAnswer {
    let e = s.payments.rotate_endpoint_secret(seller.as_str(), &id).await?;
    let mut v = view(&e);
    v["secret"] = json!(e.secret.expose());
    v["previous_secret_until"] = json!(e.previous.as_ref().map(|(_, until)| until));
    Ok((StatusCode::OK, Extension(SHOWN_ONCE), axum::Json(v)))
}

/// The latest deliveries (100), newest first.
async fn deliveries(State(s): State<AppState>, Seller(seller): Seller, Path(id): Path<String>) -> Answer {
    let log = s.payments.deliveries(seller.as_str(), &id, 100).await?;
    Ok((StatusCode::OK, axum::Json(json!({ "data": log }))))
}

async fn resend(
    State(s): State<AppState>,
    Seller(seller): Seller,
    Path((id, message)): Path<(String, String)>,
) -> Answer {
    s.payments.resend(seller.as_str(), &id, &message).await?;
    Ok((StatusCode::ACCEPTED, axum::Json(json!({ "resending": true }))))
}

type Answer = Result<(StatusCode, axum::Json<Value>), ApiError>;
/// An answer with a new secret, shown once (a replay leaves it out).
type SecretAnswer = Result<(StatusCode, Extension<ShownOnce>, axum::Json<Value>), ApiError>;
const SHOWN_ONCE: ShownOnce = ShownOnce(&["secret"]);

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

/// A URL Haul may deliver to.
async fn checked_url(s: &AppState, url: &str) -> Result<(), ApiError> {
    let invalid = |message: String| ApiError::InvalidField { field: "url", message };
    if url.len() > 2000 {
        return Err(invalid("at most 2000 characters".into()));
    }
    crate::adapters::webhooks::check_url(url, s.config.webhooks_allow_private)
        .await
        .map_err(invalid)
}

/// Known event types, sorted, once each.
fn checked_types(types: &[String]) -> Result<Vec<String>, ApiError> {
    let mut types = types.to_vec();
    types.sort();
    types.dedup();
    if let Some(bad) = types.iter().find(|t| !EVENT_TYPES.contains(&t.as_str())) {
        return Err(ApiError::InvalidField {
            field: "event_types",
            message: format!("unknown type {bad:?}; known: {}", EVENT_TYPES.join(", ")),
        });
    }
    Ok(types)
}

async fn create(State(s): State<AppState>, Seller(seller): Seller, Json(body): Json<NewEndpoint>) -> SecretAnswer {
    checked_url(&s, &body.url).await?;
    let types = checked_types(&body.event_types)?;
    let e = s.payments.add_endpoint(seller.as_str(), &body.url, &types).await?;
    let mut v = view(&e);
    v["secret"] = json!(e.secret.expose());
    Ok((StatusCode::CREATED, Extension(SHOWN_ONCE), axum::Json(v)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EndpointChange {
    url: Option<String>,
    /// Empty: every type.
    event_types: Option<Vec<String>>,
    enabled: Option<bool>,
}

/// Changes an endpoint's URL, event types, or whether it is sent to.
async fn update(
    State(s): State<AppState>,
    Seller(seller): Seller,
    Path(id): Path<String>,
    Json(body): Json<EndpointChange>,
) -> Answer {
    if let Some(url) = &body.url {
        checked_url(&s, url).await?;
    }
    let types = body.event_types.as_deref().map(checked_types).transpose()?;
    let change = payments::outbox::EndpointChange {
        url: body.url.as_deref(),
        event_types: types.as_deref(),
        enabled: body.enabled,
    };
    let e = s.payments.update_endpoint(seller.as_str(), &id, &change).await?;
    Ok((StatusCode::OK, axum::Json(view(&e))))
}

/// Deletes an endpoint: nothing more is sent to it.
async fn remove(State(s): State<AppState>, Seller(seller): Seller, Path(id): Path<String>) -> Answer {
    s.payments.delete_endpoint(seller.as_str(), &id).await?;
    Ok((StatusCode::OK, axum::Json(json!({ "id": id, "deleted": true }))))
}

async fn list(State(s): State<AppState>, Seller(seller): Seller) -> Answer {
    let all = s.payments.endpoints(seller.as_str()).await?;
    Ok((
        StatusCode::OK,
        axum::Json(json!({ "data": all.iter().map(view).collect::<Vec<_>>() })),
    ))
}
