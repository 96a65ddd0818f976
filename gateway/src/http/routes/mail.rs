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
use crate::http::extract::{Json, Language, Seller};
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

/// A kind's template: the seller's own (for every language), or the
/// default in the seller's default language (each buyer gets the default
/// in the language they paid in).
async fn view(s: &AppState, seller: &str, kind: &'static str) -> Result<Value, ApiError> {
    let locale = Language::seller_default(s, seller).await;
    let (subject, body) = mail::default_template(kind, locale).ok_or(ApiError::NotFound("mail template"))?;
    let own = s.payments.mail_template(seller, kind).await?;
    let custom = own.is_some();
    let (subject, body) = own.unwrap_or((subject.to_owned(), body.to_owned()));
    Ok(json!({ "kind": kind, "subject": subject, "body": body, "custom": custom, "locale": locale }))
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
    /// The email's language (not signed: it only changes the words).
    #[serde(default)]
    lang: Option<String>,
}

use widget::locale::escape_html as escape;
use widget::Locale;

/// Whether the link is one Haul signed (compared in constant time).
fn signed(s: &AppState, o: &OptOut) -> bool {
    let want = opt_out_signature(s.token_secret.expose_secret(), &o.seller, &o.email);
    want.len() == o.sig.len() && want.bytes().zip(o.sig.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
}

fn page(status: StatusCode, l: Locale, body: String) -> Response {
    (
        status,
        [
            (header::CONTENT_SECURITY_POLICY, "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'"),
            (header::CACHE_CONTROL, "no-store"),
            (header::CONTENT_LANGUAGE, l.tag()),
        ],
        Html(format!(
            "<!doctype html><html lang=\"{lang}\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{title}</title></head><body style=\"font-family:system-ui,sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem\">{body}</body></html>",
            lang = l.tag(),
            title = escape(l.text("optout.title")),
        )),
    )
        .into_response()
}

fn not_signed(l: Locale) -> Response {
    page(
        StatusCode::BAD_REQUEST,
        l,
        format!(
            "<h1>{}</h1><p>{}</p>",
            escape(l.text("optout.invalid")),
            escape(l.text("optout.invalid_text"))
        ),
    )
}

/// The language of the opt-out pages: the email's (`lang` in its link),
/// else the browser's.
fn locale(language: &Language, lang: Option<&str>) -> Locale {
    language.choose(lang, Locale::default())
}

async fn opt_out_page(
    State(s): State<AppState>,
    language: Language,
    q: Result<Query<OptOut>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(Query(o)) = q else {
        return not_signed(locale(&language, None));
    };
    let l = locale(&language, o.lang.as_deref());
    if !signed(&s, &o) {
        return not_signed(l);
    }
    page(
        StatusCode::OK,
        l,
        format!(
            "<h1>{ask}</h1><p>{text}</p>\
             <form method=\"post\" action=\"/mail/opt-out\"><input type=\"hidden\" name=\"seller\" value=\"{seller}\">\
             <input type=\"hidden\" name=\"email\" value=\"{email}\"><input type=\"hidden\" name=\"sig\" value=\"{sig}\">\
             <input type=\"hidden\" name=\"lang\" value=\"{lang}\">\
             <button type=\"submit\" data-test=\"opt-out\">{stop}</button></form>",
            ask = escape(l.text("optout.ask")),
            text = escape(&l.fill("optout.ask_text", &[("email", &o.email)])),
            seller = escape(&o.seller),
            email = escape(&o.email),
            sig = escape(&o.sig),
            lang = l.tag(),
            stop = escape(l.text("optout.stop")),
        ),
    )
}

async fn opt_out(
    State(s): State<AppState>,
    language: Language,
    form: Result<Form<OptOut>, axum::extract::rejection::FormRejection>,
) -> Response {
    let Ok(Form(o)) = form else {
        return not_signed(locale(&language, None));
    };
    let l = locale(&language, o.lang.as_deref());
    if !signed(&s, &o) {
        return not_signed(l);
    }
    if let Err(e) = s.payments.mail_opt_out(&o.seller, &o.email).await {
        return ApiError::from(e).into_response();
    }
    page(
        StatusCode::OK,
        l,
        format!(
            "<h1>{}</h1><p>{}</p>",
            escape(l.text("optout.done")),
            escape(l.text("optout.done_text"))
        ),
    )
}
