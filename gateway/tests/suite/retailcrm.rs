//! The RetailCRM connector against an emulator of RetailCRM's API v5: a
//! paid stream purchase is created in the CRM with its buyer, items,
//! delivery and payment (through the CRM's rate limit), the CRM's status
//! changes come back through its trigger and move fulfilment — read from
//! the CRM itself, so a forged call moves nothing.

use crate::common;
use crate::emulators::retailcrm;

use std::time::Duration;

use common::{Env, TestApp};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

fn connector(base: &str) -> Value {
    json!({
        "base_url": base, "api_key": "crm-key-1", "site": "live",
        "order_method": "live-stream", "payment_type": "bank-card",
        "delivery_codes": { "courier": "cdek" },
        "status_map": { "assembling": "packed", "send-to-delivery": "shipped", "complete": "delivered",
                        "cancel-other": "cancelled" }
    })
}

/// Waits (up to 15 s) for the CRM to have the order.
async fn in_crm(crm: &retailcrm::Shared, order: &str) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        if let Some((_, o, _, _)) = crm.lock().unwrap().orders.get(order) {
            return o.clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the order never reached the CRM"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn paid_orders_reach_the_crm_and_its_statuses_come_back(env: Env) {
    let app = TestApp::start(&env, &[("HAUL_WEBHOOKS_ALLOW_PRIVATE", "true")]).await;
    let (crm, base) = retailcrm::start("crm-key-1", "live").await;
    // Set up, checked.
    for (change, field) in [
        (json!({ "base_url": "ftp://crm.example" }), "base_url"),
        (json!({ "api_key": "" }), "api_key"),
        (json!({ "site": "bad site" }), "site"),
        (json!({ "status_map": { "new": "new" } }), "status_map"),
    ] {
        let mut body = connector(&base);
        for (k, v) in change.as_object().unwrap() {
            body[k] = v.clone();
        }
        let (st, v) = app
            .seller(Method::PUT, "/v1/integrations/retailcrm", Some(body.clone()))
            .await;
        assert_eq!(
            (st, v["error"]["field"].as_str()),
            (StatusCode::BAD_REQUEST, Some(field)),
            "{body}: {v}"
        );
    }
    let mut unknown = connector(&base);
    unknown["colour"] = json!("red");
    let (st, _) = app
        .seller(Method::PUT, "/v1/integrations/retailcrm", Some(unknown))
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    let (st, v) = app
        .seller(Method::PUT, "/v1/integrations/retailcrm", Some(connector(&base)))
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert!(
        v.get("api_key").is_none() && v["api_key_set"] == true,
        "the key is never shown: {v}"
    );
    let hook = v["hook_url"].as_str().unwrap().to_owned();

    // A stream purchase with the buyer's details and a courier.
    let settings = json!({
        "fields": { "name": "required", "phone": "required", "address": "required" },
        "delivery": [{ "id": "courier", "name": "Courier", "kind": "shipping", "price_minor": 30000 }]
    });
    app.seller(Method::PUT, "/v1/checkout-settings", Some(settings)).await;
    let (_, _, oid) = app.live_offer(common::offer_body(5, 5)).await;
    let token = app.viewer_token("anna").await;
    let (_, hold) = app.reserve(&token, &oid, 1, "r1").await;
    let made = app
        .order_for_hold(&token, &oid, hold["hold"]["id"].as_str().unwrap())
        .await;
    let order = common::text(&made, "id");
    let session = common::text(&made, "checkout_session");
    let (st, v) = app
        .call(
            Method::POST,
            &format!("/v1/checkout/sessions/{session}/details"),
            None,
            Some(json!({ "name": "Anna Petrova", "phone": "+79001234567", "delivery": "courier",
                         "address": { "country": "RU", "city": "Moscow", "line1": "Arbat 1", "postal_code": "119002" } })),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    // The CRM is over its limit at first: the export waits and goes on.
    crm.lock().unwrap().busy_next = 2;
    let attempt = app.start_attempt(&token, &order, "sandbox").await;
    common::pay_on_sandbox_page(&app, attempt["redirect_url"].as_str().unwrap()).await;
    app.order_until(&order, &token, |v| v["state"] == "succeeded").await;
    let o = in_crm(&crm, &order).await;
    assert_eq!(
        (o["firstName"].as_str(), o["lastName"].as_str()),
        (Some("Anna"), Some("Petrova")),
        "{o}"
    );
    assert_eq!(o["phone"], "+79001234567");
    assert_eq!(
        (o["orderMethod"].as_str(), o["status"].as_str()),
        (Some("live-stream"), Some("new"))
    );
    assert_eq!(
        o["items"].as_array().map(Vec::len),
        Some(1),
        "goods only; the delivery is its own: {o}"
    );
    assert_eq!(o["items"][0]["initialPrice"], 1490.0);
    assert_eq!(
        (o["delivery"]["code"].as_str(), o["delivery"]["cost"].as_f64()),
        (Some("cdek"), Some(300.0))
    );
    assert_eq!(o["delivery"]["address"]["index"], "119002");
    assert_eq!(
        o["payments"][0],
        json!({ "status": "paid", "amount": 1790.0, "type": "bank-card" })
    );
    assert!(crm.lock().unwrap().limited >= 2, "the CRM said busy and Haul waited");

    // The CRM's statuses come back through its trigger, read from the CRM.
    let call = |url: String| {
        let app = &app;
        async move {
            let r = app.http.get(url).send().await.unwrap();
            let st = r.status();
            (st, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    retailcrm::set_status(&crm, &order, "assembling", None);
    let (st, v) = call(format!("{hook}?externalId={order}")).await;
    assert_eq!((st, v["moved_to"].as_str()), (StatusCode::OK, Some("packed")), "{v}");
    let (_, d) = app.seller(Method::GET, &format!("/v1/orders/{order}"), None).await;
    assert_eq!(d["fulfilment"], "packed");
    assert_eq!(d["fulfilment_history"][0]["actor"], "retailcrm");
    // Shipped in the CRM without a track number: Haul waits for one.
    retailcrm::set_status(&crm, &order, "send-to-delivery", None);
    let (_, v) = call(format!("{hook}?externalId={order}")).await;
    assert!(
        v["moved_to"].is_null() && v["note"].as_str().unwrap().contains("track number"),
        "{v}"
    );
    retailcrm::set_status(&crm, &order, "send-to-delivery", Some("CD-1099887766"));
    let (_, v) = call(format!("{hook}?externalId={order}")).await;
    assert_eq!(v["moved_to"], "shipped", "{v}");
    let (_, d) = app.seller(Method::GET, &format!("/v1/orders/{order}"), None).await;
    assert_eq!(
        d["shipment"],
        json!({ "carrier": "cdek", "tracking_number": "CD-1099887766" })
    );
    // The same call again changes nothing; an unmapped status neither.
    let (_, v) = call(format!("{hook}?externalId={order}")).await;
    assert!(v["moved_to"].is_null(), "{v}");
    retailcrm::set_status(&crm, &order, "some-custom-status", None);
    let (_, v) = call(format!("{hook}?externalId={order}")).await;
    assert!(v["moved_to"].is_null(), "{v}");

    // Forged or misdirected calls move nothing.
    let (st, _) = call(format!(
        "{}/v1/integrations/retailcrm/hook/rch_forged?externalId={order}",
        app.base
    ))
    .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, _) = call(format!("{hook}?externalId=ord_aaaaaaaaaaaaaaaaaaaaaa")).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, _) = call(hook.clone()).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    // A CRM that refuses the key: the order stays where it was, and the
    // hook says the CRM could not be read.
    crm.lock().unwrap().key = "rotated".into();
    retailcrm::set_status(&crm, &order, "complete", None);
    let (st, _) = call(format!("{hook}?externalId={order}")).await;
    assert_eq!(st, StatusCode::BAD_GATEWAY);
    let (_, d) = app.seller(Method::GET, &format!("/v1/orders/{order}"), None).await;
    assert_eq!(d["fulfilment"], "shipped");

    // Removed: nothing more goes out, and the hook is gone.
    let (st, _) = app.seller(Method::DELETE, "/v1/integrations/retailcrm", None).await;
    assert_eq!(st, StatusCode::OK);
    let (st, _) = call(format!("{hook}?externalId={order}")).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, _) = app.seller(Method::GET, "/v1/integrations/retailcrm", None).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
}

/// Many paid orders at once reach the CRM without ever passing its limit
/// of 10 requests a second.
async fn a_burst_of_orders_stays_within_the_crms_rate_limit(env: Env) {
    let app = TestApp::start(&env, &[("HAUL_WEBHOOKS_ALLOW_PRIVATE", "true")]).await;
    let (crm, base) = retailcrm::start("crm-key-1", "live").await;
    app.seller(Method::PUT, "/v1/integrations/retailcrm", Some(connector(&base)))
        .await;
    let mut orders = Vec::new();
    for _ in 0..14 {
        let session = common::checkout_session(&app, 1000, "RUB").await;
        let (_, attempt) = common::pay_session(&app, &session, "sandbox").await;
        common::pay_on_sandbox_page(&app, attempt["redirect_url"].as_str().unwrap()).await;
        orders.push(session);
    }
    let mut ids = Vec::new();
    for session in &orders {
        let v = common::session_state_until(&app, session, "succeeded").await;
        ids.push(common::text(&v, "order_id"));
    }
    for id in &ids {
        let o = in_crm(&crm, id).await;
        assert_eq!(o["email"], "buyer@example.com", "{o}");
    }
    assert_eq!(crm.lock().unwrap().over_rate, 0, "never over 10 requests a second");
}

crate::on_both_backends!(
    paid_orders_reach_the_crm_and_its_statuses_come_back,
    a_burst_of_orders_stays_within_the_crms_rate_limit,
);
