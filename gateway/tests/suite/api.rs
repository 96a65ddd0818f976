//! The seller API over HTTP: authentication, lifecycles, validation and the
//! error format, on both backends.

use crate::common;

use common::{offer_body, Env, TestApp};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("<no code>")
}

async fn seller_api_refuses_missing_and_wrong_keys(env: Env) {
    let app = TestApp::start(&env, &[]).await;
    let (st, v) = app.call(Method::GET, "/v1/streams", None, None).await;
    assert_eq!((st, code(&v)), (StatusCode::UNAUTHORIZED, "missing_api_key"));
    for bad in ["nonsense", "hk_000000000000000000000000000000", "hk_short"] {
        let (st, v) = app.call(Method::GET, "/v1/streams", Some(bad), None).await;
        assert_eq!((st, code(&v)), (StatusCode::UNAUTHORIZED, "invalid_api_key"), "{bad}");
    }
    let (st, _) = app.seller(Method::GET, "/v1/streams", None).await;
    assert_eq!(st, StatusCode::OK);
}

async fn stream_lifecycle_only_moves_forward(env: Env) {
    let app = TestApp::start(&env, &[]).await;
    let (st, s) = app
        .seller(Method::POST, "/v1/streams", Some(json!({ "title": "  Friday sale  " })))
        .await;
    assert_eq!(st, StatusCode::CREATED);
    assert_eq!(
        (s["state"].as_str(), s["title"].as_str()),
        (Some("scheduled"), Some("Friday sale"))
    );
    let id = s["id"].as_str().unwrap();
    let (st, v) = app.seller(Method::POST, &format!("/v1/streams/{id}/live"), None).await;
    assert_eq!((st, v["state"].as_str()), (StatusCode::OK, Some("live")));
    let (st, v) = app.seller(Method::POST, &format!("/v1/streams/{id}/live"), None).await;
    assert_eq!((st, code(&v)), (StatusCode::CONFLICT, "stream_already_live"));
    let (st, v) = app.seller(Method::POST, &format!("/v1/streams/{id}/end"), None).await;
    assert_eq!((st, v["state"].as_str()), (StatusCode::OK, Some("ended")));
    let (st, v) = app.seller(Method::POST, &format!("/v1/streams/{id}/end"), None).await;
    assert_eq!((st, code(&v)), (StatusCode::CONFLICT, "stream_ended"));
    let (st, v) = app
        .seller(
            Method::POST,
            &format!("/v1/streams/{id}/lots"),
            Some(json!({ "title": "Late" })),
        )
        .await;
    assert_eq!((st, code(&v)), (StatusCode::CONFLICT, "stream_ended"));
    let (st, v) = app.seller(Method::GET, "/v1/streams?limit=1", None).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v["data"].as_array().unwrap().len(), 1);
}

async fn lots_are_added_updated_and_pinned_one_at_a_time(env: Env) {
    let app = TestApp::start(&env, &[]).await;
    let (_, s) = app
        .seller(Method::POST, "/v1/streams", Some(json!({ "title": "S" })))
        .await;
    let sid = s["id"].as_str().unwrap();
    let mut lots = Vec::new();
    for t in ["Mug", "Scarf"] {
        let (st, l) = app
            .seller(
                Method::POST,
                &format!("/v1/streams/{sid}/lots"),
                Some(json!({ "title": t, "description": "d" })),
            )
            .await;
        assert_eq!(st, StatusCode::CREATED, "{l}");
        lots.push(common::text(&l, "id"));
    }
    let mut events = app.events();
    let (st, v) = app
        .seller(Method::POST, &format!("/v1/lots/{}/pin", lots[0]), None)
        .await;
    assert_eq!(
        (st, v["pinned_lot_id"].as_str()),
        (StatusCode::OK, Some(lots[0].as_str()))
    );
    common::wait_for_event(&mut events, |e| {
        e["type"] == "lot.pinned" && e["lot"]["id"] == lots[0].as_str()
    })
    .await;
    let (_, v) = app
        .seller(Method::POST, &format!("/v1/lots/{}/pin", lots[1]), None)
        .await;
    assert_eq!(v["pinned_lot_id"].as_str(), Some(lots[1].as_str()));
    let (st, v) = app
        .seller(
            Method::PATCH,
            &format!("/v1/lots/{}", lots[1]),
            Some(json!({ "title": "Wool scarf", "image_url": "https://img.example/s.jpg" })),
        )
        .await;
    assert_eq!((st, v["title"].as_str()), (StatusCode::OK, Some("Wool scarf")));
    let (_, v) = app
        .seller(
            Method::PATCH,
            &format!("/v1/lots/{}", lots[1]),
            Some(json!({ "image_url": null })),
        )
        .await;
    assert!(v["image_url"].is_null());
    let (st, v) = app
        .seller(Method::POST, &format!("/v1/streams/{sid}/unpin"), None)
        .await;
    assert_eq!((st, v["pinned_lot_id"].is_null()), (StatusCode::OK, true));
    common::wait_for_event(&mut events, |e| e["type"] == "lot.unpinned").await;
    let (_, v) = app.seller(Method::GET, &format!("/v1/streams/{sid}/lots"), None).await;
    assert_eq!(v["data"].as_array().unwrap().len(), 2);

    // A lot's default sale terms: set, checked, changed, cleared.
    let path = format!("/v1/lots/{}", lots[0]);
    let terms = json!({ "price_minor": 149000, "currency": "RUB", "quantity": 20, "per_buyer_limit": 2,
                        "duration_seconds": 120, "sku": "MUG-350" });
    let (st, v) = app.seller(Method::PATCH, &path, Some(terms.clone())).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    for (k, want) in terms.as_object().unwrap() {
        assert_eq!(&v[k], want, "{k}: {v}");
    }
    for (bad, field) in [
        (json!({ "per_buyer_limit": 21 }), "per_buyer_limit"),
        (json!({ "currency": "XXX" }), "currency"),
        (json!({ "currency": null }), "currency"),
        (json!({ "quantity": 0 }), "quantity"),
        (json!({ "duration_seconds": 999_999_999 }), "duration_seconds"),
        (json!({ "sku": "" }), "sku"),
    ] {
        let (st, v) = app.seller(Method::PATCH, &path, Some(bad.clone())).await;
        assert_eq!(
            (st, v["error"]["field"].as_str()),
            (StatusCode::BAD_REQUEST, Some(field)),
            "{bad}: {v}"
        );
    }
    let (_, v) = app
        .seller(
            Method::PATCH,
            &path,
            Some(json!({ "price_minor": null, "currency": null, "sku": null })),
        )
        .await;
    assert!(
        v["price_minor"].is_null() && v["sku"].is_null() && v["quantity"] == 20,
        "{v}"
    );
    let (st, v) = app
        .seller(
            Method::POST,
            &format!("/v1/streams/{sid}/lots"),
            Some(json!({ "title": "Vase", "price_minor": 990000, "currency": "RUB", "quantity": 1 })),
        )
        .await;
    assert_eq!(
        (st, v["price_minor"].as_i64(), v["quantity"].as_i64()),
        (StatusCode::CREATED, Some(990000), Some(1)),
        "{v}"
    );
}

async fn offers_start_only_on_live_streams_and_one_per_lot(env: Env) {
    let app = TestApp::start(&env, &[]).await;
    let (_, s) = app
        .seller(Method::POST, "/v1/streams", Some(json!({ "title": "S" })))
        .await;
    let sid = s["id"].as_str().unwrap();
    let (_, l) = app
        .seller(
            Method::POST,
            &format!("/v1/streams/{sid}/lots"),
            Some(json!({ "title": "L" })),
        )
        .await;
    let lid = l["id"].as_str().unwrap();
    let (_, o1) = app
        .seller(Method::POST, &format!("/v1/lots/{lid}/offers"), Some(offer_body(5, 1)))
        .await;
    let (_, o2) = app
        .seller(Method::POST, &format!("/v1/lots/{lid}/offers"), Some(offer_body(5, 1)))
        .await;
    assert_eq!(o1["state"], "draft");
    let (o1, o2) = (o1["id"].as_str().unwrap(), o2["id"].as_str().unwrap());
    let (st, v) = app.seller(Method::POST, &format!("/v1/offers/{o1}/start"), None).await;
    assert_eq!((st, code(&v)), (StatusCode::CONFLICT, "stream_not_live"));
    app.seller(Method::POST, &format!("/v1/streams/{sid}/live"), None).await;
    let (st, v) = app.seller(Method::POST, &format!("/v1/offers/{o1}/start"), None).await;
    assert_eq!(
        (st, v["state"].as_str(), v["units_left"].as_i64()),
        (StatusCode::OK, Some("live"), Some(5))
    );
    let (st, v) = app.seller(Method::POST, &format!("/v1/offers/{o1}/start"), None).await;
    assert_eq!((st, code(&v)), (StatusCode::CONFLICT, "offer_already_live"));
    let (st, v) = app.seller(Method::POST, &format!("/v1/offers/{o2}/start"), None).await;
    assert_eq!((st, code(&v)), (StatusCode::CONFLICT, "lot_has_live_offer"));
    let (st, v) = app.seller(Method::POST, &format!("/v1/offers/{o1}/cancel"), None).await;
    assert_eq!((st, v["end_reason"].as_str()), (StatusCode::OK, Some("cancelled")));
    let (st, v) = app.seller(Method::POST, &format!("/v1/offers/{o1}/cancel"), None).await;
    assert_eq!((st, code(&v)), (StatusCode::CONFLICT, "offer_ended"));
    let (st, _) = app.seller(Method::POST, &format!("/v1/offers/{o2}/start"), None).await;
    assert_eq!(st, StatusCode::OK, "the lot is free again once its offer ended");
    // Ending the stream cancels its live offer.
    app.seller(Method::POST, &format!("/v1/streams/{sid}/end"), None).await;
    let (_, v) = app.seller(Method::GET, &format!("/v1/offers/{o2}"), None).await;
    assert_eq!(
        (v["state"].as_str(), v["end_reason"].as_str()),
        (Some("ended"), Some("cancelled"))
    );
}

async fn another_sellers_objects_are_not_found(env: Env) {
    let app = TestApp::start(&env, &[]).await;
    let (_, _, oid) = app.live_offer(offer_body(5, 1)).await;
    let (_, streams) = app.seller(Method::GET, "/v1/streams", None).await;
    let sid = common::text(&streams["data"][0], "id");
    let other = app.other_seller_key().await;
    for (m, path) in [
        (Method::GET, format!("/v1/streams/{sid}")),
        (Method::POST, format!("/v1/streams/{sid}/end")),
        (Method::GET, format!("/v1/offers/{oid}")),
        (Method::POST, format!("/v1/offers/{oid}/cancel")),
    ] {
        let (st, v) = app.call(m, &path, Some(&other), None).await;
        assert_eq!((st, code(&v)), (StatusCode::NOT_FOUND, "not_found"), "{path}");
    }
    let (_, v) = app.call(Method::GET, "/v1/streams", Some(&other), None).await;
    assert!(v["data"].as_array().unwrap().is_empty());
    let (_, v) = app.seller(Method::GET, &format!("/v1/offers/{oid}"), None).await;
    assert_eq!(v["state"], "live", "nothing changed");
}

async fn invalid_offers_are_refused_with_the_field_named(env: Env) {
    let app = TestApp::start(&env, &[]).await;
    let (_, s) = app
        .seller(Method::POST, "/v1/streams", Some(json!({ "title": "S" })))
        .await;
    let sid = s["id"].as_str().unwrap();
    let (_, l) = app
        .seller(
            Method::POST,
            &format!("/v1/streams/{sid}/lots"),
            Some(json!({ "title": "L" })),
        )
        .await;
    let lid = l["id"].as_str().unwrap();
    let base = offer_body(5, 2);
    let with = |k: &str, v: Value| {
        let mut b = base.clone();
        b[k] = v;
        b
    };
    let cases = [
        (with("currency", json!("XXX")), "currency"),
        (with("currency", json!("rub")), "currency"),
        (with("price_minor", json!(0)), "price_minor"),
        (with("price_minor", json!(-100)), "price_minor"),
        (with("price_minor", json!(1_000_000_000_000_000i64)), "price_minor"),
        (with("quantity", json!(0)), "quantity"),
        (with("quantity", json!(-3)), "quantity"),
        (with("quantity", json!(5_000_000)), "quantity"),
        (with("per_buyer_limit", json!(6)), "per_buyer_limit"),
        (with("per_buyer_limit", json!(0)), "per_buyer_limit"),
        (with("hold_ttl_seconds", json!(1)), "hold_ttl_seconds"),
        (with("hold_ttl_seconds", json!(i64::MAX)), "hold_ttl_seconds"),
        (with("duration_seconds", json!(0)), "duration_seconds"),
        (with("duration_seconds", json!(i64::MAX)), "duration_seconds"),
        (with("ends_at", json!(1)), "duration_seconds"),
    ];
    for (body, field) in cases {
        let (st, v) = app
            .seller(Method::POST, &format!("/v1/lots/{lid}/offers"), Some(body.clone()))
            .await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{body} → {v}");
        assert_eq!(
            (code(&v), v["error"]["field"].as_str()),
            ("invalid_field", Some(field)),
            "{body} → {v}"
        );
    }
    let mut past = base.clone();
    past.as_object_mut().unwrap().remove("duration_seconds");
    past["ends_at"] = json!(1000);
    let (st, v) = app
        .seller(Method::POST, &format!("/v1/lots/{lid}/offers"), Some(past))
        .await;
    assert_eq!(
        (st, v["error"]["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("ends_at"))
    );
    let (_, v) = app
        .seller(Method::GET, &format!("/v1/streams/{sid}/offers"), None)
        .await;
    assert!(v["data"].as_array().unwrap().is_empty(), "nothing was half-written");
}

async fn malformed_requests_get_clear_errors(env: Env) {
    let app = TestApp::start(&env, &[]).await;
    let url = format!("{}/v1/streams", app.base);
    let send = |body: Vec<u8>, ctype: Option<&'static str>| {
        let mut r = app.http.post(&url).bearer_auth(&app.key).body(body);
        if let Some(c) = ctype {
            r = r.header("content-type", c);
        }
        r.send()
    };
    let check = |resp: reqwest::Response, status: StatusCode, want: &'static str| async move {
        assert_eq!(resp.status(), status);
        let v: Value = resp.json().await.unwrap();
        assert_eq!(code(&v), want, "{v}");
    };
    check(
        send(b"{not json".to_vec(), Some("application/json")).await.unwrap(),
        StatusCode::BAD_REQUEST,
        "invalid_json",
    )
    .await;
    check(
        send(br#"{"title": 5}"#.to_vec(), Some("application/json"))
            .await
            .unwrap(),
        StatusCode::BAD_REQUEST,
        "invalid_body",
    )
    .await;
    check(
        send(br#"{"title": "x", "extra": 1}"#.to_vec(), Some("application/json"))
            .await
            .unwrap(),
        StatusCode::BAD_REQUEST,
        "invalid_body",
    )
    .await;
    check(
        send(br#"{"title": "x"}"#.to_vec(), None).await.unwrap(),
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    )
    .await;
    let huge = format!(r#"{{"title": "{}"}}"#, "x".repeat(200_000));
    // The server answers before reading all of it and closes the connection:
    // a connection of its own, so the next request does not reuse it.
    let refused = app
        .http
        .post(&url)
        .bearer_auth(&app.key)
        .header("content-type", "application/json")
        .header("connection", "close")
        .body(huge.into_bytes())
        .send()
        .await
        .unwrap();
    check(refused, StatusCode::PAYLOAD_TOO_LARGE, "body_too_large").await;
    let (st, v) = app
        .seller(Method::POST, "/v1/streams", Some(json!({ "title": "" })))
        .await;
    assert_eq!(
        (st, v["error"]["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("title"))
    );
    let (st, v) = app
        .seller(Method::POST, "/v1/streams", Some(json!({ "title": "a\u{0000}b" })))
        .await;
    assert_eq!(
        (st, v["error"]["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("title"))
    );
    let (st, v) = app.seller(Method::GET, "/v1/streams/not-an-id", None).await;
    assert_eq!((st, code(&v)), (StatusCode::BAD_REQUEST, "invalid_id"));
    let (st, v) = app
        .seller(Method::GET, "/v1/streams/str_unknown000000000000", None)
        .await;
    assert_eq!((st, code(&v)), (StatusCode::NOT_FOUND, "not_found"));
    let (st, v) = app.seller(Method::GET, "/v1/streams?limit=100000", None).await;
    assert_eq!(
        (st, v["error"]["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("limit"))
    );
    let (st, v) = app.seller(Method::GET, "/v1/streams?limit=abc", None).await;
    assert_eq!((st, code(&v)), (StatusCode::BAD_REQUEST, "invalid_query"));
    let (st, v) = app.seller(Method::GET, "/v1/nowhere", None).await;
    assert_eq!((st, code(&v)), (StatusCode::NOT_FOUND, "not_found"));
    let (st, v) = app.seller(Method::DELETE, "/v1/streams", None).await;
    assert_eq!((st, code(&v)), (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"));
    let wrong = app
        .http
        .delete(format!("{}/v1/streams", app.base))
        .bearer_auth(&app.key)
        .send()
        .await
        .unwrap();
    let allow = wrong.headers().get("allow").map(|v| v.to_str().unwrap().to_owned());
    let mut allowed: Vec<&str> = allow.as_deref().unwrap_or_default().split(',').collect();
    allowed.sort_unstable();
    assert_eq!(allowed, ["GET", "HEAD", "POST"], "the methods the path takes");
    let (_, v) = app.seller(Method::GET, "/v1/streams", None).await;
    assert!(
        v["data"].as_array().unwrap().is_empty(),
        "no stream was created by bad requests"
    );
}

/// A POST with an Idempotency-Key: status, body and whether it was replayed.
async fn post_with_key(app: &TestApp, api_key: &str, path: &str, key: &str, body: Value) -> (StatusCode, Value, bool) {
    let resp = app
        .http
        .post(format!("{}{path}", app.base))
        .bearer_auth(api_key)
        .header("idempotency-key", key)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let replayed = resp.headers().get("idempotent-replayed").is_some();
    (status, resp.json().await.unwrap(), replayed)
}

async fn idempotency_keys_replay_the_first_answer_and_refuse_other_requests(env: Env) {
    let app = TestApp::start(&env, &[]).await;
    let key = app.key.clone();
    let body = json!({ "title": "Friday drop" });
    let (st, first, replayed) = post_with_key(&app, &key, "/v1/streams", "k-1", body.clone()).await;
    assert_eq!((st, replayed), (StatusCode::CREATED, false), "{first}");
    let (st, again, replayed) = post_with_key(&app, &key, "/v1/streams", "k-1", body.clone()).await;
    assert_eq!((st, replayed), (StatusCode::CREATED, true));
    assert_eq!(again, first, "the stored answer, byte for byte the same stream");
    // The same key with another body, or on another path: refused.
    let (st, v, _) = post_with_key(&app, &key, "/v1/streams", "k-1", json!({ "title": "Other" })).await;
    assert_eq!((st, code(&v)), (StatusCode::BAD_REQUEST, "idempotency_key_reused"));
    let sid = first["id"].as_str().unwrap();
    let (st, v, _) = post_with_key(&app, &key, &format!("/v1/streams/{sid}/live"), "k-1", json!({})).await;
    assert_eq!((st, code(&v)), (StatusCode::BAD_REQUEST, "idempotency_key_reused"));
    // Validation errors are answers too: replayed, not re-run.
    let (st, v, _) = post_with_key(&app, &key, "/v1/streams", "k-bad", json!({ "title": "" })).await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    let (_, _, replayed) = post_with_key(&app, &key, "/v1/streams", "k-bad", json!({ "title": "" })).await;
    assert!(replayed);
    // Keys are per seller.
    let other = app.other_seller_key().await;
    let (st, theirs, replayed) = post_with_key(&app, &other, "/v1/streams", "k-1", body.clone()).await;
    assert_eq!((st, replayed), (StatusCode::CREATED, false));
    assert_ne!(theirs["id"], first["id"]);
    // A malformed key is refused before anything runs.
    let (st, v, _) = post_with_key(&app, &key, "/v1/streams", "has space", body.clone()).await;
    assert_eq!((st, code(&v)), (StatusCode::BAD_REQUEST, "invalid_idempotency_key"));
    let (_, list) = app.seller(Method::GET, "/v1/streams", None).await;
    assert_eq!(
        list["data"].as_array().unwrap().len(),
        1,
        "one stream for all those calls"
    );
    // After 24 hours the key is free again.
    app.clock.advance(24 * 3600 * 1000 + 1);
    let (st, later, replayed) = post_with_key(&app, &key, "/v1/streams", "k-1", body).await;
    assert_eq!((st, replayed), (StatusCode::CREATED, false));
    assert_ne!(later["id"], first["id"]);
}

async fn concurrent_requests_with_one_key_create_one_object(env: Env) {
    let app = TestApp::start(&env, &[]).await;
    let key = app.key.clone();
    let calls = (0..12).map(|_| post_with_key(&app, &key, "/v1/streams", "race", json!({ "title": "Race" })));
    let answers = futures_util::future::join_all(calls).await;
    let mut ids = std::collections::HashSet::new();
    for (st, v, _) in &answers {
        match *st {
            StatusCode::CREATED => {
                ids.insert(common::text(v, "id"));
            }
            StatusCode::CONFLICT => assert_eq!(code(v), "idempotency_key_in_use"),
            other => panic!("unexpected {other}: {v}"),
        }
    }
    assert_eq!(ids.len(), 1, "{answers:?}");
    let (_, list) = app.seller(Method::GET, "/v1/streams", None).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
}

/// A secret shown once (a webhook endpoint's, a rotated one, the widget
/// secret) is not shown again by an Idempotency-Key replay; the rest of the
/// answer is.
async fn a_replay_never_shows_a_secret_again(env: Env) {
    let app = TestApp::start(&env, &[("HAUL_WEBHOOKS_ALLOW_PRIVATE", "true")]).await;
    let key = app.key.clone();
    let body = json!({ "url": "http://127.0.0.1:9/hook" });
    let (st, first, _) = post_with_key(&app, &key, "/v1/webhook-endpoints", "s-1", body.clone()).await;
    assert_eq!(st, StatusCode::CREATED, "{first}");
    assert!(first["secret"].as_str().unwrap().starts_with("whsec_"));
    let (st, again, replayed) = post_with_key(&app, &key, "/v1/webhook-endpoints", "s-1", body).await;
    assert_eq!((st, replayed), (StatusCode::CREATED, true));
    assert!(again.get("secret").is_none(), "{again}");
    assert_eq!(again["id"], first["id"]);

    let rotate = format!("/v1/webhook-endpoints/{}/rotate", common::text(&first, "id"));
    let (st, rotated, _) = post_with_key(&app, &key, &rotate, "s-2", json!({})).await;
    assert_eq!(st, StatusCode::OK, "{rotated}");
    assert!(rotated["secret"].as_str().unwrap().starts_with("whsec_"));
    let (_, again, replayed) = post_with_key(&app, &key, &rotate, "s-2", json!({})).await;
    assert!(replayed && again.get("secret").is_none(), "{again}");

    let (st, widget, _) = post_with_key(&app, &key, "/v1/widget-secret", "s-3", json!({})).await;
    assert_eq!(st, StatusCode::CREATED, "{widget}");
    assert!(widget["widget_secret"].as_str().unwrap().starts_with("wsk_"));
    let (_, again, replayed) = post_with_key(&app, &key, "/v1/widget-secret", "s-3", json!({})).await;
    assert!(replayed && again.get("widget_secret").is_none(), "{again}");
}

/// Webhook and widget secrets are sealed at rest like bank credentials; a
/// secret written before sealing still reads.
async fn secrets_are_sealed_at_rest(env: Env) {
    let app = TestApp::start(&env, &[("HAUL_WEBHOOKS_ALLOW_PRIVATE", "true")]).await;
    let (st, ep) = app
        .seller(
            Method::POST,
            "/v1/webhook-endpoints",
            Some(json!({ "url": "http://127.0.0.1:9/hook" })),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{ep}");
    let (id, secret) = (common::text(&ep, "id"), common::text(&ep, "secret"));
    let stored: String = sqlx::query_scalar("SELECT secret FROM webhook_endpoints WHERE id = $1")
        .bind(&id)
        .fetch_one(&app.state.pool)
        .await
        .unwrap();
    assert!(
        stored.starts_with("sealed:") && !stored.contains(&secret[6..]),
        "{stored}"
    );
    let (_, widget) = app.seller(Method::POST, "/v1/widget-secret", None).await;
    let widget = common::text(&widget, "widget_secret");
    let stored: String = sqlx::query_scalar("SELECT widget_secret FROM sellers WHERE id = $1")
        .bind(app.seller.as_str())
        .fetch_one(&app.state.pool)
        .await
        .unwrap();
    assert!(
        stored.starts_with("sealed:") && !stored.contains(&widget[4..]),
        "{stored}"
    );
    // A plain secret from before sealing is read as it is.
    sqlx::query("UPDATE webhook_endpoints SET secret = $1 WHERE id = $2")
        .bind(&secret)
        .bind(&id)
        .execute(&app.state.pool)
        .await
        .unwrap();
    let (st, all) = app.seller(Method::GET, "/v1/webhook-endpoints", None).await;
    assert_eq!(
        (st, all["data"][0]["id"].as_str()),
        (StatusCode::OK, Some(id.as_str())),
        "{all}"
    );
}

on_both_backends!(
    secrets_are_sealed_at_rest,
    a_replay_never_shows_a_secret_again,
    idempotency_keys_replay_the_first_answer_and_refuse_other_requests,
    concurrent_requests_with_one_key_create_one_object,
    seller_api_refuses_missing_and_wrong_keys,
    stream_lifecycle_only_moves_forward,
    lots_are_added_updated_and_pinned_one_at_a_time,
    offers_start_only_on_live_streams_and_one_per_lot,
    another_sellers_objects_are_not_found,
    invalid_offers_are_refused_with_the_field_named,
    malformed_requests_get_clear_errors,
);
