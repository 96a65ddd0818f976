//! YooKassa (API v3): the protocol, without HTTP.
//!
//! - Requests go to `https://api.yookassa.ru/v3` with HTTP Basic (shop id,
//!   secret key); every POST carries an `Idempotence-Key`, so repeating it
//!   answers the first result (the attempt id on creation; a key of our own
//!   on captures and refunds).
//! - A payment is created two-stage (`capture: false`) with a `redirect`
//!   confirmation (or, with the shop's `confirmation: "embedded"` setting,
//!   an `embedded` one whose `confirmation_token` runs YooKassa's form in a
//!   page of Haul's): the buyer pays on YooKassa's page, the payment waits for
//!   capture, and Haul captures it ([`Acquirer::capture`]) when it hears of
//!   it; our attempt id travels in `metadata.haul_attempt`.
//! - **Amounts** are `{"value": "10.50", "currency": "RUB"}`: a decimal
//!   string in major units with two digits; RUB only.
//! - **Errors** are `{"type": "error", "code", "description"}`: 4xx created
//!   nothing (refused); a 500 means the result is unknown (the same request
//!   with the same key tells later).
//! - **Notifications** are not signed: the handler reads only the object's
//!   id from them, fetches the object from the API and trusts that answer;
//!   optionally the sender's address must be in YooKassa's published
//!   networks ([`SENDER_NETWORKS`]). Any 200 answer acknowledges.
//! - **Receipts** (54-FZ): `receipt` with `customer`, `items` (`vat_code`
//!   1–10, `payment_mode`, `payment_subject` in 54-FZ names) and the tax
//!   system's `tax_system_code` 1–6, when the seller sets one.
//!
//! Status mapping:
//!
//! | YooKassa `status` | attempt |
//! | --- | --- |
//! | `pending` | pending |
//! | `waiting_for_capture` | pending (Haul captures it) |
//! | `succeeded` | succeeded |
//! | `canceled` | failed (declined, expired unconfirmed, or not captured) |

use secrecy::SecretString;
use serde_json::{json, Value};

use super::{
    decimal, parse_decimal, Acquirer, AnswerError, Body, Call, Charge, InitOutcome, Lookup, Mapped, Method, Payment,
};
use crate::state::AttemptState;

pub const ACQUIRER: &str = "yookassa";
pub const DEFAULT_BASE_URL: &str = "https://api.yookassa.ru/v3";

/// YooKassa's published notification senders (CIDR).
pub const SENDER_NETWORKS: &[&str] = &[
    "185.71.76.0/27",
    "185.71.77.0/27",
    "77.75.153.0/25",
    "77.75.156.11/32",
    "77.75.156.35/32",
    "77.75.154.128/25",
    "2a02:5180::/32",
];

/// A shop's credentials.
#[derive(Debug, Clone)]
pub struct Shop {
    pub shop_id: String,
    pub secret_key: SecretString,
    /// The seller's tax system for receipts; no receipt when `None`.
    pub tax_system: Option<String>,
    /// Confirm on YooKassa's form embedded in Haul's page instead of a
    /// redirect to YooKassa's.
    pub embedded: bool,
}

fn tax_system_code(t: &str) -> Option<i64> {
    Some(match t {
        "osn" => 1,
        "usn_income" => 2,
        "usn_income_outcome" => 3,
        "esn" => 5,
        "patent" => 6,
        _ => return None,
    })
}

/// YooKassa's `vat_code`.
pub fn vat_code(v: &str) -> i64 {
    match v {
        "vat0" => 2,
        "vat10" => 3,
        "vat20" => 4,
        "vat110" => 5,
        "vat120" => 6,
        "vat5" => 7,
        "vat7" => 8,
        "vat105" => 9,
        "vat107" => 10,
        _ => 1,
    }
}

fn money(minor: i64, currency: &str) -> Value {
    json!({ "value": decimal(minor), "currency": currency })
}

fn receipt(shop: &Shop, charge: &Charge<'_>) -> Option<Value> {
    let code = tax_system_code(shop.tax_system.as_deref()?)?;
    let items: Vec<Value> = charge
        .items
        .iter()
        .map(|i| {
            json!({
                "description": i.name.chars().take(128).collect::<String>(),
                "quantity": format!("{}.00", i.quantity),
                "amount": money(i.price_minor, charge.currency),
                "vat_code": vat_code(&i.vat),
                "payment_mode": i.payment_method,
                "payment_subject": i.payment_object,
            })
        })
        .collect();
    let mut customer = serde_json::Map::new();
    if let Some(e) = charge.email {
        customer.insert("email".into(), e.into());
    }
    if let Some(p) = charge.phone {
        customer.insert("phone".into(), p.trim_start_matches('+').into());
    }
    Some(json!({ "customer": customer, "items": items, "tax_system_code": code }))
}

impl Shop {
    fn call(&self, method: Method, path: String, key: Option<&str>, body: Body) -> Call {
        let headers = key.map(|k| ("idempotence-key", k.to_owned())).into_iter().collect();
        Call {
            method,
            path,
            authorization: Some(super::basic(&self.shop_id, &self.secret_key)),
            headers,
            body,
        }
    }
}

/// A payment object (or an error) from any answer.
fn object(http_status: u16, body: &[u8]) -> Result<Value, AnswerError> {
    if http_status >= 500 {
        return Err(AnswerError::Http(http_status));
    }
    let v: Value = serde_json::from_slice(body).map_err(|_| AnswerError::NotJson)?;
    if !v.is_object() {
        return Err(AnswerError::NotJson);
    }
    if v["type"] == "error" || http_status >= 400 {
        return Err(AnswerError::Refused(
            v["code"].as_str().unwrap_or("error").chars().take(64).collect(),
            v["description"].as_str().unwrap_or("").chars().take(300).collect(),
        ));
    }
    Ok(v)
}

/// A payment object as a [`Payment`].
pub fn payment_of(v: &Value) -> Result<Payment, AnswerError> {
    let id = v["id"]
        .as_str()
        .filter(|s| !s.is_empty() && s.len() <= 64)
        .ok_or(AnswerError::Field("id"))?;
    Ok(Payment {
        reference: v["metadata"]["haul_attempt"].as_str().map(str::to_owned),
        payment_id: id.to_owned(),
        created_as: Some(id.to_owned()),
        status: v["status"].as_str().ok_or(AnswerError::Field("status"))?.to_owned(),
        amount_minor: parse_decimal(&v["amount"]["value"]),
    })
}

impl Acquirer for Shop {
    fn bank(&self) -> super::Bank {
        super::Bank::YooKassa
    }

    fn accepts(&self, currency: &str) -> bool {
        super::takes(ACQUIRER, currency)
    }

    fn init(&self, charge: &Charge<'_>) -> Call {
        let mut body = json!({
            "amount": money(charge.amount_minor, charge.currency),
            "capture": false,
            "confirmation": if self.embedded {
                json!({ "type": "embedded" })
            } else {
                json!({ "type": "redirect", "return_url": charge.success_url })
            },
            "description": charge.description.chars().take(128).collect::<String>(),
            "metadata": { "haul_attempt": charge.reference },
        });
        // The payment form's language.
        if let Some(l) = charge.locale {
            body["confirmation"]["locale"] = match l {
                widget::Locale::Ru => "ru_RU",
                widget::Locale::En => "en_US",
            }
            .into();
        }
        if let Some(r) = receipt(self, charge) {
            body["receipt"] = r;
        }
        self.call(
            Method::Post,
            "/payments".into(),
            Some(charge.reference),
            Body::Json(body),
        )
    }

    fn parse_init(&self, http_status: u16, body: &[u8]) -> InitOutcome {
        let v = match object(http_status, body) {
            Ok(v) => v,
            // "The result is unknown": the same key tells later.
            Err(AnswerError::Http(500)) => return InitOutcome::Unknown { why: "HTTP 500".into() },
            Err(AnswerError::Http(code)) => {
                return InitOutcome::Unavailable {
                    why: format!("HTTP {code}"),
                }
            }
            Err(AnswerError::Refused(code, message)) if code == "too_many_requests" => {
                return InitOutcome::Unavailable {
                    why: format!("{code}: {message}"),
                }
            }
            Err(AnswerError::Refused(code, message)) => return InitOutcome::Refused { code, message },
            Err(e) => return InitOutcome::Unknown { why: e.to_string() },
        };
        let token = v["confirmation"]["confirmation_token"].as_str();
        if let (Some(id), Some(token)) = (v["id"].as_str(), token) {
            return if !id.is_empty()
                && id.len() <= 64
                && !token.is_empty()
                && token.len() <= 200
                && token
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                InitOutcome::Embedded {
                    token: token.to_owned(),
                    acquirer_ref: id.to_owned(),
                }
            } else {
                InitOutcome::Unknown {
                    why: "a malformed confirmation_token".into(),
                }
            };
        }
        match (v["id"].as_str(), v["confirmation"]["confirmation_url"].as_str()) {
            (Some(id), Some(url))
                if !id.is_empty() && id.len() <= 64 && (url.starts_with("https://") || url.starts_with("http://")) =>
            {
                InitOutcome::Redirect {
                    url: url.to_owned(),
                    acquirer_ref: id.to_owned(),
                }
            }
            _ => InitOutcome::Unknown {
                why: "a payment without id or confirmation_url".into(),
            },
        }
    }

    /// The payment by id.
    /// `GET /me`: the shop the key belongs to, and whether it is a test
    /// shop.
    fn verify(&self) -> Call {
        self.call(Method::Get, "/me".into(), None, Body::Empty)
    }

    fn parse_verify(&self, account: &str, http_status: u16, body: &[u8]) -> Result<super::Proof, AnswerError> {
        let v = object(http_status, body)?;
        if v["account_id"].as_str() != Some(account) {
            return Err(AnswerError::Field("account_id"));
        }
        Ok(super::Proof {
            livemode: v["test"].as_bool().map(|test| !test),
        })
    }

    fn lookup(&self, _reference: &str, acquirer_ref: &str) -> Call {
        self.call(Method::Get, format!("/payments/{acquirer_ref}"), None, Body::Empty)
    }

    /// The creation again under the same `Idempotence-Key` (it answers the
    /// payment made the first time).
    fn find(&self, charge: &Charge<'_>) -> Call {
        self.init(charge)
    }

    fn parse_lookup(&self, _acquirer_ref: Option<&str>, http_status: u16, body: &[u8]) -> Result<Lookup, AnswerError> {
        if http_status == 404 {
            return Ok(Lookup::NotFound);
        }
        payment_of(&object(http_status, body)?).map(Lookup::Found)
    }

    fn map_status(&self, status: &str) -> Mapped {
        map_status(status)
    }

    fn refund(&self, payment_id: &str, amount_minor: i64, currency: &str, key: &str) -> Call {
        self.call(
            Method::Post,
            "/refunds".into(),
            Some(key),
            Body::Json(json!({ "payment_id": payment_id, "amount": money(amount_minor, currency) })),
        )
    }

    fn parse_refund(&self, http_status: u16, body: &[u8]) -> Result<(), AnswerError> {
        let v = object(http_status, body)?;
        match v["status"].as_str() {
            Some("succeeded" | "pending") => Ok(()),
            Some(other) => Err(AnswerError::RefundStatus(other.to_owned())),
            None => Err(AnswerError::Field("status")),
        }
    }

    /// An authorized payment is captured in full (the key makes repeats
    /// harmless).
    fn capture(&self, payment: &Payment, amount_minor: i64, currency: &str) -> Option<Call> {
        (payment.status == "waiting_for_capture").then(|| {
            self.call(
                Method::Post,
                format!("/payments/{}/capture", payment.payment_id),
                Some(&format!("capture-{}", payment.payment_id)),
                Body::Json(json!({ "amount": money(amount_minor, currency) })),
            )
        })
    }

    /// An authorized payment whose order is over is cancelled: the money
    /// is never taken.
    fn void(&self, payment: &Payment) -> Option<Call> {
        (payment.status == "waiting_for_capture").then(|| {
            self.call(
                Method::Post,
                format!("/payments/{}/cancel", payment.payment_id),
                Some(&format!("cancel-{}", payment.payment_id)),
                Body::Json(json!({})),
            )
        })
    }
}

pub fn map_status(status: &str) -> Mapped {
    // (Haul voids an authorization whose order is over: `canceled`.)
    match status {
        "pending" | "waiting_for_capture" => Mapped::State(AttemptState::Pending),
        "succeeded" => Mapped::State(AttemptState::Succeeded),
        "canceled" => Mapped::State(AttemptState::Failed),
        _ => Mapped::Unknown,
    }
}

/// What a notification names: the event and the object's id (nothing else
/// in it is trusted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub event: String,
    pub object_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotificationError {
    #[error("the body is not a JSON notification")]
    Malformed,
    #[error("field {0} is missing or malformed")]
    Field(&'static str),
}

pub fn read_notification(body: &[u8]) -> Result<Notice, NotificationError> {
    let v: Value = serde_json::from_slice(body).map_err(|_| NotificationError::Malformed)?;
    if v["type"] != "notification" {
        return Err(NotificationError::Field("type"));
    }
    let event = v["event"]
        .as_str()
        .filter(|e| e.len() <= 64 && e.contains('.'))
        .ok_or(NotificationError::Field("event"))?;
    let id = v["object"]["id"]
        .as_str()
        .filter(|s| !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
        .ok_or(NotificationError::Field("object.id"))?;
    Ok(Notice {
        event: event.to_owned(),
        object_id: id.to_owned(),
    })
}

/// Whether `ip` is in one of `networks` (CIDR).
pub fn in_networks(ip: std::net::IpAddr, networks: &[&str]) -> bool {
    use std::net::IpAddr;
    networks.iter().any(|n| {
        let (addr, bits) = n.split_once('/').unwrap_or((n, "128"));
        let Ok(net) = addr.parse::<IpAddr>() else { return false };
        let Ok(bits) = bits.parse::<u32>() else { return false };
        match (ip, net) {
            (IpAddr::V4(a), IpAddr::V4(b)) => {
                let bits = bits.min(32);
                let mask = if bits == 0 { 0 } else { u32::MAX << (32 - bits) };
                u32::from(a) & mask == u32::from(b) & mask
            }
            (IpAddr::V6(a), IpAddr::V6(b)) => {
                let bits = bits.min(128);
                let mask = if bits == 0 { 0 } else { u128::MAX << (128 - bits) };
                u128::from(a) & mask == u128::from(b) & mask
            }
            _ => false,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shop() -> Shop {
        Shop {
            shop_id: "123456".into(),
            secret_key: "test_secret".into(),
            tax_system: Some("osn".into()),
            embedded: false,
        }
    }

    #[test]
    fn creation_is_two_stage_with_a_receipt_and_the_attempt_as_key() {
        let items = [crate::checkout::Item {
            name: "Lamp".into(),
            quantity: 2,
            price_minor: 1_050,
            vat: "vat20".into(),
            payment_method: "full_payment".into(),
            payment_object: "commodity".into(),
        }];
        let charge = Charge {
            reference: "pat_7",
            amount_minor: 2_100,
            currency: "RUB",
            description: "Order",
            items: &items,
            email: None,
            phone: Some("+79001234567"),
            success_url: "https://h/back",
            fail_url: "https://h/back",
            notification_url: "https://h/n",
            locale: Some(widget::Locale::Ru),
        };
        let call = shop().init(&charge);
        let Body::Json(b) = &call.body else { panic!("JSON") };
        assert_eq!(b["amount"], json!({ "value": "21.00", "currency": "RUB" }));
        assert_eq!(b["confirmation"]["locale"], "ru_RU");
        assert_eq!(b["capture"], false);
        assert_eq!(b["receipt"]["items"][0]["vat_code"], 4);
        assert_eq!(b["receipt"]["items"][0]["amount"]["value"], "10.50");
        assert_eq!(b["receipt"]["customer"]["phone"], "79001234567");
        assert_eq!(b["receipt"]["tax_system_code"], 1);
        assert!(call.headers.contains(&("idempotence-key", "pat_7".into())));
        // Without the payment's id, the lookup is the same creation again.
        let again = shop().find(&charge);
        assert_eq!((again.method, again.path.as_str()), (Method::Post, "/payments"));
    }

    #[test]
    fn answers_are_read() {
        let s = shop();
        let created = br#"{"id":"22e12f66-000f-5000-8000-18db351245c7","status":"pending","paid":false,"amount":{"value":"2.00","currency":"RUB"},"confirmation":{"type":"redirect","confirmation_url":"https://yoomoney.ru/api-pages/v2/payment-confirm/epl?orderId=22e12f66"},"metadata":{"haul_attempt":"pat_7"}}"#;
        assert_eq!(
            s.parse_init(200, created),
            InitOutcome::Redirect {
                url: "https://yoomoney.ru/api-pages/v2/payment-confirm/epl?orderId=22e12f66".into(),
                acquirer_ref: "22e12f66-000f-5000-8000-18db351245c7".into()
            }
        );
        let forbidden = br#"{"type":"error","id":"1","code":"forbidden","description":"shop is blocked"}"#;
        assert!(matches!(s.parse_init(403, forbidden), InitOutcome::Refused { code, .. } if code == "forbidden"));
        assert!(matches!(s.parse_init(500, b"{}"), InitOutcome::Unknown { .. }));
        assert!(matches!(s.parse_init(503, b""), InitOutcome::Unavailable { .. }));
        assert_eq!(
            s.parse_lookup(Some("x"), 200, created),
            Ok(Lookup::Found(Payment {
                reference: Some("pat_7".into()),
                payment_id: "22e12f66-000f-5000-8000-18db351245c7".into(),
                created_as: Some("22e12f66-000f-5000-8000-18db351245c7".into()),
                status: "pending".into(),
                amount_minor: Some(200)
            }))
        );
        assert_eq!(s.parse_lookup(Some("x"), 404, b"{}"), Ok(Lookup::NotFound));
        let embedded = br#"{"id":"p2","status":"pending","amount":{"value":"2.00","currency":"RUB"},"confirmation":{"type":"embedded","confirmation_token":"ct-2442f7c5-000f-5000-9000-1a1f4c0b1b2f"}}"#;
        assert_eq!(
            s.parse_init(200, embedded),
            InitOutcome::Embedded {
                token: "ct-2442f7c5-000f-5000-9000-1a1f4c0b1b2f".into(),
                acquirer_ref: "p2".into()
            }
        );
        let odd =
            br#"{"id":"p3","status":"pending","confirmation":{"type":"embedded","confirmation_token":"<script>"}}"#;
        assert!(matches!(s.parse_init(200, odd), InitOutcome::Unknown { .. }));
        let waiting = Payment {
            reference: None,
            payment_id: "p1".into(),
            created_as: Some("p1".into()),
            status: "waiting_for_capture".into(),
            amount_minor: Some(200),
        };
        assert_eq!(s.capture(&waiting, 200, "RUB").unwrap().path, "/payments/p1/capture");
        assert_eq!(s.void(&waiting).unwrap().path, "/payments/p1/cancel");
        assert!(s
            .capture(
                &Payment {
                    status: "succeeded".into(),
                    ..waiting
                },
                200,
                "RUB"
            )
            .is_none());
        assert_eq!(map_status("canceled"), Mapped::State(AttemptState::Failed));
    }

    #[test]
    fn notifications_name_an_object_only() {
        let n = read_notification(
            br#"{"type":"notification","event":"payment.waiting_for_capture","object":{"id":"22e12f66-000f-5000-8000-18db351245c7","status":"succeeded"}}"#,
        )
        .unwrap();
        assert_eq!(n.object_id, "22e12f66-000f-5000-8000-18db351245c7");
        assert_eq!(read_notification(b"{"), Err(NotificationError::Malformed));
        assert_eq!(
            read_notification(br#"{"type":"notification","event":"payment.succeeded","object":{"id":"../x"}}"#),
            Err(NotificationError::Field("object.id"))
        );
        assert_eq!(
            read_notification(br#"{"event":"payment.succeeded","object":{"id":"a"}}"#),
            Err(NotificationError::Field("type"))
        );
    }

    #[test]
    fn sender_networks() {
        let ok = |ip: &str| in_networks(ip.parse().unwrap(), SENDER_NETWORKS);
        assert!(ok("185.71.76.5"));
        assert!(ok("77.75.156.11"));
        assert!(!ok("77.75.156.12"));
        assert!(ok("2a02:5180:0:1::1"));
        assert!(!ok("127.0.0.1"));
        assert!(!ok("185.71.76.32"));
    }
}
