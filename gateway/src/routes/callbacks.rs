//! Inbound acquirer callbacks. Each is verified on its raw body before
//! anything is parsed, then applied exactly once by the payments store (the
//! inbox row and the state change in one transaction). Refusals are logged
//! with their reason and change nothing.
//!
//! The sandbox acquirer expects 200 to stop retrying: duplicates and
//! callbacks the attempt has already moved past are answered 200 too (they
//! were received); a refused callback is 400; a store failure 503 (retry).

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use payments::sandbox;
use payments::state::OrderState;
use payments::store::{Callback, CallbackError, CallbackOutcome};
use serde_json::json;

use crate::app::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/callbacks/sandbox", post(sandbox_callback))
        .route("/v1/callbacks/tbank", post(tbank_callback))
}

/// Applies a verified callback exactly once and what follows from it (the
/// hold sold or released); answers what it came to.
pub async fn apply(s: &AppState, callback: &Callback) -> Result<&'static str, CallbackError> {
    let outcome = s.payments.apply_callback(callback).await?;
    let word = match &outcome {
        CallbackOutcome::Applied { .. } => "applied",
        CallbackOutcome::Duplicate => "duplicate",
        CallbackOutcome::Ignored { .. } => "ignored",
    };
    tracing::info!(
        acquirer = %callback.acquirer,
        event = %callback.callback_id,
        attempt = %callback.attempt_id,
        outcome = word,
        "callback received"
    );
    s.metrics.callback(word);
    if let CallbackOutcome::Applied { order: state, .. } = outcome {
        if matches!(state, OrderState::Succeeded | OrderState::Failed) {
            if let Ok(Some(attempt)) = s.payments.attempt(&callback.attempt_id).await {
                if state == OrderState::Succeeded {
                    super::orders::settle_paid(s, &attempt.order_id).await;
                } else {
                    super::orders::release_after_failure(s, &attempt.order_id).await;
                }
            }
        }
    }
    Ok(word)
}

fn refused(s: &AppState, reason: &str) -> Response {
    tracing::warn!(acquirer = sandbox::ACQUIRER, %reason, "callback refused");
    s.metrics.callback("refused");
    (
        StatusCode::BAD_REQUEST,
        axum::Json(json!({ "error": { "code": "callback_refused", "message": reason } })),
    )
        .into_response()
}

async fn sandbox_callback(State(s): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let signature = headers.get(sandbox::SIGNATURE_HEADER).and_then(|v| v.to_str().ok());
    let now = s.streams.now();
    let cb = match sandbox::verify(s.sandbox_secret.expose().as_bytes(), signature, &body, now / 1000) {
        Ok(cb) => cb,
        Err(e) => return refused(&s, &e.to_string()),
    };
    let callback = match cb.to_callback(now) {
        Ok(c) => c,
        Err(e) => return refused(&s, &e.to_string()),
    };
    match apply(&s, &callback).await {
        Ok(word) => (StatusCode::OK, axum::Json(json!({ "received": true, "outcome": word }))).into_response(),
        Err(e @ (CallbackError::UnknownAttempt | CallbackError::WrongAcquirer | CallbackError::Mismatch)) => {
            refused(&s, &e.to_string())
        }
        Err(CallbackError::Store(e)) => {
            tracing::error!(error = ?e, "callback could not be stored; the acquirer will retry");
            s.metrics.callback("error");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                axum::Json(json!({ "error": { "code": "unavailable", "message": "try again" } })),
            )
                .into_response()
        }
    }
}

/// T-Bank's notifications: the terminal named in the body gives the
/// password its `Token` must verify under. T-Bank retries until it reads
/// `OK`: received notifications (applied, duplicate, already past) get
/// `OK`; refused ones a 400 with the reason, store failures a 503.
async fn tbank_callback(State(s): State<AppState>, body: Bytes) -> Response {
    use payments::acquirers::{tbank, Mapped};
    let no = |s: &AppState, status: StatusCode, reason: String| {
        tracing::warn!(acquirer = tbank::ACQUIRER, %reason, "notification refused");
        s.metrics.callback(if status == StatusCode::SERVICE_UNAVAILABLE {
            "error"
        } else {
            "refused"
        });
        (status, reason).into_response()
    };
    let key = match tbank::terminal_of(&body) {
        Ok(k) => k,
        Err(e) => return no(&s, StatusCode::BAD_REQUEST, e.to_string()),
    };
    let creds = match payments::accounts::by_bank_account(&s.pool, &s.vault, tbank::ACQUIRER, &key).await {
        Ok(Some(c)) => c,
        Ok(None) => return no(&s, StatusCode::BAD_REQUEST, format!("unknown terminal {key:?}")),
        Err(e) => {
            return no(
                &s,
                StatusCode::SERVICE_UNAVAILABLE,
                format!("could not read the terminal: {e}"),
            )
        }
    };
    let n = match tbank::verify_notification(&body, &creds.secret) {
        Ok(n) => n,
        Err(e) => return no(&s, StatusCode::BAD_REQUEST, e.to_string()),
    };
    let Ok(attempt_id) = payments::ids::AttemptId::parse(&n.order_id) else {
        return no(&s, StatusCode::BAD_REQUEST, format!("unknown OrderId {:?}", n.order_id));
    };
    let attempt = match s.payments.attempt(&attempt_id).await {
        Ok(Some(a)) => a,
        Ok(None) => return no(&s, StatusCode::BAD_REQUEST, format!("unknown OrderId {:?}", n.order_id)),
        Err(e) => {
            return no(
                &s,
                StatusCode::SERVICE_UNAVAILABLE,
                format!("could not read the attempt: {e}"),
            )
        }
    };
    // The attempt must have gone to this very terminal and payment.
    if attempt.account_id.as_deref() != Some(creds.account.id.as_str()) {
        return no(
            &s,
            StatusCode::BAD_REQUEST,
            "the payment was not made with this terminal".into(),
        );
    }
    match attempt.acquirer_ref.as_deref() {
        Some(r) if r != n.payment_id => {
            return no(
                &s,
                StatusCode::BAD_REQUEST,
                "PaymentId does not match the attempt".into(),
            );
        }
        Some(_) => {}
        // Init had no clear answer, yet the bank made the payment: follow it.
        None => {
            if let Err(e) = s
                .payments
                .set_started(&attempt.id, Some(&creds.account.id), &n.payment_id, s.streams.now())
                .await
            {
                return no(&s, StatusCode::SERVICE_UNAVAILABLE, format!("not stored: {e}"));
            }
        }
    }
    let state = match tbank::map_status(&n.status) {
        Mapped::State(st) => st,
        Mapped::Unknown => {
            tracing::warn!(status = %n.status, attempt = %attempt.id, "unknown T-Bank status: left for reconciliation");
            return (StatusCode::OK, "OK").into_response();
        }
    };
    let callback = Callback {
        acquirer: tbank::ACQUIRER.into(),
        // T-Bank gives no notification id: one payment reports each status once.
        callback_id: format!("{}:{}", n.payment_id, n.status),
        attempt_id,
        amount_minor: n.amount_minor,
        currency: attempt.currency.clone(),
        state,
        at: s.streams.now(),
    };
    match apply(&s, &callback).await {
        Ok(_) => (StatusCode::OK, "OK").into_response(),
        Err(CallbackError::Store(e)) => no(&s, StatusCode::SERVICE_UNAVAILABLE, format!("not stored: {e}")),
        Err(e) => no(&s, StatusCode::BAD_REQUEST, e.to_string()),
    }
}
