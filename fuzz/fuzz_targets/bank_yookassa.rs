//! YooKassa: notifications (unsigned: read strictly, then confirmed by a
//! status call) and every answer of its API.
#![no_main]

use libfuzzer_sys::fuzz_target;
use payments::acquirers::{yookassa, Acquirer};

fuzz_target!(|data: &[u8]| {
    let _ = yookassa::read_notification(data);
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) {
        let _ = yookassa::payment_of(&v);
    }
    let shop = yookassa::Shop {
        shop_id: "123456".into(),
        secret_key: "test_fuzz".to_owned().into(),
        tax_system: Some("1".into()),
        embedded: false,
    };
    let _ = shop.parse_init(200, data);
    let _ = shop.parse_lookup(Some("2d0f"), 200, data);
    let _ = shop.parse_refund(200, data);
    let _ = shop.parse_verify("123456", 200, data);
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = yookassa::map_status(s);
        if let Ok(ip) = s.parse() {
            let _ = yookassa::in_networks(ip, &["185.71.76.0/27", "2a02:5180::/32"]);
        }
    }
});
