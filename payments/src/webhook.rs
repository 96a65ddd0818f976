//! Standard Webhooks signatures for the webhooks Haul sends to sellers.
//!
//! - headers `webhook-id` (stable across retries), `webhook-timestamp` (Unix
//!   seconds of this attempt) and `webhook-signature`;
//! - signed content `{id}.{timestamp}.{raw body}`, HMAC-SHA256 keyed with the
//!   base64-decoded part of the `whsec_…` secret, standard base64;
//! - the header holds one `v1,<signature>` entry per active secret, separated
//!   by spaces, so a receiver keeps verifying while a secret is rotated.
//!
//! [`verify`] is the receiving side (used by tests and by the sandbox): it
//! compares in constant time and allows a bounded clock skew.

use secrecy::{ExposeSecret, SecretSlice};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

const PREFIX: &str = "whsec_";
/// Secrets Haul generates carry this many random bytes.
const GENERATED_LEN: usize = 24;
/// Timestamps further than this from the receiver's clock are refused.
pub const TOLERANCE_SECS: i64 = 5 * 60;

/// A signing secret, `whsec_<base64 key>`. Never shown by `Debug`.
#[derive(Debug, Clone)]
pub struct WebhookSecret {
    key: SecretSlice<u8>,
}

/// Equal keys, compared in constant time.
impl PartialEq for WebhookSecret {
    fn eq(&self, other: &Self) -> bool {
        crate::acquirers::constant_time_eq(self.key.expose_secret(), other.key.expose_secret())
    }
}

impl Eq for WebhookSecret {}

/// Why a secret or a signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("a webhook secret is `whsec_` followed by base64 of 16 to 64 bytes")]
    BadSecret,
    #[error("the {0} header is missing or empty")]
    MissingHeader(&'static str),
    #[error("webhook-timestamp is not a whole number of seconds")]
    BadTimestamp,
    #[error("webhook-timestamp is too far from now")]
    OutOfTolerance,
    #[error(
        "webhook-signature carries more than {} signatures",
        crate::acquirers::MAX_SIGNATURES
    )]
    TooManySignatures,
    #[error("no signature matches")]
    NoMatch,
}

impl WebhookSecret {
    /// Parses `whsec_<base64>` (a bare base64 key is accepted too, as the
    /// official libraries do).
    pub fn parse(s: &str) -> Result<Self, SignatureError> {
        let b64 = s.strip_prefix(PREFIX).unwrap_or(s);
        let key = STANDARD.decode(b64).map_err(|_| SignatureError::BadSecret)?;
        if !(16..=64).contains(&key.len()) {
            return Err(SignatureError::BadSecret);
        }
        Ok(Self { key: key.into() })
    }

    /// A new random secret.
    pub fn generate() -> Self {
        let mut key = vec![0u8; GENERATED_LEN];
        rand::rng().fill_bytes(&mut key);
        Self { key: key.into() }
    }

    /// The secret as the seller stores it: `whsec_<base64>`.
    pub fn expose(&self) -> String {
        format!("{PREFIX}{}", STANDARD.encode(self.key.expose_secret()))
    }

    fn mac(&self, id: &str, timestamp: i64, body: &[u8]) -> HmacSha256 {
        // Any key length is valid for HMAC.
        let mut mac = HmacSha256::new_from_slice(self.key.expose_secret()).expect("HMAC takes keys of any length");
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        mac
    }

    /// The `v1,<base64>` signature of one message.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        format!(
            "v1,{}",
            STANDARD.encode(self.mac(id, timestamp, body).finalize().into_bytes())
        )
    }
}

/// The `webhook-signature` header: one entry per secret (during a rotation,
/// the new and the old).
pub fn signature_header(secrets: &[&WebhookSecret], id: &str, timestamp: i64, body: &[u8]) -> String {
    secrets
        .iter()
        .map(|s| s.sign(id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Verifies a received webhook against one secret: the timestamp within
/// [`TOLERANCE_SECS`] of `now` and any `v1` entry matching, compared in
/// constant time. Entries of other versions are ignored.
pub fn verify(
    secret: &WebhookSecret,
    id: &str,
    timestamp: &str,
    signature: &str,
    body: &[u8],
    now: i64,
) -> Result<(), SignatureError> {
    if id.is_empty() {
        return Err(SignatureError::MissingHeader("webhook-id"));
    }
    if timestamp.is_empty() {
        return Err(SignatureError::MissingHeader("webhook-timestamp"));
    }
    if signature.is_empty() {
        return Err(SignatureError::MissingHeader("webhook-signature"));
    }
    let ts: i64 = timestamp.parse().map_err(|_| SignatureError::BadTimestamp)?;
    if (now - ts).abs() > TOLERANCE_SECS {
        return Err(SignatureError::OutOfTolerance);
    }
    if signature.split(' ').count() > crate::acquirers::MAX_SIGNATURES {
        return Err(SignatureError::TooManySignatures);
    }
    // One MAC, compared with each signature in constant time (an empty or
    // short signature never matches).
    let expected = secret.mac(id, ts, body).finalize().into_bytes();
    let matches = signature
        .split(' ')
        .filter_map(|entry| entry.strip_prefix("v1,"))
        .filter_map(|b64| STANDARD.decode(b64).ok())
        .any(|sig| crate::acquirers::constant_time_eq(&expected, &sig));
    if matches {
        Ok(())
    } else {
        Err(SignatureError::NoMatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The worked example of the Standard Webhooks specification's libraries.
    const SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    const ID: &str = "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk";
    const TS: i64 = 1649367553;
    const BODY: &[u8] = br#"{"email":"test@example.com","username":"test_user"}"#;
    const EXPECTED: &str = "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=";

    #[test]
    fn the_published_example_signs_to_the_published_signature() {
        let s = WebhookSecret::parse(SECRET).unwrap();
        assert_eq!(s.sign(ID, TS, BODY), EXPECTED);
        assert_eq!(verify(&s, ID, &TS.to_string(), EXPECTED, BODY, TS + 10), Ok(()));
    }

    #[test]
    fn any_matching_entry_verifies_during_a_rotation() {
        let old = WebhookSecret::parse(SECRET).unwrap();
        let new = WebhookSecret::generate();
        let header = signature_header(&[&new, &old], ID, TS, BODY);
        assert_eq!(header.split(' ').count(), 2);
        for s in [&old, &new] {
            assert_eq!(verify(s, ID, &TS.to_string(), &header, BODY, TS), Ok(()));
        }
        let other = WebhookSecret::generate();
        assert_eq!(
            verify(&other, ID, &TS.to_string(), &header, BODY, TS),
            Err(SignatureError::NoMatch)
        );
    }

    #[test]
    fn a_header_with_many_signatures_is_refused() {
        let s = WebhookSecret::parse(SECRET).unwrap();
        let flood = format!("{} {EXPECTED}", vec!["v1,AAAA"; 60_000].join(" "));
        assert_eq!(
            verify(&s, ID, &TS.to_string(), &flood, BODY, TS),
            Err(SignatureError::TooManySignatures)
        );
    }

    #[test]
    fn tampering_skew_and_junk_are_refused() {
        let s = WebhookSecret::parse(SECRET).unwrap();
        let ts = TS.to_string();
        let v = |id: &str, ts: &str, sig: &str, body: &[u8], now: i64| verify(&s, id, ts, sig, body, now);
        assert_eq!(v(ID, &ts, EXPECTED, b"{}", TS), Err(SignatureError::NoMatch));
        assert_eq!(v("msg_other", &ts, EXPECTED, BODY, TS), Err(SignatureError::NoMatch));
        assert_eq!(
            v(ID, &ts, EXPECTED, BODY, TS + TOLERANCE_SECS + 1),
            Err(SignatureError::OutOfTolerance)
        );
        assert_eq!(
            v(ID, &ts, EXPECTED, BODY, TS - TOLERANCE_SECS - 1),
            Err(SignatureError::OutOfTolerance)
        );
        assert_eq!(v(ID, "soon", EXPECTED, BODY, TS), Err(SignatureError::BadTimestamp));
        assert_eq!(
            v("", &ts, EXPECTED, BODY, TS),
            Err(SignatureError::MissingHeader("webhook-id"))
        );
        assert_eq!(
            v(ID, &ts, "", BODY, TS),
            Err(SignatureError::MissingHeader("webhook-signature"))
        );
        // Empty, truncated, other versions, not base64: never a match.
        for junk in [
            "v1,",
            "v1,tZ1I4/hD",
            "v2,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=",
            "v1,!!!",
            "v1",
        ] {
            assert_eq!(v(ID, &ts, junk, BODY, TS), Err(SignatureError::NoMatch), "{junk}");
        }
    }

    #[test]
    fn secrets_parse_strictly_and_never_print() {
        assert_eq!(WebhookSecret::parse("whsec_"), Err(SignatureError::BadSecret));
        assert_eq!(WebhookSecret::parse("whsec_%%%"), Err(SignatureError::BadSecret));
        assert_eq!(WebhookSecret::parse("whsec_c2hvcnQ="), Err(SignatureError::BadSecret));
        let g = WebhookSecret::generate();
        assert_eq!(WebhookSecret::parse(&g.expose()).unwrap(), g);
        assert!(!format!("{g:?}").contains(&g.expose()[6..]));
    }
}
