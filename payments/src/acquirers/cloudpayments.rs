//! CloudPayments: the protocol, without HTTP.
//!
//! - Requests are JSON POSTs to `https://api.cloudpayments.ru`, HTTP Basic
//!   with the site's Public ID and API secret; `X-Request-ID` makes a
//!   repeated request harmless (the attempt id on creation, the refund key on
//!   refunds).
//! - A payment is created as an order (`/orders/create`): the answer's
//!   `Model.Url` is the hosted page, `Model.Id` the order; our attempt id is
//!   the `InvoiceId`, which the bank echoes in notifications and by which
//!   `/payments/find` looks the payment up. The transaction (`TransactionId`)
//!   exists once the buyer pays; refunds name it (`/payments/refund`).
//! - **Amounts** are decimals in major units with two digits after the point
//!   (`"Amount": 10.5` is 10.50); the JSON number always has at most two
//!   fraction digits, so it is exact. Currencies: those in [`CURRENCIES`],
//!   all with two minor digits.
//! - **Answers** carry `Success` and `Message`; `Success: false` on creation
//!   created nothing.
//! - **Notifications** (Check, Pay, Fail, Refund) are POSTed to the URL set
//!   in the site's settings, form-encoded or JSON; `Content-HMAC` (or
//!   `X-Content-HMAC`) is base64(HMAC-SHA256(raw body, API secret)). The
//!   handler answers `{"code":0}`; to a Check, another code refuses the
//!   payment ([`CHECK_UNKNOWN_INVOICE`], [`CHECK_WRONG_AMOUNT`],
//!   [`CHECK_REFUSED`], [`CHECK_EXPIRED`]).
//! - **Receipts** (54-FZ) go in `JsonData.CloudPayments.CustomerReceipt`
//!   when the seller sets a tax system: `taxationSystem` 0–5, items with
//!   `vat` (null for none, else the percentage; 110/120 the calculated
//!   rates), `method` 1–7 and `object` 1–13 as in the 54-FZ tables.
//!
//! Status mapping:
//!
//! | CloudPayments `Status` | attempt |
//! | --- | --- |
//! | `AwaitingAuthentication` | requires_action |
//! | `Authorized` | pending (two-stage payments are not used) |
//! | `Completed` | succeeded |
//! | `Declined` | failed |
//! | `Cancelled` | cancelled |
//!
//! A Fail notification is `Declined`; a Pay notification its `Status`.

use base64::Engine;
use hmac::{Hmac, Mac};
use secrecy::SecretString;
use serde_json::{json, Map, Value};
use sha2::Sha256;

use super::{
    decimal, parse_decimal, Acquirer, AnswerError, Body, Call, Charge, InitOutcome, Lookup, Mapped, Method, Payment,
};
use crate::state::AttemptState;

pub const ACQUIRER: &str = "cloudpayments";
pub const DEFAULT_BASE_URL: &str = "https://api.cloudpayments.ru";
pub const CURRENCIES: &[&str] = &["RUB", "EUR", "USD", "GBP", "KZT", "BYN", "UZS"];

/// Check answers: the payment may go on, or why not.
pub const CHECK_OK: i64 = 0;
pub const CHECK_UNKNOWN_INVOICE: i64 = 10;
pub const CHECK_WRONG_AMOUNT: i64 = 12;
pub const CHECK_REFUSED: i64 = 13;
pub const CHECK_EXPIRED: i64 = 20;

/// A site's credentials.
#[derive(Debug, Clone)]
pub struct Site {
    pub public_id: String,
    pub api_secret: SecretString,
    /// The seller's tax system for receipts; no receipt when `None`.
    pub taxation: Option<String>,
}

fn taxation_code(t: &str) -> Option<i64> {
    Some(match t {
        "osn" => 0,
        "usn_income" => 1,
        "usn_income_outcome" => 2,
        "esn" => 4,
        "patent" => 5,
        _ => return None,
    })
}

fn vat(v: &str) -> Value {
    match v {
        "vat0" => json!(0),
        "vat5" => json!(5),
        "vat7" => json!(7),
        "vat10" => json!(10),
        "vat20" => json!(20),
        "vat105" => json!(105),
        "vat107" => json!(107),
        "vat110" => json!(110),
        "vat120" => json!(120),
        _ => Value::Null,
    }
}

/// The 54-FZ "способ расчёта" code.
pub fn method_code(m: &str) -> i64 {
    match m {
        "full_prepayment" => 1,
        "prepayment" => 2,
        "advance" => 3,
        "partial_payment" => 5,
        "credit" => 6,
        "credit_payment" => 7,
        _ => 4,
    }
}

/// The 54-FZ "предмет расчёта" code.
pub fn object_code(o: &str) -> i64 {
    match o {
        "excise" => 2,
        "job" => 3,
        "service" => 4,
        "payment" => 10,
        "agent_commission" => 11,
        "composite" => 12,
        "another" => 13,
        _ => 1,
    }
}

/// An exact JSON number for a two-digit decimal amount.
fn amount(minor: i64) -> Value {
    let text = decimal(minor);
    serde_json::from_str(&text).unwrap_or(Value::String(text))
}

fn receipt(site: &Site, charge: &Charge<'_>) -> Option<Value> {
    let system = taxation_code(site.taxation.as_deref()?)?;
    let items: Vec<Value> = charge
        .items
        .iter()
        .map(|i| {
            json!({
                "label": i.name.chars().take(128).collect::<String>(),
                "price": amount(i.price_minor),
                "quantity": i.quantity,
                "amount": amount(i.price_minor * i.quantity),
                "vat": vat(&i.vat),
                "method": method_code(&i.payment_method),
                "object": object_code(&i.payment_object),
            })
        })
        .collect();
    let mut r = json!({
        "Items": items, "taxationSystem": system,
        "amounts": { "electronic": amount(charge.amount_minor) },
    });
    if let Some(e) = charge.email {
        r["email"] = e.into();
    }
    if let Some(p) = charge.phone {
        r["phone"] = p.into();
    }
    Some(r)
}

impl Site {
    fn call(&self, path: &str, request_id: Option<&str>, body: Value) -> Call {
        let headers = request_id
            .map(|id| ("x-request-id", id.to_owned()))
            .into_iter()
            .collect();
        Call {
            method: Method::Post,
            path: path.into(),
            authorization: Some(super::basic(&self.public_id, &self.api_secret)),
            headers,
            body: Body::Json(body),
        }
    }
}

fn answer(http_status: u16, body: &[u8]) -> Result<Value, AnswerError> {
    if http_status >= 500 {
        return Err(AnswerError::Http(http_status));
    }
    let v: Value = serde_json::from_slice(body).map_err(|_| AnswerError::NotJson)?;
    if !v.is_object() {
        return Err(AnswerError::NotJson);
    }
    Ok(v)
}

fn message(v: &Value) -> String {
    v["Message"].as_str().unwrap_or("refused").chars().take(300).collect()
}

/// A transaction id: an Int64, as a number or its text.
fn transaction_id(v: &Value) -> Option<String> {
    match v {
        Value::Number(n) if n.as_u64().is_some_and(|n| n > 0) => Some(n.to_string()),
        Value::String(s) if !s.is_empty() && s.len() <= 19 && s.bytes().all(|b| b.is_ascii_digit()) => Some(s.clone()),
        _ => None,
    }
}

fn payment_of(model: &Value) -> Result<Payment, AnswerError> {
    Ok(Payment {
        reference: model["InvoiceId"].as_str().map(str::to_owned),
        payment_id: transaction_id(&model["TransactionId"]).ok_or(AnswerError::Field("Model.TransactionId"))?,
        created_as: None,
        status: model["Status"]
            .as_str()
            .ok_or(AnswerError::Field("Model.Status"))?
            .to_owned(),
        amount_minor: parse_decimal(&model["Amount"]),
    })
}

impl Acquirer for Site {
    fn bank(&self) -> super::Bank {
        super::Bank::CloudPayments
    }

    fn accepts(&self, currency: &str) -> bool {
        super::takes(ACQUIRER, currency)
    }

    fn init(&self, charge: &Charge<'_>) -> Call {
        let mut body = json!({
            "Amount": amount(charge.amount_minor),
            "Currency": charge.currency,
            "Description": charge.description.chars().take(140).collect::<String>(),
            "InvoiceId": charge.reference,
            "RequireConfirmation": false,
            "SendEmail": false,
            "SuccessRedirectUrl": charge.success_url,
            "FailRedirectUrl": charge.fail_url,
        });
        if let Some(e) = charge.email {
            body["Email"] = e.into();
        }
        if let Some(p) = charge.phone {
            body["Phone"] = p.into();
        }
        // The payment page's language.
        if let Some(l) = charge.locale {
            body["CultureName"] = match l {
                widget::Locale::Ru => "ru-RU",
                widget::Locale::En => "en-US",
            }
            .into();
        }
        if let Some(r) = receipt(self, charge) {
            body["JsonData"] = json!({ "CloudPayments": { "CustomerReceipt": r } });
        }
        self.call("/orders/create", Some(charge.reference), body)
    }

    fn parse_init(&self, http_status: u16, body: &[u8]) -> InitOutcome {
        let v = match answer(http_status, body) {
            Ok(v) => v,
            Err(AnswerError::Http(code)) => {
                return InitOutcome::Unavailable {
                    why: format!("HTTP {code}"),
                }
            }
            Err(e) => return InitOutcome::Unknown { why: e.to_string() },
        };
        match v["Success"].as_bool() {
            Some(true) => match (v["Model"]["Id"].as_str(), v["Model"]["Url"].as_str()) {
                (Some(id), Some(url))
                    if !id.is_empty()
                        && id.len() <= 64
                        && (url.starts_with("https://") || url.starts_with("http://")) =>
                {
                    InitOutcome::Redirect {
                        url: url.to_owned(),
                        acquirer_ref: id.to_owned(),
                    }
                }
                _ => InitOutcome::Unknown {
                    why: "success without Model.Id or Model.Url".into(),
                },
            },
            Some(false) => InitOutcome::Refused {
                code: "Success=false".into(),
                message: message(&v),
            },
            None => InitOutcome::Unknown {
                why: format!("HTTP {http_status}, no Success field"),
            },
        }
    }

    /// `/payments/find` by our `InvoiceId` (the order's id does not name
    /// the transaction).
    /// The API's `/test` method: `Success` under the site's Public ID and
    /// API secret only.
    fn verify(&self) -> Call {
        self.call("/test", None, json!({}))
    }

    fn parse_verify(&self, _account: &str, http_status: u16, body: &[u8]) -> Result<super::Proof, AnswerError> {
        if http_status == 401 || http_status == 403 {
            return Err(AnswerError::Http(http_status));
        }
        let v = answer(http_status, body)?;
        match v["Success"].as_bool() {
            Some(true) => Ok(super::Proof { livemode: None }),
            _ => Err(AnswerError::Refused("refused".into(), message(&v))),
        }
    }

    fn lookup(&self, reference: &str, _acquirer_ref: &str) -> Call {
        self.call("/payments/find", None, json!({ "InvoiceId": reference }))
    }

    fn find(&self, charge: &Charge<'_>) -> Call {
        self.lookup(charge.reference, "")
    }

    fn parse_lookup(&self, _acquirer_ref: Option<&str>, http_status: u16, body: &[u8]) -> Result<Lookup, AnswerError> {
        let v = answer(http_status, body)?;
        match v["Success"].as_bool() {
            Some(true) => payment_of(&v["Model"]).map(Lookup::Found),
            // "Not found": the buyer has not paid (or the order never was).
            Some(false) if v["Model"].is_null() && message(&v).to_lowercase().contains("not found") => {
                Ok(Lookup::NotFound)
            }
            Some(false) => Err(AnswerError::Refused("Success=false".into(), message(&v))),
            None => Err(AnswerError::Field("Success")),
        }
    }

    fn map_status(&self, status: &str) -> Mapped {
        map_status(status)
    }

    fn refund(&self, payment_id: &str, amount_minor: i64, _currency: &str, key: &str) -> Call {
        let id: Value = payment_id
            .parse::<u64>()
            .map_or_else(|_| Value::String(payment_id.to_owned()), Value::from);
        self.call(
            "/payments/refund",
            Some(key),
            json!({ "TransactionId": id, "Amount": amount(amount_minor) }),
        )
    }

    fn parse_refund(&self, http_status: u16, body: &[u8]) -> Result<(), AnswerError> {
        let v = answer(http_status, body)?;
        if v["Success"].as_bool() == Some(true) {
            Ok(())
        } else {
            Err(AnswerError::Refused("Success=false".into(), message(&v)))
        }
    }
}

pub fn map_status(status: &str) -> Mapped {
    match status {
        "AwaitingAuthentication" => Mapped::State(AttemptState::RequiresAction),
        "Authorized" => Mapped::State(AttemptState::Pending),
        "Completed" => Mapped::State(AttemptState::Succeeded),
        "Declined" => Mapped::State(AttemptState::Failed),
        "Cancelled" => Mapped::State(AttemptState::Cancelled),
        _ => Mapped::Unknown,
    }
}

/// Which notification it is (the URL it came to says so).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Check,
    Pay,
    Fail,
    Refund,
}

impl Kind {
    pub fn parse(s: &str) -> Option<Kind> {
        Some(match s {
            "check" => Kind::Check,
            "pay" => Kind::Pay,
            "fail" => Kind::Fail,
            "refund" => Kind::Refund,
            _ => return None,
        })
    }
}

/// A verified notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    pub kind: Kind,
    /// Our attempt id.
    pub invoice_id: String,
    pub transaction_id: String,
    pub amount_minor: i64,
    pub currency: String,
    /// `Status` as sent; `Declined` for Fail.
    pub status: String,
}

impl Notification {
    pub fn payment(&self) -> Payment {
        Payment {
            reference: Some(self.invoice_id.clone()),
            payment_id: self.transaction_id.clone(),
            created_as: None,
            status: self.status.clone(),
            amount_minor: Some(self.amount_minor),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotificationError {
    #[error("no Content-HMAC header")]
    Unsigned,
    #[error("the Content-HMAC does not verify")]
    BadSignature,
    #[error("the body is neither a form nor a JSON object")]
    Malformed,
    #[error("field {0} is missing or malformed")]
    Field(&'static str),
}

/// base64(HMAC-SHA256(body, secret)).
pub fn content_hmac(body: &[u8], secret: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(body);
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Verifies a notification's HMAC (either header; compared in constant
/// time) on the raw body, then reads it strictly (form or JSON).
pub fn verify_notification(
    kind: Kind,
    body: &[u8],
    signatures: &[&str],
    secret: &str,
) -> Result<Notification, NotificationError> {
    if signatures.is_empty() {
        return Err(NotificationError::Unsigned);
    }
    let expected = content_hmac(body, secret);
    if !signatures
        .iter()
        .any(|s| super::constant_time_eq(expected.as_bytes(), s.trim().as_bytes()))
    {
        return Err(NotificationError::BadSignature);
    }
    let fields: Map<String, Value> = match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => m,
        Ok(_) => return Err(NotificationError::Malformed),
        Err(_) => {
            let text = std::str::from_utf8(body).map_err(|_| NotificationError::Malformed)?;
            if text.is_empty() || !text.contains('=') {
                return Err(NotificationError::Malformed);
            }
            form_urlencoded::parse(text.as_bytes())
                .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
                .collect()
        }
    };
    let text = |k: &'static str| -> Result<String, NotificationError> {
        match fields.get(k) {
            Some(Value::String(s)) if !s.is_empty() && s.len() <= 64 => Ok(s.clone()),
            _ => Err(NotificationError::Field(k)),
        }
    };
    let status = match kind {
        Kind::Fail => "Declined".to_owned(),
        Kind::Refund => "Refunded".to_owned(),
        Kind::Check | Kind::Pay => text("Status")?,
    };
    Ok(Notification {
        kind,
        invoice_id: text("InvoiceId")?,
        transaction_id: fields
            .get("TransactionId")
            .and_then(transaction_id)
            .ok_or(NotificationError::Field("TransactionId"))?,
        amount_minor: fields
            .get("Amount")
            .and_then(parse_decimal)
            .filter(|a| *a > 0)
            .ok_or(NotificationError::Field("Amount"))?,
        currency: text("Currency")?,
        status,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site() -> Site {
        Site {
            public_id: "pk_test".into(),
            api_secret: "api-secret".into(),
            taxation: Some("usn_income".into()),
        }
    }

    /// An HMAC computed with Python's standard library over a form body.
    #[test]
    fn content_hmac_is_base64_hmac_sha256_of_the_raw_body() {
        let body = b"TransactionId=504&Amount=100.00&Currency=RUB&InvoiceId=pat_1&Status=Completed";
        assert_eq!(
            content_hmac(body, "api-secret"),
            "YKdlVe3+wD7TPyGEZVYi8+f0yUw+YwGyOKFbzI9gifg="
        );
    }

    #[test]
    fn notifications_verify_and_read_strictly() {
        let body = b"TransactionId=504&Amount=100.00&Currency=RUB&InvoiceId=pat_1&Status=Completed&DateTime=2026-11-24+10%3A00%3A00";
        let sig = content_hmac(body, "api-secret");
        let n = verify_notification(Kind::Pay, body, &[&sig], "api-secret").unwrap();
        assert_eq!(
            (
                n.transaction_id.as_str(),
                n.amount_minor,
                n.status.as_str(),
                n.invoice_id.as_str()
            ),
            ("504", 10_000, "Completed", "pat_1")
        );
        let json_body = br#"{"TransactionId":505,"Amount":10.5,"Currency":"RUB","InvoiceId":"pat_2","Reason":"InsufficientFunds","ReasonCode":5051}"#;
        let sig = content_hmac(json_body, "api-secret");
        let n = verify_notification(Kind::Fail, json_body, &["nope", &sig], "api-secret").unwrap();
        assert_eq!((n.amount_minor, n.status.as_str()), (1050, "Declined"));
        assert_eq!(
            verify_notification(Kind::Pay, body, &[], "api-secret"),
            Err(NotificationError::Unsigned)
        );
        assert_eq!(
            verify_notification(Kind::Pay, body, &[&content_hmac(body, "other")], "api-secret"),
            Err(NotificationError::BadSignature)
        );
        let no_invoice = b"TransactionId=504&Amount=100.00&Currency=RUB&Status=Completed";
        assert_eq!(
            verify_notification(Kind::Pay, no_invoice, &[&content_hmac(no_invoice, "s")], "s"),
            Err(NotificationError::Field("InvoiceId"))
        );
        let bad_amount = b"TransactionId=504&Amount=1.001&Currency=RUB&InvoiceId=pat_1&Status=Completed";
        assert_eq!(
            verify_notification(Kind::Pay, bad_amount, &[&content_hmac(bad_amount, "s")], "s"),
            Err(NotificationError::Field("Amount"))
        );
        assert_eq!(
            verify_notification(Kind::Pay, b"[1]", &[&content_hmac(b"[1]", "s")], "s"),
            Err(NotificationError::Malformed)
        );
    }

    #[test]
    fn orders_carry_exact_amounts_and_the_receipt() {
        let items = [crate::checkout::Item {
            name: "Kettle".into(),
            quantity: 3,
            price_minor: 33_333,
            vat: "vat20".into(),
            payment_method: "full_payment".into(),
            payment_object: "commodity".into(),
        }];
        let charge = Charge {
            reference: "pat_1",
            amount_minor: 99_999,
            currency: "RUB",
            description: "Order",
            items: &items,
            email: Some("b@example.com"),
            phone: None,
            success_url: "https://h/s",
            fail_url: "https://h/f",
            notification_url: "https://h/n",
            locale: None,
        };
        let call = site().init(&charge);
        let Body::Json(body) = &call.body else {
            panic!("JSON body")
        };
        assert!(body.to_string().contains("\"Amount\":999.99"), "{body}");
        let r = &body["JsonData"]["CloudPayments"]["CustomerReceipt"];
        assert_eq!(r["taxationSystem"], 1);
        assert_eq!(r["Items"][0]["vat"], 20);
        assert_eq!(r["Items"][0]["method"], 4);
        assert_eq!(r["Items"][0]["amount"].to_string(), "999.99");
        assert!(call.headers.iter().any(|(k, v)| *k == "x-request-id" && v == "pat_1"));
    }

    #[test]
    fn answers_are_read() {
        let s = site();
        let ok = br#"{"Success":true,"Message":null,"Model":{"Id":"f2K8LV6reGE9WBFn","Number":61,"Amount":10.0,"Currency":"RUB","Url":"https://orders.cloudpayments.ru/d/f2K8LV6reGE9WBFn"}}"#;
        assert_eq!(
            s.parse_init(200, ok),
            InitOutcome::Redirect {
                url: "https://orders.cloudpayments.ru/d/f2K8LV6reGE9WBFn".into(),
                acquirer_ref: "f2K8LV6reGE9WBFn".into()
            }
        );
        assert!(matches!(
            s.parse_init(200, br#"{"Success":false,"Message":"Terminal is blocked"}"#),
            InitOutcome::Refused { .. }
        ));
        assert!(matches!(s.parse_init(502, b""), InitOutcome::Unavailable { .. }));
        assert!(matches!(s.parse_init(200, b"<html"), InitOutcome::Unknown { .. }));
        assert_eq!(
            s.parse_lookup(None, 200, br#"{"Success":false,"Message":"Not found"}"#),
            Ok(Lookup::NotFound)
        );
        let found = br#"{"Success":true,"Model":{"TransactionId":504,"Amount":100.0,"InvoiceId":"pat_1","Status":"Completed"}}"#;
        assert_eq!(
            s.parse_lookup(None, 200, found),
            Ok(Lookup::Found(Payment {
                reference: Some("pat_1".into()),
                payment_id: "504".into(),
                created_as: None,
                status: "Completed".into(),
                amount_minor: Some(10_000)
            }))
        );
        assert_eq!(map_status("Completed"), Mapped::State(AttemptState::Succeeded));
        assert_eq!(map_status("Declined"), Mapped::State(AttemptState::Failed));
        assert_eq!(map_status("Other"), Mapped::Unknown);
    }
}
