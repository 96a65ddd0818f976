//! Seller API: the seller's settings (per mode, like every object).

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use serde::Deserialize;
use serde_json::Value;

use crate::http::error::ApiError;
use crate::http::extract::{Json, Seller};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/settings", get(read).patch(update))
}

type Answer = Result<(StatusCode, axum::Json<Value>), ApiError>;

fn unavailable(e: sqlx::Error) -> ApiError {
    ApiError::Unavailable(Box::new(e))
}

fn answer(settings: &crate::sellers::Settings) -> Answer {
    Ok((
        StatusCode::OK,
        axum::Json(serde_json::to_value(settings).map_err(ApiError::internal)?),
    ))
}

async fn read(State(s): State<AppState>, Seller(seller): Seller) -> Answer {
    answer(&s.sellers.settings(&seller).await.map_err(unavailable)?)
}

/// What a `PATCH` may change; what it leaves out stays.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Change {
    signed_viewers_only: Option<bool>,
}

async fn update(State(s): State<AppState>, Seller(seller): Seller, Json(change): Json<Change>) -> Answer {
    let mut settings = s.sellers.settings(&seller).await.map_err(unavailable)?;
    if let Some(v) = change.signed_viewers_only {
        settings.signed_viewers_only = v;
    }
    s.sellers.set_settings(&seller, settings).await.map_err(unavailable)?;
    answer(&settings)
}
