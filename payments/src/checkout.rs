//! Checkout sessions for sellers' own sites: validation of what the seller
//! sends (54-FZ receipt items that sum to the amount, return URLs, the
//! buyer's contact for the receipt) and storage beside the session's order.

use serde::{Deserialize, Serialize};
use sqlx::{AnyPool, Row};

use crate::ids::{random_body, OrderId};
use crate::store::{NewOrder, Order, PaymentStore, StoreError};

/// VAT rates a receipt item may carry (54-FZ; `vat105` etc. are the
/// calculated rates 5/105, 7/107, 10/110, 20/120).
pub const VAT: &[&str] = &[
    "none", "vat0", "vat5", "vat7", "vat10", "vat20", "vat105", "vat107", "vat110", "vat120",
];
/// The payment method of an item (54-FZ "признак способа расчёта").
pub const PAYMENT_METHODS: &[&str] = &[
    "full_prepayment",
    "prepayment",
    "advance",
    "full_payment",
    "partial_payment",
    "credit",
    "credit_payment",
];
/// What is sold (54-FZ "признак предмета расчёта"), the common ones.
pub const PAYMENT_OBJECTS: &[&str] = &[
    "commodity",
    "excise",
    "job",
    "service",
    "payment",
    "agent_commission",
    "composite",
    "another",
];
/// Longest a session stays open.
pub const MAX_TTL_MS: i64 = 24 * 3_600_000;
pub const DEFAULT_TTL_MS: i64 = 3_600_000;

/// One receipt line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Item {
    pub name: String,
    pub quantity: i64,
    pub price_minor: i64,
    pub vat: String,
    #[serde(default = "default_method")]
    pub payment_method: String,
    #[serde(default = "default_object")]
    pub payment_object: String,
}

fn default_method() -> String {
    "full_payment".into()
}

fn default_object() -> String {
    "commodity".into()
}

/// What a seller asks for.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewSession {
    pub amount_minor: i64,
    pub currency: String,
    pub items: Vec<Item>,
    /// The seller's own order reference.
    pub reference: String,
    pub success_url: String,
    pub cancel_url: String,
    #[serde(default)]
    pub customer_email: Option<String>,
    #[serde(default)]
    pub customer_phone: Option<String>,
    /// Seconds the session stays open (default an hour, at most a day).
    #[serde(default)]
    pub expires_in_seconds: Option<i64>,
    /// The language the checkout speaks (`en`, `ru`); without it, the
    /// buyer's browser chooses, then the seller's default.
    #[serde(default)]
    pub locale: Option<String>,
}

/// A field the seller (or a buyer at checkout) got wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct Invalid {
    pub field: String,
    pub message: String,
}

pub(crate) fn invalid(field: impl Into<String>, message: impl Into<String>) -> Invalid {
    Invalid {
        field: field.into(),
        message: message.into(),
    }
}

fn text_ok(s: &str, max: usize) -> bool {
    !s.trim().is_empty() && s.chars().count() <= max && !s.chars().any(char::is_control)
}

fn url_ok(s: &str) -> bool {
    s.len() <= 2000
        && (s.starts_with("https://") || s.starts_with("http://"))
        && s.len() > "https://".len()
        && !s.chars().any(|c| c.is_whitespace() || c.is_control())
}

pub fn email_ok(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    s.len() <= 254
        && !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !s.chars().any(|c| c.is_whitespace() || c.is_control())
}

fn phone_ok(s: &str) -> bool {
    s.strip_prefix('+')
        .is_some_and(|d| (10..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()))
}

impl NewSession {
    /// Checks everything but the currency code, which the caller checks
    /// against ISO 4217.
    pub fn validate(&self) -> Result<(), Invalid> {
        if !(1..=10_000_000_000).contains(&self.amount_minor) {
            return Err(invalid("amount_minor", "from 1 to 10000000000 minor units"));
        }
        if self.items.is_empty() || self.items.len() > 100 {
            return Err(invalid("items", "1 to 100 receipt items"));
        }
        let mut sum: i64 = 0;
        for (i, item) in self.items.iter().enumerate() {
            let f = |name: &str| format!("items[{i}].{name}");
            if !text_ok(&item.name, 128) {
                return Err(invalid(f("name"), "1 to 128 characters"));
            }
            if !(1..=99_999).contains(&item.quantity) {
                return Err(invalid(f("quantity"), "from 1 to 99999"));
            }
            if item.price_minor <= 0 {
                return Err(invalid(f("price_minor"), "must be positive"));
            }
            if !VAT.contains(&item.vat.as_str()) {
                return Err(invalid(f("vat"), format!("one of {}", VAT.join(", "))));
            }
            if !PAYMENT_METHODS.contains(&item.payment_method.as_str()) {
                return Err(invalid(
                    f("payment_method"),
                    format!("one of {}", PAYMENT_METHODS.join(", ")),
                ));
            }
            if !PAYMENT_OBJECTS.contains(&item.payment_object.as_str()) {
                return Err(invalid(
                    f("payment_object"),
                    format!("one of {}", PAYMENT_OBJECTS.join(", ")),
                ));
            }
            let line = item
                .price_minor
                .checked_mul(item.quantity)
                .ok_or_else(|| invalid(f("price_minor"), "too large"))?;
            sum = sum.checked_add(line).ok_or_else(|| invalid("items", "too large"))?;
        }
        if sum != self.amount_minor {
            return Err(invalid(
                "items",
                format!("the items sum to {sum}, not to amount_minor {}", self.amount_minor),
            ));
        }
        if !text_ok(&self.reference, 64) {
            return Err(invalid("reference", "1 to 64 characters"));
        }
        if !url_ok(&self.success_url) {
            return Err(invalid("success_url", "an http(s) URL of at most 2000 characters"));
        }
        if !url_ok(&self.cancel_url) {
            return Err(invalid("cancel_url", "an http(s) URL of at most 2000 characters"));
        }
        match (&self.customer_email, &self.customer_phone) {
            (None, None) => {
                return Err(invalid(
                    "customer_email",
                    "an email or a phone is needed for the receipt",
                ))
            }
            (Some(e), _) if !email_ok(e) => return Err(invalid("customer_email", "not an email address")),
            (_, Some(p)) if !phone_ok(p) => return Err(invalid("customer_phone", "+ and 10 to 15 digits")),
            _ => {}
        }
        if let Some(l) = &self.locale {
            if widget::Locale::parse(l).is_none_or(|p| p.tag() != l) {
                return Err(invalid("locale", format!("one of {}", locales())));
            }
        }
        if let Some(t) = self.expires_in_seconds {
            if !(60..=MAX_TTL_MS / 1000).contains(&t) {
                return Err(invalid(
                    "expires_in_seconds",
                    format!("from 60 to {}", MAX_TTL_MS / 1000),
                ));
            }
        }
        Ok(())
    }
}

/// The languages a checkout speaks, for messages.
pub fn locales() -> String {
    widget::locale::ALL
        .iter()
        .map(|l| l.tag())
        .collect::<Vec<_>>()
        .join(", ")
}

/// A stored session.
#[derive(Debug, Clone, Serialize)]
pub struct Session {
    pub id: String,
    pub order_id: String,
    pub items: Vec<Item>,
    pub success_url: String,
    pub cancel_url: String,
    pub customer_email: Option<String>,
    pub customer_phone: Option<String>,
    pub expires_at: i64,
    pub created_at: i64,
    /// What the checkout asks of the buyer (a stream purchase's seller's
    /// settings when it was made); `None`: nothing.
    pub ask: Option<crate::details::Ask>,
    /// What the buyer gave.
    pub buyer: Option<crate::details::Details>,
    /// The language of the checkout (the seller's pick, or the one the
    /// buyer paid in), which the buyer's emails follow.
    pub locale: Option<String>,
}

fn json_column<T: serde::de::DeserializeOwned>(
    row: &sqlx::any::AnyRow,
    column: &'static str,
) -> Result<Option<T>, StoreError> {
    let raw: Option<String> = row.try_get(column)?;
    raw.map(|v| {
        serde_json::from_str(&v).map_err(|_| StoreError::Corrupt {
            column,
            value: v.chars().take(64).collect(),
        })
    })
    .transpose()
}

fn session_from_row(row: &sqlx::any::AnyRow) -> Result<Session, StoreError> {
    let items: String = row.try_get("items")?;
    Ok(Session {
        id: row.try_get("id")?,
        order_id: row.try_get("order_id")?,
        items: serde_json::from_str(&items).map_err(|_| StoreError::Corrupt {
            column: "checkout_sessions.items",
            value: items.chars().take(64).collect(),
        })?,
        success_url: row.try_get("success_url")?,
        cancel_url: row.try_get("cancel_url")?,
        customer_email: row.try_get("customer_email")?,
        customer_phone: row.try_get("customer_phone")?,
        expires_at: row.try_get("expires_at")?,
        created_at: row.try_get("created_at")?,
        ask: json_column(row, "ask")?,
        buyer: json_column(row, "buyer")?,
        locale: row.try_get("locale")?,
    })
}

/// Creates a validated session and its order.
pub async fn create(
    pool: &AnyPool,
    store: &PaymentStore,
    seller: &str,
    new: &NewSession,
    now: i64,
) -> Result<(Session, Order), StoreError> {
    let (order, _) = store
        .create_order(
            &NewOrder {
                seller_id: seller.to_owned(),
                amount_minor: new.amount_minor,
                currency: new.currency.clone(),
                hold_id: None,
                offer_id: None,
                buyer_id: None,
                reference: Some(new.reference.clone()),
            },
            now,
        )
        .await?;
    let id = format!("cs_{}", random_body());
    let ttl = new.expires_in_seconds.map(|s| s * 1000).unwrap_or(DEFAULT_TTL_MS);
    let items = serde_json::to_string(&new.items).map_err(|_| StoreError::Corrupt {
        column: "checkout_sessions.items",
        value: "unserializable".into(),
    })?;
    sqlx::query(
        "INSERT INTO checkout_sessions (id, seller_id, order_id, items, success_url, cancel_url, \
         customer_email, customer_phone, expires_at, created_at, locale) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(&id)
    .bind(seller)
    .bind(order.id.as_str())
    .bind(&items)
    .bind(&new.success_url)
    .bind(&new.cancel_url)
    .bind(new.customer_email.clone())
    .bind(new.customer_phone.clone())
    .bind(now + ttl)
    .bind(now)
    .bind(new.locale.clone())
    .execute(pool)
    .await?;
    let session = get(pool, seller, &id)
        .await?
        .ok_or(StoreError::Contention("checkout_sessions"))?;
    Ok((session, order))
}

/// The checkout session of an order that was made elsewhere (a stream
/// purchase): made on first call, the same session after. Its lines are
/// trusted (Haul made them from the offer), not a seller's input.
pub async fn for_order(
    pool: &AnyPool,
    order: &Order,
    items: &[Item],
    ask: Option<&crate::details::Ask>,
    return_url: &str,
    expires_at: i64,
    now: i64,
) -> Result<Session, StoreError> {
    if let Some(found) = by_order(pool, order).await? {
        return Ok(found);
    }
    let items = serde_json::to_string(items).map_err(|_| StoreError::Corrupt {
        column: "checkout_sessions.items",
        value: "unserializable".into(),
    })?;
    // Two calls at once: the order's one session wins, the other reads it.
    sqlx::query(
        "INSERT INTO checkout_sessions (id, seller_id, order_id, items, success_url, cancel_url, \
         customer_email, customer_phone, expires_at, created_at, ask) \
         VALUES ($1, $2, $3, $4, $5, $5, NULL, NULL, $6, $7, $8) ON CONFLICT (order_id) DO NOTHING",
    )
    .bind(format!("cs_{}", random_body()))
    .bind(&order.seller_id)
    .bind(order.id.as_str())
    .bind(&items)
    .bind(return_url)
    .bind(expires_at)
    .bind(now)
    .bind(ask.and_then(|a| serde_json::to_string(a).ok()))
    .execute(pool)
    .await?;
    by_order(pool, order)
        .await?
        .ok_or(StoreError::Contention("checkout_sessions"))
}

/// Gives a session without a buyer contact (a stream purchase's) the email
/// the buyer typed for the receipt; a session that has one keeps it.
pub async fn set_email(pool: &AnyPool, id: &str, email: &str) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE checkout_sessions SET customer_email = $1 WHERE id = $2 \
         AND customer_email IS NULL AND customer_phone IS NULL",
    )
    .bind(email)
    .bind(id)
    .execute(pool)
    .await?;
    Ok(())
}

/// Records the language the buyer's checkout page spoke when paying: the
/// seller's pick unless the buyer switched, and what the emails follow.
pub async fn set_locale(pool: &AnyPool, id: &str, locale: widget::Locale) -> Result<(), StoreError> {
    sqlx::query("UPDATE checkout_sessions SET locale = $1 WHERE id = $2")
        .bind(locale.tag())
        .bind(id)
        .execute(pool)
        .await?;
    Ok(())
}

/// The session of an order, if it has one.
pub async fn by_order_id(pool: &AnyPool, order_id: &str) -> Result<Option<Session>, StoreError> {
    let row = sqlx::query("SELECT * FROM checkout_sessions WHERE order_id = $1")
        .bind(order_id)
        .fetch_optional(pool)
        .await?;
    row.as_ref().map(session_from_row).transpose()
}

async fn by_order(pool: &AnyPool, order: &Order) -> Result<Option<Session>, StoreError> {
    by_order_id(pool, order.id.as_str()).await
}

/// The session an order belongs to, if it came from one.
pub async fn session_for_order(pool: &AnyPool, order_id: &str) -> Result<Option<String>, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT id FROM checkout_sessions WHERE order_id = $1")
            .bind(order_id)
            .fetch_optional(pool)
            .await?,
    )
}

/// A session by id alone (the id is the buyer's capability to pay it).
pub async fn by_id(pool: &AnyPool, id: &str) -> Result<Option<(String, Session)>, StoreError> {
    let row = sqlx::query("SELECT * FROM checkout_sessions WHERE id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await?;
    match row {
        Some(r) => {
            let seller: String = r.try_get("seller_id")?;
            Ok(Some((seller, session_from_row(&r)?)))
        }
        None => Ok(None),
    }
}

pub async fn get(pool: &AnyPool, seller: &str, id: &str) -> Result<Option<Session>, StoreError> {
    let row = sqlx::query("SELECT * FROM checkout_sessions WHERE id = $1 AND seller_id = $2")
        .bind(id)
        .bind(seller)
        .fetch_optional(pool)
        .await?;
    row.as_ref().map(session_from_row).transpose()
}

/// The seller's sessions, newest first, before `before` (ms) when given.
pub async fn list(pool: &AnyPool, seller: &str, limit: i64, before: Option<i64>) -> Result<Vec<Session>, StoreError> {
    let rows = sqlx::query(
        "SELECT * FROM checkout_sessions WHERE seller_id = $1 AND created_at < $2 ORDER BY created_at DESC, id DESC LIMIT $3",
    )
    .bind(seller)
    .bind(before.unwrap_or(i64::MAX))
    .bind(limit)
    .fetch_all(pool)
    .await?;
    rows.iter().map(session_from_row).collect()
}

/// The order of a session.
pub fn order_id(session: &Session) -> Option<OrderId> {
    OrderId::parse(&session.order_id).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn good() -> NewSession {
        NewSession {
            amount_minor: 350_000,
            currency: "RUB".into(),
            items: vec![
                Item {
                    name: "Чайник".into(),
                    quantity: 1,
                    price_minor: 250_000,
                    vat: "vat20".into(),
                    payment_method: default_method(),
                    payment_object: default_object(),
                },
                Item {
                    name: "Доставка".into(),
                    quantity: 2,
                    price_minor: 50_000,
                    vat: "none".into(),
                    payment_method: default_method(),
                    payment_object: "service".into(),
                },
            ],
            reference: "A-1001".into(),
            success_url: "https://shop.example/thanks".into(),
            cancel_url: "https://shop.example/cart".into(),
            customer_email: Some("buyer@example.com".into()),
            customer_phone: None,
            expires_in_seconds: None,
            locale: Some("ru".into()),
        }
    }

    #[test]
    fn a_complete_session_passes_and_each_mistake_names_its_field() {
        assert_eq!(good().validate(), Ok(()));
        type Change = Box<dyn Fn(&mut NewSession)>;
        let cases: Vec<(Change, &str)> = vec![
            (Box::new(|s| s.amount_minor = 0), "amount_minor"),
            (Box::new(|s| s.items.clear()), "items"),
            (Box::new(|s| s.items[0].price_minor = 1), "items"),
            (Box::new(|s| s.items[1].vat = "vat18".into()), "items[1].vat"),
            (Box::new(|s| s.items[0].name = " ".into()), "items[0].name"),
            (Box::new(|s| s.items[0].quantity = 0), "items[0].quantity"),
            (
                Box::new(|s| s.items[0].payment_method = "cash".into()),
                "items[0].payment_method",
            ),
            (
                Box::new(|s| s.success_url = "javascript:alert(1)".into()),
                "success_url",
            ),
            (Box::new(|s| s.cancel_url = "https://".into()), "cancel_url"),
            (Box::new(|s| s.customer_email = Some("nobody".into())), "customer_email"),
            (
                Box::new(|s| {
                    s.customer_email = None;
                    s.customer_phone = Some("89001234567".into());
                }),
                "customer_phone",
            ),
            (Box::new(|s| s.customer_email = None), "customer_email"),
            (Box::new(|s| s.reference = String::new()), "reference"),
            (Box::new(|s| s.expires_in_seconds = Some(10)), "expires_in_seconds"),
            (Box::new(|s| s.locale = Some("de".into())), "locale"),
            (Box::new(|s| s.locale = Some("ru-RU".into())), "locale"),
        ];
        for (change, field) in cases {
            let mut s = good();
            change(&mut s);
            assert_eq!(s.validate().unwrap_err().field, field);
        }
    }
}

/// Signed checkout parameters, for sellers' sites without a backend: the
/// page carries `key=value` parameters and a `signature`, the hex
/// HMAC-SHA256 under the seller's widget secret of the canonical string:
/// every other parameter, sorted by key, as `key=value` lines joined by `\n`.
/// `expires` (Unix seconds, at most a day ahead) bounds a signature's life.
pub mod signed {
    use std::collections::BTreeMap;

    use hmac::{Hmac, Mac};
    use sha2::Sha256;

    /// Parameters a signed checkout may carry.
    pub const KEYS: &[&str] = &[
        "seller",
        "amount_minor",
        "currency",
        "reference",
        "description",
        "vat",
        "success_url",
        "cancel_url",
        "customer_email",
        "customer_phone",
        "locale",
        "expires",
    ];
    /// The furthest ahead `expires` may be.
    pub const MAX_AHEAD_SECS: i64 = 24 * 3600;

    /// Why signed parameters were refused.
    #[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
    pub enum SignedError {
        #[error("unknown parameter {0:?}")]
        Unknown(String),
        #[error("parameter {0} is missing")]
        Missing(&'static str),
        #[error("parameter {0} must not contain line breaks")]
        LineBreak(String),
        #[error("expires is not a time within the next day")]
        Expired,
        #[error("the signature does not match the parameters")]
        BadSignature,
    }

    /// The canonical string of `params` (without `signature`).
    pub fn canonical(params: &BTreeMap<String, String>) -> Result<String, SignedError> {
        let mut lines = Vec::new();
        for (k, v) in params {
            if k == "signature" {
                continue;
            }
            if !KEYS.contains(&k.as_str()) {
                return Err(SignedError::Unknown(k.chars().take(40).collect()));
            }
            if v.contains('\n') || v.contains('\r') {
                return Err(SignedError::LineBreak(k.clone()));
            }
            lines.push(format!("{k}={v}"));
        }
        Ok(lines.join("\n"))
    }

    fn mac(secret: &str, canonical: &str) -> Hmac<Sha256> {
        let mut m = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
        m.update(canonical.as_bytes());
        m
    }

    /// The signature a seller's page sends.
    pub fn sign(secret: &str, params: &BTreeMap<String, String>) -> Result<String, SignedError> {
        let bytes = mac(secret, &canonical(params)?).finalize().into_bytes();
        Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
    }

    /// Checks the parameters' signature (constant time) and expiry.
    pub fn verify(secret: &str, params: &BTreeMap<String, String>, now_secs: i64) -> Result<(), SignedError> {
        for required in [
            "seller",
            "amount_minor",
            "currency",
            "reference",
            "success_url",
            "cancel_url",
            "expires",
        ] {
            if !params.contains_key(required) {
                return Err(SignedError::Missing(required));
            }
        }
        let canonical = canonical(params)?;
        let expires: i64 = params["expires"].parse().map_err(|_| SignedError::Expired)?;
        if expires < now_secs || expires > now_secs + MAX_AHEAD_SECS {
            return Err(SignedError::Expired);
        }
        let given = params.get("signature").ok_or(SignedError::Missing("signature"))?;
        let bytes = (given.len() == 64 && given.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| {
                (0..32)
                    .map(|i| u8::from_str_radix(&given[2 * i..2 * i + 2], 16).unwrap_or(0))
                    .collect::<Vec<u8>>()
            })
            .ok_or(SignedError::BadSignature)?;
        mac(secret, &canonical)
            .verify_slice(&bytes)
            .map_err(|_| SignedError::BadSignature)
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        fn params() -> BTreeMap<String, String> {
            [
                ("seller", "sel_abc"),
                ("amount_minor", "99000"),
                ("currency", "RUB"),
                ("reference", "order-7"),
                ("success_url", "https://shop.example/ok"),
                ("cancel_url", "https://shop.example/no"),
                ("expires", "1800000000"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
        }

        #[test]
        fn signed_parameters_verify_and_any_change_breaks_them() {
            let mut p = params();
            let sig = sign("wsk_secret", &p).unwrap();
            p.insert("signature".into(), sig.clone());
            assert_eq!(verify("wsk_secret", &p, 1_799_999_000), Ok(()));
            assert_eq!(verify("wsk_other", &p, 1_799_999_000), Err(SignedError::BadSignature));
            let mut tampered = p.clone();
            tampered.insert("amount_minor".into(), "1".into());
            assert_eq!(
                verify("wsk_secret", &tampered, 1_799_999_000),
                Err(SignedError::BadSignature)
            );
            assert_eq!(verify("wsk_secret", &p, 1_800_000_001), Err(SignedError::Expired));
            assert_eq!(verify("wsk_secret", &p, 1_700_000_000), Err(SignedError::Expired));
            let mut extra = p.clone();
            extra.insert("price".into(), "1".into());
            assert_eq!(
                verify("wsk_secret", &extra, 1_799_999_000),
                Err(SignedError::Unknown("price".into()))
            );
            let mut short = p.clone();
            short.insert("signature".into(), sig[..10].into());
            assert_eq!(
                verify("wsk_secret", &short, 1_799_999_000),
                Err(SignedError::BadSignature)
            );
            let mut missing = p;
            missing.remove("reference");
            assert_eq!(
                verify("wsk_secret", &missing, 1_799_999_000),
                Err(SignedError::Missing("reference"))
            );
        }
    }
}
