//! Live and test modes: each side of a seller's account sees only its own
//! objects, every object says which mode it is in, and test money never
//! touches live orders — no sandbox in a live checkout, no test card paying
//! a live order however it is asked, no bank test credentials in live mode.

use crate::common;

use crate::emulators::{cloudpayments as cp, tbank as tb, yookassa as yk};
use common::{Env, TestApp};
use payments::sandbox;
use payments::store::NewOrder;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use streams::clock::Clock;

on_both_backends!(
    a_live_checkout_offers_only_live_banks_and_never_the_sandbox,
    a_live_stream_purchase_cannot_be_paid_with_test_cards,
    a_signed_sandbox_callback_never_pays_a_live_order,
    bank_credentials_of_the_other_mode_are_refused,
);

const SECRET: &str = "sandbox-test-secret-sandbox-test-secret";

/// A node whose banks are emulators that know every account these tests
/// connect (Haul proves credentials with the bank first).
struct Node {
    app: TestApp,
    _cp: cp::Emulator,
    _yk: yk::Emulator,
    _tb: tb::Emulator,
}

impl std::ops::Deref for Node {
    type Target = TestApp;
    fn deref(&self) -> &TestApp {
        &self.app
    }
}

async fn app(env: &Env) -> Node {
    let (cp, yk, tb) = (
        cp::Emulator::start().await,
        yk::Emulator::start().await,
        tb::Emulator::start().await,
    );
    cp.site("pk_0a1b2c3d", "cp-secret", "", cp::Mode::Normal);
    for (shop, key) in [
        ("506753", "test_abc"),
        ("506754", "live_abc"),
        ("506755", "plain-secret"),
    ] {
        yk.shop(shop, key, "", yk::Mode::Normal);
    }
    tb.terminal("1616425234578DEMO", "pw", tb::Mode::Normal);
    let app = TestApp::start(
        env,
        &[
            ("HAUL_SANDBOX_SECRET", SECRET),
            ("HAUL_CLOUDPAYMENTS_URL", &cp.base),
            ("HAUL_YOOKASSA_URL", &yk.api()),
            ("HAUL_TBANK_URL", &tb.api()),
        ],
    )
    .await;
    Node {
        app,
        _cp: cp,
        _yk: yk,
        _tb: tb,
    }
}

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or_default()
}

async fn session_with(app: &TestApp, key: &str) -> Value {
    let (st, s) = app
        .call(
            Method::POST,
            "/v1/checkout/sessions",
            Some(key),
            Some(json!({
                "amount_minor": 250_000, "currency": "RUB", "reference": "R-1",
                "items": [{ "name": "Kettle", "quantity": 1, "price_minor": 250_000, "vat": "vat20" }],
                "success_url": "https://shop.example/ok", "cancel_url": "https://shop.example/",
                "customer_email": "buyer@example.com" })),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{s}");
    s
}

async fn status(app: &TestApp, session: &str) -> Value {
    let (st, v) = app
        .call(
            Method::GET,
            &format!("/v1/checkout/sessions/{session}/status"),
            None,
            None,
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    v
}

async fn a_live_checkout_offers_only_live_banks_and_never_the_sandbox(env: Env) {
    let app = app(&env).await;
    let (_, live) = app.live_key().await;
    let live_session = session_with(&app, &live).await;
    assert_eq!(live_session["livemode"], json!(true), "{live_session}");
    let id = common::text(&live_session, "id");
    // No bank yet: nothing to pay with, and certainly not the sandbox.
    let st = status(&app, &id).await;
    assert_eq!(st["acquirers"], json!([]), "{st}");
    assert_eq!(st["livemode"], json!(true));
    let (code_, v) = common::pay_session(&app, &id, "sandbox").await;
    assert_eq!((code_, code(&v)), (StatusCode::BAD_REQUEST, "invalid_field"), "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("test-mode"), "{v}");

    // A live bank account is what a live checkout offers.
    let (c, acct) = app
        .call(
            Method::POST,
            "/v1/acquirers",
            Some(&live),
            Some(json!({ "acquirer": "cloudpayments", "account": "pk_0a1b2c3d", "secret": "cp-secret" })),
        )
        .await;
    assert_eq!(c, StatusCode::CREATED, "{acct}");
    assert_eq!(acct["livemode"], json!(true), "{acct}");
    assert_eq!(status(&app, &id).await["acquirers"], json!(["cloudpayments"]));

    // The test side's checkout has the sandbox, and none of the live banks.
    let test_session = session_with(&app, &app.key).await;
    assert_eq!(test_session["livemode"], json!(false));
    let tid = common::text(&test_session, "id");
    assert_eq!(status(&app, &tid).await["acquirers"], json!(["sandbox"]));
    // Each side's objects are its own.
    for (key, other) in [(&live, &tid), (&app.key, &id)] {
        let (c, _) = app
            .call(Method::GET, &format!("/v1/checkout/sessions/{other}"), Some(key), None)
            .await;
        assert_eq!(c, StatusCode::NOT_FOUND);
    }
    let (_, banks) = app.call(Method::GET, "/v1/acquirers", Some(&app.key), None).await;
    assert_eq!(banks["data"], json!([]), "{banks}");
    // The checkout page says when it is test mode.
    let (_, list) = app.call(Method::GET, "/v1/checkout/sessions", Some(&live), None).await;
    assert_eq!(list["data"][0]["livemode"], json!(true), "{list}");
}

/// A live stream's hold: its order cannot start a sandbox attempt.
async fn a_live_stream_purchase_cannot_be_paid_with_test_cards(env: Env) {
    let app = app(&env).await;
    let (_, live) = app.live_key().await;
    let (sid, _, oid) = app.live_offer_as(&live, common::offer_body(3, 1)).await;
    let (_, stream) = app
        .call(Method::GET, &format!("/v1/streams/{sid}"), Some(&live), None)
        .await;
    assert_eq!(stream["livemode"], json!(true), "{stream}");
    let (_, anon) = app.call(Method::POST, "/v1/viewers/anonymous", None, None).await;
    let token = common::text(&anon, "token");
    let (c, held) = app
        .call(
            Method::POST,
            &format!("/v1/offers/{oid}/reserve"),
            Some(&token),
            Some(json!({ "quantity": 1, "request_id": "tap-1" })),
        )
        .await;
    assert_eq!(c, StatusCode::CREATED, "{held}");
    assert_eq!(held["livemode"], json!(true), "{held}");
    let hid = held["hold"]["id"].as_str().unwrap().to_owned();
    let (c, order) = app
        .call(
            Method::POST,
            &format!("/v1/offers/{oid}/holds/{hid}/order"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(c, StatusCode::CREATED, "{order}");
    assert_eq!(order["livemode"], json!(true));
    let order_id = common::text(&order, "id");
    let (c, v) = app
        .call(
            Method::POST,
            &format!("/v1/orders/{order_id}/attempts"),
            Some(&token),
            Some(json!({ "acquirer": "sandbox" })),
        )
        .await;
    assert_eq!((c, code(&v)), (StatusCode::BAD_REQUEST, "invalid_field"), "{v}");
    let (_, public) = app
        .call(Method::GET, &format!("/v1/public/offers/{oid}"), None, None)
        .await;
    assert_eq!(public["livemode"], json!(true), "{public}");
    assert_eq!(public["units_left"], json!(2), "the hold still stands, unpaid");
}

/// Even a correctly signed sandbox callback (for an attempt made before
/// modes existed, say) does not pay a live order, and its card page refuses.
async fn a_signed_sandbox_callback_never_pays_a_live_order(env: Env) {
    let app = app(&env).await;
    let (live_row, _) = app.live_key().await;
    let store = app.state.payments.store();
    let now = app.clock.now_ms();
    let (order, _) = store
        .create_order(
            &NewOrder {
                seller_id: live_row.to_string(),
                amount_minor: 250_000,
                currency: "RUB".into(),
                hold_id: None,
                offer_id: None,
                buyer_id: None,
                reference: Some("real-2500".into()),
            },
            now,
        )
        .await
        .unwrap();
    let attempt = store.create_attempt(&order, "sandbox", now).await.unwrap();
    let (c, _) = app
        .call(Method::GET, &format!("/sandbox/pay/{}", attempt.id), None, None)
        .await;
    assert_eq!(c, StatusCode::FORBIDDEN);
    let body = json!({ "event_id": "evt_live", "payment_id": attempt.id.as_str(), "status": "succeeded",
                       "amount_minor": 250_000, "currency": "RUB", "created_at": 1 })
    .to_string();
    let sig = sandbox::sign(SECRET.as_bytes(), now / 1000, body.as_bytes());
    let r = app
        .http
        .post(format!("{}/v1/callbacks/sandbox", app.base))
        .header(sandbox::SIGNATURE_HEADER, sig)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let after = store.order(&order.id).await.unwrap().unwrap();
    assert_eq!(after.state.as_str(), "created");
    assert_eq!(
        store.attempt(&attempt.id).await.unwrap().unwrap().state.as_str(),
        "created"
    );
}

async fn bank_credentials_of_the_other_mode_are_refused(env: Env) {
    let app = app(&env).await;
    let (_, live) = app.live_key().await;
    let connect = |key: &str, body: Value| {
        let key = key.to_owned();
        let app = &app;
        async move { app.call(Method::POST, "/v1/acquirers", Some(&key), Some(body)).await }
    };
    let refused = [
        (
            &app.key,
            json!({ "acquirer": "stripe", "account": "acct_1", "secret": "sk_live_1", "webhook_secret": "whsec_x" }),
            "secret",
        ),
        (
            &app.key,
            json!({ "acquirer": "yookassa", "account": "506751", "secret": "live_abc" }),
            "secret",
        ),
        (
            &live,
            json!({ "acquirer": "stripe", "account": "acct_2", "secret": "sk_test_2", "webhook_secret": "whsec_x" }),
            "secret",
        ),
        (
            &live,
            json!({ "acquirer": "yookassa", "account": "506752", "secret": "test_abc" }),
            "secret",
        ),
        (
            &live,
            json!({ "acquirer": "tbank", "account": "1616425234578DEMO", "secret": "pw" }),
            "account",
        ),
        (
            &live,
            json!({ "acquirer": "cloudpayments", "account": "test_api_00000000000000000000002", "secret": "s" }),
            "account",
        ),
    ];
    for (key, body, field) in refused {
        let (c, v) = connect(key, body.clone()).await;
        assert_eq!((c, code(&v)), (StatusCode::BAD_REQUEST, "invalid_field"), "{body}: {v}");
        assert_eq!(v["error"]["field"], json!(field), "{v}");
    }
    // Each in its own mode is taken.
    let taken = [
        (
            &app.key,
            json!({ "acquirer": "tbank", "account": "1616425234578DEMO", "secret": "pw" }),
        ),
        (
            &app.key,
            json!({ "acquirer": "yookassa", "account": "506753", "secret": "test_abc" }),
        ),
        (
            &live,
            json!({ "acquirer": "yookassa", "account": "506754", "secret": "live_abc" }),
        ),
    ];
    let mut live_account = String::new();
    for (key, body) in taken {
        let (c, v) = connect(key, body.clone()).await;
        assert_eq!(c, StatusCode::CREATED, "{body}: {v}");
        if key == &live {
            live_account = common::text(&v, "id");
        }
    }
    // Where the bank itself says which mode (YooKassa's GET /me), a key
    // whose format does not tell is checked by what the bank says.
    let (c, v) = connect(
        &live,
        json!({ "acquirer": "yookassa", "account": "506755", "secret": "plain-secret" }),
    )
    .await;
    assert_eq!(
        (c, v["error"]["field"].clone()),
        (StatusCode::BAD_REQUEST, json!("account")),
        "{v}"
    );
    assert!(v["error"]["message"].as_str().unwrap().contains("test account"), "{v}");
    // A live account's secret cannot be swapped for a test key either.
    let (c, v) = app
        .call(
            Method::PATCH,
            &format!("/v1/acquirers/{live_account}"),
            Some(&live),
            Some(json!({ "secret": "test_swap" })),
        )
        .await;
    assert_eq!((c, code(&v)), (StatusCode::BAD_REQUEST, "invalid_field"), "{v}");
}
