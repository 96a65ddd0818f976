//! The sandbox acquirer's side: its hosted card page and the signed callbacks
//! it sends back to Haul over real HTTP, as an acquirer would. Test cards are
//! in [`payments::sandbox::TEST_CARDS`]. A card number is read from the form,
//! checked and dropped: it is never stored, logged or echoed.
//!
//! With `HAUL_SANDBOX_CHAOS` on, every callback is sent twice and the first
//! round in reverse order, so the exactly-once path runs on every payment.

use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Form, Router};
use payments::ids::AttemptId;
use payments::sandbox::{self, CardBehaviour};
use payments::state::AttemptState;
use payments::store::Attempt;
use serde::Deserialize;

use widget::locale::escape_html;
use widget::Locale;

use crate::adapters::sandbox::{queue_reports, Queued, Verdict};
use crate::http::extract::{ClientAddr, Language};
use crate::state::AppState;

/// Only this origin's forms, no scripts; framed only by Haul's checkout page
/// and, around it, the seller's allowed origins.
const PAGE_CSP: &str = "default-src 'none'; form-action 'self'; base-uri 'none'";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/sandbox/pay/{attempt}", get(card_page).post(pay))
        .route("/sandbox/challenge/{attempt}", axum::routing::post(challenge))
}

fn page(status: StatusCode, l: Locale, title: &str, body: &str) -> Response {
    page_framed(status, l, title, body, "'self'")
}

/// A page of the sandbox in `l`; `title` is text, `body` HTML.
fn page_framed(status: StatusCode, l: Locale, title: &str, body: &str, ancestors: &str) -> Response {
    let (title, name) = (escape_html(title), escape_html(l.text("sandbox.name")));
    let html = format!(
        "<!doctype html><html lang=\"{lang}\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title} — {name}</title></head><body><main>\
         <p><strong>{name}</strong> — {banner}</p>\
         <h1>{title}</h1>{body}</main></body></html>",
        lang = l.tag(),
        banner = escape_html(l.text("sandbox.banner")),
    );
    let mut r = (status, Html(html)).into_response();
    let h = r.headers_mut();
    super::pages::speaks(h, l);
    if let Ok(v) = HeaderValue::from_str(&format!("{PAGE_CSP}; frame-ancestors {ancestors}")) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    r
}

/// The attempt's amount as the buyer's language writes it.
fn amount(l: Locale, a: &Attempt) -> String {
    let digits = streams::money::Currency::parse(&a.currency).map_or(2, |c| c.exponent());
    l.money(a.amount_minor, digits, &a.currency)
}

/// A paragraph of the words of `key`.
fn para(l: Locale, key: &str) -> String {
    format!("<p>{}</p>", escape_html(l.text(key)))
}

/// The language of an attempt's pages: the buyer's pick, the checkout's,
/// the browser's, the seller's default.
async fn locale_of(s: &AppState, language: &Language, raw: &str) -> Locale {
    let fallback = language.choose(None, Locale::default());
    let Ok(id) = AttemptId::parse(raw) else { return fallback };
    let Ok(Some(attempt)) = s.payments.store().attempt(&id).await else {
        return fallback;
    };
    let Ok(Some(order)) = s.payments.store().order(&attempt.order_id).await else {
        return fallback;
    };
    let recorded = match s.payments.session_of_order(order.id.as_str()).await {
        Ok(Some(cs)) => cs.locale,
        _ => None,
    };
    language.choose(recorded.as_deref(), Language::seller_default(s, &order.seller_id).await)
}

/// Who may frame the pages of an attempt: Haul itself and the seller's origins.
async fn ancestors(s: &AppState, attempt: &Attempt) -> String {
    let seller = match s.payments.store().order(&attempt.order_id).await {
        Ok(Some(o)) => o.seller_id,
        _ => return "'self'".into(),
    };
    match s.sellers.frame_ancestors(&seller).await {
        Ok(a) if a != "'none'" => format!("'self' {a}"),
        _ => "'self'".into(),
    }
}

/// A sandbox attempt that can still be paid, or the page that says why not.
async fn payable(s: &AppState, l: Locale, raw: &str) -> Result<Attempt, Response> {
    let not_found = || {
        page(
            StatusCode::NOT_FOUND,
            l,
            l.text("sandbox.no_payment"),
            &para(l, "sandbox.no_payment_text"),
        )
    };
    let id = AttemptId::parse(raw).map_err(|_| not_found())?;
    let attempt = match s.payments.store().attempt(&id).await {
        Ok(Some(a)) if a.acquirer == sandbox::ACQUIRER => a,
        Ok(_) => return Err(not_found()),
        Err(e) => {
            tracing::error!(error = ?e, "sandbox page: could not read the attempt");
            return Err(try_again(l));
        }
    };
    // Test cards pay test-mode orders only (an attempt made before modes
    // existed may belong to a live one).
    let live = match s.payments.store().order(&attempt.order_id).await {
        Ok(Some(o)) => s.payments.livemode(&o.seller_id).await.unwrap_or(true),
        _ => true,
    };
    if live {
        return Err(page(
            StatusCode::FORBIDDEN,
            l,
            l.text("sandbox.test_only"),
            &para(l, "sandbox.test_only_text"),
        ));
    }
    if attempt.state == AttemptState::Cancelled {
        return Err(page(
            StatusCode::CONFLICT,
            l,
            l.text("sandbox.cancelled"),
            &para(l, "sandbox.cancelled_text"),
        ));
    }
    if attempt.state.is_final() {
        let text = l.fill("sandbox.settled_text", &[("state", &attempt.state.to_string())]);
        return Err(page(
            StatusCode::CONFLICT,
            l,
            l.text("sandbox.settled"),
            &format!("<p>{}</p>", escape_html(&text)),
        ));
    }
    Ok(attempt)
}

/// The page of a moment's trouble.
fn try_again(l: Locale) -> Response {
    page(
        StatusCode::SERVICE_UNAVAILABLE,
        l,
        l.text("sandbox.try_again"),
        &para(l, "sandbox.try_again_text"),
    )
}

/// A form posted for a payable attempt, within the address's rate limit.
async fn submitted(s: &AppState, l: Locale, addr: std::net::IpAddr, raw: &str) -> Result<Attempt, Response> {
    s.limits.per_addr.check(&addr).map_err(IntoResponse::into_response)?;
    payable(s, l, raw).await
}

async fn card_page(State(s): State<AppState>, language: Language, Path(raw): Path<String>) -> Response {
    let l = locale_of(&s, &language, &raw).await;
    let attempt = match payable(&s, l, &raw).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let pay = l.fill("sandbox.pay", &[("amount", &amount(l, &attempt))]);
    let t = |key: &str| escape_html(l.text(key));
    page_framed(
        StatusCode::OK,
        l,
        &pay,
        &format!(
            "<form method=\"post\" action=\"/sandbox/pay/{id}\" autocomplete=\"off\">\
             <p><label>{number} <input name=\"number\" inputmode=\"numeric\" required></label></p>\
             <p><label>{expiry} <input name=\"expiry\" required></label></p>\
             <p><label>{cvc} <input name=\"cvc\" inputmode=\"numeric\" required></label></p>\
             <p><button type=\"submit\" data-test=\"sandbox-pay\">{pay}</button></p></form>{cards}",
            id = attempt.id,
            number = t("sandbox.card_number"),
            expiry = t("sandbox.expiry"),
            cvc = t("sandbox.cvc"),
            pay = escape_html(&pay),
            cards = para(l, "sandbox.test_cards"),
        ),
        &ancestors(&s, &attempt).await,
    )
}

#[derive(Deserialize)]
struct CardForm {
    number: String,
    expiry: String,
    cvc: String,
}

/// `MM/YY` not before the current month (`now_ms` is the server's clock).
fn expiry_ok(expiry: &str, now_ms: i64) -> bool {
    let Some((m, y)) = expiry.trim().split_once('/') else {
        return false;
    };
    let (Ok(m), Ok(y)) = (m.trim().parse::<i64>(), y.trim().parse::<i64>()) else {
        return false;
    };
    if !(1..=12).contains(&m) || !(0..=99).contains(&y) {
        return false;
    }
    // Months since 1970 of the card's expiry and of now.
    let card = (2000 + y - 1970) * 12 + (m - 1);
    let now_month = now_ms / 1000 / 86_400 * 12 / 365; // close enough for a sandbox
    card >= now_month
}

async fn pay(
    State(s): State<AppState>,
    ClientAddr(addr): ClientAddr,
    language: Language,
    Path(raw): Path<String>,
    Form(form): Form<CardForm>,
) -> Response {
    let l = locale_of(&s, &language, &raw).await;
    let attempt = match submitted(&s, l, addr, &raw).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let framed = ancestors(&s, &attempt).await;
    let retry = |key: &str| {
        page_framed(
            StatusCode::BAD_REQUEST,
            l,
            l.text("sandbox.check_card"),
            &format!(
                "{}<p><a href=\"/sandbox/pay/{}?lang={}\">{}</a></p>",
                para(l, key),
                attempt.id,
                l.tag(),
                escape_html(l.text("sandbox.try_again")),
            ),
            &framed,
        )
    };
    let Some(card) = sandbox::card_behaviour(&form.number) else {
        return retry("sandbox.bad_number");
    };
    if !expiry_ok(&form.expiry, s.payments.now()) {
        return retry("sandbox.bad_expiry");
    }
    if !(3..=4).contains(&form.cvc.len()) || !form.cvc.bytes().all(|b| b.is_ascii_digit()) {
        return retry("sandbox.bad_cvc");
    }
    // Recorded before the buyer hears anything; delivered from the record.
    let verdict = Verdict::Decide(sandbox::verdict(card));
    match queue_reports(&s, &attempt, sandbox::reports(card), verdict).await {
        Ok(Queued::Sent) => {}
        Ok(Queued::DecidedBefore(v)) => return decided_before(&s, l, &attempt, &v).await,
        Err(e) => {
            tracing::error!(error = %e, "the sandbox could not record its callbacks");
            return try_again(l);
        }
    }
    match card {
        CardBehaviour::Challenge => page_framed(
            StatusCode::OK,
            l,
            l.text("sandbox.challenge"),
            &format!(
                "{text}<form method=\"post\" action=\"/sandbox/challenge/{id}\">\
                 <button name=\"passed\" value=\"yes\">{confirm}</button> \
                 <button name=\"passed\" value=\"no\">{cancel}</button></form>",
                text = para(l, "sandbox.challenge_text"),
                id = attempt.id,
                confirm = escape_html(l.text("sandbox.confirm")),
                cancel = escape_html(l.text("sandbox.cancel")),
            ),
            &ancestors(&s, &attempt).await,
        ),
        _ => done(&s, l, &attempt, l.text("sandbox.sent")).await,
    }
}

/// The page after the sandbox answered: back to the checkout page the buyer
/// came from, where the result is read from Haul.
async fn done(s: &AppState, l: Locale, attempt: &Attempt, title: &str) -> Response {
    let session = s
        .payments
        .session_of_order(attempt.order_id.as_str())
        .await
        .ok()
        .flatten()
        .map(|cs| cs.id);
    let back = match &session {
        Some(id) => format!(
            "<p>{soon} <a data-test=\"return\" href=\"/checkout/{id}?return=1\">{back}</a></p>",
            soon = escape_html(l.text("sandbox.back_soon")),
            back = escape_html(l.text("sandbox.back")),
        ),
        None => String::new(),
    };
    let mut r = page_framed(
        StatusCode::OK,
        l,
        title,
        &format!("{}{back}", para(l, "sandbox.answered")),
        &ancestors(s, attempt).await,
    );
    // The buyer goes back by itself, as from a bank's page; the link stays
    // for a browser that does not follow `Refresh`.
    if let Some(id) = session {
        if let Ok(v) = HeaderValue::from_str(&format!("{RETURN_AFTER_SECS}; url=/checkout/{id}?return=1")) {
            r.headers_mut().insert("refresh", v);
        }
    }
    r
}

/// How long the sandbox's answer page shows before going back.
const RETURN_AFTER_SECS: u32 = 2;

#[derive(Deserialize)]
struct ChallengeForm {
    passed: String,
}

async fn challenge(
    State(s): State<AppState>,
    ClientAddr(addr): ClientAddr,
    language: Language,
    Path(raw): Path<String>,
    Form(form): Form<ChallengeForm>,
) -> Response {
    let l = locale_of(&s, &language, &raw).await;
    let attempt = match submitted(&s, l, addr, &raw).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let passed = form.passed == "yes";
    let answer = sandbox::after_challenge(passed);
    let verdict = Verdict::Advance {
        from: "requires_action",
        to: answer.0,
    };
    match queue_reports(&s, &attempt, vec![answer], verdict).await {
        Ok(Queued::Sent) => {
            let title = l.text(if passed {
                "sandbox.confirmed"
            } else {
                "sandbox.declined_by_buyer"
            });
            done(&s, l, &attempt, title).await
        }
        Ok(Queued::DecidedBefore(v)) => decided_before(&s, l, &attempt, &v).await,
        Err(e) => {
            tracing::error!(error = %e, "the sandbox could not record its callbacks");
            try_again(l)
        }
    }
}

/// The page for a payment the sandbox had decided before this submit: a
/// second submit of a paid one, or one cancelled because a newer payment
/// was started for the order (nothing is charged for it).
async fn decided_before(s: &AppState, l: Locale, attempt: &Attempt, verdict: &str) -> Response {
    if verdict == "cancelled" {
        return page_framed(
            StatusCode::CONFLICT,
            l,
            l.text("sandbox.cancelled"),
            &para(l, "sandbox.cancelled_text"),
            &ancestors(s, attempt).await,
        );
    }
    done(s, l, attempt, l.text("sandbox.answered_before")).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use payments::state::AttemptState;

    #[test]
    fn expiry_dates_are_checked_against_the_clock() {
        // 2026-11-24 in ms.
        let now = 1_795_500_000_000;
        assert!(expiry_ok("12/30", now));
        assert!(expiry_ok(" 11 / 27 ", now));
        assert!(!expiry_ok("01/20", now));
        assert!(!expiry_ok("13/30", now));
        assert!(!expiry_ok("1230", now));
        assert!(!expiry_ok("ab/cd", now));
    }

    #[test]
    fn a_challenge_needs_an_answer_and_no_answer_sends_nothing() {
        assert_eq!(sandbox::reports(CardBehaviour::NoAnswer), vec![]);
        assert_eq!(
            sandbox::reports(CardBehaviour::Challenge).last(),
            Some(&("requires_action", None))
        );
        // The statuses are the attempt states' names.
        for (status, _) in sandbox::reports(CardBehaviour::Succeeds) {
            assert!(AttemptState::parse(status).is_some(), "{status}");
        }
    }
}
