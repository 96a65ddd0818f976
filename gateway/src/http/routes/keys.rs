//! Seller API: API keys. A seller (each mode apart) has several, named;
//! a new key is shown once; rotating makes a new key and lets the old one
//! work on for an overlap, so servers can be moved over without a gap;
//! revoking stops a key at once. The last working key cannot be revoked
//! (the seller would be locked out of its own API). Each key's last use is
//! kept to the minute.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, post};
use axum::{Extension, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use streams::ids::SellerId;

use crate::http::error::ApiError;
use crate::http::extract::{Json, Seller};
use crate::http::idempotency::ShownOnce;
use crate::sellers::{self, KeyInfo};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/api-keys", post(create).get(list))
        .route("/v1/api-keys/{id}", delete(revoke))
        .route("/v1/api-keys/{id}/rotate", post(rotate))
}

type Answer = Result<(StatusCode, axum::Json<Value>), ApiError>;
type SecretAnswer = Result<(StatusCode, Extension<ShownOnce>, axum::Json<Value>), ApiError>;
const SHOWN_ONCE: ShownOnce = ShownOnce(&["key"]);

/// The longest a rotated key may keep working: a week.
const MAX_OVERLAP_SECS: i64 = 7 * 24 * 3600;
/// Unless told otherwise, a day.
const DEFAULT_OVERLAP_SECS: i64 = 24 * 3600;

fn unavailable(e: sqlx::Error) -> ApiError {
    ApiError::Unavailable(Box::new(e))
}

fn view(k: &KeyInfo, now: i64) -> Value {
    json!({
        "id": k.id, "name": k.name, "prefix": k.prefix, "created_at": k.created_at,
        "last_used_at": k.last_used_at, "expires_at": k.expires_at, "revoked_at": k.revoked_at,
        "active": k.active(now),
    })
}

fn name_of(name: Option<String>) -> Result<String, ApiError> {
    let name = name.unwrap_or_else(|| "default".into());
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(ApiError::InvalidField {
            field: "name",
            message: "1 to 100 characters, none of them control characters".into(),
        });
    }
    Ok(name.to_owned())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewKey {
    name: Option<String>,
}

/// A new key of the seller's mode, shown once.
async fn issue(s: &AppState, seller: &SellerId, name: &str) -> SecretAnswer {
    let now = s.payments.now();
    let mode = if s.payments.livemode(seller.as_str()).await? {
        sellers::Mode::Live
    } else {
        sellers::Mode::Test
    };
    let key = sellers::generate_key(mode);
    let id = s
        .sellers
        .add_named_key(seller, &key, name, now)
        .await
        .map_err(unavailable)?
        .ok_or_else(|| ApiError::internal(std::io::Error::other("a fresh key collided")))?;
    let all = s.sellers.keys(seller).await.map_err(unavailable)?;
    let made = all
        .iter()
        .find(|k| k.id == id)
        .ok_or_else(|| ApiError::internal(std::io::Error::other("the key just made is gone")))?;
    let mut v = view(made, now);
    v["key"] = json!(key);
    Ok((StatusCode::CREATED, Extension(SHOWN_ONCE), axum::Json(v)))
}

async fn create(State(s): State<AppState>, Seller(seller): Seller, Json(body): Json<NewKey>) -> SecretAnswer {
    let name = name_of(body.name)?;
    issue(&s, &seller, &name).await
}

async fn list(State(s): State<AppState>, Seller(seller): Seller) -> Answer {
    let now = s.payments.now();
    let all = s.sellers.keys(&seller).await.map_err(unavailable)?;
    Ok((
        StatusCode::OK,
        axum::Json(json!({ "data": all.iter().map(|k| view(k, now)).collect::<Vec<_>>() })),
    ))
}

/// The seller's working key `id`.
async fn working(s: &AppState, seller: &SellerId, id: &str) -> Result<(KeyInfo, usize), ApiError> {
    let now = s.payments.now();
    let all = s.sellers.keys(seller).await.map_err(unavailable)?;
    let working = all.iter().filter(|k| k.active(now)).count();
    let key = all
        .into_iter()
        .find(|k| k.id == id && k.active(now))
        .ok_or(ApiError::NotFound("api key"))?;
    Ok((key, working))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Rotation {
    /// How long the old key keeps working (0: stops now).
    overlap_seconds: Option<i64>,
}

/// A new key under the same name; the old one works on for the overlap.
async fn rotate(
    State(s): State<AppState>,
    Seller(seller): Seller,
    Path(id): Path<String>,
    Json(body): Json<Rotation>,
) -> SecretAnswer {
    let overlap = body.overlap_seconds.unwrap_or(DEFAULT_OVERLAP_SECS);
    if !(0..=MAX_OVERLAP_SECS).contains(&overlap) {
        return Err(ApiError::InvalidField {
            field: "overlap_seconds",
            message: format!("from 0 to {MAX_OVERLAP_SECS} (a week)"),
        });
    }
    let (old, _) = working(&s, &seller, &id).await?;
    let answer = issue(&s, &seller, &old.name).await?;
    let now = s.payments.now();
    s.sellers
        .end_key(&seller, &old.id, now + overlap * 1000, now)
        .await
        .map_err(unavailable)?;
    let (status, shown, axum::Json(mut v)) = answer;
    v["replaces"] = json!(old.id);
    v["replaced_until"] = json!(now + overlap * 1000);
    Ok((status, shown, axum::Json(v)))
}

/// Stops a key at once.
async fn revoke(State(s): State<AppState>, Seller(seller): Seller, Path(id): Path<String>) -> Answer {
    let (key, working) = working(&s, &seller, &id).await?;
    if working <= 1 {
        return Err(ApiError::Conflict {
            code: "last_api_key",
            message: "this is the last working key; make another before revoking it".into(),
        });
    }
    let now = s.payments.now();
    if !s
        .sellers
        .end_key(&seller, &key.id, now, now)
        .await
        .map_err(unavailable)?
    {
        return Err(ApiError::NotFound("api key"));
    }
    Ok((StatusCode::OK, axum::Json(json!({ "id": key.id, "revoked": true }))))
}
