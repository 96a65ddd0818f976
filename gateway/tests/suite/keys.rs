//! API keys a seller manages: several, named, shown once, of the caller's
//! mode; rotation with an overlap in which both keys work; revocation at
//! once, never of the last working key; last use recorded; another
//! seller's keys out of reach.

use crate::common;

use common::{Env, TestApp};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

async fn with(app: &TestApp, key: &str, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
    app.call(method, path, Some(key), body).await
}

/// A key made with an `Idempotency-Key`.
async fn make_key(app: &TestApp, body: Value, idempotency: &str) -> (StatusCode, Value) {
    let r = app
        .http
        .post(format!("{}/v1/api-keys", app.base))
        .bearer_auth(&app.key)
        .header("idempotency-key", idempotency)
        .json(&body)
        .send()
        .await
        .unwrap();
    (r.status(), r.json().await.unwrap())
}

/// Whether `key` opens the API.
async fn works(app: &TestApp, key: &str) -> bool {
    with(app, key, Method::GET, "/v1/streams", None).await.0 == StatusCode::OK
}

async fn keys_are_named_rotated_with_an_overlap_and_revoked(env: Env) {
    let app = TestApp::start(&env, &[]).await;
    let (st, v) = app.seller(Method::GET, "/v1/api-keys", None).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let first = v["data"].as_array().unwrap().clone();
    assert_eq!(first.len(), 1, "{v}");
    assert_eq!(
        (first[0]["name"].as_str(), first[0]["active"].as_bool()),
        (Some("default"), Some(true))
    );
    assert!(first[0]["prefix"].as_str().unwrap().starts_with("hk_test_"));
    assert!(!v.to_string().contains(&app.key), "a listing never shows a key");
    assert!(first[0]["last_used_at"].is_i64(), "this very call used it: {v}");

    // A second key, named, shown once (a replay leaves it out).
    let (st, made) = make_key(&app, json!({ "name": "warehouse server" }), "k-1").await;
    assert_eq!(st, StatusCode::CREATED, "{made}");
    let second = made["key"].as_str().unwrap().to_owned();
    assert!(second.starts_with("hk_test_"));
    assert!(works(&app, &second).await);
    let (st, again) = make_key(&app, json!({ "name": "warehouse server" }), "k-1").await;
    assert_eq!(st, StatusCode::CREATED);
    assert_eq!(again["id"], made["id"]);
    assert!(again.get("key").is_none(), "{again}");

    // Rotation: the new key works at once, the old one for the overlap.
    let (st, rotated) = with(
        &app,
        &second,
        Method::POST,
        &format!("/v1/api-keys/{}/rotate", made["id"].as_str().unwrap()),
        Some(json!({ "overlap_seconds": 60 })),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{rotated}");
    assert_eq!(rotated["name"], "warehouse server");
    assert_eq!(rotated["replaces"], made["id"]);
    let third = rotated["key"].as_str().unwrap().to_owned();
    assert!(works(&app, &third).await && works(&app, &second).await);
    app.clock.advance(61_000);
    assert!(!works(&app, &second).await, "the overlap is over");
    assert!(works(&app, &third).await);
    let (_, v) = app.seller(Method::GET, "/v1/api-keys", None).await;
    let old = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == made["id"])
        .unwrap()
        .clone();
    assert_eq!(old["active"], false, "{old}");
    assert!(old["expires_at"].is_i64());
    // An ended key cannot be rotated or revoked again.
    let (st, _) = app
        .seller(
            Method::POST,
            &format!("/v1/api-keys/{}/rotate", made["id"].as_str().unwrap()),
            Some(json!({})),
        )
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);

    // Revocation is at once.
    let (st, v) = app
        .seller(
            Method::DELETE,
            &format!("/v1/api-keys/{}", rotated["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert!(!works(&app, &third).await);
    let (st, _) = app
        .seller(
            Method::DELETE,
            &format!("/v1/api-keys/{}", rotated["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    // Never the last working one.
    let (st, v) = app
        .seller(
            Method::DELETE,
            &format!("/v1/api-keys/{}", first[0]["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("last_api_key")),
        "{v}"
    );
    assert!(works(&app, &app.key.clone()).await);

    // Mistakes are named; another seller reaches none of these keys.
    for (body, field) in [
        (json!({ "name": "" }), "name"),
        (json!({ "name": "x".repeat(101) }), "name"),
        (json!({ "name": "a\nb" }), "name"),
    ] {
        let (st, v) = app.seller(Method::POST, "/v1/api-keys", Some(body)).await;
        assert_eq!(
            (st, v["error"]["field"].as_str()),
            (StatusCode::BAD_REQUEST, Some(field)),
            "{v}"
        );
    }
    let id = first[0]["id"].as_str().unwrap();
    for overlap in [-1, 8 * 24 * 3600] {
        let (st, v) = app
            .seller(
                Method::POST,
                &format!("/v1/api-keys/{id}/rotate"),
                Some(json!({ "overlap_seconds": overlap })),
            )
            .await;
        assert_eq!(
            (st, v["error"]["field"].as_str()),
            (StatusCode::BAD_REQUEST, Some("overlap_seconds")),
            "{v}"
        );
    }
    let other = app.other_seller_key().await;
    let (st, v) = with(&app, &other, Method::GET, "/v1/api-keys", None).await;
    assert_eq!(st, StatusCode::OK);
    assert!(!v.to_string().contains(id), "{v}");
    let (st, _) = with(&app, &other, Method::DELETE, &format!("/v1/api-keys/{id}"), None).await;
    assert_eq!(st, StatusCode::NOT_FOUND);

    // A live key makes live keys.
    let (_, live) = app.live_key().await;
    let (st, v) = with(
        &app,
        &live,
        Method::POST,
        "/v1/api-keys",
        Some(json!({ "name": "live server" })),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    assert!(v["key"].as_str().unwrap().starts_with("hk_live_"), "{v}");
    assert_eq!(v["livemode"], true);
}

crate::on_both_backends!(keys_are_named_rotated_with_an_overlap_and_revoked);
