//! Load scenarios against a running `haul`.
//!
//! `loadtest buy-storm` puts N concurrent buyers on one offer. Each buyer, in a
//! loop, tries to hold one unit more than the per-buyer limit allows, then
//! releases what it got; a share of holds is committed as sales by the seller.
//! It reports reserve throughput, latency percentiles and refusals by reason,
//! and checks throughout and afterwards that held + sold never exceeds the
//! quantity and that no buyer ever held more than the limit.
//!
//! # Layout
//! - this file: the command line and `buy-storm`;
//! - `viewers`: many viewers over the realtime protocol, publishing and
//!   measuring delivery;
//! - `callbacks`: signed sandbox callbacks against the callback endpoint.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

mod callbacks;
mod orderbook;
mod viewers;

use loadtest::{call, expect, faults, text, Failure};

const USAGE: &str = "\
usage: loadtest buy-storm --api-key KEY [options]

  --url URL          gateway base URL (default http://127.0.0.1:8080)
  --api-key KEY      a seller API key (hk_…)
  --buyers N         concurrent buyers (default 200)
  --quantity N       units on the offer (default 100)
  --limit N          per-buyer limit (default 2)
  --duration SECS    how long the storm lasts (default 10)
  --commit-percent P share of holds the seller commits as sales (default 0)
  --sources N        spread connections over 127.0.0.1 … 127.0.0.N (default 1)

Run the gateway with HAUL_RATE_BUYER=off HAUL_RATE_ADDR=off HAUL_HOLDS_PER_ADDR=off to measure the
stock engine rather than the rate limiter.";

#[derive(Debug, Clone)]
struct Options {
    url: String,
    api_key: String,
    buyers: usize,
    quantity: i64,
    limit: i64,
    duration: Duration,
    commit_percent: u64,
    sources: u8,
}

fn parse(args: &[String]) -> Result<Options, String> {
    let mut o = Options {
        url: "http://127.0.0.1:8080".into(),
        api_key: String::new(),
        buyers: 200,
        quantity: 100,
        limit: 2,
        duration: Duration::from_secs(10),
        commit_percent: 0,
        sources: 1,
    };
    let mut it = args.iter();
    match it.next().map(String::as_str) {
        Some("buy-storm") => {}
        Some(other) => return Err(format!("unknown scenario {other:?}")),
        None => return Err("no scenario given".into()),
    }
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let num = |lo: u64, hi: u64| loadtest::number(flag, value, lo, hi);
        match flag.as_str() {
            "--url" => o.url = value.trim_end_matches('/').to_owned(),
            "--api-key" => o.api_key = value.clone(),
            "--buyers" => o.buyers = num(1, 100_000)? as usize,
            "--quantity" => o.quantity = num(1, 1_000_000)? as i64,
            "--limit" => o.limit = num(1, 100)? as i64,
            "--duration" => o.duration = Duration::from_secs(num(1, 3600)?),
            "--commit-percent" => o.commit_percent = num(0, 100)?,
            "--sources" => o.sources = num(1, 250)? as u8,
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    if o.api_key.is_empty() {
        return Err("--api-key is required".into());
    }
    Ok(o)
}

/// Shared counters of the storm.
#[derive(Default)]
struct Tally {
    reserves: AtomicU64,
    holds: AtomicU64,
    releases: AtomicU64,
    commits: AtomicU64,
    transport_errors: AtomicU64,
    /// Holds granted and not yet released or committed, as the buyers know them.
    live: AtomicI64,
    max_live: AtomicI64,
    violations: std::sync::Mutex<Vec<String>>,
    refusals: std::sync::Mutex<BTreeMap<String, u64>>,
}

impl Tally {
    fn violation(&self, what: String) {
        eprintln!("VIOLATION: {what}");
        self.violations.lock().expect("tally lock").push(what);
    }
    fn refused(&self, code: &str) {
        *self
            .refusals
            .lock()
            .expect("tally lock")
            .entry(code.to_owned())
            .or_default() += 1;
    }
}

struct Storm {
    o: Options,
    offer: String,
    tally: Tally,
    stop: AtomicBool,
}

async fn buyer(storm: Arc<Storm>, client: reqwest::Client, token: String, n: usize) -> Vec<u32> {
    let mut latencies = Vec::with_capacity(4096);
    let reserve_url = format!("{}/v1/offers/{}/reserve", storm.o.url, storm.offer);
    let t = &storm.tally;
    let mut seq = 0u64;
    let mut rng = (n as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    while !storm.stop.load(Ordering::Relaxed) {
        let mut held: Vec<String> = Vec::new();
        for _ in 0..=storm.o.limit {
            seq += 1;
            let started = Instant::now();
            let r = call(
                client
                    .post(&reserve_url)
                    .bearer_auth(&token)
                    .json(&json!({ "quantity": 1, "request_id": format!("b{n}-{seq}") })),
            )
            .await;
            latencies.push(started.elapsed().as_micros().min(u32::MAX as u128) as u32);
            t.reserves.fetch_add(1, Ordering::Relaxed);
            match r {
                Ok((201, body)) => {
                    t.holds.fetch_add(1, Ordering::Relaxed);
                    let live = t.live.fetch_add(1, Ordering::SeqCst) + 1;
                    t.max_live.fetch_max(live, Ordering::Relaxed);
                    if live > storm.o.quantity {
                        t.violation(format!(
                            "{live} holds live at once on a quantity of {}",
                            storm.o.quantity
                        ));
                    }
                    match body["hold"]["id"].as_str() {
                        Some(id) => held.push(id.to_owned()),
                        None => t.violation(format!("hold without id: {body}")),
                    }
                    if held.len() as i64 > storm.o.limit {
                        t.violation(format!(
                            "buyer {n} holds {} units over a limit of {}",
                            held.len(),
                            storm.o.limit
                        ));
                    }
                }
                Ok((status, body)) => {
                    let code = body["error"]["code"].as_str().unwrap_or("no_code");
                    t.refused(&format!("{status} {code}"));
                    if code == "offer_ended" {
                        storm.stop.store(true, Ordering::Relaxed);
                    }
                }
                Err(e) => {
                    t.transport_errors.fetch_add(1, Ordering::Relaxed);
                    t.refused(&format!("transport: {}", e.0));
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
        for hold in held {
            // xorshift: which holds become sales.
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let commit = rng % 100 < storm.o.commit_percent;
            t.live.fetch_sub(1, Ordering::SeqCst);
            settle_hold(&storm, &client, &token, &hold, commit).await;
        }
    }
    latencies
}

/// Commits a hold as the seller, or releases it as the buyer, and counts it.
async fn settle_hold(storm: &Storm, client: &reqwest::Client, token: &str, hold: &str, commit: bool) {
    let t = &storm.tally;
    let req = if commit {
        client
            .post(format!("{}/v1/offers/{}/holds/{hold}/commit", storm.o.url, storm.offer))
            .bearer_auth(&storm.o.api_key)
    } else {
        client
            .post(format!(
                "{}/v1/offers/{}/holds/{hold}/release",
                storm.o.url, storm.offer
            ))
            .bearer_auth(token)
    };
    match call(req).await {
        Ok((200, _)) if commit => {
            t.commits.fetch_add(1, Ordering::Relaxed);
        }
        Ok((200, _)) => {
            t.releases.fetch_add(1, Ordering::Relaxed);
        }
        Ok((status, body)) => t.violation(format!("hold {hold} could not be settled: HTTP {status}: {body}")),
        Err(e) => t.violation(format!("hold {hold} could not be settled: {}", e.0)),
    }
}

/// Samples the seller's view of the offer while the storm runs.
async fn monitor(storm: Arc<Storm>, client: reqwest::Client) -> u64 {
    let url = format!("{}/v1/offers/{}", storm.o.url, storm.offer);
    let mut samples = 0;
    while !storm.stop.load(Ordering::Relaxed) {
        if let Ok((200, v)) = call(client.get(&url).bearer_auth(&storm.o.api_key)).await {
            samples += 1;
            check_levels(&storm, &v);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    samples
}

fn check_levels(storm: &Storm, v: &Value) -> (i64, i64) {
    let held = v["held"].as_i64().unwrap_or(0);
    let sold = v["sold"].as_i64().unwrap_or(0);
    if held + sold > storm.o.quantity || held < 0 || sold < 0 {
        storm.tally.violation(format!(
            "held {held} + sold {sold} on a quantity of {}",
            storm.o.quantity
        ));
    }
    (held, sold)
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1] as f64 / 1000.0
}

fn clients(o: &Options) -> Result<Vec<reqwest::Client>, Failure> {
    (1..=o.sources)
        .map(|i| {
            let mut b = reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .pool_max_idle_per_host(o.buyers);
            if o.sources > 1 {
                b = b.local_address(IpAddr::from([127, 0, 0, i]));
            }
            b.build().map_err(Failure::from)
        })
        .collect()
}

/// A live stream with one lot and a started offer, and one viewer token per
/// buyer: the offer's id and the tokens.
async fn set_up_offer(o: &Options, seller: &reqwest::Client) -> Result<(String, Vec<String>), Failure> {
    let key = o.api_key.as_str();
    let stream = expect(
        seller
            .post(format!("{}/v1/streams", o.url))
            .bearer_auth(key)
            .json(&json!({ "title": "buy-storm" })),
        201,
        "create stream",
    )
    .await?;
    let stream_id = text(&stream, "id")?;
    expect(
        seller
            .post(format!("{}/v1/streams/{stream_id}/live", o.url))
            .bearer_auth(key),
        200,
        "go live",
    )
    .await?;
    let lot = expect(
        seller
            .post(format!("{}/v1/streams/{stream_id}/lots", o.url))
            .bearer_auth(key)
            .json(&json!({ "title": "storm lot" })),
        201,
        "add lot",
    )
    .await?;
    let lot_id = text(&lot, "id")?;
    let run_secs = o.duration.as_secs() as i64;
    let offer = expect(
        seller
            .post(format!("{}/v1/lots/{lot_id}/offers", o.url))
            .bearer_auth(key)
            .json(&json!({
                "price_minor": 1990, "currency": "RUB", "quantity": o.quantity,
                "per_buyer_limit": o.limit, "duration_seconds": run_secs + 120, "hold_ttl_seconds": 60,
            })),
        201,
        "create offer",
    )
    .await?;
    let offer_id = text(&offer, "id")?;
    let mut tokens = Vec::with_capacity(o.buyers);
    let run = format!(
        "{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_millis()
    );
    for n in 0..o.buyers {
        let t = expect(
            seller
                .post(format!("{}/v1/viewer-tokens", o.url))
                .bearer_auth(key)
                .json(&json!({ "viewer_id": format!("storm-{run}-{n}") })),
            201,
            "mint viewer token",
        )
        .await?;
        tokens.push(text(&t, "token")?);
    }
    expect(
        seller
            .post(format!("{}/v1/offers/{offer_id}/start", o.url))
            .bearer_auth(key),
        200,
        "start offer",
    )
    .await?;
    println!(
        "buy-storm: offer {offer_id}, quantity {}, limit {}, {} buyers over {} source address(es), {}s",
        o.quantity, o.limit, o.buyers, o.sources, run_secs
    );

    Ok((offer_id, tokens))
}

/// Prints the run's figures and checks; the number of violations.
fn report(storm: &Storm, latencies: &[u32], elapsed: Duration, samples: u64, after: (i64, i64, i64)) -> usize {
    let (held, sold, commits) = after;
    let (o, t) = (&storm.o, &storm.tally);
    let reserves = t.reserves.load(Ordering::Relaxed);
    let secs = elapsed.as_secs_f64();
    println!(
        "reserves:        {reserves} in {secs:.1}s = {:.0}/s",
        reserves as f64 / secs
    );
    println!(
        "holds granted:   {} ({:.0}/s)",
        t.holds.load(Ordering::Relaxed),
        t.holds.load(Ordering::Relaxed) as f64 / secs
    );
    println!(
        "reserve latency: p50 {:.2} ms, p99 {:.2} ms, p999 {:.2} ms, max {:.2} ms",
        percentile(latencies, 50.0),
        percentile(latencies, 99.0),
        percentile(latencies, 99.9),
        percentile(latencies, 100.0)
    );
    println!("released: {}, committed: {commits}", t.releases.load(Ordering::Relaxed));
    println!("refusals:");
    for (code, n) in t.refusals.lock().expect("tally lock").iter() {
        println!("  {code}: {n}");
    }
    println!(
        "stock check: {samples} samples during the storm, at most {} holds live at once (quantity {}), after: held {held}, sold {sold}",
        t.max_live.load(Ordering::Relaxed),
        o.quantity
    );
    let violations = t.violations.lock().expect("tally lock").len();
    if violations == 0 {
        println!("OK: held + sold never exceeded the quantity; no buyer went over the limit");
    } else {
        println!("FAILED: {violations} violation(s)");
    }
    violations
}

async fn buy_storm(o: Options) -> Result<bool, Failure> {
    let clients = clients(&o)?;
    let seller = &clients[0];
    let (offer_id, tokens) = set_up_offer(&o, seller).await?;
    let key = o.api_key.as_str();
    let storm = Arc::new(Storm {
        o: o.clone(),
        offer: offer_id.clone(),
        tally: Tally::default(),
        stop: AtomicBool::new(false),
    });
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(o.buyers);
    for (n, token) in tokens.into_iter().enumerate() {
        let client = clients[n % clients.len()].clone();
        tasks.push(tokio::spawn(buyer(storm.clone(), client, token, n)));
    }
    let mon = tokio::spawn(monitor(storm.clone(), seller.clone()));
    tokio::time::sleep(o.duration).await;
    storm.stop.store(true, Ordering::Relaxed);
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await?);
    }
    let elapsed = started.elapsed();
    let samples = mon.await?;

    // Every hold was released or committed: nothing is held, sold is exact.
    let after = expect(
        seller.get(format!("{}/v1/offers/{offer_id}", o.url)).bearer_auth(key),
        200,
        "read offer",
    )
    .await?;
    let (held, sold) = check_levels(&storm, &after);
    let t = &storm.tally;
    let commits = t.commits.load(Ordering::Relaxed) as i64;
    if held != 0 {
        t.violation(format!("{held} units still held after every hold was settled"));
    }
    if sold != commits {
        t.violation(format!("{sold} units sold, {commits} commits acknowledged"));
    }
    let _ = call(
        seller
            .post(format!("{}/v1/offers/{offer_id}/cancel", o.url))
            .bearer_auth(key),
    )
    .await;

    latencies.sort_unstable();
    let violations = report(&storm, &latencies, elapsed, samples, (held, sold, commits));
    Ok(violations == 0)
}

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().is_some_and(|a| a == "--help" || a == "-h") {
        println!(
            "{USAGE}\n\n{}\n\n{}\n\n{}\n\n{}",
            viewers::USAGE,
            callbacks::USAGE,
            faults::USAGE,
            orderbook::USAGE
        );
        return ExitCode::SUCCESS;
    }
    let outcome = match args.first().map(String::as_str) {
        Some("viewers") => match viewers::parse(&args[1..]) {
            Ok(o) => Some(viewers::run(o).await),
            Err(e) => {
                eprintln!("loadtest: {e}\n\n{}", viewers::USAGE);
                return ExitCode::from(2);
            }
        },
        Some("faults") => match faults::parse(&args[1..]) {
            Ok(o) => Some(faults::run(o).await),
            Err(e) => {
                eprintln!("loadtest: {e}\n\n{}", faults::USAGE);
                return ExitCode::from(2);
            }
        },
        Some("orders") => match orderbook::parse(&args[1..]) {
            Ok(o) => Some(orderbook::run(o).await),
            Err(e) => {
                eprintln!("loadtest: {e}\n\n{}", orderbook::USAGE);
                return ExitCode::from(2);
            }
        },
        Some("viewers-worker") => Some(viewers::worker(&args[1..]).await),
        Some("callbacks") => match callbacks::parse(&args[1..]) {
            Ok(o) => Some(callbacks::run(o).await),
            Err(e) => {
                eprintln!("loadtest: {e}\n\n{}", callbacks::USAGE);
                return ExitCode::from(2);
            }
        },
        _ => None,
    };
    if let Some(outcome) = outcome {
        return match outcome {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => ExitCode::FAILURE,
            Err(e) => {
                eprintln!("loadtest: {}", e.0);
                ExitCode::FAILURE
            }
        };
    }
    let o = match parse(&args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("loadtest: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match buy_storm(o).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("loadtest: {}", e.0);
            ExitCode::FAILURE
        }
    }
}
