//! Starts the whole application in-process, as `main` does, on 127.0.0.1:0.
//!
//! Two backends: `embedded` (a fresh SQLite file, in-process engines) and
//! `shared` (a fresh PostgreSQL database and a random Redis key prefix on the
//! real servers). Time is a manual clock the test moves.
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use gateway::app::Application;
use gateway::config::Config;
use gateway::realtime::publisher::Published;
use gateway::sellers::{self, Mode};
use gateway::state::AppState;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use streams::clock::{Clock, ManualClock, SystemClock};
use streams::ids::SellerId;
use streams::testing;
use tokio::sync::{broadcast, oneshot};

pub const TOKEN_SECRET: &str = "test-secret-test-secret-test-secret!";

/// Where a test's nodes keep their data.
#[derive(Clone)]
pub struct Env {
    pub db_url: String,
    pub redis: Option<(String, String)>,
    pub data_dir: String,
}

impl Env {
    pub async fn embedded() -> Env {
        let db_url = testing::fresh_sqlite();
        let data_dir = db_url
            .trim_start_matches("sqlite://")
            .trim_end_matches("/haul.db")
            .to_owned();
        Env {
            db_url,
            redis: None,
            data_dir,
        }
    }

    pub async fn shared() -> Env {
        let dir = std::env::temp_dir().join(format!("haul-test-{}", streams::ids::random_token(12)));
        Env {
            db_url: testing::fresh_postgres().await,
            redis: Some((testing::redis_url(), testing::redis_prefix())),
            data_dir: dir.display().to_string(),
        }
    }
}

pub struct TestApp {
    pub base: String,
    pub http: reqwest::Client,
    pub key: String,
    pub seller: SellerId,
    pub state: AppState,
    pub clock: ManualClock,
    stop: Option<oneshot::Sender<()>>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

fn config(env: &Env, extra: &[(&str, &str)]) -> Config {
    let mut vars: HashMap<String, String> = [
        ("HAUL_LISTEN", "127.0.0.1:0"),
        ("HAUL_DATABASE_URL", env.db_url.as_str()),
        ("HAUL_DATA_DIR", env.data_dir.as_str()),
        ("HAUL_TOKEN_SECRET", TOKEN_SECRET),
        ("HAUL_RATE_BUYER", "off"),
        ("HAUL_RATE_ADDR", "off"),
        ("HAUL_RATE_SIGNIN", "off"),
        ("HAUL_LOG", "warn"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    if let Some((url, prefix)) = &env.redis {
        vars.insert("HAUL_REDIS_URL".into(), url.clone());
        vars.insert("HAUL_REDIS_PREFIX".into(), prefix.clone());
    }
    // Every test client comes from 127.0.0.1: the per-address hold cap is
    // off unless a test turns it on.
    vars.insert("HAUL_HOLDS_PER_ADDR".into(), "off".into());
    for (k, v) in extra {
        vars.insert((*k).to_owned(), (*v).to_owned());
    }
    let mut c = Config::from_vars(vars).expect("test configuration is valid");
    c.demo = false;
    c
}

impl TestApp {
    /// Starts a node on `env` with a new seller, on a manual clock.
    pub async fn start(env: &Env, extra: &[(&str, &str)]) -> TestApp {
        let clock = ManualClock::new(SystemClock.now_ms());
        Self::start_with_clock(env, extra, clock).await
    }

    pub async fn start_with_clock(env: &Env, extra: &[(&str, &str)], clock: ManualClock) -> TestApp {
        let app = Application::build_with_clock(config(env, extra), Arc::new(clock.clone()))
            .await
            .expect("the application starts");
        let base = format!("http://{}", app.local_addr());
        let state = app.state().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(app.run_until_stopped(async move {
            let _ = stopped.await;
        }));
        let now = clock.now_ms();
        // Test mode, where the sandbox and its test cards are.
        let seller = sellers::create_seller(&state.pool, "Test shop", false, Mode::Test, now)
            .await
            .unwrap();
        let key = sellers::generate_key(Mode::Test);
        sellers::add_key(&state.pool, &seller, &key, now).await.unwrap();
        TestApp {
            base,
            http: reqwest::Client::new(),
            key,
            seller,
            state,
            clock,
            stop: Some(stop),
        }
    }

    /// Another seller on the same node.
    pub async fn other_seller_key(&self) -> String {
        let now = self.clock.now_ms();
        let seller = sellers::create_seller(&self.state.pool, "Other shop", false, Mode::Test, now)
            .await
            .unwrap();
        let key = sellers::generate_key(Mode::Test);
        sellers::add_key(&self.state.pool, &seller, &key, now).await.unwrap();
        key
    }

    /// A key of the live side of this app's seller account (made on first
    /// call), with the live row's id.
    pub async fn live_key(&self) -> (SellerId, String) {
        let now = self.clock.now_ms();
        let live = sellers::mode_of_account(&self.state.pool, &self.seller, Mode::Live, now)
            .await
            .unwrap()
            .expect("the account exists");
        let key = sellers::generate_key(Mode::Live);
        sellers::add_key(&self.state.pool, &live, &key, now).await.unwrap();
        (live, key)
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        auth: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.http.request(method, format!("{}{}", self.base, path));
        if let Some(a) = auth {
            req = req.bearer_auth(a);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request sent");
        let status = resp.status();
        let text = resp.text().await.unwrap();
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, value)
    }

    /// Seller call with this app's key.
    pub async fn seller(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        self.call(method, path, Some(&self.key), body).await
    }

    /// Waits (up to 10 s) for the node's metrics to contain `line`
    /// (workers count after they act); the metrics text.
    pub async fn metrics_until(&self, line: &str) -> String {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let m = self.metrics().await;
            if m.contains(line) {
                return m;
            }
            assert!(tokio::time::Instant::now() < deadline, "never {line:?}: {m}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A signed-in viewer's token (the seller mints it, as a shop's site does).
    pub async fn viewer_token(&self, viewer: &str) -> String {
        let (st, t) = self
            .seller(Method::POST, "/v1/viewer-tokens", Some(json!({ "viewer_id": viewer })))
            .await;
        assert_eq!(st, StatusCode::CREATED, "{t}");
        text(&t, "token")
    }

    /// The buyer's order for a hold (its checkout session with it).
    pub async fn order_for_hold(&self, token: &str, offer: &str, hold: &str) -> Value {
        let (st, order) = self
            .call(
                Method::POST,
                &format!("/v1/offers/{offer}/holds/{hold}/order"),
                Some(token),
                None,
            )
            .await;
        assert_eq!(st, StatusCode::CREATED, "{order}");
        order
    }

    /// The buyer starts paying its order at `acquirer`; the attempt's answer.
    pub async fn start_attempt(&self, token: &str, order: &str, acquirer: &str) -> Value {
        let (st, attempt) = self
            .call(
                Method::POST,
                &format!("/v1/orders/{order}/attempts"),
                Some(token),
                Some(json!({ "acquirer": acquirer })),
            )
            .await;
        assert_eq!(st, StatusCode::CREATED, "{attempt}");
        attempt
    }

    /// Polls the buyer's order until `pred` holds (10 s at most).
    pub async fn order_until(&self, order: &str, token: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let (_, v) = self
                .call(Method::GET, &format!("/v1/orders/{order}"), Some(token), None)
                .await;
            if pred(&v) {
                return v;
            }
            assert!(tokio::time::Instant::now() < deadline, "order never got there: {v}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The node's Prometheus text.
    pub async fn metrics(&self) -> String {
        self.http
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    pub async fn anonymous_viewer(&self) -> String {
        let (status, v) = self.call(Method::POST, "/v1/viewers/anonymous", None, None).await;
        assert_eq!(status, StatusCode::CREATED, "{v}");
        text(&v, "token")
    }

    pub async fn reserve(&self, token: &str, offer: &str, quantity: i64, request_id: &str) -> (StatusCode, Value) {
        self.call(
            Method::POST,
            &format!("/v1/offers/{offer}/reserve"),
            Some(token),
            Some(json!({ "quantity": quantity, "request_id": request_id })),
        )
        .await
    }

    /// A live stream with one lot and a started offer. Returns (stream, lot, offer) ids.
    pub async fn live_offer(&self, offer: Value) -> (String, String, String) {
        self.live_offer_as(&self.key, offer).await
    }

    /// The same, made with the API key `key`.
    pub async fn live_offer_as(&self, key: &str, offer: Value) -> (String, String, String) {
        let (st, s) = self
            .call(Method::POST, "/v1/streams", Some(key), Some(json!({ "title": "Sale" })))
            .await;
        assert_eq!(st, StatusCode::CREATED, "{s}");
        let sid = text(&s, "id");
        let (st, v) = self
            .call(Method::POST, &format!("/v1/streams/{sid}/live"), Some(key), None)
            .await;
        assert_eq!(st, StatusCode::OK, "{v}");
        let (st, l) = self
            .call(
                Method::POST,
                &format!("/v1/streams/{sid}/lots"),
                Some(key),
                Some(json!({ "title": "Mug" })),
            )
            .await;
        assert_eq!(st, StatusCode::CREATED, "{l}");
        let lid = text(&l, "id");
        let (st, o) = self
            .call(Method::POST, &format!("/v1/lots/{lid}/offers"), Some(key), Some(offer))
            .await;
        assert_eq!(st, StatusCode::CREATED, "{o}");
        let oid = text(&o, "id");
        let (st, v) = self
            .call(Method::POST, &format!("/v1/offers/{oid}/start"), Some(key), None)
            .await;
        assert_eq!(st, StatusCode::OK, "{v}");
        (sid, lid, oid)
    }

    /// The streamer sends a note to everyone watching.
    pub async fn message(&self, sid: &str, text: &str) {
        let (st, v) = self
            .seller(
                Method::POST,
                &format!("/v1/streams/{sid}/messages"),
                Some(json!({ "text": text })),
            )
            .await;
        assert_eq!(st, StatusCode::ACCEPTED, "{v}");
    }

    pub fn events(&self) -> broadcast::Receiver<Arc<Published>> {
        self.state.hub.subscribe()
    }
}

/// A loopback port free right now (for a server a test starts).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The string at `key` of a JSON answer (panics, showing the answer, when
/// it is not one).
pub fn text(v: &Value, key: &str) -> String {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} is not a string in {v}"))
        .to_owned()
}

/// A typical offer body.
pub fn offer_body(quantity: i64, limit: i64) -> Value {
    json!({ "price_minor": 149000, "currency": "RUB", "quantity": quantity, "per_buyer_limit": limit,
            "duration_seconds": 60, "hold_ttl_seconds": 30 })
}

/// Waits (at most 10 s) for an event whose JSON satisfies `pred`.
pub async fn wait_for_event(rx: &mut broadcast::Receiver<Arc<Published>>, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let next = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .expect("the expected event did not come within 10 s");
        if let Ok(p) = next {
            let v: Value = serde_json::from_str(&p.data).unwrap();
            if pred(&v) {
                return v;
            }
        }
    }
}

/// Runs each listed test on both backends.
#[macro_export]
macro_rules! on_both_backends {
    ($($test:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test($crate::common::Env::embedded().await).await;
                }
            )*
        }
        mod shared {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test($crate::common::Env::shared().await).await;
                }
            )*
        }
    };
}

/// The test virtualenv's Python (with the official SDKs), made by ./scripts/test.
pub fn python() -> String {
    std::env::var("HAUL_TEST_PYTHON")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../target/test-venv/bin/python").to_owned())
}

/// Verifies a webhook with the official `standardwebhooks` library (which checks the timestamp against
/// the real clock; the test app's clock starts at the real time).
pub fn official_verify(secret: &str, id: &str, ts: &str, sig: &str, body: &str) -> String {
    let script = r#"
import sys
from standardwebhooks.webhooks import Webhook
secret, id_, ts, sig, body = sys.argv[1:6]
Webhook(secret).verify(body, {"webhook-id": id_, "webhook-timestamp": ts, "webhook-signature": sig})
print("verified")
"#;
    let out = std::process::Command::new(python())
        .args(["-c", script, secret, id, ts, sig, body])
        .output()
        .expect("python runs");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout).trim(),
        String::from_utf8_lossy(&out.stderr).lines().last().unwrap_or("")
    )
}

/// A checkout session of two equal receipt lines summing to `amount`,
/// with the buyer's email (banks that fiscalize need a contact).
pub async fn checkout_session(app: &TestApp, amount: i64, currency: &str) -> String {
    checkout_session_as(app, &app.key, amount, currency).await
}

/// The same, made with the API key `key` (another mode, say).
pub async fn checkout_session_as(app: &TestApp, key: &str, amount: i64, currency: &str) -> String {
    let (st, s) = app
        .call(
            Method::POST,
            "/v1/checkout/sessions",
            Some(key),
            Some(json!({
                "amount_minor": amount, "currency": currency, "reference": "C-1",
                "items": [{ "name": "Kettle", "quantity": 2, "price_minor": amount / 2, "vat": "vat20" }],
                "success_url": "https://shop.example/ok", "cancel_url": "https://shop.example/",
                "customer_email": "buyer@example.com" })),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{s}");
    text(&s, "id")
}

/// The buyer starts paying a session at `acquirer` (as the checkout page does).
pub async fn pay_session(app: &TestApp, session: &str, acquirer: &str) -> (StatusCode, Value) {
    app.call(
        Method::POST,
        &format!("/v1/checkout/sessions/{session}/attempts"),
        None,
        Some(json!({ "acquirer": acquirer })),
    )
    .await
}

/// Waits (up to 10 s) for a session to reach `want`; its last reading.
pub async fn session_state_until(app: &TestApp, session: &str, want: &str) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_, v) = app
            .seller(Method::GET, &format!("/v1/checkout/sessions/{session}"), None)
            .await;
        if v["state"] == want {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "never {want}: {v}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Pays on the sandbox's card page (an attempt's `redirect_url`) with the
/// card that succeeds.
pub async fn pay_on_sandbox_page(app: &TestApp, page: &str) {
    let r = app
        .http
        .post(page)
        .form(&[("number", "4242424242424242"), ("expiry", "12/39"), ("cvc", "123")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

/// Submits a card number on a bank emulator's hosted page.
pub async fn submit_card(app: &TestApp, page: &str, number: &str) -> (StatusCode, String) {
    let r = app.http.post(page).form(&[("number", number)]).send().await.unwrap();
    (r.status(), r.text().await.unwrap())
}
