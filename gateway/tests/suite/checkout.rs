//! Checkout sessions for sellers' own sites: created with receipt items that
//! must sum to the amount, read, listed, cancelled, expired; every mistake
//! names its field; Idempotency-Key makes a retried create return the same
//! session.

use crate::common;

use common::{Env, TestApp};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

fn session() -> Value {
    json!({
        "amount_minor": 350000, "currency": "RUB", "reference": "A-1001",
        "items": [
            { "name": "Чайник", "quantity": 1, "price_minor": 250000, "vat": "vat20" },
            { "name": "Доставка", "quantity": 2, "price_minor": 50000, "vat": "none", "payment_object": "service" }
        ],
        "success_url": "https://shop.example/thanks", "cancel_url": "https://shop.example/cart",
        "customer_email": "buyer@example.com"
    })
}

async fn create(app: &TestApp, body: Value, key: Option<&str>) -> (StatusCode, Value) {
    let mut req = app
        .http
        .post(format!("{}/v1/checkout/sessions", app.base))
        .bearer_auth(&app.key)
        .json(&body);
    if let Some(k) = key {
        req = req.header("idempotency-key", k);
    }
    let r = req.send().await.unwrap();
    (r.status(), r.json().await.unwrap())
}

async fn sessions_are_made_read_listed_and_cancelled(env: Env) {
    let app = TestApp::start(&env, &[]).await;
    let (st, s) = create(&app, session(), Some("cs-1")).await;
    assert_eq!(st, StatusCode::CREATED, "{s}");
    assert_eq!(
        (s["state"].as_str(), s["amount_minor"].as_i64()),
        (Some("created"), Some(350_000))
    );
    assert_eq!(s["items"][1]["payment_method"], "full_payment", "defaults filled in");
    assert!(s["url"]
        .as_str()
        .unwrap()
        .ends_with(&format!("/checkout/{}", s["id"].as_str().unwrap())));
    // A retried create with the same key is the same session.
    let (_, again) = create(&app, session(), Some("cs-1")).await;
    assert_eq!(again["id"], s["id"]);
    let id = s["id"].as_str().unwrap();
    let (st, read) = app
        .seller(Method::GET, &format!("/v1/checkout/sessions/{id}"), None)
        .await;
    assert_eq!((st, &read["id"]), (StatusCode::OK, &s["id"]));
    let (_, list) = app.seller(Method::GET, "/v1/checkout/sessions?limit=10", None).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    // Another seller sees nothing.
    let other = app.other_seller_key().await;
    let (st, _) = app
        .call(Method::GET, &format!("/v1/checkout/sessions/{id}"), Some(&other), None)
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    // The buyer (holding the session id) starts paying; a wrong acquirer is refused.
    let pay = |acquirer: &str| {
        app.http
            .post(format!("{}/v1/checkout/sessions/{id}/attempts", app.base))
            .json(&json!({ "acquirer": acquirer }))
            .send()
    };
    let r = pay("sandbox").await.unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let attempt: Value = r.json().await.unwrap();
    assert!(attempt["redirect_url"].as_str().unwrap().contains("/sandbox/pay/pat_"));
    assert_eq!(pay("nowhere").await.unwrap().status(), StatusCode::BAD_REQUEST);
    let r = app
        .http
        .post(format!("{}/v1/checkout/sessions/cs_nope/attempts", app.base))
        .json(&json!({ "acquirer": "sandbox" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let (st, cancelled) = app
        .seller(Method::POST, &format!("/v1/checkout/sessions/{id}/cancel"), None)
        .await;
    assert_eq!((st, cancelled["state"].as_str()), (StatusCode::OK, Some("cancelled")));
    let (st, v) = app
        .seller(Method::POST, &format!("/v1/checkout/sessions/{id}/cancel"), None)
        .await;
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("illegal_transition"))
    );
}

async fn an_open_session_expires_on_time(env: Env) {
    let app = TestApp::start(&env, &[]).await;
    let mut body = session();
    body["expires_in_seconds"] = json!(120);
    let (_, s) = create(&app, body, None).await;
    app.clock.advance(121_000);
    let (_, read) = app
        .seller(
            Method::GET,
            &format!("/v1/checkout/sessions/{}", s["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(read["state"], "expired");
}

async fn every_mistake_names_its_field(env: Env) {
    let app = TestApp::start(&env, &[]).await;
    let cases: Vec<(Value, &str)> = vec![
        (json!({ "currency": "XYZ" }), "currency"),
        (json!({ "amount_minor": 349999 }), "items"),
        (json!({ "items": [] }), "items"),
        (json!({ "success_url": "javascript:alert(1)" }), "success_url"),
        (json!({ "customer_email": "nobody" }), "customer_email"),
        (json!({ "reference": "" }), "reference"),
    ];
    for (patch, field) in cases {
        let mut body = session();
        for (k, v) in patch.as_object().unwrap() {
            body[k] = v.clone();
        }
        let (st, v) = create(&app, body, None).await;
        assert_eq!(
            (st, v["error"]["code"].as_str(), v["error"]["field"].as_str()),
            (StatusCode::BAD_REQUEST, Some("invalid_field"), Some(field)),
            "{patch} -> {v}"
        );
    }
    let mut body = session();
    body["items"][1]["vat"] = json!("vat18");
    let (_, v) = create(&app, body, None).await;
    assert_eq!(v["error"]["field"], "items[1].vat", "{v}");
    let mut body = session();
    body["surprise"] = json!(1);
    let (st, _) = create(&app, body, None).await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "unknown fields are refused");
    let (_, list) = app.seller(Method::GET, "/v1/checkout/sessions", None).await;
    assert!(list["data"].as_array().unwrap().is_empty(), "nothing was made");
}

async fn signed_parameters_make_one_session_and_tampering_is_refused(env: Env) {
    use std::collections::BTreeMap;
    use streams::clock::Clock;
    let app = TestApp::start(&env, &[]).await;
    let (st, v) = app.seller(Method::POST, "/v1/widget-secret", None).await;
    assert_eq!(st, StatusCode::CREATED);
    let secret = common::text(&v, "widget_secret");
    let expires = (app.clock.now_ms() / 1000 + 600).to_string();
    let mut p: BTreeMap<String, String> = [
        ("seller", app.seller.as_str()),
        ("amount_minor", "129000"),
        ("currency", "RUB"),
        ("reference", "landing-1"),
        ("description", "Мастер-класс"),
        ("vat", "vat20"),
        ("success_url", "https://landing.example/ok"),
        ("cancel_url", "https://landing.example/"),
        ("customer_email", "guest@example.com"),
        ("expires", expires.as_str()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let sig = payments::checkout::signed::sign(&secret, &p).unwrap();
    p.insert("signature".into(), sig);
    let post = |body: &BTreeMap<String, String>| {
        app.http
            .post(format!("{}/v1/checkout/signed", app.base))
            .json(body)
            .send()
    };
    let r = post(&p).await.unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let first: Value = r.json().await.unwrap();
    assert_eq!(
        (first["amount_minor"].as_i64(), first["items"][0]["vat"].as_str()),
        (Some(129_000), Some("vat20"))
    );
    // The same signed parameters again: the same session, not a second one.
    let again: Value = post(&p).await.unwrap().json().await.unwrap();
    assert_eq!(again["id"], first["id"]);
    // Tampered, expired or foreign: refused.
    let mut cheaper = p.clone();
    cheaper.insert("amount_minor".into(), "1".into());
    let mut late = p.clone();
    late.insert("expires".into(), (app.clock.now_ms() / 1000 - 1).to_string());
    let mut stranger = p.clone();
    stranger.insert("seller".into(), "sel_0000000000000000000000".into());
    for bad in [cheaper, late, stranger] {
        let r = post(&bad).await.unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"]["code"], "invalid_signature", "{v}");
    }
    let (_, list) = app.seller(Method::GET, "/v1/checkout/sessions", None).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
}

async fn the_checkout_page_is_framed_only_by_the_sellers_origins(env: Env) {
    let app = TestApp::start(
        &env,
        &[("HAUL_SANDBOX_SECRET", "checkout-test-secret-checkout-test-secret")],
    )
    .await;
    let (_, s) = create(&app, session(), None).await;
    let id = common::text(&s, "id");
    let csp = |r: &reqwest::Response| r.headers()["content-security-policy"].to_str().unwrap().to_owned();
    // No origins yet: nobody may frame it.
    let r = app.http.get(s["url"].as_str().unwrap()).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(csp(&r).contains("frame-ancestors 'none'"), "{}", csp(&r));
    let (st, v) = app
        .seller(
            Method::PUT,
            "/v1/widget-origins",
            Some(json!({ "origins": ["https://shop.example", "https://shop.example/cart"] })),
        )
        .await;
    assert_eq!(
        (st, v["error"]["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("origins[1]")),
        "{v}"
    );
    let (st, v) = app
        .seller(
            Method::PUT,
            "/v1/widget-origins",
            Some(json!({ "origins": ["https://Shop.Example", "http://localhost:3000"] })),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v["origins"], json!(["https://shop.example", "http://localhost:3000"]));
    let r = app.http.get(s["url"].as_str().unwrap()).send().await.unwrap();
    assert!(
        csp(&r).contains("frame-ancestors https://shop.example http://localhost:3000"),
        "{}",
        csp(&r)
    );
    assert_eq!(
        app.http
            .get(format!("{}/checkout/cs_nope", app.base))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::NOT_FOUND
    );
    // The page's own view: summary and origins, no personal data.
    let status: Value = app
        .http
        .get(format!("{}/v1/checkout/sessions/{id}/status", app.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (status["state"].as_str(), status["amount_minor"].as_i64()),
        (Some("created"), Some(350_000))
    );
    assert_eq!(status["origins"][0], "https://shop.example");
    assert!(status.get("customer_email").is_none());
    // Paying through the sandbox leads back to this page, which reads the end from Haul.
    let attempt: Value = app
        .http
        .post(format!("{}/v1/checkout/sessions/{id}/attempts", app.base))
        .json(&json!({ "acquirer": "sandbox" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let sandbox_page = app
        .http
        .post(attempt["redirect_url"].as_str().unwrap())
        .form(&[("number", "4242424242424242"), ("expiry", "12/39"), ("cvc", "123")])
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        sandbox_page.contains(&format!("/checkout/{id}?return=1")),
        "{sandbox_page}"
    );
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let v: Value = app
            .http
            .get(format!("{}/v1/checkout/sessions/{id}/status", app.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if v["state"] == "succeeded" {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{v}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

on_both_backends!(
    the_checkout_page_is_framed_only_by_the_sellers_origins,
    signed_parameters_make_one_session_and_tampering_is_refused,
    sessions_are_made_read_listed_and_cancelled,
    an_open_session_expires_on_time,
    every_mistake_names_its_field,
);
