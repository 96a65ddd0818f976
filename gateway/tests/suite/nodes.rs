//! Two `haul` processes on different ports against one PostgreSQL and one
//! Redis behave as one: events cross nodes, viewers recover on the other
//! node, a buy storm split across both never oversells, and a node that stops
//! sends its viewers to the other without losing an event.

use std::collections::HashSet;
use std::process::Stdio;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use streams::testing;
use tokio::process::{Child, Command};
use tokio_tungstenite::tungstenite::Message;

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

const SECRET: &str = "two-nodes-secret-two-nodes-secret-42";

struct Cluster {
    redis: String,
    db: String,
    prefix: String,
    key: String,
    http: reqwest::Client,
}

struct Node {
    child: Child,
    base: String,
}

fn haul(c: &Cluster, dir: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_haul"));
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("HAUL_")) {
        cmd.env_remove(k);
    }
    cmd.env("HAUL_DATABASE_URL", &c.db)
        .env("HAUL_REDIS_URL", &c.redis)
        .env("HAUL_REDIS_PREFIX", &c.prefix)
        .env("HAUL_TOKEN_SECRET", SECRET)
        .env("HAUL_DATA_DIR", dir)
        .env("HAUL_RATE_BUYER", "off")
        .env("HAUL_RATE_ADDR", "off")
        .env("HAUL_HOLDS_PER_ADDR", "off")
        .env("HAUL_LOG", "warn")
        .kill_on_drop(true);
    cmd
}

impl Cluster {
    async fn new() -> Cluster {
        Self::with_redis(testing::redis_url()).await
    }

    async fn with_redis(redis: String) -> Cluster {
        let mut c = Cluster {
            redis,
            db: testing::fresh_postgres().await,
            prefix: testing::redis_prefix(),
            key: String::new(),
            http: reqwest::Client::new(),
        };
        let dir = std::env::temp_dir().join(format!("haul-nodes-{}", streams::ids::random_token(8)));
        let out = haul(&c, &dir.display().to_string())
            .args(["seller", "create", "--name", "Two nodes"])
            .output()
            .await
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let text = String::from_utf8(out.stdout).unwrap();
        c.key = text
            .lines()
            .find_map(|l| l.strip_prefix("test_key"))
            .map(|k| k.trim().to_owned())
            .expect("an API key is printed");
        c
    }

    async fn node(&self) -> Node {
        let port = crate::common::free_port();
        let dir = std::env::temp_dir().join(format!("haul-node-{port}"));
        let child = haul(self, &dir.display().to_string())
            .args(["serve", "--no-demo"])
            .env("HAUL_LISTEN", format!("127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .spawn()
            .expect("haul starts");
        let base = format!("http://127.0.0.1:{port}");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(r) = self.http.get(format!("{base}/readyz")).send().await {
                if r.status() == StatusCode::OK {
                    break;
                }
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "node on {port} never became ready"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Node { child, base }
    }

    async fn call(
        &self,
        node: &Node,
        method: Method,
        path: &str,
        auth: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", node.base))
            .bearer_auth(auth);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    async fn seller(&self, node: &Node, method: Method, path: &str, body: Option<Value>) -> Value {
        let (st, v) = self.call(node, method, path, &self.key.clone(), body).await;
        assert!(st.is_success(), "{path}: {st} {v}");
        v
    }

    async fn token(&self, node: &Node, viewer: &str) -> String {
        let v = self
            .seller(
                node,
                Method::POST,
                "/v1/viewer-tokens",
                Some(json!({ "viewer_id": viewer })),
            )
            .await;
        crate::common::text(&v, "token")
    }
}

impl Node {
    fn ws(&self) -> String {
        format!("{}/connection/websocket", self.base.replace("http://", "ws://"))
    }

    /// Asks the node to stop as an operator would (SIGTERM) and waits for it.
    async fn terminate(mut self) {
        let pid = self.child.id().expect("running").to_string();
        let st = Command::new("kill").args(["-TERM", &pid]).status().await.unwrap();
        assert!(st.success());
        let exit = tokio::time::timeout(Duration::from_secs(20), self.child.wait())
            .await
            .expect("the node stops within 20 s")
            .unwrap();
        assert!(exit.success(), "{exit}");
    }
}

async fn send(ws: &mut Socket, v: Value) {
    ws.send(Message::Text(v.to_string().into())).await.unwrap();
}

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

/// A viewer on `node` subscribed to `channel` (recovering from `since`);
/// returns the socket and the subscribe reply.
async fn watch(node: &Node, token: &str, channel: &str, since: Option<(&str, u64)>) -> (Socket, Value) {
    let mut ws = tokio_tungstenite::connect_async(node.ws()).await.unwrap().0;
    send(&mut ws, json!({ "id": 1, "connect": { "token": token } })).await;
    assert!(next(&mut ws).await["connect"].is_object());
    let mut sub = json!({ "channel": channel });
    if let Some((epoch, offset)) = since {
        sub["recover"] = json!(true);
        sub["epoch"] = json!(epoch);
        sub["offset"] = json!(offset);
    }
    send(&mut ws, json!({ "id": 2, "subscribe": sub })).await;
    let reply = next(&mut ws).await;
    assert!(reply["subscribe"].is_object(), "{reply}");
    (ws, reply["subscribe"].clone())
}

/// Publications until `pred` holds for one (which is returned last).
async fn until(ws: &mut Socket, pred: impl Fn(&Value) -> bool) -> Vec<(u64, Value)> {
    let mut out = Vec::new();
    loop {
        let v = next(ws).await;
        let p = &v["push"]["pub"];
        assert!(p.is_object(), "expected a publication, got {v}");
        out.push((p["offset"].as_u64().unwrap(), p["data"].clone()));
        if pred(&p["data"]) {
            return out;
        }
    }
}

fn texts(pubs: &[(u64, Value)]) -> Vec<String> {
    pubs.iter()
        .filter(|(_, d)| d["type"] == "message")
        .map(|(_, d)| crate::common::text(d, "text"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_behave_as_one() {
    let c = Cluster::new().await;
    let a = c.node().await;
    let b = c.node().await;

    // A stream made through A; a viewer on B sees the offer A starts.
    let s = c
        .seller(&a, Method::POST, "/v1/streams", Some(json!({ "title": "Two" })))
        .await;
    let sid = crate::common::text(&s, "id");
    let channel = format!("stream:{sid}");
    c.seller(&a, Method::POST, &format!("/v1/streams/{sid}/live"), None)
        .await;
    let lot = c
        .seller(
            &a,
            Method::POST,
            &format!("/v1/streams/{sid}/lots"),
            Some(json!({ "title": "Kettle" })),
        )
        .await;
    let lid = crate::common::text(&lot, "id");
    let offer = c
        .seller(
            &a,
            Method::POST,
            &format!("/v1/lots/{lid}/offers"),
            Some(
                json!({ "price_minor": 250000, "currency": "RUB", "quantity": 50, "per_buyer_limit": 2,
                         "duration_seconds": 120, "hold_ttl_seconds": 60 }),
            ),
        )
        .await;
    let oid = crate::common::text(&offer, "id");
    let (mut on_b, _) = watch(&b, &c.token(&b, "vb").await, &channel, None).await;
    c.seller(&a, Method::POST, &format!("/v1/offers/{oid}/start"), None)
        .await;
    let seen = until(&mut on_b, |d| d["type"] == "offer.started").await;
    assert_eq!(seen.last().unwrap().1["offer_id"].as_str(), Some(oid.as_str()));

    // A viewer disconnected from A recovers on B exactly what it missed.
    let token = c.token(&a, "wanderer").await;
    let (ws, reply) = watch(&a, &token, &channel, None).await;
    // Viewers are counted over both nodes: one on B, one on A.
    until(&mut on_b, |d| d["type"] == "viewers" && d["count"] == 2).await;
    let epoch = crate::common::text(&reply, "epoch");
    let offset = reply["offset"].as_u64().unwrap();
    drop(ws);
    for n in 0..3 {
        let node = if n % 2 == 0 { &a } else { &b };
        let text = format!("away {n}");
        c.seller(
            node,
            Method::POST,
            &format!("/v1/streams/{sid}/messages"),
            Some(json!({ "text": text })),
        )
        .await;
    }
    // Wait until B's viewer has all three, so they are in the shared history.
    until(&mut on_b, |d| d["text"] == "away 2").await;
    let (_back, reply) = watch(&b, &token, &channel, Some((&epoch, offset))).await;
    assert_eq!(reply["recovered"], true, "{reply}");
    let missed: Vec<(u64, Value)> = reply["publications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["offset"].as_u64().unwrap(), p["data"].clone()))
        .collect();
    assert_eq!(texts(&missed), vec!["away 0", "away 1", "away 2"]);
    let offsets: Vec<u64> = missed.iter().map(|(o, _)| *o).collect();
    let expected: Vec<u64> = (offset + 1..=offset + offsets.len() as u64).collect();
    assert_eq!(offsets, expected, "offsets run on without a gap across nodes");

    // A buy storm split across both nodes never oversells: 50 units, 120
    // buyers wanting one each, half through each node.
    let mut tokens = Vec::new();
    for n in 0..120 {
        tokens.push(c.token(&a, &format!("storm{n}")).await);
    }
    let buys = tokens.iter().enumerate().map(|(n, t)| {
        let node = if n % 2 == 0 { &a } else { &b };
        let path = format!("/v1/offers/{oid}/reserve");
        let c = &c;
        async move {
            c.call(
                node,
                Method::POST,
                &path,
                t,
                Some(json!({ "quantity": 1, "request_id": "storm" })),
            )
            .await
        }
    });
    let results = futures_util::future::join_all(buys).await;
    let held = results.iter().filter(|(st, _)| *st == StatusCode::CREATED).count();
    let sold_out = results
        .iter()
        .filter(|(st, v)| *st == StatusCode::CONFLICT && v["error"]["code"] == "sold_out")
        .count();
    assert_eq!(held, 50, "{results:?}");
    assert_eq!(held + sold_out, 120, "every other answer is sold_out");
    let holds: HashSet<&str> = results.iter().filter_map(|(_, v)| v["hold"]["id"].as_str()).collect();
    assert_eq!(holds.len(), 50, "each hold distinct");
    for node in [&a, &b] {
        let levels = c.seller(node, Method::GET, &format!("/v1/offers/{oid}"), None).await;
        assert_eq!(
            (levels["held"].as_i64(), levels["units_left"].as_i64()),
            (Some(50), Some(0)),
            "{levels}"
        );
    }
    // Viewers on B see the level reach zero.
    until(&mut on_b, |d| d["type"] == "offer.stock" && d["units_left"] == 0).await;

    // A stops gracefully: its viewer is told to reconnect (3001), comes back
    // on B and has lost nothing, including what A published as it stopped.
    let (mut leaving, reply) = watch(&a, &c.token(&a, "leaver").await, &channel, None).await;
    let (epoch, offset) = (crate::common::text(&reply, "epoch"), reply["offset"].as_u64().unwrap());
    let mut got = Vec::new();
    c.seller(
        &a,
        Method::POST,
        &format!("/v1/streams/{sid}/messages"),
        Some(json!({ "text": "last from a" })),
    )
    .await;
    let stopping = tokio::spawn(a.terminate());
    let mut last = offset;
    loop {
        let v = next(&mut leaving).await;
        if v["close"].is_number() {
            assert_eq!(v["close"], 3001, "told to reconnect");
            break;
        }
        let p = &v["push"]["pub"];
        last = p["offset"].as_u64().unwrap();
        got.push((last, p["data"].clone()));
    }
    stopping.await.unwrap();
    c.seller(
        &b,
        Method::POST,
        &format!("/v1/streams/{sid}/messages"),
        Some(json!({ "text": "first after" })),
    )
    .await;
    let (mut back, reply) = watch(&b, &c.token(&b, "leaver").await, &channel, Some((&epoch, last))).await;
    assert_eq!(reply["recovered"], true, "{reply}");
    for p in reply["publications"].as_array().unwrap() {
        got.push((p["offset"].as_u64().unwrap(), p["data"].clone()));
    }
    if !texts(&got).contains(&"first after".to_owned()) {
        got.extend(until(&mut back, |d| d["text"] == "first after").await);
    }
    assert_eq!(texts(&got), vec!["last from a", "first after"], "{got:?}");
    let offsets: Vec<u64> = got.iter().map(|(o, _)| *o).collect();
    let expected: Vec<u64> = (offset + 1..=offset + offsets.len() as u64).collect();
    assert_eq!(offsets, expected, "every publication once, in order: {got:?}");
}

/// A Redis server of this test's own, so that stopping it disturbs nobody else.
async fn own_redis(port: u16) -> Child {
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
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("redis-server runs");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        assert!(tokio::time::Instant::now() < deadline, "redis-server did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewers_recover_after_redis_restarts() {
    let port = crate::common::free_port();
    let mut redis = own_redis(port).await;
    let c = Cluster::with_redis(format!("redis://127.0.0.1:{port}")).await;
    let a = c.node().await;
    let s = c
        .seller(&a, Method::POST, "/v1/streams", Some(json!({ "title": "Fault" })))
        .await;
    let sid = crate::common::text(&s, "id");
    let channel = format!("stream:{sid}");
    c.seller(&a, Method::POST, &format!("/v1/streams/{sid}/live"), None)
        .await;
    let token = c.token(&a, "steady").await;
    let (mut ws, reply) = watch(&a, &token, &channel, None).await;
    let epoch = crate::common::text(&reply, "epoch");
    let note = |t: &str| json!({ "text": t });
    c.seller(
        &a,
        Method::POST,
        &format!("/v1/streams/{sid}/messages"),
        Some(note("before")),
    )
    .await;
    let seen = until(&mut ws, |d| d["text"] == "before").await;
    let last = seen.last().unwrap().0;

    // Redis goes away and comes back empty.
    redis.kill().await.unwrap();
    let _ = redis.wait().await;
    let _redis = own_redis(port).await;
    // The node hears the bus again and sends its viewer to recover (3010).
    loop {
        let v = next(&mut ws).await;
        if v["close"].is_number() {
            assert_eq!(v["close"], 3010, "insufficient state: reconnect and recover");
            break;
        }
    }
    // The history went with Redis: a new epoch, recovered false and the state.
    let (mut back, reply) = watch(&a, &token, &channel, Some((&epoch, last))).await;
    assert_eq!(reply["recovered"], false, "{reply}");
    assert_ne!(reply["epoch"].as_str(), Some(epoch.as_str()));
    assert_eq!(reply["data"]["id"].as_str(), Some(sid.as_str()));
    // And events flow again.
    c.seller(
        &a,
        Method::POST,
        &format!("/v1/streams/{sid}/messages"),
        Some(note("after")),
    )
    .await;
    until(&mut back, |d| d["text"] == "after").await;
}
