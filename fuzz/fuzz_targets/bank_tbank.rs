//! T-Bank: notifications (signed with a token over the sorted fields) and
//! every answer of its API.
#![no_main]

use libfuzzer_sys::fuzz_target;
use payments::acquirers::{tbank, Acquirer};

fuzz_target!(|data: &[u8]| {
    let terminal = tbank::Terminal {
        terminal_key: "1700000000000DEMO".into(),
        password: "fuzz-password".to_owned().into(),
        taxation: Some("usn_income".into()),
    };
    let _ = tbank::verify_notification(data, "fuzz-password");
    let _ = tbank::parse_init(200, data);
    let _ = tbank::parse_state(&terminal, data);
    let _ = tbank::parse_check_order(&terminal, data);
    let _ = terminal.parse_lookup(Some("123"), 200, data);
    let _ = terminal.parse_lookup(None, 200, data);
    let _ = terminal.parse_refund(200, data);
    let _ = terminal.parse_verify("1700000000000DEMO", 200, data);
    let _ = terminal.parse_init(500, data);
});
