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
use payments::store::{CallbackError, CallbackOutcome};
use serde_json::json;

use crate::app::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/callbacks/sandbox", post(sandbox_callback))
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
    match s.payments.apply_callback(&callback).await {
        Ok(outcome) => {
            let word = match &outcome {
                CallbackOutcome::Applied { .. } => "applied",
                CallbackOutcome::Duplicate => "duplicate",
                CallbackOutcome::Ignored { .. } => "ignored",
            };
            tracing::info!(
                acquirer = sandbox::ACQUIRER,
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
                            super::orders::settle_paid(&s, &attempt.order_id).await;
                        } else {
                            super::orders::release_after_failure(&s, &attempt.order_id).await;
                        }
                    }
                }
            }
            (StatusCode::OK, axum::Json(json!({ "received": true, "outcome": word }))).into_response()
        }
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
