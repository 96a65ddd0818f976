//! The viewer page in real headless Chromium (Debian's chromium, driven by
//! playwright-core from npm): it loads, receives an offer as it starts, the
//! countdown runs, buy reserves, a second viewer sees the units left drop,
//! and it says so when the node goes away.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::{Env, TestApp};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};

async fn the_viewer_page_sells_live_in_a_real_browser(env: Env) {
    let app = TestApp::start(&env, &[]).await;
    let (_, s) = app
        .seller(Method::POST, "/v1/streams", Some(json!({ "title": "Sale" })))
        .await;
    let sid = s["id"].as_str().unwrap().to_owned();
    app.seller(Method::POST, &format!("/v1/streams/{sid}/live"), None).await;
    let (_, lot) = app
        .seller(
            Method::POST,
            &format!("/v1/streams/{sid}/lots"),
            Some(json!({ "title": "Kettle", "description": "1.7 l, steel" })),
        )
        .await;
    let lid = lot["id"].as_str().unwrap().to_owned();
    let (st, _) = app.seller(Method::POST, &format!("/v1/lots/{lid}/pin"), None).await;
    assert_eq!(st, StatusCode::OK);
    let (st, offer) = app
        .seller(
            Method::POST,
            &format!("/v1/lots/{lid}/offers"),
            Some(
                json!({ "price_minor": 349000, "currency": "RUB", "quantity": 5, "per_buyer_limit": 1,
                         "duration_seconds": 60, "hold_ttl_seconds": 300 }),
            ),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{offer}");
    let oid = offer["id"].as_str().unwrap().to_owned();

    let modules = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/js/node_modules/playwright-core");
    assert!(
        std::path::Path::new(modules).exists(),
        "playwright-core is missing: ./scripts/test installs it"
    );
    let shot = std::env::temp_dir().join(format!("haul-watch-{sid}.png"));
    let mut node = tokio::process::Command::new("node")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/js/watch.mjs"))
        .args([&app.base, &sid, &oid, &app.key, "5"])
        .env("HAUL_TEST_SCREENSHOT", &shot)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node runs");
    let mut lines = BufReader::new(node.stdout.take().unwrap()).lines();
    let mut steps: Vec<Value> = Vec::new();
    let mut app = Some(app);
    let mut step = async |name: &str| -> Value {
        loop {
            let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
                .await
                .unwrap_or_else(|_| panic!("the browser went quiet; saw {steps:?}"))
                .unwrap()
                .unwrap_or_else(|| panic!("the browser script ended; saw {steps:?}"));
            let v: Value = serde_json::from_str(&line).unwrap();
            steps.push(v.clone());
            assert_ne!(v["step"], "error", "{steps:?} (screenshot: {})", shot.display());
            assert_ne!(v["step"], "page_error", "{steps:?}");
            if v["step"] == name {
                return v["value"].clone();
            }
        }
    };
    let loaded = step("loaded").await;
    assert_eq!(loaded, json!({ "title": "Sale", "lot": "Kettle", "no_offer": true }));
    let offer = step("offer").await;
    assert_eq!(offer["units_left"], json!([5, 5]), "{offer}");
    assert!(offer["price"].as_str().unwrap().contains("3"), "{offer}");
    let countdown = step("countdown").await;
    let (first, later) = (
        countdown["first"].as_i64().unwrap(),
        countdown["later"].as_i64().unwrap(),
    );
    assert!((55..=60).contains(&first) && later < first, "{countdown}");
    assert!(step("bought").await.as_str().unwrap().contains("yours"));
    assert_eq!(step("seen_by_other").await, 4);
    assert!(step("refused").await.as_str().unwrap().contains("already hold"));
    assert_eq!(step("ticker").await, "Only today!");
    step("stop_the_node").await;
    drop(app.take());
    assert!(step("reconnecting").await.as_str().unwrap().contains("Reconnecting"));
    let status = tokio::time::timeout(Duration::from_secs(15), node.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success());
}

async fn pages_and_assets_are_served_with_safe_headers(env: Env) {
    let app = TestApp::start(&env, &[]).await;
    let get = |path: &str| app.http.get(format!("{}{path}", app.base)).send();
    let page = get("/watch/str_0000000000000000000000").await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert!(page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("default-src 'self'"));
    assert_eq!(
        get("/watch/not-a-stream").await.unwrap().status(),
        StatusCode::NOT_FOUND
    );
    let js = get("/assets/watch.js").await.unwrap();
    assert_eq!(js.headers()["content-type"], "text/javascript; charset=utf-8");
    assert_eq!(
        get("/assets/..%2Fsecret").await.unwrap().status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(get("/assets/missing.js").await.unwrap().status(), StatusCode::NOT_FOUND);
}

on_both_backends!(
    the_viewer_page_sells_live_in_a_real_browser,
    pages_and_assets_are_served_with_safe_headers,
);
