//! Stripe (Checkout Sessions): the protocol, without HTTP.
//!
//! - Requests go to `https://api.stripe.com` with `Authorization: Bearer`
//!   and the secret key; bodies are form-encoded (`a[b][c]=v`); POSTs carry
//!   an `Idempotency-Key` (the attempt id on creation, a key of our own on
//!   refunds), so a repeat answers the first result.
//! - A payment is a Checkout Session (`mode=payment`) whose `url` is the
//!   hosted page; our attempt id is its `client_reference_id` and metadata.
//!   The session's PaymentIntent (`payment_intent`) is what a refund names
//!   (`/v1/refunds`).
//! - **Amounts** are integers in the currency's smallest unit (cents; yen
//!   for the zero-decimal JPY and KRW), the same as Haul's minor units for
//!   the currencies in [`CURRENCIES`]; currency codes are sent lower-case.
//! - **Errors** are `{"error": {"type", "code", "message"}}`: a 4xx created
//!   nothing (refused), 429 and 502–504 are an outage, a 500 is an unknown
//!   result (the same request with the same key tells later).
//! - **Webhooks**: `Stripe-Signature: t=<unix>,v1=<hex>[,v1=…]`; the signed
//!   payload is `{t}.{raw body}`, HMAC-SHA256 keyed with the whole
//!   `whsec_…` string; any `v1` may match; the timestamp must be within
//!   [`TOLERANCE_SECS`]. Any 2xx acknowledges.
//! - Stripe does not fiscalize: no 54-FZ receipt is sent.
//!
//! Status mapping (`status`/`payment_status` of the session; webhook events
//! name the async outcomes):
//!
//! | Stripe | attempt |
//! | --- | --- |
//! | `open/unpaid`, `complete/unpaid` (async method processing) | pending |
//! | `complete/paid`, `complete/no_payment_required`, `async_payment_succeeded` | succeeded |
//! | `async_payment_failed` | failed |
//! | `expired/*` | cancelled |

use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use sha2::Sha256;

use super::{Acquirer, AnswerError, Body, Call, Charge, InitOutcome, Lookup, Mapped, Method, Payment};
use crate::state::AttemptState;

pub const ACQUIRER: &str = "stripe";
pub const DEFAULT_BASE_URL: &str = "https://api.stripe.com";
pub const TOLERANCE_SECS: i64 = 300;
pub const CURRENCIES: &[&str] = &[
    "AUD", "CAD", "CHF", "CZK", "DKK", "EUR", "GBP", "JPY", "KRW", "NOK", "NZD", "PLN", "SEK", "SGD", "USD",
];

/// An account's secret API key.
#[derive(Debug, Clone)]
pub struct Account {
    pub api_key: SecretString,
}

impl Account {
    fn call(&self, method: Method, path: String, key: Option<&str>, body: Body) -> Call {
        let headers = key.map(|k| ("idempotency-key", k.to_owned())).into_iter().collect();
        Call {
            method,
            path,
            authorization: Some(format!("Bearer {}", self.api_key.expose_secret()).into()),
            headers,
            body,
        }
    }
}

fn answer(http_status: u16, body: &[u8]) -> Result<Value, AnswerError> {
    if http_status >= 500 || http_status == 429 {
        return Err(AnswerError::Http(http_status));
    }
    let v: Value = serde_json::from_slice(body).map_err(|_| AnswerError::NotJson)?;
    if !v.is_object() {
        return Err(AnswerError::NotJson);
    }
    if let Some(e) = v.get("error") {
        return Err(AnswerError::Refused(
            e["code"]
                .as_str()
                .or(e["type"].as_str())
                .unwrap_or("error")
                .chars()
                .take(64)
                .collect(),
            e["message"].as_str().unwrap_or("").chars().take(300).collect(),
        ));
    }
    if http_status >= 400 {
        return Err(AnswerError::Refused(format!("HTTP {http_status}"), String::new()));
    }
    Ok(v)
}

fn id(v: &Value, prefix: &str) -> Option<String> {
    v.as_str()
        .filter(|s| s.starts_with(prefix) && s.len() <= 255)
        .map(str::to_owned)
}

/// A Checkout Session as a [`Payment`]: its PaymentIntent once there is
/// one, else the session itself.
pub fn payment_of(session: &Value) -> Result<Payment, AnswerError> {
    let session_id = id(&session["id"], "cs_").ok_or(AnswerError::Field("id"))?;
    let status = session["status"].as_str().ok_or(AnswerError::Field("status"))?;
    let paid = session["payment_status"]
        .as_str()
        .ok_or(AnswerError::Field("payment_status"))?;
    Ok(Payment {
        reference: session["client_reference_id"].as_str().map(str::to_owned),
        payment_id: id(&session["payment_intent"], "pi_").unwrap_or_else(|| session_id.clone()),
        created_as: Some(session_id),
        status: format!("{status}/{paid}"),
        amount_minor: session["amount_total"].as_i64(),
    })
}

impl Acquirer for Account {
    fn bank(&self) -> super::Bank {
        super::Bank::Stripe
    }

    fn accepts(&self, currency: &str) -> bool {
        super::takes(ACQUIRER, currency)
    }

    fn init(&self, charge: &Charge<'_>) -> Call {
        let currency = charge.currency.to_ascii_lowercase();
        let mut f: Vec<(String, String)> = vec![
            ("mode".into(), "payment".into()),
            ("client_reference_id".into(), charge.reference.into()),
            ("metadata[haul_attempt]".into(), charge.reference.into()),
            (
                "payment_intent_data[metadata][haul_attempt]".into(),
                charge.reference.into(),
            ),
            ("payment_intent_data[description]".into(), charge.description.into()),
            ("success_url".into(), charge.success_url.into()),
            ("cancel_url".into(), charge.fail_url.into()),
        ];
        for (n, item) in charge.items.iter().enumerate() {
            let p = format!("line_items[{n}]");
            f.push((format!("{p}[quantity]"), item.quantity.to_string()));
            f.push((format!("{p}[price_data][currency]"), currency.clone()));
            f.push((format!("{p}[price_data][unit_amount]"), item.price_minor.to_string()));
            f.push((format!("{p}[price_data][product_data][name]"), item.name.clone()));
        }
        if let Some(e) = charge.email {
            f.push(("customer_email".into(), e.into()));
        }
        // The hosted page's language.
        if let Some(l) = charge.locale {
            f.push(("locale".into(), l.tag().into()));
        }
        self.call(
            Method::Post,
            "/v1/checkout/sessions".into(),
            Some(charge.reference),
            Body::Form(f),
        )
    }

    fn parse_init(&self, http_status: u16, body: &[u8]) -> InitOutcome {
        let v = match answer(http_status, body) {
            Ok(v) => v,
            Err(AnswerError::Http(500)) => return InitOutcome::Unknown { why: "HTTP 500".into() },
            Err(AnswerError::Http(code)) => {
                return InitOutcome::Unavailable {
                    why: format!("HTTP {code}"),
                }
            }
            Err(AnswerError::Refused(code, message)) => return InitOutcome::Refused { code, message },
            Err(e) => return InitOutcome::Unknown { why: e.to_string() },
        };
        match (id(&v["id"], "cs_"), v["url"].as_str()) {
            (Some(id), Some(url)) if url.starts_with("https://") || url.starts_with("http://") => {
                InitOutcome::Redirect {
                    url: url.to_owned(),
                    acquirer_ref: id,
                }
            }
            _ => InitOutcome::Unknown {
                why: "a session without id or url".into(),
            },
        }
    }

    /// The session by id.
    /// `GET /v1/account`: the account the secret key belongs to.
    fn verify(&self) -> Call {
        self.call(Method::Get, "/v1/account".into(), None, Body::Empty)
    }

    fn parse_verify(&self, account: &str, http_status: u16, body: &[u8]) -> Result<super::Proof, AnswerError> {
        let v = answer(http_status, body)?;
        if http_status >= 400 {
            return Err(AnswerError::Http(http_status));
        }
        if v["id"].as_str() != Some(account) {
            return Err(AnswerError::Field("id"));
        }
        Ok(super::Proof { livemode: None })
    }

    fn lookup(&self, _reference: &str, acquirer_ref: &str) -> Call {
        self.call(
            Method::Get,
            format!("/v1/checkout/sessions/{acquirer_ref}"),
            None,
            Body::Empty,
        )
    }

    /// The creation again under the same `Idempotency-Key`.
    fn find(&self, charge: &Charge<'_>) -> Call {
        self.init(charge)
    }

    /// Expires the Checkout Session: Stripe expires only an open one (a
    /// completed session is refused, its payment untouched).
    fn abandon(&self, acquirer_ref: &str) -> Option<Call> {
        Some(self.call(
            Method::Post,
            format!("/v1/checkout/sessions/{acquirer_ref}/expire"),
            Some(&format!("expire-{acquirer_ref}")),
            Body::Form(Vec::new()),
        ))
    }

    fn parse_lookup(&self, _acquirer_ref: Option<&str>, http_status: u16, body: &[u8]) -> Result<Lookup, AnswerError> {
        if http_status == 404 {
            return Ok(Lookup::NotFound);
        }
        payment_of(&answer(http_status, body)?).map(Lookup::Found)
    }

    fn map_status(&self, status: &str) -> Mapped {
        map_status(status)
    }

    fn refund(&self, payment_id: &str, amount_minor: i64, _currency: &str, key: &str) -> Call {
        self.call(
            Method::Post,
            "/v1/refunds".into(),
            Some(key),
            Body::Form(vec![
                ("payment_intent".into(), payment_id.into()),
                ("amount".into(), amount_minor.to_string()),
            ]),
        )
    }

    fn parse_refund(&self, http_status: u16, body: &[u8]) -> Result<(), AnswerError> {
        let v = answer(http_status, body)?;
        match v["status"].as_str() {
            Some("succeeded" | "pending" | "requires_action") => Ok(()),
            Some(other) => Err(AnswerError::RefundStatus(other.to_owned())),
            None => Err(AnswerError::Field("status")),
        }
    }
}

pub fn map_status(status: &str) -> Mapped {
    let (state, paid) = status.split_once('/').unwrap_or((status, ""));
    match (state, paid) {
        ("open" | "complete", "unpaid") => Mapped::State(AttemptState::Pending),
        ("complete", "paid" | "no_payment_required") | ("async_payment_succeeded", _) => {
            Mapped::State(AttemptState::Succeeded)
        }
        ("async_payment_failed", _) => Mapped::State(AttemptState::Failed),
        ("expired", _) => Mapped::State(AttemptState::Cancelled),
        _ => Mapped::Unknown,
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    #[error("no Stripe-Signature header")]
    Unsigned,
    #[error("the Stripe-Signature header is malformed")]
    Header,
    #[error("the Stripe-Signature header carries more than {} signatures", super::MAX_SIGNATURES)]
    TooManySignatures,
    #[error("the timestamp is outside the tolerance")]
    Stale,
    #[error("no v1 signature matches")]
    BadSignature,
    #[error("the body is not a Stripe event")]
    Malformed,
}

/// The `v1` signature of `{t}.{body}` under the endpoint's secret.
pub fn signature(secret: &str, t: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

/// A verified event: its id, type and object.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub id: String,
    pub kind: String,
    pub object: Value,
}

/// Verifies `Stripe-Signature` on the raw body at `now` (Unix seconds),
/// then reads the event.
pub fn verify_webhook(header: Option<&str>, body: &[u8], secret: &str, now: i64) -> Result<Event, WebhookError> {
    let header = header.ok_or(WebhookError::Unsigned)?;
    let mut t = None;
    let mut v1 = Vec::new();
    for part in header.split(',') {
        let (k, v) = part.trim().split_once('=').ok_or(WebhookError::Header)?;
        match k {
            "t" => t = Some(v.parse::<i64>().map_err(|_| WebhookError::Header)?),
            "v1" if v1.len() == super::MAX_SIGNATURES => return Err(WebhookError::TooManySignatures),
            "v1" => v1.push(v),
            _ => {}
        }
    }
    let t = t.ok_or(WebhookError::Header)?;
    if v1.is_empty() {
        return Err(WebhookError::BadSignature);
    }
    if now.saturating_sub(t).saturating_abs() > TOLERANCE_SECS {
        return Err(WebhookError::Stale);
    }
    let expected = signature(secret, t, body);
    if !v1
        .iter()
        .any(|s| super::constant_time_eq(expected.as_bytes(), s.as_bytes()))
    {
        return Err(WebhookError::BadSignature);
    }
    let v: Value = serde_json::from_slice(body).map_err(|_| WebhookError::Malformed)?;
    match (v["id"].as_str(), v["type"].as_str(), v["data"]["object"].is_object()) {
        (Some(id), Some(kind), true) if id.starts_with("evt_") && id.len() <= 255 && kind.len() <= 128 => Ok(Event {
            id: id.to_owned(),
            kind: kind.to_owned(),
            object: v["data"]["object"].clone(),
        }),
        _ => Err(WebhookError::Malformed),
    }
}

/// The session and status word a Checkout event stands for; `None` for
/// events Haul does not act on.
pub fn session_event(e: &Event) -> Option<Result<Payment, AnswerError>> {
    let p = payment_of(&e.object);
    Some(match e.kind.as_str() {
        "checkout.session.completed" | "checkout.session.expired" => p,
        "checkout.session.async_payment_succeeded" => p.map(|p| Payment {
            status: "async_payment_succeeded".into(),
            ..p
        }),
        "checkout.session.async_payment_failed" => p.map(|p| Payment {
            status: "async_payment_failed".into(),
            ..p
        }),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_test_secret";

    #[test]
    fn the_key_is_the_whole_secret_string() {
        // HMAC-SHA256("whsec_test_secret", "1700000000.{}") by Python's hmac.
        assert_eq!(
            signature(SECRET, 1_700_000_000, b"{}"),
            "ceb8863f7208fa249a6cd8f951e993c7563412aca65866f6272283debe143ab3"
        );
    }

    fn event(kind: &str) -> String {
        format!(
            r#"{{"id":"evt_1","object":"event","type":"{kind}","data":{{"object":{{"id":"cs_test_1","object":"checkout.session","client_reference_id":"pat_1","payment_intent":"pi_1","status":"complete","payment_status":"paid","amount_total":1999,"currency":"eur"}}}}}}"#
        )
    }

    #[test]
    fn a_header_with_many_signatures_is_refused() {
        let body = event("checkout.session.completed");
        let t = 1_700_000_000;
        let good = signature(SECRET, t, body.as_bytes());
        let flood = format!("t={t}{},v1={good}", ",v1=00".repeat(60_000));
        assert_eq!(
            verify_webhook(Some(&flood), body.as_bytes(), SECRET, t),
            Err(WebhookError::TooManySignatures)
        );
    }

    #[test]
    fn webhooks_verify_within_tolerance_and_any_v1_matches() {
        let body = event("checkout.session.completed");
        let t = 1_700_000_000;
        let good = signature(SECRET, t, body.as_bytes());
        let header = format!("t={t},v1=deadbeef,v1={good},v0=ignored");
        let e = verify_webhook(Some(&header), body.as_bytes(), SECRET, t + 10).unwrap();
        let p = session_event(&e).unwrap().unwrap();
        assert_eq!(
            (p.payment_id.as_str(), p.status.as_str(), p.amount_minor),
            ("pi_1", "complete/paid", Some(1999))
        );
        assert_eq!(
            verify_webhook(Some(&header), body.as_bytes(), SECRET, t + 301),
            Err(WebhookError::Stale)
        );
        assert_eq!(
            verify_webhook(Some(&header), body.as_bytes(), "whsec_other", t),
            Err(WebhookError::BadSignature)
        );
        assert_eq!(
            verify_webhook(Some(&format!("t={t}")), body.as_bytes(), SECRET, t),
            Err(WebhookError::BadSignature)
        );
        assert_eq!(
            verify_webhook(Some("v1=abc"), body.as_bytes(), SECRET, t),
            Err(WebhookError::Header)
        );
        let extreme = format!("t={},v1={good}", i64::MIN);
        assert_eq!(
            verify_webhook(Some(&extreme), body.as_bytes(), SECRET, t),
            Err(WebhookError::Stale)
        );
        assert_eq!(
            verify_webhook(None, body.as_bytes(), SECRET, t),
            Err(WebhookError::Unsigned)
        );
        let tampered = body.replace("1999", "1");
        assert_eq!(
            verify_webhook(Some(&header), tampered.as_bytes(), SECRET, t),
            Err(WebhookError::BadSignature)
        );
        let failed = event("checkout.session.async_payment_failed");
        let h = format!("t={t},v1={}", signature(SECRET, t, failed.as_bytes()));
        let e = verify_webhook(Some(&h), failed.as_bytes(), SECRET, t).unwrap();
        assert_eq!(
            map_status(&session_event(&e).unwrap().unwrap().status),
            Mapped::State(AttemptState::Failed)
        );
    }

    #[test]
    fn sessions_and_errors_are_read() {
        let a = Account {
            api_key: "sk_test_x".into(),
        };
        let created = br#"{"id":"cs_test_a1","object":"checkout.session","url":"https://checkout.stripe.com/c/pay/cs_test_a1","status":"open","payment_status":"unpaid","payment_intent":null,"amount_total":1999}"#;
        assert_eq!(
            a.parse_init(200, created),
            InitOutcome::Redirect {
                url: "https://checkout.stripe.com/c/pay/cs_test_a1".into(),
                acquirer_ref: "cs_test_a1".into()
            }
        );
        let refused = br#"{"error":{"type":"invalid_request_error","code":"account_invalid","message":"The account is not activated"}}"#;
        assert!(matches!(a.parse_init(400, refused), InitOutcome::Refused { code, .. } if code == "account_invalid"));
        assert!(matches!(a.parse_init(429, b""), InitOutcome::Unavailable { .. }));
        assert!(matches!(a.parse_init(500, b""), InitOutcome::Unknown { .. }));
        assert_eq!(
            a.parse_lookup(Some("cs_test_a1"), 200, created).unwrap(),
            Lookup::Found(Payment {
                reference: None,
                payment_id: "cs_test_a1".into(),
                created_as: Some("cs_test_a1".into()),
                status: "open/unpaid".into(),
                amount_minor: Some(1999)
            })
        );
        assert_eq!(map_status("expired/unpaid"), Mapped::State(AttemptState::Cancelled));
        assert_eq!(map_status("complete/paid"), Mapped::State(AttemptState::Succeeded));
        assert_eq!(map_status("open/unpaid"), Mapped::State(AttemptState::Pending));
        assert_eq!(map_status("weird"), Mapped::Unknown);
    }
}
