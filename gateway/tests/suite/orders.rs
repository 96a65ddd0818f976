//! The seller's order book: every order newest first, in pages a cursor
//! walks without skipping or repeating (ties in creation time included,
//! orders made meanwhile included), filtered by stream, offer, state, time,
//! buyer contact and reference, each bad parameter named; and the same as a
//! CSV that streams page by page, with formulas defused.

use crate::common;

use common::{Env, TestApp};
use payments::store::NewOrder;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use streams::clock::Clock;

/// A checkout order of `reference` paid by `email` (the manual clock does
/// not move: orders share their creation time unless a test moves it).
async fn session_order(app: &TestApp, reference: &str, email: &str) -> String {
    let (st, s) = app
        .seller(
            Method::POST,
            "/v1/checkout/sessions",
            Some(json!({
                "amount_minor": 1000, "currency": "RUB", "reference": reference,
                "items": [{ "name": "Mug", "quantity": 1, "price_minor": 1000, "vat": "vat20" }],
                "success_url": "https://shop.example/ok", "cancel_url": "https://shop.example/",
                "customer_email": email })),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{s}");
    common::text(&s, "order_id")
}

async fn book(app: &TestApp, query: &str) -> (StatusCode, Value) {
    app.seller(Method::GET, &format!("/v1/orders?{query}"), None).await
}

fn ids(v: &Value) -> Vec<String> {
    v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_str().unwrap().to_owned())
        .collect()
}

/// Walks every page of `query` `limit` at a time; the ids in order.
async fn walk(app: &TestApp, query: &str, limit: usize) -> Vec<String> {
    let mut all = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let q = match &after {
            Some(c) => format!("{query}&limit={limit}&after={c}"),
            None => format!("{query}&limit={limit}"),
        };
        let (st, v) = book(app, &q).await;
        assert_eq!(st, StatusCode::OK, "{v}");
        assert!(ids(&v).len() <= limit);
        all.extend(ids(&v));
        if v["has_more"] != true {
            assert!(v["next_cursor"].is_null(), "{v}");
            return all;
        }
        after = Some(v["next_cursor"].as_str().unwrap().to_owned());
    }
}

async fn pages_are_stable_and_filters_narrow(env: Env) {
    let app = TestApp::start(&env, &[]).await;
    // Five at one millisecond, two later.
    let mut made = Vec::new();
    for n in 0..5 {
        made.push(session_order(&app, &format!("R-{n}"), "ann@example.com").await);
    }
    app.clock.advance(1_000);
    let t1 = app.clock.now_ms();
    for n in 5..7 {
        made.push(session_order(&app, &format!("R-{n}"), "Bob@Example.com").await);
    }
    app.clock.advance(1_000);
    let (_, _, oid) = app.live_offer(common::offer_body(5, 5)).await;
    let (st, offers) = app.seller(Method::GET, &format!("/v1/offers/{oid}"), None).await;
    assert_eq!(st, StatusCode::OK, "{offers}");
    let sid = common::text(&offers, "stream_id");
    let token = app.viewer_token("cat").await;
    let (st, hold) = app.reserve(&token, &oid, 1, "r1").await;
    assert_eq!(st, StatusCode::CREATED, "{hold}");
    let stream_order = app
        .order_for_hold(&token, &oid, hold["hold"]["id"].as_str().unwrap())
        .await;
    let stream_order = common::text(&stream_order, "id");

    // Newest first (ties in the database's order of ids); every order
    // once, whatever the page size.
    let (st, first) = book(&app, "limit=200").await;
    assert_eq!(st, StatusCode::OK, "{first}");
    assert_eq!(first["livemode"], false);
    let everything = ids(&first);
    assert_eq!(everything.len(), 8);
    assert_eq!(everything[0], stream_order);
    let times: Vec<i64> = first["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["created_at"].as_i64().unwrap())
        .collect();
    for pair in first["data"].as_array().unwrap().windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        let key = |o: &Value| (o["created_at"].as_i64().unwrap(), o["id"].as_str().unwrap().to_owned());
        assert!(key(a) > key(b), "{times:?}");
    }
    for limit in [1, 2, 3, 7] {
        assert_eq!(walk(&app, "", limit).await, everything, "pages of {limit}");
    }
    // An order made while a walk is under way comes before it: the walk
    // goes on without repeating or skipping.
    let (_, v) = book(&app, "limit=3").await;
    app.clock.advance(1_000);
    let newer = session_order(&app, "R-new", "dan@example.com").await;
    let mut rest = ids(&v);
    let mut after = v["next_cursor"].as_str().unwrap().to_owned();
    loop {
        let (_, v) = book(&app, &format!("limit=3&after={after}")).await;
        rest.extend(ids(&v));
        match v["next_cursor"].as_str() {
            Some(c) => after = c.to_owned(),
            None => break,
        }
    }
    assert_eq!(rest, everything);
    assert!(!rest.contains(&newer));

    // Filters.
    let only = |q: &'static str| {
        let app = &app;
        async move { walk(app, q, 2).await }
    };
    assert_eq!(only("reference=R-3").await, vec![made[3].clone()]);
    assert_eq!(only("email=bob@EXAMPLE.com").await.len(), 2, "any case");
    assert_eq!(only("state=created").await.len(), 9);
    assert!(only("state=succeeded").await.is_empty());
    assert_eq!(
        walk(&app, &format!("stream={sid}"), 5).await,
        vec![stream_order.clone()]
    );
    assert_eq!(walk(&app, &format!("offer={oid}"), 5).await, vec![stream_order.clone()]);
    let later = walk(&app, &format!("created_gte={t1}"), 5).await;
    assert_eq!(later.len(), 4, "two sessions, the stream order and the newer one");
    let t2 = t1 + 1_000;
    assert_eq!(
        walk(&app, &format!("created_gte={t1}&created_lt={t2}"), 5).await.len(),
        2
    );
    let earlier = walk(&app, &format!("created_lt={t1}"), 5).await;
    assert_eq!(earlier.len(), 5);
    assert_eq!(
        walk(&app, &format!("created_lt={t1}&email=ann@example.com&reference=R-0"), 5).await,
        vec![made[0].clone()]
    );

    // Another seller's book holds none of these.
    let other = app.other_seller_key().await;
    let (st, v) = app.call(Method::GET, "/v1/orders", Some(&other), None).await;
    assert_eq!(st, StatusCode::OK);
    assert!(ids(&v).is_empty(), "{v}");

    // Every mistake is named.
    for (q, field) in [
        ("limit=0", "limit"),
        ("limit=201", "limit"),
        ("state=paid", "state"),
        ("stream=nope", "stream"),
        ("offer=str_x", "offer"),
        ("after=garbage", "after"),
        ("after=12_pat_abc", "after"),
        ("created_gte=-5", "created_gte"),
        ("email=", "email"),
    ] {
        let (st, v) = book(&app, q).await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{q}: {v}");
        assert_eq!(v["error"]["field"], field, "{q}: {v}");
    }
    for q in ["limit=x", "colour=red"] {
        let (st, v) = book(&app, q).await;
        assert_eq!(
            (st, v["error"]["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some("invalid_query")),
            "{q}: {v}"
        );
    }
}

async fn the_export_streams_every_row_with_formulas_defused(env: Env) {
    let app = TestApp::start(&env, &[]).await;
    let store = app.state.payments.store();
    // More than one page of the export.
    for n in 0..1_234 {
        store
            .create_order(
                &NewOrder {
                    seller_id: app.seller.to_string(),
                    amount_minor: 500 + n,
                    currency: "RUB".into(),
                    hold_id: None,
                    offer_id: None,
                    buyer_id: None,
                    reference: Some(format!("bulk-{n}")),
                },
                1_000 + n / 10,
            )
            .await
            .unwrap();
    }
    let hostile = session_order(&app, "=HYPERLINK(\"https://evil.example\",\"x\")", "eve@example.com").await;
    let get = |q: String| {
        let app = &app;
        async move {
            let r = app
                .http
                .get(format!("{}/v1/orders/export.csv{q}", app.base))
                .bearer_auth(&app.key)
                .send()
                .await
                .unwrap();
            let st = r.status();
            let ct = r
                .headers()
                .get("content-type")
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default();
            (st, ct, r.text().await.unwrap())
        }
    };
    let (st, ct, csv) = get(String::new()).await;
    assert_eq!(st, StatusCode::OK, "{csv}");
    assert!(ct.starts_with("text/csv"), "{ct}");
    let lines: Vec<&str> = csv.lines().collect();
    assert!(lines[0].starts_with("id,created_at,state,amount_minor"), "{}", lines[0]);
    assert_eq!(lines.len(), 1 + 1_235, "a header and every order once");
    let unique: std::collections::BTreeSet<&str> = lines[1..].iter().map(|l| l.split(',').next().unwrap()).collect();
    assert_eq!(unique.len(), 1_235);
    let row = lines.iter().find(|l| l.starts_with(&hostile)).unwrap();
    assert!(
        row.contains("\"'=HYPERLINK(\"\"https://evil.example\"\",\"\"x\"\")\""),
        "{row}"
    );
    assert!(row.ends_with(",eve@example.com,,,,"), "{row}");

    // The list's filters, and only them.
    let (st, _, csv) = get("?reference=bulk-7".into()).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(csv.lines().count(), 2, "{csv}");
    assert!(csv.lines().nth(1).unwrap().contains(",bulk-7,"), "{csv}");
    for q in ["?limit=5", "?state=nope"] {
        let (st, _, body) = get(q.into()).await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{q}: {body}");
    }
}

/// An order's detail: its items and buyer from checkout, its payments,
/// refunds (each with its kind) and every state change, oldest first; a
/// buyer sees their own order's items and refunds, not the seller's view.
async fn the_detail_shows_items_buyer_payments_refunds_and_history(env: Env) {
    let app = TestApp::start(&env, &[]).await;
    let order = session_order(&app, "D-1", "ann@example.com").await;
    let (_, cs) = book(&app, "reference=D-1").await;
    assert_eq!(ids(&cs), vec![order.clone()]);
    let session: String = sqlx::query_scalar("SELECT id FROM checkout_sessions WHERE order_id = $1")
        .bind(&order)
        .fetch_one(&app.state.pool)
        .await
        .unwrap();
    let (st, attempt) = common::pay_session(&app, &session, "sandbox").await;
    assert_eq!(st, StatusCode::CREATED, "{attempt}");
    common::pay_on_sandbox_page(&app, attempt["redirect_url"].as_str().unwrap()).await;
    common::session_state_until(&app, &session, "succeeded").await;
    let (st, refund) = app
        .seller(
            Method::POST,
            &format!("/v1/orders/{order}/refunds"),
            Some(json!({ "amount_minor": 300, "reason": "chipped" })),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{refund}");

    let (st, v) = app.seller(Method::GET, &format!("/v1/orders/{order}"), None).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["reference"], "D-1");
    assert_eq!(v["items"][0]["name"], "Mug", "{v}");
    assert_eq!(v["customer"]["email"], "ann@example.com");
    assert_eq!(v["attempts"][0]["state"], "succeeded");
    assert!(v["attempts"][0]["created_at"].is_i64());
    assert_eq!(v["refunds"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(
        (
            v["refunds"][0]["amount_minor"].as_i64(),
            v["refunds"][0]["kind"].as_str(),
            v["refunds"][0]["reason"].as_str()
        ),
        (Some(300), Some("order"), Some("chipped"))
    );
    let history: Vec<(String, String)> = v["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["subject"] == "order")
        .map(|t| {
            (
                t["from"].as_str().unwrap_or("").to_owned(),
                t["to"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(history.iter().any(|(_, to)| to == "succeeded"), "{history:?}");
    assert_eq!(
        history.last().map(|(_, to)| to.as_str()),
        Some("partially_refunded"),
        "{history:?}"
    );
    let times: Vec<i64> = v["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["at"].as_i64().unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");

    // A buyer's own stream order: items and refunds, no seller's view.
    let (_, _, oid) = app.live_offer(common::offer_body(5, 5)).await;
    let token = app.viewer_token("bo").await;
    let (_, hold) = app.reserve(&token, &oid, 1, "r1").await;
    let mine = app
        .order_for_hold(&token, &oid, hold["hold"]["id"].as_str().unwrap())
        .await;
    let (st, v) = app
        .call(
            Method::GET,
            &format!("/v1/orders/{}", common::text(&mine, "id")),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["items"].as_array().map(Vec::len), Some(1), "{v}");
    assert!(v.get("customer").is_none() && v.get("history").is_none(), "{v}");
}

/// A viewer lists their own orders (in one stream, or all), in pages;
/// never anyone else's, even another seller's viewer of the same name.
async fn a_viewer_lists_their_own_orders(env: Env) {
    let app = TestApp::start(&env, &[]).await;
    let (sid, _, oid) = app.live_offer(common::offer_body(10, 10)).await;
    let (sid2, _, oid2) = app.live_offer(common::offer_body(10, 10)).await;
    let ann = app.viewer_token("ann").await;
    let bob = app.viewer_token("bob").await;
    let mut mine = Vec::new();
    for (n, offer) in [&oid, &oid, &oid2].into_iter().enumerate() {
        let (st, hold) = app.reserve(&ann, offer, 1, &format!("a{n}")).await;
        assert_eq!(st, StatusCode::CREATED, "{hold}");
        let o = app
            .order_for_hold(&ann, offer, hold["hold"]["id"].as_str().unwrap())
            .await;
        mine.push(common::text(&o, "id"));
        app.clock.advance(10);
    }
    let (_, hold) = app.reserve(&bob, &oid, 1, "b0").await;
    app.order_for_hold(&bob, &oid, hold["hold"]["id"].as_str().unwrap())
        .await;
    // The same viewer name at another seller is another viewer.
    let other = app.other_seller_key().await;
    let (st, t) = app
        .call(
            Method::POST,
            "/v1/viewer-tokens",
            Some(&other),
            Some(json!({ "viewer_id": "ann" })),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED);
    let other_ann = common::text(&t, "token");

    let list = |token: String, q: String| {
        let app = &app;
        async move {
            app.call(Method::GET, &format!("/v1/viewer/orders?{q}"), Some(&token), None)
                .await
        }
    };
    let (st, v) = list(ann.clone(), String::new()).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let mut newest_first = mine.clone();
    newest_first.reverse();
    assert_eq!(ids(&v), newest_first);
    assert_eq!(v["data"][0]["state"], "created");
    assert_eq!(v["data"][0]["stream_id"], json!(sid2));
    let (_, v) = list(ann.clone(), format!("stream={sid}")).await;
    assert_eq!(ids(&v), vec![mine[1].clone(), mine[0].clone()]);
    let (_, page) = list(ann.clone(), "limit=2".into()).await;
    assert_eq!(page["has_more"], true);
    let (_, rest) = list(
        ann.clone(),
        format!("limit=2&after={}", page["next_cursor"].as_str().unwrap()),
    )
    .await;
    assert_eq!(ids(&rest), vec![mine[0].clone()]);
    let (_, v) = list(other_ann, String::new()).await;
    assert!(ids(&v).is_empty(), "{v}");
    let (_, v) = list(bob, String::new()).await;
    assert_eq!(ids(&v).len(), 1);
    for (q, field) in [("limit=0", "limit"), ("stream=x", "stream"), ("after=nope", "after")] {
        let (st, v) = list(ann.clone(), q.into()).await;
        assert_eq!(
            (st, v["error"]["field"].as_str()),
            (StatusCode::BAD_REQUEST, Some(field)),
            "{q}: {v}"
        );
    }
    let (st, _) = app.call(Method::GET, "/v1/viewer/orders", None, None).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
}

crate::on_both_backends!(
    a_viewer_lists_their_own_orders,
    the_detail_shows_items_buyer_payments_refunds_and_history,
    pages_are_stable_and_filters_narrow,
    the_export_streams_every_row_with_formulas_defused,
);
