//! CloudPayments: notifications of each kind (form or JSON), under a bad
//! signature and under the right one so the reader is reached, and every
//! answer of its API.
#![no_main]

use libfuzzer_sys::fuzz_target;
use payments::acquirers::cloudpayments::{self, Kind};
use payments::acquirers::Acquirer;

const SECRET: &str = "fuzz-api-secret";

fuzz_target!(|data: &[u8]| {
    let good = cloudpayments::content_hmac(data, SECRET);
    for kind in [Kind::Check, Kind::Pay, Kind::Fail, Kind::Refund] {
        let _ = cloudpayments::verify_notification(kind, data, &[], SECRET);
        let _ = cloudpayments::verify_notification(kind, data, &["not-it"], SECRET);
        let _ = cloudpayments::verify_notification(kind, data, &[&good], SECRET);
    }
    let site = cloudpayments::Site {
        public_id: "test_api_fuzz".into(),
        api_secret: SECRET.to_owned().into(),
        taxation: Some("osn".into()),
    };
    let _ = site.parse_init(200, data);
    let _ = site.parse_lookup(Some("1"), 200, data);
    let _ = site.parse_lookup(None, 404, data);
    let _ = site.parse_refund(200, data);
    let _ = site.parse_verify("test_api_fuzz", 200, data);
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = site.map_status(s);
    }
});
