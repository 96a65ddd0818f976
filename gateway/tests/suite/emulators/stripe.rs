//! The bank's side of Stripe Checkout, for tests: `GET /v1/account` (the
//! account of a key), Checkout Sessions created
//! from form-encoded bodies with an `Idempotency-Key` (a repeat answers the
//! first result), retrieved by id, refunds of their PaymentIntent, a hosted
//! page, and webhook events to the account's endpoint signed with
//! `Stripe-Signature` (computed here independently of Haul's code; with
//! `chaos`, each twice at once).
//!
//! Test cards: `4242 4242 4242 4242` pays; any other is declined and the
//! session stays open, as Checkout does (it ends when it expires).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

pub const GOOD_CARD: &str = "4242424242424242";

#[derive(Default)]
pub struct Bank {
    /// Secret key → (webhook endpoint, its signing secret).
    pub accounts: HashMap<String, (String, String)>,
    /// Secret key → the account's id (`acct_…`).
    pub ids: HashMap<String, String>,
    /// Session id → (secret key, session object).
    pub sessions: HashMap<String, (String, Value)>,
    pub answered: HashMap<(String, String), Value>,
    pub refunds: Vec<Value>,
    /// Every API call: (path, key).
    pub calls: Vec<(String, String)>,
    /// Event types the endpoint acknowledged.
    pub delivered: Vec<String>,
    pub next: u64,
    /// Send each event twice at once.
    pub chaos: bool,
    /// Make the next refund, then answer 500 (a failure after the fact).
    pub refund_then_fail: bool,
    /// Take payments without sending their events (a webhook held up).
    pub silent: bool,
}

#[derive(Clone)]
pub struct Emulator {
    pub base: String,
    pub bank: Arc<Mutex<Bank>>,
    http: reqwest::Client,
}

/// The `Stripe-Signature` of `body` at `t`, written from Stripe's docs.
pub fn sign(secret: &str, t: i64, body: &str) -> String {
    let mut m = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    m.update(format!("{t}.{body}").as_bytes());
    let hex: String = m.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
    format!("t={t},v1={hex}")
}

fn error(status: StatusCode, kind: &str, code: &str, message: &str) -> Response {
    (
        status,
        Json(json!({ "error": { "type": kind, "code": code, "message": message } })),
    )
        .into_response()
}

impl Emulator {
    pub async fn start() -> Emulator {
        let (listener, base) = super::bind().await;
        let emu = Emulator {
            base,
            bank: Arc::new(Mutex::new(Bank::default())),
            http: reqwest::Client::new(),
        };
        let app = Router::new()
            .route("/v1/account", get(account))
            .route("/v1/checkout/sessions", post(create))
            .route("/v1/checkout/sessions/{id}", get(read))
            .route("/v1/checkout/sessions/{id}/expire", post(expire))
            .route("/v1/refunds", post(refund))
            .route("/pay/{id}", get(page).post(pay))
            .with_state(emu.clone());
        super::serve(listener, app);
        emu
    }

    /// The account `id` (`acct_…`) with its secret key, webhook endpoint
    /// and the endpoint's signing secret.
    pub fn account(&self, id: &str, key: &str, endpoint: &str, signing_secret: &str) {
        let mut b = self.bank.lock().unwrap();
        b.accounts.insert(key.into(), (endpoint.into(), signing_secret.into()));
        b.ids.insert(key.into(), id.into());
    }

    pub fn sessions(&self) -> Vec<Value> {
        self.bank
            .lock()
            .unwrap()
            .sessions
            .values()
            .map(|(_, s)| s.clone())
            .collect()
    }

    /// The event body for `kind` about session `id` and its signature at `t`.
    pub fn event(&self, id: &str, kind: &str, t: i64) -> (String, String) {
        let b = self.bank.lock().unwrap();
        let (key, session) = &b.sessions[id];
        let body = json!({
            "id": format!("evt_{}_{}", id, kind.len()), "object": "event", "type": kind,
            "created": t, "livemode": false, "data": { "object": session },
        })
        .to_string();
        let sig = sign(&b.accounts[key].1, t, &body);
        (body, sig)
    }

    /// Sends an event to the account's endpoint; its HTTP status.
    pub async fn send(&self, id: &str, kind: &str) -> u16 {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let (body, sig) = self.event(id, kind, t);
        let url = {
            let b = self.bank.lock().unwrap();
            b.accounts[&b.sessions[id].0].0.clone()
        };
        for _ in 0..5 {
            if let Ok(r) = self
                .http
                .post(&url)
                .header("content-type", "application/json")
                .header("Stripe-Signature", &sig)
                .body(body.clone())
                .send()
                .await
            {
                let st = r.status().as_u16();
                if r.status().is_success() {
                    self.bank.lock().unwrap().delivered.push(kind.into());
                }
                if st < 500 {
                    return st;
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        0
    }

    /// Expires an open session (as Stripe does after `expires_at`) and
    /// sends `checkout.session.expired`.
    pub async fn expire(&self, id: &str) -> u16 {
        {
            let mut b = self.bank.lock().unwrap();
            let s = &mut b.sessions.get_mut(id).unwrap().1;
            assert_eq!(s["status"], "open");
            s["status"] = "expired".into();
        }
        self.send(id, "checkout.session.expired").await
    }
}

/// `GET /v1/account`: the account the secret key belongs to.
async fn account(State(emu): State<Emulator>, headers: HeaderMap) -> Response {
    let mut bank = emu.bank.lock().unwrap();
    match authenticate(&mut bank, "/v1/account", &headers) {
        Ok(key) => Json(json!({ "id": bank.ids[&key], "object": "account", "charges_enabled": true })).into_response(),
        Err(r) => *r,
    }
}

fn authenticate(bank: &mut Bank, path: &str, headers: &HeaderMap) -> Result<String, Box<Response>> {
    let key = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|a| a.strip_prefix("Bearer "))
        .unwrap_or("")
        .to_owned();
    bank.calls.push((path.into(), key.clone()));
    if bank.accounts.contains_key(&key) {
        Ok(key)
    } else {
        Err(Box::new(error(
            StatusCode::UNAUTHORIZED,
            "invalid_request_error",
            "api_key_invalid",
            "Invalid API Key provided",
        )))
    }
}

/// The request's `Idempotency-Key`; a repeat is answered as the first time.
fn idempotency(bank: &Bank, key: &str, headers: &HeaderMap) -> Result<Option<String>, Box<Response>> {
    let idem = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    match idem
        .as_ref()
        .and_then(|i| bank.answered.get(&(key.to_owned(), i.clone())))
    {
        Some(previous) => Err(Box::new(Json(previous.clone()).into_response())),
        None => Ok(idem),
    }
}

async fn create(State(emu): State<Emulator>, headers: HeaderMap, Form(f): Form<Vec<(String, String)>>) -> Response {
    let mut bank = emu.bank.lock().unwrap();
    let key = match authenticate(&mut bank, "/v1/checkout/sessions", &headers) {
        Ok(k) => k,
        Err(r) => return *r,
    };
    let idem = match idempotency(&bank, &key, &headers) {
        Ok(i) => i,
        Err(r) => return *r,
    };
    let get = |k: &str| f.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    if get("mode") != Some("payment") || get("success_url").is_none() {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "parameter_missing",
            "mode and success_url are required",
        );
    }
    let mut total = 0i64;
    let mut currency = None;
    for n in 0.. {
        let p = format!("line_items[{n}]");
        let Some(q) = get(&format!("{p}[quantity]")) else { break };
        let unit = get(&format!("{p}[price_data][unit_amount]")).and_then(|u| u.parse::<i64>().ok());
        let c = get(&format!("{p}[price_data][currency]"));
        let (Ok(q), Some(unit), Some(c)) = (q.parse::<i64>(), unit, c) else {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "parameter_invalid_integer",
                "line item",
            );
        };
        if c != c.to_ascii_lowercase() || currency.is_some_and(|x| x != c) {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "currency_mismatch",
                "currency",
            );
        }
        currency = Some(c);
        total += q * unit;
    }
    if total <= 0 {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "parameter_missing",
            "line_items",
        );
    }
    bank.next += 1;
    let id = format!("cs_test_{:04}", bank.next);
    let session = json!({
        "id": id, "object": "checkout.session", "mode": "payment", "status": "open",
        "payment_status": "unpaid", "payment_intent": null, "amount_total": total,
        "currency": currency, "client_reference_id": get("client_reference_id"),
        "metadata": { "haul_attempt": get("metadata[haul_attempt]") },
        "success_url": get("success_url"), "url": format!("{}/pay/{id}", emu.base),
    });
    bank.sessions.insert(id, (key.clone(), session.clone()));
    if let Some(i) = idem {
        bank.answered.insert((key, i), session.clone());
    }
    Json(session).into_response()
}

async fn read(State(emu): State<Emulator>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let mut bank = emu.bank.lock().unwrap();
    let key = match authenticate(&mut bank, "/v1/checkout/sessions/{id}", &headers) {
        Ok(k) => k,
        Err(r) => return *r,
    };
    match bank.sessions.get(&id).filter(|(k, _)| *k == key) {
        Some((_, s)) => Json(s.clone()).into_response(),
        None => error(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            "resource_missing",
            "No such checkout.session",
        ),
    }
}

/// `POST /v1/checkout/sessions/{id}/expire`: only an open session expires
/// (Stripe refuses the others; a paid one stays paid).
async fn expire(State(emu): State<Emulator>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let mut bank = emu.bank.lock().unwrap();
    let key = match authenticate(&mut bank, "/v1/checkout/sessions/{id}/expire", &headers) {
        Ok(k) => k,
        Err(r) => return *r,
    };
    match bank.sessions.get_mut(&id).filter(|(k, _)| *k == key) {
        Some((_, s)) if s["status"] == "open" => {
            s["status"] = "expired".into();
            Json(s.clone()).into_response()
        }
        Some((_, s)) => error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "checkout_session_not_open",
            &format!(
                "Only Checkout Sessions with a status in [\"open\"] can be expired; this one is {}",
                s["status"]
            ),
        ),
        None => error(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            "resource_missing",
            "No such checkout.session",
        ),
    }
}

async fn refund(State(emu): State<Emulator>, headers: HeaderMap, Form(f): Form<Vec<(String, String)>>) -> Response {
    let mut bank = emu.bank.lock().unwrap();
    let key = match authenticate(&mut bank, "/v1/refunds", &headers) {
        Ok(k) => k,
        Err(r) => return *r,
    };
    let idem = match idempotency(&bank, &key, &headers) {
        Ok(i) => i,
        Err(r) => return *r,
    };
    let get = |k: &str| f.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let pi = get("payment_intent").unwrap_or_default();
    let Some(total) = bank
        .sessions
        .values()
        .find(|(k, s)| *k == key && s["payment_intent"] == pi.as_str())
        .and_then(|(_, s)| s["amount_total"].as_i64())
    else {
        return error(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            "resource_missing",
            "No such payment_intent",
        );
    };
    let done: i64 = bank
        .refunds
        .iter()
        .filter(|r| r["payment_intent"] == pi.as_str())
        .filter_map(|r| r["amount"].as_i64())
        .sum();
    let amount = get("amount")
        .and_then(|a| a.parse::<i64>().ok())
        .unwrap_or(total - done);
    if amount <= 0 || done + amount > total {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "amount_too_large",
            "Refund amount is greater than unrefunded amount",
        );
    }
    let r = json!({ "id": format!("re_{}", bank.refunds.len() + 1), "object": "refund",
                    "payment_intent": pi, "amount": amount, "status": "succeeded" });
    bank.refunds.push(r.clone());
    if let Some(i) = idem {
        bank.answered.insert((key, i), r.clone());
    }
    if std::mem::take(&mut bank.refund_then_fail) {
        return error(StatusCode::INTERNAL_SERVER_ERROR, "api_error", "", "try again");
    }
    Json(r).into_response()
}

async fn page(State(emu): State<Emulator>, Path(id): Path<String>) -> Response {
    match emu.bank.lock().unwrap().sessions.get(&id) {
        Some((_, s)) => Html(format!(
            "<!doctype html><title>Stripe test</title><h1>Pay {} {}</h1>\
             <form method=post><input name=number><button type=submit>Pay</button></form>",
            s["amount_total"],
            s["currency"].as_str().unwrap_or("")
        ))
        .into_response(),
        None => (StatusCode::NOT_FOUND, "no such session").into_response(),
    }
}

#[derive(serde::Deserialize)]
struct Card {
    number: String,
}

async fn pay(State(emu): State<Emulator>, Path(id): Path<String>, Form(card): Form<Card>) -> Response {
    let number: String = card.number.chars().filter(char::is_ascii_digit).collect();
    let back = {
        let mut b = emu.bank.lock().unwrap();
        b.next += 1;
        let n = b.next;
        let Some((_, s)) = b.sessions.get_mut(&id) else {
            return (StatusCode::NOT_FOUND, "no such session").into_response();
        };
        if s["status"] != "open" {
            return (StatusCode::CONFLICT, "session is not open").into_response();
        }
        if number != GOOD_CARD {
            return Html("<!doctype html><p>Your card was declined.</p>").into_response();
        }
        s["status"] = "complete".into();
        s["payment_status"] = "paid".into();
        s["payment_intent"] = format!("pi_test_{n:04}").into();
        s["success_url"].as_str().unwrap_or("").to_owned()
    };
    let (chaos, silent) = {
        let b = emu.bank.lock().unwrap();
        (b.chaos, b.silent)
    };
    if silent {
    } else if chaos {
        tokio::join!(
            emu.send(&id, "checkout.session.completed"),
            emu.send(&id, "checkout.session.completed")
        );
    } else {
        emu.send(&id, "checkout.session.completed").await;
    }
    Html(format!(
        "<!doctype html><p>Done. <a data-test=return href=\"{back}\">Back to the shop</a></p>"
    ))
    .into_response()
}
