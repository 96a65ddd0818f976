//! Buyer details at checkout: a seller's settings (the default and a
//! stream's own) say what a stream purchase asks — name, phone, email, a
//! shipping address — and which delivery options it offers at which price;
//! nothing is paid before they are given, each is checked (E.164 phones,
//! postal codes by country), the total and the receipt follow the delivery,
//! the seller's `order.paid` says who bought and where it goes, and a
//! viewer's kept details are offered on their next purchase.

use crate::common;
use crate::webhooks::Receiver;

use common::{Env, TestApp};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

fn settings() -> Value {
    json!({
        "fields": { "name": "required", "phone": "required", "email": "optional", "address": "required" },
        "delivery": [
            { "id": "courier", "name": "Courier", "kind": "shipping", "price_minor": 30000 },
            { "id": "pickup", "name": "Pickup point", "kind": "pickup", "price_minor": 0, "address": "Tverskaya 1, Moscow" }
        ]
    })
}

fn field(v: &Value) -> &str {
    v["error"]["field"].as_str().unwrap_or("")
}

/// A viewer's held unit made an order: (order id, checkout session id).
async fn stream_order(app: &TestApp, token: &str, oid: &str, request: &str) -> (String, String) {
    let (st, hold) = app.reserve(token, oid, 1, request).await;
    assert_eq!(st, StatusCode::CREATED, "{hold}");
    let order = app
        .order_for_hold(token, oid, hold["hold"]["id"].as_str().unwrap())
        .await;
    (common::text(&order, "id"), common::text(&order, "checkout_session"))
}

async fn details(app: &TestApp, session: &str, body: Option<Value>) -> (StatusCode, Value) {
    let method = if body.is_some() { Method::POST } else { Method::GET };
    app.call(method, &format!("/v1/checkout/sessions/{session}/details"), None, body)
        .await
}

async fn a_stream_purchase_asks_details_and_delivery_before_paying(env: Env) {
    let app = TestApp::start(&env, &[("HAUL_WEBHOOKS_ALLOW_PRIVATE", "true")]).await;
    let (receiver, url) = Receiver::start(&[]).await;
    app.seller(
        Method::POST,
        "/v1/webhook-endpoints",
        Some(json!({ "url": url, "event_types": ["order.paid"] })),
    )
    .await;
    // The seller's settings are checked.
    for (bad, want) in [
        (json!({ "fields": { "address": "required" } }), "checkout"),
        (json!({ "fields": { "name": "maybe" } }), ""),
        (
            json!({ "delivery": [{ "id": "p", "name": "P", "kind": "pickup", "price_minor": 0 }] }),
            "checkout",
        ),
        (
            json!({ "delivery": [{ "id": "c", "name": "C", "kind": "shipping", "price_minor": -5 }] }),
            "checkout",
        ),
    ] {
        let (st, v) = app
            .seller(Method::PUT, "/v1/checkout-settings", Some(bad.clone()))
            .await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{bad}: {v}");
        assert_eq!(field(&v), want, "{bad}: {v}");
    }
    let (st, v) = app.seller(Method::PUT, "/v1/checkout-settings", Some(settings())).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let (sid, _, oid) = app.live_offer(common::offer_body(5, 5)).await;
    let (_, v) = app
        .seller(Method::GET, &format!("/v1/streams/{sid}/checkout-settings"), None)
        .await;
    assert_eq!(
        (v["inherited"].as_bool(), v["delivery"].as_array().map(Vec::len)),
        (Some(true), Some(2)),
        "{v}"
    );

    let token = app.viewer_token("ann").await;
    let (order, session) = stream_order(&app, &token, &oid, "r1").await;
    // Nothing is paid before the details.
    let (st, v) = app
        .call(
            Method::POST,
            &format!("/v1/checkout/sessions/{session}/attempts"),
            None,
            Some(json!({ "acquirer": "sandbox" })),
        )
        .await;
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("details_required")),
        "{v}"
    );
    let (_, status) = app
        .call(
            Method::GET,
            &format!("/v1/checkout/sessions/{session}/status"),
            None,
            None,
        )
        .await;
    assert_eq!(
        (status["details_asked"].as_bool(), status["details_given"].as_bool()),
        (Some(true), Some(false))
    );
    assert!(
        status.get("given").is_none(),
        "no personal data in the status: {status}"
    );
    let (st, v) = details(&app, &session, None).await;
    assert_eq!(
        (st, v["asked"].as_bool(), v["saved"].clone()),
        (StatusCode::OK, Some(true), Value::Null),
        "{v}"
    );
    assert_eq!(v["fields"]["phone"], "required");

    let address = json!({ "country": "RU", "city": "Moscow", "line1": "Arbat 1, apt 2", "postal_code": "119002" });
    let good = json!({ "name": "Anna Petrova", "phone": "8 (900) 123-45-67", "delivery": "courier",
                       "address": address, "save": true });
    for (change, want) in [
        (json!({ "phone": "12345" }), "phone"),
        (json!({ "phone": null }), "phone"),
        (json!({ "name": "" }), "name"),
        (json!({ "delivery": "drone" }), "delivery"),
        (json!({ "delivery": null }), "delivery"),
        (json!({ "address": null }), "address"),
        (
            json!({ "address": { "country": "RU", "city": "Moscow", "line1": "Arbat 1", "postal_code": "1190" } }),
            "address.postal_code",
        ),
        (
            json!({ "address": { "country": "Russia", "city": "Moscow", "line1": "Arbat 1", "postal_code": "119002" } }),
            "address.country",
        ),
        (json!({ "email": "anna@" }), "email"),
    ] {
        let mut body = good.clone();
        for (k, v) in change.as_object().unwrap() {
            body[k] = v.clone();
        }
        let (st, v) = details(&app, &session, Some(body.clone())).await;
        assert_eq!((st, field(&v)), (StatusCode::BAD_REQUEST, want), "{body}: {v}");
    }
    let (st, v) = details(
        &app,
        &session,
        Some(json!({ "name": "A", "phone": "+79001234567", "delivery": "pickup", "nick": "x" })),
    )
    .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    // Pickup first, then the courier: the total follows the delivery.
    let (st, v) = details(
        &app,
        &session,
        Some(json!({ "name": "Anna Petrova", "phone": "+79001234567", "delivery": "pickup" })),
    )
    .await;
    assert_eq!((st, v["amount_minor"].as_i64()), (StatusCode::OK, Some(149_000)), "{v}");
    let (st, v) = details(&app, &session, Some(good.clone())).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(
        (v["amount_minor"].as_i64(), v["delivery_minor"].as_i64()),
        (Some(179_000), Some(30_000)),
        "{v}"
    );
    let lines: Vec<(String, i64, String)> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["name"].as_str().unwrap().to_owned(),
                i["price_minor"].as_i64().unwrap(),
                i["payment_object"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(lines.len(), 2, "the goods and one delivery line: {lines:?}");
    assert_eq!(lines[1], ("Delivery: Courier".to_owned(), 30_000, "service".to_owned()));
    assert_eq!(v["given"]["phone"], "+79001234567", "the phone in E.164");

    // Paid: the seller learns who bought and where it goes.
    let attempt = app.start_attempt(&token, &order, "sandbox").await;
    common::pay_on_sandbox_page(&app, attempt["redirect_url"].as_str().unwrap()).await;
    app.order_until(&order, &token, |v| v["state"] == "succeeded").await;
    let (st, v) = details(&app, &session, Some(good.clone())).await;
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("details_locked")),
        "{v}"
    );
    let got = receiver.wait_for(1).await;
    let paid: Value = serde_json::from_str(&got[0].3).unwrap();
    let data = &paid["data"];
    assert_eq!(
        (data["amount_minor"].as_i64(), data["delivery_minor"].as_i64()),
        (Some(179_000), Some(30_000)),
        "{data}"
    );
    assert_eq!(data["customer"]["name"], "Anna Petrova");
    assert_eq!(data["customer"]["phone"], "+79001234567");
    assert_eq!(data["delivery"]["id"], "courier");
    assert_eq!(data["shipping_address"]["postal_code"], "119002");
    let (_, d) = app.seller(Method::GET, &format!("/v1/orders/{order}"), None).await;
    assert_eq!(
        (d["customer"]["name"].as_str(), d["delivery"]["kind"].as_str()),
        (Some("Anna Petrova"), Some("shipping")),
        "{d}"
    );
    assert_eq!(d["shipping_address"]["city"], "Moscow");

    // The same viewer's next purchase offers what they kept.
    let (_, next) = stream_order(&app, &token, &oid, "r2").await;
    let (_, v) = details(&app, &next, None).await;
    assert_eq!(v["saved"]["name"], "Anna Petrova", "{v}");
    assert_eq!(v["saved"]["address"]["line1"], "Arbat 1, apt 2");
    // Not kept this time: forgotten.
    let mut once = good.clone();
    once["save"] = json!(false);
    details(&app, &next, Some(once)).await;
    let (_, third) = stream_order(&app, &token, &oid, "r3").await;
    let (_, v) = details(&app, &third, None).await;
    assert!(v["saved"].is_null(), "{v}");
    // Another viewer sees nothing of Anna's.
    let bob = app.viewer_token("bob").await;
    let (_, theirs) = stream_order(&app, &bob, &oid, "b1").await;
    let (_, v) = details(&app, &theirs, None).await;
    assert!(v["saved"].is_null(), "{v}");

    // A stream's own settings win over the seller's; removed, the seller's again.
    let (st, v) = app
        .seller(
            Method::PUT,
            &format!("/v1/streams/{sid}/checkout-settings"),
            Some(json!({ "fields": { "email": "required" } })),
        )
        .await;
    assert_eq!((st, v["inherited"].as_bool()), (StatusCode::OK, Some(false)), "{v}");
    let carl = app.viewer_token("carl").await;
    let (_, s4) = stream_order(&app, &carl, &oid, "c1").await;
    let (_, v) = details(&app, &s4, None).await;
    assert_eq!(
        (v["fields"]["email"].as_str(), v["delivery"].as_array().map(Vec::len)),
        (Some("required"), Some(0)),
        "{v}"
    );
    let (st, v) = details(&app, &s4, Some(json!({ "email": "carl@example.com" }))).await;
    assert_eq!((st, v["amount_minor"].as_i64()), (StatusCode::OK, Some(149_000)), "{v}");
    let (_, v) = app
        .seller(Method::DELETE, &format!("/v1/streams/{sid}/checkout-settings"), None)
        .await;
    assert_eq!(v["inherited"], true);
}

/// A seller's own site's session asks nothing of Haul's page.
async fn a_site_checkout_asks_nothing(env: Env) {
    let app = TestApp::start(&env, &[]).await;
    app.seller(Method::PUT, "/v1/checkout-settings", Some(settings())).await;
    let session = common::checkout_session(&app, 1000, "RUB").await;
    let (_, status) = app
        .call(
            Method::GET,
            &format!("/v1/checkout/sessions/{session}/status"),
            None,
            None,
        )
        .await;
    assert_eq!(status["details_asked"], false, "{status}");
    let (st, v) = details(&app, &session, Some(json!({ "name": "x" }))).await;
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("nothing_asked")),
        "{v}"
    );
    let (st, _) = details(&app, "cs_nope", None).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
}

crate::on_both_backends!(
    a_stream_purchase_asks_details_and_delivery_before_paying,
    a_site_checkout_asks_nothing,
);
