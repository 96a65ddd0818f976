//! Haul's webhook signatures verify with the official `standardwebhooks`
//! library (PyPI), including during a secret rotation; tampered ones do not.

use payments::webhook::{signature_header, WebhookSecret};

fn python() -> String {
    std::env::var("HAUL_TEST_PYTHON")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../target/test-venv/bin/python").to_owned())
}

/// Verifies with the official library; returns what it printed.
fn official_verify(secret: &str, id: &str, ts: i64, sig: &str, body: &str) -> String {
    let py = python();
    assert!(
        std::path::Path::new(&py).exists(),
        "{py} is missing: ./scripts/test creates it (scripts/python-requirements.txt)"
    );
    let script = r#"
import sys
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
secret, id_, ts, sig, body = sys.argv[1:6]
try:
    Webhook(secret).verify(body, {"webhook-id": id_, "webhook-timestamp": ts, "webhook-signature": sig})
    print("verified")
except WebhookVerificationError as e:
    print("refused: " + str(e))
"#;
    let out = std::process::Command::new(&py)
        .args(["-c", script, secret, id, &ts.to_string(), sig, body])
        .output()
        .expect("python runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[test]
fn signatures_verify_with_the_official_library() {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let old = WebhookSecret::generate();
    let new = WebhookSecret::generate();
    let body =
        r#"{"type":"order.paid","data":{"order_id":"ord_1","amount_minor":149000,"currency":"RUB","note":"кружка"}}"#;
    let id = "msg_2f0a9c3b7d1e4f5a";
    let header = signature_header(&[&new, &old], id, now, body.as_bytes());
    // Both secrets verify while the rotation overlaps.
    assert_eq!(official_verify(&new.expose(), id, now, &header, body), "verified");
    assert_eq!(official_verify(&old.expose(), id, now, &header, body), "verified");
    // Another secret, another body, another id or an old timestamp do not.
    let stranger = WebhookSecret::generate();
    assert!(official_verify(&stranger.expose(), id, now, &header, body).starts_with("refused"));
    assert!(official_verify(&new.expose(), id, now, &header, &body.replace("149000", "1")).starts_with("refused"));
    assert!(official_verify(&new.expose(), "msg_other", now, &header, body).starts_with("refused"));
    let stale = now - 3600;
    let stale_header = signature_header(&[&new], id, stale, body.as_bytes());
    assert!(official_verify(&new.expose(), id, stale, &stale_header, body).starts_with("refused"));
}
