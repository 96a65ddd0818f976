//! The sandbox acquirer's signed callbacks: header and body as received,
//! and bodies under a valid signature so the reader is reached.
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use payments::sandbox;

const SECRET: &[u8] = b"fuzz-sandbox-secret";

fuzz_target!(|data: &[u8]| {
    let now = 1_800_000_000;
    let (head, body) = common::head_and_body(data);
    if let Ok(h) = std::str::from_utf8(head) {
        let _ = sandbox::verify(SECRET, Some(h), body, now);
    }
    let header = sandbox::sign(SECRET, now, data);
    let _ = sandbox::verify(SECRET, Some(&header), data, now);
    let _ = sandbox::verify(SECRET, None, data, now);
});
