//! Inbound acquirer callbacks: each route hands the raw body (and the
//! headers that sign it) to the payments service, which verifies and
//! applies it exactly once, and answers in the form that acquirer expects.
//! A refusal for good is a 400 with its reason (or the bank's refusal code);
//! one that could not be taken now is a 503, which every acquirer retries,
//! with no internal detail.
//!
//! The sandbox acquirer expects 200 to stop retrying: duplicates and
//! callbacks the attempt has already moved past are answered 200 too (they
//! were received).

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use payments::acquirers::cloudpayments::{self as cp, Kind};
use payments::sandbox;
use payments::service::{Outcome, Refusal};
use serde_json::json;

use crate::http::extract::ClientAddr;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/callbacks/sandbox", post(sandbox_callback))
        .route("/v1/callbacks/tbank", post(tbank_callback))
        .route(
            "/v1/callbacks/cloudpayments/{account}/{kind}",
            post(cloudpayments_callback),
        )
        .route("/v1/callbacks/yookassa/{account}", post(yookassa_callback))
        .route("/v1/callbacks/stripe/{account}", post(stripe_callback))
}

/// What a sender is told when its notification could not be taken now.
const RETRY: &str = "temporarily unavailable; send it again";

/// `{"received": true, "outcome": …}`, or a JSON error.
fn json_answer(outcome: Result<Outcome, Refusal>) -> Response {
    match outcome {
        Ok(o) => (
            StatusCode::OK,
            axum::Json(json!({ "received": true, "outcome": o.as_str() })),
        )
            .into_response(),
        Err(Refusal::Bad(why)) => (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({ "error": { "code": "callback_refused", "message": why } })),
        )
            .into_response(),
        Err(Refusal::Retry(_)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({ "error": { "code": "unavailable", "message": RETRY } })),
        )
            .into_response(),
    }
}

/// A plain-text refusal: 400 with the reason, or 503.
fn plain_refusal(r: Refusal) -> Response {
    match r {
        Refusal::Bad(why) => (StatusCode::BAD_REQUEST, why).into_response(),
        Refusal::Retry(_) => (StatusCode::SERVICE_UNAVAILABLE, RETRY).into_response(),
    }
}

async fn sandbox_callback(State(s): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let signature = headers.get(sandbox::SIGNATURE_HEADER).and_then(|v| v.to_str().ok());
    json_answer(s.payments.sandbox_callback(signature, &body).await)
}

/// T-Bank's notifications. T-Bank retries until it reads `OK`: received
/// notifications (applied, duplicate, already past) get `OK`.
async fn tbank_callback(State(s): State<AppState>, body: Bytes) -> Response {
    match s.payments.tbank_notification(&body).await {
        Ok(_) => (StatusCode::OK, "OK").into_response(),
        Err(r) => plain_refusal(r),
    }
}

/// CloudPayments' notifications, at the address set per kind in the
/// site's settings (`…/cloudpayments/{Public ID}/check|pay|fail|refund`).
/// Answers are `{"code":0}`; a refusal is another code (to a Check it stops
/// the payment). One that could not be taken now is a 503, which
/// CloudPayments retries.
async fn cloudpayments_callback(
    State(s): State<AppState>,
    Path((account, kind)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let code = |status: StatusCode, c: i64| (status, axum::Json(json!({ "code": c }))).into_response();
    let Some(kind) = Kind::parse(&kind) else {
        s.payments
            .refused(cp::ACQUIRER, &Refusal::Bad(format!("no notification kind {kind:?}")));
        return code(StatusCode::NOT_FOUND, cp::CHECK_REFUSED);
    };
    let signatures: Vec<&str> = ["content-hmac", "x-content-hmac"]
        .iter()
        .filter_map(|h| headers.get(*h).and_then(|v| v.to_str().ok()))
        .collect();
    match s
        .payments
        .cloudpayments_notification(&account, kind, &signatures, &body)
        .await
    {
        Ok(c) => code(StatusCode::OK, c),
        Err((_, Refusal::Retry(_))) => code(StatusCode::SERVICE_UNAVAILABLE, cp::CHECK_REFUSED),
        Err((c, Refusal::Bad(_))) => code(StatusCode::OK, c),
    }
}

/// YooKassa's notifications (`…/yookassa/{shop id}`). A 200 acknowledges;
/// YooKassa retries other answers.
async fn yookassa_callback(
    State(s): State<AppState>,
    Path(account): Path<String>,
    ClientAddr(from): ClientAddr,
    body: Bytes,
) -> Response {
    match s.payments.yookassa_notification(&account, from, &body).await {
        Ok(_) => StatusCode::OK.into_response(),
        Err(r) => plain_refusal(r),
    }
}

/// Stripe's webhook endpoint for one account (`…/stripe/{account id}`).
/// 2xx acknowledges; Stripe retries other answers.
async fn stripe_callback(
    State(s): State<AppState>,
    Path(account): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let header = headers.get("stripe-signature").and_then(|v| v.to_str().ok());
    json_answer(s.payments.stripe_notification(&account, header, &body).await)
}
