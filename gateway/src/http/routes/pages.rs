//! The browser pages the `widget` crate holds: the viewer page and its assets.

use axum::extract::{Path, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use streams::ids::StreamId;

use crate::http::error::ApiError;
use crate::http::extract::Language;
use crate::state::AppState;

/// Scripts, styles and sockets from this origin only; lot images from
/// anywhere secure. Framed only by the stream's seller's allowed origins.
const PAGE_CSP: &str = "default-src 'self'; img-src 'self' https: data:; connect-src 'self'; \
                        object-src 'none'; base-uri 'none'; form-action 'self'";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/watch/{id}", get(watch))
        .route("/assets/{name}", get(asset))
}

/// The viewer page, in the viewer's language. Its buy button must not be
/// clickjacked: only the seller's allowed widget origins may frame it
/// (nobody when it has none, or the stream is unknown — the page itself
/// says so).
async fn watch(State(s): State<AppState>, language: Language, Path(raw): Path<String>) -> Result<Response, ApiError> {
    let stream = StreamId::parse(&raw).map_err(|_| ApiError::NotFound("stream"))?;
    let (ancestors, seller_locale) = match s.streams.stream_seller(&stream).await {
        Ok(seller) => (
            s.sellers
                .frame_ancestors(seller.as_str())
                .await
                .map_err(|e| ApiError::Unavailable(Box::new(e)))?,
            Language::seller_default(&s, seller.as_str()).await,
        ),
        Err(streams::service::Error::NotFound(_)) => ("'none'".to_owned(), widget::Locale::default()),
        Err(e) => return Err(e.into()),
    };
    let csp = HeaderValue::from_str(&format!("{PAGE_CSP}; frame-ancestors {ancestors}")).map_err(ApiError::internal)?;
    let locale = language.choose(None, seller_locale);
    let mut resp = widget::watch_page(locale).into_response();
    let h = resp.headers_mut();
    speaks(h, locale);
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CONTENT_SECURITY_POLICY, csp);
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("strict-origin-when-cross-origin"),
    );
    Ok(resp)
}

/// Says which language a page speaks, and that it follows the browser's.
pub fn speaks(h: &mut axum::http::HeaderMap, locale: widget::Locale) {
    h.insert(header::CONTENT_LANGUAGE, HeaderValue::from_static(locale.tag()));
    h.insert(header::VARY, HeaderValue::from_static("Accept-Language"));
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
