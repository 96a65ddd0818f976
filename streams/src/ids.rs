//! Typed, prefixed identifiers (`str_…`, `lot_…`, `off_…`, `hld_…`, `sel_…`).
//!
//! Every id that crosses the network is parsed, never trusted: the prefix must
//! match and the body must be 1–40 characters of `[A-Za-z0-9]`. That keeps ids
//! safe to embed in Redis keys and channel names (no `|`, `:` or `{`).

use std::fmt;

use rand::Rng;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
/// 22 base62 characters carry ~131 bits of randomness.
const RANDOM_LEN: usize = 22;

/// Why an id from outside was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("expected an id starting with `{expected}_`")]
    WrongPrefix { expected: &'static str },
    #[error("id body must be 1 to 40 characters of A-Z, a-z, 0-9")]
    BadBody,
}

/// A random base62 string of `len` characters.
pub fn random_token(len: usize) -> String {
    let mut rng = rand::rng();
    (0..len)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

fn check_body(body: &str) -> bool {
    !body.is_empty() && body.len() <= 40 && body.bytes().all(|b| b.is_ascii_alphanumeric())
}

macro_rules! prefixed_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            pub const PREFIX: &'static str = $prefix;

            /// A fresh random id.
            pub fn generate() -> Self {
                Self(format!("{}_{}", $prefix, random_token(RANDOM_LEN)))
            }

            /// Parses an id received from outside.
            pub fn parse(s: &str) -> Result<Self, IdError> {
                let body = s
                    .strip_prefix($prefix)
                    .and_then(|rest| rest.strip_prefix('_'))
                    .ok_or(IdError::WrongPrefix { expected: $prefix })?;
                if !check_body(body) {
                    return Err(IdError::BadBody);
                }
                Ok(Self(s.to_owned()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::parse(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

prefixed_id!(
    /// A seller (tenant).
    SellerId,
    "sel"
);
prefixed_id!(
    /// A live-shopping stream.
    StreamId,
    "str"
);
prefixed_id!(
    /// A lot (product shown in a stream).
    LotId,
    "lot"
);
prefixed_id!(
    /// A time-limited offer on a lot.
    OfferId,
    "off"
);
prefixed_id!(
    /// A stock hold taken by a buyer.
    HoldId,
    "hld"
);

/// A buyer (viewer) identity, as carried in a viewer token's `sub`.
///
/// 1–100 characters of `[A-Za-z0-9_.-]`: no `|`, `:`, `#` or `{`, so it is safe
/// inside Redis keys, hold records and personal channel names.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct BuyerId(String);

/// Why a buyer id was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("buyer id must be 1 to 100 characters of A-Z, a-z, 0-9, '_', '.', '-'")]
pub struct BadBuyerId;

impl BuyerId {
    pub fn parse(s: &str) -> Result<Self, BadBuyerId> {
        let ok = !s.is_empty()
            && s.len() <= 100
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(BadBuyerId)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for BuyerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for BuyerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for BuyerId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_parse_back() {
        let id = OfferId::generate();
        assert_eq!(OfferId::parse(id.as_str()).unwrap(), id);
        assert!(id.as_str().starts_with("off_"));
    }

    #[test]
    fn ids_with_wrong_prefix_or_body_are_refused() {
        assert_eq!(OfferId::parse("str_abc"), Err(IdError::WrongPrefix { expected: "off" }));
        assert_eq!(OfferId::parse("off_"), Err(IdError::BadBody));
        assert_eq!(OfferId::parse("off_a|b"), Err(IdError::BadBody));
        assert_eq!(
            OfferId::parse(&format!("off_{}", "a".repeat(41))),
            Err(IdError::BadBody)
        );
        assert_eq!(OfferId::parse("offabc"), Err(IdError::WrongPrefix { expected: "off" }));
    }

    #[test]
    fn buyer_ids_refuse_separator_characters() {
        assert!(BuyerId::parse("anon.Abc-1_2").is_ok());
        for bad in ["", "a|b", "a:b", "#a", "{a}", "é", &"x".repeat(101)] {
            assert!(BuyerId::parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}
