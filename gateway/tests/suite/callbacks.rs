//! Sandbox callbacks over HTTP: verified on the raw body, applied exactly
//! once however often and in whatever order they arrive; forged, stale,
//! truncated and mismatched ones are refused and change nothing.

use crate::common;

use std::sync::Arc;

use common::{Env, TestApp};
use payments::sandbox;
use payments::state::{AttemptState, OrderState};
use payments::store::{Attempt, Callback, NewOrder, Order};
use reqwest::StatusCode;
use serde_json::{json, Value};
use streams::clock::Clock;

const SECRET: &str = "sandbox-test-secret-sandbox-test-secret";

async fn app(env: &Env) -> TestApp {
    TestApp::start(env, &[("HAUL_SANDBOX_SECRET", SECRET)]).await
}

async fn order(app: &TestApp) -> (Order, Attempt) {
    let store = app.state.payments.store();
    let (order, _) = store
        .create_order(
            &NewOrder {
                seller_id: app.seller.to_string(),
                amount_minor: 259_000,
                currency: "RUB".into(),
                hold_id: None,
                offer_id: None,
                buyer_id: None,
                reference: Some("A-1001".into()),
            },
            1,
        )
        .await
        .unwrap();
    let attempt = store.create_attempt(&order, "sandbox", 2).await.unwrap();
    (order, attempt)
}

/// A node whose seller has an endpoint for `events` (at a dead address:
/// the messages stay in the outbox for the test to read).
async fn app_with_events(env: &Env, events: &[&str]) -> TestApp {
    let app = TestApp::start(
        env,
        &[("HAUL_SANDBOX_SECRET", SECRET), ("HAUL_WEBHOOKS_ALLOW_PRIVATE", "true")],
    )
    .await;
    let (st, ep) = app
        .seller(
            reqwest::Method::POST,
            "/v1/webhook-endpoints",
            Some(json!({ "url": "http://127.0.0.1:9/hooks", "event_types": events })),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{ep}");
    app
}

fn body(attempt: &Attempt, event: &str, status: &str, amount: i64) -> String {
    json!({ "event_id": event, "payment_id": attempt.id.as_str(), "status": status,
            "amount_minor": amount, "currency": "RUB", "decline_code": null, "created_at": 1 })
    .to_string()
}

/// Posts a callback with a signature made at `t` (Unix seconds) under `secret`.
async fn post(app: &TestApp, body: &str, secret: &str, t: i64) -> (StatusCode, Value) {
    let sig = sandbox::sign(secret.as_bytes(), t, body.as_bytes());
    post_raw(app, body, Some(&sig)).await
}

async fn post_raw(app: &TestApp, body: &str, sig: Option<&str>) -> (StatusCode, Value) {
    let mut req = app
        .http
        .post(format!("{}/v1/callbacks/sandbox", app.base))
        .header("content-type", "application/json")
        .body(body.to_owned());
    if let Some(sig) = sig {
        req = req.header(sandbox::SIGNATURE_HEADER, sig);
    }
    let resp = req.send().await.unwrap();
    (resp.status(), resp.json().await.unwrap_or(Value::Null))
}

fn now(app: &TestApp) -> i64 {
    app.clock.now_ms() / 1000
}

async fn a_callback_takes_effect_once_over_http(env: Env) {
    let app = Arc::new(app(&env).await);
    let (order, attempt) = order(&app).await;
    let paid = body(&attempt, "evt_paid", "succeeded", 259_000);
    let calls = (0..12).map(|_| {
        let (app, paid) = (app.clone(), paid.clone());
        async move { post(&app, &paid, SECRET, now(&app)).await }
    });
    let answers = futures_util::future::join_all(calls).await;
    let outcomes: Vec<&str> = answers
        .iter()
        .map(|(st, v)| {
            assert_eq!(*st, StatusCode::OK, "{v}");
            v["outcome"].as_str().unwrap()
        })
        .collect();
    assert_eq!(outcomes.iter().filter(|o| **o == "applied").count(), 1, "{outcomes:?}");
    assert!(outcomes.iter().all(|o| *o == "applied" || *o == "duplicate"));
    // The earlier "pending", arriving late, is received but changes nothing.
    let (st, v) = post(
        &app,
        &body(&attempt, "evt_pending", "pending", 259_000),
        SECRET,
        now(&app),
    )
    .await;
    assert_eq!((st, v["outcome"].as_str()), (StatusCode::OK, Some("ignored")));
    let o = app.state.payments.store().order(&order.id).await.unwrap().unwrap();
    assert_eq!(o.state, OrderState::Succeeded);
    let a = app.state.payments.store().attempt(&attempt.id).await.unwrap().unwrap();
    assert_eq!(a.state, AttemptState::Succeeded);
    let metrics = app.metrics().await;
    assert!(
        metrics.contains("haul_callbacks_total{outcome=\"applied\"} 1"),
        "{metrics}"
    );
}

async fn forged_stale_truncated_and_mismatched_callbacks_change_nothing(env: Env) {
    let app = app(&env).await;
    let (order, attempt) = order(&app).await;
    let good = body(&attempt, "evt_1", "succeeded", 259_000);
    let t = now(&app);
    let refusals = [
        post(&app, &good, "not-the-sandbox-secret-not-the-secret", t).await,
        post(&app, &good, SECRET, t - 3600).await,
        post_raw(
            &app,
            &good[..good.len() - 2],
            Some(&sandbox::sign(SECRET.as_bytes(), t, good.as_bytes())),
        )
        .await,
        post_raw(&app, &good, None).await,
        post_raw(&app, &good, Some("t=1,v1=nothex")).await,
        post(&app, &body(&attempt, "evt_1", "succeeded", 1), SECRET, t).await,
        post(
            &app,
            &good.replace(attempt.id.as_str(), "pat_unknown0000000000000000"),
            SECRET,
            t,
        )
        .await,
        post(&app, "{\"not\":\"a callback\"}", SECRET, t).await,
        post(&app, &body(&attempt, "evt_1", "paid", 259_000), SECRET, t).await,
    ];
    for (i, (st, v)) in refusals.iter().enumerate() {
        assert_eq!(
            (*st, v["error"]["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some("callback_refused")),
            "case {i}: {v}"
        );
    }
    let o = app.state.payments.store().order(&order.id).await.unwrap().unwrap();
    assert_eq!(o.state, OrderState::Created);
    assert_eq!(
        app.state.payments.store().transitions(&order.id).await.unwrap().len(),
        2
    );
    // None of them used up the event id: the genuine callback still applies.
    let (st, v) = post(&app, &good, SECRET, t).await;
    assert_eq!((st, v["outcome"].as_str()), (StatusCode::OK, Some("applied")));
}

async fn a_paid_stream_order_commits_its_hold_once(env: Env) {
    let app = app(&env).await;
    let (sid, _, oid) = app.live_offer(common::offer_body(3, 1)).await;
    let mut events = app.events();
    let token = app
        .seller(
            reqwest::Method::POST,
            "/v1/viewer-tokens",
            Some(json!({ "viewer_id": "alice" })),
        )
        .await
        .1["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let (st, r) = app.reserve(&token, &oid, 1, "buy-1").await;
    assert_eq!(st, StatusCode::CREATED, "{r}");
    let hold = common::text(&r["hold"], "id");
    let order_path = format!("/v1/offers/{oid}/holds/{hold}/order");
    let (st, order) = app.call(reqwest::Method::POST, &order_path, Some(&token), None).await;
    assert_eq!(st, StatusCode::CREATED, "{order}");
    assert_eq!(
        (order["amount_minor"].as_i64(), order["state"].as_str()),
        (Some(149_000), Some("created"))
    );
    // One order per hold; nobody else's.
    let (st, again) = app.call(reqwest::Method::POST, &order_path, Some(&token), None).await;
    assert_eq!((st, &again["id"]), (StatusCode::OK, &order["id"]));
    // It is paid through its own checkout session, framed only by Haul's
    // viewer page and telling nobody else.
    let session = common::text(&order, "checkout_session");
    assert_eq!(again["checkout_session"].as_str(), Some(session.as_str()));
    assert!(order["checkout_url"]
        .as_str()
        .unwrap()
        .ends_with(&format!("/checkout/{session}")));
    let (st, status) = app
        .call(
            reqwest::Method::GET,
            &format!("/v1/checkout/sessions/{session}/status"),
            None,
            None,
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{status}");
    assert_eq!(
        (&status["stream"], &status["origins"], &status["amount_minor"]),
        (&json!(true), &json!([]), &json!(149_000)),
        "{status}"
    );
    assert_eq!(
        (&status["items"][0]["quantity"], &status["items"][0]["price_minor"]),
        (&json!(1), &json!(149_000))
    );
    assert!(status["success_url"]
        .as_str()
        .unwrap()
        .contains(&format!("/watch/{sid}")));
    let page = app
        .http
        .get(format!("{}/checkout/{session}", app.base))
        .send()
        .await
        .unwrap();
    let csp = page.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(csp.ends_with("frame-ancestors 'self'"), "{csp}");
    let other = app.anonymous_viewer().await;
    let (st, _) = app.call(reqwest::Method::POST, &order_path, Some(&other), None).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let order_id = common::text(&order, "id");
    let (st, _) = app
        .call(
            reqwest::Method::GET,
            &format!("/v1/orders/{order_id}"),
            Some(&other),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    // Paying starts an attempt and keeps the hold for the payment window.
    let attempts = format!("/v1/orders/{order_id}/attempts");
    let (st, bad) = app
        .call(
            reqwest::Method::POST,
            &attempts,
            Some(&token),
            Some(json!({ "acquirer": "nowhere" })),
        )
        .await;
    assert_eq!(
        (st, bad["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_field"))
    );
    // (Through the checkout page, as the viewer page does; the orders API
    // path is the same code, used by the tests below.)
    let (st, attempt) = app
        .call(
            reqwest::Method::POST,
            &format!("/v1/checkout/sessions/{session}/attempts"),
            None,
            Some(json!({ "acquirer": "sandbox" })),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{attempt}");
    let window = attempt["hold_expires_at"].as_i64().unwrap() - app.clock.now_ms();
    assert_eq!(window, 15 * 60 * 1000);
    let stored = stored(&app, &attempt).await;
    // The acquirer reports success, twice: the hold is sold once.
    let paid = body(&stored, "evt_sale", "succeeded", 149_000);
    for expected in ["applied", "duplicate"] {
        let (st, v) = post(&app, &paid, SECRET, now(&app)).await;
        assert_eq!((st, v["outcome"].as_str()), (StatusCode::OK, Some(expected)), "{v}");
    }
    let purchase = common::wait_for_event(&mut events, |e| e["type"] == "purchase").await;
    assert_eq!(purchase["offer_id"].as_str(), Some(oid.as_str()));
    let (_, offer) = app
        .seller(reqwest::Method::GET, &format!("/v1/offers/{oid}"), None)
        .await;
    assert_eq!(
        (offer["sold"].as_i64(), offer["held"].as_i64()),
        (Some(1), Some(0)),
        "{offer}"
    );
    let (_, order) = app
        .call(
            reqwest::Method::GET,
            &format!("/v1/orders/{order_id}"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(order["state"], "succeeded");
    assert_eq!(order["attempts"][0]["state"], "succeeded");
}

/// Reserve, order and start a sandbox attempt as a viewer on a new offer;
/// returns (offer id, order id, the attempt's answer, the viewer token).
async fn start_paying(app: &TestApp, viewer: &str) -> (String, String, Value, String) {
    let (_, _, oid) = app.live_offer(common::offer_body(3, 1)).await;
    let (order_id, attempt, token) = paying(app, &oid, viewer).await;
    (oid, order_id, attempt, token)
}

async fn submit_card(app: &TestApp, redirect: &str, number: &str) -> (StatusCode, String) {
    let resp = app
        .http
        .post(redirect)
        .form(&[("number", number), ("expiry", "12/39"), ("cvc", "123")])
        .send()
        .await
        .unwrap();
    (resp.status(), resp.text().await.unwrap())
}

async fn the_sandbox_page_pays_through_duplicated_reordered_callbacks(env: Env) {
    let app = TestApp::start(&env, &[("HAUL_SANDBOX_SECRET", SECRET), ("HAUL_SANDBOX_CHAOS", "true")]).await;
    let (oid, order, attempt, token) = start_paying(&app, "carol").await;
    let redirect = attempt["redirect_url"].as_str().unwrap();
    let page = app.http.get(redirect).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("default-src 'none'"));
    assert!(page.text().await.unwrap().contains("Pay ₽1,490.00"));
    // A number that is not a card is refused and never echoed.
    let (st, text) = submit_card(&app, redirect, "4242424242424241").await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert!(text.contains("not valid") && !text.contains("4242424242424241"));
    let (st, _) = submit_card(&app, redirect, "4242 4242 4242 4242").await;
    assert_eq!(st, StatusCode::OK);
    let paid = app.order_until(&order, &token, |v| v["state"] == "succeeded").await;
    assert_eq!(paid["attempts"][0]["state"], "succeeded");
    // Every callback came twice, the first round backwards: one took effect.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let m = app.metrics().await;
        if m.contains("haul_callbacks_total{outcome=\"duplicate\"} 2") {
            assert!(m.contains("haul_callbacks_total{outcome=\"applied\"} 1"), "{m}");
            assert!(m.contains("haul_callbacks_total{outcome=\"ignored\"} 1"), "{m}");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{m}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let (_, offer) = app
        .seller(reqwest::Method::GET, &format!("/v1/offers/{oid}"), None)
        .await;
    assert_eq!(
        (offer["sold"].as_i64(), offer["held"].as_i64()),
        (Some(1), Some(0)),
        "{offer}"
    );
    // A settled payment's page says so.
    let again = app.http.get(redirect).send().await.unwrap();
    assert_eq!(again.status(), StatusCode::CONFLICT);
}

async fn an_unpaid_order_expires_with_its_hold(env: Env) {
    let app = app(&env).await;
    let (_, _, oid) = app.live_offer(common::offer_body(3, 1)).await;
    let token = app.anonymous_viewer().await;
    let (_, r) = app.reserve(&token, &oid, 1, "r").await;
    let hold = common::text(&r["hold"], "id");
    let (_, order) = app
        .call(
            reqwest::Method::POST,
            &format!("/v1/offers/{oid}/holds/{hold}/order"),
            Some(&token),
            None,
        )
        .await;
    let order = common::text(&order, "id");
    // The hold lives 30 s; nobody pays.
    app.clock.advance(31_000);
    app.order_until(&order, &token, |v| v["state"] == "expired").await;

    // A buyer who gives the hold back cancels its unpaid order; the unit returns.
    let (_, r) = app.reserve(&token, &oid, 1, "r2").await;
    let hold = common::text(&r["hold"], "id");
    let (_, order) = app
        .call(
            reqwest::Method::POST,
            &format!("/v1/offers/{oid}/holds/{hold}/order"),
            Some(&token),
            None,
        )
        .await;
    let order = common::text(&order, "id");
    let (st, _) = app
        .call(
            reqwest::Method::POST,
            &format!("/v1/offers/{oid}/holds/{hold}/release"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    let (_, v) = app
        .call(reqwest::Method::GET, &format!("/v1/orders/{order}"), Some(&token), None)
        .await;
    assert_eq!(v["state"], "cancelled", "{v}");
    let (_, offer) = app
        .seller(reqwest::Method::GET, &format!("/v1/offers/{oid}"), None)
        .await;
    assert_eq!(
        (offer["held"].as_i64(), offer["units_left"].as_i64()),
        (Some(0), Some(3)),
        "{offer}"
    );
}

async fn declined_and_challenged_cards_end_as_the_bank_says(env: Env) {
    let app = app(&env).await;
    let (oid, order, attempt, token) = start_paying(&app, "dave").await;
    let (st, _) = submit_card(&app, attempt["redirect_url"].as_str().unwrap(), "4000000000000002").await;
    assert_eq!(st, StatusCode::OK);
    app.order_until(&order, &token, |v| v["state"] == "failed").await;
    // The declined buyer's unit goes back to stock.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (_, offer) = app
            .seller(reqwest::Method::GET, &format!("/v1/offers/{oid}"), None)
            .await;
        if offer["held"] == 0 {
            assert_eq!(offer["units_left"], 3, "{offer}");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{offer}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    let (_, order, attempt, token) = start_paying(&app, "erin").await;
    let redirect = attempt["redirect_url"].as_str().unwrap();
    let (st, text) = submit_card(&app, redirect, "4000 0000 0000 3220").await;
    assert_eq!(st, StatusCode::OK);
    assert!(text.contains("3-D Secure"));
    app.order_until(&order, &token, |v| v["state"] == "requires_action")
        .await;
    let challenge = redirect.replace("/sandbox/pay/", "/sandbox/challenge/");
    let r = app
        .http
        .post(&challenge)
        .form(&[("passed", "yes")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    app.order_until(&order, &token, |v| v["state"] == "succeeded").await;
}

async fn refunds_are_partial_or_full_and_never_exceed_the_amount(env: Env) {
    let app = app(&env).await;
    let (order, attempt) = order(&app).await;
    let (st, _) = post(
        &app,
        &body(&attempt, "evt_paid", "succeeded", 259_000),
        SECRET,
        now(&app),
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    let path = format!("/v1/orders/{}/refunds", order.id);
    let refund = |amount: Option<i64>, key: &str| {
        let mut body = json!({ "reason": "customer changed their mind" });
        if let Some(a) = amount {
            body["amount_minor"] = json!(a);
        }
        app.http
            .post(format!("{}{path}", app.base))
            .bearer_auth(&app.key)
            .header("idempotency-key", key)
            .json(&body)
            .send()
    };
    let first = refund(Some(100_000), "r-1").await.unwrap();
    assert_eq!(first.status(), StatusCode::CREATED);
    let first: Value = first.json().await.unwrap();
    // The same key answers the same refund; it is not made twice.
    let again: Value = refund(Some(100_000), "r-1").await.unwrap().json().await.unwrap();
    assert_eq!(again["id"], first["id"]);
    let (_, seen) = app
        .seller(reqwest::Method::GET, &format!("/v1/orders/{}", order.id), None)
        .await;
    assert_eq!(
        (seen["state"].as_str(), seen["refunded_minor"].as_i64()),
        (Some("partially_refunded"), Some(100_000))
    );
    let too_much = refund(Some(200_000), "r-2").await.unwrap();
    assert_eq!(too_much.status(), StatusCode::BAD_REQUEST);
    let v: Value = too_much.json().await.unwrap();
    assert_eq!(v["error"]["message"], "amount_minor: from 1 to 159000", "{v}");
    let rest = refund(None, "r-3").await.unwrap();
    assert_eq!(rest.status(), StatusCode::CREATED);
    let (_, seen) = app
        .seller(reqwest::Method::GET, &format!("/v1/orders/{}", order.id), None)
        .await;
    assert_eq!(
        (seen["state"].as_str(), seen["refunded_minor"].as_i64()),
        (Some("refunded"), Some(259_000))
    );
    let more = refund(Some(1), "r-4").await.unwrap();
    assert_eq!(more.status(), StatusCode::CONFLICT);
    // Another seller does not see it.
    let other = app.other_seller_key().await;
    let (st, _) = app
        .call(
            reqwest::Method::GET,
            &format!("/v1/orders/{}", order.id),
            Some(&other),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
}

/// A long offer (an hour), so that a hold can lapse while it is still live.
fn long_offer(quantity: i64) -> Value {
    json!({ "price_minor": 149000, "currency": "RUB", "quantity": quantity, "per_buyer_limit": 1,
            "duration_seconds": 3600, "hold_ttl_seconds": 30 })
}

async fn a_payment_after_the_hold_lapsed_retakes_stock_or_is_refunded(env: Env) {
    let app = app(&env).await;
    // Stock left: the late payment takes a unit again.
    let (_, _, oid) = app.live_offer(long_offer(3)).await;
    let (order_id, attempt, token) = paying(&app, &oid, "late1").await;
    let attempt = stored(&app, &attempt).await;
    app.clock.advance(16 * 60_000); // past the 15-minute payment window
    app.order_until(&order_id, &token, |v| v["state"] == "expired").await;
    let (st, v) = post(
        &app,
        &body(&attempt, "evt_late1", "succeeded", 149_000),
        SECRET,
        now(&app),
    )
    .await;
    assert_eq!((st, v["outcome"].as_str()), (StatusCode::OK, Some("applied")));
    app.order_until(&order_id, &token, |v| v["state"] == "succeeded").await;
    let (_, offer) = app
        .seller(reqwest::Method::GET, &format!("/v1/offers/{oid}"), None)
        .await;
    assert_eq!(offer["sold"], 1, "{offer}");

    // Nothing left: the late payment is refunded in full, nothing oversold.
    let (_, _, oid) = app.live_offer(long_offer(1)).await;
    let (order_id, attempt, token) = paying(&app, &oid, "late2").await;
    let attempt = stored(&app, &attempt).await;
    app.clock.advance(16 * 60_000);
    app.order_until(&order_id, &token, |v| v["state"] == "expired").await;
    let rival = app.anonymous_viewer().await;
    let (st, r) = app.reserve(&rival, &oid, 1, "rival").await;
    assert_eq!(st, StatusCode::CREATED, "{r}");
    let hold = r["hold"]["id"].as_str().unwrap();
    let (st, _) = app
        .seller(
            reqwest::Method::POST,
            &format!("/v1/offers/{oid}/holds/{hold}/commit"),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    let (st, _) = post(
        &app,
        &body(&attempt, "evt_late2", "succeeded", 149_000),
        SECRET,
        now(&app),
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    let refunded = app.order_until(&order_id, &token, |v| v["state"] == "refunded").await;
    assert_eq!(refunded["refunded_minor"], 149_000);
    // Haul cancelled it (the seller has nothing to ship), and says why.
    let (_, seen) = app
        .seller(reqwest::Method::GET, &format!("/v1/orders/{order_id}"), None)
        .await;
    assert_eq!(seen["fulfilment"], "cancelled", "{seen}");
    let cancel = &seen["fulfilment_history"][0];
    assert_eq!(
        (cancel["actor"].as_str(), cancel["refund_minor"].as_i64()),
        (Some("system"), Some(149_000))
    );
    assert_eq!(cancel["refund_id"], seen["refunds"][0]["id"], "{seen}");
    let (_, offer) = app
        .seller(reqwest::Method::GET, &format!("/v1/offers/{oid}"), None)
        .await;
    assert_eq!(
        (offer["sold"].as_i64(), offer["held"].as_i64()),
        (Some(1), Some(0)),
        "{offer}"
    );
}

/// Late payments racing for the last unit: one takes it, the rest are
/// refunded; the offer is never oversold.
async fn late_payments_racing_for_the_last_unit_never_oversell(env: Env) {
    let app = Arc::new(app(&env).await);
    let (_, _, oid) = app.live_offer(long_offer(4)).await;
    let mut late = Vec::new();
    for viewer in ["race1", "race2", "race3", "race4"] {
        let (order_id, attempt, token) = paying(&app, &oid, viewer).await;
        late.push((order_id, stored(&app, &attempt).await, token));
    }
    app.clock.advance(16 * 60_000);
    for (order_id, _, token) in &late {
        app.order_until(order_id, token, |v| v["state"] == "expired").await;
    }
    // Three units go to others meanwhile: one is left.
    for i in 0..3 {
        let rival = app.anonymous_viewer().await;
        let (st, r) = app.reserve(&rival, &oid, 1, &format!("rival{i}")).await;
        assert_eq!(st, StatusCode::CREATED, "{r}");
        let hold = r["hold"]["id"].as_str().unwrap();
        let (st, _) = app
            .seller(
                reqwest::Method::POST,
                &format!("/v1/offers/{oid}/holds/{hold}/commit"),
                None,
            )
            .await;
        assert_eq!(st, StatusCode::OK);
    }
    let calls = late.iter().enumerate().map(|(i, (_, attempt, _))| {
        let (app, body) = (
            app.clone(),
            body(attempt, &format!("evt_race{i}"), "succeeded", 149_000),
        );
        async move { post(&app, &body, SECRET, now(&app)).await }
    });
    for (st, v) in futures_util::future::join_all(calls).await {
        assert_eq!((st, v["outcome"].as_str()), (StatusCode::OK, Some("applied")), "{v}");
    }
    let mut ends = Vec::new();
    for (order_id, _, token) in &late {
        let v = app
            .order_until(order_id, token, |v| {
                v["state"] == "refunded" || (v["state"] == "succeeded" && v["refunded_minor"] == 0)
            })
            .await;
        ends.push(common::text(&v, "state"));
    }
    ends.sort();
    assert_eq!(ends, ["refunded", "refunded", "refunded", "succeeded"]);
    let (_, offer) = app
        .seller(reqwest::Method::GET, &format!("/v1/offers/{oid}"), None)
        .await;
    assert_eq!(
        (offer["sold"].as_i64(), offer["held"].as_i64()),
        (Some(4), Some(0)),
        "{offer}"
    );
}

/// The offer's (sold, held) once it reaches `want` (10 s at most).
async fn offer_until(app: &TestApp, oid: &str, want: (i64, i64)) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (_, offer) = app
            .seller(reqwest::Method::GET, &format!("/v1/offers/{oid}"), None)
            .await;
        if (offer["sold"].as_i64(), offer["held"].as_i64()) == (Some(want.0), Some(want.1)) {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "{offer}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// A node that stops between recording a payment and selling its hold: the
/// payment is in the store, the sale is not. The settlement worker finishes
/// it, also when the hold ran out meanwhile.
async fn a_payment_whose_sale_was_interrupted_is_settled_later(env: Env) {
    let app = app(&env).await;
    let paid_in_store_only = |attempt: &Attempt, event: &str| Callback {
        acquirer: "sandbox".into(),
        callback_id: event.into(),
        attempt_id: attempt.id.clone(),
        amount_minor: 149_000,
        currency: "RUB".into(),
        state: AttemptState::Succeeded,
        at: app.clock.now_ms(),
    };
    let (_, _, oid) = app.live_offer(long_offer(2)).await;
    let (order_id, attempt, token) = paying(&app, &oid, "cut1").await;
    let attempt = stored(&app, &attempt).await;
    app.state
        .payments
        .store()
        .apply_callback(&paid_in_store_only(&attempt, "evt_cut1"))
        .await
        .unwrap();
    offer_until(&app, &oid, (0, 1)).await;
    app.clock.advance(31_000);
    offer_until(&app, &oid, (1, 0)).await;
    let v = app.order_until(&order_id, &token, |v| v["state"] == "succeeded").await;
    assert_eq!(v["refunded_minor"], 0);

    // The hold lapsed before anyone settled: the stock is taken again.
    let (_, _, oid) = app.live_offer(long_offer(2)).await;
    let (order_id, attempt, token) = paying(&app, &oid, "cut2").await;
    let attempt = stored(&app, &attempt).await;
    app.state
        .payments
        .store()
        .apply_callback(&paid_in_store_only(&attempt, "evt_cut2"))
        .await
        .unwrap();
    app.clock.advance(16 * 60_000);
    offer_until(&app, &oid, (1, 0)).await;
    let v = app.order_until(&order_id, &token, |v| v["state"] == "succeeded").await;
    assert_eq!(v["refunded_minor"], 0);
    let metrics = app.metrics().await;
    assert!(metrics.contains("haul_settlements_retried_total 2"), "{metrics}");
}

/// Reserve, order and start a sandbox attempt on `oid`; returns the order id,
/// the attempt's answer and the viewer token.
async fn paying(app: &TestApp, oid: &str, viewer: &str) -> (String, Value, String) {
    let token = app.viewer_token(viewer).await;
    let (_, r) = app.reserve(&token, oid, 1, "r").await;
    let order = app.order_for_hold(&token, oid, r["hold"]["id"].as_str().unwrap()).await;
    let order_id = common::text(&order, "id");
    let attempt = app.start_attempt(&token, &order_id, "sandbox").await;
    (order_id, attempt, token)
}

/// The stored attempt behind an attempt's answer.
async fn stored(app: &TestApp, attempt: &Value) -> Attempt {
    app.state
        .payments
        .store()
        .attempt(&payments::ids::AttemptId::parse(attempt["id"].as_str().unwrap()).unwrap())
        .await
        .unwrap()
        .unwrap()
}

/// The payment window is granted once per hold: attempts after the first
/// (another tab, another bank) keep the hold no longer than 15 minutes from
/// the first, and none starts after it closed.
async fn more_attempts_never_keep_a_hold_longer(env: Env) {
    let app = TestApp::start(&env, &[]).await;
    let (_, _, oid) = app
        .live_offer(json!({ "price_minor": 149000, "currency": "RUB", "quantity": 3,
        "per_buyer_limit": 1, "duration_seconds": 3600, "hold_ttl_seconds": 30 }))
        .await;
    let (order_id, first, token) = paying(&app, &oid, "patient").await;
    let until = first["hold_expires_at"].as_i64().unwrap();
    assert_eq!(until - app.clock.now_ms(), 15 * 60 * 1000);
    for _ in 0..3 {
        app.clock.advance(4 * 60 * 1000);
        let again = app.start_attempt(&token, &order_id, "sandbox").await;
        assert_eq!(again["hold_expires_at"].as_i64(), Some(until), "{again}");
    }
    app.clock.advance(4 * 60 * 1000);
    let (st, late) = app
        .call(
            reqwest::Method::POST,
            &format!("/v1/orders/{order_id}/attempts"),
            Some(&token),
            Some(json!({ "acquirer": "sandbox" })),
        )
        .await;
    assert_eq!(st, StatusCode::CONFLICT, "{late}");
}

on_both_backends!(
    more_attempts_never_keep_a_hold_longer,
    refunds_are_partial_or_full_and_never_exceed_the_amount,
    a_payment_after_the_hold_lapsed_retakes_stock_or_is_refunded,
    late_payments_racing_for_the_last_unit_never_oversell,
    a_payment_whose_sale_was_interrupted_is_settled_later,
    an_unpaid_order_expires_with_its_hold,
    the_sandbox_page_pays_through_duplicated_reordered_callbacks,
    declined_and_challenged_cards_end_as_the_bank_says,
    a_paid_stream_order_commits_its_hold_once,
    a_callback_takes_effect_once_over_http,
    forged_stale_truncated_and_mismatched_callbacks_change_nothing,
    a_second_charge_on_a_paid_order_is_refunded_and_reported,
    an_unpaid_order_expires_by_its_deadline_when_its_hold_is_gone,
    a_new_attempt_cancels_the_unpaid_one_at_the_sandbox,
    paying_and_starting_again_at_once_charge_at_most_once,
    reconciliation_finds_a_sandbox_payment_whose_callback_never_came,
);

/// Two tabs: the buyer starts paying, then starts again. The first attempt
/// is cancelled at the sandbox (its page now says so and charges nothing),
/// the second pays the order, and nothing is refunded: one charge.
async fn a_new_attempt_cancels_the_unpaid_one_at_the_sandbox(env: Env) {
    let app = app(&env).await;
    let session = common::checkout_session(&app, 1000, "RUB").await;
    let (st, first) = common::pay_session(&app, &session, "sandbox").await;
    assert_eq!(st, StatusCode::CREATED, "{first}");
    let (st, second) = common::pay_session(&app, &session, "sandbox").await;
    assert_eq!(st, StatusCode::CREATED, "{second}");
    let (st, page) = submit_card(&app, first["redirect_url"].as_str().unwrap(), "4242424242424242").await;
    assert_eq!(st, StatusCode::CONFLICT, "{page}");
    assert!(
        page.contains("cancelled") && page.contains("nothing was charged"),
        "{page}"
    );
    let (st, page) = submit_card(&app, second["redirect_url"].as_str().unwrap(), "4242424242424242").await;
    assert_eq!(st, StatusCode::OK, "{page}");
    let v = common::session_state_until(&app, &session, "succeeded").await;
    let order = common::text(&v, "order_id");
    let (_, o) = app
        .seller(reqwest::Method::GET, &format!("/v1/orders/{order}"), None)
        .await;
    let states: Vec<(&str, &str)> = o["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["id"].as_str().unwrap(), a["state"].as_str().unwrap()))
        .collect();
    assert!(states.contains(&(first["id"].as_str().unwrap(), "cancelled")), "{o}");
    assert!(states.contains(&(second["id"].as_str().unwrap(), "succeeded")), "{o}");
    let refunds: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM refunds WHERE order_id = $1")
        .bind(&order)
        .fetch_one(&app.state.pool)
        .await
        .unwrap();
    assert_eq!(refunds, 0);
}

/// The buyer submits the card in one tab while starting again in the
/// other, many times over: whichever the sandbox decided first wins — the
/// payment (the new attempt then cannot cancel it; if the new one is paid
/// too, it is a duplicate, refunded) or the cancellation (the page then
/// charges nothing). Never two charges kept, never a payment lost.
async fn paying_and_starting_again_at_once_charge_at_most_once(env: Env) {
    let app = app(&env).await;
    for round in 0..6 {
        let session = common::checkout_session(&app, 1000, "RUB").await;
        let (_, first) = common::pay_session(&app, &session, "sandbox").await;
        let (paid, again) = tokio::join!(
            submit_card(&app, first["redirect_url"].as_str().unwrap(), "4242424242424242"),
            common::pay_session(&app, &session, "sandbox"),
        );
        let first_paid = paid.0 == StatusCode::OK;
        assert!(first_paid || paid.0 == StatusCode::CONFLICT, "round {round}: {paid:?}");
        if again.0 == StatusCode::CREATED {
            let (st, page) = submit_card(&app, again.1["redirect_url"].as_str().unwrap(), "4242424242424242").await;
            assert!(
                st == StatusCode::OK || st == StatusCode::CONFLICT,
                "round {round}: {page}"
            );
        } else {
            // The first payment had already closed the order.
            assert!(first_paid, "round {round}: {again:?}");
        }
        let v = common::session_state_until(&app, &session, "succeeded").await;
        let order = common::text(&v, "order_id");
        // Settled: no attempt still open, every duplicate refunded.
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let (charged, refunded): (i64, i64) = sqlx::query_as(
                "SELECT CAST((SELECT COALESCE(SUM(amount_minor), 0) FROM payment_attempts \
                              WHERE order_id = $1 AND state = 'succeeded') AS BIGINT), \
                        CAST((SELECT COALESCE(SUM(amount_minor), 0) FROM refunds \
                              WHERE order_id = $1 AND kind = 'duplicate') AS BIGINT)",
            )
            .bind(&order)
            .fetch_one(&app.state.pool)
            .await
            .unwrap();
            if charged - refunded == 1000 {
                break;
            }
            assert!(
                charged - refunded > 1000,
                "round {round}: charged {charged}, refunded {refunded}"
            );
            assert!(
                tokio::time::Instant::now() < deadline,
                "round {round}: the duplicate was never refunded"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
}

/// A sandbox payment whose callback never comes (the card that is paid but
/// never called back): the attempt stays pending until reconciliation asks
/// the sandbox's book, which says paid; the order is paid once.
async fn reconciliation_finds_a_sandbox_payment_whose_callback_never_came(env: Env) {
    let app = app(&env).await;
    let session = common::checkout_session(&app, 1000, "RUB").await;
    let (_, attempt) = common::pay_session(&app, &session, "sandbox").await;
    let (st, page) = submit_card(&app, attempt["redirect_url"].as_str().unwrap(), "4000000000000119").await;
    assert_eq!(st, StatusCode::OK, "{page}");
    // Nothing will tell Haul: the sandbox queued no callback for it.
    let queued: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sandbox_callbacks WHERE attempt_id = $1")
        .bind(attempt["id"].as_str().unwrap())
        .fetch_one(&app.state.pool)
        .await
        .unwrap();
    assert_eq!(queued, 0);
    let (_, v) = app
        .seller(reqwest::Method::GET, &format!("/v1/checkout/sessions/{session}"), None)
        .await;
    assert_ne!(v["state"], "succeeded", "nothing has told Haul yet: {v}");
    // Quiet long enough to be polled.
    app.clock.advance(payments::service::QUIET_MS + 1_000);
    common::session_state_until(&app, &session, "succeeded").await;
    let transitions: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM payment_transitions WHERE attempt_id = $1 AND to_state = 'succeeded'")
            .bind(attempt["id"].as_str().unwrap())
            .fetch_one(&app.state.pool)
            .await
            .unwrap();
    assert_eq!(transitions, 1);
}

/// The stock engine loses a hold (Redis restarted empty, say): nothing will
/// ever sweep it, yet its unpaid order still expires by the deadline kept
/// in the record, and `order.expired` goes out; a payment that comes after
/// follows the late-payment rule (here, the offer over: refunded in full).
async fn an_unpaid_order_expires_by_its_deadline_when_its_hold_is_gone(env: Env) {
    let app = app_with_events(&env, &["order.expired"]).await;
    let (_, _, oid) = app.live_offer(common::offer_body(3, 1)).await;
    let token = app.anonymous_viewer().await;
    let (_, r) = app.reserve(&token, &oid, 1, "r").await;
    let hold = common::text(&r["hold"], "id");
    let (_, order) = app
        .call(
            reqwest::Method::POST,
            &format!("/v1/offers/{oid}/holds/{hold}/order"),
            Some(&token),
            None,
        )
        .await;
    let order = common::text(&order, "id");
    // The engine forgets the hold behind the payments side's back.
    let offer_id = streams::ids::OfferId::parse(&oid).unwrap();
    let hold_id = streams::ids::HoldId::parse(&hold).unwrap();
    app.state
        .streams
        .inventory()
        .release(&offer_id, &hold_id, None)
        .await
        .unwrap()
        .unwrap();
    // Past the hold's 30 s and the grace: the record's deadline ends it.
    app.clock.advance(31_000 + payments::service::SETTLE_GRACE_MS);
    let v = app.order_until(&order, &token, |v| v["state"] == "expired").await;
    assert_eq!(v["state"], "expired");
    let expired: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM webhook_messages WHERE event_type = 'order.expired'")
        .fetch_one(&app.state.pool)
        .await
        .unwrap();
    assert_eq!(expired, 1);
    // The buyer's payment still comes, after the 60 s offer ended: the
    // late-payment rule refunds it in full (no stock to take again).
    let store = app.state.payments.store();
    let order = store
        .order(&payments::ids::OrderId::parse(&order).unwrap())
        .await
        .unwrap()
        .unwrap();
    let attempt = store
        .create_attempt(&order, "sandbox", app.clock.now_ms())
        .await
        .unwrap();
    let (st, v) = post(
        &app,
        &body(&attempt, "evt_late", "succeeded", 149_000),
        SECRET,
        now(&app),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let v = app
        .order_until(order.id.as_str(), &token, |v| v["state"] == "refunded")
        .await;
    assert_eq!(v["refunded_minor"], 149_000, "{v}");
    let (_, offer) = app
        .seller(reqwest::Method::GET, &format!("/v1/offers/{oid}"), None)
        .await;
    assert_eq!(offer["sold"], 0, "{offer}");
}

/// Two tabs, two attempts, both paid — here at the same moment: the order
/// is paid once, the other charge is marked a duplicate, refunded in full
/// (once, however often its callback comes) and reported with
/// `payment.duplicate` and `payment.duplicate_refunded`; it never counts
/// as a refund of the order, which can still be refunded in full.
async fn a_second_charge_on_a_paid_order_is_refunded_and_reported(env: Env) {
    let app = app_with_events(
        &env,
        &[
            "order.paid",
            "payment.duplicate",
            "payment.duplicate_refunded",
            "order.refunded",
        ],
    )
    .await;
    let (order, first) = order(&app).await;
    let second = app
        .state
        .payments
        .store()
        .create_attempt(&order, "sandbox", 3)
        .await
        .unwrap();
    let (pay_a, pay_b) = (
        body(&first, "evt_a", "succeeded", 259_000),
        body(&second, "evt_b", "succeeded", 259_000),
    );
    let (a, b) = tokio::join!(
        post(&app, &pay_a, SECRET, now(&app)),
        post(&app, &pay_b, SECRET, now(&app)),
    );
    assert_eq!((a.0, b.0), (StatusCode::OK, StatusCode::OK), "{a:?} {b:?}");
    // The duplicate's callback again changes nothing.
    for (att, ev) in [(&first, "evt_a"), (&second, "evt_b")] {
        let (st, _) = post(&app, &body(att, ev, "succeeded", 259_000), SECRET, now(&app)).await;
        assert_eq!(st, StatusCode::OK);
    }
    let (st, v) = app
        .seller(reqwest::Method::GET, &format!("/v1/orders/{}", order.id), None)
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["state"], "succeeded");
    assert_eq!(v["refunded_minor"], 0);
    let duplicates: Vec<&Value> = v["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["duplicate"] == true)
        .collect();
    assert_eq!(duplicates.len(), 1, "{v}");
    assert_eq!(duplicates[0]["state"], "succeeded");
    let dup = duplicates[0]["id"].as_str().unwrap().to_owned();
    let pool = &app.state.pool;
    let refunds: Vec<(String, i64, String)> =
        sqlx::query_as("SELECT attempt_id, amount_minor, kind FROM refunds WHERE order_id = $1")
            .bind(order.id.as_str())
            .fetch_all(pool)
            .await
            .unwrap();
    assert_eq!(refunds, vec![(dup.clone(), 259_000, "duplicate".to_owned())]);
    let events = |kind: &'static str| async move {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM webhook_messages WHERE event_type = $1")
            .bind(kind)
            .fetch_one(pool)
            .await
            .unwrap();
        n
    };
    assert_eq!(events("order.paid").await, 1);
    assert_eq!(events("payment.duplicate").await, 1);
    assert_eq!(events("payment.duplicate_refunded").await, 1);
    let payload: String =
        sqlx::query_scalar("SELECT payload FROM webhook_messages WHERE event_type = 'payment.duplicate_refunded'")
            .fetch_one(pool)
            .await
            .unwrap();
    let payload: Value = serde_json::from_str(&payload).unwrap();
    assert_eq!(payload["data"]["attempt_id"], json!(dup), "{payload}");
    assert_eq!(payload["data"]["amount_minor"], 259_000);

    // The order's own refund is the whole amount, from the paying attempt.
    let (st, r) = app
        .seller(
            reqwest::Method::POST,
            &format!("/v1/orders/{}/refunds", order.id),
            Some(json!({})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{r}");
    assert_ne!(r["attempt_id"], json!(dup), "{r}");
    let (_, v) = app
        .seller(reqwest::Method::GET, &format!("/v1/orders/{}", order.id), None)
        .await;
    assert_eq!(
        (v["state"].as_str(), v["refunded_minor"].as_i64()),
        (Some("refunded"), Some(259_000))
    );
}

/// The buyer sees "payment sent" and the node that served the card page
/// stops before it could deliver the sandbox's confirmation (here it never
/// can: its public address is dead). The confirmation was recorded first:
/// another node delivers it and the order is paid.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sandbox_payment_survives_the_node_that_took_it() {
    let env = Env::shared().await;
    let first = TestApp::start(
        &env,
        &[
            ("HAUL_SANDBOX_SECRET", SECRET),
            ("HAUL_PUBLIC_URL", "http://127.0.0.1:9"),
        ],
    )
    .await;
    let session = common::checkout_session(&first, 1000, "RUB").await;
    let (st, attempt) = common::pay_session(&first, &session, "sandbox").await;
    assert_eq!(st, StatusCode::CREATED, "{attempt}");
    let redirect = common::text(&attempt, "redirect_url");
    let path = redirect.strip_prefix("http://127.0.0.1:9").unwrap();
    let (st, page) = submit_card(&first, &format!("{}{path}", first.base), "4242424242424242").await;
    assert_eq!(st, StatusCode::OK, "{page}");
    let waiting: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM sandbox_callbacks WHERE attempt_id = $1 AND done_at IS NULL")
            .bind(attempt["id"].as_str().unwrap())
            .fetch_one(&first.state.pool)
            .await
            .unwrap();
    assert!(waiting >= 1, "the confirmation is in the record");
    let key = first.key.clone();
    drop(first);

    let second = TestApp::start(&env, &[("HAUL_SANDBOX_SECRET", SECRET)]).await;
    // Past the first node's retry wait.
    second.clock.advance(60_000);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (_, v) = second
            .call(
                reqwest::Method::GET,
                &format!("/v1/checkout/sessions/{session}"),
                Some(&key),
                None,
            )
            .await;
        if v["state"] == "succeeded" {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "never paid: {v}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // The order is paid when the confirmation is applied; it is marked
    // delivered when its answer is back, a moment later.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let left: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM sandbox_callbacks WHERE attempt_id = $1 AND done_at IS NULL")
                .bind(attempt["id"].as_str().unwrap())
                .fetch_one(&second.state.pool)
                .await
                .unwrap();
        if left == 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{left} confirmations never marked delivered"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // Delivered ones are kept a day, then forgotten.
    assert_eq!(gateway::adapters::sandbox::purge(&second.state).await.unwrap(), 0);
    second.clock.advance(25 * 3600 * 1000);
    assert!(gateway::adapters::sandbox::purge(&second.state).await.unwrap() >= 1);
}
