//! CloudPayments, YooKassa and Stripe through their emulators
//! (tests/emulators): each bank's payment is created, paid on its hosted
//! page, reported the way that bank reports (CloudPayments' Check and Pay
//! with `Content-HMAC`, YooKassa's unsigned notifications re-fetched from
//! its API and captured, Stripe's signed webhooks) and refunded through the
//! bank; forgeries change nothing and get the bank's expected refusal; a
//! bank that refuses to serve hands the payment to another bank.

use crate::common;
use crate::emulators;

use common::{checkout_session, pay_session as pay, session_state_until as state_until, submit_card, Env, TestApp};
use emulators::{cloudpayments as cp, stripe as st, yookassa as yk};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

async fn app(env: &Env, cp: &cp::Emulator, yk: &yk::Emulator, st: &st::Emulator) -> TestApp {
    TestApp::start(
        env,
        &[
            ("HAUL_CLOUDPAYMENTS_URL", &cp.base),
            ("HAUL_YOOKASSA_URL", &yk.api()),
            ("HAUL_STRIPE_URL", &st.base),
        ],
    )
    .await
}

struct Banks {
    cp: cp::Emulator,
    yk: yk::Emulator,
    st: st::Emulator,
    app: TestApp,
}

async fn banks(env: &Env) -> Banks {
    let (cp, yk, st) = (
        cp::Emulator::start().await,
        yk::Emulator::start().await,
        st::Emulator::start().await,
    );
    let app = app(env, &cp, &yk, &st).await;
    Banks { cp, yk, st, app }
}

/// Connects an account whose credentials the bank knows (Haul proves
/// them with the bank first); the test then sets the account's
/// notification address and behaviour at the emulator.
async fn connect(b: &Banks, body: Value) -> Value {
    let (account, secret) = (body["account"].as_str().unwrap(), body["secret"].as_str().unwrap());
    match body["acquirer"].as_str().unwrap() {
        "cloudpayments" => b.cp.site(account, secret, "", cp::Mode::Normal),
        "yookassa" => b.yk.shop(account, secret, "", yk::Mode::Normal),
        "stripe" => {
            b.st.account(account, secret, "", body["webhook_secret"].as_str().unwrap())
        }
        other => panic!("no emulator for {other}"),
    }
    let (status, v) = b.app.seller(Method::POST, "/v1/acquirers", Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    v
}

async fn order_of(app: &TestApp, session: &str) -> Value {
    let (_, s) = app
        .seller(Method::GET, &format!("/v1/checkout/sessions/{session}"), None)
        .await;
    let (_, o) = app
        .seller(
            Method::GET,
            &format!("/v1/orders/{}", s["order_id"].as_str().unwrap()),
            None,
        )
        .await;
    o
}

async fn refund(app: &TestApp, order: &str, amount: i64) -> (StatusCode, Value) {
    app.seller(
        Method::POST,
        &format!("/v1/orders/{order}/refunds"),
        Some(json!({ "amount_minor": amount })),
    )
    .await
}

async fn cloudpayments_checks_pays_refunds_and_refuses_forgeries(env: Env) {
    let b = banks(&env).await;
    let acct = connect(
        &b,
        json!({ "acquirer": "cloudpayments", "account": "pk_shop", "secret": "cp-api-secret",
                "settings": { "taxation": "usn_income" } }),
    )
    .await;
    assert!(!acct.to_string().contains("cp-api-secret"));
    // The seller pastes these addresses into the site's settings.
    let check = acct["notification_urls"]["check"].as_str().unwrap();
    assert_eq!(
        check,
        format!("{}/v1/callbacks/cloudpayments/pk_shop/check", b.app.base)
    );
    b.cp.site(
        "pk_shop",
        "cp-api-secret",
        check.trim_end_matches("/check"),
        cp::Mode::Normal,
    );
    b.cp.bank.lock().unwrap().chaos = true;

    let cs = checkout_session(&b.app, 259_000, "RUB").await;
    let (status, attempt) = pay(&b.app, &cs, "cloudpayments").await;
    assert_eq!(status, StatusCode::CREATED, "{attempt}");
    let redirect = attempt["redirect_url"].as_str().unwrap();
    assert!(redirect.starts_with(&b.cp.base), "{redirect}");
    // The order carries the receipt in CloudPayments' shape (the bank
    // checked that its lines sum to the amount).
    let order = b.cp.bank.lock().unwrap().orders.values().next().unwrap().clone();
    assert_eq!(
        (order.amount, order.invoice_id.as_str()),
        (259_000, attempt["id"].as_str().unwrap())
    );
    assert_eq!(order.receipt.as_ref().unwrap()["Items"][0]["vat"], 20);
    // A Check for another amount than the open attempt's is refused (12).
    let (wrong, sig) = b.cp.notification(&cp::Transaction {
        id: 1,
        site: "pk_shop".into(),
        invoice_id: order.invoice_id.clone(),
        amount: 100,
        currency: "RUB".into(),
        status: "Completed".into(),
        refunded: 0,
    });
    let r = b
        .app
        .http
        .post(check)
        .header("Content-HMAC", sig)
        .body(wrong)
        .send()
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["code"], 12);
    // A Pay for another amount, though signed, is refused (13) and changes nothing.
    let (wrong, sig) = b.cp.notification(&cp::Transaction {
        id: 2,
        site: "pk_shop".into(),
        invoice_id: order.invoice_id.clone(),
        amount: 100,
        currency: "RUB".into(),
        status: "Completed".into(),
        refunded: 0,
    });
    let r = b
        .app
        .http
        .post(check.replace("/check", "/pay"))
        .header("Content-HMAC", sig)
        .body(wrong)
        .send()
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["code"], 13);
    let (_, s) = b
        .app
        .seller(Method::GET, &format!("/v1/checkout/sessions/{cs}"), None)
        .await;
    assert_eq!(s["state"], "created", "{s}");
    let (status, _) = submit_card(&b.app, redirect, cp::GOOD_CARD).await;
    assert_eq!(status, StatusCode::OK);
    state_until(&b.app, &cs, "succeeded").await;
    // Check said yes; Pay came twice and was answered code 0 both times.
    assert_eq!(
        b.cp.bank.lock().unwrap().delivered,
        vec![("check".to_owned(), 0), ("pay".to_owned(), 0), ("pay".to_owned(), 0)]
    );
    let t = b.cp.bank.lock().unwrap().transactions[0].clone();

    // Forged, foreign and tampered notifications: refused with a non-zero
    // code, nothing changes.
    let post = |path: &str, body: String, sig: String| {
        b.app
            .http
            .post(format!("{}/v1/callbacks/cloudpayments/{path}", b.app.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("Content-HMAC", sig)
            .body(body)
            .send()
    };
    let code = |r: reqwest::Response| async move { r.json::<Value>().await.unwrap()["code"].as_i64().unwrap() };
    let (body, sig) = b.cp.notification(&cp::Transaction {
        status: "Declined".into(),
        ..t.clone()
    });
    assert_eq!(
        code(post("pk_shop/fail", body.clone(), "AAAA".into()).await.unwrap()).await,
        13
    );
    assert_eq!(
        code(post("pk_other/fail", body.clone(), sig.clone()).await.unwrap()).await,
        13,
        "unknown site"
    );
    let tampered = body.replace("Amount=2590.00", "Amount=1.00");
    assert_eq!(
        code(post("pk_shop/fail", tampered, sig.clone()).await.unwrap()).await,
        13
    );
    // A Fail after the payment ended (a replay after a terminal state) is
    // received and ignored.
    assert_eq!(code(post("pk_shop/fail", body, sig).await.unwrap()).await, 0);
    state_until(&b.app, &cs, "succeeded").await;
    // A Check for an attempt that is over, or for no attempt, is refused.
    let (wrong, sig) = b.cp.notification(&cp::Transaction {
        amount: 1_000,
        ..t.clone()
    });
    assert_eq!(code(post("pk_shop/check", wrong, sig).await.unwrap()).await, 20);
    let (unknown, sig) = b.cp.notification(&cp::Transaction {
        invoice_id: "pat_doesnotexist".into(),
        ..t.clone()
    });
    assert_eq!(code(post("pk_shop/check", unknown, sig).await.unwrap()).await, 10);
    let metrics = b.app.metrics().await;
    assert!(
        metrics.contains("haul_callbacks_total{outcome=\"applied\"} 1\n"),
        "{metrics}"
    );

    // A refund names the transaction; the bank keeps its own count.
    let o = order_of(&b.app, &cs).await;
    let (status, r) = refund(&b.app, o["id"].as_str().unwrap(), 59_000).await;
    assert_eq!(status, StatusCode::CREATED, "{r}");
    assert_eq!(b.cp.bank.lock().unwrap().transactions[0].refunded, 59_000);
    state_until(&b.app, &cs, "partially_refunded").await;
}

async fn yookassa_captures_and_trusts_only_its_api(env: Env) {
    let b = banks(&env).await;
    let acct = connect(
        &b,
        json!({ "acquirer": "yookassa", "account": "506751", "secret": "test_yk_key",
                "settings": { "taxation": "osn" } }),
    )
    .await;
    let url = acct["notification_urls"]["notification"].as_str().unwrap();
    b.yk.shop("506751", "test_yk_key", url, yk::Mode::Normal);
    b.yk.bank.lock().unwrap().chaos = true;

    let cs = checkout_session(&b.app, 120_000, "RUB").await;
    let (status, attempt) = pay(&b.app, &cs, "yookassa").await;
    assert_eq!(status, StatusCode::CREATED, "{attempt}");
    let payment = b.yk.payments_of("506751").pop().unwrap();
    let id = common::text(&payment, "id");
    assert_eq!(payment["capture"], false);

    // Someone claims the payment succeeded: the API says it is pending, and
    // that is what counts.
    let mut lie = payment.clone();
    lie["status"] = json!("succeeded");
    let r = b
        .app
        .http
        .post(url)
        .json(&json!({ "type": "notification", "event": "payment.succeeded", "object": lie }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let (_, s) = b
        .app
        .seller(Method::GET, &format!("/v1/checkout/sessions/{cs}"), None)
        .await;
    assert_eq!(s["state"], "pending", "{s}");
    // Junk and unknown payments are refused.
    let r = b.app.http.post(url).body("{oops").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = b
        .app
        .http
        .post(url)
        .json(&json!({ "type": "notification", "event": "payment.succeeded", "object": { "id": "2f999999-0000" } }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    // The buyer pays: authorized, Haul captures it once, the order is paid.
    let (status, _) = submit_card(&b.app, attempt["redirect_url"].as_str().unwrap(), yk::GOOD_CARD).await;
    assert_eq!(status, StatusCode::OK);
    state_until(&b.app, &cs, "succeeded").await;
    assert_eq!(b.yk.payment(&id)["status"], "succeeded");
    // Two waiting_for_capture notifications at once: both captured with
    // the same key, which YooKassa answers once.
    assert_eq!(
        b.yk.bank
            .lock()
            .unwrap()
            .delivered
            .iter()
            .filter(|e| *e == "payment.waiting_for_capture")
            .count(),
        2
    );
    let captures = b.yk.calls("POST /capture", "506751");
    assert!((1..=2).contains(&captures), "{captures}");
    // YooKassa's own payment.succeeded follows; it changes nothing more.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    while !b
        .yk
        .bank
        .lock()
        .unwrap()
        .delivered
        .contains(&"payment.succeeded".to_owned())
    {
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    let o = order_of(&b.app, &cs).await;
    let (status, r) = refund(&b.app, o["id"].as_str().unwrap(), 120_000).await;
    assert_eq!(status, StatusCode::CREATED, "{r}");
    assert_eq!(b.yk.bank.lock().unwrap().refunds[0]["amount"]["value"], "1200.00");
    state_until(&b.app, &cs, "refunded").await;

    // With the sender allow-list on, only YooKassa's networks may notify.
    let (status, _) = b
        .app
        .seller(
            Method::PATCH,
            &format!("/v1/acquirers/{}", acct["id"].as_str().unwrap()),
            Some(json!({ "settings": { "taxation": "osn", "sender_allow_list": true } })),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        !b.yk.notify(&id, "payment.succeeded").await,
        "127.0.0.1 is not YooKassa"
    );
}

/// Two tabs at Stripe. A new attempt expires the previous Checkout Session
/// while it is open: its page no longer takes the card, and the order is
/// paid once, by the new one. A session the buyer had already completed
/// (its webhook held up) is not expired — Stripe refuses — and its payment
/// stands: the order is paid by it when the webhook comes.
async fn a_new_stripe_attempt_expires_the_open_session_and_never_a_paid_one(env: Env) {
    let b = banks(&env).await;
    let acct = connect(
        &b,
        json!({ "acquirer": "stripe", "account": "acct_1Tabs", "secret": "sk_test_tabs",
                "webhook_secret": "whsec_tabs_secret" }),
    )
    .await;
    let url = acct["notification_urls"]["notification"].as_str().unwrap();
    b.st.account("acct_1Tabs", "sk_test_tabs", url, "whsec_tabs_secret");

    let cs = checkout_session(&b.app, 4_000, "EUR").await;
    let (_, first) = pay(&b.app, &cs, "stripe").await;
    let (status, second) = pay(&b.app, &cs, "stripe").await;
    assert_eq!(status, StatusCode::CREATED, "{second}");
    let o = order_of(&b.app, &cs).await;
    let state_of = |o: &Value, id: &Value| {
        o["attempts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["id"] == *id)
            .map(|a| a["state"].as_str().unwrap().to_owned())
    };
    assert_eq!(state_of(&o, &first["id"]).as_deref(), Some("cancelled"), "{o}");
    let (status, _) = submit_card(&b.app, first["redirect_url"].as_str().unwrap(), st::GOOD_CARD).await;
    assert_eq!(status, StatusCode::CONFLICT, "an expired session takes no card");
    let (status, _) = submit_card(&b.app, second["redirect_url"].as_str().unwrap(), st::GOOD_CARD).await;
    assert_eq!(status, StatusCode::OK);
    state_until(&b.app, &cs, "succeeded").await;

    // Paid at Stripe, its webhook not yet here: the next attempt cannot
    // expire it, and the payment is the order's when the webhook comes.
    b.st.bank.lock().unwrap().silent = true;
    let cs = checkout_session(&b.app, 4_000, "EUR").await;
    let (_, paid) = pay(&b.app, &cs, "stripe").await;
    let (status, _) = submit_card(&b.app, paid["redirect_url"].as_str().unwrap(), st::GOOD_CARD).await;
    assert_eq!(status, StatusCode::OK);
    let (status, again) = pay(&b.app, &cs, "stripe").await;
    assert_eq!(status, StatusCode::CREATED, "{again}");
    let o = order_of(&b.app, &cs).await;
    assert_eq!(state_of(&o, &paid["id"]).as_deref(), Some("created"), "{o}");
    let expiries =
        b.st.bank
            .lock()
            .unwrap()
            .calls
            .iter()
            .filter(|(p, _)| p.ends_with("/expire"))
            .count();
    assert_eq!(expiries, 2, "one expired, one refused");
    let completed =
        b.st.sessions()
            .into_iter()
            .find(|s| s["status"] == "complete" && s["client_reference_id"] == paid["id"])
            .expect("the paid session");
    b.st.bank.lock().unwrap().silent = false;
    assert_eq!(
        b.st.send(completed["id"].as_str().unwrap(), "checkout.session.completed")
            .await,
        200
    );
    state_until(&b.app, &cs, "succeeded").await;
    let o = order_of(&b.app, &cs).await;
    assert_eq!(state_of(&o, &paid["id"]).as_deref(), Some("succeeded"), "{o}");
}

async fn stripe_checkout_pays_by_signed_webhook_and_refunds(env: Env) {
    let b = banks(&env).await;
    for (body, field) in [
        (
            json!({ "acquirer": "stripe", "account": "acct_1", "secret": "sk_test_1" }),
            "webhook_secret",
        ),
        (
            json!({ "acquirer": "stripe", "account": "acct_1", "secret": "pk_test_1", "webhook_secret": "whsec_x" }),
            "secret",
        ),
        (
            json!({ "acquirer": "tbank", "account": "T1", "secret": "p", "webhook_secret": "whsec_x" }),
            "webhook_secret",
        ),
    ] {
        let (status, v) = b.app.seller(Method::POST, "/v1/acquirers", Some(body)).await;
        assert_eq!(
            (status, v["error"]["field"].as_str()),
            (StatusCode::BAD_REQUEST, Some(field)),
            "{v}"
        );
    }
    let acct = connect(
        &b,
        json!({ "acquirer": "stripe", "account": "acct_1Shop", "secret": "sk_test_shop",
                "webhook_secret": "whsec_endpoint_secret" }),
    )
    .await;
    assert!(!acct.to_string().contains("whsec_endpoint_secret") && !acct.to_string().contains("sk_test_shop"));
    let url = acct["notification_urls"]["notification"].as_str().unwrap();
    b.st.account("acct_1Shop", "sk_test_shop", url, "whsec_endpoint_secret");
    b.st.bank.lock().unwrap().chaos = true;

    // A decline keeps Checkout open; expiry ends the attempt, the order stays open.
    let cs = checkout_session(&b.app, 4_000, "EUR").await;
    let (status, first) = pay(&b.app, &cs, "stripe").await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    let (_, page) = submit_card(&b.app, first["redirect_url"].as_str().unwrap(), "4000000000000002").await;
    assert!(page.contains("declined"), "{page}");
    let session_id = b.st.sessions()[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(b.st.expire(&session_id).await, 200);
    let o = order_of(&b.app, &cs).await;
    assert_eq!(
        (o["state"].as_str(), o["attempts"][0]["state"].as_str()),
        (Some("created"), Some("cancelled")),
        "{o}"
    );

    let (status, attempt) = pay(&b.app, &cs, "stripe").await;
    assert_eq!(status, StatusCode::CREATED, "{attempt}");
    let (status, _) = submit_card(&b.app, attempt["redirect_url"].as_str().unwrap(), st::GOOD_CARD).await;
    assert_eq!(status, StatusCode::OK);
    state_until(&b.app, &cs, "succeeded").await;
    let paid = b.st.sessions().into_iter().find(|s| s["status"] == "complete").unwrap();
    let paid_id = common::text(&paid, "id");

    // The emulator signs as Stripe does: Stripe's own library accepts it.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let (body, sig) = b.st.event(&paid_id, "checkout.session.completed", now);
    let script = r#"
import sys, stripe
stripe.Webhook.construct_event(sys.argv[1], sys.argv[2], sys.argv[3])
print("verified")
"#;
    let out = std::process::Command::new(common::python())
        .args(["-c", script, &body, &sig, "whsec_endpoint_secret"])
        .output()
        .expect("python runs");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "verified",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Replayed: received, no second effect. Forged, stale or for an unknown
    // account: 400, nothing changes.
    let post = |path: String, body: String, sig: String| {
        b.app
            .http
            .post(format!("{}/v1/callbacks/stripe/{path}", b.app.base))
            .header("Stripe-Signature", sig)
            .body(body)
            .send()
    };
    assert_eq!(
        b.st.bank
            .lock()
            .unwrap()
            .delivered
            .iter()
            .filter(|e| *e == "checkout.session.completed")
            .count(),
        2,
        "sent twice at once, both acknowledged"
    );
    let r = post("acct_1Shop".into(), body.clone(), sig.clone()).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().await.unwrap()["outcome"], "duplicate");
    let (expired_body, _) = b.st.event(&paid_id, "checkout.session.expired", now);
    let forged = st::sign("whsec_guess", now, &expired_body);
    assert_eq!(
        post("acct_1Shop".into(), expired_body.clone(), forged)
            .await
            .unwrap()
            .status(),
        400
    );
    let (stale_body, stale_sig) = b.st.event(&paid_id, "checkout.session.completed", now - 600);
    assert_eq!(
        post("acct_1Shop".into(), stale_body, stale_sig).await.unwrap().status(),
        400
    );
    assert_eq!(
        post("acct_nobody".into(), body.clone(), sig.clone())
            .await
            .unwrap()
            .status(),
        400
    );
    // A session of the same Stripe account made elsewhere: acknowledged, left alone.
    let foreign = body.replace(
        &format!("\"client_reference_id\":{}", paid["client_reference_id"]),
        "\"client_reference_id\":null",
    );
    assert_ne!(foreign, body);
    let r = post(
        "acct_1Shop".into(),
        foreign.clone(),
        st::sign("whsec_endpoint_secret", now, &foreign),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().await.unwrap()["outcome"], "not_ours");
    assert_eq!(
        post("acct_1Shop".into(), body, String::new()).await.unwrap().status(),
        400
    );
    state_until(&b.app, &cs, "succeeded").await;

    // Refunds name the PaymentIntent.
    let o = order_of(&b.app, &cs).await;
    let (status, r) = refund(&b.app, o["id"].as_str().unwrap(), 1_000).await;
    assert_eq!(status, StatusCode::CREATED, "{r}");
    // The bank refunds but its answer is lost (500): the seller's retry
    // with the same Idempotency-Key asks the bank for the same refund, which
    // it does not make twice.
    b.st.bank.lock().unwrap().refund_then_fail = true;
    let again = || {
        b.app
            .http
            .post(format!(
                "{}/v1/orders/{}/refunds",
                b.app.base,
                o["id"].as_str().unwrap()
            ))
            .bearer_auth(&b.app.key)
            .header("Idempotency-Key", "refund-retry-1")
            .json(&json!({ "amount_minor": 500 }))
            .send()
    };
    assert_eq!(again().await.unwrap().status(), StatusCode::BAD_GATEWAY);
    assert_eq!(again().await.unwrap().status(), StatusCode::CREATED);
    assert_eq!(
        b.st.bank.lock().unwrap().refunds.len(),
        2,
        "one refund of 1 000, one of 500"
    );
    let o = order_of(&b.app, &cs).await;
    assert_eq!(o["refunded_minor"], 1_500, "{o}");
    let refunds = b.st.bank.lock().unwrap().refunds.clone();
    assert_eq!(
        (refunds[0]["payment_intent"].clone(), refunds[0]["amount"].clone()),
        (paid["payment_intent"].clone(), json!(1_000))
    );
}

/// CloudPayments refuses to serve the seller: YooKassa, next in priority,
/// takes the payment as a new attempt of the same order; one charge.
async fn a_refusing_bank_hands_the_payment_to_another_bank(env: Env) {
    let b = banks(&env).await;
    let a = connect(
        &b,
        json!({ "acquirer": "cloudpayments", "account": "pk_blocked", "secret": "s1", "priority": 1 }),
    )
    .await;
    let y = connect(
        &b,
        json!({ "acquirer": "yookassa", "account": "777", "secret": "s2", "priority": 2 }),
    )
    .await;
    b.cp.site(
        "pk_blocked",
        "s1",
        a["notification_urls"]["check"]
            .as_str()
            .unwrap()
            .trim_end_matches("/check"),
        cp::Mode::Refuse("Merchant is blocked".into()),
    );
    b.yk.shop(
        "777",
        "s2",
        y["notification_urls"]["notification"].as_str().unwrap(),
        yk::Mode::Normal,
    );
    let cs = checkout_session(&b.app, 50_000, "RUB").await;
    let (_, status) = b
        .app
        .call(Method::GET, &format!("/v1/checkout/sessions/{cs}/status"), None, None)
        .await;
    assert_eq!(status["acquirers"], json!(["cloudpayments", "yookassa", "sandbox"]));
    let (code, attempt) = pay(&b.app, &cs, "cloudpayments").await;
    assert_eq!(code, StatusCode::CREATED, "{attempt}");
    assert_eq!(attempt["acquirer"], "yookassa");
    let (_, _) = submit_card(&b.app, attempt["redirect_url"].as_str().unwrap(), yk::GOOD_CARD).await;
    state_until(&b.app, &cs, "succeeded").await;
    let o = order_of(&b.app, &cs).await;
    let states: Vec<&str> = o["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["state"].as_str().unwrap())
        .collect();
    assert_eq!(states.len(), 2, "{o}");
    assert!(states.contains(&"cancelled") && states.contains(&"succeeded"), "{o}");
    assert!(
        b.cp.bank.lock().unwrap().orders.is_empty(),
        "nothing was made at the refusing bank"
    );
    assert_eq!(b.yk.payments_of("777").len(), 1);
}

/// YooKassa answers 500 ("result unknown") after making the payment: no
/// other attempt starts until reconciliation asks again with the same
/// Idempotence-Key, which answers the payment made the first time.
async fn an_unclear_yookassa_answer_is_settled_by_asking_again(env: Env) {
    let b = banks(&env).await;
    let y = connect(&b, json!({ "acquirer": "yookassa", "account": "888", "secret": "s3" })).await;
    b.yk.shop(
        "888",
        "s3",
        y["notification_urls"]["notification"].as_str().unwrap(),
        yk::Mode::Unclear,
    );
    let cs = checkout_session(&b.app, 30_000, "RUB").await;
    let (code, v) = pay(&b.app, &cs, "yookassa").await;
    assert_eq!(
        (code, v["error"]["code"].as_str()),
        (StatusCode::BAD_GATEWAY, Some("acquirer_no_answer")),
        "{v}"
    );
    let (code, v) = pay(&b.app, &cs, "yookassa").await;
    assert_eq!(
        (code, v["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("payment_in_progress")),
        "{v}"
    );
    assert_eq!(b.yk.calls("POST /payments", "888"), 1);
    b.app.clock.advance(31_000);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let o = order_of(&b.app, &cs).await;
        if o["attempts"][0]["state"] == "pending" {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "never reconciled: {o}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // Asked again with the same key: the same payment, not a second one.
    assert_eq!(b.yk.calls("POST /payments", "888"), 2);
    assert_eq!(b.yk.payments_of("888").len(), 1);
}

/// Notifications that never came: reconciliation reads each bank's status
/// API (and captures YooKassa's authorized payment) and the orders are paid.
async fn lost_notifications_are_made_up_by_polling_each_bank(env: Env) {
    let b = banks(&env).await;
    connect(&b, json!({ "acquirer": "yookassa", "account": "555", "secret": "s5" })).await;
    connect(
        &b,
        json!({ "acquirer": "stripe", "account": "acct_quiet", "secret": "sk_test_quiet", "webhook_secret": "whsec_q" }),
    )
    .await;
    let nowhere = "http://127.0.0.1:9/nowhere";
    b.yk.shop("555", "s5", nowhere, yk::Mode::Normal);
    b.st.account("acct_quiet", "sk_test_quiet", nowhere, "whsec_q");
    let rub = checkout_session(&b.app, 10_000, "RUB").await;
    let eur = checkout_session(&b.app, 2_000, "EUR").await;
    for (cs, acquirer, good) in [(&rub, "yookassa", yk::GOOD_CARD), (&eur, "stripe", st::GOOD_CARD)] {
        let (code, attempt) = pay(&b.app, cs, acquirer).await;
        assert_eq!(code, StatusCode::CREATED, "{attempt}");
        let (code, _) = submit_card(&b.app, attempt["redirect_url"].as_str().unwrap(), good).await;
        assert_eq!(code, StatusCode::OK);
    }
    let (_, s) = b
        .app
        .seller(Method::GET, &format!("/v1/checkout/sessions/{rub}"), None)
        .await;
    assert_eq!(s["state"], "created", "{s}");
    b.app.clock.advance(31_000);
    state_until(&b.app, &rub, "succeeded").await;
    state_until(&b.app, &eur, "succeeded").await;
    assert_eq!(b.yk.calls("POST /capture", "555"), 1);
    assert_eq!(b.yk.payments_of("555")[0]["status"], "succeeded");
    b.app
        .metrics_until("haul_reconciliation_total{outcome=\"moved\"} 2\n")
        .await;
}

/// With `confirmation: embedded`, the buyer confirms on YooKassa's form
/// inside a page of Haul's, framed like the checkout and returning to it.
async fn yookassa_embedded_confirmation_runs_in_hauls_page(env: Env) {
    let b = banks(&env).await;
    let (code, v) = b
        .app
        .seller(
            Method::POST,
            "/v1/acquirers",
            Some(json!({ "acquirer": "yookassa", "account": "1", "secret": "s", "settings": { "confirmation": "popup" } })),
        )
        .await;
    assert_eq!(
        (code, v["error"]["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("settings.confirmation"))
    );
    let y = connect(
        &b,
        json!({ "acquirer": "yookassa", "account": "321", "secret": "s4", "settings": { "confirmation": "embedded" } }),
    )
    .await;
    b.yk.shop(
        "321",
        "s4",
        y["notification_urls"]["notification"].as_str().unwrap(),
        yk::Mode::Normal,
    );
    let cs = checkout_session(&b.app, 7_000, "RUB").await;
    let (code, attempt) = pay(&b.app, &cs, "yookassa").await;
    assert_eq!(code, StatusCode::CREATED, "{attempt}");
    let url = attempt["redirect_url"].as_str().unwrap();
    let id = b.yk.payments_of("321")[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        url,
        format!(
            "{}/yookassa/confirm/{}?token=ct-{id}",
            b.app.base,
            attempt["id"].as_str().unwrap()
        )
    );
    let page = b.app.http.get(url).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let csp = page.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(csp.contains("script-src 'self' https://yookassa.ru;"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    let html = page.text().await.unwrap();
    assert!(html.contains("https://yookassa.ru/checkout-widget/v1/checkout-widget.js"));
    assert!(
        html.contains(&format!("content=\"{}/checkout/{cs}?return=1\"", b.app.base)),
        "{html}"
    );
    let js = b
        .app
        .http
        .get(format!("{}/assets/yookassa.js", b.app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(js.status(), StatusCode::OK);
    for (bad, want) in [
        (url.replace("token=ct-", "token=%3Cscript%3E"), StatusCode::BAD_REQUEST),
        (
            format!("{}/yookassa/confirm/pat_nothing?token=ct-1", b.app.base),
            StatusCode::NOT_FOUND,
        ),
    ] {
        assert_eq!(b.app.http.get(&bad).send().await.unwrap().status(), want, "{bad}");
    }
    // YooKassa's form takes the card (here: the emulator's page for the
    // same payment); the payment is captured and the order paid.
    let (code, _) = submit_card(&b.app, &format!("{}/pay/{id}", b.yk.base), yk::GOOD_CARD).await;
    assert_eq!(code, StatusCode::OK);
    state_until(&b.app, &cs, "succeeded").await;
    assert_eq!(
        b.app.http.get(url).send().await.unwrap().status(),
        StatusCode::NOT_FOUND
    );
}

/// A viewer's stream purchase of a held unit at a bank, as the viewer page
/// does it: the order, then the attempt.
async fn stream_attempt(app: &TestApp, oid: &str, token: &str, hold: &str, acquirer: &str) -> (String, Value) {
    let order = app.order_for_hold(token, oid, hold).await;
    let order_id = common::text(&order, "id");
    let attempt = app.start_attempt(token, &order_id, acquirer).await;
    (order_id, attempt)
}

/// Stock and money at a real bank: a stream purchase paid at CloudPayments
/// sells its hold once; a buyer whose order expired while on the bank's
/// page, and whose unit went to someone else, is stopped by the Check (no
/// money taken) — never sold beyond the quantity.
async fn stream_purchases_pay_at_a_bank_and_never_oversell(env: Env) {
    let b = banks(&env).await;
    let a = connect(
        &b,
        json!({ "acquirer": "cloudpayments", "account": "pk_live", "secret": "live-secret" }),
    )
    .await;
    b.cp.site(
        "pk_live",
        "live-secret",
        a["notification_urls"]["check"]
            .as_str()
            .unwrap()
            .trim_end_matches("/check"),
        cp::Mode::Normal,
    );
    let (_, _, oid) = b
        .app
        .live_offer(
            json!({ "price_minor": 149000, "currency": "RUB", "quantity": 1, "per_buyer_limit": 1,
                            "duration_seconds": 3600, "hold_ttl_seconds": 30 }),
        )
        .await;
    // Alice starts paying, then leaves the bank's page open past her hold.
    let alice = b.app.viewer_token("alice").await;
    let (st, r) = b.app.reserve(&alice, &oid, 1, "a1").await;
    assert_eq!(st, StatusCode::CREATED, "{r}");
    let (alice_order, alice_attempt) =
        stream_attempt(&b.app, &oid, &alice, r["hold"]["id"].as_str().unwrap(), "cloudpayments").await;
    b.app.clock.advance(16 * 60_000);
    b.app
        .order_until(&alice_order, &alice, |v| v["state"] == "expired")
        .await;
    // Bob takes the unit that came back and pays for it at the bank.
    let bob = b.app.viewer_token("bob").await;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut n = 0;
    let hold = loop {
        n += 1;
        let (st, r) = b.app.reserve(&bob, &oid, 1, &format!("b{n}")).await;
        if st == StatusCode::CREATED {
            break common::text(&r["hold"], "id");
        }
        assert!(tokio::time::Instant::now() < deadline, "the unit never came back: {r}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    let (bob_order, bob_attempt) = stream_attempt(&b.app, &oid, &bob, &hold, "cloudpayments").await;
    let (code, _) = submit_card(&b.app, bob_attempt["redirect_url"].as_str().unwrap(), cp::GOOD_CARD).await;
    assert_eq!(code, StatusCode::OK);
    b.app.order_until(&bob_order, &bob, |v| v["state"] == "succeeded").await;
    // Alice finally pays: the Check refuses (her attempt is over); no money moves.
    let (_, page) = submit_card(&b.app, alice_attempt["redirect_url"].as_str().unwrap(), cp::GOOD_CARD).await;
    assert!(page.contains("refused"), "{page}");
    let (charged, refused_checks) = {
        let bank = b.cp.bank.lock().unwrap();
        let refused = bank.delivered.iter().filter(|(k, c)| k == "check" && *c == 20).count();
        (bank.transactions.len(), refused)
    };
    assert_eq!((charged, refused_checks), (1, 1), "only Bob was charged");
    let (_, alice_view) = b
        .app
        .call(Method::GET, &format!("/v1/orders/{alice_order}"), Some(&alice), None)
        .await;
    assert_eq!(alice_view["state"], "expired", "{alice_view}");
}

/// At YooKassa a payment is only authorized until Haul captures it: one
/// whose order expired meanwhile is let go (cancelled), never captured.
async fn an_authorization_for_an_expired_order_is_let_go(env: Env) {
    let b = banks(&env).await;
    let y = connect(&b, json!({ "acquirer": "yookassa", "account": "4242", "secret": "ks" })).await;
    b.yk.shop(
        "4242",
        "ks",
        y["notification_urls"]["notification"].as_str().unwrap(),
        yk::Mode::Normal,
    );
    let (_, _, oid) = b
        .app
        .live_offer(
            json!({ "price_minor": 149000, "currency": "RUB", "quantity": 1, "per_buyer_limit": 1,
                            "duration_seconds": 3600, "hold_ttl_seconds": 30 }),
        )
        .await;
    let carol = b.app.viewer_token("carol").await;
    let (st, r) = b.app.reserve(&carol, &oid, 1, "c1").await;
    assert_eq!(st, StatusCode::CREATED, "{r}");
    let (order, attempt) = stream_attempt(&b.app, &oid, &carol, r["hold"]["id"].as_str().unwrap(), "yookassa").await;
    b.app.clock.advance(16 * 60_000);
    b.app.order_until(&order, &carol, |v| v["state"] == "expired").await;
    let (code, _) = submit_card(&b.app, attempt["redirect_url"].as_str().unwrap(), yk::GOOD_CARD).await;
    assert_eq!(code, StatusCode::OK);
    let id = b.yk.payments_of("4242")[0]["id"].as_str().unwrap().to_owned();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while b.yk.payment(&id)["status"] != "canceled" {
        assert!(
            tokio::time::Instant::now() < deadline,
            "never let go: {}",
            b.yk.payment(&id)
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(b.yk.calls("POST /capture", "4242"), 0);
    let (_, v) = b
        .app
        .call(Method::GET, &format!("/v1/orders/{order}"), Some(&carol), None)
        .await;
    assert_eq!(v["state"], "expired", "{v}");
    assert_eq!(v["attempts"][0]["state"], "failed", "{v}");
}

on_both_backends!(
    an_authorization_for_an_expired_order_is_let_go,
    stream_purchases_pay_at_a_bank_and_never_oversell,
    yookassa_embedded_confirmation_runs_in_hauls_page,
    lost_notifications_are_made_up_by_polling_each_bank,
    cloudpayments_checks_pays_refunds_and_refuses_forgeries,
    yookassa_captures_and_trusts_only_its_api,
    stripe_checkout_pays_by_signed_webhook_and_refunds,
    a_new_stripe_attempt_expires_the_open_session_and_never_a_paid_one,
    a_refusing_bank_hands_the_payment_to_another_bank,
    an_unclear_yookassa_answer_is_settled_by_asking_again,
    a_second_payment_of_a_paid_order_is_refunded_or_refused_at_each_bank,
);

/// Two tabs, two attempts at one bank, the buyer pays in both. At Stripe
/// the first tab's payment went through before the second attempt could
/// expire its session: both charges are taken, and the one that came second
/// is refunded in full through Stripe's refunds API and marked a duplicate. CloudPayments asks first (Check): the second
/// payment of a paid order is refused before any money moves. YooKassa's
/// second authorization is let go instead of captured.
async fn a_second_payment_of_a_paid_order_is_refunded_or_refused_at_each_bank(env: Env) {
    let b = banks(&env).await;
    let st_acct = connect(
        &b,
        json!({ "acquirer": "stripe", "account": "acct_twice", "secret": "sk_test_twice", "webhook_secret": "whsec_twice" }),
    )
    .await;
    let url = st_acct["notification_urls"]["notification"].as_str().unwrap();
    b.st.account("acct_twice", "sk_test_twice", url, "whsec_twice");
    let cs = checkout_session(&b.app, 4_000, "EUR").await;
    let (_, first) = pay(&b.app, &cs, "stripe").await;
    // Paid in the first tab, its webhook held up: the second tab's new
    // attempt cannot expire it (Stripe refuses), and is paid too.
    b.st.bank.lock().unwrap().silent = true;
    let (status, _) = submit_card(&b.app, first["redirect_url"].as_str().unwrap(), st::GOOD_CARD).await;
    assert_eq!(status, StatusCode::OK);
    b.st.bank.lock().unwrap().silent = false;
    let (_, second) = pay(&b.app, &cs, "stripe").await;
    let (status, _) = submit_card(&b.app, second["redirect_url"].as_str().unwrap(), st::GOOD_CARD).await;
    assert_eq!(status, StatusCode::OK);
    state_until(&b.app, &cs, "succeeded").await;
    let held =
        b.st.sessions()
            .into_iter()
            .find(|s| s["client_reference_id"] == first["id"])
            .expect("the first tab's session");
    assert_eq!(held["status"], "complete");
    assert_eq!(
        b.st.send(held["id"].as_str().unwrap(), "checkout.session.completed")
            .await,
        200
    );
    let mut refunded = Vec::new();
    for _ in 0..100 {
        refunded = b.st.bank.lock().unwrap().refunds.clone();
        if !refunded.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(refunded.len(), 1, "{refunded:?}");
    assert_eq!(refunded[0]["amount"], 4_000, "{refunded:?}");
    let o = order_of(&b.app, &cs).await;
    assert_eq!(
        (o["state"].as_str(), o["refunded_minor"].as_i64()),
        (Some("succeeded"), Some(0)),
        "{o}"
    );
    let duplicates = o["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["duplicate"] == true)
        .count();
    assert_eq!(duplicates, 1, "{o}");

    // CloudPayments: the Check of the second payment says no.
    let cp_acct = connect(
        &b,
        json!({ "acquirer": "cloudpayments", "account": "pk_twice", "secret": "cp-twice", "priority": 1 }),
    )
    .await;
    b.cp.site(
        "pk_twice",
        "cp-twice",
        cp_acct["notification_urls"]["check"]
            .as_str()
            .unwrap()
            .trim_end_matches("/check"),
        cp::Mode::Normal,
    );
    let cs = checkout_session(&b.app, 50_000, "RUB").await;
    let (_, first) = pay(&b.app, &cs, "cloudpayments").await;
    let (_, second) = pay(&b.app, &cs, "cloudpayments").await;
    for attempt in [&first, &second] {
        submit_card(&b.app, attempt["redirect_url"].as_str().unwrap(), cp::GOOD_CARD).await;
    }
    state_until(&b.app, &cs, "succeeded").await;
    let charged: Vec<String> =
        b.cp.bank
            .lock()
            .unwrap()
            .transactions
            .iter()
            .filter(|t| t.site == "pk_twice")
            .map(|t| t.status.clone())
            .collect();
    assert_eq!(charged.iter().filter(|s| *s == "Completed").count(), 1, "{charged:?}");
    let o = order_of(&b.app, &cs).await;
    assert_eq!(
        (o["state"].as_str(), o["refunded_minor"].as_i64()),
        (Some("succeeded"), Some(0)),
        "{o}"
    );

    // YooKassa authorizes first: the second authorization of a paid order
    // is let go (cancelled), never captured.
    let yk_acct = connect(
        &b,
        json!({ "acquirer": "yookassa", "account": "606060", "secret": "yk-twice", "priority": 1 }),
    )
    .await;
    b.yk.shop(
        "606060",
        "yk-twice",
        yk_acct["notification_urls"]["notification"].as_str().unwrap(),
        yk::Mode::Normal,
    );
    let cs = checkout_session(&b.app, 30_000, "RUB").await;
    let (_, first) = pay(&b.app, &cs, "yookassa").await;
    let (_, second) = pay(&b.app, &cs, "yookassa").await;
    submit_card(&b.app, first["redirect_url"].as_str().unwrap(), yk::GOOD_CARD).await;
    state_until(&b.app, &cs, "succeeded").await;
    submit_card(&b.app, second["redirect_url"].as_str().unwrap(), yk::GOOD_CARD).await;
    let mut statuses = Vec::new();
    for _ in 0..100 {
        statuses =
            b.yk.payments_of("606060")
                .iter()
                .map(|p| p["status"].as_str().unwrap_or("").to_owned())
                .collect();
        statuses.sort();
        if statuses == ["canceled", "succeeded"] {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(statuses, ["canceled", "succeeded"]);
    let o = order_of(&b.app, &cs).await;
    assert_eq!(
        (o["state"].as_str(), o["refunded_minor"].as_i64()),
        (Some("succeeded"), Some(0)),
        "{o}"
    );
}
