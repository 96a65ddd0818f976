//! The bank's side of T-Bank Acquiring API v2, for tests: `Init`,
//! `GetState`, `Cancel` (refunds), a hosted card page, and signed
//! notifications to the merchant's `NotificationURL` (retried until the
//! answer is `OK`; with `chaos`, sent twice and the first round reversed).
//! Requests are validated as the bank does: a known terminal, a `Token` that
//! verifies (computed here independently of Haul's code), positive amounts,
//! receipt lines that sum to the amount.
//!
//! Test cards: `4300 0000 0000 0777` pays, any other number is rejected.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

pub const GOOD_CARD: &str = "4300000000000777";

#[derive(Debug, Clone)]
pub struct Payment {
    pub terminal: String,
    pub order_id: String,
    pub amount: i64,
    pub refunded: i64,
    pub status: String,
    pub notification_url: String,
    pub success_url: String,
    pub receipt: Option<Value>,
    /// The payment form's language (`Language`), if the merchant said.
    pub language: Option<String>,
}

/// How a terminal behaves.
#[derive(Debug, Clone, Default)]
pub enum Mode {
    #[default]
    Normal,
    /// `Init` answers `Success: false` with this code and message.
    Refuse(String, String),
    /// `Init` answers HTTP 503.
    Down,
    /// `Init` answers something unreadable (as a proxy timing out might),
    /// without creating a payment.
    Garbled,
    /// `Init` answers nothing for this long (then a 504), creating nothing.
    Hang(Duration),
}

#[derive(Default)]
pub struct Bank {
    pub terminals: HashMap<String, String>,
    pub modes: HashMap<String, Mode>,
    pub payments: HashMap<String, Payment>,
    pub next_id: u64,
    /// Every request the bank received: (method, terminal).
    pub calls: Vec<(String, String)>,
    /// Notifications the merchant answered `OK`.
    pub delivered: Vec<Value>,
    pub chaos: bool,
}

#[derive(Clone)]
pub struct Emulator {
    pub base: String,
    pub bank: Arc<Mutex<Bank>>,
    http: reqwest::Client,
}

/// The Token rule, written from T-Bank's documentation.
pub fn token(fields: &Map<String, Value>, password: &str) -> String {
    let mut pairs: Vec<(String, String)> = vec![("Password".into(), password.into())];
    for (k, v) in fields {
        let text = match v {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            _ => continue,
        };
        if k != "Token" {
            pairs.push((k.clone(), text));
        }
    }
    pairs.sort();
    hex(&Sha256::digest(
        pairs.iter().map(|(_, v)| v.as_str()).collect::<String>().as_bytes(),
    ))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn refuse(code: &str, message: &str) -> Response {
    Json(json!({ "Success": false, "ErrorCode": code, "Message": message, "Details": "" })).into_response()
}

impl Emulator {
    pub async fn start() -> Emulator {
        let (listener, base) = super::bind().await;
        let emu = Emulator {
            base,
            bank: Arc::new(Mutex::new(Bank {
                next_id: 3_000_000_000,
                ..Default::default()
            })),
            http: reqwest::Client::new(),
        };
        let app = Router::new()
            .route("/v2/Init", post(init))
            .route("/v2/GetState", post(get_state))
            .route("/v2/Cancel", post(cancel))
            .route("/v2/CheckOrder", post(check_order))
            .route("/pay/{id}", get(page).post(pay))
            .with_state(emu.clone());
        super::serve(listener, app);
        emu
    }

    /// The API address to give Haul (`HAUL_TBANK_URL`).
    pub fn api(&self) -> String {
        format!("{}/v2", self.base)
    }

    pub fn terminal(&self, key: &str, password: &str, mode: Mode) {
        let mut b = self.bank.lock().unwrap();
        b.terminals.insert(key.into(), password.into());
        b.modes.insert(key.into(), mode);
    }

    pub fn set_mode(&self, key: &str, mode: Mode) {
        self.bank.lock().unwrap().modes.insert(key.into(), mode);
    }

    pub fn payments_of(&self, terminal: &str) -> Vec<(String, Payment)> {
        let b = self.bank.lock().unwrap();
        b.payments
            .iter()
            .filter(|(_, p)| p.terminal == terminal)
            .map(|(id, p)| (id.clone(), p.clone()))
            .collect()
    }

    pub fn calls(&self, method: &str, terminal: &str) -> usize {
        let b = self.bank.lock().unwrap();
        b.calls.iter().filter(|(m, t)| m == method && t == terminal).count()
    }

    /// A notification of `payment` as the bank signs it.
    pub fn notification(&self, payment_id: &str, status: &str) -> Value {
        let b = self.bank.lock().unwrap();
        let p = &b.payments[payment_id];
        let mut n = json!({
            "TerminalKey": p.terminal, "OrderId": p.order_id, "Success": status != "REJECTED",
            "Status": status, "PaymentId": payment_id.parse::<u64>().unwrap(),
            "ErrorCode": if status == "REJECTED" { "1051" } else { "0" },
            "Amount": p.amount, "CardId": 322264, "Pan": "430000******0777", "ExpDate": "1230",
        });
        let t = token(n.as_object().unwrap(), &b.terminals[&p.terminal]);
        n["Token"] = t.into();
        n
    }

    /// Sends `bodies` to the merchant, each until it answers `OK` (10 tries).
    async fn notify(&self, url: String, bodies: Vec<Value>) {
        for body in bodies {
            for _ in 0..10 {
                if let Ok(r) = self.http.post(&url).json(&body).send().await {
                    if r.status().is_success() && r.text().await.unwrap_or_default() == "OK" {
                        self.bank.lock().unwrap().delivered.push(body.clone());
                        break;
                    }
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

/// Checks the terminal and the Token; answers the refusal if they fail.
fn authenticate(bank: &mut Bank, method: &str, body: &Value) -> Result<String, Box<Response>> {
    let Some(fields) = body.as_object() else {
        return Err(Box::new(refuse("215", "Неверный формат запроса")));
    };
    let key = fields
        .get("TerminalKey")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    bank.calls.push((method.into(), key.clone()));
    let Some(password) = bank.terminals.get(&key) else {
        return Err(Box::new(refuse("202", "Терминал не найден")));
    };
    if fields.get("Token").and_then(Value::as_str) != Some(token(fields, password).as_str()) {
        return Err(Box::new(refuse(
            "204",
            "Неверный токен. Проверьте пару TerminalKey/SecretKey",
        )));
    }
    Ok(key)
}

async fn init(State(emu): State<Emulator>, Json(body): Json<Value>) -> Response {
    let mode = {
        let mut bank = emu.bank.lock().unwrap();
        let key = match authenticate(&mut bank, "Init", &body) {
            Ok(k) => k,
            Err(r) => return *r,
        };
        bank.modes.get(&key).cloned().unwrap_or_default()
    };
    match mode {
        Mode::Normal => {}
        Mode::Hang(d) => {
            tokio::time::sleep(d).await;
            return (StatusCode::GATEWAY_TIMEOUT, "timed out").into_response();
        }
        Mode::Refuse(code, message) => return refuse(&code, &message),
        Mode::Down => return (StatusCode::SERVICE_UNAVAILABLE, "maintenance").into_response(),
        Mode::Garbled => return (StatusCode::OK, "<html>504 Gateway Time-out</html>").into_response(),
    }
    let amount = body["Amount"].as_i64().filter(|a| *a > 0);
    let order_id = body["OrderId"].as_str().filter(|o| !o.is_empty() && o.len() <= 36);
    let (Some(amount), Some(order_id)) = (amount, order_id) else {
        return refuse("215", "Amount и OrderId обязательны");
    };
    if let Some(items) = body["Receipt"]["Items"].as_array() {
        let sum: i64 = items.iter().map(|i| i["Amount"].as_i64().unwrap_or(-1)).sum();
        let lines_ok = items.iter().all(|i| {
            i["Price"].as_i64().unwrap_or(0) * i["Quantity"].as_i64().unwrap_or(0) == i["Amount"].as_i64().unwrap_or(-1)
        });
        if sum != amount || !lines_ok || body["Receipt"]["Taxation"].as_str().is_none() {
            return refuse("308", "Сумма позиций чека не равна сумме платежа");
        }
    }
    let mut bank = emu.bank.lock().unwrap();
    bank.next_id += 1;
    let id = bank.next_id.to_string();
    let key = crate::common::text(&body, "TerminalKey");
    bank.payments.insert(
        id.clone(),
        Payment {
            terminal: key.clone(),
            order_id: order_id.into(),
            amount,
            refunded: 0,
            status: "NEW".into(),
            notification_url: body["NotificationURL"].as_str().unwrap_or("").into(),
            success_url: body["SuccessURL"].as_str().unwrap_or("").into(),
            receipt: body.get("Receipt").cloned(),
            language: body["Language"].as_str().map(str::to_owned),
        },
    );
    Json(json!({
        "Success": true, "ErrorCode": "0", "TerminalKey": key, "Status": "NEW", "PaymentId": id,
        "OrderId": order_id, "Amount": amount, "PaymentURL": format!("{}/pay/{id}", emu.base),
    }))
    .into_response()
}

async fn get_state(State(emu): State<Emulator>, Json(body): Json<Value>) -> Response {
    let mut bank = emu.bank.lock().unwrap();
    let key = match authenticate(&mut bank, "GetState", &body) {
        Ok(k) => k,
        Err(r) => return *r,
    };
    let id = body["PaymentId"].as_str().unwrap_or("").to_owned();
    match bank.payments.get(&id).filter(|p| p.terminal == key) {
        Some(p) => Json(json!({
            "Success": true, "ErrorCode": "0", "TerminalKey": key, "Status": p.status,
            "PaymentId": id, "OrderId": p.order_id, "Amount": p.amount,
        }))
        .into_response(),
        None => refuse("7", "Платеж не найден"),
    }
}

async fn check_order(State(emu): State<Emulator>, Json(body): Json<Value>) -> Response {
    let mut bank = emu.bank.lock().unwrap();
    let key = match authenticate(&mut bank, "CheckOrder", &body) {
        Ok(k) => k,
        Err(r) => return *r,
    };
    let order = body["OrderId"].as_str().unwrap_or("").to_owned();
    let payments: Vec<Value> = bank
        .payments
        .iter()
        .filter(|(_, p)| p.terminal == key && p.order_id == order)
        .map(|(id, p)| json!({ "PaymentId": id, "Amount": p.amount, "Status": p.status, "Success": true, "ErrorCode": "0" }))
        .collect();
    Json(json!({ "Success": true, "ErrorCode": "0", "TerminalKey": key, "OrderId": order, "Payments": payments }))
        .into_response()
}

async fn cancel(State(emu): State<Emulator>, Json(body): Json<Value>) -> Response {
    let mut bank = emu.bank.lock().unwrap();
    let key = match authenticate(&mut bank, "Cancel", &body) {
        Ok(k) => k,
        Err(r) => return *r,
    };
    let id = body["PaymentId"].as_str().unwrap_or("").to_owned();
    let Some(p) = bank.payments.get_mut(&id).filter(|p| p.terminal == key) else {
        return refuse("7", "Платеж не найден");
    };
    if !matches!(p.status.as_str(), "CONFIRMED" | "PARTIAL_REFUNDED") {
        return refuse("9", "Неверный статус платежа");
    }
    let left = p.amount - p.refunded;
    let amount = body["Amount"].as_i64().unwrap_or(left);
    if !(1..=left).contains(&amount) {
        return refuse("1053", "Сумма возврата больше суммы платежа");
    }
    let original = p.amount - p.refunded;
    p.refunded += amount;
    p.status = if p.refunded == p.amount {
        "REFUNDED"
    } else {
        "PARTIAL_REFUNDED"
    }
    .into();
    Json(json!({
        "Success": true, "ErrorCode": "0", "TerminalKey": key, "Status": p.status, "PaymentId": id,
        "OrderId": p.order_id, "OriginalAmount": original, "NewAmount": original - amount,
    }))
    .into_response()
}

async fn page(State(emu): State<Emulator>, Path(id): Path<String>) -> Response {
    let bank = emu.bank.lock().unwrap();
    match bank.payments.get(&id) {
        Some(p) => Html(format!(
            "<!doctype html><title>T-Bank test</title><h1>Pay {} kopecks</h1>\
             <form method=post><input name=number><button type=submit>Pay</button></form>",
            p.amount
        ))
        .into_response(),
        None => (StatusCode::NOT_FOUND, "no such payment").into_response(),
    }
}

#[derive(serde::Deserialize)]
struct Card {
    number: String,
}

async fn pay(State(emu): State<Emulator>, Path(id): Path<String>, Form(card): Form<Card>) -> Response {
    let number: String = card.number.chars().filter(char::is_ascii_digit).collect();
    let statuses: &[&str] = if number == GOOD_CARD {
        &["AUTHORIZED", "CONFIRMED"]
    } else {
        &["REJECTED"]
    };
    let (url, back, chaos) = {
        let mut bank = emu.bank.lock().unwrap();
        let chaos = bank.chaos;
        let Some(p) = bank.payments.get_mut(&id) else {
            return (StatusCode::NOT_FOUND, "no such payment").into_response();
        };
        if p.status != "NEW" {
            return (StatusCode::CONFLICT, "already paid").into_response();
        }
        p.status = statuses.last().unwrap().to_string();
        (p.notification_url.clone(), p.success_url.clone(), chaos)
    };
    let mut bodies: Vec<Value> = statuses.iter().map(|s| emu.notification(&id, s)).collect();
    if chaos {
        let mut first: Vec<Value> = bodies.iter().rev().cloned().collect();
        first.append(&mut bodies);
        bodies = first;
    }
    emu.notify(url, bodies).await;
    Html(format!(
        "<!doctype html><p>Done. <a data-test=return href=\"{back}\">Back to the shop</a></p>"
    ))
    .into_response()
}
