//! `loadtest faults`: scenarios against real processes, in the manner of
//! Jepsen — a workload of buyers records a history of what they asked and
//! what they were told, a nemesis injects one kind of fault while they
//! buy, and an independent checker reads that history, the record (the
//! database, with `psql`, not through Haul), the seller's webhooks and a
//! viewer's realtime feed, and reports every broken promise of DESIGN.md
//! "Buying".
//!
//! Each scenario starts its own world: a private PostgreSQL cluster and
//! Redis, two `haul` nodes on them behind TCP proxies the nemesis controls,
//! a balancer in front of the nodes (buyers and the sandbox's callbacks go
//! through it), and a webhook sink. Everything is on loopback and stops by
//! itself; each scenario is bounded in time.
//!
//! # Layout
//! - this file: options, the scenario loop, the nemesis;
//! - `infra`: the processes and links;
//! - `workload`: the buyers and their history;
//! - `checker`: the verdicts.

mod checker;
pub mod infra;
mod workload;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::{expect, text, Failure};
use infra::{Link, Node, Postgres, Proxy, Redis};

pub const USAGE: &str = "\
usage: loadtest faults [options]

  --scenario NAME[,NAME…]  which faults (default all):
                      node-kill        kill -9 of a node, restarted later
                      redis-kill       Redis killed, restarted empty
                      redis-shutdown   Redis SHUTDOWN NOSAVE, restarted empty
                      postgres-restart PostgreSQL crashed (immediate stop), restarted
                      redis-cut        one node cut off from Redis
                      postgres-cut     one node cut off from PostgreSQL
                      slow-links       one node's links to both slowed by 50 ms
                      calm             no fault (the workload's own doubles and lates)
  --buyers N          concurrent buyers (default 40)
  --quantity N        units on the offer (default 150)
  --seconds S         workload length per scenario (default 24); the fault
                      starts at a third and heals at two thirds
  --hold-ttl S        hold lifetime in seconds (default 5)
  --haul PATH         the haul binary (default: next to this one)
  --keep DIR          keep each scenario's logs and history under DIR
  --short             the suite's version: 24 buyers, 60 units, 12 s

The checker reports oversold units, lost paid orders, double charges kept,
orders left open, holds not returned, missing webhooks and realtime gaps;
the exit status is 0 only when every scenario has none.";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    NodeKill,
    RedisKill,
    RedisShutdown,
    PostgresRestart,
    RedisCut,
    PostgresCut,
    SlowLinks,
    Calm,
}

const ALL: &[(&str, Fault)] = &[
    ("node-kill", Fault::NodeKill),
    ("redis-kill", Fault::RedisKill),
    ("redis-shutdown", Fault::RedisShutdown),
    ("postgres-restart", Fault::PostgresRestart),
    ("redis-cut", Fault::RedisCut),
    ("postgres-cut", Fault::PostgresCut),
    ("slow-links", Fault::SlowLinks),
    ("calm", Fault::Calm),
];

fn name(f: Fault) -> &'static str {
    ALL.iter().find(|(_, g)| *g == f).map(|(n, _)| *n).unwrap_or("?")
}

#[derive(Debug, Clone)]
pub struct Options {
    pub scenarios: Vec<Fault>,
    pub buyers: usize,
    pub quantity: i64,
    pub seconds: u64,
    pub hold_ttl: u64,
    pub haul: PathBuf,
    pub keep: Option<PathBuf>,
}

pub fn parse(args: &[String]) -> Result<Options, String> {
    let haul = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join("haul")))
        .unwrap_or_else(|| PathBuf::from("haul"));
    let mut o = Options {
        scenarios: ALL.iter().map(|(_, f)| *f).collect(),
        buyers: 40,
        quantity: 150,
        seconds: 24,
        hold_ttl: 5,
        haul,
        keep: None,
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        if flag == "--short" {
            o.buyers = 24;
            o.quantity = 60;
            o.seconds = 12;
            continue;
        }
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let num = |lo: u64, hi: u64| crate::number(flag, value, lo, hi);
        match flag.as_str() {
            "--scenario" => {
                if value != "all" {
                    o.scenarios = value
                        .split(',')
                        .map(|n| {
                            ALL.iter()
                                .find(|(k, _)| *k == n.trim())
                                .map(|(_, f)| *f)
                                .ok_or_else(|| format!("unknown scenario {n:?}"))
                        })
                        .collect::<Result<_, _>>()?;
                }
            }
            "--buyers" => o.buyers = num(1, 5_000)? as usize,
            "--quantity" => o.quantity = num(1, 1_000_000)? as i64,
            "--seconds" => o.seconds = num(6, 3_600)?,
            "--hold-ttl" => o.hold_ttl = num(5, 600)?,
            "--haul" => o.haul = PathBuf::from(value),
            "--keep" => o.keep = Some(PathBuf::from(value)),
            other => return Err(format!("unknown option {other}")),
        }
    }
    if !o.haul.exists() {
        return Err(format!(
            "no haul binary at {} (build it, or give --haul)",
            o.haul.display()
        ));
    }
    Ok(o)
}

/// One scenario's world.
pub struct World {
    pub pg: Postgres,
    pub redis: Redis,
    pub nodes: Vec<Node>,
    /// Per node: its links to Redis and to PostgreSQL.
    pub links: Vec<(Arc<Proxy>, Arc<Proxy>)>,
    pub front: String,
    pub http: reqwest::Client,
}

const TOKEN_SECRET: &str = "fault-run-token-secret-0123456789abcdef";
pub const SANDBOX_SECRET: &str = "fault-run-sandbox-secret-0123456789abcdef";
const CREDENTIALS_KEY: &str = "fault-run-credentials-key-0123456789abcdef";

async fn build(o: &Options, dir: &std::path::Path) -> Result<World, Failure> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .pool_max_idle_per_host(64)
        .build()?;
    let pg = Postgres::create(dir).await?;
    let redis = Redis::start(infra::free_port()?).await?;
    // The balancer's port is the nodes' public address, known before them.
    let mut nodes = Vec::new();
    let mut links = Vec::new();
    let mut ports = Vec::new();
    let front_port = infra::free_port()?;
    for name in ["a", "b"] {
        let to_redis = Proxy::start(redis.port).await?;
        let to_pg = Proxy::start(pg.port).await?;
        let env = vec![
            ("HAUL_DATABASE_URL".to_owned(), pg.url(to_pg.port)),
            (
                "HAUL_REDIS_URL".to_owned(),
                format!("redis://127.0.0.1:{}", to_redis.port),
            ),
            (
                "HAUL_DATA_DIR".to_owned(),
                dir.join(format!("node-{name}")).display().to_string(),
            ),
            ("HAUL_PUBLIC_URL".to_owned(), format!("http://127.0.0.1:{front_port}")),
            ("HAUL_TOKEN_SECRET".to_owned(), TOKEN_SECRET.to_owned()),
            ("HAUL_SANDBOX_SECRET".to_owned(), SANDBOX_SECRET.to_owned()),
            ("HAUL_CREDENTIALS_KEY".to_owned(), CREDENTIALS_KEY.to_owned()),
            // Duplicate and reordered callbacks, all the time.
            ("HAUL_SANDBOX_CHAOS".to_owned(), "true".to_owned()),
            ("HAUL_WEBHOOKS_ALLOW_PRIVATE".to_owned(), "true".to_owned()),
            ("HAUL_RATE_BUYER".to_owned(), "off".to_owned()),
            ("HAUL_RATE_ADDR".to_owned(), "off".to_owned()),
            ("HAUL_HOLDS_PER_ADDR".to_owned(), "off".to_owned()),
            ("HAUL_LOG".to_owned(), "warn".to_owned()),
        ];
        let node = Node::new(name, o.haul.clone(), env, dir.join(format!("node-{name}.log")))?;
        ports.push(node.port);
        nodes.push(node);
        links.push((to_redis, to_pg));
    }
    for n in &mut nodes {
        n.start(&http).await?;
    }
    infra::balancer_on(front_port, ports).await?;
    Ok(World {
        pg,
        redis,
        nodes,
        links,
        front: format!("http://127.0.0.1:{front_port}"),
        http,
    })
}

/// The nemesis: what it did, for the report.
async fn inject(w: &mut World, fault: Fault) -> Result<String, Failure> {
    Ok(match fault {
        Fault::NodeKill => {
            w.nodes[0].kill().await;
            "node a killed (SIGKILL)".into()
        }
        Fault::RedisKill => {
            w.redis.kill().await;
            "Redis killed (SIGKILL)".into()
        }
        Fault::RedisShutdown => {
            w.redis.shutdown_nosave().await?;
            "Redis SHUTDOWN NOSAVE".into()
        }
        Fault::PostgresRestart => {
            w.pg.crash().await?;
            "PostgreSQL stopped (immediate)".into()
        }
        Fault::RedisCut => {
            w.links[0].0.set(Link::Cut);
            "node a cut off from Redis".into()
        }
        Fault::PostgresCut => {
            w.links[0].1.set(Link::Cut);
            "node a cut off from PostgreSQL".into()
        }
        Fault::SlowLinks => {
            w.links[1].0.set(Link::Slow(Duration::from_millis(50)));
            w.links[1].1.set(Link::Slow(Duration::from_millis(50)));
            "node b's links slowed by 50 ms".into()
        }
        Fault::Calm => "nothing".into(),
    })
}

async fn heal(w: &mut World, fault: Fault) -> Result<String, Failure> {
    Ok(match fault {
        Fault::NodeKill => {
            let http = w.http.clone();
            w.nodes[0].start(&http).await?;
            "node a restarted".into()
        }
        Fault::RedisKill | Fault::RedisShutdown => {
            w.redis.restart().await?;
            "Redis restarted empty".into()
        }
        Fault::PostgresRestart => {
            w.pg.start().await?;
            "PostgreSQL started".into()
        }
        Fault::RedisCut | Fault::PostgresCut | Fault::SlowLinks => {
            for (r, p) in &w.links {
                r.set(Link::Pass);
                p.set(Link::Pass);
            }
            "links healed".into()
        }
        Fault::Calm => "nothing".into(),
    })
}

/// The seller's side: a webhook endpoint, a live stream and an offer.
async fn set_up(w: &World, o: &Options, key: &str, sink: std::net::SocketAddr) -> Result<(String, String), Failure> {
    let auth = format!("Bearer {key}");
    let post = |path: &str| w.http.post(format!("{}{path}", w.front)).header("authorization", &auth);
    expect(
        post("/v1/webhook-endpoints").json(&json!({ "url": format!("http://{sink}/hooks") })),
        201,
        "add a webhook endpoint",
    )
    .await?;
    let s = expect(
        post("/v1/streams").json(&json!({ "title": "Fault sale" })),
        201,
        "create stream",
    )
    .await?;
    let sid = text(&s, "id")?;
    expect(post(&format!("/v1/streams/{sid}/live")), 200, "go live").await?;
    let l = expect(
        post(&format!("/v1/streams/{sid}/lots")).json(&json!({ "title": "Kettle" })),
        201,
        "create lot",
    )
    .await?;
    let lid = text(&l, "id")?;
    let off = expect(
        post(&format!("/v1/lots/{lid}/offers")).json(&json!({
            "price_minor": 99000, "currency": "RUB", "quantity": o.quantity, "per_buyer_limit": 3,
            "duration_seconds": o.seconds + 600, "hold_ttl_seconds": o.hold_ttl })),
        201,
        "create offer",
    )
    .await?;
    let oid = text(&off, "id")?;
    expect(post(&format!("/v1/offers/{oid}/start")), 200, "start offer").await?;
    Ok((sid, oid))
}

async fn scenario(o: &Options, fault: Fault, dir: &std::path::Path) -> Result<checker::Verdict, Failure> {
    let started = Instant::now();
    let mut w = build(o, dir).await?;
    let key = infra::seller_key(&o.haul, &w.nodes[0].env_for_cli()).await?;
    let (sink, hooks) = infra::webhook_sink().await?;
    let (sid, oid) = set_up(&w, o, &key, sink).await?;
    let watcher = checker::Watcher::start(w.nodes.iter().map(|n| n.port).collect(), sid.clone(), oid.clone());
    let plan = workload::Plan {
        front: w.front.clone(),
        key: key.clone(),
        offer: oid.clone(),
        nodes: w.nodes.iter().map(Node::base).collect(),
        buyers: o.buyers,
        hold_ttl: Duration::from_secs(o.hold_ttl),
        until: Instant::now() + Duration::from_secs(o.seconds),
    };
    let history = workload::History::default();
    let run = tokio::spawn(workload::run(plan, history.clone(), w.http.clone()));
    let third = Duration::from_secs(o.seconds) / 3;
    tokio::time::sleep(third).await;
    let mut nemesis = vec![(started.elapsed(), inject(&mut w, fault).await?)];
    tokio::time::sleep(third).await;
    nemesis.push((started.elapsed(), heal(&mut w, fault).await?));
    let healed_at = workload::now_ms();
    run.await.map_err(|e| Failure(format!("the workload panicked: {e}")))?;
    nemesis.push((started.elapsed(), "workload over".into()));
    let verdict = checker::check(
        &w,
        &checker::Inputs {
            offer: &oid,
            quantity: o.quantity,
            history: &history,
            hooks: &hooks,
            watcher: &watcher,
            hold_ttl: Duration::from_secs(o.hold_ttl),
            healed_at,
        },
    )
    .await?;
    if let Some(keep) = &o.keep {
        std::fs::create_dir_all(keep)?;
        history.save(&keep.join(format!("{}.history.jsonl", name(fault))))?;
    }
    for n in &mut w.nodes {
        n.kill().await;
    }
    w.redis.kill().await;
    w.pg.stop().await;
    let mut verdict = verdict;
    verdict.nemesis = nemesis;
    verdict.elapsed = started.elapsed();
    Ok(verdict)
}

pub async fn run(o: Options) -> Result<bool, Failure> {
    let root = std::env::temp_dir().join(format!("haul-faults-{}", std::process::id()));
    let mut all_ok = true;
    let mut table = Vec::new();
    for &fault in &o.scenarios {
        let dir = root.join(name(fault));
        std::fs::create_dir_all(&dir)?;
        println!(
            "== {} ({} buyers, {} units, {} s)",
            name(fault),
            o.buyers,
            o.quantity,
            o.seconds
        );
        let verdict = match tokio::time::timeout(Duration::from_secs(o.seconds + 240), scenario(&o, fault, &dir)).await
        {
            Ok(Ok(v)) => v,
            Ok(Err(e)) => {
                println!("   could not run: {}", e.0);
                all_ok = false;
                table.push((name(fault), None));
                continue;
            }
            Err(_) => {
                println!("   did not finish in time");
                all_ok = false;
                table.push((name(fault), None));
                continue;
            }
        };
        verdict.print();
        all_ok &= verdict.ok();
        table.push((name(fault), Some(verdict)));
        if let Some(keep) = &o.keep {
            let logs = keep.join(name(fault));
            std::fs::create_dir_all(&logs)?;
            for f in ["node-a.log", "node-b.log"] {
                let _ = std::fs::copy(dir.join(f), logs.join(f));
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
    let _ = std::fs::remove_dir_all(&root);
    println!("\n{}", checker::table(&table));
    println!(
        "{}",
        if all_ok {
            "faults: all promises kept"
        } else {
            "faults: VIOLATIONS (see above)"
        }
    );
    Ok(all_ok)
}
