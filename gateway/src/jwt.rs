//! HS256 JSON Web Tokens for viewers: `sub` is the viewer (buyer) id.
//!
//! Only what Haul issues is accepted: a three-part compact token, header
//! `alg` exactly `HS256`, a valid signature (checked in constant time before
//! the payload is read), `exp` in the future, `nbf` (if any) in the past.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Longest token accepted, to bound the work an attacker can ask for.
pub const MAX_TOKEN_LEN: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    /// Expiry, Unix seconds.
    pub exp: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    /// A console member's connection: the seller (row) whose streams'
    /// seller channels it may subscribe to. Only the console mints it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sel: Option<String>,
}

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("token is not three base64url parts")]
    Malformed,
    #[error("token is too long")]
    TooLong,
    #[error("token header is not valid or its alg is not HS256")]
    UnsupportedAlgorithm,
    #[error("token signature does not match")]
    BadSignature,
    #[error("token claims are not valid (sub and exp are required)")]
    BadClaims,
    #[error("token has expired")]
    Expired,
    #[error("token is not valid yet")]
    NotYetValid,
}

impl TokenError {
    pub fn code(&self) -> &'static str {
        match self {
            TokenError::Malformed | TokenError::TooLong => "token_malformed",
            TokenError::UnsupportedAlgorithm => "token_unsupported",
            TokenError::BadSignature => "token_bad_signature",
            TokenError::BadClaims => "token_bad_claims",
            TokenError::Expired => "token_expired",
            TokenError::NotYetValid => "token_not_yet_valid",
        }
    }
}

#[derive(Deserialize)]
struct Header {
    alg: String,
}

fn mac(secret: &[u8]) -> HmacSha256 {
    HmacSha256::new_from_slice(secret).expect("HMAC takes keys of any length")
}

/// Signs `claims` with `secret`.
pub fn encode(claims: &Claims, secret: &[u8]) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).expect("claims serialize"));
    let signing_input = format!("{header}.{payload}");
    let mut m = mac(secret);
    m.update(signing_input.as_bytes());
    let sig = URL_SAFE_NO_PAD.encode(m.finalize().into_bytes());
    format!("{signing_input}.{sig}")
}

/// Verifies `token` and returns its claims. `now` is Unix seconds.
pub fn decode(token: &str, secret: &[u8], now: i64) -> Result<Claims, TokenError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(TokenError::TooLong);
    }
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(TokenError::Malformed);
    };
    let header = URL_SAFE_NO_PAD.decode(h).map_err(|_| TokenError::Malformed)?;
    let header: Header = serde_json::from_slice(&header).map_err(|_| TokenError::UnsupportedAlgorithm)?;
    if header.alg != "HS256" {
        return Err(TokenError::UnsupportedAlgorithm);
    }
    let sig = URL_SAFE_NO_PAD.decode(s).map_err(|_| TokenError::Malformed)?;
    let mut m = mac(secret);
    m.update(h.as_bytes());
    m.update(b".");
    m.update(p.as_bytes());
    m.verify_slice(&sig).map_err(|_| TokenError::BadSignature)?;
    let payload = URL_SAFE_NO_PAD.decode(p).map_err(|_| TokenError::Malformed)?;
    let claims: Claims = serde_json::from_slice(&payload).map_err(|_| TokenError::BadClaims)?;
    if now >= claims.exp {
        return Err(TokenError::Expired);
    }
    if claims.nbf.is_some_and(|nbf| now < nbf) {
        return Err(TokenError::NotYetValid);
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn claims(exp: i64) -> Claims {
        Claims {
            sub: "viewer-1".into(),
            exp,
            iat: Some(100),
            nbf: None,
            sel: None,
        }
    }

    #[test]
    fn a_signed_token_verifies_and_round_trips() {
        let t = encode(&claims(2000), SECRET);
        assert_eq!(decode(&t, SECRET, 1000).unwrap(), claims(2000));
    }

    #[test]
    fn the_published_jwt_io_example_verifies_but_lacks_exp() {
        // The example token of the JWT introduction (RFC 7519 tooling), secret
        // "your-256-bit-secret": its signature is valid, and it has no `exp`.
        let t = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c";
        assert_eq!(decode(t, b"your-256-bit-secret", 0), Err(TokenError::BadClaims));
        assert_eq!(decode(t, b"another-256-bit-secret", 0), Err(TokenError::BadSignature));
    }

    #[test]
    fn tampering_expiry_and_wrong_alg_are_each_refused_specifically() {
        let t = encode(&claims(2000), SECRET);
        assert_eq!(
            decode(&t, b"another secret, 32 bytes long...", 1000),
            Err(TokenError::BadSignature)
        );
        assert_eq!(decode(&t, SECRET, 2000), Err(TokenError::Expired));
        let mut parts: Vec<&str> = t.split('.').collect();
        let forged_payload = URL_SAFE_NO_PAD.encode(br#"{"sub":"admin","exp":9999999999}"#);
        parts[1] = &forged_payload;
        assert_eq!(decode(&parts.join("."), SECRET, 1000), Err(TokenError::BadSignature));
        let none_alg = format!("{}.{}.", URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#), forged_payload);
        assert_eq!(decode(&none_alg, SECRET, 1000), Err(TokenError::UnsupportedAlgorithm));
        for junk in ["", "a.b", "a.b.c.d", "!!.??.##", &"a".repeat(5000)] {
            assert!(decode(junk, SECRET, 1000).is_err(), "{junk:?}");
        }
    }

    #[test]
    fn tokens_without_sub_or_exp_are_refused() {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256"}"#);
        let payload = URL_SAFE_NO_PAD.encode(br#"{"sub":"x"}"#);
        let input = format!("{header}.{payload}");
        let mut m = mac(SECRET);
        m.update(input.as_bytes());
        let t = format!("{input}.{}", URL_SAFE_NO_PAD.encode(m.finalize().into_bytes()));
        assert_eq!(decode(&t, SECRET, 0), Err(TokenError::BadClaims));
    }
}
