//! Buyers over HTTP: holds, sales, offer timing, expiry, tokens and rate
//! limits on both backends; several nodes and a Redis loss on the shared one.

use crate::common;

use std::collections::HashSet;

use base64::Engine;
use common::{offer_body, wait_for_event, Env, TestApp};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("<no code>")
}

async fn mint(app: &TestApp, viewer: &str) -> String {
    let (st, v) = app
        .seller(Method::POST, "/v1/viewer-tokens", Some(json!({ "viewer_id": viewer })))
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    assert!(v["viewer_id"].as_str().unwrap().ends_with(&format!(".{viewer}")));
    common::text(&v, "token")
}

async fn hold_release_and_commit_over_http(env: Env) {
    let app = TestApp::start(&env, &[]).await;
    let (sid, _, oid) = app.live_offer(offer_body(5, 3)).await;
    let alice = mint(&app, "alice").await;
    let (st, v) = app.reserve(&alice, &oid, 2, "tap-1").await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    assert_eq!(
        (v["units_left"].as_i64(), v["replayed"].as_bool()),
        (Some(3), Some(false))
    );
    let hold = common::text(&v["hold"], "id");
    // A retried tap gets the same hold and takes nothing more.
    let (st, v) = app.reserve(&alice, &oid, 2, "tap-1").await;
    assert_eq!(
        (st, v["hold"]["id"].as_str(), v["replayed"].as_bool()),
        (StatusCode::OK, Some(hold.as_str()), Some(true))
    );
    let (st, v) = app.reserve(&alice, &oid, 2, "tap-2").await;
    assert_eq!(
        (st, code(&v), v["error"]["remaining"].as_i64()),
        (StatusCode::CONFLICT, "over_buyer_limit", Some(1))
    );
    let (_, v) = app
        .call(Method::GET, &format!("/v1/public/offers/{oid}"), None, None)
        .await;
    assert_eq!(v["units_left"].as_i64(), Some(3));
    // The public stream snapshot shows the live offer with the same count.
    let (st, v) = app
        .call(Method::GET, &format!("/v1/public/streams/{sid}"), None, None)
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["state"], "live");
    assert_eq!(v["offers"][0]["id"].as_str(), Some(oid.as_str()));
    assert_eq!(v["offers"][0]["units_left"].as_i64(), Some(3));
    assert!(v["server_time"].as_i64().unwrap() > 0);
    let (st, v) = app
        .call(Method::GET, "/v1/public/streams/str_0000000000000000000000", None, None)
        .await;
    assert_eq!((st, code(&v)), (StatusCode::NOT_FOUND, "not_found"), "{v}");
    // Another viewer cannot see or release Alice's hold.
    let bob = mint(&app, "bob").await;
    let (st, _) = app
        .call(Method::GET, &format!("/v1/offers/{oid}/holds/{hold}"), Some(&bob), None)
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, _) = app
        .call(
            Method::POST,
            &format!("/v1/offers/{oid}/holds/{hold}/release"),
            Some(&bob),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, v) = app.reserve(&bob, &oid, 4, "b1").await;
    assert_eq!((st, code(&v)), (StatusCode::CONFLICT, "over_buyer_limit"));
    let (st, v) = app.reserve(&bob, &oid, 3, "b1").await;
    assert_eq!((st, v["units_left"].as_i64()), (StatusCode::CREATED, Some(0)));
    let bob_hold = common::text(&v["hold"], "id");
    let carol = mint(&app, "carol").await;
    let (st, v) = app.reserve(&carol, &oid, 1, "c1").await;
    assert_eq!((st, code(&v)), (StatusCode::CONFLICT, "sold_out"));
    // Bob gives his back; the seller commits Alice's.
    let (st, v) = app
        .call(
            Method::POST,
            &format!("/v1/offers/{oid}/holds/{bob_hold}/release"),
            Some(&bob),
            None,
        )
        .await;
    assert_eq!((st, v["hold"]["status"].as_str()), (StatusCode::OK, Some("released")));
    let mut events = app.events();
    let (st, v) = app
        .seller(Method::POST, &format!("/v1/offers/{oid}/holds/{hold}/commit"), None)
        .await;
    assert_eq!(
        (st, v["sold"].as_i64(), v["offer_sold_out"].as_bool()),
        (StatusCode::OK, Some(2), Some(false)),
        "{v}"
    );
    wait_for_event(&mut events, |e| {
        e["type"] == "purchase" && e["quantity"] == 2 && e.get("buyer_id").is_none()
    })
    .await;
    let (st, v) = app
        .seller(Method::POST, &format!("/v1/offers/{oid}/holds/{hold}/commit"), None)
        .await;
    assert_eq!(
        (st, v["sold"].as_i64()),
        (StatusCode::OK, Some(2)),
        "commit is idempotent"
    );
    let (_, v) = app.seller(Method::GET, &format!("/v1/offers/{oid}"), None).await;
    assert_eq!(
        (v["held"].as_i64(), v["sold"].as_i64(), v["units_left"].as_i64()),
        (Some(0), Some(2), Some(3))
    );
    let (st, v) = app
        .call(
            Method::GET,
            &format!("/v1/offers/{oid}/holds/{hold}"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!((st, v["hold"]["status"].as_str()), (StatusCode::OK, Some("committed")));
}

async fn concurrent_http_reserves_never_oversell(env: Env) {
    let app = TestApp::start(&env, &[]).await;
    let (_, _, oid) = app.live_offer(offer_body(10, 1)).await;
    let mut tokens = Vec::new();
    for i in 0..60 {
        tokens.push(mint(&app, &format!("v{i}")).await);
    }
    let app = std::sync::Arc::new(app);
    let mut tasks = Vec::new();
    for i in 0..300 {
        let (app, token, oid) = (app.clone(), tokens[i % tokens.len()].clone(), oid.clone());
        tasks.push(tokio::spawn(async move {
            app.reserve(&token, &oid, 1, &format!("r{i}")).await
        }));
    }
    let mut buyers = HashSet::new();
    for t in tasks {
        let (st, v) = t.await.unwrap();
        match st {
            StatusCode::CREATED => assert!(
                buyers.insert(common::text(&v["hold"], "buyer_id")),
                "a buyer got two units"
            ),
            StatusCode::CONFLICT => assert!(["sold_out", "over_buyer_limit"].contains(&code(&v)), "{v}"),
            other => panic!("unexpected {other}: {v}"),
        }
    }
    assert_eq!(buyers.len(), 10, "exactly the quantity is held");
    let (_, v) = app.seller(Method::GET, &format!("/v1/offers/{oid}"), None).await;
    assert_eq!((v["held"].as_i64(), v["units_left"].as_i64()), (Some(10), Some(0)));
}

async fn an_offer_ends_by_itself_at_its_end_time(env: Env) {
    let app = TestApp::start(&env, &[]).await;
    let (_, _, oid) = app.live_offer(offer_body(5, 1)).await;
    let viewer = app.anonymous_viewer().await;
    let mut events = app.events();
    app.clock.advance(59_999);
    assert_eq!(app.reserve(&viewer, &oid, 1, "before").await.0, StatusCode::CREATED);
    app.clock.advance(1);
    // The engine refuses at the end time itself, before the timer has run.
    let (st, v) = app.reserve(&viewer, &oid, 1, "after").await;
    assert_eq!((st, code(&v)), (StatusCode::CONFLICT, "offer_ended"));
    let e = wait_for_event(&mut events, |e| e["type"] == "offer.ended").await;
    assert_eq!(
        (e["offer_id"].as_str(), e["reason"].as_str()),
        (Some(oid.as_str()), Some("time"))
    );
    assert!(e["server_time"].as_i64().is_some());
    let (_, v) = app.seller(Method::GET, &format!("/v1/offers/{oid}"), None).await;
    assert_eq!(
        (v["state"].as_str(), v["end_reason"].as_str()),
        (Some("ended"), Some("time"))
    );
    // Ending again finds nothing to do: it fired once.
    assert_eq!(app.state.streams.end_due_offers().await.unwrap(), 0);
    assert_eq!(app.state.hub.offers_ended()[0], ("time", 1));
}

async fn an_offer_ends_early_when_sold_out(env: Env) {
    let app = TestApp::start(&env, &[]).await;
    let (_, _, oid) = app.live_offer(offer_body(2, 1)).await;
    let mut holds = Vec::new();
    for v in ["a", "b"] {
        let t = mint(&app, v).await;
        let (st, r) = app.reserve(&t, &oid, 1, "x").await;
        assert_eq!(st, StatusCode::CREATED);
        holds.push(common::text(&r["hold"], "id"));
    }
    let (_, v) = app
        .seller(
            Method::POST,
            &format!("/v1/offers/{oid}/holds/{}/commit", holds[0]),
            None,
        )
        .await;
    assert_eq!(v["offer_sold_out"].as_bool(), Some(false));
    let (_, v) = app
        .seller(
            Method::POST,
            &format!("/v1/offers/{oid}/holds/{}/commit", holds[1]),
            None,
        )
        .await;
    assert_eq!(v["offer_sold_out"].as_bool(), Some(true));
    let (_, v) = app.seller(Method::GET, &format!("/v1/offers/{oid}"), None).await;
    assert_eq!(
        (v["state"].as_str(), v["end_reason"].as_str(), v["sold"].as_i64()),
        (Some("ended"), Some("sold_out"), Some(2))
    );
    let t = mint(&app, "c").await;
    let (st, v) = app.reserve(&t, &oid, 1, "x").await;
    assert_eq!((st, code(&v)), (StatusCode::CONFLICT, "offer_ended"));
}

async fn unpaid_holds_come_back_when_they_expire(env: Env) {
    let app = TestApp::start(&env, &[]).await;
    let (_, _, oid) = app.live_offer(offer_body(5, 5)).await;
    let viewer = app.anonymous_viewer().await;
    let (_, v) = app.reserve(&viewer, &oid, 3, "x").await;
    let hold = common::text(&v["hold"], "id");
    let mut events = app.events();
    app.clock.advance(30_000);
    let e = wait_for_event(&mut events, |e| e["type"] == "offer.stock" && e["units_left"] == 5).await;
    assert_eq!(e["offer_id"].as_str(), Some(oid.as_str()));
    let (_, v) = app
        .call(
            Method::GET,
            &format!("/v1/offers/{oid}/holds/{hold}"),
            Some(&viewer),
            None,
        )
        .await;
    assert_eq!(v["hold"]["status"].as_str(), Some("expired"));
    let (st, v) = app
        .seller(Method::POST, &format!("/v1/offers/{oid}/holds/{hold}/commit"), None)
        .await;
    assert_eq!((st, code(&v)), (StatusCode::CONFLICT, "hold_not_active"));
    let (_, v) = app.seller(Method::GET, &format!("/v1/offers/{oid}"), None).await;
    assert_eq!(
        (v["held"].as_i64(), v["sold"].as_i64(), v["units_left"].as_i64()),
        (Some(0), Some(0), Some(5))
    );
}

async fn viewer_tokens_are_verified(env: Env) {
    let app = TestApp::start(&env, &[]).await;
    let (_, _, oid) = app.live_offer(offer_body(5, 5)).await;
    let path = format!("/v1/offers/{oid}/reserve");
    let body = json!({ "quantity": 1, "request_id": "r" });
    let (st, v) = app.call(Method::POST, &path, None, Some(body.clone())).await;
    assert_eq!((st, code(&v)), (StatusCode::UNAUTHORIZED, "missing_token"));
    let (st, v) = app.call(Method::POST, &path, Some("garbage"), Some(body.clone())).await;
    assert_eq!((st, code(&v)), (StatusCode::UNAUTHORIZED, "token_malformed"));
    let forged = gateway::jwt::encode(
        &gateway::jwt::Claims {
            sub: "alice".into(),
            exp: i64::MAX / 2,
            iat: None,
            nbf: None,
            sel: None,
        },
        b"some-other-secret-some-other-secret",
    );
    let (st, v) = app.call(Method::POST, &path, Some(&forged), Some(body.clone())).await;
    assert_eq!((st, code(&v)), (StatusCode::UNAUTHORIZED, "token_bad_signature"));
    let bad_sub = gateway::jwt::encode(
        &gateway::jwt::Claims {
            sub: "a|b".into(),
            exp: i64::MAX / 2,
            iat: None,
            nbf: None,
            sel: None,
        },
        common::TOKEN_SECRET.as_bytes(),
    );
    let (st, v) = app.call(Method::POST, &path, Some(&bad_sub), Some(body.clone())).await;
    assert_eq!((st, code(&v)), (StatusCode::UNAUTHORIZED, "token_bad_claims"));
    let token = app.anonymous_viewer().await;
    let claims = token.split('.').nth(1).unwrap();
    let claims: Value =
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(claims).unwrap()).unwrap();
    assert!(claims["sub"].as_str().unwrap().starts_with("anon."));
    app.clock.advance(25 * 3600 * 1000);
    let (st, v) = app.call(Method::POST, &path, Some(&token), Some(body)).await;
    assert_eq!((st, code(&v)), (StatusCode::UNAUTHORIZED, "token_expired"));
    let (st, v) = app
        .seller(
            Method::POST,
            "/v1/viewer-tokens",
            Some(json!({ "viewer_id": "bad|id" })),
        )
        .await;
    assert_eq!(
        (st, v["error"]["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("viewer_id"))
    );
}

async fn bad_reserve_requests_are_refused_and_take_nothing(env: Env) {
    let app = TestApp::start(&env, &[]).await;
    let (_, lid, oid) = app.live_offer(offer_body(5, 5)).await;
    let t = app.anonymous_viewer().await;
    for (q, rid, want) in [
        (0, "a", "invalid_field"),
        (1001, "a", "invalid_field"),
        (1, "", "invalid_field"),
        (1, "a b", "invalid_field"),
        (6, "a", "over_buyer_limit"),
    ] {
        let (st, v) = app.reserve(&t, &oid, q, rid).await;
        assert_eq!(code(&v), want, "{q} {rid:?}: {st} {v}");
    }
    let (st, v) = app
        .call(
            Method::POST,
            &format!("/v1/offers/{oid}/reserve"),
            Some(&t),
            Some(json!({ "quantity": "1", "request_id": "x" })),
        )
        .await;
    assert_eq!((st, code(&v)), (StatusCode::BAD_REQUEST, "invalid_body"));
    let (st, v) = app
        .call(
            Method::POST,
            &format!("/v1/offers/{oid}/reserve"),
            Some(&t),
            Some(json!({ "quantity": 1.5, "request_id": "x" })),
        )
        .await;
    assert_eq!((st, code(&v)), (StatusCode::BAD_REQUEST, "invalid_body"));
    let (st, v) = app.reserve(&t, "off_doesnotexist", 1, "a").await;
    assert_eq!((st, code(&v)), (StatusCode::NOT_FOUND, "not_found"));
    let (st, v) = app.reserve(&t, "lot_wrongkind", 1, "a").await;
    assert_eq!((st, code(&v)), (StatusCode::BAD_REQUEST, "invalid_id"));
    let (_, draft) = app
        .seller(Method::POST, &format!("/v1/lots/{lid}/offers"), Some(offer_body(5, 5)))
        .await;
    let (st, v) = app.reserve(&t, draft["id"].as_str().unwrap(), 1, "a").await;
    assert_eq!((st, code(&v)), (StatusCode::CONFLICT, "offer_not_started"));
    let (_, v) = app
        .call(Method::GET, &format!("/v1/public/offers/{oid}"), None, None)
        .await;
    assert_eq!(v["units_left"].as_i64(), Some(5), "nothing was taken");
}

async fn rate_limits_answer_429_with_retry_after(env: Env) {
    let app = TestApp::start(&env, &[("HAUL_RATE_BUYER", "2/m"), ("HAUL_RATE_ADDR", "6/m")]).await;
    let (_, _, oid) = app.live_offer(offer_body(50, 50)).await;
    let t = app.anonymous_viewer().await;
    assert_eq!(app.reserve(&t, &oid, 1, "a").await.0, StatusCode::CREATED);
    assert_eq!(app.reserve(&t, &oid, 1, "b").await.0, StatusCode::CREATED);
    let resp = app
        .http
        .post(format!("{}/v1/offers/{oid}/reserve", app.base))
        .bearer_auth(&t)
        .json(&json!({ "quantity": 1, "request_id": "c" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = resp.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    let v: Value = resp.json().await.unwrap();
    assert_eq!(code(&v), "rate_limited");
    // Other buyers from the same address still get through, until the address limit.
    let mut statuses = Vec::new();
    for i in 0..4 {
        let (st, _) = app.call(Method::POST, "/v1/viewers/anonymous", None, None).await;
        statuses.push((i, st));
    }
    assert!(
        statuses.iter().any(|(_, s)| *s == StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
    let (_, metrics) = app.call(Method::GET, "/metrics", None, None).await;
    let metrics = metrics.as_str().unwrap().to_owned();
    assert!(metrics.contains("haul_reserves_total{outcome=\"held\"} 2"), "{metrics}");
    assert!(
        metrics.contains("haul_reserves_total{outcome=\"rate_limited\"} 1"),
        "{metrics}"
    );
}

on_both_backends!(
    hold_release_and_commit_over_http,
    concurrent_http_reserves_never_oversell,
    an_offer_ends_by_itself_at_its_end_time,
    an_offer_ends_early_when_sold_out,
    unpaid_holds_come_back_when_they_expire,
    viewer_tokens_are_verified,
    bad_reserve_requests_are_refused_and_take_nothing,
    rate_limits_answer_429_with_retry_after,
    one_address_with_many_anonymous_ids_holds_no_more_than_its_cap,
    a_seller_may_sell_to_its_own_signed_viewers_only,
);

/// With `signed_viewers_only`, anonymous viewers (and another seller's) may
/// watch but not hold; the seller's own signed viewers buy as before.
async fn a_seller_may_sell_to_its_own_signed_viewers_only(env: Env) {
    let app = TestApp::start(&env, &[]).await;
    let (_, _, oid) = app.live_offer(offer_body(10, 1)).await;
    let (st, v) = app.seller(Method::GET, "/v1/settings", None).await;
    assert_eq!(
        (st, v["signed_viewers_only"].clone()),
        (StatusCode::OK, json!(false)),
        "{v}"
    );
    let (st, v) = app
        .seller(
            Method::PATCH,
            "/v1/settings",
            Some(json!({ "signed_viewers_only": true })),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["signed_viewers_only"], json!(true));
    assert_eq!(v["livemode"], json!(false));
    for bad in [json!({ "signed": true }), json!({ "signed_viewers_only": "yes" })] {
        let (st, v) = app.seller(Method::PATCH, "/v1/settings", Some(bad.clone())).await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{bad}: {v}");
    }

    let anonymous = app.anonymous_viewer().await;
    let (st, v) = app.reserve(&anonymous, &oid, 1, "a").await;
    assert_eq!((st, code(&v)), (StatusCode::FORBIDDEN, "signed_viewer_required"), "{v}");
    // Another seller's viewer is not this seller's.
    let other = app.other_seller_key().await;
    let (st, minted) = app
        .call(
            Method::POST,
            "/v1/viewer-tokens",
            Some(&other),
            Some(json!({ "viewer_id": "ann" })),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{minted}");
    let (st, v) = app.reserve(&common::text(&minted, "token"), &oid, 1, "a").await;
    assert_eq!((st, code(&v)), (StatusCode::FORBIDDEN, "signed_viewer_required"), "{v}");
    let own = app.viewer_token("ann").await;
    let (st, v) = app.reserve(&own, &oid, 1, "a").await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    assert_eq!(v["units_left"], json!(9), "the refused took nothing");

    // Turned off, anonymous viewers buy again.
    let (st, _) = app
        .seller(
            Method::PATCH,
            "/v1/settings",
            Some(json!({ "signed_viewers_only": false })),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    let (st, v) = app.reserve(&anonymous, &oid, 1, "b").await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
}

/// A greedy client making a fresh anonymous viewer for every
/// tap of a one-per-buyer offer holds no more than the per-address cap
/// (the socket's reserve RPC goes through the same call); another address
/// still buys, and a released hold frees its slot.
async fn one_address_with_many_anonymous_ids_holds_no_more_than_its_cap(env: Env) {
    let app = TestApp::start(
        &env,
        &[("HAUL_HOLDS_PER_ADDR", "3"), ("HAUL_TRUST_FORWARDED_FOR", "true")],
    )
    .await;
    let (_, _, oid) = app.live_offer(offer_body(20, 1)).await;
    let reserve_from = async |addr: &str| {
        let token = app.anonymous_viewer().await;
        let resp = app
            .http
            .post(format!("{}/v1/offers/{oid}/reserve", app.base))
            .bearer_auth(&token)
            .header("x-forwarded-for", addr)
            .json(&json!({ "quantity": 1, "request_id": "tap" }))
            .send()
            .await
            .unwrap();
        let status = resp.status();
        (status, resp.json::<Value>().await.unwrap(), token)
    };
    let mut held = Vec::new();
    let mut refused = 0;
    for _ in 0..20 {
        let (st, v, token) = reserve_from("203.0.113.7").await;
        match st {
            StatusCode::CREATED => held.push((token, v["hold"]["id"].as_str().unwrap().to_owned())),
            StatusCode::CONFLICT => {
                assert_eq!(code(&v), "over_address_limit", "{v}");
                assert_eq!(v["error"]["remaining"], json!(0), "{v}");
                refused += 1;
            }
            other => panic!("{other}: {v}"),
        }
    }
    assert_eq!((held.len(), refused), (3, 17));
    // The same network over IPv6 is one group per /64.
    let (st, _, _) = reserve_from("2001:db8:7:7::1").await;
    assert_eq!(st, StatusCode::CREATED);
    let (st, v, _) = reserve_from("2001:db8:7:7:ffff::2").await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let (st, v, _) = reserve_from("2001:db8:7:7:abcd::3").await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let (st, v, _) = reserve_from("2001:db8:7:7:abcd::4").await;
    assert_eq!((st, code(&v)), (StatusCode::CONFLICT, "over_address_limit"), "{v}");
    // Another address buys; the offer still has its stock.
    let (st, v, _) = reserve_from("198.51.100.1").await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    assert_eq!(v["units_left"], json!(13), "{v}");
    // A released hold gives the address its slot back.
    let (token, hold) = &held[0];
    let (st, v) = app
        .call(
            Method::POST,
            &format!("/v1/offers/{oid}/holds/{hold}/release"),
            Some(token),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let (st, v, _) = reserve_from("203.0.113.7").await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
}

/// Two nodes on one PostgreSQL + Redis: an offer's end fires exactly once,
/// however often both nodes' timers try.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_end_an_offer_exactly_once() {
    let env = Env::shared().await;
    let a = TestApp::start(&env, &[]).await;
    let b = TestApp::start_with_clock(&env, &[], a.clock.clone()).await;
    let (_, _, oid) = a.live_offer(offer_body(5, 1)).await;
    a.clock.advance(60_000);
    // Race explicit ends on both nodes against both nodes' running timers.
    let (sa, sb) = (&a.state.streams, &b.state.streams);
    let _ = tokio::join!(
        sa.end_due_offers(),
        sb.end_due_offers(),
        sa.end_due_offers(),
        sb.end_due_offers()
    );
    let (_, v) = a.seller(Method::GET, &format!("/v1/offers/{oid}"), None).await;
    assert_eq!(v["state"], "ended");
    let ended = a.state.hub.offers_ended()[0].1 + b.state.hub.offers_ended()[0].1;
    assert_eq!(ended, 1, "ended exactly once across both nodes, whoever did it");
}

/// A buy storm split across two nodes never oversells.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_buy_storm_across_two_nodes_never_oversells() {
    let env = Env::shared().await;
    let a = std::sync::Arc::new(TestApp::start(&env, &[]).await);
    let b = std::sync::Arc::new(TestApp::start_with_clock(&env, &[], a.clock.clone()).await);
    let (_, _, oid) = a.live_offer(offer_body(20, 2)).await;
    let mut tasks = Vec::new();
    for i in 0..200 {
        let node = if i % 2 == 0 { a.clone() } else { b.clone() };
        let token = mint(&a, &format!("v{}", i % 50)).await;
        let oid = oid.clone();
        tasks.push(tokio::spawn(async move {
            node.reserve(&token, &oid, 1, &format!("r{i}")).await
        }));
    }
    let mut held = 0;
    for t in tasks {
        let (st, v) = t.await.unwrap();
        match st {
            StatusCode::CREATED => held += 1,
            StatusCode::CONFLICT => assert!(["sold_out", "over_buyer_limit"].contains(&code(&v)), "{v}"),
            other => panic!("unexpected {other}: {v}"),
        }
    }
    assert_eq!(held, 20);
    // Node B sees the same stock as node A (the seller's key works on any node).
    let (_, v) = b
        .call(Method::GET, &format!("/v1/offers/{oid}"), Some(&a.key), None)
        .await;
    assert_eq!((v["held"].as_i64(), v["units_left"].as_i64()), (Some(20), Some(0)));
}

/// Redis loses everything (a restart without persistence): the next reserve
/// rebuilds the offer from the database, and nothing sold is sold again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stock_is_rebuilt_from_the_database_after_redis_loses_it() {
    let env = Env::shared().await;
    let app = TestApp::start(&env, &[]).await;
    let (_, _, oid) = app.live_offer(offer_body(5, 2)).await;
    let alice = mint(&app, "alice").await;
    let (_, v) = app.reserve(&alice, &oid, 2, "a").await;
    let hold = common::text(&v["hold"], "id");
    app.seller(Method::POST, &format!("/v1/offers/{oid}/holds/{hold}/commit"), None)
        .await;

    let (url, prefix) = env.redis.clone().unwrap();
    let mut conn = redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}:*"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(!keys.is_empty());
    let _: () = redis::cmd("DEL").arg(&keys).query_async(&mut conn).await.unwrap();

    let (st, v) = app.reserve(&alice, &oid, 1, "b").await;
    assert_eq!(
        (st, code(&v)),
        (StatusCode::CONFLICT, "over_buyer_limit"),
        "Alice's bought units still count"
    );
    let bob = mint(&app, "bob").await;
    let (st, v) = app.reserve(&bob, &oid, 2, "b").await;
    assert_eq!((st, v["units_left"].as_i64()), (StatusCode::CREATED, Some(1)));
    let (_, v) = app.seller(Method::GET, &format!("/v1/offers/{oid}"), None).await;
    assert_eq!(
        (v["sold"].as_i64(), v["held"].as_i64(), v["units_left"].as_i64()),
        (Some(2), Some(2), Some(1))
    );
}
