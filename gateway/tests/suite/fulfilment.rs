//! A paid order's way to the buyer: new → confirmed → packed → shipped
//! (carrier, tracking) → delivered, or cancelled (refunded in full) /
//! returned (refund chosen), forward only, each move recorded with its
//! actor and sent as a signed webhook; bulk moves by ids and by filter;
//! orders not confirmed in the seller's time flagged once; refunds a move
//! owes made once however often they are retried.

use crate::common;
use crate::webhooks::Receiver;

use common::{Env, TestApp};
use payments::sandbox;
use payments::store::NewOrder;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use streams::clock::Clock;

const SECRET: &str = "sandbox-test-secret-sandbox-test-secret";

async fn app(env: &Env) -> TestApp {
    TestApp::start(
        env,
        &[("HAUL_SANDBOX_SECRET", SECRET), ("HAUL_WEBHOOKS_ALLOW_PRIVATE", "true")],
    )
    .await
}

/// An order of `amount` made and, when `paid`, paid by a signed sandbox
/// callback.
async fn order(app: &TestApp, amount: i64, reference: &str, paid: bool) -> String {
    let store = app.state.payments.store();
    let (order, _) = store
        .create_order(
            &NewOrder {
                seller_id: app.seller.to_string(),
                amount_minor: amount,
                currency: "RUB".into(),
                hold_id: None,
                offer_id: None,
                buyer_id: None,
                reference: Some(reference.into()),
            },
            app.clock.now_ms(),
        )
        .await
        .unwrap();
    if !paid {
        return order.id.to_string();
    }
    let attempt = store
        .create_attempt(&order, "sandbox", app.clock.now_ms())
        .await
        .unwrap();
    let body = json!({ "event_id": format!("evt_{}", attempt.id), "payment_id": attempt.id.as_str(),
                       "status": "succeeded", "amount_minor": amount, "currency": "RUB", "created_at": 1 })
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
    assert_eq!(r.status(), StatusCode::OK);
    order.id.to_string()
}

async fn fulfil(app: &TestApp, order: &str, body: Value) -> (StatusCode, Value) {
    app.seller(Method::POST, &format!("/v1/orders/{order}/fulfilment"), Some(body))
        .await
}

async fn detail(app: &TestApp, order: &str) -> Value {
    let (st, v) = app.seller(Method::GET, &format!("/v1/orders/{order}"), None).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    v
}

fn error_code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("")
}

/// The event types the endpoint received, in order, with their data.
fn events(got: &[crate::webhooks::Received]) -> Vec<(String, Value)> {
    got.iter()
        .map(|(_, _, _, body)| {
            let v: Value = serde_json::from_str(body).unwrap();
            (v["type"].as_str().unwrap().to_owned(), v["data"].clone())
        })
        .collect()
}

async fn the_way_to_the_buyer_goes_forward_only_and_is_told(env: Env) {
    let app = app(&env).await;
    let (receiver, url) = Receiver::start(&[]).await;
    let (st, ep) = app
        .seller(Method::POST, "/v1/webhook-endpoints", Some(json!({ "url": url, "event_types": [
            "order.confirmed", "order.packed", "order.shipped", "order.delivered", "order.returned", "order.cancelled"] })))
        .await;
    assert_eq!(st, StatusCode::CREATED, "{ep}");

    // Not paid: nothing to fulfil.
    let unpaid = order(&app, 1000, "F-0", false).await;
    let (st, v) = fulfil(&app, &unpaid, json!({ "state": "confirmed" })).await;
    assert_eq!((st, error_code(&v)), (StatusCode::CONFLICT, "order_not_paid"), "{v}");
    assert!(detail(&app, &unpaid).await["fulfilment"].is_null());

    let o = order(&app, 1000, "F-1", true).await;
    assert_eq!(detail(&app, &o).await["fulfilment"], "new");
    let (st, v) = fulfil(&app, &o, json!({ "state": "confirmed", "note": "called the buyer" })).await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    assert_eq!(
        (v["fulfilment"].as_str(), v["changed"].as_bool()),
        (Some("confirmed"), Some(true))
    );
    // The same move again changes nothing and says so.
    let (st, again) = fulfil(&app, &o, json!({ "state": "confirmed" })).await;
    assert_eq!(
        (st, again["changed"].as_bool()),
        (StatusCode::OK, Some(false)),
        "{again}"
    );
    assert_eq!(again["move"]["id"], v["move"]["id"]);

    // Shipping names its carrier and tracking number.
    for (body, field) in [
        (json!({ "state": "shipped" }), "carrier"),
        (json!({ "state": "shipped", "carrier": "CDEK" }), "tracking_number"),
        (
            json!({ "state": "shipped", "carrier": "", "tracking_number": "1" }),
            "carrier",
        ),
        (json!({ "state": "packed", "tracking_number": "1" }), "carrier"),
        (json!({ "state": "lost" }), "state"),
        (json!({ "state": "new" }), "state"),
        (json!({ "state": "returned" }), "refund_minor"),
    ] {
        let (st, v) = fulfil(&app, &o, body.clone()).await;
        assert_eq!(
            (st, v["error"]["field"].as_str()),
            (StatusCode::BAD_REQUEST, Some(field)),
            "{body}: {v}"
        );
    }
    let (st, v) = fulfil(
        &app,
        &o,
        json!({ "state": "shipped", "carrier": "CDEK", "tracking_number": "10012345678" }),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    // Nothing moves back; a shipped order is returned, not cancelled.
    for back in ["packed", "confirmed", "cancelled"] {
        let (st, v) = fulfil(&app, &o, json!({ "state": back })).await;
        assert_eq!(
            (st, error_code(&v)),
            (StatusCode::CONFLICT, "illegal_fulfilment_move"),
            "{back}: {v}"
        );
    }
    let (st, _) = fulfil(&app, &o, json!({ "state": "delivered" })).await;
    assert_eq!(st, StatusCode::CREATED);
    // A return refunds what the seller chose, no more than is left.
    let (st, v) = fulfil(&app, &o, json!({ "state": "returned", "refund_minor": 1001 })).await;
    assert_eq!(
        (st, v["error"]["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("refund_minor")),
        "{v}"
    );
    let (st, v) = fulfil(
        &app,
        &o,
        json!({ "state": "returned", "refund_minor": 400, "note": "box crushed" }),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    assert_eq!(
        (v["refunded_minor"].as_i64(), v["refund_owed_minor"].as_i64()),
        (Some(400), Some(0)),
        "{v}"
    );
    assert!(v["move"]["refund_id"].as_str().unwrap().starts_with("ref_"), "{v}");
    // Returned is an end.
    let (st, _) = fulfil(&app, &o, json!({ "state": "delivered" })).await;
    assert_eq!(st, StatusCode::CONFLICT);

    // The record: each move with its actor (the key that made it) and time.
    let (_, keys) = app.seller(Method::GET, "/v1/api-keys", None).await;
    let key_id = keys["data"][0]["id"].as_str().unwrap().to_owned();
    let d = detail(&app, &o).await;
    assert_eq!(
        (d["state"].as_str(), d["refunded_minor"].as_i64()),
        (Some("partially_refunded"), Some(400))
    );
    assert_eq!(d["fulfilment"], "returned");
    assert_eq!(
        d["shipment"],
        json!({ "carrier": "CDEK", "tracking_number": "10012345678" })
    );
    let moves: Vec<(String, String, String)> = d["fulfilment_history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["from"].as_str().unwrap().to_owned(),
                m["to"].as_str().unwrap().to_owned(),
                m["actor"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let actor = format!("api_key:{key_id}");
    assert_eq!(
        moves,
        [
            ("new", "confirmed"),
            ("confirmed", "shipped"),
            ("shipped", "delivered"),
            ("delivered", "returned")
        ]
        .map(|(f, t)| (f.to_owned(), t.to_owned(), actor.clone()))
    );
    assert_eq!(d["fulfilment_history"][0]["note"], "called the buyer");
    assert_eq!(d["refunds"][0]["amount_minor"], 400);

    // Each move reached the seller, signed (deliveries run side by side:
    // each event names its move, the state before and the time); the order
    // lists its deliveries.
    let got = receiver.wait_for(4).await;
    let seen = events(&got);
    let of = |t: &str| seen.iter().find(|(k, _)| k == t).map(|(_, d)| d.clone()).unwrap();
    let mut types: Vec<&str> = seen.iter().map(|(t, _)| t.as_str()).collect();
    types.sort();
    assert_eq!(
        types,
        ["order.confirmed", "order.delivered", "order.returned", "order.shipped"]
    );
    let shipped = of("order.shipped");
    assert_eq!(
        (
            &shipped["tracking_number"],
            &shipped["carrier"],
            &shipped["previous_fulfilment"]
        ),
        (&json!("10012345678"), &json!("CDEK"), &json!("confirmed"))
    );
    assert_eq!(of("order.returned")["refund_minor"], 400);
    assert_eq!(of("order.confirmed")["actor"], actor.as_str());
    let secret = ep["secret"].as_str().unwrap();
    for (id, ts, sig, body) in &got {
        assert_eq!(common::official_verify(secret, id, ts, sig, body), "verified");
    }
    let d = detail(&app, &o).await;
    let mut delivered: Vec<&str> = d["webhook_deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|w| w["state"] == "delivered")
        .map(|w| w["event_type"].as_str().unwrap())
        .collect();
    delivered.sort();
    assert_eq!(delivered, types, "{d}");

    // The book filters by fulfilment; the export carries it.
    let (st, v) = app.seller(Method::GET, "/v1/orders?fulfilment=returned", None).await;
    assert_eq!(st, StatusCode::OK);
    let listed: Vec<&str> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_str().unwrap())
        .collect();
    assert_eq!(listed, [o.as_str()]);
    assert_eq!(v["data"][0]["tracking_number"], "10012345678");
    let (st, v) = app.seller(Method::GET, "/v1/orders?fulfilment=gone", None).await;
    assert_eq!(
        (st, v["error"]["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("fulfilment"))
    );
    let csv = app
        .http
        .get(format!("{}/v1/orders/export.csv?fulfilment=returned", app.base))
        .bearer_auth(&app.key)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert!(lines[0].ends_with(",fulfilment,carrier,tracking_number"), "{csv}");
    assert_eq!(lines.len(), 2, "{csv}");
    assert!(lines[1].ends_with(",returned,CDEK,10012345678"), "{csv}");

    // Another seller's order is not found.
    let other = app.other_seller_key().await;
    let (st, _) = app
        .call(
            Method::POST,
            &format!("/v1/orders/{o}/fulfilment"),
            Some(&other),
            Some(json!({ "state": "confirmed" })),
        )
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
}

/// A cancellation refunds everything left, once, however often it is
/// asked; the viewer sees the fulfilment of their own order.
async fn a_cancellation_refunds_all_that_is_left_once(env: Env) {
    let app = app(&env).await;
    let o = order(&app, 1000, "C-1", true).await;
    let (st, v) = app
        .seller(
            Method::POST,
            &format!("/v1/orders/{o}/refunds"),
            Some(json!({ "amount_minor": 300 })),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let (st, v) = fulfil(&app, &o, json!({ "state": "cancelled", "refund_minor": 5 })).await;
    assert_eq!(
        (st, v["error"]["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("refund_minor")),
        "{v}"
    );
    let (st, v) = fulfil(&app, &o, json!({ "state": "cancelled", "note": "out of stock" })).await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    assert_eq!(
        (v["state"].as_str(), v["refunded_minor"].as_i64()),
        (Some("refunded"), Some(1000)),
        "{v}"
    );
    assert_eq!(v["move"]["refund_minor"], 700);
    for _ in 0..2 {
        let (st, v) = fulfil(&app, &o, json!({ "state": "cancelled" })).await;
        assert_eq!((st, v["changed"].as_bool()), (StatusCode::OK, Some(false)), "{v}");
    }
    let d = detail(&app, &o).await;
    let mut refunds: Vec<(i64, String)> = d["refunds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["amount_minor"].as_i64().unwrap(),
                r["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    refunds.sort();
    assert_eq!(refunds.len(), 2, "{d}");
    assert_eq!(refunds[0].0, 300);
    assert_eq!(refunds[1], (700, "cancelled: out of stock".to_owned()));
    // A cancelled order is an end.
    let (st, _) = fulfil(&app, &o, json!({ "state": "confirmed" })).await;
    assert_eq!(st, StatusCode::CONFLICT);

    // A paid order cancelled with nothing left to refund owes nothing.
    let o = order(&app, 500, "C-2", true).await;
    app.seller(Method::POST, &format!("/v1/orders/{o}/refunds"), Some(json!({})))
        .await;
    let (st, v) = fulfil(&app, &o, json!({ "state": "cancelled" })).await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    assert_eq!(
        (v["move"]["refund_minor"].as_i64(), v["move"]["refund_id"].as_str()),
        (Some(0), Some("none"))
    );

    // The buyer of a stream order sees where it is, not who moved it.
    let (_, _, oid) = app.live_offer(common::offer_body(5, 5)).await;
    let token = app.viewer_token("bo").await;
    let (_, hold) = app.reserve(&token, &oid, 1, "r1").await;
    let mine = app
        .order_for_hold(&token, &oid, hold["hold"]["id"].as_str().unwrap())
        .await;
    let id = common::text(&mine, "id");
    let attempt = app.start_attempt(&token, &id, "sandbox").await;
    let r = app
        .http
        .post(attempt["redirect_url"].as_str().unwrap())
        .form(&[("number", "4242424242424242"), ("expiry", "12/39"), ("cvc", "123")])
        .send()
        .await
        .unwrap();
    let st = r.status();
    assert_eq!(st, StatusCode::OK);
    app.order_until(&id, &token, |v| v["state"] == "succeeded").await;
    let (st, _) = fulfil(
        &app,
        &id,
        json!({ "state": "shipped", "carrier": "Почта России", "tracking_number": "RA123456789RU" }),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED);
    let (_, v) = app
        .call(Method::GET, &format!("/v1/orders/{id}"), Some(&token), None)
        .await;
    assert_eq!(v["fulfilment"], "shipped", "{v}");
    let receipt = v["receipt_url"].as_str().unwrap();
    assert!(receipt.starts_with(&format!("{}/checkout/cs_", app.base)), "{v}");
    let page = app.http.get(receipt).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert_eq!(v["shipment"]["tracking_number"], "RA123456789RU");
    assert!(v.get("fulfilment_history").is_none(), "{v}");
    let (_, v) = app.call(Method::GET, "/v1/viewer/orders", Some(&token), None).await;
    assert_eq!(v["data"][0]["fulfilment"], "shipped", "{v}");
    assert_eq!(v["data"][0]["shipment"]["carrier"], "Почта России");
}

/// A refund a move owes (its bank did not answer) is made by the
/// settlement worker, once, however many rounds and nodes try.
async fn an_owed_refund_is_made_once(env: Env) {
    let app = app(&env).await;
    let o = order(&app, 800, "R-1", true).await;
    // The move as a node that stopped before refunding left it.
    let now = app.clock.now_ms();
    sqlx::query("UPDATE orders SET fulfilment = 'cancelled', fulfilment_at = $1 WHERE id = $2")
        .bind(now)
        .bind(&o)
        .execute(&app.state.pool)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO fulfilment_moves (id, order_id, from_state, to_state, actor, refund_minor, at) \
         VALUES ('ful_owed', $1, 'new', 'cancelled', 'api_key:key_x', 800, $2)",
    )
    .bind(&o)
    .bind(now)
    .execute(&app.state.pool)
    .await
    .unwrap();
    app.clock.advance(60_000);
    let payments = app.state.payments.clone();
    let rounds: Vec<_> = (0..3)
        .map(|_| {
            let p = payments.clone();
            tokio::spawn(async move { p.refund_owed_moves(30_000).await })
        })
        .collect();
    for r in rounds {
        r.await.unwrap();
    }
    payments.refund_owed_moves(30_000).await;
    let d = detail(&app, &o).await;
    assert_eq!(
        (d["state"].as_str(), d["refunded_minor"].as_i64()),
        (Some("refunded"), Some(800)),
        "{d}"
    );
    assert_eq!(d["refunds"].as_array().unwrap().len(), 1, "{d}");
    assert_eq!(d["fulfilment_history"][0]["refund_id"], d["refunds"][0]["id"]);
}

async fn bulk(app: &TestApp, body: Value) -> (StatusCode, Value) {
    app.seller(Method::POST, "/v1/orders/fulfilment", Some(body)).await
}

fn strs(v: &Value) -> Vec<String> {
    let mut all: Vec<String> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect();
    all.sort();
    all
}

/// Bulk moves by filter walk only the orders that can make the move; by
/// ids each order moves or is refused on its own.
async fn bulk_moves_take_each_order_on_its_own(env: Env) {
    let app = app(&env).await;
    let mut paid: Vec<String> = Vec::new();
    for i in 0..3 {
        paid.push(order(&app, 1000, &format!("B-{i}"), true).await);
    }
    let unpaid = order(&app, 1000, "B-x", false).await;
    paid.sort();
    let (st, v) = bulk(&app, json!({ "state": "confirmed", "filter": { "fulfilment": "new" } })).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(
        (strs(&v["moved"]), v["has_more"].as_bool()),
        (paid.clone(), Some(false)),
        "{v}"
    );
    // Again: nothing left that can move there.
    let (_, v) = bulk(&app, json!({ "state": "confirmed", "filter": {} })).await;
    assert!(v["moved"].as_array().unwrap().is_empty(), "{v}");
    // By ids: one moves, one is there already, one is unpaid, one unknown.
    let (st, v) = bulk(&app, json!({ "state": "packed", "ids": [paid[0]] })).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let (st, v) = bulk(
        &app,
        json!({ "state": "packed", "note": "morning batch", "ids": [paid[0], paid[1], unpaid, "ord_aaaaaaaaaaaaaaaaaaaaaa"] }),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(strs(&v["moved"]), [paid[1].clone()]);
    assert_eq!(strs(&v["unchanged"]), [paid[0].clone()]);
    let refused: Vec<(String, String)> = v["refused"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["id"].as_str().unwrap().to_owned(),
                r["code"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        refused,
        [
            (unpaid.clone(), "order_not_paid".to_owned()),
            ("ord_aaaaaaaaaaaaaaaaaaaaaa".to_owned(), "not_found".to_owned())
        ]
    );
    // Filtered by fulfilment and more: the book agrees.
    let (_, v) = app.seller(Method::GET, "/v1/orders?fulfilment=packed", None).await;
    assert_eq!(v["data"].as_array().unwrap().len(), 2, "{v}");
    // What a bulk move cannot do, and bad requests.
    for (body, field) in [
        (json!({ "state": "shipped", "filter": {} }), "state"),
        (json!({ "state": "returned", "ids": [paid[0]] }), "state"),
        (json!({ "state": "packed" }), "ids"),
        (json!({ "state": "packed", "ids": [], "filter": {} }), "ids"),
        (json!({ "state": "packed", "ids": [] }), "ids"),
        (json!({ "state": "packed", "ids": ["x"] }), "ids"),
        (json!({ "state": "packed", "filter": { "limit": 5 } }), "filter"),
        (json!({ "state": "packed", "filter": { "state": "lost" } }), "state"),
        (json!({ "state": "packed", "ids": [paid[2]], "note": "\u{0}" }), "note"),
    ] {
        let (st, v) = bulk(&app, body.clone()).await;
        assert_eq!(
            (st, v["error"]["field"].as_str()),
            (StatusCode::BAD_REQUEST, Some(field)),
            "{body}: {v}"
        );
    }
    let (st, v) = bulk(&app, json!({ "state": "packed", "filter": { "colour": "red" } })).await;
    assert_eq!((st, error_code(&v)), (StatusCode::BAD_REQUEST, "invalid_body"), "{v}");
    // A bulk cancellation refunds each order in full.
    let (st, v) = bulk(&app, json!({ "state": "cancelled", "filter": { "reference": "B-2" } })).await;
    assert_eq!((st, strs(&v["moved"]).len()), (StatusCode::OK, 1), "{v}");
    let d = detail(&app, v["moved"][0].as_str().unwrap()).await;
    assert_eq!(
        (d["state"].as_str(), d["fulfilment"].as_str()),
        (Some("refunded"), Some("cancelled"))
    );
}

/// A paid order the seller has not confirmed in their time is flagged
/// once (`order.unconfirmed`), listed by the flag, and unflagged by
/// confirming it; without the setting nothing is flagged.
async fn unconfirmed_orders_are_flagged_once(env: Env) {
    let app = app(&env).await;
    let (receiver, url) = Receiver::start(&[]).await;
    app.seller(
        Method::POST,
        "/v1/webhook-endpoints",
        Some(json!({ "url": url, "event_types": ["order.unconfirmed"] })),
    )
    .await;
    let early = order(&app, 1000, "U-0", true).await;
    app.clock.advance(60 * 60_000);
    app.state.payments.flag_unconfirmed().await;
    assert_eq!(detail(&app, &early).await["unconfirmed"], false, "no setting: no flag");

    for bad in [json!(0), json!(10_081), json!("5"), json!(2.5)] {
        let (st, v) = app
            .seller(
                Method::PATCH,
                "/v1/settings",
                Some(json!({ "confirm_within_minutes": bad })),
            )
            .await;
        assert!(st.is_client_error(), "{bad}: {st} {v}");
    }
    let (st, v) = app
        .seller(
            Method::PATCH,
            "/v1/settings",
            Some(json!({ "confirm_within_minutes": 5 })),
        )
        .await;
    assert_eq!(
        (st, v["confirm_within_minutes"].as_i64()),
        (StatusCode::OK, Some(5)),
        "{v}"
    );
    let paid_at = app.clock.now_ms();
    let late = order(&app, 1000, "U-1", true).await;
    let prompt = order(&app, 1000, "U-2", true).await;
    let d = detail(&app, &late).await;
    assert_eq!(
        (d["unconfirmed"].as_bool(), d["confirm_by"].as_i64()),
        (Some(false), Some(paid_at + 300_000)),
        "{d}"
    );
    fulfil(&app, &prompt, json!({ "state": "confirmed" })).await;
    app.clock.advance(4 * 60_000);
    app.state.payments.flag_unconfirmed().await;
    assert_eq!(detail(&app, &late).await["unconfirmed"], false, "not yet");
    app.clock.advance(61_000);
    for _ in 0..3 {
        app.state.payments.flag_unconfirmed().await;
    }
    // The early order (paid before the setting) is past its time too.
    // Flagging writes its message in the same transaction: the record says
    // how many there are, whatever the deliveries' timing.
    let sent: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM webhook_messages WHERE event_type = 'order.unconfirmed'")
        .fetch_one(&app.state.pool)
        .await
        .unwrap();
    assert_eq!(sent, 2, "each flagged once");
    let got = receiver.wait_for(2).await;
    let mut flagged: Vec<String> = events(&got)
        .iter()
        .map(|(t, d)| {
            assert_eq!(t, "order.unconfirmed");
            d["order_id"].as_str().unwrap().to_owned()
        })
        .collect();
    flagged.sort();
    let mut want = vec![early.clone(), late.clone()];
    want.sort();
    assert_eq!(flagged, want, "each flagged once, the confirmed one never");
    let (_, v) = app.seller(Method::GET, "/v1/orders?unconfirmed=true", None).await;
    let mut listed: Vec<String> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_str().unwrap().to_owned())
        .collect();
    listed.sort();
    assert_eq!(listed, want);
    fulfil(&app, &late, json!({ "state": "confirmed" })).await;
    let (_, v) = app.seller(Method::GET, "/v1/orders?unconfirmed=true", None).await;
    assert_eq!(v["data"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(detail(&app, &late).await["unconfirmed"], false);
    let (st, v) = app
        .seller(
            Method::PATCH,
            "/v1/settings",
            Some(json!({ "confirm_within_minutes": null })),
        )
        .await;
    assert_eq!(
        (st, v["confirm_within_minutes"].clone()),
        (StatusCode::OK, Value::Null),
        "{v}"
    );
}

crate::on_both_backends!(
    the_way_to_the_buyer_goes_forward_only_and_is_told,
    a_cancellation_refunds_all_that_is_left_once,
    an_owed_refund_is_made_once,
    bulk_moves_take_each_order_on_its_own,
    unconfirmed_orders_are_flagged_once,
);
