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

use crate::adapters::sandbox::{queue_reports, Queued, Verdict};
use crate::http::extract::ClientAddr;
use crate::state::AppState;

/// Only this origin's forms, no scripts; framed only by Haul's checkout page
/// and, around it, the seller's allowed origins.
const PAGE_CSP: &str = "default-src 'none'; form-action 'self'; base-uri 'none'";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/sandbox/pay/{attempt}", get(card_page).post(pay))
        .route("/sandbox/challenge/{attempt}", axum::routing::post(challenge))
}

fn page(status: StatusCode, title: &str, body: &str) -> Response {
    page_framed(status, title, body, "'self'")
}

fn page_framed(status: StatusCode, title: &str, body: &str, ancestors: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title} — Haul sandbox</title></head><body><main>\
         <p><strong>Haul sandbox</strong> — test mode, no real money moves.</p>\
         <h1>{title}</h1>{body}</main></body></html>"
    );
    let mut r = (status, Html(html)).into_response();
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&format!("{PAGE_CSP}; frame-ancestors {ancestors}")) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    r
}

fn amount(a: &Attempt) -> String {
    // Display only; every supported currency here has two minor digits or none.
    format!("{}.{:02} {}", a.amount_minor / 100, a.amount_minor % 100, a.currency)
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
async fn payable(s: &AppState, raw: &str) -> Result<Attempt, Response> {
    let not_found = || {
        page(
            StatusCode::NOT_FOUND,
            "No such payment",
            "<p>This payment does not exist.</p>",
        )
    };
    let id = AttemptId::parse(raw).map_err(|_| not_found())?;
    let attempt = match s.payments.store().attempt(&id).await {
        Ok(Some(a)) if a.acquirer == sandbox::ACQUIRER => a,
        Ok(_) => return Err(not_found()),
        Err(e) => {
            tracing::error!(error = ?e, "sandbox page: could not read the attempt");
            return Err(page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Try again",
                "<p>Please try again.</p>",
            ));
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
            "Test mode only",
            "<p>The sandbox takes test-mode payments only; this is a live order.</p>",
        ));
    }
    if attempt.state == AttemptState::Cancelled {
        return Err(page(StatusCode::CONFLICT, "Payment cancelled", CANCELLED));
    }
    if attempt.state.is_final() {
        return Err(page(
            StatusCode::CONFLICT,
            "Already settled",
            &format!("<p>This payment is already {}.</p>", attempt.state),
        ));
    }
    Ok(attempt)
}

/// A form posted for a payable attempt, within the address's rate limit.
async fn submitted(s: &AppState, addr: std::net::IpAddr, raw: &str) -> Result<Attempt, Response> {
    s.limits.per_addr.check(&addr).map_err(IntoResponse::into_response)?;
    payable(s, raw).await
}

async fn card_page(State(s): State<AppState>, Path(raw): Path<String>) -> Response {
    let attempt = match payable(&s, &raw).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    page_framed(
        StatusCode::OK,
        &format!("Pay {}", amount(&attempt)),
        &format!(
            "<form method=\"post\" action=\"/sandbox/pay/{id}\" autocomplete=\"off\">\
             <p><label>Card number <input name=\"number\" inputmode=\"numeric\" required></label></p>\
             <p><label>Expiry (MM/YY) <input name=\"expiry\" required></label></p>\
             <p><label>CVC <input name=\"cvc\" inputmode=\"numeric\" required></label></p>\
             <p><button type=\"submit\">Pay {amount}</button></p></form>\
             <p>Test cards: 4242 4242 4242 4242 pays; 4000 0000 0000 0002 is declined; \
             4000 0000 0000 9995 has insufficient funds; 4000 0000 0000 3220 asks for 3-D Secure; \
             4000 0000 0000 0119 is paid but never called back (reconciliation finds it). Any future expiry, any CVC.</p>",
            id = attempt.id,
            amount = amount(&attempt),
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
    Path(raw): Path<String>,
    Form(form): Form<CardForm>,
) -> Response {
    let attempt = match submitted(&s, addr, &raw).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let framed = ancestors(&s, &attempt).await;
    let retry = |msg: &str| {
        page_framed(
            StatusCode::BAD_REQUEST,
            "Check the card",
            &format!(
                "<p>{msg}</p><p><a href=\"/sandbox/pay/{}\">Try again</a></p>",
                attempt.id
            ),
            &framed,
        )
    };
    let Some(card) = sandbox::card_behaviour(&form.number) else {
        return retry("The card number is not valid.");
    };
    if !expiry_ok(&form.expiry, s.payments.now()) {
        return retry("The expiry date is not valid or has passed.");
    }
    if !(3..=4).contains(&form.cvc.len()) || !form.cvc.bytes().all(|b| b.is_ascii_digit()) {
        return retry("The CVC is 3 or 4 digits.");
    }
    // Recorded before the buyer hears anything; delivered from the record.
    let verdict = Verdict::Decide(sandbox::verdict(card));
    match queue_reports(&s, &attempt, sandbox::reports(card), verdict).await {
        Ok(Queued::Sent) => {}
        Ok(Queued::DecidedBefore(v)) => return decided_before(&s, &attempt, &v).await,
        Err(e) => {
            tracing::error!(error = %e, "the sandbox could not record its callbacks");
            return page(StatusCode::SERVICE_UNAVAILABLE, "Try again", "<p>Please try again.</p>");
        }
    }
    match card {
        CardBehaviour::Challenge => page_framed(
            StatusCode::OK,
            "3-D Secure",
            &format!(
                "<p>Your bank asks you to confirm this payment.</p>\
                 <form method=\"post\" action=\"/sandbox/challenge/{id}\">\
                 <button name=\"passed\" value=\"yes\">Confirm</button> \
                 <button name=\"passed\" value=\"no\">Cancel</button></form>",
                id = attempt.id
            ),
            &ancestors(&s, &attempt).await,
        ),
        _ => done(&s, &attempt, "Payment sent").await,
    }
}

/// The page after the sandbox answered: back to the checkout page the buyer
/// came from, where the result is read from Haul.
async fn done(s: &AppState, attempt: &Attempt, title: &str) -> Response {
    let session = s
        .payments
        .session_of_order(attempt.order_id.as_str())
        .await
        .ok()
        .flatten()
        .map(|cs| cs.id);
    let back = match &session {
        Some(id) => format!(
            "<p>Back to the checkout in a moment… \
             <a data-test=\"return\" href=\"/checkout/{id}?return=1\">Return to the checkout</a></p>"
        ),
        None => String::new(),
    };
    let mut r = page_framed(
        StatusCode::OK,
        title,
        &format!("<p>The sandbox has answered; the shop reads the result from Haul.</p>{back}"),
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
    Path(raw): Path<String>,
    Form(form): Form<ChallengeForm>,
) -> Response {
    let attempt = match submitted(&s, addr, &raw).await {
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
        Ok(Queued::Sent) => done(&s, &attempt, if passed { "Confirmed" } else { "Cancelled" }).await,
        Ok(Queued::DecidedBefore(v)) => decided_before(&s, &attempt, &v).await,
        Err(e) => {
            tracing::error!(error = %e, "the sandbox could not record its callbacks");
            page(StatusCode::SERVICE_UNAVAILABLE, "Try again", "<p>Please try again.</p>")
        }
    }
}

/// What the page of a cancelled payment says.
const CANCELLED: &str = "<p>This payment was cancelled (a newer payment was started for the order) \
     and nothing was charged. Pay from the checkout page.</p>";

/// The page for a payment the sandbox had decided before this submit: a
/// second submit of a paid one, or one cancelled because a newer payment
/// was started for the order (nothing is charged for it).
async fn decided_before(s: &AppState, attempt: &Attempt, verdict: &str) -> Response {
    if verdict == "cancelled" {
        return page_framed(
            StatusCode::CONFLICT,
            "Payment cancelled",
            CANCELLED,
            &ancestors(s, attempt).await,
        );
    }
    done(s, attempt, "Already answered").await
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
