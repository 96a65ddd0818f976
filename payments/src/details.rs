//! Buyer details at checkout: what a seller's stream purchases ask for
//! (name, phone, email, a shipping address) and the delivery options they
//! offer with prices — per seller, and per stream over it — checked as the
//! buyer types them (a phone in E.164, an email, an address by its
//! country's rules), the order's total and its receipt lines following the
//! delivery chosen, and the details a viewer chose to keep for their next
//! purchase from the same seller.

use serde::{Deserialize, Serialize};
use sqlx::{AnyPool, Row};

pub use crate::checkout::Invalid;

use crate::checkout::{email_ok, invalid, Item};
use crate::store::StoreError;

/// Whether a detail is asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Need {
    Required,
    Optional,
    #[default]
    Off,
}

/// Which details a purchase asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fields {
    #[serde(default)]
    pub name: Need,
    #[serde(default)]
    pub phone: Need,
    #[serde(default)]
    pub email: Need,
    /// A shipping address (asked when a shipping option is chosen).
    #[serde(default)]
    pub address: Need,
}

/// How an order reaches the buyer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryKind {
    /// Sent to the buyer's address.
    Shipping,
    /// Collected by the buyer at the option's own address.
    Pickup,
}

/// One delivery option a seller offers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveryOption {
    pub id: String,
    pub name: String,
    pub kind: DeliveryKind,
    pub price_minor: i64,
    /// A pickup point's address.
    #[serde(default)]
    pub address: Option<String>,
}

/// What a seller's checkout asks for.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ask {
    #[serde(default)]
    pub fields: Fields,
    #[serde(default)]
    pub delivery: Vec<DeliveryOption>,
}

fn text(field: &str, v: &str, max: usize) -> Result<String, Invalid> {
    let t = v.trim();
    if t.is_empty() || t.chars().count() > max || t.chars().any(char::is_control) {
        return Err(invalid(
            field,
            format!("1 to {max} characters, none of them control characters"),
        ));
    }
    Ok(t.to_owned())
}

impl Ask {
    /// Whether it asks anything at all.
    pub fn asks(&self) -> bool {
        self.fields != Fields::default() || !self.delivery.is_empty()
    }

    /// Checks a seller's settings.
    pub fn check(&self) -> Result<(), Invalid> {
        if self.fields.address == Need::Optional {
            return Err(invalid("fields.address", "required or off"));
        }
        if self.fields.address == Need::Required && !self.delivery.iter().any(|d| d.kind == DeliveryKind::Shipping) {
            return Err(invalid(
                "fields.address",
                "an address is asked for shipping: add a shipping option",
            ));
        }
        if self.delivery.len() > 20 {
            return Err(invalid("delivery", "at most 20 options"));
        }
        for (i, d) in self.delivery.iter().enumerate() {
            let f = |n: &str| format!("delivery[{i}].{n}");
            let id_ok = !d.id.is_empty()
                && d.id.len() <= 40
                && d.id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if !id_ok {
                return Err(invalid(f("id"), "1 to 40 of A-Z, a-z, 0-9, - and _"));
            }
            if self.delivery[..i].iter().any(|o| o.id == d.id) {
                return Err(invalid(f("id"), "ids are unique"));
            }
            text(&f("name"), &d.name, 100)?;
            if !(0..=100_000_000).contains(&d.price_minor) {
                return Err(invalid(f("price_minor"), "from 0 to 100000000"));
            }
            match (d.kind, &d.address) {
                (DeliveryKind::Pickup, None) => return Err(invalid(f("address"), "a pickup point names its address")),
                (DeliveryKind::Pickup, Some(a)) => {
                    text(&f("address"), a, 300)?;
                }
                (DeliveryKind::Shipping, Some(_)) => {
                    return Err(invalid(f("address"), "shipping goes to the buyer's address"))
                }
                (DeliveryKind::Shipping, None) => {}
            }
        }
        Ok(())
    }
}

/// A shipping address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Address {
    /// ISO 3166-1 alpha-2.
    pub country: String,
    #[serde(default)]
    pub region: Option<String>,
    pub city: String,
    pub line1: String,
    #[serde(default)]
    pub line2: Option<String>,
    pub postal_code: String,
}

/// What a buyer sends.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Given {
    pub name: Option<String>,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub address: Option<Address>,
    pub delivery: Option<String>,
    /// Keep these details for the next purchase from this seller.
    #[serde(default)]
    pub save: bool,
}

/// What a buyer gave, checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Details {
    pub name: Option<String>,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub address: Option<Address>,
    pub delivery: Option<DeliveryOption>,
}

/// A phone number in E.164: `+`, a country code not starting with 0, 8 to
/// 15 digits in all.
pub fn phone_ok(s: &str) -> bool {
    s.strip_prefix('+')
        .is_some_and(|d| (8..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()) && !d.starts_with('0'))
}

/// A phone as typed (spaces, dashes, brackets; `8…` for Russia) in E.164.
pub fn normalize_phone(s: &str) -> String {
    let kept: String = s.chars().filter(|c| c.is_ascii_digit() || *c == '+').collect();
    match kept.strip_prefix('8') {
        // The Russian trunk prefix: 8 900 … is +7 900 ….
        Some(rest) if kept.len() == 11 => format!("+7{rest}"),
        _ => kept,
    }
}

/// Checks a postal code by its country's form (the common ones; others:
/// 2 to 10 letters, digits, spaces or dashes).
fn postal_ok(country: &str, code: &str) -> bool {
    let digits = |n: usize| code.len() == n && code.bytes().all(|b| b.is_ascii_digit());
    match country {
        "RU" | "BY" | "KZ" | "KG" | "TJ" | "UZ" | "IN" | "CN" => digits(6),
        "DE" | "FR" | "IT" | "ES" | "FI" | "RS" | "TR" => digits(5),
        "AM" | "GE" | "AZ" | "CH" | "AT" | "DK" | "NO" | "BE" => digits(4),
        "US" => {
            digits(5)
                || (code.len() == 10
                    && code.as_bytes()[5] == b'-'
                    && code.bytes().enumerate().all(|(i, b)| i == 5 || b.is_ascii_digit()))
        }
        _ => {
            (2..=10).contains(&code.len())
                && code
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b' ' || b == b'-')
        }
    }
}

fn address(a: &Address) -> Result<Address, Invalid> {
    let country = a.country.trim().to_ascii_uppercase();
    if country.len() != 2 || !country.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(invalid("address.country", "an ISO 3166-1 alpha-2 code (RU, KZ, DE…)"));
    }
    let postal_code = a.postal_code.trim().to_ascii_uppercase();
    if !postal_ok(&country, &postal_code) {
        return Err(invalid(
            "address.postal_code",
            format!("not a postal code of {country}"),
        ));
    }
    Ok(Address {
        region: a
            .region
            .as_deref()
            .map(|r| text("address.region", r, 100))
            .transpose()?,
        city: text("address.city", &a.city, 100)?,
        line1: text("address.line1", &a.line1, 200)?,
        line2: a.line2.as_deref().map(|l| text("address.line2", l, 200)).transpose()?,
        country,
        postal_code,
    })
}

/// Checks what a buyer gave against what the checkout asks.
pub fn check(ask: &Ask, given: &Given) -> Result<Details, Invalid> {
    let need = |field: &'static str, n: Need, v: &Option<String>| -> Result<Option<String>, Invalid> {
        match (n, v.as_deref().map(str::trim).filter(|s| !s.is_empty())) {
            (Need::Off, Some(_)) => Err(invalid(field, "not asked here")),
            (Need::Required, None) => Err(invalid(field, "required")),
            (_, v) => Ok(v.map(str::to_owned)),
        }
    };
    let name = need("name", ask.fields.name, &given.name)?
        .map(|n| text("name", &n, 100))
        .transpose()?;
    let phone = need("phone", ask.fields.phone, &given.phone)?
        .map(|p| {
            let p = normalize_phone(&p);
            if phone_ok(&p) {
                Ok(p)
            } else {
                Err(invalid(
                    "phone",
                    "a phone number with its country code, like +7 900 123-45-67",
                ))
            }
        })
        .transpose()?;
    let email = need("email", ask.fields.email, &given.email)?
        .map(|e| {
            if email_ok(&e) {
                Ok(e)
            } else {
                Err(invalid("email", "not an email address"))
            }
        })
        .transpose()?;
    let delivery = match (&given.delivery, ask.delivery.is_empty()) {
        (None, true) => None,
        (None, false) => return Err(invalid("delivery", "choose how to receive the order")),
        (Some(_), true) => return Err(invalid("delivery", "not asked here")),
        (Some(id), false) => Some(
            ask.delivery
                .iter()
                .find(|d| &d.id == id)
                .cloned()
                .ok_or_else(|| invalid("delivery", "not one of the options"))?,
        ),
    };
    let ships = delivery.as_ref().is_some_and(|d| d.kind == DeliveryKind::Shipping);
    let address = match (&given.address, ships && ask.fields.address == Need::Required) {
        (Some(a), true) => Some(address(a)?),
        (None, true) => return Err(invalid("address", "required to ship")),
        (Some(_), false) => return Err(invalid("address", "not asked for this delivery")),
        (None, false) => None,
    };
    Ok(Details {
        name,
        phone,
        email,
        address,
        delivery,
    })
}

/// The receipt line of a delivery (54-FZ: a service), when it costs.
pub fn delivery_item(d: &DeliveryOption) -> Option<Item> {
    (d.price_minor > 0).then(|| Item {
        name: format!("Delivery: {}", d.name).chars().take(128).collect(),
        quantity: 1,
        price_minor: d.price_minor,
        vat: "none".into(),
        payment_method: "full_payment".into(),
        payment_object: "service".into(),
    })
}

fn corrupt(column: &'static str) -> StoreError {
    StoreError::Corrupt {
        column,
        value: "not the expected JSON".into(),
    }
}

/// A seller's settings for one scope (`""`: the seller's default; a
/// stream's id).
pub async fn settings(pool: &AnyPool, seller: &str, scope: &str) -> Result<Option<Ask>, StoreError> {
    let row = sqlx::query("SELECT config FROM checkout_settings WHERE seller_id = $1 AND scope = $2")
        .bind(seller)
        .bind(scope)
        .fetch_optional(pool)
        .await?;
    row.map(|r| {
        let c: String = r.try_get("config")?;
        serde_json::from_str(&c).map_err(|_| corrupt("checkout_settings.config"))
    })
    .transpose()
}

/// Sets (or, with `None`, removes) a scope's settings.
pub async fn set_settings(
    pool: &AnyPool,
    seller: &str,
    scope: &str,
    ask: Option<&Ask>,
    now: i64,
) -> Result<(), StoreError> {
    match ask {
        None => {
            sqlx::query("DELETE FROM checkout_settings WHERE seller_id = $1 AND scope = $2")
                .bind(seller)
                .bind(scope)
                .execute(pool)
                .await?;
        }
        Some(a) => {
            let c = serde_json::to_string(a).map_err(|_| corrupt("checkout_settings.config"))?;
            sqlx::query(
                "INSERT INTO checkout_settings (seller_id, scope, config, updated_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (seller_id, scope) DO UPDATE SET config = $3, updated_at = $4",
            )
            .bind(seller)
            .bind(scope)
            .bind(c)
            .bind(now)
            .execute(pool)
            .await?;
        }
    }
    Ok(())
}

/// What a stream's purchases ask: the stream's own settings, else the
/// seller's; `None` when nothing is asked.
pub async fn in_force(pool: &AnyPool, seller: &str, stream: &str) -> Result<Option<Ask>, StoreError> {
    let ask = match settings(pool, seller, stream).await? {
        Some(a) => Some(a),
        None => settings(pool, seller, "").await?,
    };
    Ok(ask.filter(Ask::asks))
}

/// The details a buyer kept with a seller.
pub async fn profile(pool: &AnyPool, seller: &str, buyer: &str) -> Result<Option<Details>, StoreError> {
    let row = sqlx::query("SELECT details FROM buyer_profiles WHERE seller_id = $1 AND buyer_id = $2")
        .bind(seller)
        .bind(buyer)
        .fetch_optional(pool)
        .await?;
    row.map(|r| {
        let d: String = r.try_get("details")?;
        serde_json::from_str(&d).map_err(|_| corrupt("buyer_profiles.details"))
    })
    .transpose()
}

/// Keeps a buyer's details with a seller (the buyer asked for it), or
/// forgets them.
pub async fn keep_profile(
    pool: &AnyPool,
    seller: &str,
    buyer: &str,
    details: Option<&Details>,
    now: i64,
) -> Result<(), StoreError> {
    match details {
        None => {
            sqlx::query("DELETE FROM buyer_profiles WHERE seller_id = $1 AND buyer_id = $2")
                .bind(seller)
                .bind(buyer)
                .execute(pool)
                .await?;
        }
        Some(d) => {
            let json = serde_json::to_string(d).map_err(|_| corrupt("buyer_profiles.details"))?;
            sqlx::query(
                "INSERT INTO buyer_profiles (seller_id, buyer_id, details, consented_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (seller_id, buyer_id) DO UPDATE SET details = $3, consented_at = $4",
            )
            .bind(seller)
            .bind(buyer)
            .bind(json)
            .bind(now)
            .execute(pool)
            .await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ask() -> Ask {
        Ask {
            fields: Fields {
                name: Need::Required,
                phone: Need::Required,
                email: Need::Optional,
                address: Need::Required,
            },
            delivery: vec![
                DeliveryOption {
                    id: "courier".into(),
                    name: "Courier".into(),
                    kind: DeliveryKind::Shipping,
                    price_minor: 30_000,
                    address: None,
                },
                DeliveryOption {
                    id: "pickup".into(),
                    name: "Pickup".into(),
                    kind: DeliveryKind::Pickup,
                    price_minor: 0,
                    address: Some("Tverskaya 1".into()),
                },
            ],
        }
    }

    fn moscow() -> Address {
        Address {
            country: "ru".into(),
            region: None,
            city: "Moscow".into(),
            line1: "Arbat 1, apt 2".into(),
            line2: None,
            postal_code: "119002".into(),
        }
    }

    #[test]
    fn phones_are_e164_and_typed_forms_are_normalized() {
        assert!(phone_ok("+79001234567"));
        assert!(!phone_ok("79001234567"));
        assert!(!phone_ok("+0123456789"));
        assert!(!phone_ok("+7900"));
        assert_eq!(normalize_phone("8 (900) 123-45-67"), "+79001234567");
        assert_eq!(normalize_phone("+7 900 123-45-67"), "+79001234567");
        assert_eq!(normalize_phone("+49 30 1234567"), "+49301234567");
    }

    #[test]
    fn addresses_follow_their_country() {
        assert!(postal_ok("RU", "119002"));
        assert!(!postal_ok("RU", "11900"));
        assert!(postal_ok("US", "94105-1234"));
        assert!(!postal_ok("US", "9410A"));
        assert!(postal_ok("GB", "SW1A 1AA"));
        assert_eq!(address(&moscow()).unwrap().country, "RU");
        let mut bad = moscow();
        bad.country = "Russia".into();
        assert_eq!(address(&bad).unwrap_err().field, "address.country");
    }

    #[test]
    fn what_is_asked_is_required_and_nothing_else_is_taken() {
        let a = ask();
        assert!(a.check().is_ok());
        let field = |g: &Given| check(&a, g).unwrap_err().field;
        let mut g = Given {
            name: Some("Anna".into()),
            phone: Some("8 900 123 45 67".into()),
            delivery: Some("courier".into()),
            address: Some(moscow()),
            ..Given::default()
        };
        let d = check(&a, &g).unwrap();
        assert_eq!(d.phone.as_deref(), Some("+79001234567"));
        assert_eq!(d.delivery.as_ref().map(|d| d.price_minor), Some(30_000));
        g.address = None;
        assert_eq!(field(&g), "address");
        g.delivery = Some("pickup".into());
        assert!(check(&a, &g).unwrap().address.is_none(), "pickup needs no address");
        g.delivery = Some("drone".into());
        assert_eq!(field(&g), "delivery");
        g.delivery = Some("pickup".into());
        g.phone = Some("12345".into());
        assert_eq!(field(&g), "phone");
        g.phone = None;
        assert_eq!(field(&g), "phone");
        g.phone = Some("+79001234567".into());
        g.email = Some("not-an-email".into());
        assert_eq!(field(&g), "email");
        g.email = None;
        g.name = Some("\u{7}".into());
        assert_eq!(field(&g), "name");
        let off = Ask::default();
        assert_eq!(
            check(
                &off,
                &Given {
                    name: Some("x".into()),
                    ..Given::default()
                }
            )
            .unwrap_err()
            .field,
            "name"
        );
    }

    #[test]
    fn settings_are_checked() {
        let mut a = ask();
        a.delivery[1].address = None;
        assert_eq!(a.check().unwrap_err().field, "delivery[1].address");
        let mut a = ask();
        a.delivery.retain(|d| d.kind == DeliveryKind::Pickup);
        assert_eq!(a.check().unwrap_err().field, "fields.address");
        let mut a = ask();
        a.delivery[1].id = "courier".into();
        assert_eq!(a.check().unwrap_err().field, "delivery[1].id");
        let mut a = ask();
        a.delivery[0].price_minor = -1;
        assert_eq!(a.check().unwrap_err().field, "delivery[0].price_minor");
    }
}
