//! The checkout page behind a session's `url`, and the seller's widget
//! origins: the sites allowed to frame it (`Content-Security-Policy:
//! frame-ancestors`) and to be told the outcome (`postMessage` with that
//! exact target origin).

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::Router;
use payments::checkout;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::http::error::ApiError;
use crate::http::extract::{Json, Language, Seller};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/widget-origins", put(set_origins).get(get_origins))
        .route("/v1/checkout/sessions/{id}/status", get(status))
        .route("/checkout/{id}", get(page))
        .route("/yookassa/confirm/{attempt}", get(yookassa_confirm))
        .route("/widget.js", get(widget_js))
}

type Answer = Result<(StatusCode, axum::Json<Value>), ApiError>;

fn unavailable(e: impl std::error::Error + Send + Sync + 'static) -> ApiError {
    ApiError::Unavailable(Box::new(e))
}

async fn origins_of(s: &AppState, seller: &str) -> Result<Vec<String>, ApiError> {
    s.sellers.widget_origins(seller).await.map_err(unavailable)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Origins {
    origins: Vec<String>,
}

async fn set_origins(State(s): State<AppState>, Seller(seller): Seller, Json(body): Json<Origins>) -> Answer {
    let origins = crate::sellers::checked_origins(&body.origins)
        .map_err(|(field, message)| ApiError::InvalidPath { field, message })?;
    s.sellers
        .set_widget_origins(&seller, &origins)
        .await
        .map_err(unavailable)?;
    Ok((StatusCode::OK, axum::Json(json!({ "origins": origins }))))
}

async fn get_origins(State(s): State<AppState>, Seller(seller): Seller) -> Answer {
    Ok((
        StatusCode::OK,
        axum::Json(json!({ "origins": origins_of(&s, seller.as_str()).await? })),
    ))
}

/// What the checkout page shows, by session id (no personal data). The
/// state is read from the server, never taken from a redirect. The widget
/// on the shop's page reads it too (any origin: the session id is the
/// capability), to say when the page's origin is not allowed and to follow
/// a payment the buyer closed the checkout on.
async fn status(State(s): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let (seller, session) = s.payments.session_by_id(&id).await?;
    let order = s.payments.session_order(&session).await?;
    let state = order.state;
    // A stream purchase is paid from Haul's own viewer page, which is the
    // only page that hears the outcome.
    let stream = order.hold_id.is_some();
    let origins = if stream {
        Vec::new()
    } else {
        origins_of(&s, &seller).await?
    };
    let live = s.payments.livemode(&seller).await?;
    // A payment started at a bank (or the sandbox) that has not answered
    // yet: the order may still be `created` while the buyer pays.
    let paying = s
        .payments
        .store()
        .attempts(&order.id)
        .await
        .map_err(unavailable)?
        .iter()
        .any(|a| !a.state.is_final());
    let body = axum::Json(json!({
        "id": session.id,
        "paying": paying,
        "livemode": live,
        "state": state,
        "amount_minor": order.amount_minor,
        "currency": order.currency,
        "items": session.items,
        "success_url": session.success_url,
        "cancel_url": session.cancel_url,
        "origins": origins,
        "stream": stream,
        "acquirers": s.payments.offered(&seller, &order.currency).await?,
        // Whether the receipt has the buyer's contact (else the page asks).
        "has_contact": session.customer_email.is_some() || session.customer_phone.is_some(),
        // Whether the buyer's details are asked before paying, and given
        // (what they are: GET …/details, from this origin only).
        "details_asked": session.ask.as_ref().is_some_and(payments::details::Ask::asks),
        "details_given": session.buyer.is_some(),
    }));
    Ok(([(header::ACCESS_CONTROL_ALLOW_ORIGIN, "*")], body).into_response())
}

/// The one script a seller pastes; any site may load it.
async fn widget_js() -> Response {
    let mut r = widget::WIDGET_JS.into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/javascript; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=300"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert("cross-origin-resource-policy", HeaderValue::from_static("cross-origin"));
    r
}

/// Who may frame the page of an order's payment: a stream purchase's only
/// Haul's viewer page, else the seller's origins.
async fn order_ancestors(s: &AppState, seller: &str, stream: bool) -> Result<String, ApiError> {
    if stream {
        Ok("'self'".to_owned())
    } else {
        s.sellers.frame_ancestors(seller).await.map_err(unavailable)
    }
}

/// The checkout page, in the buyer's language. Only the seller's origins
/// may frame it.
async fn page(State(s): State<AppState>, language: Language, Path(id): Path<String>) -> Response {
    let (seller, session) = match s.payments.session_by_id(&id).await {
        Ok(found) => found,
        Err(e) => return ApiError::from(e).into_response(),
    };
    // A stream purchase's page is framed by Haul's viewer page only.
    let stream = match checkout::order_id(&session) {
        Some(oid) => match s.payments.store().order(&oid).await {
            Ok(o) => o.is_some_and(|o| o.hold_id.is_some()),
            Err(e) => return unavailable(e).into_response(),
        },
        None => false,
    };
    let ancestors = match order_ancestors(&s, &seller, stream).await {
        Ok(a) => a,
        Err(e) => return e.into_response(),
    };
    let csp = format!(
        "default-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; \
         form-action 'self'; frame-ancestors {ancestors}"
    );
    let locale = language.choose(session.locale.as_deref(), Language::seller_default(&s, &seller).await);
    html_page(widget::checkout_page(locale), &csp, locale)
}

#[derive(Deserialize)]
struct ConfirmQuery {
    #[serde(default)]
    token: String,
}

/// YooKassa's embedded confirmation of one attempt: YooKassa's own form
/// (its script, from its origin) with the payment's one-time token, framed
/// like the checkout page it came from, returning to it.
async fn yookassa_confirm(
    State(s): State<AppState>,
    language: Language,
    Path(raw): Path<String>,
    Query(q): Query<ConfirmQuery>,
) -> Response {
    let token_ok = !q.token.is_empty()
        && q.token.len() <= 200
        && q.token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !token_ok {
        return ApiError::InvalidField {
            field: "token",
            message: "YooKassa's confirmation token: letters, digits, `-`, `_`".into(),
        }
        .into_response();
    }
    let Ok(id) = payments::ids::AttemptId::parse(&raw) else {
        return ApiError::NotFound("payment").into_response();
    };
    let attempt = match s.payments.store().attempt(&id).await {
        Ok(Some(a)) if a.acquirer == payments::acquirers::yookassa::ACQUIRER && !a.state.is_final() => a,
        Ok(_) => return ApiError::NotFound("payment").into_response(),
        Err(e) => return unavailable(e).into_response(),
    };
    let order = match s.payments.store().order(&attempt.order_id).await {
        Ok(Some(o)) => o,
        Ok(None) => return ApiError::NotFound("payment").into_response(),
        Err(e) => return unavailable(e).into_response(),
    };
    let session = match s.payments.session_of_order(order.id.as_str()).await {
        Ok(cs) => cs,
        Err(e) => return ApiError::from(e).into_response(),
    };
    let back = match &session {
        Some(cs) => format!("{}/checkout/{}?return=1", s.public_url, cs.id),
        None => s.public_url.clone(),
    };
    let ancestors = match order_ancestors(&s, &order.seller_id, order.hold_id.is_some()).await {
        Ok(a) => a,
        Err(e) => return e.into_response(),
    };
    let csp = format!(
        "default-src 'self'; script-src 'self' https://yookassa.ru; \
         style-src 'self' 'unsafe-inline' https://yookassa.ru; img-src 'self' https: data:; \
         connect-src 'self' https://yookassa.ru https://*.yookassa.ru; \
         frame-src https://yookassa.ru https://*.yookassa.ru https://yoomoney.ru https://*.yoomoney.ru; \
         object-src 'none'; base-uri 'none'; form-action 'self' https://yoomoney.ru https://*.yoomoney.ru; \
         frame-ancestors {ancestors}"
    );
    let locale = language.choose(
        session.as_ref().and_then(|cs| cs.locale.as_deref()),
        Language::seller_default(&s, &order.seller_id).await,
    );
    html_page(
        widget::yookassa_page(locale).replace("__RETURN__", &widget::locale::escape_html(&back)),
        &csp,
        locale,
    )
}

/// A checkout page: never cached, never sniffed, no referrer, under `csp`.
fn html_page(html: String, csp: &str, locale: widget::Locale) -> Response {
    let mut r = html.into_response();
    let h = r.headers_mut();
    super::pages::speaks(h, locale);
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    if let Ok(v) = HeaderValue::from_str(csp) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    r
}

#[cfg(test)]
mod tests {
    use crate::sellers::parse_origin;

    #[test]
    fn origins_are_scheme_host_and_port_only() {
        assert_eq!(parse_origin("https://shop.example").unwrap(), "https://shop.example");
        assert_eq!(parse_origin("http://localhost:3000").unwrap(), "http://localhost:3000");
        assert_eq!(parse_origin("HTTPS://Shop.Example").unwrap(), "https://shop.example");
        for bad in [
            "https://shop.example/",
            "https://shop.example/path",
            "ftp://x.example",
            "https://u:p@x.example",
            "shop.example",
            "https://x.example?q=1",
        ] {
            assert!(parse_origin(bad).is_err(), "{bad}");
        }
    }
}
