//! Stripe: `Stripe-Signature` headers and event bodies (under a valid
//! signature too, so the event reader is reached), and every API answer.
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use payments::acquirers::{stripe, Acquirer};

const SECRET: &str = "whsec_fuzz";

fuzz_target!(|data: &[u8]| {
    let now = 1_800_000_000;
    let (head, body) = common::head_and_body(data);
    if let Ok(h) = std::str::from_utf8(head) {
        let _ = stripe::verify_webhook(Some(h), body, SECRET, now);
    }
    let header = format!("t={now},v1={}", stripe::signature(SECRET, now, data));
    let _ = stripe::verify_webhook(Some(&header), data, SECRET, now);
    let _ = stripe::verify_webhook(None, data, SECRET, now);
    let account = stripe::Account {
        api_key: "sk_test_fuzz".to_owned().into(),
    };
    let _ = account.parse_init(200, data);
    let _ = account.parse_init(402, data);
    let _ = account.parse_lookup(Some("pi_1"), 200, data);
    let _ = account.parse_refund(200, data);
    let _ = account.parse_verify("acct_1", 200, data);
});
