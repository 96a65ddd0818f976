//! Payment ids: `ord_…` (orders) and `pat_…` (payment attempts), prefixed and
//! parsed, never trusted: the prefix must match and the body be 1–40
//! characters of `[A-Za-z0-9]`.

use std::fmt;

use rand::Rng;
use serde::{Serialize, Serializer};

const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
/// 22 base62 characters: about 131 random bits.
const RANDOM_LEN: usize = 22;

/// An id from outside that is not one of ours.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected `{expected}_` followed by 1 to 40 characters of A-Z, a-z, 0-9")]
pub struct BadId {
    pub expected: &'static str,
}

pub(crate) fn random_body() -> String {
    let mut rng = rand::rng();
    (0..RANDOM_LEN)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

macro_rules! payment_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            pub fn generate() -> Self {
                Self(format!("{}_{}", $prefix, random_body()))
            }

            pub fn parse(s: &str) -> Result<Self, BadId> {
                let ok = s
                    .strip_prefix(concat!($prefix, "_"))
                    .is_some_and(|b| !b.is_empty() && b.len() <= 40 && b.bytes().all(|c| c.is_ascii_alphanumeric()));
                if ok {
                    Ok(Self(s.to_owned()))
                } else {
                    Err(BadId { expected: $prefix })
                }
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

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }
    };
}

payment_id!(
    /// An order (payment intent).
    OrderId,
    "ord"
);
payment_id!(
    /// One try at one acquirer.
    AttemptId,
    "pat"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_parse_only_with_their_prefix_and_a_clean_body() {
        let o = OrderId::generate();
        assert_eq!(OrderId::parse(o.as_str()), Ok(o.clone()));
        assert!(AttemptId::parse(o.as_str()).is_err());
        for bad in [
            "ord_",
            "ord",
            "ord_a:b",
            "ord_a|b",
            &format!("ord_{}", "a".repeat(41)),
            "pat_x",
        ] {
            assert!(OrderId::parse(bad).is_err(), "{bad}");
        }
    }
}
