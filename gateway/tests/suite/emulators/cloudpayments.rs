//! The bank's side of CloudPayments, for tests: `/test` (credentials),
//! `/orders/create` (an order
//! with a hosted page), `/payments/find`, `/payments/refund`, and the
//! notifications a payment sends to the site's addresses — Check first
//! (a refusal stops the payment), then Pay or Fail — signed with
//! `Content-HMAC` (computed here independently of Haul's code). Requests
//! are validated as the bank does: HTTP Basic with a known Public ID and
//! its API secret, decimal amounts with two digits, receipts that sum to
//! the amount; `X-Request-ID` repeats answer the first result.
//!
//! Test cards: `4242 4242 4242 4242` pays, any other is declined.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

pub const GOOD_CARD: &str = "4242424242424242";

#[derive(Debug, Clone, Default)]
pub enum Mode {
    #[default]
    Normal,
    /// `/orders/create` answers `Success: false` with this message.
    Refuse(String),
    /// HTTP 503.
    Down,
}

#[derive(Debug, Clone)]
pub struct Order {
    pub site: String,
    pub invoice_id: String,
    /// In kopecks (minor units), read from the decimal.
    pub amount: i64,
    pub currency: String,
    pub receipt: Option<Value>,
    pub success_url: String,
}

#[derive(Debug, Clone)]
pub struct Transaction {
    pub id: u64,
    pub site: String,
    pub invoice_id: String,
    pub amount: i64,
    pub currency: String,
    pub status: String,
    pub refunded: i64,
}

#[derive(Default)]
pub struct Bank {
    /// Public ID → (API secret, the site's notification base address).
    pub sites: HashMap<String, (String, String)>,
    pub modes: HashMap<String, Mode>,
    pub orders: HashMap<String, Order>,
    pub transactions: Vec<Transaction>,
    /// `X-Request-ID` → the answer given.
    pub answered: HashMap<String, Value>,
    /// (kind, answer code) of every notification the site answered.
    pub delivered: Vec<(String, i64)>,
    /// Every API call: (path, Public ID).
    pub calls: Vec<(String, String)>,
    pub chaos: bool,
    pub next: u64,
}

#[derive(Clone)]
pub struct Emulator {
    pub base: String,
    pub bank: Arc<Mutex<Bank>>,
    http: reqwest::Client,
}

/// base64(HMAC-SHA256(body, secret)), written from CloudPayments' docs.
pub fn hmac_of(body: &[u8], secret: &str) -> String {
    let mut m = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    m.update(body);
    base64::engine::general_purpose::STANDARD.encode(m.finalize().into_bytes())
}

/// "10.50" or 10.5 → 1050; `None` for anything with more than two digits.
fn minor(v: &Value) -> Option<i64> {
    let text = match v {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        _ => return None,
    };
    let (w, f) = text.split_once('.').unwrap_or((&text, ""));
    if f.len() > 2 || w.is_empty() || !w.bytes().all(|b| b.is_ascii_digit()) || !f.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(w.parse::<i64>().ok()? * 100 + format!("{f:0<2}").parse::<i64>().ok()?)
}

fn no(message: &str) -> Response {
    Json(json!({ "Success": false, "Message": message })).into_response()
}

impl Emulator {
    pub async fn start() -> Emulator {
        let (listener, base) = super::bind().await;
        let emu = Emulator {
            base,
            bank: Arc::new(Mutex::new(Bank {
                next: 900_000,
                ..Default::default()
            })),
            http: reqwest::Client::new(),
        };
        let app = Router::new()
            .route("/test", post(test_method))
            .route("/orders/create", post(create))
            .route("/payments/find", post(find))
            .route("/payments/refund", post(refund))
            .route("/pay/{id}", get(page).post(pay))
            .with_state(emu.clone());
        super::serve(listener, app);
        emu
    }

    /// A site; `notify` is the address prefix its settings name (the
    /// account's `notification_urls` without the kind).
    pub fn site(&self, public_id: &str, secret: &str, notify: &str, mode: Mode) {
        let mut b = self.bank.lock().unwrap();
        b.sites.insert(public_id.into(), (secret.into(), notify.into()));
        b.modes.insert(public_id.into(), mode);
    }

    pub fn calls(&self, path: &str, site: &str) -> usize {
        let b = self.bank.lock().unwrap();
        b.calls.iter().filter(|(p, s)| p == path && s == site).count()
    }

    /// A notification body as the bank sends it (form-encoded) and its HMAC.
    pub fn notification(&self, t: &Transaction) -> (String, String) {
        let b = self.bank.lock().unwrap();
        let secret = &b.sites[&t.site].0;
        let body = form(&[
            ("TransactionId", t.id.to_string()),
            ("Amount", format!("{}.{:02}", t.amount / 100, t.amount % 100)),
            ("Currency", t.currency.clone()),
            ("InvoiceId", t.invoice_id.clone()),
            ("Status", t.status.clone()),
            ("DateTime", "2026-11-24 10:00:00".into()),
            ("CardFirstSix", "424242".into()),
            ("CardLastFour", "4242".into()),
            ("OperationType", "Payment".into()),
            ("TestMode", "1".into()),
        ]);
        let sig = hmac_of(body.as_bytes(), secret);
        (body, sig)
    }

    /// Sends one notification; the `code` the site answered (`None`: no
    /// answer after 5 tries).
    async fn notify(&self, t: &Transaction, kind: &str) -> Option<i64> {
        let url = format!("{}/{kind}", self.bank.lock().unwrap().sites[&t.site].1);
        let (body, sig) = self.notification(t);
        for _ in 0..5 {
            if let Ok(r) = self
                .http
                .post(&url)
                .header("content-type", "application/x-www-form-urlencoded")
                .header("Content-HMAC", &sig)
                .body(body.clone())
                .send()
                .await
            {
                if r.status().is_success() {
                    let code = r.json::<Value>().await.ok()?["code"].as_i64()?;
                    self.bank.lock().unwrap().delivered.push((kind.into(), code));
                    return Some(code);
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        None
    }
}

fn form(pairs: &[(&str, String)]) -> String {
    let mut f = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        f.append_pair(k, v);
    }
    f.finish()
}

/// HTTP Basic with a known site and its secret; the Public ID.
fn authenticate(bank: &mut Bank, path: &str, headers: &HeaderMap) -> Result<String, Box<Response>> {
    let denied = || Box::new((StatusCode::UNAUTHORIZED, "Authentication failed").into_response());
    let (id, secret) = super::basic_auth(headers).ok_or_else(denied)?;
    bank.calls.push((path.into(), id.clone()));
    match bank.sites.get(&id) {
        Some((s, _)) if *s == secret => Ok(id),
        _ => Err(denied()),
    }
}

/// The API's `/test` method: `Success` under a known site's credentials.
async fn test_method(State(emu): State<Emulator>, headers: HeaderMap) -> Response {
    let mut bank = emu.bank.lock().unwrap();
    match authenticate(&mut bank, "/test", &headers) {
        Ok(_) => Json(json!({ "Success": true, "Message": "5c7f1b1a-test" })).into_response(),
        Err(r) => *r,
    }
}

async fn create(State(emu): State<Emulator>, headers: HeaderMap, Json(body): Json<Value>) -> Response {
    let mut bank = emu.bank.lock().unwrap();
    let site = match authenticate(&mut bank, "/orders/create", &headers) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    match bank.modes.get(&site).cloned().unwrap_or_default() {
        Mode::Normal => {}
        Mode::Refuse(m) => return no(&m),
        Mode::Down => return (StatusCode::SERVICE_UNAVAILABLE, "maintenance").into_response(),
    }
    let request_id = headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    if let Some(previous) = request_id.as_ref().and_then(|id| bank.answered.get(id)) {
        return Json(previous.clone()).into_response();
    }
    let (Some(amount), Some(currency), Some(invoice)) = (
        minor(&body["Amount"]).filter(|a| *a > 0),
        body["Currency"].as_str(),
        body["InvoiceId"].as_str(),
    ) else {
        return no("Amount, Currency and InvoiceId are required");
    };
    let receipt = body["JsonData"]["CloudPayments"]["CustomerReceipt"].clone();
    if !receipt.is_null() {
        let items = receipt["Items"].as_array().cloned().unwrap_or_default();
        let sum: Option<i64> = items.iter().map(|i| minor(&i["amount"])).sum();
        let lines_ok = items
            .iter()
            .all(|i| minor(&i["price"]).zip(i["quantity"].as_i64()).map(|(p, q)| p * q) == minor(&i["amount"]));
        if sum != Some(amount) || !lines_ok || receipt["taxationSystem"].as_i64().is_none() {
            return no("Receipt items do not sum to the amount");
        }
    }
    bank.next += 1;
    let id = format!("ord{}", bank.next);
    bank.orders.insert(
        id.clone(),
        Order {
            site,
            invoice_id: invoice.into(),
            amount,
            currency: currency.into(),
            receipt: (!receipt.is_null()).then_some(receipt),
            success_url: body["SuccessRedirectUrl"].as_str().unwrap_or("").into(),
        },
    );
    let answer = json!({ "Success": true, "Message": null, "Model": {
        "Id": id, "Number": bank.next, "Amount": body["Amount"], "Currency": currency,
        "Url": format!("{}/pay/{id}", emu.base), "InvoiceId": invoice,
    }});
    if let Some(rid) = request_id {
        bank.answered.insert(rid, answer.clone());
    }
    Json(answer).into_response()
}

fn model(t: &Transaction) -> Value {
    json!({
        "TransactionId": t.id, "Amount": t.amount as f64 / 100.0, "Currency": t.currency,
        "InvoiceId": t.invoice_id, "Status": t.status, "TestMode": true,
    })
}

async fn find(State(emu): State<Emulator>, headers: HeaderMap, Json(body): Json<Value>) -> Response {
    let mut bank = emu.bank.lock().unwrap();
    let site = match authenticate(&mut bank, "/payments/find", &headers) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let invoice = body["InvoiceId"].as_str().unwrap_or("");
    match bank
        .transactions
        .iter()
        .rev()
        .find(|t| t.site == site && t.invoice_id == invoice)
    {
        Some(t) => Json(json!({ "Success": true, "Message": null, "Model": model(t) })).into_response(),
        None => Json(json!({ "Success": false, "Message": "Not found", "Model": null })).into_response(),
    }
}

async fn refund(State(emu): State<Emulator>, headers: HeaderMap, Json(body): Json<Value>) -> Response {
    let mut bank = emu.bank.lock().unwrap();
    let site = match authenticate(&mut bank, "/payments/refund", &headers) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let request_id = headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    if let Some(previous) = request_id.as_ref().and_then(|id| bank.answered.get(id)) {
        return Json(previous.clone()).into_response();
    }
    let id = body["TransactionId"].as_u64().unwrap_or(0);
    let Some(amount) = minor(&body["Amount"]).filter(|a| *a > 0) else {
        return no("Amount is required");
    };
    let Some(t) = bank.transactions.iter_mut().find(|t| t.id == id && t.site == site) else {
        return no("Not found");
    };
    if t.status != "Completed" || t.refunded + amount > t.amount {
        return no("Refund amount is greater than the payment amount");
    }
    t.refunded += amount;
    let answer = json!({ "Success": true, "Message": null, "Model": { "TransactionId": id + 1_000_000 } });
    if let Some(rid) = request_id {
        bank.answered.insert(rid, answer.clone());
    }
    Json(answer).into_response()
}

async fn page(State(emu): State<Emulator>, Path(id): Path<String>) -> Response {
    match emu.bank.lock().unwrap().orders.get(&id) {
        Some(o) => Html(format!(
            "<!doctype html><title>CloudPayments test</title><h1>Pay {} {}</h1>\
             <form method=post><input name=number><button type=submit>Pay</button></form>",
            o.amount, o.currency
        ))
        .into_response(),
        None => (StatusCode::NOT_FOUND, "no such order").into_response(),
    }
}

#[derive(serde::Deserialize)]
struct Card {
    number: String,
}

/// Check, then Pay (twice with chaos) or Fail.
async fn pay(State(emu): State<Emulator>, Path(id): Path<String>, Form(card): Form<Card>) -> Response {
    let (mut t, back, chaos) = {
        let mut bank = emu.bank.lock().unwrap();
        let Some(o) = bank.orders.get(&id).cloned() else {
            return (StatusCode::NOT_FOUND, "no such order").into_response();
        };
        bank.next += 1;
        let t = Transaction {
            id: bank.next,
            site: o.site,
            invoice_id: o.invoice_id,
            amount: o.amount,
            currency: o.currency,
            status: "Completed".into(),
            refunded: 0,
        };
        (t, o.success_url, bank.chaos)
    };
    if emu.notify(&t, "check").await != Some(0) {
        return Html("<!doctype html><p>The shop refused the payment.</p>").into_response();
    }
    let number: String = card.number.chars().filter(char::is_ascii_digit).collect();
    let kind = if number == GOOD_CARD {
        "pay"
    } else {
        t.status = "Declined".into();
        "fail"
    };
    emu.bank.lock().unwrap().transactions.push(t.clone());
    emu.notify(&t, kind).await;
    if chaos {
        emu.notify(&t, kind).await;
    }
    Html(format!(
        "<!doctype html><p>Done. <a data-test=return href=\"{back}\">Back to the shop</a></p>"
    ))
    .into_response()
}
