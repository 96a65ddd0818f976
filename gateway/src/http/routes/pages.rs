//! The browser pages the `widget` crate holds: the viewer page and its assets.

use axum::extract::Path;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use streams::ids::StreamId;

use crate::http::error::ApiError;
use crate::state::AppState;

/// Scripts, styles and sockets from this origin only; lot images from anywhere secure.
const PAGE_CSP: &str = "default-src 'self'; img-src 'self' https: data:; connect-src 'self'; \
                        object-src 'none'; base-uri 'none'; form-action 'self'";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/watch/{id}", get(watch))
        .route("/assets/{name}", get(asset))
}

async fn watch(Path(raw): Path<String>) -> Result<Response, ApiError> {
    StreamId::parse(&raw).map_err(|_| ApiError::NotFound("stream"))?;
    let mut resp = widget::WATCH_HTML.into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(PAGE_CSP));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("strict-origin-when-cross-origin"),
    );
    Ok(resp)
}

async fn asset(Path(name): Path<String>) -> Result<Response, ApiError> {
    let a = widget::asset(&name).ok_or(ApiError::NotFound("asset"))?;
    let mut resp = a.body.into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(a.content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=300"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    Ok(resp)
}
