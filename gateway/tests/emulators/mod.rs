//! The banks' sides of their protocols, for tests.
#![allow(dead_code)]

pub mod cloudpayments;
pub mod stripe;
pub mod tbank;
pub mod yookassa;

/// The user and password of an `Authorization: Basic` header.
pub fn basic_auth(headers: &axum::http::HeaderMap) -> Option<(String, String)> {
    use base64::Engine;
    let auth = headers.get("authorization")?.to_str().ok()?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(auth.strip_prefix("Basic ")?)
        .ok()?;
    let (user, password) = String::from_utf8(decoded)
        .ok()?
        .split_once(':')
        .map(|(u, p)| (u.to_owned(), p.to_owned()))?;
    Some((user, password))
}
