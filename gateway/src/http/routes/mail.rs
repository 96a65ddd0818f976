//! Buyers' emails, the seller's side (`/v1/mail-templates`: each kind's
//! subject and body, the default until the seller sets its own) and the
//! buyer's (`/mail/opt-out`: the signed link in every email; a page that
//! asks, and a form that does it, so a link scanner opening the URL opts
//! no one out).

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Form, Router};
use payments::mail;
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::adapters::mail::opt_out_signature;
use crate::http::error::ApiError;
use crate::http::extract::{Json, Seller};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/mail-templates", get(list))
        .route("/v1/mail-templates/{kind}", axum::routing::put(set).delete(reset))
        .route("/mail/opt-out", get(opt_out_page).post(opt_out))
}

type Answer = Result<(StatusCode, axum::Json<Value>), ApiError>;

fn kind_of(raw: &str) -> Result<&'static str, ApiError> {
    mail::KINDS
        .iter()
        .map(|(_, k)| *k)
        .find(|k| *k == raw)
        .ok_or(ApiError::NotFound("mail template"))
}

async fn view(s: &AppState, seller: &str, kind: &'static str) -> Result<Value, ApiError> {
    let (subject, body) = mail::default_template(kind).ok_or(ApiError::NotFound("mail template"))?;
    let own = s.payments.mail_template(seller, kind).await?;
    let custom = own.is_some();
    let (subject, body) = own.unwrap_or((subject.to_owned(), body.to_owned()));
    Ok(json!({ "kind": kind, "subject": subject, "body": body, "custom": custom }))
}

async fn list(State(s): State<AppState>, Seller(seller): Seller) -> Answer {
    let mut data = Vec::new();
    for (_, kind) in mail::KINDS {
        data.push(view(&s, seller.as_str(), kind).await?);
    }
    Ok((
        StatusCode::OK,
        axum::Json(json!({ "data": data, "placeholders": mail::PLACEHOLDERS })),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Template {
    subject: String,
    body: String,
}

async fn set(
    State(s): State<AppState>,
    Seller(seller): Seller,
    Path(raw): Path<String>,
    Json(t): Json<Template>,
) -> Answer {
    let kind = kind_of(&raw)?;
    mail::check_template(&t.subject, &t.body).map_err(|(field, message)| ApiError::InvalidField { field, message })?;
    s.payments
        .set_mail_template(seller.as_str(), kind, Some((&t.subject, &t.body)))
        .await?;
    Ok((StatusCode::OK, axum::Json(view(&s, seller.as_str(), kind).await?)))
}

/// Back to the default.
async fn reset(State(s): State<AppState>, Seller(seller): Seller, Path(raw): Path<String>) -> Answer {
    let kind = kind_of(&raw)?;
    s.payments.set_mail_template(seller.as_str(), kind, None).await?;
    Ok((StatusCode::OK, axum::Json(view(&s, seller.as_str(), kind).await?)))
}

#[derive(Debug, Deserialize)]
struct OptOut {
    seller: String,
    email: String,
    sig: String,
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// Whether the link is one Haul signed (compared in constant time).
fn signed(s: &AppState, o: &OptOut) -> bool {
    let want = opt_out_signature(s.token_secret.expose_secret(), &o.seller, &o.email);
    want.len() == o.sig.len() && want.bytes().zip(o.sig.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
}

fn page(status: StatusCode, body: String) -> Response {
    (
        status,
        [
            (header::CONTENT_SECURITY_POLICY, "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        Html(format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>Emails</title></head><body style=\"font-family:system-ui,sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem\">{body}</body></html>"
        )),
    )
        .into_response()
}

fn not_signed() -> Response {
    page(
        StatusCode::BAD_REQUEST,
        "<h1>This link is not valid</h1><p>Use the link in the email as it came.</p>".into(),
    )
}

async fn opt_out_page(
    State(s): State<AppState>,
    q: Result<Query<OptOut>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(Query(o)) = q else { return not_signed() };
    if !signed(&s, &o) {
        return not_signed();
    }
    page(
        StatusCode::OK,
        format!(
            "<h1>Stop these emails?</h1><p>{} will get no more emails about orders from this shop.</p>\
             <form method=\"post\" action=\"/mail/opt-out\"><input type=\"hidden\" name=\"seller\" value=\"{}\">\
             <input type=\"hidden\" name=\"email\" value=\"{}\"><input type=\"hidden\" name=\"sig\" value=\"{}\">\
             <button type=\"submit\" data-test=\"opt-out\">Stop emails</button></form>",
            escape(&o.email),
            escape(&o.seller),
            escape(&o.email),
            escape(&o.sig)
        ),
    )
}

async fn opt_out(
    State(s): State<AppState>,
    form: Result<Form<OptOut>, axum::extract::rejection::FormRejection>,
) -> Response {
    let Ok(Form(o)) = form else { return not_signed() };
    if !signed(&s, &o) {
        return not_signed();
    }
    if let Err(e) = s.payments.mail_opt_out(&o.seller, &o.email).await {
        return ApiError::from(e).into_response();
    }
    page(
        StatusCode::OK,
        "<h1>Done</h1><p>No more emails from this shop will come to this address.</p>".into(),
    )
}
