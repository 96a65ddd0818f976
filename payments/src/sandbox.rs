//! The sandbox acquirer's protocol: Haul's built-in test mode, with test cards
//! and real signed callbacks over HTTP, so the exactly-once path runs in
//! every test.
//!
//! A callback is `POST`ed as JSON:
//!
//! ```json
//! {"event_id":"evt_…","payment_id":"pat_…","status":"succeeded",
//!  "amount_minor":149000,"currency":"RUB","decline_code":null,"created_at":1764000000}
//! ```
//!
//! signed in `Haul-Sandbox-Signature: t=<unix seconds>,v1=<hex>` where the hex
//! is HMAC-SHA256 of `{t}.{raw body}` under the sandbox secret. [`verify`]
//! checks the signature on the raw body in constant time before parsing
//! anything, refuses timestamps more than [`TOLERANCE_SECS`] away, and then
//! parses strictly; every refusal says which check failed.

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::ids::AttemptId;
use crate::state::AttemptState;
use crate::store::Callback;

type HmacSha256 = Hmac<Sha256>;

/// The name callbacks are recorded under.
pub const ACQUIRER: &str = "sandbox";
/// The signature header.
pub const SIGNATURE_HEADER: &str = "haul-sandbox-signature";
/// Callbacks signed further than this from now are refused (replays).
pub const TOLERANCE_SECS: i64 = 5 * 60;

/// What a test card does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CardBehaviour {
    /// Paid at once.
    Succeeds,
    /// Declined: `card_declined`.
    Declined,
    /// Declined: `insufficient_funds`.
    InsufficientFunds,
    /// A 3-D Secure challenge first, then paid when the buyer passes it.
    Challenge,
    /// Paid, but the acquirer never calls back: the attempt stays pending
    /// until reconciliation asks the sandbox (its status, [`verdict`]).
    NoAnswer,
}

/// The documented test cards (any future expiry date, any CVC).
pub const TEST_CARDS: &[(&str, CardBehaviour)] = &[
    ("4242424242424242", CardBehaviour::Succeeds),
    ("4000000000000002", CardBehaviour::Declined),
    ("4000000000009995", CardBehaviour::InsufficientFunds),
    ("4000000000003220", CardBehaviour::Challenge),
    ("4000000000000119", CardBehaviour::NoAnswer),
];

/// Luhn's checksum, as every card number carries.
pub fn luhn(number: &str) -> bool {
    let digits: Option<Vec<u32>> = number.chars().map(|c| c.to_digit(10)).collect();
    let Some(digits) = digits else { return false };
    if !(12..=19).contains(&digits.len()) {
        return false;
    }
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            if i % 2 == 1 {
                if d * 2 > 9 {
                    d * 2 - 9
                } else {
                    d * 2
                }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// What a card number does in the sandbox: a test card's behaviour; any
/// other valid number is declined (the sandbox never charges real cards).
pub fn card_behaviour(number: &str) -> Option<CardBehaviour> {
    let digits: String = number.chars().filter(|c| !c.is_whitespace() && *c != '-').collect();
    if !luhn(&digits) {
        return None;
    }
    Some(
        TEST_CARDS
            .iter()
            .find(|(n, _)| *n == digits)
            .map(|(_, b)| *b)
            .unwrap_or(CardBehaviour::Declined),
    )
}

/// The statuses the sandbox reports for a card, in the order they happen:
/// `(status, decline code)`. A challenge reports `requires_action` first and
/// the rest after the buyer answers it ([`after_challenge`]).
pub fn reports(card: CardBehaviour) -> Vec<(&'static str, Option<&'static str>)> {
    match card {
        CardBehaviour::Succeeds => vec![("pending", None), ("succeeded", None)],
        CardBehaviour::Declined => vec![("pending", None), ("failed", Some("card_declined"))],
        CardBehaviour::InsufficientFunds => vec![("pending", None), ("failed", Some("insufficient_funds"))],
        CardBehaviour::Challenge => vec![("pending", None), ("requires_action", None)],
        CardBehaviour::NoAnswer => vec![],
    }
}

/// The sandbox's own verdict on a payment made with `card` (what its
/// status answers; a challenge's answer moves it on).
pub fn verdict(card: CardBehaviour) -> &'static str {
    match card {
        CardBehaviour::Succeeds | CardBehaviour::NoAnswer => "succeeded",
        CardBehaviour::Declined | CardBehaviour::InsufficientFunds => "failed",
        CardBehaviour::Challenge => "requires_action",
    }
}

/// What the sandbox reports once the buyer passed or failed a challenge.
pub fn after_challenge(passed: bool) -> (&'static str, Option<&'static str>) {
    if passed {
        ("succeeded", None)
    } else {
        ("failed", Some("authentication_failed"))
    }
}

/// A callback's body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SandboxCallback {
    pub event_id: String,
    pub payment_id: String,
    pub status: String,
    pub amount_minor: i64,
    pub currency: String,
    #[serde(default)]
    pub decline_code: Option<String>,
    pub created_at: i64,
}

/// Why a callback was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("the Haul-Sandbox-Signature header is missing")]
    MissingSignature,
    #[error("the Haul-Sandbox-Signature header is malformed")]
    MalformedSignature,
    #[error(
        "the Haul-Sandbox-Signature header carries more than {} signatures",
        crate::acquirers::MAX_SIGNATURES
    )]
    TooManySignatures,
    #[error("the callback's timestamp is too far from now")]
    Stale,
    #[error("the signature does not match the body")]
    BadSignature,
    #[error("the body is not a sandbox callback: {0}")]
    BadBody(String),
    #[error("{field}: {message}")]
    BadField { field: &'static str, message: &'static str },
}

fn mac(secret: &[u8], t: i64, body: &[u8]) -> HmacSha256 {
    let mut m = HmacSha256::new_from_slice(secret).expect("HMAC takes keys of any length");
    m.update(t.to_string().as_bytes());
    m.update(b".");
    m.update(body);
    m
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

/// The signature header for a body sent at `t`.
pub fn sign(secret: &[u8], t: i64, body: &[u8]) -> String {
    format!("t={t},v1={}", hex(&mac(secret, t, body).finalize().into_bytes()))
}

/// Checks a callback's signature on the raw body, then parses it.
pub fn verify(secret: &[u8], header: Option<&str>, body: &[u8], now: i64) -> Result<SandboxCallback, Rejection> {
    let header = header.filter(|h| !h.is_empty()).ok_or(Rejection::MissingSignature)?;
    let mut t = None;
    let mut sigs = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) if t.is_none() => t = Some(v.parse::<i64>().map_err(|_| Rejection::MalformedSignature)?),
            Some(("v1", _)) if sigs.len() == crate::acquirers::MAX_SIGNATURES => {
                return Err(Rejection::TooManySignatures)
            }
            Some(("v1", v)) => sigs.push(unhex(v).ok_or(Rejection::MalformedSignature)?),
            Some((_, _)) => {}
            None => return Err(Rejection::MalformedSignature),
        }
    }
    let t = t.ok_or(Rejection::MalformedSignature)?;
    if sigs.is_empty() {
        return Err(Rejection::MalformedSignature);
    }
    if (now - t).abs() > TOLERANCE_SECS {
        return Err(Rejection::Stale);
    }
    // One MAC, compared with each signature in constant time.
    let expected = mac(secret, t, body).finalize().into_bytes();
    if !sigs.iter().any(|s| crate::acquirers::constant_time_eq(&expected, s)) {
        return Err(Rejection::BadSignature);
    }
    let cb: SandboxCallback = serde_json::from_slice(body).map_err(|e| Rejection::BadBody(e.to_string()))?;
    let field = |field, message| Err(Rejection::BadField { field, message });
    if cb.event_id.is_empty() || cb.event_id.len() > 64 {
        return field("event_id", "1 to 64 characters");
    }
    if AttemptId::parse(&cb.payment_id).is_err() {
        return field("payment_id", "not a payment attempt id");
    }
    if status(&cb.status).is_none() {
        return field("status", "pending, requires_action, succeeded, failed or cancelled");
    }
    if cb.amount_minor <= 0 {
        return field("amount_minor", "must be positive");
    }
    if cb.currency.len() != 3 || !cb.currency.bytes().all(|b| b.is_ascii_uppercase()) {
        return field("currency", "three capital letters (ISO 4217)");
    }
    Ok(cb)
}

fn status(s: &str) -> Option<AttemptState> {
    match s {
        "pending" => Some(AttemptState::Pending),
        "requires_action" => Some(AttemptState::RequiresAction),
        "succeeded" => Some(AttemptState::Succeeded),
        "failed" => Some(AttemptState::Failed),
        "cancelled" => Some(AttemptState::Cancelled),
        _ => None,
    }
}

impl SandboxCallback {
    /// The callback in the store's terms (after [`verify`]).
    pub fn to_callback(&self, received_at_ms: i64) -> Result<Callback, Rejection> {
        Ok(Callback {
            acquirer: ACQUIRER.into(),
            callback_id: self.event_id.clone(),
            attempt_id: AttemptId::parse(&self.payment_id).map_err(|_| Rejection::BadField {
                field: "payment_id",
                message: "not a payment attempt id",
            })?,
            amount_minor: self.amount_minor,
            currency: self.currency.clone(),
            state: status(&self.status).ok_or(Rejection::BadField {
                field: "status",
                message: "unknown status",
            })?,
            at: received_at_ms,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"sandbox-secret-for-tests-0123456789";
    const NOW: i64 = 1_764_000_000;

    fn body(status: &str) -> Vec<u8> {
        let pat = AttemptId::generate();
        format!(
            r#"{{"event_id":"evt_1","payment_id":"{pat}","status":"{status}","amount_minor":149000,"currency":"RUB","decline_code":null,"created_at":{NOW}}}"#
        )
        .into_bytes()
    }

    #[test]
    fn a_signed_callback_verifies_and_maps_to_the_store() {
        let b = body("succeeded");
        let cb = verify(SECRET, Some(&sign(SECRET, NOW, &b)), &b, NOW + 30).unwrap();
        let c = cb.to_callback(5).unwrap();
        assert_eq!(
            (c.state, c.amount_minor, c.acquirer.as_str()),
            (AttemptState::Succeeded, 149000, "sandbox")
        );
    }

    #[test]
    fn a_header_with_many_signatures_is_refused_before_any_mac() {
        let b = body("succeeded");
        let good = sign(SECRET, NOW, &b);
        let v1 = good.split_once(",v1=").unwrap().1;
        // The good one among a few verifies; one too many is refused.
        let few = format!("t={NOW},v1={},v1={v1}", "00".repeat(32));
        assert!(verify(SECRET, Some(&few), &b, NOW).is_ok());
        let over = format!("t={NOW}{},v1={v1}", ",v1=00".repeat(crate::acquirers::MAX_SIGNATURES));
        assert_eq!(verify(SECRET, Some(&over), &b, NOW), Err(Rejection::TooManySignatures));
        let flood = format!("t={NOW}{}", ",v1=00".repeat(60_000));
        assert_eq!(verify(SECRET, Some(&flood), &b, NOW), Err(Rejection::TooManySignatures));
    }

    #[test]
    fn forged_stale_truncated_and_malformed_callbacks_are_refused() {
        let b = body("succeeded");
        let good = sign(SECRET, NOW, &b);
        assert_eq!(verify(SECRET, None, &b, NOW), Err(Rejection::MissingSignature));
        assert_eq!(
            verify(b"another secret", Some(&good), &b, NOW),
            Err(Rejection::BadSignature)
        );
        assert_eq!(
            verify(SECRET, Some(&good), &b[..b.len() - 1], NOW),
            Err(Rejection::BadSignature)
        );
        let tampered = String::from_utf8(b.clone()).unwrap().replace("149000", "1");
        assert_eq!(
            verify(SECRET, Some(&good), tampered.as_bytes(), NOW),
            Err(Rejection::BadSignature)
        );
        assert_eq!(
            verify(SECRET, Some(&good), &b, NOW + TOLERANCE_SECS + 1),
            Err(Rejection::Stale)
        );
        for h in ["t=1", "v1=00", "t=x,v1=00", "t=1,v1=zz", "garbage", "t=1,v1=abc"] {
            assert_eq!(
                verify(SECRET, Some(h), &b, NOW),
                Err(Rejection::MalformedSignature),
                "{h}"
            );
        }
        // Signed junk is still refused, field by field.
        let junk = br#"{"event_id":"e"}"#;
        assert!(matches!(
            verify(SECRET, Some(&sign(SECRET, NOW, junk)), junk, NOW),
            Err(Rejection::BadBody(_))
        ));
        let odd = body("paid");
        assert_eq!(
            verify(SECRET, Some(&sign(SECRET, NOW, &odd)), &odd, NOW),
            Err(Rejection::BadField {
                field: "status",
                message: "pending, requires_action, succeeded, failed or cancelled"
            })
        );
    }

    #[test]
    fn test_cards_behave_as_documented_and_numbers_must_be_real() {
        assert_eq!(card_behaviour("4242 4242 4242 4242"), Some(CardBehaviour::Succeeds));
        assert_eq!(card_behaviour("4000-0000-0000-3220"), Some(CardBehaviour::Challenge));
        assert_eq!(card_behaviour("4000000000000119"), Some(CardBehaviour::NoAnswer));
        // A valid number that is not a test card is declined, never charged.
        assert_eq!(card_behaviour("5555555555554444"), Some(CardBehaviour::Declined));
        assert_eq!(card_behaviour("4242424242424241"), None);
        assert_eq!(card_behaviour("4242abcd42424242"), None);
        for (n, _) in TEST_CARDS {
            assert!(luhn(n), "{n}");
        }
    }
}
