//! Operations: health, readiness, metrics, the OpenAPI document, the command
//! line, and the embedded demo.

use crate::common;

use std::process::Command;

use common::{Env, TestApp};
use gateway::http::openapi::OPERATIONS;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

#[tokio::test]
async fn health_and_readiness_answer() {
    let app = TestApp::start(&Env::embedded().await, &[]).await;
    let (st, _) = app.call(Method::GET, "/healthz", None, None).await;
    assert_eq!(st, StatusCode::OK);
    let (st, v) = app.call(Method::GET, "/readyz", None, None).await;
    assert_eq!(
        (st, v["database"].as_str(), v["stock_engine"].as_str()),
        (StatusCode::OK, Some("ok"), Some("ok"))
    );
}

#[tokio::test]
async fn readiness_fails_when_the_database_is_gone() {
    let app = TestApp::start(&Env::embedded().await, &[]).await;
    app.state.pool.close().await;
    let (st, v) = app.call(Method::GET, "/readyz", None, None).await;
    assert_eq!(
        (st, v["database"].as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, Some("unavailable"))
    );
    let (st, v) = app.seller(Method::GET, "/v1/streams", None).await;
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, Some("unavailable"))
    );
}

#[tokio::test]
async fn metrics_are_in_prometheus_text_format() {
    let app = TestApp::start(&Env::embedded().await, &[]).await;
    app.call(Method::GET, "/healthz", None, None).await;
    let resp = app.http.get(format!("{}/metrics", app.base)).send().await.unwrap();
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = resp.text().await.unwrap();
    assert!(
        text.contains("haul_http_requests_total{route=\"/healthz\",method=\"GET\",status=\"200\"} 1"),
        "{text}"
    );
    assert!(text.contains("haul_holds_live 0"));
    assert!(text.contains("haul_viewer_connections 0"), "{text}");
    assert!(text.contains("haul_viewer_subscriptions 0"), "{text}");
    assert!(text.contains("# TYPE haul_reserve_duration_seconds histogram"));
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let (_, value) = line.rsplit_once(' ').expect("name value");
        value
            .parse::<f64>()
            .unwrap_or_else(|_| panic!("bad sample line {line:?}"));
    }
}

#[tokio::test]
async fn every_documented_operation_is_routed() {
    let app = TestApp::start(&Env::embedded().await, &[]).await;
    let (st, doc) = app.call(Method::GET, "/openapi.json", None, None).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(doc["openapi"], "3.1.0");
    for op in OPERATIONS {
        assert!(
            doc["paths"][op.path][op.method].is_object(),
            "{} {} missing",
            op.method,
            op.path
        );
        let path = op.path.replace("{id}", "x").replace("{hold}", "x");
        let method = Method::from_bytes(op.method.to_uppercase().as_bytes()).unwrap();
        let (_, v) = app.call(method, &path, None, None).await;
        let code = v["error"]["code"].as_str().unwrap_or("");
        let message = v["error"]["message"].as_str().unwrap_or("");
        assert!(
            code != "method_not_allowed" && message != "route not found",
            "{} {} is not routed",
            op.method,
            op.path
        );
    }
}

/// The OpenAPI document passes the `openapi-spec-validator` library (PyPI),
/// path parameters and references included.
#[tokio::test]
async fn the_openapi_document_validates() {
    let app = TestApp::start(&Env::embedded().await, &[]).await;
    let (st, doc) = app.call(Method::GET, "/openapi.json", None, None).await;
    assert_eq!(st, StatusCode::OK);
    let script = "import json, sys\n\
                  from openapi_spec_validator import validate\n\
                  validate(json.load(sys.stdin))\n\
                  print('valid')";
    let mut child = Command::new(common::python())
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the test virtualenv's python (./scripts/test makes it)");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(doc.to_string().as_bytes()).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "valid",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Schemathesis (PyPI) generates requests from the OpenAPI document —
/// valid, invalid, wrong methods — and checks every answer against it: no
/// 5xx, every status, content type and body as documented, and 405 with
/// `Allow` for a method a path does not take. The banks are emulators
/// (their refusals are 4xx); a fixed seed makes a failure reproducible.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_server_error_and_nothing_off_the_document() {
    use crate::emulators::{cloudpayments as cp, stripe as st, tbank as tb, yookassa as yk};
    let (cp, st, tb, yk) = (
        cp::Emulator::start().await,
        st::Emulator::start().await,
        tb::Emulator::start().await,
        yk::Emulator::start().await,
    );
    let app = TestApp::start(
        &Env::embedded().await,
        &[
            ("HAUL_CLOUDPAYMENTS_URL", &cp.base),
            ("HAUL_STRIPE_URL", &st.base),
            ("HAUL_TBANK_URL", &tb.api()),
            ("HAUL_YOOKASSA_URL", &yk.api()),
        ],
    )
    .await;
    // Something to find: a live offer, a session.
    app.live_offer(common::offer_body(5, 1)).await;
    common::checkout_session(&app, 1000, "RUB").await;
    let python = std::path::PathBuf::from(common::python());
    let schemathesis = python.with_file_name("schemathesis");
    let run = tokio::process::Command::new(&schemathesis)
        .args([
            "run",
            &format!("{}/openapi.json", app.base),
            "-H",
            &format!("Authorization: Bearer {}", app.key),
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,\
             response_schema_conformance,unsupported_method",
            "--max-examples",
            "20",
            "--workers",
            "2",
            "--seed",
            "1",
        ])
        .env("NO_COLOR", "1")
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(std::time::Duration::from_secs(600), run)
        .await
        .expect("schemathesis finishes within 10 minutes")
        .expect("the test virtualenv's schemathesis (./scripts/test installs it)");
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "schemathesis found answers off the document:\n{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(report.contains("Tested:"), "{report}");
}

#[tokio::test]
async fn request_ids_are_echoed_or_made() {
    let app = TestApp::start(&Env::embedded().await, &[]).await;
    let resp = app
        .http
        .get(format!("{}/healthz", app.base))
        .header("x-request-id", "abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-request-id"], "abc-123");
    let resp = app.http.get(format!("{}/healthz", app.base)).send().await.unwrap();
    assert_eq!(resp.headers()["x-request-id"].len(), 16);
}

fn haul(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_haul"));
    cmd.args(args);
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("HAUL_")) {
        cmd.env_remove(k);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("haul runs")
}

#[test]
fn help_lists_every_variable() {
    let out = haul(&["--help"], &[]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for v in gateway::config::VARIABLES {
        assert!(text.contains(v.name), "{} missing from --help", v.name);
    }
}

#[test]
fn a_bad_variable_is_one_clear_line_and_a_nonzero_exit() {
    let out = haul(&[], &[("HAUL_LISTEN", "localhost")]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("HAUL_LISTEN"), "{err}");
    let out = haul(&[], &[("HAUL_DATABASE_URL", "mysql://root@localhost/x")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8(out.stderr).unwrap().contains("HAUL_DATABASE_URL"));
    let out = haul(&["frobnicate"], &[]);
    assert_eq!(out.status.code(), Some(2));
}

/// Two processes on one embedded data directory would each keep their own
/// stock: the second refuses to start, in one line naming the directory and
/// the process that has it.
#[tokio::test]
async fn a_second_process_on_an_embedded_data_directory_refuses_to_start() {
    let env = Env::embedded().await;
    let _running = TestApp::start(&env, &[]).await;
    let out = haul(
        &["--no-demo"],
        &[
            ("HAUL_DATABASE_URL", &env.db_url),
            ("HAUL_DATA_DIR", &env.data_dir),
            ("HAUL_LISTEN", "127.0.0.1:0"),
        ],
    );
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains(&env.data_dir), "{err}");
    assert!(err.contains(&format!("pid {}", std::process::id())), "{err}");
}

/// What haul writes into its data directory only its owner can read.
#[cfg(unix)]
#[tokio::test]
async fn the_data_directory_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::embedded().await;
    let _app = TestApp::start(&env, &[]).await;
    let mut seen = 0;
    for entry in std::fs::read_dir(&env.data_dir).unwrap() {
        let entry = entry.unwrap();
        let mode = entry.metadata().unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", entry.path().display());
        seen += 1;
    }
    assert!(seen >= 3, "haul.db, its lock and its secrets");
}

#[test]
fn a_bad_log_filter_is_refused_like_any_bad_value() {
    let out = haul(&[], &[("HAUL_LOG", "bad===")]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("HAUL_LOG"), "{err}");
}

/// A Redis or database that does not answer stops the start within a few
/// seconds, in one line naming the variable (not a silent hang).
#[test]
fn unreachable_servers_stop_the_start_naming_the_variable() {
    let dir = std::env::temp_dir().join(format!("haul-unreachable-{}", streams::ids::random_token(8)));
    let dir = dir.display().to_string();
    for (variable, vars) in [
        ("HAUL_REDIS_URL", vec![("HAUL_REDIS_URL", "redis://127.0.0.1:1")]),
        (
            "HAUL_DATABASE_URL",
            vec![
                ("HAUL_DATABASE_URL", "postgres://haul@127.0.0.1:1/haul"),
                ("HAUL_REDIS_URL", "redis://127.0.0.1:1"),
            ],
        ),
    ] {
        let started = std::time::Instant::now();
        let mut env = vec![("HAUL_DATA_DIR", dir.as_str()), ("HAUL_LISTEN", "127.0.0.1:0")];
        env.extend(vars);
        let out = haul(&["--no-demo"], &env);
        assert!(!out.status.success());
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "{variable}: it hung"
        );
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        assert!(err.contains(variable), "{err}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn seller_create_prints_a_live_and_a_test_key_that_see_apart() {
    let env = Env::embedded().await;
    let out = haul(
        &["seller", "create", "--name", "Corner shop"],
        &[("HAUL_DATABASE_URL", &env.db_url)],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let line = |name: &str| line_of(&text, name);
    let (seller, live, test) = (line("seller_id"), line("live_key"), line("test_key"));
    assert!(live.starts_with("hk_live_") && test.starts_with("hk_test_"), "{text}");
    let app = TestApp::start(&env, &[]).await;
    // A stream made in test mode is test mode's alone.
    let (st, made) = app
        .call(
            Method::POST,
            "/v1/streams",
            Some(&test),
            Some(json!({ "title": "Rehearsal" })),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{made}");
    assert_eq!(made["livemode"], json!(false));
    let path = format!("/v1/streams/{}", common::text(&made, "id"));
    let (st, _) = app.call(Method::GET, &path, Some(&live), None).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, list) = app.call(Method::GET, "/v1/streams", Some(&live), None).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(list["data"], json!([]));
    assert_eq!(list["livemode"], json!(true));
    let (st, list) = app.call(Method::GET, "/v1/streams", Some(&test), None).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(list["data"][0]["livemode"], json!(false), "{list}");

    // Another key for one mode of the same account sees that mode's objects.
    let out = haul(
        &["seller", "key", "--seller", &seller, "--mode", "test"],
        &[("HAUL_DATABASE_URL", &env.db_url)],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let second = line_of(&text, "test_key");
    assert!(second.starts_with("hk_test_") && second != test, "{text}");
    let (st, _) = app.call(Method::GET, &path, Some(&second), None).await;
    assert_eq!(st, StatusCode::OK);
    for bad in [
        vec!["seller", "key", "--seller", &seller, "--mode", "staging"],
        vec![
            "seller",
            "key",
            "--seller",
            "sel_nobody0000000000000000",
            "--mode",
            "live",
        ],
    ] {
        let out = haul(&bad, &[("HAUL_DATABASE_URL", &env.db_url)]);
        assert!(!out.status.success(), "{bad:?}");
    }
}

fn line_of(text: &str, name: &str) -> String {
    text.lines()
        .find_map(|l| l.strip_prefix(name))
        .unwrap_or_else(|| panic!("{name} in {text}"))
        .trim()
        .to_owned()
}

#[tokio::test]
async fn the_embedded_demo_creates_a_live_sale_once() {
    let env = Env::embedded().await;
    let key = "hk_test_demokey0000000000000000000001";
    let vars = [("HAUL_DEMO_API_KEY", key)];
    let mut config = gateway::config::Config::from_vars(
        [
            ("HAUL_LISTEN", "127.0.0.1:0"),
            ("HAUL_DATABASE_URL", env.db_url.as_str()),
            ("HAUL_DATA_DIR", env.data_dir.as_str()),
        ]
        .into_iter()
        .chain(vars)
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect(),
    )
    .unwrap();
    assert!(config.demo, "demo is on for the embedded setup");
    let app = gateway::app::Application::build(config.clone()).await.unwrap();
    let demo = app.demo().unwrap().clone();
    let state = app.state().clone();
    let base = format!("http://{}", app.local_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until_stopped(async move {
        let _ = stopped.await;
    }));
    let http = reqwest::Client::new();
    let streams: Value = http
        .get(format!("{base}/v1/streams"))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(streams["data"][0]["state"], "live");
    assert_eq!(streams["data"][0]["id"].as_str(), Some(demo.stream.as_str()));
    // The demo lives in test mode: its stream says so, and its checkout
    // offers the sandbox's test cards.
    assert_eq!(streams["data"][0]["livemode"], json!(false), "{streams}");
    assert!(!state.payments.livemode(demo.seller.as_str()).await.unwrap());
    let public: Value = http
        .get(format!("{base}/v1/public/streams/{}", demo.stream))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(public["livemode"], json!(false), "{public}");
    // The cycle starts an offer on the demo stream.
    let mut live = false;
    for _ in 0..50 {
        let offers: Value = http
            .get(format!("{base}/v1/streams/{}/offers", demo.stream))
            .bearer_auth(key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if offers["data"].as_array().unwrap().iter().any(|o| o["state"] == "live") {
            live = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(live, "the demo cycle started an offer");
    // The printed console link signs the demo's owner in, once.
    let link = demo.console.strip_prefix(&base).unwrap_or(&demo.console).to_owned();
    let page = http.get(format!("{base}{link}")).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let page = page.text().await.unwrap();
    assert!(
        page.contains("owner@demo.haul.invalid") && page.contains("link-continue"),
        "{page}"
    );
    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
    drop(state);
    // A second start finds the same seller and stream instead of making new ones.
    config.listen = "127.0.0.1:0".parse().unwrap();
    let again = gateway::app::Application::build(config).await.unwrap();
    let d2 = again.demo().unwrap();
    assert_eq!((&d2.seller, &d2.stream), (&demo.seller, &demo.stream));
}

/// A stream, lot and offer made with the demo seller's key are the user's:
/// a restarted demo keeps its own stream, and its bots never hold or buy
/// the user's offer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_never_adopts_a_users_stream_or_buys_its_offer() {
    let env = Env::embedded().await;
    let key = "hk_test_demokey0000000000000000000002";
    let config = gateway::config::Config::from_vars(
        [
            ("HAUL_LISTEN", "127.0.0.1:0"),
            ("HAUL_DATABASE_URL", env.db_url.as_str()),
            ("HAUL_DATA_DIR", env.data_dir.as_str()),
            ("HAUL_DEMO_API_KEY", key),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect(),
    )
    .unwrap();
    let first = gateway::app::Application::build(config.clone()).await.unwrap();
    let demo = first.demo().unwrap().clone();
    let base = format!("http://{}", first.local_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(first.run_until_stopped(async move {
        let _ = stopped.await;
    }));
    // The user's own sale, made with the demo key after the demo's.
    let http = reqwest::Client::new();
    let call = async |path: &str, body: Option<Value>| -> Value {
        let mut req = http.post(format!("{base}{path}")).bearer_auth(key);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        assert!(resp.status().is_success(), "{path}: {}", resp.status());
        resp.json().await.unwrap()
    };
    let s = call("/v1/streams", Some(json!({ "title": "Mine" }))).await;
    let sid = common::text(&s, "id");
    call(&format!("/v1/streams/{sid}/live"), None).await;
    let lot = call(&format!("/v1/streams/{sid}/lots"), Some(json!({ "title": "My lot" }))).await;
    let lid = common::text(&lot, "id");
    let offer = call(&format!("/v1/lots/{lid}/offers"), Some(common::offer_body(5, 5))).await;
    let oid = common::text(&offer, "id");
    call(&format!("/v1/offers/{oid}/start"), None).await;
    stop.send(()).unwrap();
    server.await.unwrap().unwrap();

    let again = gateway::app::Application::build(config).await.unwrap();
    let d2 = again.demo().unwrap().clone();
    assert_eq!((&d2.stream, &d2.lots), (&demo.stream, &demo.lots));
    let state = again.state().clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(again.run_until_stopped(async move {
        let _ = stopped.await;
    }));
    // Once the bots have held or bought the demo's own offer, none of it was
    // the user's.
    let marker: Value = serde_json::from_slice(&std::fs::read(format!("{}/demo.json", env.data_dir)).unwrap()).unwrap();
    let theirs = streams::ids::OfferId::parse(&common::text(&marker, "offer")).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let l = state.streams.levels(&demo.seller, &theirs).await.unwrap().unwrap();
        if l.held + l.sold > 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the demo's bots never bought: {l:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let mine = streams::ids::OfferId::parse(&oid).unwrap();
    let levels = state.streams.levels(&demo.seller, &mine).await.unwrap().unwrap();
    assert_eq!((levels.held, levels.sold), (0, 0), "{levels:?}");
    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
}

#[tokio::test]
async fn postgres_gets_no_demo() {
    let env = Env::shared().await;
    let app = TestApp::start(&env, &[]).await;
    assert!(!app.state.config.demo);
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sellers WHERE is_demo = 1")
        .fetch_one(&app.state.pool)
        .await
        .unwrap();
    assert_eq!(n, 0);
}
