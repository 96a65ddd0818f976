//! Seller API: the seller's accounts at acquiring banks, in the order they
//! are tried. Secrets go in and are sealed; they never come out, in answers
//! or logs.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use payments::accounts::{self, Change, NewAccount};
use payments::acquirers::{cloudpayments, stripe, tbank, yookassa};
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::http::error::ApiError;
use crate::http::extract::{Json, Seller};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/acquirers", post(create).get(list))
        .route("/v1/acquirers/{id}", get(read).patch(update).delete(remove))
}

type Answer = Result<(StatusCode, axum::Json<Value>), ApiError>;

/// The secret is write-only; this `Debug` never shows it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewBody {
    acquirer: String,
    account: String,
    secret: String,
    /// Stripe: the webhook endpoint's signing secret (`whsec_…`).
    #[serde(default)]
    webhook_secret: Option<String>,
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
    webhook_secret: Option<String>,
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
    webhook_secret: Option<&str>,
    settings: Option<&Value>,
) -> Result<(), ApiError> {
    if !payments::accounts::ACQUIRERS.contains(&acquirer) {
        return Err(ApiError::InvalidField {
            field: "acquirer",
            message: format!("one of: {}", payments::accounts::ACQUIRERS.join(", ")),
        });
    }
    if let Some(a) = account {
        if !visible(a, 64)
            || !a
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
        {
            return Err(ApiError::InvalidField {
                field: "account",
                message: "the bank's id of the account (T-Bank: TerminalKey; CloudPayments: Public ID; YooKassa: shop id; Stripe: account id): 1 to 64 letters, digits, `_`, `-`, `.`".into(),
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
    if acquirer == stripe::ACQUIRER {
        if let Some(s) = secret {
            if !(s.starts_with("sk_") || s.starts_with("rk_")) {
                return Err(ApiError::InvalidField {
                    field: "secret",
                    message: "Stripe's secret or restricted API key (sk_… or rk_…)".into(),
                });
            }
        }
    }
    if let Some(w) = webhook_secret {
        if acquirer != stripe::ACQUIRER {
            return Err(ApiError::InvalidField {
                field: "webhook_secret",
                message: format!("{acquirer} has no webhook secret"),
            });
        }
        if !w.starts_with("whsec_") || !visible(w, 256) {
            return Err(ApiError::InvalidField {
                field: "webhook_secret",
                message: "the webhook endpoint's signing secret (whsec_…)".into(),
            });
        }
    }
    if let Some(settings) = settings {
        validate_settings(acquirer, settings)?;
    }
    Ok(())
}

/// Checks the settings a bank's account takes (and only those).
fn validate_settings(acquirer: &str, settings: &Value) -> Result<(), ApiError> {
    let Some(map) = settings.as_object() else {
        return Err(ApiError::InvalidField {
            field: "settings",
            message: "an object".into(),
        });
    };
    for (k, v) in map {
        match (acquirer, k.as_str()) {
            (tbank::ACQUIRER | cloudpayments::ACQUIRER | yookassa::ACQUIRER, "taxation") => {
                if !v.as_str().is_some_and(|t| tbank::TAXATION.contains(&t)) {
                    return Err(ApiError::InvalidPath {
                        field: "settings.taxation".into(),
                        message: format!("one of: {}", tbank::TAXATION.join(", ")),
                    });
                }
            }
            (yookassa::ACQUIRER, "confirmation") => {
                if !matches!(v.as_str(), Some("redirect" | "embedded")) {
                    return Err(ApiError::InvalidPath {
                        field: "settings.confirmation".into(),
                        message: "redirect (YooKassa's page) or embedded (its form in Haul's page)".into(),
                    });
                }
            }
            (yookassa::ACQUIRER, "sender_allow_list") => {
                if !v.is_boolean() {
                    return Err(ApiError::InvalidPath {
                        field: "settings.sender_allow_list".into(),
                        message: "true or false".into(),
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
    Ok(())
}

/// An account as the seller sees it, with where its bank is to send
/// notifications (T-Bank is told per payment).
fn view(s: &AppState, a: &accounts::Account) -> Value {
    let base = format!("{}/v1/callbacks/{}", s.public_url, a.acquirer);
    let urls = match a.acquirer.as_str() {
        cloudpayments::ACQUIRER => json!({
            "check": format!("{base}/{}/check", a.account), "pay": format!("{base}/{}/pay", a.account),
            "fail": format!("{base}/{}/fail", a.account), "refund": format!("{base}/{}/refund", a.account),
        }),
        tbank::ACQUIRER => json!({ "notification": base }),
        _ => json!({ "notification": format!("{base}/{}", a.account) }),
    };
    let mut v = json!(a);
    v["notification_urls"] = urls;
    v
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
    validate(
        &body.acquirer,
        Some(&body.account),
        Some(&body.secret),
        body.webhook_secret.as_deref(),
        Some(&settings),
    )?;
    if body.acquirer == stripe::ACQUIRER && body.webhook_secret.is_none() {
        return Err(ApiError::InvalidField {
            field: "webhook_secret",
            message: "Stripe accounts need the webhook endpoint's signing secret (whsec_…)".into(),
        });
    }
    let sealed = accounts::join_secret(&body.secret, body.webhook_secret.as_deref());
    priority_ok(body.priority)?;
    let new = NewAccount {
        acquirer: &body.acquirer,
        account: &body.account,
        secret: &sealed,
        settings: &settings,
        priority: body.priority,
        enabled: body.enabled,
    };
    let account = s.payments.connect_account(seller.as_str(), &new).await?;
    tracing::info!(seller = %seller, account = %account.id, acquirer = %account.acquirer, "acquirer account connected");
    Ok((StatusCode::CREATED, axum::Json(view(&s, &account))))
}

async fn list(State(s): State<AppState>, Seller(seller): Seller) -> Answer {
    let all = s.payments.accounts(seller.as_str()).await?;
    let all: Vec<Value> = all.iter().map(|a| view(&s, a)).collect();
    Ok((StatusCode::OK, axum::Json(json!({ "data": all }))))
}

async fn read(State(s): State<AppState>, Seller(seller): Seller, Path(id): Path<String>) -> Answer {
    let a = s.payments.account(seller.as_str(), &id).await?;
    Ok((StatusCode::OK, axum::Json(view(&s, &a))))
}

async fn update(
    State(s): State<AppState>,
    Seller(seller): Seller,
    Path(id): Path<String>,
    Json(body): Json<ChangeBody>,
) -> Answer {
    let current = s.payments.account(seller.as_str(), &id).await?;
    validate(
        &current.acquirer,
        None,
        body.secret.as_deref(),
        body.webhook_secret.as_deref(),
        body.settings.as_ref(),
    )?;
    priority_ok(body.priority)?;
    // Replacing one of two secrets keeps the other.
    let sealed = match (&body.secret, &body.webhook_secret) {
        (None, None) => None,
        (secret, webhook) => {
            let old = s.payments.account_credentials(seller.as_str(), &id).await?;
            Some(accounts::join_secret(
                secret.as_deref().unwrap_or(old.secret.expose_secret()),
                webhook
                    .as_deref()
                    .or(old.webhook_secret.as_ref().map(ExposeSecret::expose_secret)),
            ))
        }
    };
    let change = Change {
        secret: sealed.as_deref(),
        settings: body.settings.as_ref(),
        priority: body.priority,
        enabled: body.enabled,
    };
    let a = s.payments.change_account(seller.as_str(), &id, &change).await?;
    Ok((StatusCode::OK, axum::Json(view(&s, &a))))
}

async fn remove(State(s): State<AppState>, Seller(seller): Seller, Path(id): Path<String>) -> Answer {
    s.payments.remove_account(seller.as_str(), &id).await?;
    Ok((StatusCode::OK, axum::Json(json!({ "id": id, "deleted": true }))))
}
