//! The viewer page in real headless Chromium (Debian's chromium, driven by
//! playwright-core from npm): it loads, receives an offer as it starts, the
//! countdown runs, buy reserves, a second viewer sees the units left drop,
//! and it says so when the node goes away; every reserve refusal reads as a
//! sentence.

use crate::common;
use crate::emulators;

use std::process::Stdio;
use std::time::Duration;

use common::{Env, TestApp};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};

/// A live stream titled `title` with a pinned lot and a draft offer of it
/// (5 units at 3 490 ₽, one per buyer, held 5 min): (stream, offer).
async fn live_stream_with_offer(app: &TestApp, title: &str, lot: Value, duration_seconds: i64) -> (String, String) {
    let (_, s) = app
        .seller(Method::POST, "/v1/streams", Some(json!({ "title": title })))
        .await;
    let sid = common::text(&s, "id");
    app.seller(Method::POST, &format!("/v1/streams/{sid}/live"), None).await;
    let (_, lot) = app
        .seller(Method::POST, &format!("/v1/streams/{sid}/lots"), Some(lot))
        .await;
    let lid = common::text(&lot, "id");
    let (st, _) = app.seller(Method::POST, &format!("/v1/lots/{lid}/pin"), None).await;
    assert_eq!(st, StatusCode::OK);
    let (st, offer) = app
        .seller(
            Method::POST,
            &format!("/v1/lots/{lid}/offers"),
            Some(
                json!({ "price_minor": 349000, "currency": "RUB", "quantity": 5, "per_buyer_limit": 1,
                          "duration_seconds": duration_seconds, "hold_ttl_seconds": 300 }),
            ),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{offer}");
    (sid, common::text(&offer, "id"))
}

async fn the_viewer_page_sells_live_in_a_real_browser(env: Env) {
    let app = TestApp::start(&env, &[]).await;
    let lot = json!({ "title": "Kettle", "description": "1.7 l, steel" });
    let (sid, oid) = live_stream_with_offer(&app, "Sale", lot, 60).await;

    let mut browser = Browser::start("watch.mjs", &[&app.base, &sid, &oid, &app.key, "5"], &sid);
    let mut app = Some(app);
    let mut step = async |name: &str| browser.step(name).await;
    let loaded = step("loaded").await;
    // A test-mode stream says so.
    assert_eq!(
        loaded,
        json!({ "title": "Sale", "lot": "Kettle", "no_offer": true, "test_mode": true })
    );
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
    assert!(step("widget_total").await.as_str().unwrap().contains("3"));
    assert!(step("paid").await.as_str().unwrap().contains("Paid"));
    assert!(step("purchase_seen")
        .await
        .as_str()
        .unwrap()
        .contains("bought 1 × Kettle"));
    let mine = step("my_order").await;
    assert_eq!(
        mine,
        json!({ "paid": "Paid", "now": "Shipped", "detail": "CDEK: 1099887766", "seen_by_b": 0 })
    );
    assert_eq!(step("held_by_b").await, 3);
    assert!(step("declined").await.as_str().unwrap().contains("did not go through"));
    assert_eq!(step("released").await, 4);
    let (_, offer) = app
        .as_ref()
        .unwrap()
        .seller(Method::GET, &format!("/v1/offers/{oid}"), None)
        .await;
    assert_eq!(
        (offer["sold"].as_i64(), offer["held"].as_i64()),
        (Some(1), Some(0)),
        "{offer}"
    );
    assert!(step("refused").await.as_str().unwrap().contains("already hold"));
    assert_eq!(step("ticker").await, "Only today!");
    let added = step("stock_added").await;
    assert_eq!(added["left"], 9, "{added}");
    assert!(added["countdown_minutes"].as_i64().unwrap() >= 10, "{added}");
    step("stop_the_node").await;
    drop(app.take());
    assert!(step("reconnecting").await.as_str().unwrap().contains("Reconnecting"));
    assert!(browser.finished().await);
}

/// A browser script's run (`tests/js/<script>` under node, driving Debian's
/// chromium through playwright-core): one JSON line per step.
pub(crate) struct Browser {
    node: tokio::process::Child,
    lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    steps: Vec<Value>,
    shot: std::path::PathBuf,
}

impl Browser {
    pub(crate) fn start(script: &str, args: &[&str], name: &str) -> Browser {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/js");
        assert!(
            std::path::Path::new(dir).join("node_modules/playwright-core").exists(),
            "playwright-core is missing: ./scripts/test installs it"
        );
        let shot = std::env::temp_dir().join(format!("haul-{script}-{name}.png"));
        let mut node = tokio::process::Command::new("node")
            .arg(format!("{dir}/{script}"))
            .args(args)
            .env("HAUL_TEST_SCREENSHOT", &shot)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("node runs");
        let lines = BufReader::new(node.stdout.take().unwrap()).lines();
        Browser {
            node,
            lines,
            steps: Vec::new(),
            shot,
        }
    }

    /// The next step the script printed (`None` when it ended); a failed
    /// step fails the test.
    async fn next_step(&mut self) -> Option<Value> {
        let line = tokio::time::timeout(Duration::from_secs(70), self.lines.next_line())
            .await
            .unwrap_or_else(|_| panic!("the browser went quiet; saw {:?}", self.steps))
            .unwrap()?;
        let v: Value = serde_json::from_str(&line).unwrap();
        self.steps.push(v.clone());
        assert_ne!(
            v["step"],
            "error",
            "{:?} (screenshot: {})",
            self.steps,
            self.shot.display()
        );
        assert_ne!(v["step"], "page_error", "{:?}", self.steps);
        Some(v)
    }

    /// The value of the step `name` (steps before it are kept for messages).
    async fn step(&mut self, name: &str) -> Value {
        loop {
            let v = self
                .next_step()
                .await
                .unwrap_or_else(|| panic!("the browser script ended; saw {:?}", self.steps));
            if v["step"] == name {
                return v["value"].clone();
            }
        }
    }

    /// Every step to the script's end, which must be a success.
    pub(crate) async fn run_out(mut self) -> Vec<Value> {
        while self.next_step().await.is_some() {}
        assert!(self.finished().await, "{:?}", self.steps);
        self.steps
    }

    /// Whether the script ended well (within 15 s).
    async fn finished(&mut self) -> bool {
        let status = tokio::time::timeout(Duration::from_secs(15), self.node.wait())
            .await
            .unwrap()
            .unwrap();
        status.success()
    }
}

/// Every refusal of a reserve reads as a sentence on the viewer page, each
/// the server's own answer to the page: two units of one left, the last unit
/// taken by someone else, an offer ended, an offer not started (over the
/// limit is in the test above).
async fn the_viewer_page_names_every_refusal_in_a_real_browser(env: Env) {
    let app = TestApp::start(&env, &[]).await;
    let (sid, _, last_one) = app.live_offer(common::offer_body(2, 2)).await;
    let mut offers = Vec::new();
    for title in ["Kettle", "Teapot"] {
        let (st, lot) = app
            .seller(
                Method::POST,
                &format!("/v1/streams/{sid}/lots"),
                Some(json!({ "title": title })),
            )
            .await;
        assert_eq!(st, StatusCode::CREATED, "{lot}");
        let lid = lot["id"].as_str().unwrap();
        let (st, offer) = app
            .seller(
                Method::POST,
                &format!("/v1/lots/{lid}/offers"),
                Some(common::offer_body(5, 5)),
            )
            .await;
        assert_eq!(st, StatusCode::CREATED, "{offer}");
        offers.push(common::text(&offer, "id"));
    }
    let args = [&app.base, &sid, &app.key, &last_one, &offers[0], &offers[1]];
    let mut browser = Browser::start("refusals.mjs", &args.map(String::as_str), &sid);
    let said = [
        ("not_enough_stock", "Not that many left"),
        ("sold_out", "Sold out — someone was faster"),
        ("offer_ended", "This offer has ended"),
        ("offer_not_started", "This offer has not started yet"),
    ];
    for (code, sentence) in said {
        let shown = browser.step(code).await;
        assert!(shown.as_str().unwrap().contains(sentence), "{code}: {shown}");
    }
    browser.step("done").await;
    assert!(browser.finished().await);
}

/// The viewer page's buy button cannot be clickjacked: only the seller's
/// allowed origins may frame it, nobody when it has none.
async fn only_the_sellers_origins_may_frame_the_viewer_page(env: Env) {
    let app = TestApp::start(&env, &[]).await;
    let (sid, _, _) = app.live_offer(common::offer_body(1, 1)).await;
    let csp = async || {
        let page = app.http.get(format!("{}/watch/{sid}", app.base)).send().await.unwrap();
        assert_eq!(page.status(), StatusCode::OK);
        page.headers()["content-security-policy"].to_str().unwrap().to_owned()
    };
    assert!(csp().await.ends_with("frame-ancestors 'none'"), "{}", csp().await);
    let (st, _) = app
        .seller(
            Method::PUT,
            "/v1/widget-origins",
            Some(json!({ "origins": ["https://shop.example", "https://m.shop.example"] })),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    assert!(
        csp()
            .await
            .ends_with("frame-ancestors https://shop.example https://m.shop.example"),
        "{}",
        csp().await
    );
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

/// A seller's site on another origin (`localhost` versus Haul's `127.0.0.1`).
async fn host_site(haul: &str, session: &str) -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let html = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Shop</title>\
         <script src=\"{haul}/widget.js\"></script></head><body><h1>Kettle</h1>\
         <button id=\"buy\">Buy</button><script>\
         document.getElementById('buy').addEventListener('click', () => Haul.checkout({{ session: '{session}',\
           onSuccess: (s) => {{ document.body.dataset.result = s; }},\
           onFailure: (s) => {{ document.body.dataset.result = s; }},\
           onClose: () => {{ document.body.dataset.result = 'closed'; }} }}));\
         </script></body></html>"
    );
    let app = axum::Router::new().route(
        "/",
        axum::routing::get(move || async move { axum::response::Html(html) }),
    );
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://localhost:{port}"), server)
}

/// Runs the browser script against a host page with `card`; returns its steps.
async fn pay_in_browser(host: &str, card: &str, mode: &str, name: &str) -> Vec<Value> {
    pay_in_browser_with(host, card, mode, "sandbox", name).await
}

async fn pay_in_browser_with(host: &str, card: &str, mode: &str, acquirer: &str, name: &str) -> Vec<Value> {
    Browser::start("checkout.mjs", &[host, card, mode, acquirer], name)
        .run_out()
        .await
}

pub(crate) fn step(steps: &[Value], name: &str) -> Option<Value> {
    steps.iter().find(|v| v["step"] == name).map(|v| v["value"].clone())
}

/// The seller's webhook endpoint: what it received (id, timestamp, signature, body).
pub(crate) type Hooks = std::sync::Arc<std::sync::Mutex<Vec<(String, String, String, String)>>>;

pub(crate) async fn hook_endpoint() -> (String, Hooks) {
    let got: Hooks = Default::default();
    let store = got.clone();
    let app = axum::Router::new().route(
        "/hooks",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
            let store = store.clone();
            async move {
                let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
                store
                    .lock()
                    .unwrap()
                    .push((h("webhook-id"), h("webhook-timestamp"), h("webhook-signature"), body));
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, got)
}

/// The checkout overlay closes by its × button, by Escape on the shop's
/// page and by Escape inside the checkout frame; the shop hears `onClose`,
/// or how the payment ended when one was under way; a shop on an origin the
/// seller did not allow hears `origin_not_allowed`.
async fn the_checkout_overlay_closes_by_button_and_escape(env: Env) {
    let app = TestApp::start(&env, &[]).await;
    for mode in ["close-button", "escape", "escape-in-frame"] {
        let session = common::checkout_session(&app, 1000, "RUB").await;
        let (host, _server) = host_site(&app.base, &session).await;
        let (st, _) = app
            .seller(Method::PUT, "/v1/widget-origins", Some(json!({ "origins": [host] })))
            .await;
        assert_eq!(st, StatusCode::OK);
        let shot = format!("close-{session}");
        let steps = pay_in_browser(&host, "-", mode, &shot).await;
        assert_eq!(step(&steps, "result"), Some(json!("closed")), "{mode}: {steps:?}");
        assert_eq!(step(&steps, "overlay_closed"), Some(json!(true)), "{mode}: {steps:?}");
    }
    // Closed right after paying: the shop hears the server's `succeeded`,
    // not `onClose`.
    let session = common::checkout_session(&app, 1000, "RUB").await;
    let (host, _server) = host_site(&app.base, &session).await;
    app.seller(Method::PUT, "/v1/widget-origins", Some(json!({ "origins": [host] })))
        .await;
    let shot = format!("close-paying-{session}");
    let steps = pay_in_browser(&host, "4242 4242 4242 4242", "close-while-paying", &shot).await;
    assert_eq!(step(&steps, "result"), Some(json!("succeeded")), "{steps:?}");
    // A shop on an origin the seller did not allow: onFailure says so.
    let session = common::checkout_session(&app, 1000, "RUB").await;
    let (host, _server) = host_site(&app.base, &session).await;
    app.seller(
        Method::PUT,
        "/v1/widget-origins",
        Some(json!({ "origins": ["https://other.example"] })),
    )
    .await;
    let shot = format!("refused-{session}");
    let steps = pay_in_browser(&host, "-", "refused", &shot).await;
    assert_eq!(step(&steps, "result"), Some(json!("origin_not_allowed")), "{steps:?}");
    assert_eq!(step(&steps, "overlay_closed"), Some(json!(true)), "{steps:?}");
}

/// The same widget in live mode: no test cards, no "test mode", and only
/// the seller's live banks — none at all before one is connected.
async fn a_live_checkout_page_has_no_test_cards(env: Env) {
    use emulators::cloudpayments as cp;
    let bank = cp::Emulator::start().await;
    bank.site("pk_live_shop", "cp-secret", "", cp::Mode::Normal);
    let app = TestApp::start(&env, &[("HAUL_CLOUDPAYMENTS_URL", &bank.base)]).await;
    let (_, live) = app.live_key().await;
    let offered = async |session: &str, name: &str| {
        let (host, _server) = host_site(&app.base, session).await;
        for key in [&live, &app.key] {
            let (st, _) = app
                .call(
                    Method::PUT,
                    "/v1/widget-origins",
                    Some(key),
                    Some(json!({ "origins": [host] })),
                )
                .await;
            assert_eq!(st, StatusCode::OK);
        }
        let steps = pay_in_browser(&host, "-", "methods", name).await;
        step(&steps, "offered").unwrap_or_else(|| panic!("{steps:?}"))
    };
    let session = async |key: &str| common::checkout_session_as(&app, key, 250_000, "RUB").await;
    let live_session = session(&live).await;
    assert_eq!(
        offered(&live_session, "live-none").await,
        json!({ "test_mode": false, "methods": [], "none": true })
    );
    let (st, v) = app
        .call(
            Method::POST,
            "/v1/acquirers",
            Some(&live),
            Some(json!({ "acquirer": "cloudpayments", "account": "pk_live_shop", "secret": "cp-secret" })),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    assert_eq!(
        offered(&live_session, "live-bank").await,
        json!({ "test_mode": false, "methods": ["cloudpayments"], "none": false })
    );
    let test_session = session(&app.key).await;
    assert_eq!(
        offered(&test_session, "test").await,
        json!({ "test_mode": true, "methods": ["sandbox"], "none": false })
    );
}

async fn a_shop_on_another_origin_takes_a_payment_through_the_widget(env: Env) {
    let app = TestApp::start(
        &env,
        &[
            ("HAUL_SANDBOX_SECRET", "widget-test-secret-widget-test-secret"),
            ("HAUL_WEBHOOKS_ALLOW_PRIVATE", "true"),
        ],
    )
    .await;
    let (hook_url, hooks) = hook_endpoint().await;
    let (st, ep) = app
        .seller(
            Method::POST,
            "/v1/webhook-endpoints",
            Some(json!({ "url": hook_url, "event_types": ["order.paid"] })),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{ep}");
    let new_session = || async {
        let (st, s) = app
            .seller(
                Method::POST,
                "/v1/checkout/sessions",
                Some(json!({
                    "amount_minor": 259000, "currency": "RUB", "reference": "W-1",
                    "items": [{ "name": "Kettle", "quantity": 1, "price_minor": 259000, "vat": "vat20" }],
                    "success_url": "https://shop.example/ok", "cancel_url": "https://shop.example/",
                    "customer_email": "buyer@example.com" })),
            )
            .await;
        assert_eq!(st, StatusCode::CREATED, "{s}");
        common::text(&s, "id")
    };
    // The success card: the shop's page is told, and its webhook verifies.
    let session = new_session().await;
    let (host, _server) = host_site(&app.base, &session).await;
    let (st, _) = app
        .seller(Method::PUT, "/v1/widget-origins", Some(json!({ "origins": [host] })))
        .await;
    assert_eq!(st, StatusCode::OK);
    let shot = format!("checkout-{session}");
    let steps = pay_in_browser(&host, "4242 4242 4242 4242", "overlay", &shot).await;
    assert_eq!(step(&steps, "host_loaded"), Some(json!("object")), "{steps:?}");
    assert_eq!(step(&steps, "opened_as"), Some(json!("overlay")), "{steps:?}");
    assert!(
        step(&steps, "summary").unwrap().as_str().unwrap().contains("2"),
        "{steps:?}"
    );
    assert_eq!(step(&steps, "result"), Some(json!("succeeded")), "{steps:?}");
    assert_eq!(step(&steps, "overlay_closed"), Some(json!(true)), "{steps:?}");
    let (_, read) = app
        .seller(Method::GET, &format!("/v1/checkout/sessions/{session}"), None)
        .await;
    assert_eq!(read["state"], "succeeded");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let (id, ts, sig, body) = loop {
        if let Some(h) = hooks.lock().unwrap().first().cloned() {
            break h;
        }
        assert!(tokio::time::Instant::now() < deadline, "no order.paid webhook came");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(body.contains("order.paid") && body.contains(&common::text(&read, "order_id")));
    assert_eq!(
        common::official_verify(ep["secret"].as_str().unwrap(), &id, &ts, &sig, &body),
        "verified"
    );

    // A declined card: the shop's page hears of the failure.
    let declined = new_session().await;
    let (host2, _server2) = host_site(&app.base, &declined).await;
    let (st, _) = app
        .seller(
            Method::PUT,
            "/v1/widget-origins",
            Some(json!({ "origins": [host, host2] })),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    let steps = pay_in_browser(&host2, "4000 0000 0000 0002", "overlay", &shot).await;
    assert_eq!(step(&steps, "result"), Some(json!("failed")), "{steps:?}");
    let (_, read) = app
        .seller(Method::GET, &format!("/v1/checkout/sessions/{declined}"), None)
        .await;
    assert_eq!(read["state"], "failed");

    // On a phone-sized screen the checkout opens in a new tab, which tells
    // the shop's page (its opener) and is closed by the widget.
    let on_phone = new_session().await;
    let (host3, _server3) = host_site(&app.base, &on_phone).await;
    let (st, _) = app
        .seller(
            Method::PUT,
            "/v1/widget-origins",
            Some(json!({ "origins": [host, host2, host3] })),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    let steps = pay_in_browser(&host3, "4242 4242 4242 4242", "tab", &shot).await;
    assert_eq!(step(&steps, "opened_as"), Some(json!("tab")), "{steps:?}");
    assert_eq!(step(&steps, "result"), Some(json!("succeeded")), "{steps:?}");
    assert_eq!(step(&steps, "tab_closed"), Some(json!(true)), "{steps:?}");
    let (_, read) = app
        .seller(Method::GET, &format!("/v1/checkout/sessions/{on_phone}"), None)
        .await;
    assert_eq!(read["state"], "succeeded");
}

/// The widget offers the seller's enabled banks that take the currency;
/// the buyer pays on CloudPayments' page (its emulator) inside the overlay
/// and comes back to the outcome.
async fn the_widget_pays_through_a_sellers_bank(env: Env) {
    use emulators::{cloudpayments as cp, stripe as st, yookassa as yk};
    let bank = cp::Emulator::start().await;
    let (stripe, yookassa) = (st::Emulator::start().await, yk::Emulator::start().await);
    // Each bank knows the credentials (Haul proves them before connecting).
    bank.site("pk_widget", "cp-secret", "", cp::Mode::Normal);
    stripe.account("acct_w", "sk_test_w", "", "whsec_w");
    yookassa.shop("999", "off", "", yk::Mode::Normal);
    let app = TestApp::start(
        &env,
        &[
            ("HAUL_CLOUDPAYMENTS_URL", &bank.base),
            ("HAUL_STRIPE_URL", &stripe.base),
            ("HAUL_YOOKASSA_URL", &yookassa.api()),
        ],
    )
    .await;
    let mut notify = String::new();
    for body in [
        json!({ "acquirer": "cloudpayments", "account": "pk_widget", "secret": "cp-secret" }),
        json!({ "acquirer": "stripe", "account": "acct_w", "secret": "sk_test_w", "webhook_secret": "whsec_w" }),
        json!({ "acquirer": "yookassa", "account": "999", "secret": "off", "enabled": false }),
    ] {
        let (st, a) = app.seller(Method::POST, "/v1/acquirers", Some(body)).await;
        assert_eq!(st, StatusCode::CREATED, "{a}");
        if a["acquirer"] == "cloudpayments" {
            notify = a["notification_urls"]["pay"]
                .as_str()
                .unwrap()
                .trim_end_matches("/pay")
                .to_owned();
        }
    }
    bank.site("pk_widget", "cp-secret", &notify, cp::Mode::Normal);
    let (st, s) = app
        .seller(
            Method::POST,
            "/v1/checkout/sessions",
            Some(json!({
                "amount_minor": 149000, "currency": "RUB", "reference": "W-2",
                "items": [{ "name": "Lamp", "quantity": 1, "price_minor": 149000, "vat": "vat20" }],
                "success_url": "https://shop.example/ok", "cancel_url": "https://shop.example/",
                "customer_email": "buyer@example.com" })),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{s}");
    let session = common::text(&s, "id");
    let (host, _server) = host_site(&app.base, &session).await;
    let (st, _) = app
        .seller(Method::PUT, "/v1/widget-origins", Some(json!({ "origins": [host] })))
        .await;
    assert_eq!(st, StatusCode::OK);
    let shot = format!("bank-checkout-{session}");
    let steps = pay_in_browser_with(&host, cp::GOOD_CARD, "overlay", "cloudpayments", &shot).await;
    // Stripe does not take RUB and YooKassa is disabled: not offered.
    assert_eq!(
        step(&steps, "methods"),
        Some(json!([
            ["cloudpayments", "Pay with CloudPayments"],
            ["sandbox", "Pay by card (test mode)"]
        ])),
        "{steps:?}"
    );
    assert_eq!(step(&steps, "result"), Some(json!("succeeded")), "{steps:?}");
    let (_, read) = app
        .seller(Method::GET, &format!("/v1/checkout/sessions/{session}"), None)
        .await;
    assert_eq!(read["state"], "succeeded");
    assert_eq!(bank.bank.lock().unwrap().delivered.len(), 2, "Check and Pay");
}

on_both_backends!(
    the_widget_pays_through_a_sellers_bank,
    a_shop_on_another_origin_takes_a_payment_through_the_widget,
    the_viewer_page_sells_live_in_a_real_browser,
    only_the_sellers_origins_may_frame_the_viewer_page,
    pages_and_assets_are_served_with_safe_headers,
);

/// A stream purchase's checkout page asks the buyer's details and delivery
/// before any payment method shows: a wrong phone is named, the courier
/// adds an address and its price, the buyer pays; their next purchase's
/// form is filled with what they kept.
async fn the_checkout_page_asks_details_and_delivery_in_a_real_browser(env: Env) {
    let app = TestApp::start(&env, &[]).await;
    let settings = json!({
        "fields": { "name": "required", "phone": "required", "address": "required" },
        "delivery": [
            { "id": "courier", "name": "Courier", "kind": "shipping", "price_minor": 30000 },
            { "id": "pickup", "name": "Pickup point", "kind": "pickup", "price_minor": 0, "address": "Tverskaya 1" }
        ]
    });
    let (st, v) = app.seller(Method::PUT, "/v1/checkout-settings", Some(settings)).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let (_, _, oid) = app.live_offer(common::offer_body(5, 5)).await;
    let token = app.viewer_token("anna").await;
    let session = |request: &'static str| {
        let (app, token, oid) = (&app, token.clone(), oid.clone());
        async move {
            let (_, hold) = app.reserve(&token, &oid, 1, request).await;
            let order = app
                .order_for_hold(&token, &oid, hold["hold"]["id"].as_str().unwrap())
                .await;
            common::text(&order, "checkout_url")
        }
    };
    let first = session("r1").await;
    let steps = Browser::start("details.mjs", &[&first, "first"], "details-first")
        .run_out()
        .await;
    let asked = step(&steps, "asked").unwrap();
    assert_eq!(asked["methods"], 0, "no way to pay before the details: {asked}");
    assert!(asked["total"].as_str().is_some_and(|t| t.contains("490")), "{steps:?}");
    assert_eq!(step(&steps, "address_shown"), Some(json!(true)));
    let refused = step(&steps, "refused").unwrap();
    assert_eq!(refused["field"], "phone", "{refused}");
    assert!(refused["text"].as_str().unwrap().starts_with("Phone:"), "{refused}");
    let given = step(&steps, "given").unwrap();
    assert!(
        given["total"].as_str().unwrap().contains("790"),
        "1 490 + 300 delivery: {given}"
    );
    assert_eq!(given["lines"], 2, "{given}");
    // Kept in E.164, shown as it is written at home.
    assert!(
        given["summary"].as_str().unwrap().contains("+7 900 123-45-67"),
        "{given}"
    );
    assert!(step(&steps, "paid").unwrap().as_str().unwrap().contains("Paid"));
    let again = session("r2").await;
    let steps = Browser::start("details.mjs", &[&again, "again"], "details-again")
        .run_out()
        .await;
    assert_eq!(
        step(&steps, "prefilled"),
        Some(
            json!({ "name": "Anna Petrova", "phone": "+79001234567", "line1": "Arbat 1, apt 2",
                     "courier": true, "save": true })
        )
    );
}

/// The buyer's pages speak the buyer's language: Russian from a Russian
/// browser through watch, checkout and the sandbox's card page (amounts as
/// Russian writes them, the same on the server's page as in the browser's),
/// English from an English one though the seller's default is Russian, the
/// seller's default for a language Haul does not speak, and the buyer's own
/// pick over all of them.
async fn the_buyers_pages_speak_their_language_in_a_real_browser(env: Env) {
    let app = TestApp::start(&env, &[]).await;
    let (st, v) = app
        .seller(Method::PATCH, "/v1/settings", Some(json!({ "locale": "ru" })))
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let (sid, oid) = live_stream_with_offer(&app, "Распродажа", json!({ "title": "Чайник" }), 600).await;
    let (st, _) = app.seller(Method::POST, &format!("/v1/offers/{oid}/start"), None).await;
    assert_eq!(st, StatusCode::OK);

    // The server chooses: Content-Language and <html lang> say which.
    let watch = format!("{}/watch/{sid}", app.base);
    for (accept, want) in [
        ("ru-RU,ru;q=0.9", "ru"),
        ("en-GB,en;q=0.8", "en"),
        ("de-DE", "ru"),
        ("*", "ru"),
    ] {
        let r = app
            .http
            .get(&watch)
            .header("accept-language", accept)
            .send()
            .await
            .unwrap();
        assert_eq!(r.headers()["content-language"], want, "{accept}");
        assert_eq!(r.headers()["vary"], "Accept-Language");
        assert!(
            r.text().await.unwrap().contains(&format!("<html lang=\"{want}\">")),
            "{accept}"
        );
    }
    let r = app
        .http
        .get(format!("{watch}?lang=en"))
        .header("accept-language", "ru")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-language"], "en");

    let steps = Browser::start("language.mjs", &[&app.base, &sid], "language")
        .run_out()
        .await;
    let nbsp = |s: &str| s.replace('\u{a0}', " ");
    let ru = step(&steps, "ru_watch").unwrap();
    assert_eq!(
        ru,
        json!({ "lang": "ru", "price": "3\u{a0}490,00\u{a0}₽", "left": "Осталось: 5", "buy": "Купить",
                 "status": "В эфире", "badge": "ЭФИР" })
    );
    assert!(
        nbsp(step(&steps, "ru_held").unwrap().as_str().unwrap()).starts_with("Товар отложен для вас на 5 мин"),
        "{steps:?}"
    );
    let checkout = step(&steps, "ru_checkout").unwrap();
    assert_eq!(
        checkout,
        json!({ "frame_title": "Оформление заказа", "lang": "ru", "heading": "Оформление заказа",
                 "total": "3\u{a0}490,00\u{a0}₽", "pay": "Оплатить картой (тестовый режим)",
                 "back": "Вернуться в магазин" })
    );
    // The card page is the server's: its amount reads as the browser's does.
    let card = step(&steps, "ru_card_page").unwrap();
    assert_eq!(card["lang"], "ru");
    assert_eq!(
        card["button"],
        format!("Оплатить {}", checkout["total"].as_str().unwrap()),
        "{card}"
    );
    assert_eq!(card["heading"], card["button"]);
    assert_eq!(step(&steps, "ru_paid").unwrap(), "Оплачено — товар ваш. Спасибо!");
    let mine = step(&steps, "ru_my_order").unwrap();
    assert_eq!(mine["heading"], "Мои заказы");
    assert_eq!(mine["amount"], "3\u{a0}490,00\u{a0}₽");
    assert_eq!(mine["state"], "Оплачен");
    // A Russian date: a day, a Russian month, a year with "г.", a time.
    let date = nbsp(mine["date"].as_str().unwrap());
    let months = [
        "янв", "февр", "мар", "апр", "мая", "июн", "июл", "авг", "сент", "окт", "нояб", "дек",
    ];
    assert!(
        months.iter().any(|m| date.contains(m)) && date.contains(" г.") && date.contains(':'),
        "{date}"
    );

    assert_eq!(
        step(&steps, "en_watch").unwrap(),
        json!({ "lang": "en", "price": "₽3,490.00", "left": "4 left", "buy": "Buy", "status": "Live", "badge": "LIVE" })
    );
    assert_eq!(step(&steps, "de_watch").unwrap()["lang"], "ru", "the seller's default");
    assert_eq!(step(&steps, "de_picked_en").unwrap()["buy"], "Buy", "the buyer's pick");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_buyers_pages_speak_their_language_on_the_embedded_backend() {
    the_buyers_pages_speak_their_language_in_a_real_browser(Env::embedded().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_checkout_page_asks_details_on_the_embedded_backend() {
    the_checkout_page_asks_details_and_delivery_in_a_real_browser(Env::embedded().await).await;
}

/// The refusals come from the stock engine, whose Redis engine passes the
/// same conformance suite: one backend is enough for the page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_viewer_page_names_every_refusal_on_the_embedded_backend() {
    the_viewer_page_names_every_refusal_in_a_real_browser(Env::embedded().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_checkout_overlay_closes_on_the_embedded_backend() {
    the_checkout_overlay_closes_by_button_and_escape(Env::embedded().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_checkout_page_has_no_test_cards_on_the_embedded_backend() {
    a_live_checkout_page_has_no_test_cards(Env::embedded().await).await;
}
