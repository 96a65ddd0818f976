//! Real acquiring banks' protocols, without HTTP: how to sign and build each
//! request, how to read each answer, how to verify and read each
//! notification, and how the bank's statuses map onto attempt states. The
//! [`Call`]s an [`Acquirer`] builds go out through the
//! [`Transport`](crate::service::Transport) the gateway provides
//! ([`crate::service::bank`]), and what comes back is applied through the
//! store, like the sandbox's callbacks.
//!
//! Each module documents its bank's amount units, currency rules and status
//! mapping next to the code.

pub mod cloudpayments;
pub mod stripe;
pub mod tbank;
pub mod yookassa;

use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use crate::accounts::Credentials;
use crate::checkout::Item;
use crate::state::AttemptState;

/// What one attempt asks the bank to charge.
#[derive(Debug, Clone)]
pub struct Charge<'a> {
    /// Our attempt id: unique per try, the bank's order id.
    pub reference: &'a str,
    pub amount_minor: i64,
    pub currency: &'a str,
    pub description: &'a str,
    /// 54-FZ receipt lines; they sum to the amount.
    pub items: &'a [Item],
    pub email: Option<&'a str>,
    pub phone: Option<&'a str>,
    pub success_url: &'a str,
    pub fail_url: &'a str,
    pub notification_url: &'a str,
    /// The language the buyer reads, for the bank's own page; `None`: the
    /// bank's default.
    pub locale: Option<widget::Locale>,
}

/// What creating a payment at a bank came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InitOutcome {
    /// Created: send the buyer to `url`.
    Redirect { url: String, acquirer_ref: String },
    /// Created: the buyer confirms on a page of Haul's that runs the
    /// bank's own form with this one-time `token` (YooKassa's embedded
    /// confirmation).
    Embedded { token: String, acquirer_ref: String },
    /// The bank answered that it will not take this payment (a blocked
    /// terminal, a method not allowed, …): nothing was created, so another
    /// bank may take it.
    Refused { code: String, message: String },
    /// The bank is out of service (5xx, connection refused): nothing was
    /// created that a buyer could pay.
    Unavailable { why: String },
    /// No clear answer (a timeout, an unreadable body): a payment may exist;
    /// the attempt waits for reconciliation.
    Unknown { why: String },
}

/// A bank status in Haul's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mapped {
    State(AttemptState),
    /// A status this adapter does not know: change nothing, poll again.
    Unknown,
}

/// The most signatures one signature header may carry (a secret rotation
/// needs two): a header with more is refused before any MAC is computed, so
/// a check does bounded work whatever the header holds.
pub const MAX_SIGNATURES: usize = 8;

/// Equal bytes, compared in time that does not depend on where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// An HTTP request to a bank, relative to its API's base URL. It has no
/// `Debug`: its body carries buyers' contacts, which never go to logs.
pub struct Call {
    pub method: Method,
    /// Path and query after the base URL, starting with `/`.
    pub path: String,
    /// The `Authorization` header's value, when the bank takes one.
    pub authorization: Option<SecretString>,
    /// Other headers.
    pub headers: Vec<(&'static str, String)>,
    pub body: Body,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
}

pub enum Body {
    Empty,
    Json(Value),
    /// `application/x-www-form-urlencoded` pairs, in order.
    Form(Vec<(String, String)>),
}

/// A payment as the bank reports it (a status answer or a notification).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payment {
    /// Our attempt id as the bank echoes it, when it does.
    pub reference: Option<String>,
    /// The bank's id of the payment: what a refund names.
    pub payment_id: String,
    /// The id the bank's creation answered, when it names it here too
    /// (T-Bank's PaymentId, YooKassa's payment, Stripe's session): it must
    /// be the attempt's.
    pub created_as: Option<String>,
    /// The bank's own status word (see each module's mapping).
    pub status: String,
    /// What the bank says was charged, in minor units.
    pub amount_minor: Option<i64>,
}

/// What a bank's answer to a credentials check proved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Proof {
    /// Whether the bank says the account is live (`None`: it does not say).
    pub livemode: Option<bool>,
}

/// What a status query found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    Found(Payment),
    /// The bank has no payment for this attempt (yet).
    NotFound,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnswerError {
    #[error("HTTP {0}")]
    Http(u16),
    #[error("not JSON")]
    NotJson,
    #[error("the bank refused: {0} {1}")]
    Refused(String, String),
    #[error("a field is missing or malformed: {0}")]
    Field(&'static str),
    #[error("the answer's signature does not verify")]
    BadToken,
    /// A refund the bank did not make (its status word).
    #[error("refund {0}")]
    RefundStatus(String),
}

/// The real banks Haul speaks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Bank {
    TBank,
    CloudPayments,
    YooKassa,
    Stripe,
}

impl Bank {
    pub const ALL: [Bank; 4] = [Bank::TBank, Bank::CloudPayments, Bank::YooKassa, Bank::Stripe];

    /// The name accounts, attempts and URLs use.
    pub fn name(self) -> &'static str {
        match self {
            Bank::TBank => tbank::ACQUIRER,
            Bank::CloudPayments => cloudpayments::ACQUIRER,
            Bank::YooKassa => yookassa::ACQUIRER,
            Bank::Stripe => stripe::ACQUIRER,
        }
    }

    pub fn parse(name: &str) -> Option<Bank> {
        Bank::ALL.into_iter().find(|b| b.name() == name)
    }
}

/// One bank's protocol under one account's credentials. Every method only
/// builds or reads bytes; the gateway does the I/O.
pub trait Acquirer: Send + Sync {
    fn bank(&self) -> Bank;
    fn name(&self) -> &'static str {
        self.bank().name()
    }
    /// Whether this bank takes payments in `currency` (ISO 4217).
    fn accepts(&self, currency: &str) -> bool;
    /// Creates the payment; the answer goes to [`Acquirer::parse_init`].
    fn init(&self, charge: &Charge<'_>) -> Call;
    fn parse_init(&self, http_status: u16, body: &[u8]) -> InitOutcome;
    /// Asks for the state of the payment the creation answered as
    /// `acquirer_ref` (`reference`: our attempt id); the answer goes to
    /// [`Acquirer::parse_lookup`] with `Some(acquirer_ref)`.
    fn lookup(&self, reference: &str, acquirer_ref: &str) -> Call;
    /// Asks whether a creation that had no clear answer made a payment, by
    /// what it sent (a bank with idempotent creation is sent the same
    /// creation again, which answers the payment made the first time, if
    /// any); the answer goes to [`Acquirer::parse_lookup`] with `None`.
    fn find(&self, charge: &Charge<'_>) -> Call;
    fn parse_lookup(&self, acquirer_ref: Option<&str>, http_status: u16, body: &[u8]) -> Result<Lookup, AnswerError>;
    fn map_status(&self, status: &str) -> Mapped;
    /// Refunds `amount_minor` of the payment; `key` makes a repeat of the
    /// same refund harmless where the bank supports it.
    fn refund(&self, payment_id: &str, amount_minor: i64, currency: &str, key: &str) -> Call;
    fn parse_refund(&self, http_status: u16, body: &[u8]) -> Result<(), AnswerError>;
    /// A call only the holder of these credentials gets a yes to, changing
    /// nothing at the bank: what proves an account is the seller's before
    /// it is connected.
    fn verify(&self) -> Call;
    /// Whether the answer to [`Acquirer::verify`] proves the credentials
    /// are those of `account` (the id the seller gave).
    fn parse_verify(&self, account: &str, http_status: u16, body: &[u8]) -> Result<Proof, AnswerError>;
    /// A call a payment in this status needs before it is paid (YooKassa's
    /// capture of an authorized payment); its answer reads like a lookup.
    fn capture(&self, _payment: &Payment, _amount_minor: i64, _currency: &str) -> Option<Call> {
        None
    }
    /// Lets go of a payment that waits for capture instead of taking the
    /// money (its order is over); its answer reads like a lookup.
    fn void(&self, _payment: &Payment) -> Option<Call> {
        None
    }
    /// Cancels the payment created as `acquirer_ref` because a newer
    /// attempt replaced it — only where the bank cancels an unpaid payment
    /// and refuses a paid one (never a cancel that refunds); its answer
    /// reads like a lookup.
    fn abandon(&self, _acquirer_ref: &str) -> Option<Call> {
        None
    }
}

/// Whether `acquirer` takes payments in `currency` (each module lists its
/// currencies).
pub fn takes(acquirer: &str, currency: &str) -> bool {
    match acquirer {
        tbank::ACQUIRER | yookassa::ACQUIRER => currency == "RUB",
        cloudpayments::ACQUIRER => cloudpayments::CURRENCIES.contains(&currency),
        stripe::ACQUIRER => stripe::CURRENCIES.contains(&currency),
        _ => false,
    }
}

/// What a bank's own formats say about an account's mode: `Some(true)` for
/// live keys, `Some(false)` for test terminals and test keys, `None` where
/// the format does not tell (such an account is taken in either mode).
/// - Stripe: secret keys are `sk_live_`/`rk_live_` or `sk_test_`/`rk_test_`;
/// - YooKassa: secret keys are `live_…` or `test_…`;
/// - T-Bank: test terminals' keys end in `DEMO`;
/// - CloudPayments: test sites' public ids start with `test_api_`.
pub fn key_mode(acquirer: &str, account: &str, secret: &str) -> Option<bool> {
    let by_prefix = |live: &[&str], test: &[&str]| {
        if live.iter().any(|p| secret.starts_with(p)) {
            Some(true)
        } else if test.iter().any(|p| secret.starts_with(p)) {
            Some(false)
        } else {
            None
        }
    };
    match acquirer {
        stripe::ACQUIRER => by_prefix(&["sk_live_", "rk_live_"], &["sk_test_", "rk_test_"]),
        yookassa::ACQUIRER => by_prefix(&["live_"], &["test_"]),
        tbank::ACQUIRER => account.ends_with("DEMO").then_some(false),
        cloudpayments::ACQUIRER => account.starts_with("test_api_").then_some(false),
        _ => None,
    }
}

/// The protocol of an account's bank under its credentials.
pub fn for_account(c: &Credentials) -> Option<Box<dyn Acquirer>> {
    let a = &c.account;
    Some(match a.acquirer.as_str() {
        tbank::ACQUIRER => Box::new(tbank::Terminal {
            terminal_key: a.account.clone(),
            password: c.secret.clone(),
            taxation: a.settings["taxation"].as_str().map(str::to_owned),
        }),
        cloudpayments::ACQUIRER => Box::new(cloudpayments::Site {
            public_id: a.account.clone(),
            api_secret: c.secret.clone(),
            taxation: a.settings["taxation"].as_str().map(str::to_owned),
        }),
        yookassa::ACQUIRER => Box::new(yookassa::Shop {
            shop_id: a.account.clone(),
            secret_key: c.secret.clone(),
            tax_system: a.settings["taxation"].as_str().map(str::to_owned),
            embedded: a.settings["confirmation"] == "embedded",
        }),
        stripe::ACQUIRER => Box::new(stripe::Account {
            api_key: c.secret.clone(),
        }),
        _ => return None,
    })
}

/// `HTTP Basic` credentials.
pub(crate) fn basic(user: &str, password: &SecretString) -> SecretString {
    use base64::Engine;
    let pair = format!("{user}:{}", password.expose_secret());
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(pair)).into()
}

/// Minor units as a decimal with two digits after the point (`1050` →
/// `"10.50"`), the way banks with decimal amounts take them.
pub fn decimal(minor: i64) -> String {
    let sign = if minor < 0 { "-" } else { "" };
    let m = minor.unsigned_abs();
    format!("{sign}{}.{:02}", m / 100, m % 100)
}

/// A positive decimal amount with at most two digits after the point (a
/// JSON string or number) as minor units; anything else is `None`.
pub fn parse_decimal(v: &Value) -> Option<i64> {
    let text = match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    parse_decimal_text(&text)
}

pub fn parse_decimal_text(text: &str) -> Option<i64> {
    let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
    if whole.is_empty() || whole.len() > 15 || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // Digits only (so the slicing below is on character boundaries), and
    // nothing but zeros past the second.
    if !frac.bytes().all(|b| b.is_ascii_digit()) || frac.bytes().skip(2).any(|b| b != b'0') {
        return None;
    }
    let frac = &frac[..frac.len().min(2)];
    let cents: i64 = format!("{frac:0<2}").parse().ok()?;
    whole.parse::<i64>().ok()?.checked_mul(100)?.checked_add(cents)
}

/// The 54-FZ tax systems, as each bank spells them, by Haul's name.
pub const TAX_SYSTEMS: &[&str] = &["osn", "usn_income", "usn_income_outcome", "esn", "patent"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_never_show_their_secrets_in_debug() {
        const SECRET: &str = "s3cret-Value-42";
        let secret = || SecretString::from(SECRET);
        let creds = Credentials {
            account: crate::accounts::Account {
                id: "acq_1".into(),
                acquirer: "stripe".into(),
                account: "acct_1".into(),
                settings: serde_json::json!({}),
                priority: 1,
                enabled: true,
                created_at: 0,
                updated_at: 0,
            },
            seller_id: "sel_1".into(),
            secret: secret(),
            webhook_secret: Some(secret()),
        };
        let shown = [
            format!("{creds:?}"),
            format!(
                "{:?}",
                tbank::Terminal {
                    terminal_key: "T".into(),
                    password: secret(),
                    taxation: None
                }
            ),
            format!(
                "{:?}",
                cloudpayments::Site {
                    public_id: "pk".into(),
                    api_secret: secret(),
                    taxation: None
                }
            ),
            format!("{:?}", stripe::Account { api_key: secret() }),
            format!(
                "{:?}",
                yookassa::Shop {
                    shop_id: "1".into(),
                    secret_key: secret(),
                    tax_system: None,
                    embedded: false
                }
            ),
            format!("{:?}", basic("user", &secret())),
        ];
        for s in shown {
            assert!(!s.contains(SECRET) && !s.contains("czNjcmV0"), "{s}");
        }
    }

    #[test]
    fn every_bank_is_named_once_and_an_unknown_name_is_no_bank() {
        for bank in Bank::ALL {
            assert_eq!(Bank::parse(bank.name()), Some(bank));
        }
        let names: std::collections::HashSet<_> = Bank::ALL.iter().map(|b| b.name()).collect();
        assert_eq!(names.len(), Bank::ALL.len());
        for unknown in ["", "sandbox", "TBANK", "paypal"] {
            assert_eq!(Bank::parse(unknown), None, "{unknown:?}");
        }
    }

    #[test]
    fn decimals_round_trip_and_refuse_junk() {
        assert_eq!(decimal(1050), "10.50");
        assert_eq!(decimal(7), "0.07");
        assert_eq!(decimal(100_000), "1000.00");
        for (text, minor) in [
            ("10.50", 1050),
            ("10.5", 1050),
            ("10", 1000),
            ("0.07", 7),
            ("1.500", 150),
        ] {
            assert_eq!(parse_decimal_text(text), Some(minor), "{text}");
        }
        for bad in [
            "",
            ".5",
            "1.234",
            "-1",
            "1e3",
            "1,00",
            "ten",
            "1.2.3",
            "1234567890123456",
        ] {
            assert_eq!(parse_decimal_text(bad), None, "{bad}");
        }
        assert_eq!(parse_decimal(&serde_json::json!(10.5)), Some(1050));
        assert_eq!(parse_decimal(&serde_json::json!(true)), None);
    }
}

#[cfg(test)]
mod mode_tests {
    use super::key_mode;

    #[test]
    fn the_banks_formats_tell_the_mode_where_they_can() {
        let cases = [
            ("stripe", "acct_1", "sk_live_abc", Some(true)),
            ("stripe", "acct_1", "rk_live_abc", Some(true)),
            ("stripe", "acct_1", "sk_test_abc", Some(false)),
            ("stripe", "acct_1", "rk_test_abc", Some(false)),
            ("stripe", "acct_1", "whatever", None),
            ("yookassa", "506751", "live_Fh8hUAVV", Some(true)),
            ("yookassa", "506751", "test_Fh8hUAVV", Some(false)),
            ("yookassa", "506751", "secret", None),
            ("tbank", "1616425234578DEMO", "pw", Some(false)),
            ("tbank", "1616425234578", "pw", None),
            ("cloudpayments", "test_api_00000000000000000000002", "s", Some(false)),
            ("cloudpayments", "pk_1a2b3c", "s", None),
            ("nobank", "x", "sk_live_x", None),
        ];
        for (bank, account, secret, want) in cases {
            assert_eq!(key_mode(bank, account, secret), want, "{bank} {account} {secret}");
        }
    }
}
