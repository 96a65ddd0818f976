//! The bank's side of YooKassa API v3, for tests: `GET /me` (the shop of a
//! key, and whether it is a test shop), payments created with an
//! `Idempotence-Key` (a repeat answers the first result), a redirect
//! confirmation page, capture, cancellation of an authorized payment, refunds, and unsigned notifications to the
//! shop's address; an `embedded` confirmation answers a token instead of
//! the page's address (`payment.waiting_for_capture`, `payment.succeeded`,
//! `payment.canceled`; with `chaos`, each twice at once). Requests are validated as YooKassa does: HTTP
//! Basic with a known shop and key, amounts as two-digit decimal strings,
//! receipts that sum to the amount.
//!
//! Test cards: `5555 5555 5555 4477` pays, any other is declined.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use serde_json::{json, Value};

pub const GOOD_CARD: &str = "5555555555554477";

#[derive(Debug, Clone, Default)]
pub enum Mode {
    #[default]
    Normal,
    /// Creation answers 403 `forbidden`.
    Refuse,
    /// Creation makes the payment, then answers HTTP 500 ("result unknown").
    Unclear,
}

#[derive(Default)]
pub struct Bank {
    /// Shop id → (secret key, notification address).
    pub shops: HashMap<String, (String, String)>,
    pub modes: HashMap<String, Mode>,
    /// Payment id → (shop, the payment object).
    pub payments: HashMap<String, (String, Value)>,
    /// (shop, Idempotence-Key, path) → the answer given.
    pub answered: HashMap<(String, String, String), Value>,
    pub refunds: Vec<Value>,
    /// Every API call: (method path, shop).
    pub calls: Vec<(String, String)>,
    /// Notifications the shop answered 200.
    pub delivered: Vec<String>,
    pub next: u64,
    /// Send each notification twice at once.
    pub chaos: bool,
}

#[derive(Clone)]
pub struct Emulator {
    pub base: String,
    pub bank: Arc<Mutex<Bank>>,
    http: reqwest::Client,
}

fn error(status: StatusCode, code: &str, description: &str) -> Response {
    (
        status,
        Json(json!({ "type": "error", "id": "err-1", "code": code, "description": description })),
    )
        .into_response()
}

/// "10.50" → 1050, exactly two digits after the point.
fn minor(v: &Value) -> Option<i64> {
    let (w, f) = v.as_str()?.split_once('.')?;
    if f.len() != 2 || w.is_empty() || !w.bytes().chain(f.bytes()).all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(w.parse::<i64>().ok()? * 100 + f.parse::<i64>().ok()?)
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
            .route("/v3/me", get(me))
            .route("/v3/payments", post(create))
            .route("/v3/payments/{id}", get(read))
            .route("/v3/payments/{id}/capture", post(capture))
            .route("/v3/payments/{id}/cancel", post(cancel))
            .route("/v3/refunds", post(refund))
            .route("/pay/{id}", get(page).post(pay))
            .with_state(emu.clone());
        super::serve(listener, app);
        emu
    }

    pub fn api(&self) -> String {
        format!("{}/v3", self.base)
    }

    pub fn shop(&self, id: &str, key: &str, notify: &str, mode: Mode) {
        let mut b = self.bank.lock().unwrap();
        b.shops.insert(id.into(), (key.into(), notify.into()));
        b.modes.insert(id.into(), mode);
    }

    pub fn calls(&self, call: &str, shop: &str) -> usize {
        let b = self.bank.lock().unwrap();
        b.calls.iter().filter(|(c, s)| c == call && s == shop).count()
    }

    pub fn payment(&self, id: &str) -> Value {
        self.bank.lock().unwrap().payments[id].1.clone()
    }

    pub fn payments_of(&self, shop: &str) -> Vec<Value> {
        let b = self.bank.lock().unwrap();
        b.payments
            .values()
            .filter(|(s, _)| s == shop)
            .map(|(_, p)| p.clone())
            .collect()
    }

    /// Sends `event` about payment `id` to its shop (as YooKassa does:
    /// unsigned, the object inline); true when answered 200.
    pub async fn notify(&self, id: &str, event: &str) -> bool {
        let (url, object) = {
            let b = self.bank.lock().unwrap();
            let (shop, p) = &b.payments[id];
            (b.shops[shop].1.clone(), p.clone())
        };
        let body = json!({ "type": "notification", "event": event, "object": object });
        for _ in 0..5 {
            if let Ok(r) = self.http.post(&url).json(&body).send().await {
                if r.status() == StatusCode::OK {
                    self.bank.lock().unwrap().delivered.push(event.into());
                    return true;
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        false
    }
}

fn authenticate(bank: &mut Bank, call: &str, headers: &HeaderMap) -> Result<String, Box<Response>> {
    let denied = || {
        Box::new(error(
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
            "Authentication by given credentials failed",
        ))
    };
    let (shop, key) = super::basic_auth(headers).ok_or_else(denied)?;
    bank.calls.push((call.into(), shop.clone()));
    match bank.shops.get(&shop) {
        Some((k, _)) if *k == key => Ok(shop),
        _ => Err(denied()),
    }
}

/// `GET /me`: the shop the key belongs to; a shop is a test shop unless
/// its key is a live one (`live_…`).
async fn me(State(emu): State<Emulator>, headers: HeaderMap) -> Response {
    let mut bank = emu.bank.lock().unwrap();
    match authenticate(&mut bank, "me", &headers) {
        Ok(shop) => {
            let live = bank.shops[&shop].0.starts_with("live_");
            Json(json!({ "account_id": shop, "test": !live, "status": "enabled", "fiscalization_enabled": true }))
                .into_response()
        }
        Err(r) => *r,
    }
}

fn idempotence_key(headers: &HeaderMap) -> Option<String> {
    headers
        .get("idempotence-key")
        .and_then(|v| v.to_str().ok())
        .filter(|k| !k.is_empty() && k.len() <= 64)
        .map(str::to_owned)
}

async fn create(State(emu): State<Emulator>, headers: HeaderMap, Json(body): Json<Value>) -> Response {
    let mut bank = emu.bank.lock().unwrap();
    let shop = match authenticate(&mut bank, "POST /payments", &headers) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let Some(key) = idempotence_key(&headers) else {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Idempotence-Key is required",
        );
    };
    if let Some(previous) = bank.answered.get(&(shop.clone(), key.clone(), "/payments".into())) {
        return Json(previous.clone()).into_response();
    }
    let mode = bank.modes.get(&shop).cloned().unwrap_or_default();
    if matches!(mode, Mode::Refuse) {
        return error(StatusCode::FORBIDDEN, "forbidden", "The shop cannot accept payments");
    }
    let Some(amount) = minor(&body["amount"]["value"]).filter(|a| *a > 0) else {
        return error(StatusCode::BAD_REQUEST, "invalid_request", "amount.value is malformed");
    };
    let embedded = body["confirmation"]["type"] == "embedded";
    if body["amount"]["currency"] != "RUB" || !(embedded || body["confirmation"]["type"] == "redirect") {
        return error(StatusCode::BAD_REQUEST, "invalid_request", "currency or confirmation");
    }
    if let Some(items) = body["receipt"]["items"].as_array() {
        let sum: Option<i64> = items
            .iter()
            .map(|i| {
                let q: i64 = i["quantity"].as_str()?.strip_suffix(".00")?.parse().ok()?;
                Some(minor(&i["amount"]["value"])? * q)
            })
            .sum();
        if sum != Some(amount) || body["receipt"]["customer"].as_object().is_none_or(|c| c.is_empty()) {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "receipt does not sum to the amount",
            );
        }
    }
    bank.next += 1;
    let id = format!("2f{:06}-000f-5000-8000-18db351245c7", bank.next);
    let payment = json!({
        "id": id, "status": "pending", "paid": false, "amount": body["amount"],
        "description": body["description"], "metadata": body["metadata"],
        "confirmation": if embedded {
            json!({ "type": "embedded", "confirmation_token": format!("ct-{id}") })
        } else {
            json!({ "type": "redirect", "return_url": body["confirmation"]["return_url"],
                    "confirmation_url": format!("{}/pay/{id}", emu.base) })
        },
        "capture": body["capture"], "receipt_sent": body.get("receipt").is_some(), "test": true,
    });
    bank.payments.insert(id, (shop.clone(), payment.clone()));
    bank.answered.insert((shop, key, "/payments".into()), payment.clone());
    if matches!(mode, Mode::Unclear) {
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_server_error",
            "try again later",
        );
    }
    Json(payment).into_response()
}

async fn read(State(emu): State<Emulator>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let mut bank = emu.bank.lock().unwrap();
    let shop = match authenticate(&mut bank, "GET /payments", &headers) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    match bank.payments.get(&id).filter(|(s, _)| *s == shop) {
        Some((_, p)) => Json(p.clone()).into_response(),
        None => error(StatusCode::NOT_FOUND, "not_found", "Payment not found"),
    }
}

async fn capture(
    State(emu): State<Emulator>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Json(body): Json<Value>,
) -> Response {
    let answer = {
        let mut bank = emu.bank.lock().unwrap();
        let (shop, key, path) = match authorized(&mut bank, &headers, &id, "capture") {
            Ok(t) => t,
            Err(r) => return *r,
        };
        let p = &mut bank.payments.get_mut(&id).unwrap().1;
        if minor(&body["amount"]["value"]) > minor(&p["amount"]["value"]) {
            return error(StatusCode::BAD_REQUEST, "invalid_request", "Capture amount is too big");
        }
        p["status"] = "succeeded".into();
        p["paid"] = true.into();
        let answer = p.clone();
        bank.answered.insert((shop, key, path), answer.clone());
        answer
    };
    // YooKassa tells of the success as well.
    let emu2 = emu.clone();
    tokio::spawn(async move {
        emu2.notify(&id, "payment.succeeded").await;
    });
    Json(answer).into_response()
}

/// The shared checks of a capture or cancel (`step`): the shop, its key,
/// a repeat (answered as the first time), a payment of this shop waiting
/// for capture; the shop, key and path to store the answer under.
fn authorized(
    bank: &mut Bank,
    headers: &HeaderMap,
    id: &str,
    step: &str,
) -> Result<(String, String, String), Box<Response>> {
    let shop = authenticate(bank, &format!("POST /{step}"), headers)?;
    let Some(key) = idempotence_key(headers) else {
        return Err(Box::new(error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Idempotence-Key is required",
        )));
    };
    let path = format!("/payments/{id}/{step}");
    if let Some(previous) = bank.answered.get(&(shop.clone(), key.clone(), path.clone())) {
        return Err(Box::new(Json(previous.clone()).into_response()));
    }
    match bank.payments.get(id).filter(|(s, _)| *s == shop) {
        None => Err(Box::new(error(StatusCode::NOT_FOUND, "not_found", "Payment not found"))),
        Some((_, p)) if p["status"] != "waiting_for_capture" => Err(Box::new(error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Payment is not waiting for capture",
        ))),
        Some(_) => Ok((shop, key, path)),
    }
}

/// Cancels a payment waiting for capture (the money is never taken).
async fn cancel(State(emu): State<Emulator>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let mut bank = emu.bank.lock().unwrap();
    let (shop, key, path) = match authorized(&mut bank, &headers, &id, "cancel") {
        Ok(t) => t,
        Err(r) => return *r,
    };
    let p = &mut bank.payments.get_mut(&id).unwrap().1;
    p["status"] = "canceled".into();
    p["paid"] = false.into();
    p["cancellation_details"] = json!({ "party": "merchant", "reason": "canceled_by_merchant" });
    let answer = p.clone();
    bank.answered.insert((shop, key, path), answer.clone());
    Json(answer).into_response()
}

async fn refund(State(emu): State<Emulator>, headers: HeaderMap, Json(body): Json<Value>) -> Response {
    let mut bank = emu.bank.lock().unwrap();
    let shop = match authenticate(&mut bank, "POST /refunds", &headers) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let Some(key) = idempotence_key(&headers) else {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Idempotence-Key is required",
        );
    };
    if let Some(previous) = bank.answered.get(&(shop.clone(), key.clone(), "/refunds".into())) {
        return Json(previous.clone()).into_response();
    }
    let pid = body["payment_id"].as_str().unwrap_or("").to_owned();
    let Some((_, p)) = bank.payments.get(&pid).filter(|(s, _)| *s == shop) else {
        return error(StatusCode::NOT_FOUND, "not_found", "Payment not found");
    };
    let paid = minor(&p["amount"]["value"]).unwrap_or(0);
    let done: i64 = bank
        .refunds
        .iter()
        .filter(|r| r["payment_id"] == pid)
        .filter_map(|r| minor(&r["amount"]["value"]))
        .sum();
    let Some(amount) = minor(&body["amount"]["value"]).filter(|a| *a > 0 && done + a <= paid) else {
        return error(StatusCode::BAD_REQUEST, "invalid_request", "Refund amount is too big");
    };
    if p["status"] != "succeeded" {
        return error(StatusCode::BAD_REQUEST, "invalid_request", "Payment is not succeeded");
    }
    let r = json!({ "id": format!("rf-{}", bank.refunds.len() + 1), "payment_id": pid, "status": "succeeded",
                    "amount": { "value": format!("{}.{:02}", amount / 100, amount % 100), "currency": "RUB" } });
    bank.refunds.push(r.clone());
    bank.answered.insert((shop, key, "/refunds".into()), r.clone());
    Json(r).into_response()
}

async fn page(State(emu): State<Emulator>, Path(id): Path<String>) -> Response {
    match emu.bank.lock().unwrap().payments.get(&id) {
        Some((_, p)) => Html(format!(
            "<!doctype html><title>YooKassa test</title><h1>Pay {} RUB</h1>\
             <form method=post><input name=number><button type=submit>Pay</button></form>",
            p["amount"]["value"].as_str().unwrap_or("?")
        ))
        .into_response(),
        None => (StatusCode::NOT_FOUND, "no such payment").into_response(),
    }
}

#[derive(serde::Deserialize)]
struct Card {
    number: String,
}

/// A good card authorizes (`waiting_for_capture`, the shop captures); any
/// other cancels the payment as declined.
async fn pay(State(emu): State<Emulator>, Path(id): Path<String>, Form(card): Form<Card>) -> Response {
    let number: String = card.number.chars().filter(char::is_ascii_digit).collect();
    let (event, back) = {
        let mut bank = emu.bank.lock().unwrap();
        let Some((_, p)) = bank.payments.get_mut(&id) else {
            return (StatusCode::NOT_FOUND, "no such payment").into_response();
        };
        if p["status"] != "pending" {
            return (StatusCode::CONFLICT, "already paid").into_response();
        }
        let event = if number == GOOD_CARD {
            p["status"] = "waiting_for_capture".into();
            p["paid"] = true.into();
            "payment.waiting_for_capture"
        } else {
            p["status"] = "canceled".into();
            p["cancellation_details"] = json!({ "party": "payment_network", "reason": "card_expired" });
            "payment.canceled"
        };
        (event, p["confirmation"]["return_url"].as_str().unwrap_or("").to_owned())
    };
    if emu.bank.lock().unwrap().chaos {
        tokio::join!(emu.notify(&id, event), emu.notify(&id, event));
    } else {
        emu.notify(&id, event).await;
    }
    Html(format!(
        "<!doctype html><p>Done. <a data-test=return href=\"{back}\">Back to the shop</a></p>"
    ))
    .into_response()
}
