//! A seller-signed checkout (query parameters with `signature`), the
//! widget's allowed origins, and webhook secrets as a seller gives them.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use payments::checkout::signed;

const SECRET: &str = "wsec_fuzz";

fuzz_target!(|data: &[u8]| {
    let now = 1_800_000_000;
    let params: BTreeMap<String, String> = form_urlencoded::parse(data).into_owned().collect();
    let _ = signed::verify(SECRET, &params, now);
    if let Ok(sig) = signed::sign(SECRET, &params) {
        // What was signed verifies unless its expiry says otherwise.
        let mut with = params.clone();
        with.insert("signature".into(), sig);
        match signed::verify(SECRET, &with, now) {
            Ok(()) | Err(signed::SignedError::Expired) | Err(signed::SignedError::Missing(_)) => {}
            Err(e) => panic!("a signed checkout failed to verify: {e}"),
        }
    }
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = gateway::http::routes::parse_origin(s);
        let _ = payments::webhook::WebhookSecret::parse(s);
    }
});
