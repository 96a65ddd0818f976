//! Seller webhooks end to end: a paid order's `order.paid` reaches the
//! seller's endpoint signed so that the official `standardwebhooks` library
//! verifies it; failures are retried with the same webhook-id; 410 disables
//! the endpoint; private addresses are refused unless allowed.

use crate::common;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use common::{Env, TestApp};
use payments::sandbox;
use payments::store::NewOrder;
use reqwest::Method;
use serde_json::{json, Value};
use streams::clock::Clock;

const SECRET: &str = "sandbox-test-secret-sandbox-test-secret";

/// One received webhook: id, timestamp, signature, body.
pub(crate) type Received = (String, String, String, String);

/// A seller's endpoint: records what it receives, answers the queued statuses
/// (then 200).
#[derive(Clone, Default)]
pub(crate) struct Receiver {
    got: Arc<Mutex<Vec<Received>>>,
    answers: Arc<Mutex<VecDeque<u16>>>,
}

impl Receiver {
    pub(crate) async fn start(answers: &[u16]) -> (Receiver, String) {
        let r = Receiver::default();
        r.answers.lock().unwrap().extend(answers);
        let app = axum::Router::new()
            .route("/hooks", axum::routing::post(receive))
            .with_state(r.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hooks", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (r, url)
    }

    pub(crate) async fn wait_for(&self, n: usize) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            let got = self.got.lock().unwrap().clone();
            if got.len() >= n {
                return got;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "only {} webhooks came",
                got.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn receive(State(r): State<Receiver>, headers: HeaderMap, body: String) -> StatusCode {
    let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    r.got
        .lock()
        .unwrap()
        .push((h("webhook-id"), h("webhook-timestamp"), h("webhook-signature"), body));
    let status = r.answers.lock().unwrap().pop_front().unwrap_or(200);
    StatusCode::from_u16(status).unwrap()
}

async fn app(env: &Env) -> TestApp {
    TestApp::start(
        env,
        &[("HAUL_SANDBOX_SECRET", SECRET), ("HAUL_WEBHOOKS_ALLOW_PRIVATE", "true")],
    )
    .await
}

async fn endpoint(app: &TestApp, url: &str) -> Value {
    let (st, v) = app
        .seller(
            Method::POST,
            "/v1/webhook-endpoints",
            Some(json!({ "url": url, "event_types": ["order.paid", "order.failed"] })),
        )
        .await;
    assert_eq!(st, reqwest::StatusCode::CREATED, "{v}");
    assert!(v["secret"].as_str().unwrap().starts_with("whsec_"));
    v
}

/// An order paid through a signed sandbox callback.
async fn pay_an_order(app: &TestApp, status: &str) -> String {
    let store = app.state.payments.store();
    let (order, _) = store
        .create_order(
            &NewOrder {
                seller_id: app.seller.to_string(),
                amount_minor: 99_000,
                currency: "RUB".into(),
                hold_id: None,
                offer_id: None,
                buyer_id: None,
                reference: Some("site-42".into()),
            },
            app.clock.now_ms(),
        )
        .await
        .unwrap();
    let attempt = store
        .create_attempt(&order, "sandbox", app.clock.now_ms())
        .await
        .unwrap();
    let body = json!({ "event_id": format!("evt_{status}"), "payment_id": attempt.id.as_str(), "status": status,
                       "amount_minor": 99_000, "currency": "RUB", "created_at": 1 })
    .to_string();
    let sig = sandbox::sign(SECRET.as_bytes(), app.clock.now_ms() / 1000, body.as_bytes());
    let r = app
        .http
        .post(format!("{}/v1/callbacks/sandbox", app.base))
        .header(sandbox::SIGNATURE_HEADER, sig)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), reqwest::StatusCode::OK);
    order.id.to_string()
}

async fn a_paid_order_is_reported_signed_and_verifies(env: Env) {
    let app = app(&env).await;
    let (receiver, url) = Receiver::start(&[]).await;
    let ep = endpoint(&app, &url).await;
    let order = pay_an_order(&app, "succeeded").await;
    let got = receiver.wait_for(1).await;
    let (id, ts, sig, body) = &got[0];
    assert!(id.starts_with("msg_"));
    let payload: Value = serde_json::from_str(body).unwrap();
    assert_eq!(payload["type"], "order.paid");
    assert_eq!(payload["data"]["order_id"].as_str(), Some(order.as_str()));
    // Which mode, and who took the money.
    assert_eq!(payload["livemode"], json!(false), "{payload}");
    assert_eq!(payload["data"]["livemode"], json!(false));
    assert_eq!(payload["data"]["acquirer"], "sandbox");
    assert_eq!(payload["data"]["reference"], "site-42");
    assert_eq!(
        common::official_verify(ep["secret"].as_str().unwrap(), id, ts, sig, body),
        "verified"
    );
    // A stranger's secret does not verify it.
    let stranger = payments::webhook::WebhookSecret::generate().expose();
    assert!(common::official_verify(&stranger, id, ts, sig, body).contains("WebhookVerificationError"));
}

async fn failed_deliveries_are_retried_and_gone_endpoints_disabled(env: Env) {
    let app = app(&env).await;
    // 500 first: the same message comes again once the retry is due.
    let (receiver, url) = Receiver::start(&[500]).await;
    endpoint(&app, &url).await;
    pay_an_order(&app, "succeeded").await;
    let first = receiver.wait_for(1).await;
    app.clock.advance(7_000); // past the first retry (5 s + up to 20 %)
    let both = receiver.wait_for(2).await;
    assert_eq!(both[1].0, first[0].0, "a retry keeps its webhook-id");
    assert_ne!(both[1].1, first[0].1, "and carries this attempt's timestamp");
    // The delivery log tells the story; a manual re-send goes out again.
    let (_, list) = app.seller(Method::GET, "/v1/webhook-endpoints", None).await;
    let ep_id = common::text(&list["data"][0], "id");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let log = loop {
        let (_, log) = app
            .seller(Method::GET, &format!("/v1/webhook-endpoints/{ep_id}/deliveries"), None)
            .await;
        if log["data"][0]["state"] == "delivered" {
            break log;
        }
        assert!(tokio::time::Instant::now() < deadline, "{log}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let d = &log["data"][0];
    assert_eq!(
        (d["attempts"].as_i64(), d["last_status"].as_i64()),
        (Some(2), Some(200)),
        "{d}"
    );
    let msg = d["message_id"].as_str().unwrap();
    let (st, _) = app
        .seller(
            Method::POST,
            &format!("/v1/webhook-endpoints/{ep_id}/deliveries/{msg}/resend"),
            None,
        )
        .await;
    assert_eq!(st, reqwest::StatusCode::ACCEPTED);
    assert_eq!(receiver.wait_for(3).await[2].0, msg);
    let (st, _) = app
        .seller(
            Method::POST,
            &format!("/v1/webhook-endpoints/{ep_id}/deliveries/msg_nope/resend"),
            None,
        )
        .await;
    assert_eq!(st, reqwest::StatusCode::NOT_FOUND);
    // 410 Gone: the endpoint is disabled and gets nothing more.
    let (gone, gone_url) = Receiver::start(&[410]).await;
    let ep = endpoint(&app, &gone_url).await;
    pay_an_order(&app, "failed").await;
    gone.wait_for(1).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_, list) = app.seller(Method::GET, "/v1/webhook-endpoints", None).await;
        let mine = list["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["id"] == ep["id"])
            .unwrap()
            .clone();
        if mine["enabled"] == false {
            assert_eq!(mine["disabled_reason"], "answered 410 Gone");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{mine}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn a_rotated_secret_overlaps_with_the_old_one(env: Env) {
    let app = app(&env).await;
    let (receiver, url) = Receiver::start(&[]).await;
    let ep = endpoint(&app, &url).await;
    let old = common::text(&ep, "secret");
    let id = ep["id"].as_str().unwrap();
    let (st, rotated) = app
        .seller(Method::POST, &format!("/v1/webhook-endpoints/{id}/rotate"), None)
        .await;
    assert_eq!(st, reqwest::StatusCode::OK, "{rotated}");
    let new = common::text(&rotated, "secret");
    assert_ne!(new, old);
    pay_an_order(&app, "succeeded").await;
    let got = receiver.wait_for(1).await;
    let (mid, ts, sig, body) = &got[0];
    assert_eq!(sig.split(' ').count(), 2, "signed with both during the overlap");
    for secret in [&old, &new] {
        assert_eq!(common::official_verify(secret, mid, ts, sig, body), "verified");
    }
}

async fn an_expired_hold_is_reported(env: Env) {
    let app = app(&env).await;
    let (receiver, url) = Receiver::start(&[]).await;
    let (st, v) = app
        .seller(
            Method::POST,
            "/v1/webhook-endpoints",
            Some(json!({ "url": url, "event_types": ["hold.expired"] })),
        )
        .await;
    assert_eq!(st, reqwest::StatusCode::CREATED, "{v}");
    let (_, _, oid) = app.live_offer(common::offer_body(5, 2)).await;
    let viewer = app.anonymous_viewer().await;
    let (_, r) = app.reserve(&viewer, &oid, 2, "r").await;
    let hold = common::text(&r["hold"], "id");
    app.clock.advance(31_000);
    let got = receiver.wait_for(1).await;
    let payload: Value = serde_json::from_str(&got[0].3).unwrap();
    assert_eq!(payload["type"], "hold.expired");
    assert_eq!(payload["data"]["hold_id"].as_str(), Some(hold.as_str()));
    assert_eq!(payload["data"]["quantity"], 2);
}

async fn endpoints_are_validated(env: Env) {
    let app = TestApp::start(&env, &[]).await;
    for (body, field) in [
        (json!({ "url": "http://127.0.0.1:9/hooks" }), "url"),
        (json!({ "url": "http://localhost/hooks" }), "url"),
        (json!({ "url": "ftp://example.com/hooks" }), "url"),
        (
            json!({ "url": "https://93.184.216.34/hooks", "event_types": ["order.teleported"] }),
            "event_types",
        ),
    ] {
        let (st, v) = app
            .seller(Method::POST, "/v1/webhook-endpoints", Some(body.clone()))
            .await;
        assert_eq!(
            (st, v["error"]["field"].as_str()),
            (reqwest::StatusCode::BAD_REQUEST, Some(field)),
            "{body} -> {v}"
        );
    }
    let (st, v) = app
        .seller(
            Method::POST,
            "/v1/webhook-endpoints",
            Some(json!({ "url": "https://93.184.216.34/hooks" })),
        )
        .await;
    assert_eq!(st, reqwest::StatusCode::CREATED, "{v}");
    let (_, list) = app.seller(Method::GET, "/v1/webhook-endpoints", None).await;
    assert!(list["data"][0].get("secret").is_none(), "secrets are shown once");
}

/// An endpoint is edited (URL, types), disabled (new messages skip it,
/// waiting ones wait, and go out when it is enabled again) and deleted
/// (gone from the list, nothing more sent, its log out of reach); every
/// mistake names its field; another seller reaches none of it.
async fn endpoints_are_edited_disabled_and_deleted(env: Env) {
    let app = TestApp::start(&env, &[("HAUL_WEBHOOKS_ALLOW_PRIVATE", "true")]).await;
    let (st, ep) = app
        .seller(
            Method::POST,
            "/v1/webhook-endpoints",
            Some(json!({ "url": "http://127.0.0.1:9/a", "event_types": ["order.paid"] })),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{ep}");
    let id = ep["id"].as_str().unwrap().to_owned();
    let path = format!("/v1/webhook-endpoints/{id}");
    let (st, v) = app
        .seller(
            Method::PATCH,
            &path,
            Some(json!({ "url": "http://127.0.0.1:9/b", "event_types": ["order.paid", "order.expired"] })),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["url"], "http://127.0.0.1:9/b");
    assert_eq!(v["event_types"], json!(["order.expired", "order.paid"]), "{v}");
    for (body, field) in [
        (json!({ "url": "ftp://x" }), "url"),
        (json!({ "event_types": ["order.shipped_to_mars"] }), "event_types"),
    ] {
        let (st, v) = app.seller(Method::PATCH, &path, Some(body)).await;
        assert_eq!(
            (st, v["error"]["field"].as_str()),
            (StatusCode::BAD_REQUEST, Some(field)),
            "{v}"
        );
    }
    let (st, _) = app.seller(Method::PATCH, &path, Some(json!({ "colour": "red" }))).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);

    let pool = &app.state.pool;
    let seller = app.seller.to_string();
    let deliveries = || async {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM webhook_deliveries WHERE endpoint_id = $1")
            .bind(&id)
            .fetch_one(pool)
            .await
            .unwrap();
        n
    };
    let send = |kind: &'static str| {
        let seller = seller.clone();
        async move {
            payments::outbox::enqueue_now(pool, &seller, kind, &json!({ "order_id": "ord_x" }), 1)
                .await
                .unwrap()
        }
    };
    send("order.paid").await;
    assert_eq!(deliveries().await, 1);
    // Disabled: a new message skips it.
    let (st, v) = app
        .seller(Method::PATCH, &path, Some(json!({ "enabled": false })))
        .await;
    assert_eq!((st, v["enabled"].as_bool()), (StatusCode::OK, Some(false)), "{v}");
    assert_eq!(v["disabled_reason"], "disabled by the seller");
    send("order.paid").await;
    assert_eq!(deliveries().await, 1);
    let (st, v) = app.seller(Method::PATCH, &path, Some(json!({ "enabled": true }))).await;
    assert_eq!(
        (st, v["enabled"].as_bool(), v["disabled_reason"].is_null()),
        (StatusCode::OK, Some(true), true)
    );
    send("order.expired").await;
    assert_eq!(deliveries().await, 2);

    // Another seller reaches none of it.
    let other = app.other_seller_key().await;
    let (st, _) = app
        .call(Method::PATCH, &path, Some(&other), Some(json!({ "enabled": false })))
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, _) = app.call(Method::DELETE, &path, Some(&other), None).await;
    assert_eq!(st, StatusCode::NOT_FOUND);

    // Deleted: gone from the list, nothing more sent, out of reach.
    let (st, v) = app.seller(Method::DELETE, &path, None).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let (_, list) = app.seller(Method::GET, "/v1/webhook-endpoints", None).await;
    assert!(!list.to_string().contains(&id), "{list}");
    send("order.paid").await;
    assert_eq!(deliveries().await, 2);
    for (method, body) in [
        (Method::DELETE, None),
        (Method::PATCH, Some(json!({ "enabled": true }))),
    ] {
        let (st, _) = app.seller(method, &path, body).await;
        assert_eq!(st, StatusCode::NOT_FOUND);
    }
    let (st, _) = app.seller(Method::GET, &format!("{path}/deliveries"), None).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
}

on_both_backends!(
    endpoints_are_edited_disabled_and_deleted,
    a_rotated_secret_overlaps_with_the_old_one,
    an_expired_hold_is_reported,
    a_paid_order_is_reported_signed_and_verifies,
    failed_deliveries_are_retried_and_gone_endpoints_disabled,
    endpoints_are_validated,
);
