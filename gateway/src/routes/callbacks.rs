//! Inbound acquirer callbacks. Each is verified on its raw body before
//! anything is parsed, then applied exactly once by the payments store (the
//! inbox row and the state change in one transaction). Refusals are logged
//! with their reason and change nothing.
//!
//! The sandbox acquirer expects 200 to stop retrying: duplicates and
//! callbacks the attempt has already moved past are answered 200 too (they
//! were received); a refused callback is 400; a store failure 503 (retry).

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use payments::accounts::Credentials;
use payments::acquirers::{Acquirer, Mapped, Payment};
use payments::sandbox;
use payments::state::OrderState;
use payments::store::{Callback, CallbackError, CallbackOutcome};
use serde_json::json;

use crate::app::AppState;
use crate::extract::ClientAddr;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/callbacks/sandbox", post(sandbox_callback))
        .route("/v1/callbacks/tbank", post(tbank_callback))
        .route(
            "/v1/callbacks/cloudpayments/{account}/{kind}",
            post(cloudpayments_callback),
        )
        .route("/v1/callbacks/yookassa/{account}", post(yookassa_callback))
        .route("/v1/callbacks/stripe/{account}", post(stripe_callback))
}

/// Applies a verified callback exactly once and what follows from it (the
/// hold sold or released); answers what it came to.
pub async fn apply(s: &AppState, callback: &Callback) -> Result<&'static str, CallbackError> {
    let outcome = s.payments.apply_callback(callback).await?;
    let word = match &outcome {
        CallbackOutcome::Applied { .. } => "applied",
        CallbackOutcome::Duplicate => "duplicate",
        CallbackOutcome::Ignored { .. } => "ignored",
    };
    tracing::info!(
        acquirer = %callback.acquirer,
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
                    super::orders::settle_paid(s, &attempt.order_id).await;
                } else {
                    super::orders::release_after_failure(s, &attempt.order_id).await;
                }
            }
        }
    }
    Ok(word)
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
    match apply(&s, &callback).await {
        Ok(word) => (StatusCode::OK, axum::Json(json!({ "received": true, "outcome": word }))).into_response(),
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

/// Why a bank's notification was not taken.
#[derive(Debug)]
pub enum Refusal {
    /// It is wrong and will stay wrong (logged, nothing changes).
    Bad(String),
    /// We could not take it now; the bank should send it again.
    Retry(String),
}

impl Refusal {
    /// Logged, then answered as text: 400 with the reason, or 503 (retry).
    fn plain(self, s: &AppState, acquirer: &str) -> Response {
        self.log(s, acquirer);
        match self {
            Refusal::Bad(why) => (StatusCode::BAD_REQUEST, why).into_response(),
            Refusal::Retry(why) => (StatusCode::SERVICE_UNAVAILABLE, why).into_response(),
        }
    }

    fn log(&self, s: &AppState, acquirer: &str) {
        match self {
            Refusal::Bad(reason) => {
                tracing::warn!(%acquirer, %reason, "notification refused");
                s.metrics.callback("refused");
            }
            Refusal::Retry(reason) => {
                tracing::error!(%acquirer, %reason, "notification not taken; the bank will retry");
                s.metrics.callback("error");
            }
        }
    }
}

/// Whether a bank's payment was made by Haul (it carries an attempt id):
/// the same account may take payments elsewhere too, and their
/// notifications are acknowledged and left alone.
fn ours(acquirer: &str, payment: &Payment) -> bool {
    let ours = payment
        .reference
        .as_deref()
        .is_some_and(|r| payments::ids::AttemptId::parse(r).is_ok());
    if !ours {
        tracing::info!(%acquirer, payment = %payment.payment_id, "not a Haul payment: acknowledged, left alone");
    }
    ours
}

/// The bank account a notification names (`account` is the bank's id of
/// it: terminal, site, shop).
async fn account_of(s: &AppState, acquirer: &str, account: &str) -> Result<Credentials, Refusal> {
    if account.is_empty() || account.len() > 64 {
        return Err(Refusal::Bad(format!("unknown {acquirer} account")));
    }
    match payments::accounts::by_bank_account(&s.pool, &s.vault, acquirer, account).await {
        Ok(Some(c)) => Ok(c),
        Ok(None) => Err(Refusal::Bad(format!("unknown {acquirer} account {account:?}"))),
        Err(e) => Err(Refusal::Retry(format!("could not read the account: {e}"))),
    }
}

/// The attempt a verified notification is about; it must have gone to this
/// very bank account.
async fn attempt_of(s: &AppState, creds: &Credentials, payment: &Payment) -> Result<payments::store::Attempt, Refusal> {
    let reference = payment.reference.as_deref().unwrap_or_default();
    let unknown = || Refusal::Bad(format!("unknown order reference {reference:?}"));
    let attempt_id = payments::ids::AttemptId::parse(reference).map_err(|_| unknown())?;
    let attempt = match s.payments.attempt(&attempt_id).await {
        Ok(Some(a)) => a,
        Ok(None) => return Err(unknown()),
        Err(e) => return Err(Refusal::Retry(format!("could not read the attempt: {e}"))),
    };
    if attempt.account_id.as_deref() != Some(creds.account.id.as_str()) {
        return Err(Refusal::Bad("the payment was not made with this bank account".into()));
    }
    Ok(attempt)
}

/// Takes a verified bank report of a payment: checks it is this account's
/// attempt (and, where the bank names its payment as creation did, that
/// very payment), captures it where the bank wants that,
/// and applies its status exactly once (deduplicated per payment and
/// status, with reconciliation's polls too).
pub async fn follow(
    s: &AppState,
    creds: &Credentials,
    bank: &dyn Acquirer,
    payment: &Payment,
) -> Result<&'static str, Refusal> {
    let attempt = attempt_of(s, creds, payment).await?;
    let created_as = payment.created_as.as_deref();
    match (attempt.acquirer_ref.as_deref(), created_as) {
        (Some(ours), Some(theirs)) if ours != theirs => {
            return Err(Refusal::Bad("the payment id does not match the attempt".into()));
        }
        (Some(_), _) => {}
        // Creation had no clear answer, yet the bank made the payment: follow it.
        (None, _) => {
            let made = created_as.unwrap_or(&payment.payment_id);
            if let Err(e) = s
                .payments
                .set_started(&attempt.id, Some(&creds.account.id), made, s.streams.now())
                .await
            {
                return Err(Refusal::Retry(format!("not stored: {e}")));
            }
        }
    }
    let mut payment = payment.clone();
    if bank
        .capture(&payment, attempt.amount_minor, &attempt.currency)
        .is_some()
    {
        payment = capture_or_void(s, bank, &attempt, &payment)
            .await
            .map_err(Refusal::Retry)?;
    }
    let state = match bank.map_status(&payment.status) {
        Mapped::State(st) => st,
        Mapped::Unknown => {
            tracing::warn!(acquirer = bank.name(), status = %payment.status, attempt = %attempt.id, "unknown bank status: left for reconciliation");
            return Ok("unknown");
        }
    };
    let callback = Callback {
        acquirer: bank.name().into(),
        // Banks give no notification id that polls share: one payment
        // reports each status once.
        callback_id: format!("{}:{}", payment.payment_id, payment.status),
        attempt_id: attempt.id.clone(),
        amount_minor: payment.amount_minor.unwrap_or(attempt.amount_minor),
        currency: attempt.currency.clone(),
        state,
        at: s.streams.now(),
    };
    match apply(s, &callback).await {
        Ok(word) => Ok(word),
        Err(CallbackError::Store(e)) => Err(Refusal::Retry(format!("not stored: {e}"))),
        Err(e) => Err(Refusal::Bad(e.to_string())),
    }
}

/// An authorized payment waiting for capture: captured while its attempt
/// and order stand (the amount must be the attempt's), else let go, so no
/// money is taken for an order that is over; the payment as that left it.
pub async fn capture_or_void(
    s: &AppState,
    bank: &dyn Acquirer,
    attempt: &payments::store::Attempt,
    payment: &Payment,
) -> Result<Payment, String> {
    let order_over = match s.payments.order(&attempt.order_id).await {
        Ok(Some(o)) => o.state.is_final(),
        Ok(None) => true,
        Err(e) => return Err(format!("could not read the order: {e}")),
    };
    let wrong_amount = payment.amount_minor.is_some_and(|a| a != attempt.amount_minor);
    if attempt.state.is_final() || order_over || wrong_amount {
        tracing::warn!(attempt = %attempt.id, state = %attempt.state, order_over, wrong_amount, "an authorized payment is let go, not captured");
        return match payments::service::bank::void(&s.transport, bank, payment).await {
            Ok(p) => Ok(p.unwrap_or_else(|| payment.clone())),
            Err(e) => Err(format!("void failed: {e}")),
        };
    }
    match payments::service::bank::capture(&s.transport, bank, payment, attempt.amount_minor, &attempt.currency).await {
        Ok(p) => Ok(p.unwrap_or_else(|| payment.clone())),
        Err(e) => Err(format!("capture failed: {e}")),
    }
}

/// T-Bank's notifications: the terminal named in the body gives the
/// password its `Token` must verify under. T-Bank retries until it reads
/// `OK`: received notifications (applied, duplicate, already past) get
/// `OK`; refused ones a 400 with the reason, store failures a 503.
async fn tbank_callback(State(s): State<AppState>, body: Bytes) -> Response {
    use payments::acquirers::tbank;
    let outcome = async {
        let key = tbank::terminal_of(&body).map_err(|e| Refusal::Bad(e.to_string()))?;
        let creds = account_of(&s, tbank::ACQUIRER, &key).await?;
        let n = tbank::verify_notification(&body, &creds.secret).map_err(|e| Refusal::Bad(e.to_string()))?;
        let bank = payments::service::bank::adapter(&creds).map_err(|e| Refusal::Retry(e.to_string()))?;
        let payment = Payment {
            reference: Some(n.order_id.clone()),
            payment_id: n.payment_id.clone(),
            created_as: Some(n.payment_id.clone()),
            status: n.status.clone(),
            amount_minor: Some(n.amount_minor),
        };
        follow(&s, &creds, bank.as_ref(), &payment).await
    }
    .await;
    match outcome {
        Ok(_) => (StatusCode::OK, "OK").into_response(),
        Err(r) => r.plain(&s, tbank::ACQUIRER),
    }
}

/// CloudPayments' notifications, at the address set per kind in the
/// site's settings (`…/cloudpayments/{Public ID}/check|pay|fail|refund`).
/// The HMAC is checked on the raw body with the site's API secret. Answers
/// are `{"code":0}`; a refusal is another code (to a Check it stops the
/// payment): 10 unknown order, 12 wrong amount, 13 not accepted, 20 over.
/// A store failure is a 503, which CloudPayments retries.
async fn cloudpayments_callback(
    State(s): State<AppState>,
    Path((account, kind)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    use payments::acquirers::cloudpayments::{self as cp, Kind};
    let code = |c: i64| (StatusCode::OK, axum::Json(json!({ "code": c }))).into_response();
    let Some(kind) = Kind::parse(&kind) else {
        Refusal::Bad(format!("no notification kind {kind:?}")).log(&s, cp::ACQUIRER);
        return (StatusCode::NOT_FOUND, axum::Json(json!({ "code": cp::CHECK_REFUSED }))).into_response();
    };
    let outcome: Result<i64, (i64, Refusal)> = async {
        let refused = |c: i64| move |r: Refusal| (c, r);
        let creds = account_of(&s, cp::ACQUIRER, &account)
            .await
            .map_err(refused(cp::CHECK_REFUSED))?;
        let signatures: Vec<&str> = ["content-hmac", "x-content-hmac"]
            .iter()
            .filter_map(|h| headers.get(*h).and_then(|v| v.to_str().ok()))
            .collect();
        let n = cp::verify_notification(kind, &body, &signatures, &creds.secret)
            .map_err(|e| (cp::CHECK_REFUSED, Refusal::Bad(e.to_string())))?;
        let bank = payments::service::bank::adapter(&creds).map_err(|e| (cp::CHECK_REFUSED, Refusal::Retry(e.to_string())))?;
        let payment = n.payment();
        match kind {
            Kind::Check => {
                let attempt = attempt_of(&s, &creds, &payment)
                    .await
                    .map_err(refused(cp::CHECK_UNKNOWN_INVOICE))?;
                let order_over = match s.payments.order(&attempt.order_id).await {
                    Ok(o) => o.is_none_or(|o| o.state.is_final()),
                    Err(e) => {
                        return Err((
                            cp::CHECK_REFUSED,
                            Refusal::Retry(format!("could not read the order: {e}")),
                        ))
                    }
                };
                if attempt.state.is_final() || order_over {
                    return Err((
                        cp::CHECK_EXPIRED,
                        Refusal::Bad(format!("the attempt is already {} (its order is over)", attempt.state)),
                    ));
                }
                if n.amount_minor != attempt.amount_minor || n.currency != attempt.currency {
                    return Err((
                        cp::CHECK_WRONG_AMOUNT,
                        Refusal::Bad("the amount differs from the attempt".into()),
                    ));
                }
                Ok(cp::CHECK_OK)
            }
            // Refunds are Haul's own doing and recorded when asked.
            Kind::Refund => {
                tracing::info!(transaction = %n.transaction_id, invoice = %n.invoice_id, "CloudPayments refund notification");
                Ok(cp::CHECK_OK)
            }
            Kind::Pay | Kind::Fail => follow(&s, &creds, bank.as_ref(), &payment)
                .await
                .map(|_| cp::CHECK_OK)
                .map_err(refused(cp::CHECK_REFUSED)),
        }
    }
    .await;
    match outcome {
        Ok(c) => code(c),
        Err((_, r @ Refusal::Retry(_))) => {
            r.log(&s, cp::ACQUIRER);
            (
                StatusCode::SERVICE_UNAVAILABLE,
                axum::Json(json!({ "code": cp::CHECK_REFUSED })),
            )
                .into_response()
        }
        Err((c, r)) => {
            r.log(&s, cp::ACQUIRER);
            code(c)
        }
    }
}

/// YooKassa's notifications (`…/yookassa/{shop id}`) are not signed: only
/// the object id is read from them, and the payment is fetched from the
/// API with the shop's key. With the shop's `sender_allow_list` setting,
/// only YooKassa's published networks may send them. A 200 acknowledges;
/// YooKassa retries other answers.
async fn yookassa_callback(
    State(s): State<AppState>,
    Path(account): Path<String>,
    ClientAddr(from): ClientAddr,
    body: Bytes,
) -> Response {
    use payments::acquirers::yookassa;
    let outcome = async {
        let creds = account_of(&s, yookassa::ACQUIRER, &account).await?;
        if creds.account.settings["sender_allow_list"].as_bool() == Some(true)
            && !yookassa::in_networks(from, yookassa::SENDER_NETWORKS)
        {
            return Err(Refusal::Bad(format!("{from} is not a YooKassa sender")));
        }
        let notice = yookassa::read_notification(&body).map_err(|e| Refusal::Bad(e.to_string()))?;
        if !notice.event.starts_with("payment.") {
            tracing::info!(event = %notice.event, object = %notice.object_id, "YooKassa notification acknowledged");
            return Ok("acknowledged");
        }
        let bank = payments::service::bank::adapter(&creds).map_err(|e| Refusal::Retry(e.to_string()))?;
        // The object as the API has it; the body is not trusted (our
        // attempt id is in what the API answers).
        let payment = match payments::service::bank::lookup(&s.transport, bank.as_ref(), "", &notice.object_id).await {
            Ok(payments::acquirers::Lookup::Found(p)) => p,
            Ok(payments::acquirers::Lookup::NotFound) => {
                return Err(Refusal::Bad(format!("YooKassa has no payment {:?}", notice.object_id)))
            }
            Err(e) => return Err(Refusal::Retry(format!("could not fetch the payment: {e}"))),
        };
        if !ours(yookassa::ACQUIRER, &payment) {
            return Ok("not_ours");
        }
        follow(&s, &creds, bank.as_ref(), &payment).await
    }
    .await;
    match outcome {
        Ok(_) => StatusCode::OK.into_response(),
        Err(r) => r.plain(&s, yookassa::ACQUIRER),
    }
}

/// Stripe's webhook endpoint for one account (`…/stripe/{account id}`),
/// verified with that endpoint's signing secret; Checkout Session events
/// are followed, others acknowledged. 2xx acknowledges; Stripe retries
/// other answers.
async fn stripe_callback(
    State(s): State<AppState>,
    Path(account): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    use payments::acquirers::stripe;
    let outcome = async {
        let creds = account_of(&s, stripe::ACQUIRER, &account).await?;
        let secret = creds
            .webhook_secret
            .as_deref()
            .ok_or_else(|| Refusal::Bad("the account has no webhook secret".into()))?;
        let header = headers.get("stripe-signature").and_then(|v| v.to_str().ok());
        let event = stripe::verify_webhook(header, &body, secret, s.streams.now() / 1000)
            .map_err(|e| Refusal::Bad(e.to_string()))?;
        let Some(payment) = stripe::session_event(&event) else {
            tracing::info!(event = %event.id, kind = %event.kind, "Stripe event acknowledged");
            return Ok("acknowledged");
        };
        let payment = payment.map_err(|e| Refusal::Bad(e.to_string()))?;
        if !ours(stripe::ACQUIRER, &payment) {
            return Ok("not_ours");
        }
        let bank = payments::service::bank::adapter(&creds).map_err(|e| Refusal::Retry(e.to_string()))?;
        follow(&s, &creds, bank.as_ref(), &payment).await
    }
    .await;
    match outcome {
        Ok(word) => (StatusCode::OK, axum::Json(json!({ "received": true, "outcome": word }))).into_response(),
        Err(r) => {
            r.log(&s, stripe::ACQUIRER);
            match r {
                Refusal::Bad(why) => (
                    StatusCode::BAD_REQUEST,
                    axum::Json(json!({ "error": { "code": "callback_refused", "message": why } })),
                )
                    .into_response(),
                Refusal::Retry(why) => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    axum::Json(json!({ "error": { "code": "unavailable", "message": why } })),
                )
                    .into_response(),
            }
        }
    }
}
