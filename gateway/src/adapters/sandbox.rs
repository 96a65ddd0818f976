//! The sandbox acquirer's callbacks, sent to Haul over real HTTP as an
//! acquirer would: signed, retried until taken (2xx) or refused (4xx). With
//! `HAUL_SANDBOX_CHAOS` on, every callback is sent twice and the first
//! round in reverse order.

use std::time::Duration;

use axum::http::header;
use payments::sandbox;
use payments::store::Attempt;
use secrecy::ExposeSecret;
use serde_json::json;
use streams::ids::random_token;

use crate::state::AppState;

/// Sends the sandbox's callbacks for an attempt, as the acquirer would.
pub async fn send_reports(s: AppState, attempt: Attempt, reports: Vec<(&'static str, Option<&'static str>)>) {
    let bodies: Vec<String> = reports
        .iter()
        .map(|(status, decline)| {
            json!({
                "event_id": format!("evt_{}", random_token(20)),
                "payment_id": attempt.id,
                "status": status,
                "amount_minor": attempt.amount_minor,
                "currency": attempt.currency,
                "decline_code": decline,
                "created_at": s.payments.now() / 1000,
            })
            .to_string()
        })
        .collect();
    let mut order: Vec<&String> = bodies.iter().collect();
    if s.config.sandbox_chaos {
        // Out of order first, then every one again.
        order = bodies.iter().rev().chain(bodies.iter()).collect();
    }
    for body in order {
        deliver(&s, body).await;
    }
}

/// Posts one callback until Haul takes it (2xx) or refuses it (4xx).
async fn deliver(s: &AppState, body: &str) {
    let url = format!("{}/v1/callbacks/sandbox", s.public_url);
    let mut backoff = Duration::from_millis(200);
    for _ in 0..8 {
        let signature = sandbox::sign(
            s.sandbox_secret.expose_secret().as_bytes(),
            s.payments.now() / 1000,
            body.as_bytes(),
        );
        let sent = s
            .http
            .post(&url)
            .header(header::CONTENT_TYPE, "application/json")
            .header(sandbox::SIGNATURE_HEADER, signature)
            .body(body.to_owned())
            .send()
            .await;
        match sent {
            Ok(r) if r.status().is_success() => return,
            Ok(r) if r.status().is_client_error() => {
                tracing::error!(status = %r.status(), "the sandbox's callback was refused");
                return;
            }
            Ok(r) => tracing::warn!(status = %r.status(), "sandbox callback not taken; retrying"),
            Err(e) => tracing::warn!(error = %e, "sandbox callback not delivered; retrying"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(10));
    }
    tracing::error!("gave up delivering a sandbox callback");
}
