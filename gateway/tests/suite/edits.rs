//! Changing a sale while it runs: stock added or taken away on a live offer
//! (never below what buyers hold and bought), its limit and end moved,
//! ended early with a word to viewers — each broadcast so every viewer
//! converges; drafts scheduled to start by themselves, in turn on one lot;
//! lots archived (kept for orders) or deleted (never offered).

use crate::common;

use common::{Env, TestApp};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use streams::clock::Clock;

async fn patch(app: &TestApp, offer: &str, body: Value) -> (StatusCode, Value) {
    app.seller(Method::PATCH, &format!("/v1/offers/{offer}"), Some(body))
        .await
}

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("")
}

fn field(v: &Value) -> &str {
    v["error"]["field"].as_str().unwrap_or("")
}

async fn a_live_offer_changes_and_every_viewer_hears(env: Env) {
    let app = TestApp::start(&env, &[]).await;
    let (sid, _, oid) = app.live_offer(common::offer_body(5, 5)).await;
    let mut events = app.events();
    let a = app.viewer_token("a").await;
    let (st, _) = app.reserve(&a, &oid, 3, "r1").await;
    assert_eq!(st, StatusCode::CREATED);

    // Never below what buyers hold.
    let (st, v) = patch(&app, &oid, json!({ "quantity": 2 })).await;
    assert_eq!((st, code(&v)), (StatusCode::CONFLICT, "quantity_below_taken"), "{v}");
    let (_, v) = app.seller(Method::GET, &format!("/v1/offers/{oid}"), None).await;
    assert_eq!(
        (v["quantity"].as_i64(), v["units_left"].as_i64()),
        (Some(5), Some(2)),
        "{v}"
    );

    // More stock: sold at once, told to everyone.
    let (st, v) = patch(&app, &oid, json!({ "quantity": 8 })).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(
        (v["quantity"].as_i64(), v["units_left"].as_i64()),
        (Some(8), Some(5)),
        "{v}"
    );
    let e = common::wait_for_event(&mut events, |e| e["type"] == "offer.updated").await;
    assert_eq!(
        (e["quantity"].as_i64(), e["units_left"].as_i64()),
        (Some(8), Some(5)),
        "{e}"
    );
    assert!(e["server_time"].is_i64(), "{e}");
    let b = app.viewer_token("b").await;
    let (st, v) = app.reserve(&b, &oid, 5, "r1").await;
    assert_eq!(st, StatusCode::CREATED, "{v}");

    // A later end, then an earlier one; the limit lowered holds for the next buy.
    let (_, before) = app.seller(Method::GET, &format!("/v1/offers/{oid}"), None).await;
    let was = before["ends_at"].as_i64().unwrap();
    let (st, v) = patch(&app, &oid, json!({ "extend_seconds": 120 })).await;
    assert_eq!(
        (st, v["ends_at"].as_i64()),
        (StatusCode::OK, Some(was + 120_000)),
        "{v}"
    );
    let e = common::wait_for_event(&mut events, |e| {
        e["type"] == "offer.updated" && e["ends_at"] != json!(was)
    })
    .await;
    assert_eq!(e["ends_at"].as_i64(), Some(was + 120_000));
    let (st, v) = patch(&app, &oid, json!({ "quantity": 10, "per_buyer_limit": 1 })).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let c = app.viewer_token("c").await;
    let (st, v) = app.reserve(&c, &oid, 2, "r1").await;
    assert_eq!((st, code(&v)), (StatusCode::CONFLICT, "over_buyer_limit"), "{v}");

    // What a live offer cannot change, and bad values.
    for (body, want) in [
        (json!({ "price_minor": 1 }), "offer_live"),
        (json!({ "hold_ttl_seconds": 60 }), "offer_live"),
        (json!({ "duration_seconds": 60 }), "offer_live"),
        (json!({ "start_at": app.clock.now_ms() + 60_000 }), "offer_live"),
    ] {
        let (st, v) = patch(&app, &oid, body.clone()).await;
        assert_eq!((st, code(&v)), (StatusCode::CONFLICT, want), "{body}: {v}");
    }
    let now = app.clock.now_ms();
    for (body, want) in [
        (json!({ "ends_at": now - 1 }), "ends_at"),
        (json!({ "extend_seconds": -100_000 }), "ends_at"),
        (json!({ "ends_at": now + 8 * 24 * 3_600_000 }), "ends_at"),
        (json!({ "ends_at": now + 60_000, "extend_seconds": 5 }), "ends_at"),
        (json!({ "quantity": 0 }), "quantity"),
        (json!({ "per_buyer_limit": 11 }), "per_buyer_limit"),
        (json!({ "extend_seconds": i64::MAX }), "extend_seconds"),
    ] {
        let (st, v) = patch(&app, &oid, body.clone()).await;
        assert_eq!((st, field(&v)), (StatusCode::BAD_REQUEST, want), "{body}: {v}");
    }
    let (st, v) = patch(&app, &oid, json!({ "colour": "red" })).await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");

    // An earlier end: the engine refuses from then on, the timer ends it.
    let (st, v) = patch(&app, &oid, json!({ "ends_at": now + 2_000 })).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    app.clock.advance(2_000);
    let d = app.viewer_token("d").await;
    let (st, v) = app.reserve(&d, &oid, 1, "r1").await;
    assert_eq!((st, code(&v)), (StatusCode::CONFLICT, "offer_ended"), "{v}");
    // (The node's own timer may have ended it first.)
    app.state.streams.end_due_offers().await.unwrap();
    let (_, v) = app.seller(Method::GET, &format!("/v1/offers/{oid}"), None).await;
    assert_eq!(
        (v["state"].as_str(), v["end_reason"].as_str()),
        (Some("ended"), Some("time")),
        "{v}"
    );
    let (st, v) = patch(&app, &oid, json!({ "quantity": 20 })).await;
    assert_eq!((st, code(&v)), (StatusCode::CONFLICT, "offer_ended"), "{v}");

    // Ended early with a word viewers see.
    let (st, lot) = app
        .seller(
            Method::POST,
            &format!("/v1/streams/{sid}/lots"),
            Some(json!({ "title": "Teapot" })),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED);
    let (_, o) = app
        .seller(
            Method::POST,
            &format!("/v1/lots/{}/offers", common::text(&lot, "id")),
            Some(common::offer_body(3, 3)),
        )
        .await;
    let second = common::text(&o, "id");
    app.seller(Method::POST, &format!("/v1/offers/{second}/start"), None)
        .await;
    for bad in [
        json!({ "note": "" }),
        json!({ "note": "x".repeat(201) }),
        json!({ "note": "a\u{0}" }),
    ] {
        let (st, v) = app
            .seller(Method::POST, &format!("/v1/offers/{second}/end"), Some(bad))
            .await;
        assert_eq!((st, field(&v)), (StatusCode::BAD_REQUEST, "note"), "{v}");
    }
    let (st, v) = app
        .seller(
            Method::POST,
            &format!("/v1/offers/{second}/end"),
            Some(json!({ "note": "The last teapots went to the shop window" })),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(
        (v["state"].as_str(), v["end_reason"].as_str()),
        (Some("ended"), Some("cancelled"))
    );
    assert_eq!(v["end_note"], "The last teapots went to the shop window");
    let e = common::wait_for_event(&mut events, |e| {
        e["type"] == "offer.ended" && e["offer_id"] == json!(second)
    })
    .await;
    assert_eq!(e["note"], "The last teapots went to the shop window");
    let (st, _) = app
        .seller(Method::POST, &format!("/v1/offers/{second}/end"), Some(json!({})))
        .await;
    assert_eq!(st, StatusCode::CONFLICT);
}

/// Stock added and taken away while hundreds of viewers buy through the
/// API: no hold beyond the quantity at any moment, and the record and the
/// engine agree at the end.
async fn changing_stock_during_a_storm_never_oversells(env: Env) {
    let app = std::sync::Arc::new(TestApp::start(&env, &[]).await);
    let (_, _, oid) = app.live_offer(common::offer_body(10, 1)).await;
    let mut tokens = Vec::new();
    for i in 0..240 {
        tokens.push(app.viewer_token(&format!("v{i}")).await);
    }
    let mut buys = Vec::new();
    for t in tokens {
        let (app, oid) = (app.clone(), oid.clone());
        buys.push(tokio::spawn(async move {
            app.reserve(&t, &oid, 1, "r").await.0 == StatusCode::CREATED
        }));
    }
    let mut accepted = Vec::new();
    for q in [25, 8, 60, 40] {
        let (st, v) = patch(&app, &oid, json!({ "quantity": q })).await;
        match st {
            StatusCode::OK => accepted.push(q),
            StatusCode::CONFLICT => assert!(["quantity_below_taken", "offer_changed"].contains(&code(&v)), "{v}"),
            other => panic!("{other}: {v}"),
        }
    }
    let mut held = 0;
    for b in buys {
        held += i64::from(b.await.unwrap());
    }
    let (_, v) = app.seller(Method::GET, &format!("/v1/offers/{oid}"), None).await;
    let quantity = v["quantity"].as_i64().unwrap();
    assert_eq!(Some(&quantity), accepted.last(), "{accepted:?} {v}");
    assert_eq!(v["held"].as_i64(), Some(held), "{v}");
    assert!(held <= quantity, "{v}");
    let levels = app
        .state
        .streams
        .inventory()
        .levels(&streams::ids::OfferId::parse(&oid).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(levels.quantity, quantity, "the engine and the record agree");
}

/// Drafts scheduled to start by themselves: each at its time on a live
/// stream, one after another on one lot; unscheduled, or refused when the
/// time is not ahead.
async fn scheduled_offers_start_by_themselves_in_turn(env: Env) {
    let app = TestApp::start(&env, &[]).await;
    let (sid, lid, first) = app.live_offer(common::offer_body(3, 3)).await;
    let now = app.clock.now_ms();
    let mut body = common::offer_body(4, 2);
    body["start_at"] = json!(now + 10_000);
    let (st, queued) = app
        .seller(Method::POST, &format!("/v1/lots/{lid}/offers"), Some(body))
        .await;
    assert_eq!(st, StatusCode::CREATED, "{queued}");
    assert_eq!(queued["start_at"].as_i64(), Some(now + 10_000));
    let queued = common::text(&queued, "id");
    let (_, other_lot) = app
        .seller(
            Method::POST,
            &format!("/v1/streams/{sid}/lots"),
            Some(json!({ "title": "Vase" })),
        )
        .await;
    let mut body = common::offer_body(2, 2);
    body["start_at"] = json!(now + 5_000);
    let (_, soon) = app
        .seller(
            Method::POST,
            &format!("/v1/lots/{}/offers", common::text(&other_lot, "id")),
            Some(body),
        )
        .await;
    let soon = common::text(&soon, "id");
    for bad in [json!(now - 1), json!(now + 8 * 24 * 3_600_000)] {
        let mut body = common::offer_body(1, 1);
        body["start_at"] = bad;
        let (st, v) = app
            .seller(Method::POST, &format!("/v1/lots/{lid}/offers"), Some(body))
            .await;
        assert_eq!((st, field(&v)), (StatusCode::BAD_REQUEST, "start_at"), "{v}");
    }
    let state = |id: String| {
        let app = &app;
        async move {
            let (_, v) = app.seller(Method::GET, &format!("/v1/offers/{id}"), None).await;
            v["state"].as_str().unwrap().to_owned()
        }
    };
    // The node's own timer starts them too: a round here makes sure one
    // ran after each move of the clock.
    let streams = &app.state.streams;
    streams.start_due_offers().await.unwrap();
    assert_eq!(state(soon.clone()).await, "draft", "nothing due yet");
    app.clock.advance(5_000);
    streams.start_due_offers().await.unwrap();
    assert_eq!(state(soon.clone()).await, "live");
    app.clock.advance(5_000);
    // Due, but its lot's offer is still live: it waits its turn.
    assert_eq!(streams.start_due_offers().await.unwrap(), 0);
    assert_eq!(state(queued.clone()).await, "draft");
    app.seller(Method::POST, &format!("/v1/offers/{first}/end"), Some(json!({})))
        .await;
    streams.start_due_offers().await.unwrap();
    assert_eq!(state(queued.clone()).await, "live");
    let (_, v) = app.seller(Method::GET, &format!("/v1/offers/{queued}"), None).await;
    assert_eq!(
        v["ends_at"].as_i64(),
        Some(app.clock.now_ms() + 60_000),
        "it runs its whole duration"
    );
    // A draft's terms change freely; unscheduled, it waits for a tap.
    let (_, d) = app
        .seller(
            Method::POST,
            &format!("/v1/lots/{lid}/offers"),
            Some(common::offer_body(1, 1)),
        )
        .await;
    let draft = common::text(&d, "id");
    let (st, v) = patch(
        &app,
        &draft,
        json!({ "price_minor": 99_000, "quantity": 6, "per_buyer_limit": 2, "hold_ttl_seconds": 60,
                "start_at": app.clock.now_ms() + 1_000 }),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(
        (
            v["price_minor"].as_i64(),
            v["quantity"].as_i64(),
            v["per_buyer_limit"].as_i64(),
            v["hold_ttl_ms"].as_i64()
        ),
        (Some(99_000), Some(6), Some(2), Some(60_000))
    );
    let (st, v) = patch(&app, &draft, json!({ "start_at": null })).await;
    assert_eq!((st, v["start_at"].clone()), (StatusCode::OK, Value::Null), "{v}");
    let (st, v) = patch(&app, &draft, json!({ "extend_seconds": 5 })).await;
    assert_eq!((st, field(&v)), (StatusCode::BAD_REQUEST, "extend_seconds"), "{v}");
    app.clock.advance(2_000);
    app.seller(Method::POST, &format!("/v1/offers/{queued}/end"), Some(json!({})))
        .await;
    assert_eq!(streams.start_due_offers().await.unwrap(), 0);
    assert_eq!(state(draft).await, "draft");
}

/// A lot never offered is deleted; one that was is archived: kept for its
/// orders, out of the listing, never pinned or offered again.
async fn lots_are_archived_or_deleted(env: Env) {
    let app = TestApp::start(&env, &[]).await;
    let (sid, lid, oid) = app.live_offer(common::offer_body(3, 3)).await;
    let mut events = app.events();
    let (_, spare) = app
        .seller(
            Method::POST,
            &format!("/v1/streams/{sid}/lots"),
            Some(json!({ "title": "Spare" })),
        )
        .await;
    let spare = common::text(&spare, "id");
    let (st, v) = app.seller(Method::DELETE, &format!("/v1/lots/{spare}"), None).await;
    assert_eq!((st, v["deleted"].as_bool()), (StatusCode::OK, Some(true)), "{v}");
    let (st, _) = app.seller(Method::GET, &format!("/v1/lots/{spare}"), None).await;
    assert_eq!(st, StatusCode::NOT_FOUND);

    app.seller(Method::POST, &format!("/v1/lots/{lid}/pin"), None).await;
    let (st, v) = app.seller(Method::POST, &format!("/v1/lots/{lid}/archive"), None).await;
    assert_eq!((st, code(&v)), (StatusCode::CONFLICT, "lot_has_live_offer"), "{v}");
    let (st, v) = app.seller(Method::DELETE, &format!("/v1/lots/{lid}"), None).await;
    assert_eq!((st, code(&v)), (StatusCode::CONFLICT, "lot_has_offers"), "{v}");
    app.seller(Method::POST, &format!("/v1/offers/{oid}/end"), Some(json!({})))
        .await;
    let (_, d) = app
        .seller(
            Method::POST,
            &format!("/v1/lots/{lid}/offers"),
            Some(common::offer_body(1, 1)),
        )
        .await;
    let draft = common::text(&d, "id");
    let (st, v) = app.seller(Method::POST, &format!("/v1/lots/{lid}/archive"), None).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert!(v["archived_at"].is_i64(), "{v}");
    let e = common::wait_for_event(&mut events, |e| e["type"] == "lot.unpinned").await;
    assert_eq!(e["lot_id"], json!(lid));
    // Again: the same.
    let (st, again) = app.seller(Method::POST, &format!("/v1/lots/{lid}/archive"), None).await;
    assert_eq!((st, &again["archived_at"]), (StatusCode::OK, &v["archived_at"]));
    let (_, d) = app.seller(Method::GET, &format!("/v1/offers/{draft}"), None).await;
    assert_eq!(d["state"], "ended", "its drafts can never run: {d}");
    let (_, listed) = app.seller(Method::GET, &format!("/v1/streams/{sid}/lots"), None).await;
    assert!(listed["data"].as_array().unwrap().is_empty(), "{listed}");
    let (_, all) = app
        .seller(Method::GET, &format!("/v1/streams/{sid}/lots?archived=true"), None)
        .await;
    assert_eq!(all["data"].as_array().unwrap().len(), 1, "{all}");
    let (st, _) = app
        .seller(Method::GET, &format!("/v1/streams/{sid}/lots?archived=maybe"), None)
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    for (method, path, body) in [
        (Method::POST, format!("/v1/lots/{lid}/pin"), None),
        (
            Method::POST,
            format!("/v1/lots/{lid}/offers"),
            Some(common::offer_body(1, 1)),
        ),
        (
            Method::PATCH,
            format!("/v1/lots/{lid}"),
            Some(json!({ "title": "New" })),
        ),
    ] {
        let (st, v) = app.seller(method, &path, body).await;
        assert_eq!((st, code(&v)), (StatusCode::CONFLICT, "lot_archived"), "{path}: {v}");
    }
    // Kept for the record: still readable.
    let (st, v) = app.seller(Method::GET, &format!("/v1/lots/{lid}"), None).await;
    assert_eq!((st, v["title"].as_str()), (StatusCode::OK, Some("Mug")));
}

crate::on_both_backends!(
    a_live_offer_changes_and_every_viewer_hears,
    changing_stock_during_a_storm_never_oversells,
    scheduled_offers_start_by_themselves_in_turn,
    lots_are_archived_or_deleted,
);
