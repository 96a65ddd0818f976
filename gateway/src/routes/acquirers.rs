//! Seller API: the seller's accounts at acquiring banks, in the order they
//! are tried. Secrets go in and are sealed; they never come out, in answers
//! or logs.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use payments::accounts::{self, AccountError, Change, NewAccount};
use payments::acquirers::tbank;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::app::AppState;
use crate::error::ApiError;
use crate::extract::{Json, Seller};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/acquirers", post(create).get(list))
        .route("/v1/acquirers/{id}", get(read).patch(update).delete(remove))
}

type Answer = Result<(StatusCode, axum::Json<Value>), ApiError>;

fn failed(e: AccountError) -> ApiError {
    match e {
        AccountError::Taken => ApiError::Conflict {
            code: "account_taken",
            message: "this bank account is already connected".into(),
        },
        AccountError::Store(e) => ApiError::Unavailable(Box::new(e)),
        AccountError::Sealed(e) => ApiError::Internal(Box::new(e)),
    }
}

/// The secret is write-only; this `Debug` never shows it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewBody {
    acquirer: String,
    account: String,
    secret: String,
    #[serde(default)]
    settings: Option<Value>,
    #[serde(default)]
    priority: Option<i64>,
    #[serde(default = "yes")]
    enabled: bool,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChangeBody {
    #[serde(default)]
    secret: Option<String>,
    #[serde(default)]
    settings: Option<Value>,
    #[serde(default)]
    priority: Option<i64>,
    #[serde(default)]
    enabled: Option<bool>,
}

fn visible(s: &str, max: usize) -> bool {
    !s.is_empty() && s.len() <= max && s.bytes().all(|b| b.is_ascii_graphic())
}

/// Checks one bank's account id, secret and settings.
fn validate(
    acquirer: &str,
    account: Option<&str>,
    secret: Option<&str>,
    settings: Option<&Value>,
) -> Result<(), ApiError> {
    if !payments::accounts::ACQUIRERS.contains(&acquirer) {
        return Err(ApiError::InvalidField {
            field: "acquirer",
            message: format!("one of: {}", payments::accounts::ACQUIRERS.join(", ")),
        });
    }
    if let Some(a) = account {
        if !visible(a, 64) {
            return Err(ApiError::InvalidField {
                field: "account",
                message: "the bank's id of the account (T-Bank: TerminalKey): 1 to 64 visible ASCII characters".into(),
            });
        }
    }
    if let Some(s) = secret {
        if !visible(s, 256) {
            return Err(ApiError::InvalidField {
                field: "secret",
                message: "the account's secret (T-Bank: the terminal password): 1 to 256 visible ASCII characters"
                    .into(),
            });
        }
    }
    if let Some(settings) = settings {
        let Some(map) = settings.as_object() else {
            return Err(ApiError::InvalidField {
                field: "settings",
                message: "an object".into(),
            });
        };
        for (k, v) in map {
            match (acquirer, k.as_str()) {
                (tbank::ACQUIRER, "taxation") => {
                    if !v.as_str().is_some_and(|t| tbank::TAXATION.contains(&t)) {
                        return Err(ApiError::InvalidPath {
                            field: "settings.taxation".into(),
                            message: format!("one of: {}", tbank::TAXATION.join(", ")),
                        });
                    }
                }
                _ => {
                    return Err(ApiError::InvalidPath {
                        field: format!("settings.{k}"),
                        message: format!("not a setting of {acquirer}"),
                    })
                }
            }
        }
    }
    Ok(())
}

fn priority_ok(p: Option<i64>) -> Result<(), ApiError> {
    match p {
        Some(p) if !(1..=1000).contains(&p) => Err(ApiError::InvalidField {
            field: "priority",
            message: "from 1 (tried first) to 1000".into(),
        }),
        _ => Ok(()),
    }
}

async fn create(State(s): State<AppState>, Seller(seller): Seller, Json(body): Json<NewBody>) -> Answer {
    let settings = body.settings.unwrap_or_else(|| json!({}));
    validate(&body.acquirer, Some(&body.account), Some(&body.secret), Some(&settings))?;
    priority_ok(body.priority)?;
    let account = accounts::create(
        &s.pool,
        &s.vault,
        seller.as_str(),
        &NewAccount {
            acquirer: &body.acquirer,
            account: &body.account,
            secret: &body.secret,
            settings: &settings,
            priority: body.priority,
            enabled: body.enabled,
        },
        s.streams.now(),
    )
    .await
    .map_err(failed)?;
    tracing::info!(seller = %seller, account = %account.id, acquirer = %account.acquirer, "acquirer account connected");
    Ok((StatusCode::CREATED, axum::Json(json!(account))))
}

async fn list(State(s): State<AppState>, Seller(seller): Seller) -> Answer {
    let all = accounts::list(&s.pool, seller.as_str())
        .await
        .map_err(|e| ApiError::Unavailable(Box::new(e)))?;
    Ok((StatusCode::OK, axum::Json(json!({ "data": all }))))
}

async fn read(State(s): State<AppState>, Seller(seller): Seller, Path(id): Path<String>) -> Answer {
    let a = accounts::get(&s.pool, seller.as_str(), &id)
        .await
        .map_err(|e| ApiError::Unavailable(Box::new(e)))?
        .ok_or(ApiError::NotFound("acquirer account"))?;
    Ok((StatusCode::OK, axum::Json(json!(a))))
}

async fn update(
    State(s): State<AppState>,
    Seller(seller): Seller,
    Path(id): Path<String>,
    Json(body): Json<ChangeBody>,
) -> Answer {
    let current = accounts::get(&s.pool, seller.as_str(), &id)
        .await
        .map_err(|e| ApiError::Unavailable(Box::new(e)))?
        .ok_or(ApiError::NotFound("acquirer account"))?;
    validate(&current.acquirer, None, body.secret.as_deref(), body.settings.as_ref())?;
    priority_ok(body.priority)?;
    let a = accounts::update(
        &s.pool,
        &s.vault,
        seller.as_str(),
        &id,
        &Change {
            secret: body.secret.as_deref(),
            settings: body.settings.as_ref(),
            priority: body.priority,
            enabled: body.enabled,
        },
        s.streams.now(),
    )
    .await
    .map_err(failed)?
    .ok_or(ApiError::NotFound("acquirer account"))?;
    Ok((StatusCode::OK, axum::Json(json!(a))))
}

async fn remove(State(s): State<AppState>, Seller(seller): Seller, Path(id): Path<String>) -> Answer {
    if accounts::delete(&s.pool, seller.as_str(), &id)
        .await
        .map_err(|e| ApiError::Unavailable(Box::new(e)))?
    {
        Ok((StatusCode::OK, axum::Json(json!({ "id": id, "deleted": true }))))
    } else {
        Err(ApiError::NotFound("acquirer account"))
    }
}
