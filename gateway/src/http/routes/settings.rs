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
    /// Minutes (1 to a week), or null to never flag.
    #[serde(default, deserialize_with = "present")]
    confirm_within_minutes: Option<Option<i64>>,
    /// The buyers' language when their browser asks for none Haul speaks.
    locale: Option<String>,
}

/// A field given (even as null) is `Some`; left out, `None`.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<i64>>, D::Error> {
    Option::<i64>::deserialize(d).map(Some)
}

async fn update(State(s): State<AppState>, Seller(seller): Seller, Json(change): Json<Change>) -> Answer {
    let mut settings = s.sellers.settings(&seller).await.map_err(unavailable)?;
    if let Some(v) = change.signed_viewers_only {
        settings.signed_viewers_only = v;
    }
    if let Some(v) = change.confirm_within_minutes {
        let max = crate::sellers::MAX_CONFIRM_MINUTES;
        settings.confirm_within_minutes = match v {
            None => None,
            Some(m) if (1..=i64::from(max)).contains(&m) => Some(m as u32),
            Some(_) => {
                return Err(ApiError::InvalidField {
                    field: "confirm_within_minutes",
                    message: format!("from 1 to {max} minutes, or null for never"),
                })
            }
        };
    }
    if let Some(raw) = &change.locale {
        settings.locale =
            widget::Locale::parse(raw)
                .filter(|l| l.tag() == raw)
                .ok_or_else(|| ApiError::InvalidField {
                    field: "locale",
                    message: format!("one of {}", payments::checkout::locales()),
                })?;
    }
    s.sellers.set_settings(&seller, settings).await.map_err(unavailable)?;
    answer(&settings)
}
