//! T-Bank (Tinkoff) Acquiring API v2: the protocol, without HTTP.
//!
//! - Requests are JSON POSTs to `{base}/Init`, `/GetState`, `/Cancel`,
//!   `/CheckOrder`, each carrying `TerminalKey` and a `Token`.
//! - **Token**: the request's top-level scalar fields except `Token` (nested
//!   objects and arrays such as `Receipt` and `DATA` are left out), plus
//!   `Password`, sorted by key; the values concatenated (booleans as
//!   `true`/`false`); SHA-256 over the UTF-8 bytes, lowercase hex. The same
//!   rule signs the bank's notifications, with the terminal's password.
//! - **Amounts** are integers in kopecks (minor units); this adapter sends
//!   RUB only (the terminal's currency); other currencies are not offered.
//! - **Answers**: `Success` and `ErrorCode` (`"0"` when it worked), `Message`
//!   and `Details` otherwise. A refused `Init` created no payment.
//! - **Notifications** are POSTed to the `NotificationURL` given in `Init`;
//!   the handler answers HTTP 200 with the body `OK`, else the bank retries.
//!
//! Status mapping (one-stage payments, `PayType` `O`):
//!
//! | T-Bank status | attempt |
//! | --- | --- |
//! | `NEW`, `FORM_SHOWED`, `AUTHORIZING`, `AUTHORIZED`, `CONFIRMING`, `3DS_CHECKED` | pending |
//! | `3DS_CHECKING` | requires_action |
//! | `CONFIRMED`, `REFUNDING`, `PARTIAL_REFUNDED`, `REFUNDED` | succeeded (refunds are tracked apart) |
//! | `REJECTED`, `AUTH_FAIL`, `DEADLINE_EXPIRED` | failed |
//! | `CANCELED`, `REVERSING`, `REVERSED`, `PARTIAL_REVERSED` | cancelled |
//!
//! Anything else is unknown: the attempt stays as it is and is polled again.

use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::{Acquirer, Body, Call, Charge, InitOutcome, Lookup, Mapped, Method, Payment};
use crate::state::AttemptState;

pub const ACQUIRER: &str = "tbank";
/// The production API.
pub const DEFAULT_BASE_URL: &str = "https://securepay.tinkoff.ru/v2";

/// A terminal's credentials.
#[derive(Debug, Clone)]
pub struct Terminal {
    pub terminal_key: String,
    pub password: SecretString,
    /// The seller's tax system for receipts (`osn`, `usn_income`,
    /// `usn_income_outcome`, `esn`, `patent`); no receipt when `None`.
    pub taxation: Option<String>,
}

/// Tax systems T-Bank accepts in `Receipt.Taxation`.
pub const TAXATION: &[&str] = super::TAX_SYSTEMS;

/// The scalar's text as the Token rule concatenates it.
fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Null | Value::Array(_) | Value::Object(_) => None,
    }
}

/// The `Token` of a request or notification's fields under `password`.
pub fn token(fields: &Map<String, Value>, password: &str) -> String {
    let mut pairs: Vec<(&str, String)> = fields
        .iter()
        .filter(|(k, _)| k.as_str() != "Token")
        .filter_map(|(k, v)| scalar(v).map(|s| (k.as_str(), s)))
        .collect();
    pairs.push(("Password", password.to_owned()));
    pairs.sort_by(|a, b| a.0.cmp(b.0));
    let joined: String = pairs.into_iter().map(|(_, v)| v).collect();
    let digest = Sha256::digest(joined.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

fn signed(terminal: &Terminal, mut fields: Map<String, Value>) -> Value {
    fields.insert("TerminalKey".into(), Value::String(terminal.terminal_key.clone()));
    let t = token(&fields, terminal.password.expose_secret());
    fields.insert("Token".into(), Value::String(t));
    Value::Object(fields)
}

/// A 54-FZ receipt in T-Bank's shape, when the terminal fiscalizes.
fn receipt(terminal: &Terminal, charge: &Charge<'_>) -> Option<Value> {
    let taxation = terminal.taxation.as_ref()?;
    let items: Vec<Value> = charge
        .items
        .iter()
        .map(|i| {
            serde_json::json!({
                "Name": i.name.chars().take(128).collect::<String>(),
                "Price": i.price_minor,
                "Quantity": i.quantity,
                "Amount": i.price_minor * i.quantity,
                "Tax": i.vat,
                "PaymentMethod": i.payment_method,
                "PaymentObject": i.payment_object,
            })
        })
        .collect();
    let mut r = serde_json::json!({ "Taxation": taxation, "Items": items });
    if let Some(e) = charge.email {
        r["Email"] = Value::String(e.to_owned());
    }
    if let Some(p) = charge.phone {
        r["Phone"] = Value::String(p.to_owned());
    }
    Some(r)
}

/// The body of `Init`: the attempt id is the bank's `OrderId` (unique per try).
pub fn init_body(terminal: &Terminal, charge: &Charge<'_>) -> Value {
    let mut f = Map::new();
    f.insert("Amount".into(), charge.amount_minor.into());
    f.insert("OrderId".into(), charge.reference.into());
    f.insert(
        "Description".into(),
        charge.description.chars().take(140).collect::<String>().into(),
    );
    f.insert("PayType".into(), "O".into());
    f.insert("NotificationURL".into(), charge.notification_url.into());
    f.insert("SuccessURL".into(), charge.success_url.into());
    f.insert("FailURL".into(), charge.fail_url.into());
    // The payment form's language (T-Bank speaks `ru` and `en`).
    if let Some(l) = charge.locale {
        f.insert("Language".into(), l.tag().into());
    }
    let mut body = signed(terminal, f);
    if let Some(r) = receipt(terminal, charge) {
        body["Receipt"] = r;
    }
    body
}

pub fn get_state_body(terminal: &Terminal, payment_id: &str) -> Value {
    let mut f = Map::new();
    f.insert("PaymentId".into(), payment_id.into());
    signed(terminal, f)
}

pub fn check_order_body(terminal: &Terminal, order_id: &str) -> Value {
    let mut f = Map::new();
    f.insert("OrderId".into(), order_id.into());
    signed(terminal, f)
}

/// `Cancel` of a confirmed payment is a refund of `amount_minor`.
pub fn cancel_body(terminal: &Terminal, payment_id: &str, amount_minor: i64) -> Value {
    let mut f = Map::new();
    f.insert("PaymentId".into(), payment_id.into());
    f.insert("Amount".into(), amount_minor.into());
    signed(terminal, f)
}

/// `PaymentId` comes as a string or a number depending on the method.
fn id_text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) if !s.is_empty() && s.len() <= 64 => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn refusal(v: &Value) -> (String, String) {
    let code = scalar(&v["ErrorCode"]).unwrap_or_else(|| "?".into());
    let mut message = v["Message"].as_str().unwrap_or("refused").to_owned();
    if let Some(d) = v["Details"].as_str().filter(|d| !d.is_empty()) {
        message = format!("{message}: {d}");
    }
    (code, message.chars().take(300).collect())
}

/// What an `Init` answer means. `http_status` is the HTTP status.
pub fn parse_init(http_status: u16, body: &[u8]) -> InitOutcome {
    if http_status >= 500 {
        return InitOutcome::Unavailable {
            why: format!("HTTP {http_status}"),
        };
    }
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return InitOutcome::Unknown {
            why: format!("HTTP {http_status}, not JSON"),
        };
    };
    match v["Success"].as_bool() {
        Some(true) => match (id_text(v.get("PaymentId")), v["PaymentURL"].as_str()) {
            (Some(id), Some(url)) if url.starts_with("https://") || url.starts_with("http://") => {
                InitOutcome::Redirect {
                    url: url.to_owned(),
                    acquirer_ref: id,
                }
            }
            _ => InitOutcome::Unknown {
                why: "success without PaymentId or PaymentURL".into(),
            },
        },
        Some(false) => {
            let (code, message) = refusal(&v);
            InitOutcome::Refused { code, message }
        }
        None => InitOutcome::Unknown {
            why: format!("HTTP {http_status}, no Success field"),
        },
    }
}

/// The attempt state a T-Bank status stands for.
pub fn map_status(status: &str) -> Mapped {
    match status {
        "NEW" | "FORM_SHOWED" | "AUTHORIZING" | "AUTHORIZED" | "CONFIRMING" | "3DS_CHECKED" => {
            Mapped::State(AttemptState::Pending)
        }
        "3DS_CHECKING" => Mapped::State(AttemptState::RequiresAction),
        "CONFIRMED" | "REFUNDING" | "PARTIAL_REFUNDED" | "REFUNDED" => Mapped::State(AttemptState::Succeeded),
        "REJECTED" | "AUTH_FAIL" | "DEADLINE_EXPIRED" => Mapped::State(AttemptState::Failed),
        "CANCELED" | "REVERSING" | "REVERSED" | "PARTIAL_REVERSED" => Mapped::State(AttemptState::Cancelled),
        _ => Mapped::Unknown,
    }
}

/// A `GetState` answer: the payment's status and amount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct State {
    pub payment_id: String,
    pub status: String,
    pub amount_minor: Option<i64>,
}

pub use super::AnswerError;

/// An answer whose `Token`, when present, verifies and that says `Success`.
fn successful_answer(terminal: &Terminal, body: &[u8]) -> Result<Value, AnswerError> {
    let v: Value = serde_json::from_slice(body).map_err(|_| AnswerError::NotJson)?;
    let fields = v.as_object().ok_or(AnswerError::NotJson)?;
    if let Some(t) = fields.get("Token").and_then(Value::as_str) {
        if !super::constant_time_eq(
            token(fields, terminal.password.expose_secret()).as_bytes(),
            t.as_bytes(),
        ) {
            return Err(AnswerError::BadToken);
        }
    }
    if v["Success"].as_bool() != Some(true) {
        let (code, message) = refusal(&v);
        return Err(AnswerError::Refused(code, message));
    }
    Ok(v)
}

/// Parses a `GetState` answer; its `Token`, when present, must verify.
pub fn parse_state(terminal: &Terminal, body: &[u8]) -> Result<State, AnswerError> {
    let v = successful_answer(terminal, body)?;
    Ok(State {
        payment_id: id_text(v.get("PaymentId")).ok_or(AnswerError::Field("PaymentId"))?,
        status: v["Status"].as_str().ok_or(AnswerError::Field("Status"))?.to_owned(),
        amount_minor: v["Amount"].as_i64(),
    })
}

/// A `CheckOrder` answer: the payments the bank has under our order id
/// (the attempt id), as (PaymentId, Status, Amount).
pub fn parse_check_order(terminal: &Terminal, body: &[u8]) -> Result<Vec<State>, AnswerError> {
    let v = successful_answer(terminal, body)?;
    let Some(list) = v.get("Payments") else {
        return Ok(Vec::new());
    };
    let list = list.as_array().ok_or(AnswerError::Field("Payments"))?;
    list.iter()
        .map(|p| {
            Ok(State {
                payment_id: id_text(p.get("PaymentId")).ok_or(AnswerError::Field("Payments[].PaymentId"))?,
                status: p["Status"]
                    .as_str()
                    .ok_or(AnswerError::Field("Payments[].Status"))?
                    .to_owned(),
                amount_minor: p["Amount"].as_i64(),
            })
        })
        .collect()
}

fn post(method: &str, body: Value) -> Call {
    Call {
        method: Method::Post,
        path: format!("/{method}"),
        authorization: None,
        headers: Vec::new(),
        body: Body::Json(body),
    }
}

impl From<State> for Payment {
    fn from(s: State) -> Payment {
        Payment {
            reference: None,
            created_as: Some(s.payment_id.clone()),
            payment_id: s.payment_id,
            status: s.status,
            amount_minor: s.amount_minor,
        }
    }
}

impl Acquirer for Terminal {
    fn bank(&self) -> super::Bank {
        super::Bank::TBank
    }

    fn accepts(&self, currency: &str) -> bool {
        super::takes(ACQUIRER, currency)
    }

    fn init(&self, charge: &Charge<'_>) -> Call {
        post("Init", init_body(self, charge))
    }

    fn parse_init(&self, http_status: u16, body: &[u8]) -> InitOutcome {
        parse_init(http_status, body)
    }

    /// `GetState` by `PaymentId`.
    fn lookup(&self, _reference: &str, acquirer_ref: &str) -> Call {
        post("GetState", get_state_body(self, acquirer_ref))
    }

    /// `CheckOrder` by our order id.
    fn find(&self, charge: &Charge<'_>) -> Call {
        post("CheckOrder", check_order_body(self, charge.reference))
    }

    fn parse_lookup(&self, acquirer_ref: Option<&str>, http_status: u16, body: &[u8]) -> Result<Lookup, AnswerError> {
        if http_status >= 500 {
            return Err(AnswerError::Http(http_status));
        }
        match acquirer_ref {
            Some(_) => parse_state(self, body).map(|s| Lookup::Found(s.into())),
            None => Ok(parse_check_order(self, body)?
                .into_iter()
                .next()
                .map_or(Lookup::NotFound, |s| Lookup::Found(s.into()))),
        }
    }

    /// `CheckOrder` of an order id no payment has: a signed request the
    /// bank answers `Success` to only under the terminal's password.
    fn verify(&self) -> Call {
        post(
            "CheckOrder",
            check_order_body(self, &format!("haul-check-{}", crate::ids::random_body())),
        )
    }

    fn parse_verify(&self, account: &str, http_status: u16, body: &[u8]) -> Result<super::Proof, AnswerError> {
        if http_status >= 500 {
            return Err(AnswerError::Http(http_status));
        }
        let v = successful_answer(self, body)?;
        if v["TerminalKey"].as_str().is_some_and(|k| k != account) {
            return Err(AnswerError::Field("TerminalKey"));
        }
        Ok(super::Proof { livemode: None })
    }

    fn map_status(&self, status: &str) -> Mapped {
        map_status(status)
    }

    /// `Cancel` of a confirmed payment; T-Bank has no idempotency key.
    fn refund(&self, payment_id: &str, amount_minor: i64, _currency: &str, _key: &str) -> Call {
        post("Cancel", cancel_body(self, payment_id, amount_minor))
    }

    fn parse_refund(&self, http_status: u16, body: &[u8]) -> Result<(), AnswerError> {
        if http_status >= 500 {
            return Err(AnswerError::Http(http_status));
        }
        let v: Value = serde_json::from_slice(body).map_err(|_| AnswerError::NotJson)?;
        if v["Success"].as_bool() == Some(true) {
            Ok(())
        } else {
            let (code, message) = refusal(&v);
            Err(AnswerError::Refused(code, message))
        }
    }
}

/// A verified notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    pub terminal_key: String,
    /// Our attempt id.
    pub order_id: String,
    pub payment_id: String,
    pub status: String,
    pub success: bool,
    pub amount_minor: i64,
    pub error_code: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotificationError {
    #[error("the body is not a JSON object")]
    NotJson,
    #[error("field {0} is missing or malformed")]
    Field(&'static str),
    #[error("the Token does not verify")]
    BadToken,
}

/// The terminal a notification claims to come from (read before verifying,
/// to find the password it must verify under).
pub fn terminal_of(body: &[u8]) -> Result<String, NotificationError> {
    let v: Value = serde_json::from_slice(body).map_err(|_| NotificationError::NotJson)?;
    match v.get("TerminalKey") {
        Some(Value::String(k)) if !k.is_empty() && k.len() <= 64 => Ok(k.clone()),
        _ => Err(NotificationError::Field("TerminalKey")),
    }
}

/// Verifies a notification's `Token` under the terminal's password (in
/// constant time) and reads it strictly.
pub fn verify_notification(body: &[u8], password: &str) -> Result<Notification, NotificationError> {
    let v: Value = serde_json::from_slice(body).map_err(|_| NotificationError::NotJson)?;
    let fields = v.as_object().ok_or(NotificationError::NotJson)?;
    let given = fields
        .get("Token")
        .and_then(Value::as_str)
        .ok_or(NotificationError::Field("Token"))?;
    let expected = token(fields, password);
    if !super::constant_time_eq(expected.as_bytes(), given.as_bytes()) {
        return Err(NotificationError::BadToken);
    }
    let text = |k: &'static str| -> Result<String, NotificationError> {
        match fields.get(k) {
            Some(Value::String(s)) if !s.is_empty() && s.len() <= 64 => Ok(s.clone()),
            _ => Err(NotificationError::Field(k)),
        }
    };
    Ok(Notification {
        terminal_key: text("TerminalKey")?,
        order_id: text("OrderId")?,
        payment_id: id_text(fields.get("PaymentId")).ok_or(NotificationError::Field("PaymentId"))?,
        status: text("Status")?,
        success: fields
            .get("Success")
            .and_then(Value::as_bool)
            .ok_or(NotificationError::Field("Success"))?,
        amount_minor: fields
            .get("Amount")
            .and_then(Value::as_i64)
            .filter(|a| *a > 0)
            .ok_or(NotificationError::Field("Amount"))?,
        error_code: fields.get("ErrorCode").and_then(scalar).unwrap_or_else(|| "0".into()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The worked example of T-Bank's "Token" documentation.
    #[test]
    fn the_documented_token_example() {
        let fields = json!({
            "TerminalKey": "MerchantTerminalKey",
            "Amount": 19200,
            "OrderId": "00000",
            "Description": "Подарочная карта на 1000 рублей",
            "DATA": { "Phone": "+71234567890", "Email": "a@test.com" },
            "Receipt": { "Items": [] },
        });
        assert_eq!(
            token(fields.as_object().unwrap(), "11111111111111"),
            "72dd466f8ace0a37a1f740ce5fb78101712bc0665d91a8108c7c8a0ccd426db2"
        );
    }

    fn terminal() -> Terminal {
        Terminal {
            terminal_key: "TestTerminal".into(),
            password: "secret-password".into(),
            taxation: Some("usn_income".into()),
        }
    }

    #[test]
    fn notifications_verify_and_read_strictly() {
        let t = terminal();
        let mut n = json!({ "TerminalKey": "TestTerminal", "OrderId": "pat_1", "Success": true,
            "Status": "CONFIRMED", "PaymentId": 13660, "ErrorCode": "0", "Amount": 149000,
            "CardId": 1, "Pan": "430000******0777", "ExpDate": "1122" });
        let tok = token(n.as_object().unwrap(), t.password.expose_secret());
        n["Token"] = tok.into();
        let body = n.to_string();
        assert_eq!(terminal_of(body.as_bytes()).unwrap(), "TestTerminal");
        let got = verify_notification(body.as_bytes(), t.password.expose_secret()).unwrap();
        assert_eq!(
            (
                got.payment_id.as_str(),
                got.status.as_str(),
                got.amount_minor,
                got.success
            ),
            ("13660", "CONFIRMED", 149000, true)
        );
        // Another password, a changed amount, no token: refused.
        assert_eq!(
            verify_notification(body.as_bytes(), "other"),
            Err(NotificationError::BadToken)
        );
        let tampered = body.replace("149000", "1");
        assert_eq!(
            verify_notification(tampered.as_bytes(), t.password.expose_secret()),
            Err(NotificationError::BadToken)
        );
        let mut unsigned = n.clone();
        unsigned.as_object_mut().unwrap().remove("Token");
        assert_eq!(
            verify_notification(unsigned.to_string().as_bytes(), t.password.expose_secret()),
            Err(NotificationError::Field("Token"))
        );
        assert_eq!(
            verify_notification(b"[1]", t.password.expose_secret()),
            Err(NotificationError::NotJson)
        );
        assert_eq!(
            verify_notification(b"{", t.password.expose_secret()),
            Err(NotificationError::NotJson)
        );
    }

    #[test]
    fn init_is_signed_and_carries_the_receipt() {
        let t = terminal();
        let items = [crate::checkout::Item {
            name: "Kettle".into(),
            quantity: 2,
            price_minor: 50_000,
            vat: "vat20".into(),
            payment_method: "full_payment".into(),
            payment_object: "commodity".into(),
        }];
        let charge = Charge {
            reference: "pat_1",
            amount_minor: 100_000,
            currency: "RUB",
            description: "Order A-1",
            items: &items,
            email: Some("buyer@example.com"),
            phone: None,
            success_url: "https://haul.example/checkout/cs_1?return=1",
            fail_url: "https://haul.example/checkout/cs_1?return=1",
            notification_url: "https://haul.example/v1/callbacks/tbank",
            locale: Some(widget::Locale::En),
        };
        let body = init_body(&t, &charge);
        let fields = body.as_object().unwrap();
        assert_eq!(
            fields["Token"].as_str().unwrap(),
            token(fields, t.password.expose_secret())
        );
        assert_eq!(body["Receipt"]["Items"][0]["Amount"], 100_000);
        // The form's language is signed with the rest.
        assert_eq!(body["Language"], "en");
        assert_eq!(body["Receipt"]["Taxation"], "usn_income");
        assert_eq!(body["Receipt"]["Email"], "buyer@example.com");
    }

    #[test]
    fn init_answers_are_read() {
        let ok = br#"{"Success":true,"ErrorCode":"0","TerminalKey":"T","Status":"NEW","PaymentId":"3093639567","OrderId":"pat_1","Amount":100000,"PaymentURL":"https://securepay.tinkoff.ru/new/fU1ppgqa"}"#;
        assert_eq!(
            parse_init(200, ok),
            InitOutcome::Redirect {
                url: "https://securepay.tinkoff.ru/new/fU1ppgqa".into(),
                acquirer_ref: "3093639567".into()
            }
        );
        let refused =
            br#"{"Success":false,"ErrorCode":"204","Message":"Terminal blocked","Details":"contact the bank"}"#;
        assert!(matches!(parse_init(200, refused), InitOutcome::Refused { code, .. } if code == "204"));
        assert!(matches!(parse_init(503, b""), InitOutcome::Unavailable { .. }));
        assert!(matches!(parse_init(200, b"<html>"), InitOutcome::Unknown { .. }));
        assert!(matches!(
            parse_init(200, br#"{"Success":true}"#),
            InitOutcome::Unknown { .. }
        ));
    }

    #[test]
    fn check_order_lists_the_payments_of_an_order() {
        let t = terminal();
        let none = br#"{"Success":true,"ErrorCode":"0","OrderId":"pat_1","Payments":[]}"#;
        assert_eq!(parse_check_order(&t, none).unwrap(), vec![]);
        let one = br#"{"Success":true,"ErrorCode":"0","OrderId":"pat_1","Payments":[{"PaymentId":"77","Amount":100,"Status":"CONFIRMED","Success":true,"ErrorCode":"0"}]}"#;
        assert_eq!(
            parse_check_order(&t, one).unwrap(),
            vec![State {
                payment_id: "77".into(),
                status: "CONFIRMED".into(),
                amount_minor: Some(100)
            }]
        );
        assert!(matches!(
            parse_check_order(&t, br#"{"Success":false,"ErrorCode":"7","Message":"no"}"#),
            Err(AnswerError::Refused(..))
        ));
        assert_eq!(parse_check_order(&t, b"<html>"), Err(AnswerError::NotJson));
    }

    #[test]
    fn statuses_map_to_attempt_states() {
        assert_eq!(map_status("CONFIRMED"), Mapped::State(AttemptState::Succeeded));
        assert_eq!(map_status("REJECTED"), Mapped::State(AttemptState::Failed));
        assert_eq!(map_status("3DS_CHECKING"), Mapped::State(AttemptState::RequiresAction));
        assert_eq!(map_status("AUTHORIZED"), Mapped::State(AttemptState::Pending));
        assert_eq!(map_status("SOMETHING_NEW"), Mapped::Unknown);
    }
}
