//! `Idempotency-Key` on the seller API's creating calls (POST), with Stripe's
//! semantics, stored through [`payments::idempotency`]: the same key and the
//! same request (method, path, body) answer the stored response with
//! `Idempotent-Replayed: true`; the same key with another request is 400
//! `idempotency_key_reused`; while the first still runs, 409
//! `idempotency_key_in_use` with `Retry-After`. Keys are per seller and kept
//! 24 hours; an answer of a server failure (5xx) is not kept.

use axum::body::{to_bytes, Body};
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use payments::idempotency::{self, Begin};
use sha2::{Digest, Sha256};

use crate::http::error::ApiError;
use crate::http::extract::bearer;
use crate::sellers;
use crate::state::AppState;

/// Largest response kept for a replay.
const MAX_RESPONSE: usize = 1024 * 1024;

/// The keys' scope of a console session's call: `<seller row>:<person>`.
async fn console_scope(s: &AppState, parts: &axum::http::request::Parts) -> Result<Option<String>, sqlx::Error> {
    let Some((_, session)) = crate::http::console::session_of(s, &parts.headers).await? else {
        return Ok(None);
    };
    let Some((account, _)) = &session.account else {
        return Ok(None);
    };
    let row = crate::http::console::acting_row(s, account, session.live).await?;
    Ok(row.map(|row| format!("{row}:{}", session.person.id)))
}

pub async fn layer(State(s): State<AppState>, req: Request, next: Next) -> Response {
    if req.method() != Method::POST {
        return next.run(req).await;
    }
    let Some(raw) = req.headers().get("idempotency-key") else {
        return next.run(req).await;
    };
    let key = match raw.to_str() {
        Ok(k) if idempotency::valid_key(k) => k.to_owned(),
        _ => {
            return ApiError::bad_request(
                "invalid_idempotency_key",
                "Idempotency-Key must be 1 to 255 visible ASCII characters",
            )
            .into_response()
        }
    };
    let (parts, body) = req.into_parts();
    // Keys belong to sellers; other callers (and bad keys) go on to the
    // handler, which answers them as it would without the header.
    // A console member's keys are their own within the shop's mode: a
    // replay never hands one member's answer to another.
    let scope = match bearer(&parts).filter(|k| sellers::valid_key_format(k)) {
        Some(api_key) => match s.sellers.for_key(api_key, s.payments.now()).await {
            Ok(Some(owner)) => {
                crate::http::extract::show_mode(&parts, owner.mode.is_live());
                owner.seller.as_str().to_owned()
            }
            Ok(None) => return next.run(Request::from_parts(parts, body)).await,
            Err(e) => return ApiError::Unavailable(Box::new(e)).into_response(),
        },
        None => match console_scope(&s, &parts).await {
            Ok(Some(scope)) => scope,
            Ok(None) => return next.run(Request::from_parts(parts, body)).await,
            Err(e) => return ApiError::Unavailable(Box::new(e)).into_response(),
        },
    };
    let bytes = match to_bytes(body, s.config.max_body_bytes).await {
        Ok(b) => b,
        Err(_) => return ApiError::PayloadTooLarge.into_response(),
    };
    let fingerprint = fingerprint(&parts, &bytes);
    let now = s.streams.now();
    match s.keys.begin(&scope, &key, &fingerprint, now).await {
        Err(e) => ApiError::Unavailable(Box::new(e)).into_response(),
        Ok(Begin::Reused) => ApiError::bad_request(
            "idempotency_key_reused",
            "this Idempotency-Key was used with a different request",
        )
        .into_response(),
        Ok(Begin::InFlight) => in_flight(),
        Ok(Begin::Replay { status, body }) => replay(status, body),
        Ok(Begin::Run) => {
            let resp = next.run(Request::from_parts(parts, Body::from(bytes))).await;
            keep(&s, &scope, &key, resp).await
        }
    }
}

/// Marks an answer whose named top-level fields are shown once (a new
/// secret): it is stored without them, so a replay under the same
/// Idempotency-Key never shows the secret again.
#[derive(Debug, Clone, Copy)]
pub struct ShownOnce(pub &'static [&'static str]);

/// The answer as it is kept for replays.
fn kept_text(out: &[u8], shown_once: Option<ShownOnce>) -> String {
    if let Some(ShownOnce(fields)) = shown_once {
        if let Ok(serde_json::Value::Object(mut m)) = serde_json::from_slice::<serde_json::Value>(out) {
            for f in fields {
                m.remove(*f);
            }
            return serde_json::Value::Object(m).to_string();
        }
    }
    String::from_utf8_lossy(out).into_owned()
}

/// What makes two requests under one key the same: method, path and query,
/// body.
fn fingerprint(parts: &axum::http::request::Parts, body: &[u8]) -> String {
    let mut hash = Sha256::new();
    hash.update(parts.method.as_str());
    hash.update(b"\n");
    hash.update(parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or(""));
    hash.update(b"\n");
    hash.update(body);
    hash.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

fn in_flight() -> Response {
    let mut r = ApiError::Conflict {
        code: "idempotency_key_in_use",
        message: "a request with this Idempotency-Key is still running; retry shortly".into(),
    }
    .into_response();
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    r
}

/// The stored answer of a request that ran, sent again.
fn replay(status: u16, body: String) -> Response {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert("idempotent-replayed", HeaderValue::from_static("true"));
    r
}

/// Stores the answer of the request that ran under the key (a server error
/// frees the key for a retry instead), and passes it on.
async fn keep(s: &AppState, scope: &str, key: &str, resp: Response) -> Response {
    let (rparts, rbody) = resp.into_parts();
    let shown_once = rparts.extensions.get::<ShownOnce>().copied();
    let out = match to_bytes(rbody, MAX_RESPONSE).await {
        Ok(b) => b,
        Err(e) => {
            let _ = s.keys.abandon(scope, key).await;
            return ApiError::Internal(Box::new(e)).into_response();
        }
    };
    let kept = if rparts.status.is_server_error() {
        s.keys.abandon(scope, key).await
    } else {
        let text = kept_text(&out, shown_once);
        s.keys
            .finish(scope, key, rparts.status.as_u16(), &text, s.streams.now())
            .await
    };
    if let Err(e) = kept {
        tracing::warn!(error = %e, "could not store an idempotent response");
    }
    Response::from_parts(rparts, Body::from(out))
}
