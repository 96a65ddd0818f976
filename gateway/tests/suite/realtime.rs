//! The viewer gateway over WebSocket: the official Centrifugo JS SDK as the
//! client, and raw frames for recovery and bad input.

use crate::common;

use std::process::Stdio;
use std::time::Duration;

use common::{offer_body, Env, TestApp};
use futures_util::{SinkExt, StreamExt};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio_tungstenite::tungstenite::Message;

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn mint(app: &TestApp, viewer: &str) -> String {
    let (st, v) = app
        .seller(Method::POST, "/v1/viewer-tokens", Some(json!({ "viewer_id": viewer })))
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    common::text(&v, "token")
}

fn ws_url(app: &TestApp) -> String {
    format!("{}/connection/websocket", app.base.replace("http://", "ws://"))
}

async fn open(app: &TestApp) -> Socket {
    tokio_tungstenite::connect_async(ws_url(app)).await.expect("upgrade").0
}

async fn send(ws: &mut Socket, v: Value) {
    ws.send(Message::Text(v.to_string().into())).await.unwrap();
}

/// The next reply or push (pings skipped); panics after 10 s.
async fn next(ws: &mut Socket) -> Value {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a frame within 10 s")
            .expect("the socket is open")
            .expect("a valid frame");
        match msg {
            Message::Text(t) if t.as_str() != "{}" => return serde_json::from_str(t.as_str()).unwrap(),
            Message::Close(f) => return json!({ "close": f.map(|f| u16::from(f.code)) }),
            _ => {}
        }
    }
}

async fn connect(app: &TestApp, token: &str) -> Socket {
    let mut ws = open(app).await;
    send(&mut ws, json!({ "id": 1, "connect": { "token": token } })).await;
    let r = next(&mut ws).await;
    assert!(r["connect"]["client"].is_string(), "{r}");
    ws
}

async fn sdk_viewer_connects_subscribes_gets_state_and_reserves(env: Env) {
    let app = TestApp::start(&env, &[]).await;
    let (sid, _, oid) = app.live_offer(offer_body(5, 2)).await;
    let token = mint(&app, "sdk").await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/js/viewer.mjs");
    let modules = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/js/node_modules/centrifuge");
    assert!(
        std::path::Path::new(modules).exists(),
        "the centrifuge npm package is missing: ./scripts/test installs it (npm ci in gateway/tests/js)"
    );
    let mut node = tokio::process::Command::new("node")
        .arg(script)
        .args([&ws_url(&app), &token, &sid, &oid])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node runs");
    let mut lines = BufReader::new(node.stdout.take().unwrap()).lines();
    let mut seen: Vec<Value> = Vec::new();
    let mut read_until = async |pred: &dyn Fn(&Value) -> bool| -> Value {
        loop {
            let line = tokio::time::timeout(Duration::from_secs(15), lines.next_line())
                .await
                .unwrap_or_else(|_| panic!("the SDK viewer went quiet; saw {seen:?}"))
                .unwrap()
                .unwrap_or_else(|| panic!("the SDK viewer exited; saw {seen:?}"));
            let v: Value = serde_json::from_str(&line).unwrap();
            seen.push(v.clone());
            if pred(&v) {
                return v;
            }
        }
    };

    let connected = read_until(&|v| v["kind"] == "connected").await;
    assert!(connected["value"]["data"]["viewer_id"]
        .as_str()
        .unwrap()
        .ends_with(".sdk"));
    // The subscribe reply carries the stream as it is now.
    let subscribed = read_until(&|v| v["kind"] == "subscribed").await;
    let state = &subscribed["value"]["data"];
    assert_eq!(state["id"].as_str(), Some(sid.as_str()), "{subscribed}");
    assert_eq!(state["offers"][0]["id"].as_str(), Some(oid.as_str()));
    assert_eq!(state["offers"][0]["units_left"], 5);
    assert!(state["server_time"].as_i64().unwrap() > 0);
    assert_eq!(subscribed["value"]["recoverable"], true);
    // The reserve RPC holds a unit; the refusals carry Haul's codes.
    let rpc = read_until(&|v| v["kind"] == "rpc").await;
    assert_eq!(rpc["value"]["units_left"], 4, "{rpc}");
    assert_eq!(rpc["value"]["hold"]["quantity"], 1);
    let refused = read_until(&|v| v["kind"] == "rpc_error").await;
    assert_eq!(refused["value"]["code"], 1409);
    assert_eq!(refused["value"]["message"], "over_buyer_limit");
    let unknown = read_until(&|v| v["kind"] == "rpc_error").await;
    assert_eq!(unknown["value"]["code"], 104);
    // Another viewer's personal channel: permission denied.
    let denied = read_until(&|v| v["kind"] == "sub_error" || v["kind"] == "unsubscribed").await;
    assert_eq!(denied["value"]["code"], 103, "{denied}");
    // A buy over HTTP by someone else reaches the SDK as a publication.
    let other = mint(&app, "other").await;
    let (st, v) = app.reserve(&other, &oid, 2, "o1").await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let stock = read_until(&|v| v["kind"] == "publication" && v["value"]["data"]["units_left"] == 2).await;
    assert_eq!(stock["value"]["data"]["type"], "offer.stock");
    assert!(stock["value"]["offset"].as_u64().unwrap() >= 1);
    drop(node.stdin.take());
    let _ = tokio::time::timeout(Duration::from_secs(5), node.wait()).await;
}

/// A child process printing one JSON line per event, read with a deadline.
struct Lines {
    lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    seen: Vec<Value>,
}

impl Lines {
    async fn until(&mut self, pred: impl Fn(&Value) -> bool) -> Value {
        loop {
            let seen = &self.seen;
            let line = tokio::time::timeout(Duration::from_secs(15), self.lines.next_line())
                .await
                .unwrap_or_else(|_| panic!("the SDK viewer went quiet; saw {seen:?}"))
                .unwrap()
                .unwrap_or_else(|| panic!("the SDK viewer exited; saw {seen:?}"));
            let v: Value = serde_json::from_str(&line).unwrap();
            self.seen.push(v.clone());
            if pred(&v) {
                return v;
            }
        }
    }
}

async fn python_sdk_viewer_reserves_and_recovers_after_a_reconnect(env: Env) {
    let app = TestApp::start(&env, &[]).await;
    let (sid, _, oid) = app.live_offer(offer_body(10, 3)).await;
    let token = mint(&app, "py").await;
    let py = common::python();
    assert!(
        std::path::Path::new(&py).exists(),
        "{py} is missing: ./scripts/test creates it with centrifuge-python (scripts/python-requirements.txt)"
    );
    let mut child = tokio::process::Command::new(&py)
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/py/viewer.py"))
        .args([&ws_url(&app), &token, &sid, &oid])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("python runs");
    let mut stdin = child.stdin.take().unwrap();
    let mut out = Lines {
        lines: BufReader::new(child.stdout.take().unwrap()).lines(),
        seen: Vec::new(),
    };
    use tokio::io::AsyncWriteExt;
    let connected = out.until(|v| v["kind"] == "connected").await;
    assert!(connected["value"]["data"]["viewer_id"]
        .as_str()
        .unwrap()
        .ends_with(".py"));
    let first = out.until(|v| v["kind"] == "subscribed").await;
    assert_eq!(first["value"]["data"]["offers"][0]["units_left"], 10, "{first}");
    assert_eq!(first["value"]["recoverable"], true);
    stdin.write_all(b"reserve\n").await.unwrap();
    let rpc = out.until(|v| v["kind"] == "rpc").await;
    assert_eq!(rpc["value"]["units_left"], 9, "{rpc}");
    // Away for a moment: what happens meanwhile comes back on resubscribe.
    stdin.write_all(b"pause\n").await.unwrap();
    out.until(|v| v["kind"] == "paused").await;
    app.message(&sid, "while away 1").await;
    app.message(&sid, "while away 2").await;
    stdin.write_all(b"resume\n").await.unwrap();
    let again = out.until(|v| v["kind"] == "subscribed").await;
    assert_eq!(
        (
            again["value"]["was_recovering"].as_bool(),
            again["value"]["recovered"].as_bool()
        ),
        (Some(true), Some(true)),
        "{again}"
    );
    let note = |n: &'static str| move |v: &Value| v["kind"] == "publication" && v["value"]["data"]["text"] == n;
    let one = out.until(note("while away 1")).await;
    let two = out.until(note("while away 2")).await;
    assert_eq!(
        two["value"]["offset"].as_u64().unwrap(),
        one["value"]["offset"].as_u64().unwrap() + 1
    );
    drop(stdin);
    let _ = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
}

async fn a_resubscriber_recovers_exactly_what_it_missed(env: Env) {
    let app = TestApp::start(&env, &[]).await;
    let (sid, _, oid) = app.live_offer(offer_body(10, 5)).await;
    let channel = format!("stream:{sid}");
    let mut ws = connect(&app, &mint(&app, "watcher").await).await;
    send(&mut ws, json!({ "id": 2, "subscribe": { "channel": channel } })).await;
    let sub = next(&mut ws).await;
    let epoch = common::text(&sub["subscribe"], "epoch");
    let offset = sub["subscribe"]["offset"].as_u64().unwrap();
    ws.close(None).await.unwrap();

    // Three notes from the streamer while the viewer is away.
    for n in 0..3 {
        app.message(&sid, &format!("note {n}")).await;
    }
    let mut ws = connect(&app, &mint(&app, "watcher").await).await;
    send(
        &mut ws,
        json!({ "id": 2, "subscribe": { "channel": channel, "recover": true, "epoch": epoch, "offset": offset } }),
    )
    .await;
    let back = next(&mut ws).await;
    let r = &back["subscribe"];
    assert_eq!(
        (r["recovered"].as_bool(), r["was_recovering"].as_bool()),
        (Some(true), Some(true)),
        "{back}"
    );
    // What the reply recovered, then what is pushed after it: exactly the
    // three notes, in order, each once (with Redis, a note may still be on
    // its way when the viewer comes back and arrive as a push instead).
    let mut got: Vec<(u64, Value)> = r["publications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["offset"].as_u64().unwrap(), p["data"].clone()))
        .collect();
    while got.iter().filter(|(_, d)| d["type"] == "message").count() < 3 {
        let push = next(&mut ws).await;
        let p = &push["push"]["pub"];
        got.push((p["offset"].as_u64().unwrap(), p["data"].clone()));
    }
    let notes: Vec<(u64, &str)> = got
        .iter()
        .filter(|(_, d)| d["type"] == "message")
        .map(|(o, d)| (*o, d["text"].as_str().unwrap()))
        .collect();
    assert_eq!(
        notes,
        vec![(offset + 1, "note 0"), (offset + 2, "note 1"), (offset + 3, "note 2")],
        "{got:?}"
    );
    // A stale epoch gets recovered: false and the current state instead.
    send(&mut ws, json!({ "id": 3, "unsubscribe": { "channel": channel } })).await;
    assert!(next(&mut ws).await["unsubscribe"].is_object());
    send(
        &mut ws,
        json!({ "id": 4, "subscribe": { "channel": channel, "recover": true, "epoch": "gone", "offset": 1 } }),
    )
    .await;
    let stale = next(&mut ws).await;
    assert_eq!(stale["subscribe"]["recovered"], false, "{stale}");
    assert_eq!(stale["subscribe"]["data"]["offers"][0]["units_left"], 10);
    assert_eq!(
        stale["subscribe"]["data"]["offers"][0]["id"].as_str(),
        Some(oid.as_str())
    );
}

async fn bad_input_gets_protocol_errors_and_disconnects(env: Env) {
    let app = TestApp::start(&env, &[]).await;
    let (sid, _, _) = app.live_offer(offer_body(3, 1)).await;
    // Not JSON: bad request (3501, no reconnect).
    let mut ws = open(&app).await;
    ws.send(Message::Text("nonsense".into())).await.unwrap();
    assert_eq!(next(&mut ws).await["close"], 3501);
    // A command before connect.
    let mut ws = open(&app).await;
    send(
        &mut ws,
        json!({ "id": 1, "subscribe": { "channel": format!("stream:{sid}") } }),
    )
    .await;
    assert_eq!(next(&mut ws).await["close"], 3501);
    // A forged token: invalid token (3500).
    let mut ws = open(&app).await;
    send(&mut ws, json!({ "id": 1, "connect": { "token": "a.b.c" } })).await;
    assert_eq!(next(&mut ws).await["close"], 3500);
    // A command Centrifugo does not have.
    let mut ws = connect(&app, "").await;
    send(&mut ws, json!({ "id": 2, "frobnicate": {} })).await;
    assert_eq!(next(&mut ws).await["close"], 3501);
    // Oversized frames: WebSocket's "message too big".
    let mut ws = connect(&app, "").await;
    ws.send(Message::Text("x".repeat(70 * 1024).into())).await.unwrap();
    assert_eq!(next(&mut ws).await["close"], 1009);
    // An expired token: error 109 in the reply, so the SDK refreshes it.
    let claims = gateway::jwt::Claims {
        sub: format!("{}.late", app.seller),
        exp: 1,
        iat: None,
        nbf: None,
        sel: None,
    };
    let expired = gateway::jwt::encode(&claims, common::TOKEN_SECRET.as_bytes());
    let mut ws = open(&app).await;
    send(&mut ws, json!({ "id": 1, "connect": { "token": expired } })).await;
    assert_eq!(next(&mut ws).await["error"]["code"], 109);
    // Binary frames are not JSON protocol.
    let mut ws = connect(&app, "").await;
    ws.send(Message::Binary(vec![1, 2, 3].into())).await.unwrap();
    assert_eq!(next(&mut ws).await["close"], 3501);

    let mut ws = connect(&app, &mint(&app, "me").await).await;
    let errors = [
        (
            json!({ "subscribe": { "channel": "stream:str_0000000000000000000000" } }),
            102,
        ),
        (json!({ "subscribe": { "channel": "stream:nonsense" } }), 102),
        (json!({ "subscribe": { "channel": "elsewhere" } }), 102),
        (json!({ "subscribe": { "channel": "holds#someone.else" } }), 103),
        (json!({ "publish": { "channel": "x", "data": {} } }), 108),
        (
            json!({ "rpc": { "method": "reserve", "data": { "offer_id": 5 } } }),
            107,
        ),
        (json!({ "rpc": { "method": "reserve" } }), 107),
        (
            json!({ "rpc": { "method": "reserve", "data": { "offer_id": "off_0000000000000000000000", "quantity": 1, "request_id": "x" } } }),
            1404,
        ),
    ];
    for (n, (mut cmd, code)) in errors.into_iter().enumerate() {
        cmd["id"] = json!(n + 10);
        send(&mut ws, cmd.clone()).await;
        let r = next(&mut ws).await;
        assert_eq!(
            (r["id"].as_u64(), r["error"]["code"].as_u64()),
            (Some(n as u64 + 10), Some(code)),
            "{cmd} -> {r}"
        );
    }
    // Its own personal channel is allowed; the node still serves this viewer.
    let me = next_viewer_id(&app, "me");
    send(
        &mut ws,
        json!({ "id": 30, "subscribe": { "channel": format!("holds#{me}") } }),
    )
    .await;
    assert!(next(&mut ws).await["subscribe"].is_object());
    send(&mut ws, json!({ "id": 31, "ping": {} })).await;
    assert_eq!(next(&mut ws).await, json!({ "id": 31, "ping": {} }));
}

/// Pushes of a channel's publications (data), until `stop` says enough or
/// `quiet` passes without one.
async fn collect_pubs(ws: &mut Socket, quiet: Duration, stop: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let mut out = Vec::new();
    while !stop(&out) {
        match tokio::time::timeout(quiet, next(ws)).await {
            Ok(v) if v["push"]["pub"].is_object() => out.push(v["push"]["pub"]["data"].clone()),
            Ok(v) => panic!("unexpected frame {v}"),
            Err(_) => break,
        }
    }
    out
}

async fn stock_is_coalesced_and_the_last_level_always_arrives(env: Env) {
    let app = TestApp::start(&env, &[]).await;
    let (sid, _, oid) = app.live_offer(offer_body(100, 1)).await;
    let mut ws = connect(&app, "").await;
    send(
        &mut ws,
        json!({ "id": 2, "subscribe": { "channel": format!("stream:{sid}") } }),
    )
    .await;
    assert!(next(&mut ws).await["subscribe"].is_object());
    // Forty buys as fast as they go, ten at a time.
    let mut tokens = Vec::new();
    for n in 0..40 {
        tokens.push(mint(&app, &format!("b{n}")).await);
    }
    for chunk in tokens.chunks(10) {
        let buys = chunk.iter().map(|t| app.reserve(t, &oid, 1, "r"));
        for (st, v) in futures_util::future::join_all(buys).await {
            assert_eq!(st, StatusCode::CREATED, "{v}");
        }
    }
    let stock: Vec<i64> = collect_pubs(&mut ws, Duration::from_millis(1500), |_| false)
        .await
        .iter()
        .filter(|d| d["type"] == "offer.stock")
        .map(|d| d["units_left"].as_i64().unwrap())
        .collect();
    // Far fewer than one per buy, never rising, and the last is the level now.
    assert!(!stock.is_empty() && stock.len() < 20, "{stock:?}");
    assert!(stock.windows(2).all(|w| w[0] >= w[1]), "{stock:?}");
    assert_eq!(stock.last(), Some(&60), "{stock:?}");
}

async fn viewer_counts_are_announced(env: Env) {
    let app = TestApp::start(&env, &[]).await;
    let (sid, _, _) = app.live_offer(offer_body(5, 1)).await;
    let channel = format!("stream:{sid}");
    let mut a = connect(&app, "").await;
    send(&mut a, json!({ "id": 2, "subscribe": { "channel": channel } })).await;
    assert!(next(&mut a).await["subscribe"].is_object());
    let mut b = connect(&app, "").await;
    send(&mut b, json!({ "id": 2, "subscribe": { "channel": channel } })).await;
    assert!(next(&mut b).await["subscribe"].is_object());
    let counts = |pubs: &[Value]| -> Vec<u64> {
        pubs.iter()
            .filter(|d| d["type"] == "viewers")
            .map(|d| d["count"].as_u64().unwrap())
            .collect()
    };
    let seen = collect_pubs(&mut a, Duration::from_secs(5), |p| counts(p).last() == Some(&2)).await;
    assert_eq!(counts(&seen).last(), Some(&2), "{seen:?}");
    assert_eq!(seen.last().unwrap()["stream_id"].as_str(), Some(sid.as_str()));
    drop(b);
    let seen = collect_pubs(&mut a, Duration::from_secs(5), |p| counts(p).last() == Some(&1)).await;
    assert_eq!(counts(&seen).last(), Some(&1), "{seen:?}");
}

async fn one_address_cannot_hold_more_than_its_share(env: Env) {
    let app = TestApp::start(&env, &[("HAUL_VIEWERS_PER_ADDR", "2")]).await;
    let first = connect(&app, "").await;
    let mut second = connect(&app, "").await;
    let mut third = open(&app).await;
    assert_eq!(next(&mut third).await["close"], 3508);
    let metrics = app.metrics().await;
    assert!(metrics.contains("haul_viewer_connections_refused_total 1"), "{metrics}");
    assert!(metrics.contains("haul_viewer_connections 2"), "{metrics}");
    // The ones already in are still served; a place frees up when one leaves.
    send(&mut second, json!({ "id": 5, "ping": {} })).await;
    assert_eq!(next(&mut second).await["id"], 5);
    drop(first);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let mut ws = open(&app).await;
        send(&mut ws, json!({ "id": 1, "connect": {} })).await;
        if next(&mut ws).await["connect"].is_object() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the freed place never came back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn next_viewer_id(app: &TestApp, viewer: &str) -> String {
    format!("{}.{viewer}", app.seller)
}

/// A socket that floods commands is answered "too many requests" (111)
/// once over its budget, then disconnected with 3013; another viewer on the
/// node keeps getting the stream's events.
async fn a_command_flood_is_refused_then_disconnected(env: Env) {
    let app = TestApp::start(&env, &[]).await;
    let (sid, _, _) = app.live_offer(offer_body(3, 1)).await;
    let mut other = connect(&app, "").await;
    send(
        &mut other,
        json!({ "id": 2, "subscribe": { "channel": format!("stream:{sid}") } }),
    )
    .await;
    assert!(next(&mut other).await["subscribe"].is_object());

    let mut flood = connect(&app, "").await;
    let frame: Vec<String> = (0..300)
        .map(|i| json!({ "id": i + 2, "ping": {} }).to_string())
        .collect();
    flood.send(Message::Text(frame.join("\n").into())).await.unwrap();
    let (mut pings, mut refused) = (0, 0);
    let closed = loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), flood.next())
            .await
            .expect("an answer within 10 s");
        match msg {
            Some(Ok(Message::Text(t))) => {
                for line in t.as_str().lines().filter(|l| *l != "{}") {
                    let v: Value = serde_json::from_str(line).unwrap();
                    if v["ping"].is_object() {
                        pings += 1;
                    } else if v["error"]["code"] == 111 {
                        refused += 1;
                    }
                }
            }
            Some(Ok(Message::Close(f))) => break f.map(|f| u16::from(f.code)),
            Some(Ok(_)) => {}
            other => panic!("the flood's socket ended without a close frame: {other:?}"),
        }
    };
    assert_eq!(closed, Some(3013));
    assert!((99..=110).contains(&pings), "{pings} pings answered");
    assert!(refused >= 10, "{refused} refused");

    let (st, _) = app
        .seller(
            Method::POST,
            &format!("/v1/streams/{sid}/messages"),
            Some(json!({ "text": "still here" })),
        )
        .await;
    assert_eq!(st, StatusCode::ACCEPTED);
    loop {
        let v = next(&mut other).await;
        if v["push"]["pub"]["data"]["text"] == "still here" {
            break;
        }
    }
}

/// A viewer's own channel hears each change of their orders (paid, then
/// shipped with its tracking), and nothing of anyone else's.
async fn a_viewer_hears_their_orders_change_on_their_own_channel(env: Env) {
    let app = TestApp::start(&env, &[]).await;
    let (_, _, oid) = app.live_offer(common::offer_body(5, 5)).await;
    let token = mint(&app, "ann").await;
    let mut ws = open(&app).await;
    send(&mut ws, json!({ "id": 1, "connect": { "token": token } })).await;
    let r = next(&mut ws).await;
    let personal = r["connect"]["data"]["personal_channel"].as_str().unwrap().to_owned();
    send(&mut ws, json!({ "id": 2, "subscribe": { "channel": personal } })).await;
    assert!(next(&mut ws).await["subscribe"].is_object());
    // Someone else's order changes: nothing comes here.
    let other = mint(&app, "bob").await;
    let (_, hold) = app.reserve(&other, &oid, 1, "b1").await;
    app.order_for_hold(&other, &oid, hold["hold"]["id"].as_str().unwrap())
        .await;
    let (_, hold) = app.reserve(&token, &oid, 1, "a1").await;
    let order = app
        .order_for_hold(&token, &oid, hold["hold"]["id"].as_str().unwrap())
        .await;
    let id = common::text(&order, "id");
    let attempt = app.start_attempt(&token, &id, "sandbox").await;
    common::pay_on_sandbox_page(&app, attempt["redirect_url"].as_str().unwrap()).await;
    let pushed = |v: &Value| v["push"]["pub"]["data"].clone();
    let paid = loop {
        let v = next(&mut ws).await;
        assert_eq!(v["push"]["channel"], json!(personal), "{v}");
        let d = pushed(&v);
        assert_eq!(d["order_id"], json!(id), "only ann's own order: {d}");
        if d["state"] == "succeeded" {
            break d;
        }
    };
    assert_eq!(
        (paid["type"].as_str(), paid["fulfilment"].as_str()),
        (Some("order.updated"), Some("new"))
    );
    assert!(paid["server_time"].is_i64() && paid.get("customer").is_none(), "{paid}");
    let (st, _) = app
        .seller(
            Method::POST,
            &format!("/v1/orders/{id}/fulfilment"),
            Some(json!({ "state": "shipped", "carrier": "CDEK", "tracking_number": "42" })),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED);
    let shipped = pushed(&next(&mut ws).await);
    assert_eq!(
        (
            shipped["fulfilment"].as_str(),
            shipped["shipment"]["tracking_number"].as_str()
        ),
        (Some("shipped"), Some("42")),
        "{shipped}"
    );
}

/// A stream's seller channel is its seller's console's alone: a viewer's
/// token and another seller's console token are refused; the seller's
/// hears every live offer's levels at once and after each change (a hold,
/// a sale), and is not counted as a viewer.
async fn the_seller_channel_tells_only_the_seller_each_offers_levels(env: Env) {
    let app = TestApp::start(&env, &[]).await;
    let (sid, _, oid) = app.live_offer(offer_body(5, 2)).await;
    let console_token = |seller: &str| {
        gateway::jwt::encode(
            &gateway::jwt::Claims {
                sub: "console.per_test".into(),
                exp: app.state.payments.now() / 1000 + 600,
                iat: None,
                nbf: None,
                sel: Some(seller.to_owned()),
            },
            common::TOKEN_SECRET.as_bytes(),
        )
    };
    let channel = format!("seller#{sid}");
    let viewer = mint(&app, "nosy").await;
    for token in [viewer.clone(), console_token("sel_someoneelse0000000000")] {
        let mut ws = connect(&app, &token).await;
        send(&mut ws, json!({ "id": 2, "subscribe": { "channel": channel } })).await;
        assert_eq!(next(&mut ws).await["error"]["code"], 103, "permission denied");
    }
    let mut ws = connect(&app, &console_token(app.seller.as_str())).await;
    send(&mut ws, json!({ "id": 2, "subscribe": { "channel": channel } })).await;
    let r = next(&mut ws).await;
    assert_eq!(
        r["subscribe"]["data"]["offers"][0],
        json!({ "type": "offer.stats", "offer_id": oid, "quantity": 5, "held": 0, "sold": 0, "units_left": 5 }),
        "{r}"
    );
    send(
        &mut ws,
        json!({ "id": 3, "subscribe": { "channel": format!("stream:{sid}") } }),
    )
    .await;
    assert!(next(&mut ws).await["subscribe"].is_object());
    let (st, hold) = app.reserve(&viewer, &oid, 2, "r1").await;
    assert_eq!(st, StatusCode::CREATED, "{hold}");
    let stats = loop {
        let f = next(&mut ws).await;
        if f["push"]["channel"] == channel.as_str() {
            break f["push"]["pub"]["data"].clone();
        }
    };
    assert_eq!(
        (stats["held"].as_i64(), stats["units_left"].as_i64()),
        (Some(2), Some(3)),
        "{stats}"
    );
    // The console's connection hears the stream but is nobody watching.
    app.state.hub.count_viewers().await;
    let counts = app.state.hub.channels().viewer_counts("stream:");
    assert!(counts.iter().all(|(_, n)| *n == 0), "{counts:?}");
}

on_both_backends!(
    the_seller_channel_tells_only_the_seller_each_offers_levels,
    a_viewer_hears_their_orders_change_on_their_own_channel,
    a_command_flood_is_refused_then_disconnected,
    sdk_viewer_connects_subscribes_gets_state_and_reserves,
    python_sdk_viewer_reserves_and_recovers_after_a_reconnect,
    a_resubscriber_recovers_exactly_what_it_missed,
    bad_input_gets_protocol_errors_and_disconnects,
    stock_is_coalesced_and_the_last_level_always_arrives,
    viewer_counts_are_announced,
    one_address_cannot_hold_more_than_its_share,
);
