//! `loadtest callbacks`: a storm of signed sandbox callbacks, each sent
//! several times and all shuffled together (so duplicates race and later
//! states often arrive before earlier ones), against checkout orders made
//! for the run. Reports callbacks per second and latency, then checks that
//! every order ended in exactly the state its final callback set.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rand::seq::SliceRandom;
use serde_json::json;

use crate::{call, expect, percentile, text, Failure};

pub const USAGE: &str = "\
usage: loadtest callbacks --api-key KEY --sandbox-secret SECRET [options]

  --url URL            gateway base URL (default http://127.0.0.1:8080)
  --api-key KEY        a seller API key (hk_…)
  --sandbox-secret S   the gateway's HAUL_SANDBOX_SECRET
  --orders N           orders to pay (default 500)
  --copies N           times each callback is sent (default 3)
  --concurrency N      callbacks in flight (default 64)";

#[derive(Debug, Clone)]
pub struct Options {
    url: String,
    api_key: String,
    secret: String,
    orders: usize,
    copies: usize,
    concurrency: usize,
}

pub fn parse(args: &[String]) -> Result<Options, String> {
    let mut o = Options {
        url: "http://127.0.0.1:8080".into(),
        api_key: String::new(),
        secret: String::new(),
        orders: 500,
        copies: 3,
        concurrency: 64,
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let num = |lo: usize, hi: usize| loadtest::number(flag, value, lo as u64, hi as u64).map(|n| n as usize);
        match flag.as_str() {
            "--url" => o.url = value.trim_end_matches('/').to_owned(),
            "--api-key" => o.api_key = value.clone(),
            "--sandbox-secret" => o.secret = value.clone(),
            "--orders" => o.orders = num(1, 100_000)?,
            "--copies" => o.copies = num(1, 10)?,
            "--concurrency" => o.concurrency = num(1, 1000)?,
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    if o.api_key.is_empty() || o.secret.is_empty() {
        return Err("--api-key and --sandbox-secret are required".into());
    }
    Ok(o)
}

struct Planned {
    session: String,
    attempt: String,
    amount: i64,
    /// The state the last callback sets.
    final_state: &'static str,
}

/// Checkout sessions to pay, each with a sandbox attempt.
async fn plan(o: &Options, http: &reqwest::Client, auth: &str) -> Result<Vec<Planned>, Failure> {
    let started = Instant::now();
    let mut planned = Vec::with_capacity(o.orders);
    for chunk in (0..o.orders).collect::<Vec<_>>().chunks(o.concurrency) {
        let made = chunk.iter().map(|&i| {
            let (http, auth, url) = (http.clone(), auth.to_owned(), o.url.clone());
            async move {
                let amount = 10_000 + (i as i64 % 90) * 1_000;
                let s = expect(
                    http.post(format!("{url}/v1/checkout/sessions"))
                        .header("authorization", &auth)
                        .json(&json!({
                            "amount_minor": amount, "currency": "RUB", "reference": format!("load-{i}"),
                            "items": [{ "name": "Item", "quantity": 1, "price_minor": amount, "vat": "none" }],
                            "success_url": "https://shop.example/ok", "cancel_url": "https://shop.example/",
                            "customer_email": "load@example.com" })),
                    201,
                    "create a session",
                )
                .await?;
                let session = text(&s, "id")?;
                let a = expect(
                    http.post(format!("{url}/v1/checkout/sessions/{session}/attempts"))
                        .json(&json!({ "acquirer": "sandbox" })),
                    201,
                    "start an attempt",
                )
                .await?;
                Ok::<_, Failure>(Planned {
                    session,
                    attempt: text(&a, "id")?,
                    amount,
                    final_state: if i % 5 == 4 { "failed" } else { "succeeded" },
                })
            }
        });
        for p in futures_util::future::join_all(made).await {
            planned.push(p?);
        }
    }
    println!(
        "{} orders with sandbox attempts made in {:.1} s",
        planned.len(),
        started.elapsed().as_secs_f64()
    );

    Ok(planned)
}

/// Sends every callback (`concurrency` at a time), then prints the rate,
/// latency and outcomes; the outcomes.
async fn send_all(o: &Options, http: &reqwest::Client, storm: Vec<String>) -> BTreeMap<String, u64> {
    let storm = Arc::new(storm);
    let next = Arc::new(AtomicUsize::new(0));
    let outcomes = Arc::new(Mutex::new(BTreeMap::<String, u64>::new()));
    let latencies = Arc::new(Mutex::new(Vec::with_capacity(storm.len())));
    let t0 = Instant::now();
    let workers: Vec<_> = (0..o.concurrency)
        .map(|_| {
            let (http, storm, next, outcomes, latencies) = (
                http.clone(),
                storm.clone(),
                next.clone(),
                outcomes.clone(),
                latencies.clone(),
            );
            let (url, secret) = (format!("{}/v1/callbacks/sandbox", o.url), o.secret.clone());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(body) = storm.get(i) else { return };
                    let now = SystemTime::now()
                        .duration_since(UNIX_EPOCH)
                        .map(|d| d.as_secs() as i64)
                        .unwrap_or(0);
                    let sig = payments::sandbox::sign(secret.as_bytes(), now, body.as_bytes());
                    let start = Instant::now();
                    let answer = call(
                        http.post(&url)
                            .header(payments::sandbox::SIGNATURE_HEADER, sig)
                            .header("content-type", "application/json")
                            .body(body.clone()),
                    )
                    .await;
                    let us = start.elapsed().as_micros().min(u32::MAX as u128) as u32;
                    let key = match answer {
                        Ok((200, v)) => v["outcome"].as_str().unwrap_or("?").to_owned(),
                        Ok((status, _)) => format!("http_{status}"),
                        Err(_) => "transport_error".to_owned(),
                    };
                    *outcomes
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .entry(key)
                        .or_insert(0) += 1;
                    latencies.lock().unwrap_or_else(|e| e.into_inner()).push(us);
                }
            })
        })
        .collect();
    for w in workers {
        let _ = w.await;
    }
    let secs = t0.elapsed().as_secs_f64();
    let mut lat = std::mem::take(&mut *latencies.lock().unwrap_or_else(|e| e.into_inner()));
    lat.sort_unstable();
    let outcomes = outcomes.lock().unwrap_or_else(|e| e.into_inner()).clone();
    println!(
        "{} callbacks in {secs:.2} s: {:.0} callbacks/s; latency ms p50 {:.2} p99 {:.2} p99.9 {:.2}",
        storm.len(),
        storm.len() as f64 / secs,
        percentile(&lat, 50.0),
        percentile(&lat, 99.0),
        percentile(&lat, 99.9)
    );
    println!("outcomes: {outcomes:?}");

    outcomes
}

pub async fn run(o: Options) -> Result<bool, Failure> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(o.concurrency)
        .build()?;
    let auth = format!("Bearer {}", o.api_key);

    // Orders to pay: checkout sessions, each with a sandbox attempt.
    let planned = plan(&o, &http, &auth).await?;

    // Every callback, `copies` times, all shuffled.
    let mut storm: Vec<String> = Vec::new();
    for p in &planned {
        for status in ["pending", p.final_state] {
            let body = json!({
                "event_id": format!("evt_{}_{status}", p.attempt), "payment_id": p.attempt, "status": status,
                "amount_minor": p.amount, "currency": "RUB",
                "decline_code": if status == "failed" { Some("card_declined") } else { None },
                "created_at": 0 })
            .to_string();
            for _ in 0..o.copies {
                storm.push(body.clone());
            }
        }
    }
    storm.shuffle(&mut rand::rng());
    let outcomes = send_all(&o, &http, storm).await;

    // Every order in exactly the state its final callback set.
    let mut wrong = Vec::new();
    for p in &planned {
        let (status, v) = call(
            http.get(format!("{}/v1/checkout/sessions/{}", o.url, p.session))
                .header("authorization", &auth),
        )
        .await?;
        if status != 200 || v["state"] != p.final_state {
            wrong.push(format!("{}: {} (wanted {})", p.session, v["state"], p.final_state));
        }
    }
    let applied = outcomes.get("applied").copied().unwrap_or(0) as usize;
    let errors: u64 = outcomes
        .iter()
        .filter(|(k, _)| k.starts_with("http_") || *k == "transport_error")
        .map(|(_, n)| n)
        .sum();
    // Each distinct callback was taken once (applied, or ignored when the
    // state had moved past it); every other copy was a duplicate; each
    // order's final callback took effect.
    let unique = 2 * planned.len();
    let ignored = outcomes.get("ignored").copied().unwrap_or(0) as usize;
    let duplicates = outcomes.get("duplicate").copied().unwrap_or(0) as usize;
    let applied_ok = (planned.len()..=unique).contains(&applied)
        && applied + ignored == unique
        && duplicates == unique * (o.copies - 1);
    if wrong.is_empty() && errors == 0 && applied_ok {
        println!("OK: every order ended in exactly its one correct state; {applied} callbacks took effect");
        Ok(true)
    } else {
        println!(
            "FAILED: {} orders wrong, {errors} errors, {applied} applied",
            wrong.len()
        );
        for w in wrong.iter().take(10) {
            println!("  {w}");
        }
        Ok(false)
    }
}
