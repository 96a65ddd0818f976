//! Seller API: checkout sessions for sellers' own sites. The seller's backend
//! makes a session (with `Idempotency-Key`, like every creating call) and
//! sends the buyer to its `url`; the order behind it is the payment's truth.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Extension, Router};
use payments::checkout::{self, NewSession, Session};
use serde_json::{json, Value};
use streams::ids::SellerId;
use streams::money::Currency;

use super::PageQuery;
use crate::http::error::ApiError;
use crate::http::extract::{ClientAddr, Json, Seller};
use crate::http::idempotency::ShownOnce;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/checkout/sessions", post(create).get(list))
        .route("/v1/checkout/sessions/{id}", get(read))
        .route("/v1/checkout/sessions/{id}/cancel", post(cancel))
        .route("/v1/checkout/signed", post(from_signed))
        .route("/v1/checkout/sessions/{id}/attempts", post(pay_session))
        .route("/v1/widget-secret", post(new_widget_secret))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PayWith {
    acquirer: String,
    /// The buyer's email for the receipt, when the session has no contact
    /// (a stream purchase); a session that has one keeps it.
    #[serde(default)]
    customer_email: Option<String>,
    /// The language the buyer's page speaks (`en`, `ru`): the bank's page
    /// and the buyer's emails follow it.
    #[serde(default)]
    locale: Option<String>,
}

/// The buyer starts paying a session (its id is the capability, as in the
/// session's `url`): a new attempt at the chosen acquirer.
async fn pay_session(
    State(s): State<AppState>,
    ClientAddr(addr): ClientAddr,
    Path(id): Path<String>,
    Json(body): Json<PayWith>,
) -> Answer {
    // No key here: the per-address limit keeps a stranger from flooding it.
    s.limits.per_addr.check(&addr)?;
    let (_, session) = s.payments.session_by_id(&id).await?;
    if let Some(email) = &body.customer_email {
        if email.len() > 254 || !checkout::email_ok(email) {
            return Err(ApiError::InvalidField {
                field: "customer_email",
                message: "not an email address".into(),
            });
        }
        s.payments.set_session_email(&session.id, email).await?;
    }
    if let Some(raw) = &body.locale {
        let locale = widget::Locale::parse(raw)
            .filter(|l| l.tag() == raw)
            .ok_or_else(|| ApiError::InvalidField {
                field: "locale",
                message: format!("one of {}", checkout::locales()),
            })?;
        s.payments.set_session_locale(&session.id, locale).await?;
    }
    let order = s.payments.session_order(&session).await?;
    let started = s.payments.start_payment(&order, &body.acquirer).await?;
    let mut v = super::attempt_view(&started);
    v["livemode"] = s.payments.livemode(&order.seller_id).await?.into();
    Ok((StatusCode::CREATED, axum::Json(v)))
}

/// A new widget secret for the seller (shown once; the old one stops working).
async fn new_widget_secret(
    State(s): State<AppState>,
    Seller(seller): Seller,
) -> Result<(StatusCode, Extension<ShownOnce>, axum::Json<Value>), ApiError> {
    let secret = format!("wsk_{}", streams::ids::random_token(40));
    s.sellers
        .set_widget_secret(&seller, &secret)
        .await
        .map_err(unavailable)?;
    // Shown once: a replay under the same Idempotency-Key leaves it out.
    let once = Extension(ShownOnce(&["widget_secret"]));
    Ok((
        StatusCode::CREATED,
        once,
        axum::Json(json!({ "widget_secret": secret })),
    ))
}

fn refused(e: impl std::fmt::Display) -> ApiError {
    ApiError::BadRequest {
        code: "invalid_signature",
        message: e.to_string(),
    }
}

/// A checkout session from parameters a seller's page signed with its
/// widget secret. The same signed parameters always give the same session.
async fn from_signed(
    State(s): State<AppState>,
    ClientAddr(addr): ClientAddr,
    Json(params): Json<std::collections::BTreeMap<String, String>>,
) -> Result<axum::response::Response, ApiError> {
    s.limits.per_addr.check(&addr)?;
    use axum::response::IntoResponse;
    use payments::checkout::signed;
    use payments::idempotency::Begin;
    let seller = params
        .get("seller")
        .ok_or_else(|| refused("parameter seller is missing"))?;
    let seller = SellerId::parse(seller).map_err(|_| refused("unknown seller"))?;
    let secret = s.sellers.widget_secret(&seller).await.map_err(unavailable)?;
    let secret = secret.ok_or_else(|| refused("unknown seller, or no widget secret set"))?;
    signed::verify(&secret, &params, s.payments.now() / 1000).map_err(refused)?;
    let signature = params.get("signature").cloned().unwrap_or_default();
    let canonical = signed::canonical(&params).map_err(refused)?;
    let get = |k: &str| params.get(k).cloned();
    let amount_minor: i64 = params["amount_minor"].parse().map_err(|_| ApiError::InvalidField {
        field: "amount_minor",
        message: "a whole number".into(),
    })?;
    let description = get("description").unwrap_or_else(|| params["reference"].clone());
    let new: NewSession = serde_json::from_value(json!({
        "amount_minor": amount_minor,
        "currency": params["currency"],
        "reference": params["reference"],
        "items": [{ "name": description, "quantity": 1, "price_minor": amount_minor,
                    "vat": get("vat").unwrap_or_else(|| "none".into()) }],
        "success_url": params["success_url"],
        "cancel_url": params["cancel_url"],
        "customer_email": get("customer_email"),
        "customer_phone": get("customer_phone"),
        "locale": get("locale"),
    }))
    .map_err(|e| ApiError::bad_request("invalid_json", e.to_string()))?;
    let scope = format!("signed:{seller}");
    match s
        .keys
        .begin(&scope, &signature, &canonical, s.payments.now())
        .await
        .map_err(unavailable)?
    {
        Begin::Replay { status, body } => {
            let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
            Ok((StatusCode::from_u16(status).unwrap_or(StatusCode::OK), axum::Json(v)).into_response())
        }
        Begin::InFlight | Begin::Reused => Err(ApiError::Conflict {
            code: "idempotency_key_in_use",
            message: "these signed parameters are being used; retry shortly".into(),
        }),
        Begin::Run => {
            let made = create(State(s.clone()), Seller(seller), Json(new)).await;
            match &made {
                Ok((status, body)) => {
                    let text = body.0.to_string();
                    let _ = s
                        .keys
                        .finish(&scope, &signature, status.as_u16(), &text, s.payments.now())
                        .await;
                }
                Err(_) => {
                    let _ = s.keys.abandon(&scope, &signature).await;
                }
            }
            made.map(IntoResponse::into_response)
        }
    }
}

type Answer = Result<(StatusCode, axum::Json<Value>), ApiError>;

fn unavailable(e: impl std::error::Error + Send + Sync + 'static) -> ApiError {
    ApiError::Unavailable(Box::new(e))
}

/// The session with its order's state.
async fn view(s: &AppState, session: &Session) -> Result<Value, ApiError> {
    let order = s.payments.session_order(session).await?;
    let live = s.payments.livemode(&order.seller_id).await?;
    Ok(json!({
        "id": session.id,
        "livemode": live,
        "order_id": session.order_id,
        "state": order.state,
        "amount_minor": order.amount_minor,
        "currency": order.currency,
        "reference": order.reference,
        "items": session.items,
        "success_url": session.success_url,
        "cancel_url": session.cancel_url,
        "customer_email": session.customer_email,
        "customer_phone": session.customer_phone,
        "locale": session.locale,
        "expires_at": session.expires_at,
        "created_at": session.created_at,
        "url": format!("{}/checkout/{}", s.public_url, session.id),
    }))
}

async fn create(State(s): State<AppState>, Seller(seller): Seller, Json(body): Json<NewSession>) -> Answer {
    let currency = Currency::parse(&body.currency).map_err(|_| ApiError::InvalidField {
        field: "currency",
        message: "an ISO 4217 currency code".into(),
    })?;
    body.validate().map_err(|e| ApiError::InvalidPath {
        field: e.field,
        message: e.message,
    })?;
    let mut body = body;
    body.currency = currency.code().to_owned();
    let session = s.payments.create_session(seller.as_str(), &body).await?;
    Ok((StatusCode::CREATED, axum::Json(view(&s, &session).await?)))
}

async fn owned(s: &AppState, seller: &SellerId, id: &str) -> Result<Session, ApiError> {
    Ok(s.payments.session(seller.as_str(), id).await?)
}

async fn read(State(s): State<AppState>, Seller(seller): Seller, Path(id): Path<String>) -> Answer {
    let session = owned(&s, &seller, &id).await?;
    Ok((StatusCode::OK, axum::Json(view(&s, &session).await?)))
}

async fn list(
    State(s): State<AppState>,
    Seller(seller): Seller,
    q: Result<Query<PageQuery>, axum::extract::rejection::QueryRejection>,
) -> Answer {
    let Query(q) = q.map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))?;
    let page = q.page()?;
    let sessions = s.payments.sessions(seller.as_str(), page.limit, q.before).await?;
    let mut data = Vec::with_capacity(sessions.len());
    for session in &sessions {
        data.push(view(&s, session).await?);
    }
    let next = (sessions.len() as i64 == page.limit).then(|| sessions.last().map(|x| x.created_at));
    Ok((
        StatusCode::OK,
        axum::Json(json!({ "data": data, "next_before": next.flatten() })),
    ))
}

/// Cancels an unpaid session (its order becomes `cancelled`); a paid one is refunded instead.
async fn cancel(State(s): State<AppState>, Seller(seller): Seller, Path(id): Path<String>) -> Answer {
    let session = owned(&s, &seller, &id).await?;
    s.payments.cancel_session(&session).await?;
    Ok((StatusCode::OK, axum::Json(view(&s, &session).await?)))
}
