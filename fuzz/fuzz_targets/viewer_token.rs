//! Viewer tokens (HS256 JWTs): arbitrary text, and payloads under a valid
//! signature so the claims reader is reached too.
#![no_main]

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use gateway::jwt;
use hmac::{Hmac, Mac};
use libfuzzer_sys::fuzz_target;

const SECRET: &[u8] = b"fuzz-secret";

fn signed(header: &[u8], payload: &[u8]) -> String {
    let input = format!("{}.{}", URL_SAFE_NO_PAD.encode(header), URL_SAFE_NO_PAD.encode(payload));
    let mut m = Hmac::<sha2::Sha256>::new_from_slice(SECRET).unwrap();
    m.update(input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(m.finalize().into_bytes()))
}

fuzz_target!(|data: &[u8]| {
    let now = 1_800_000_000;
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = jwt::decode(text, SECRET, now);
    }
    let token = signed(br#"{"alg":"HS256","typ":"JWT"}"#, data);
    if let Ok(claims) = jwt::decode(&token, SECRET, now) {
        // Accepted claims survive a round trip, and no other key opens them.
        let again = jwt::encode(&claims, SECRET);
        assert_eq!(jwt::decode(&again, SECRET, now), Ok(claims));
        assert_eq!(jwt::decode(&again, b"other", now), Err(jwt::TokenError::BadSignature));
    }
    let _ = jwt::decode(&signed(data, br#"{"sub":"v","exp":1900000000}"#), SECRET, now);
});
