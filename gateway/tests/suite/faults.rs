//! Faults: the real servers under a node go away and come back. A node's
//! own Redis (a `redis-server` this test starts on a free port) is killed
//! while buyers reserve (one at a time and a crowd at once): every answer
//! is quick and clear (503 with
//! `Retry-After`, `/readyz` not ready) instead of hanging in a reconnect
//! backoff, and selling resumes as soon as Redis answers again — from the
//! record, with no unit sold twice.

use std::time::{Duration, Instant};

use crate::common;

use common::{Env, TestApp};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tokio::process::{Child, Command};

/// A throwaway Redis on `port` (nothing saved), up when this returns.
async fn redis_on(port: u16) -> Child {
    let child = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("redis-server (Debian's redis, started by ./scripts/test's checks)");
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return child;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("redis-server did not start on {port}");
}

/// A request that must answer within `bound` (a hang is the failure).
async fn answered(
    app: &TestApp,
    method: Method,
    path: &str,
    auth: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value, Duration, Option<String>) {
    let bound = Duration::from_secs(5);
    let started = Instant::now();
    let mut req = app.http.request(method, format!("{}{path}", app.base));
    if let Some(a) = auth {
        req = req.bearer_auth(a);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = tokio::time::timeout(bound, req.send())
        .await
        .unwrap_or_else(|_| panic!("{path} did not answer within {bound:?}"))
        .unwrap();
    let status = resp.status();
    let retry = resp
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    let v = resp.json::<Value>().await.unwrap_or(Value::Null);
    (status, v, started.elapsed(), retry)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_outage_answers_fast_and_selling_resumes_when_it_returns() {
    let port = common::free_port();
    let mut redis = redis_on(port).await;
    let env = Env::shared().await;
    let url = format!("redis://127.0.0.1:{port}");
    let app = TestApp::start(&env, &[("HAUL_REDIS_URL", &url)]).await;
    let (_, _, oid) = app.live_offer(common::offer_body(10, 10)).await;
    let buyer = app.viewer_token("ann").await;
    let reserve = |n: usize| {
        let app = &app;
        let buyer = buyer.clone();
        let oid = oid.clone();
        async move {
            answered(
                app,
                Method::POST,
                &format!("/v1/offers/{oid}/reserve"),
                Some(&buyer),
                Some(json!({ "quantity": 1, "request_id": format!("r{n}") })),
            )
            .await
        }
    };
    let (st, v, _, _) = reserve(0).await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let hold = v["hold"]["id"].as_str().unwrap().to_owned();
    let (st, order, _, _) = answered(
        &app,
        Method::POST,
        &format!("/v1/offers/{oid}/holds/{hold}/order"),
        Some(&buyer),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{order}");

    // Redis hangs (stopped, as if cut off): answers wait no longer than
    // HAUL_REDIS_TIMEOUT_MS, then say 503; it wakes and selling goes on.
    let pid = redis.id().unwrap().to_string();
    let signal = |sig: &'static str| {
        let pid = pid.clone();
        async move {
            let st = Command::new("kill").args([sig, &pid]).status().await.unwrap();
            assert!(st.success(), "kill {sig} {pid}");
        }
    };
    signal("-STOP").await;
    let (st, v, took, _) = reserve(100).await;
    assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    eprintln!("reserve with Redis stopped answered in {took:?}");
    signal("-CONT").await;
    let mut woke = false;
    for n in 101..200 {
        let (st, v, _, _) = reserve(n).await;
        if st == StatusCode::CREATED {
            woke = true;
            break;
        }
        assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE, "{v}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(woke, "selling went on once Redis woke");

    // Redis dies: every stock operation and the readiness check answer at
    // once, again and again, for as long as it is away.
    redis.kill().await.unwrap();
    for n in 1..=5 {
        let (st, v, took, retry) = reserve(n).await;
        assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE, "{v}");
        assert_eq!(retry.as_deref(), Some("1"), "{v}");
        eprintln!("reserve {n} with Redis down answered in {took:?}");
        let (st, v, took, _) = answered(&app, Method::GET, "/readyz", None, None).await;
        assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE, "{v}");
        eprintln!("readyz with Redis down answered in {took:?}");
    }
    // A crowd of buyers at once: each hears 503 at once, none hangs.
    let crowd = futures_util::future::join_all((200..300).map(&reserve)).await;
    for (st, v, _, _) in &crowd {
        assert_eq!(*st, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    }
    let slowest = crowd.iter().map(|(_, _, took, _)| *took).max().unwrap();
    eprintln!("100 concurrent reserves with Redis down: the slowest answered in {slowest:?}");
    // Reading the record still works.
    let (st, v, _, _) = answered(
        &app,
        Method::GET,
        &format!("/v1/orders/{}", common::text(&order, "id")),
        Some(&buyer),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{v}");

    // Redis comes back, empty: the offer is rebuilt from the record and
    // selling resumes; the held unit whose hold vanished is not sold twice.
    let _redis = redis_on(port).await;
    let back = Instant::now();
    let mut resumed = None;
    for n in 10..100 {
        let (st, v, _, _) = reserve(n).await;
        if st == StatusCode::CREATED {
            resumed = Some(v);
            break;
        }
        assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE, "{v}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let v = resumed.expect("selling resumed once Redis answered");
    eprintln!("selling resumed {:?} after Redis was back", back.elapsed());
    assert!(v["units_left"].as_i64().unwrap() <= 9, "{v}");
    let (st, v, _, _) = answered(&app, Method::GET, "/readyz", None, None).await;
    assert_eq!(st, StatusCode::OK, "{v}");
}

/// A TCP proxy this test controls between a node and PostgreSQL: `cut`
/// drops every connection and refuses new ones (a restart, or the node cut
/// off); `restore` listens again on the same port.
struct Proxy {
    port: u16,
    target: String,
    tasks: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Proxy {
    async fn start(target: String) -> Proxy {
        let p = Proxy {
            port: common::free_port(),
            target,
            tasks: Default::default(),
        };
        p.restore().await;
        p
    }

    async fn restore(&self) {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", self.port)).await.unwrap();
        let (target, tasks) = (self.target.clone(), self.tasks.clone());
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let target = target.clone();
                let pipe = tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                tasks.lock().unwrap().push(pipe);
            }
        });
        self.tasks.lock().unwrap().push(accept);
    }

    /// Returns once every connection is closed and the port refuses.
    async fn cut(&self) {
        let tasks: Vec<_> = self.tasks.lock().unwrap().drain(..).collect();
        for t in &tasks {
            t.abort();
        }
        for t in tasks {
            let _ = t.await;
        }
        // A pipe accepted while the listener was being stopped.
        let late: Vec<_> = self.tasks.lock().unwrap().drain(..).collect();
        for t in late {
            t.abort();
            let _ = t.await;
        }
    }
}

/// PostgreSQL goes away under a node (every connection dropped, new ones
/// refused) and comes back: requests that need it answer 503 with
/// `Retry-After` within HAUL_DB_TIMEOUT_MS instead of queueing, `/readyz`
/// says not ready, and the first requests after it is back are served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_outage_answers_fast_and_service_resumes_when_it_returns() {
    let env = Env::shared().await;
    let (head, rest) = env.db_url.split_once('@').expect("a postgres URL with a user");
    let (target, db) = rest.split_once('/').expect("a database in the URL");
    let proxy = Proxy::start(target.to_owned()).await;
    let env = Env {
        db_url: format!("{head}@127.0.0.1:{}/{db}", proxy.port),
        ..env
    };
    let app = TestApp::start(&env, &[]).await;
    let (st, v, _, _) = answered(&app, Method::GET, "/v1/streams", Some(&app.key), None).await;
    assert_eq!(st, StatusCode::OK, "{v}");

    proxy.cut().await;
    for _ in 0..3 {
        let (st, v, took, retry) = answered(&app, Method::GET, "/v1/streams", Some(&app.key), None).await;
        assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE, "{v}");
        assert_eq!(retry.as_deref(), Some("1"));
        eprintln!("a seller call with PostgreSQL away answered in {took:?}");
        let (st, v, took, _) = answered(&app, Method::GET, "/readyz", None, None).await;
        assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE, "{v}");
        eprintln!("readyz with PostgreSQL away answered in {took:?}");
    }

    proxy.restore().await;
    let back = Instant::now();
    let mut served = false;
    for _ in 0..100 {
        let (st, v, _, _) = answered(&app, Method::GET, "/v1/streams", Some(&app.key), None).await;
        if st == StatusCode::OK {
            served = true;
            break;
        }
        assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE, "{v}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(served, "served again once PostgreSQL was back");
    eprintln!("served again {:?} after PostgreSQL was back", back.elapsed());
    let (st, v, _, _) = answered(&app, Method::GET, "/readyz", None, None).await;
    assert_eq!(st, StatusCode::OK, "{v}");
}

/// The fault suite's short version (`loadtest faults`, whose long run the
/// README shows): three scenarios against real processes — two `haul`
/// nodes of this build behind a balancer, a private PostgreSQL cluster and
/// Redis — with buyers paying once, twice and late while a node is killed,
/// Redis shut down without saving and PostgreSQL crashed; the independent
/// checker finds no broken promise.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_short_fault_suite_finds_every_promise_kept() {
    let args: Vec<String> = [
        "--short",
        "--seconds",
        "9",
        "--scenario",
        "node-kill,redis-shutdown,postgres-restart",
        "--haul",
        env!("CARGO_BIN_EXE_haul"),
    ]
    .map(String::from)
    .to_vec();
    let o = loadtest::faults::parse(&args).expect("options");
    let kept = loadtest::faults::run(o).await.expect("the scenarios ran");
    assert!(kept, "the checker found violations (printed above)");
}
