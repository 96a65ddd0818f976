//! `loadtest viewers`: many WebSocket viewers on one stream, events published
//! at a set rate, publish-to-receive latency measured on one clock.
//!
//! One process may hold only so many sockets, so the viewers live in worker
//! processes (this binary, `viewers-worker`), each opening its share over
//! several 127.0.0.x source addresses (~28k ports each) and across the given
//! gateway nodes. The coordinator creates the stream, waits for every worker
//! to connect, reads the gateways' resident memory (idle viewers), then
//! publishes streamer messages carrying their send time in microseconds and
//! merges what the workers measured.

use std::net::{IpAddr, SocketAddr};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpSocket;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

use crate::{expect, text, Failure};

pub const USAGE: &str = "\
usage: loadtest viewers --api-key KEY [options]

  --url URL[,URL…]     gateway node(s); viewers and publishes spread over them
                       (default http://127.0.0.1:8080)
  --api-key KEY        a seller API key (hk_…)
  --viewers N          viewers to open (default 1000)
  --per-worker N       viewers per worker process (default 15000; each process
                       may hold only so many open files)
  --sources N          bind to 127.0.0.1 … 127.0.0.N (default 4)
  --rate N             events published per second (default 10)
  --duration SECS      how long events are published (default 10)
  --gateway-pid PID[,PID…]  gateway processes whose resident memory to report

Run the gateway(s) with HAUL_VIEWERS_PER_ADDR above the viewers per source
address, and an open-file limit above the viewers per node.";

/// Latency histogram: 10 µs buckets up to 2 s (the last bucket takes the rest).
const BUCKET_US: u64 = 10;
const BUCKETS: usize = 200_000;

#[derive(Debug, Clone)]
pub struct Options {
    urls: Vec<String>,
    api_key: String,
    viewers: usize,
    per_worker: usize,
    sources: u8,
    rate: u64,
    duration: Duration,
    pids: Vec<u32>,
}

pub fn parse(args: &[String]) -> Result<Options, String> {
    let mut o = Options {
        urls: vec!["http://127.0.0.1:8080".into()],
        api_key: String::new(),
        viewers: 1000,
        per_worker: 15_000,
        sources: 4,
        rate: 10,
        duration: Duration::from_secs(10),
        pids: Vec::new(),
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let num = |lo: u64, hi: u64| loadtest::number(flag, value, lo, hi);
        match flag.as_str() {
            "--url" => o.urls = value.split(',').map(|u| u.trim_end_matches('/').to_owned()).collect(),
            "--api-key" => o.api_key = value.clone(),
            "--viewers" => o.viewers = num(1, 1_000_000)? as usize,
            "--per-worker" => o.per_worker = num(1, 100_000)? as usize,
            "--sources" => o.sources = num(1, 250)? as u8,
            "--rate" => o.rate = num(1, 10_000)?,
            "--duration" => o.duration = Duration::from_secs(num(1, 3600)?),
            "--gateway-pid" => {
                o.pids = value
                    .split(',')
                    .map(|p| p.parse().map_err(|_| format!("--gateway-pid: bad pid {p:?}")))
                    .collect::<Result<_, _>>()?
            }
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    if o.api_key.is_empty() {
        return Err("--api-key is required".into());
    }
    Ok(o)
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn percentile(hist: &[u64], p: f64) -> f64 {
    let total: u64 = hist.iter().sum();
    if total == 0 {
        return 0.0;
    }
    let rank = ((p / 100.0) * total as f64).ceil().max(1.0) as u64;
    let mut seen = 0;
    for (i, n) in hist.iter().enumerate() {
        seen += n;
        if seen >= rank {
            return ((i as u64 + 1) * BUCKET_US) as f64 / 1000.0;
        }
    }
    (BUCKETS as u64 * BUCKET_US) as f64 / 1000.0
}

/// A worker process and the lines it prints.
type Worker = (
    tokio::process::Child,
    tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
);

/// Starts the worker processes, each with its share of the viewers, and
/// waits until all have connected: the workers, viewers connected, failed.
async fn start_workers(o: &Options, sid: &str) -> Result<(Vec<Worker>, u64, u64), Failure> {
    let exe = std::env::current_exe()?;
    let workers = o.viewers.div_ceil(o.per_worker);
    let mut children = Vec::new();
    for w in 0..workers {
        let share = (o.viewers - w * o.per_worker).min(o.per_worker);
        let mut child = tokio::process::Command::new(&exe)
            .args([
                "viewers-worker",
                &o.urls.join(","),
                sid,
                &share.to_string(),
                &o.sources.to_string(),
                &(w * o.per_worker).to_string(),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let lines = BufReader::new(child.stdout.take().ok_or_else(|| Failure("no stdout".into()))?).lines();
        children.push((child, lines));
    }
    let mut connected = 0u64;
    let mut failed = 0u64;
    for (_, lines) in children.iter_mut() {
        let line = tokio::time::timeout(Duration::from_secs(600), lines.next_line())
            .await
            .map_err(|_| Failure("a worker did not finish connecting in 10 minutes".into()))??
            .ok_or_else(|| Failure("a worker ended early".into()))?;
        let v: Value = serde_json::from_str(&line)?;
        connected += v["connected"].as_u64().unwrap_or(0);
        failed += v["failed"].as_u64().unwrap_or(0);
    }
    Ok((children, connected, failed))
}

/// Publishes notes at the set rate for the run, round-robin over the
/// nodes: how many were taken, and how many failed.
async fn publish(o: &Options, http: &reqwest::Client, auth: &str, sid: &str) -> (u64, u64) {
    let published = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let period = Duration::from_secs_f64(1.0 / o.rate as f64);
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let end = Instant::now() + o.duration;
    let mut n = 0usize;
    let mut sends = Vec::new();
    while Instant::now() < end {
        tick.tick().await;
        let url = format!("{}/v1/streams/{sid}/messages", o.urls[n % o.urls.len()]);
        n += 1;
        let (http, auth, published, errors) = (http.clone(), auth.to_owned(), published.clone(), errors.clone());
        sends.push(tokio::spawn(async move {
            let body = json!({ "text": format!("t={}", now_us()) });
            match http.post(url).header("authorization", auth).json(&body).send().await {
                Ok(r) if r.status().as_u16() == 202 => published.fetch_add(1, Ordering::Relaxed),
                _ => errors.fetch_add(1, Ordering::Relaxed),
            };
        }));
    }
    for s in sends {
        let _ = s.await;
    }
    (published.load(Ordering::Relaxed), errors.load(Ordering::Relaxed))
}

/// What the workers received.
struct Collected {
    hist: Vec<u64>,
    received: u64,
    gaps: u64,
    closed: u64,
}

/// Tells each worker to stop and reads its report.
async fn collect(children: Vec<Worker>) -> Result<Collected, Failure> {
    let mut hist = vec![0u64; BUCKETS];
    let (mut received, mut gaps, mut closed) = (0u64, 0u64, 0u64);
    for (mut child, mut lines) in children {
        drop(child.stdin.take());
        let line = tokio::time::timeout(Duration::from_secs(120), lines.next_line())
            .await
            .map_err(|_| Failure("a worker did not report".into()))??
            .ok_or_else(|| Failure("a worker ended without a report".into()))?;
        let v: Value = serde_json::from_str(&line)?;
        received += v["received"].as_u64().unwrap_or(0);
        gaps += v["gaps"].as_u64().unwrap_or(0);
        closed += v["closed"].as_u64().unwrap_or(0);
        for pair in v["hist"].as_array().into_iter().flatten() {
            let (i, c) = (pair[0].as_u64().unwrap_or(0) as usize, pair[1].as_u64().unwrap_or(0));
            if i < BUCKETS {
                hist[i] += c;
            }
        }
        let _ = child.wait().await;
    }
    Ok(Collected {
        hist,
        received,
        gaps,
        closed,
    })
}

/// The coordinator.
pub async fn run(o: Options) -> Result<bool, Failure> {
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build()?;
    let auth = format!("Bearer {}", o.api_key);
    let base = &o.urls[0];
    let s = expect(
        http.post(format!("{base}/v1/streams"))
            .header("authorization", &auth)
            .json(&json!({ "title": "viewers load" })),
        201,
        "create stream",
    )
    .await?;
    let sid = text(&s, "id")?;
    expect(
        http.post(format!("{base}/v1/streams/{sid}/live"))
            .header("authorization", &auth),
        200,
        "go live",
    )
    .await?;
    let rss_before: Vec<Option<u64>> = o.pids.iter().map(|p| rss_bytes(*p)).collect();

    // Workers, each with its share.
    let started = Instant::now();
    let (children, connected, failed) = start_workers(&o, &sid).await?;
    let connect_secs = started.elapsed().as_secs_f64();
    println!(
        "viewers: {connected} connected, {failed} failed, in {connect_secs:.1} s ({:.0} connections/s)",
        connected as f64 / connect_secs
    );
    // Idle for a moment, then the gateways' memory.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let per_node = connected as f64 / o.pids.len().max(1) as f64;
    for (i, pid) in o.pids.iter().enumerate() {
        if let (Some(Some(before)), Some(after)) = (rss_before.get(i), rss_bytes(*pid)) {
            println!(
                "gateway pid {pid}: resident {:.1} MiB (+{:.1} MiB), {:.1} KiB per idle viewer (~{per_node:.0} viewers)",
                after as f64 / 1048576.0,
                (after.saturating_sub(*before)) as f64 / 1048576.0,
                (after.saturating_sub(*before)) as f64 / per_node / 1024.0
            );
        }
    }

    // Publish at the set rate, round-robin over the nodes.
    let (published, errors) = publish(&o, &http, &auth, &sid).await;
    // Let the last ones arrive, then collect.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let Collected {
        hist,
        received,
        gaps,
        closed,
    } = collect(children).await?;
    let expected = published * connected;
    let secs = o.duration.as_secs_f64();
    println!(
        "published {published} events ({errors} failed) at {}/s for {secs:.0} s",
        o.rate
    );
    println!(
        "delivered {received} of {expected} ({:.0} messages/s); offset gaps {gaps}; viewers closed by the server {closed}",
        received as f64 / secs
    );
    println!(
        "publish-to-receive latency ms: p50 {:.2}  p99 {:.2}  p99.9 {:.2}",
        percentile(&hist, 50.0),
        percentile(&hist, 99.0),
        percentile(&hist, 99.9)
    );
    Ok(received == expected && gaps == 0 && failed == 0)
}

#[derive(Default)]
struct Tally {
    received: AtomicU64,
    gaps: AtomicU64,
    closed: AtomicU64,
    hist: Vec<AtomicU64>,
}

/// A worker: `viewers-worker URLS STREAM COUNT SOURCES FIRST`.
pub async fn worker(args: &[String]) -> Result<bool, Failure> {
    let [urls, sid, count, sources, first] = args else {
        return Err(Failure("viewers-worker URLS STREAM COUNT SOURCES FIRST".into()));
    };
    let urls: Vec<String> = urls.split(',').map(str::to_owned).collect();
    let count: usize = count.parse()?;
    let sources: u8 = sources.parse()?;
    let first: usize = first.parse()?;
    let tally = Arc::new(Tally {
        hist: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
        ..Tally::default()
    });
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<bool>(1024);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let gate = Arc::new(tokio::sync::Semaphore::new(256));
    for i in 0..count {
        let n = first + i;
        let url = &urls[n % urls.len()];
        let addr: SocketAddr = url
            .trim_start_matches("http://")
            .parse()
            .map_err(|_| Failure(format!("--url must be http://IP:PORT, got {url}")))?;
        let source = IpAddr::from([127, 0, 0, 1 + (n % sources as usize) as u8]);
        // Each viewer its own local port below the ephemeral range: binding
        // tens of thousands of sockets to port 0 makes the kernel search.
        let port = u16::try_from(10_240 + n / sources as usize).unwrap_or(0);
        let (tally, ready, stop, gate, sid) = (
            tally.clone(),
            ready_tx.clone(),
            stop_rx.clone(),
            gate.clone(),
            sid.clone(),
        );
        tokio::spawn(async move {
            let permit = gate.acquire_owned().await;
            let ws = open(addr, SocketAddr::new(source, port), &sid).await;
            drop(permit);
            match ws {
                Ok(ws) => {
                    let _ = ready.send(true).await;
                    watch(ws, tally, stop).await;
                }
                Err(e) => {
                    eprintln!("viewer {n}: {}", e.0);
                    let _ = ready.send(false).await;
                }
            }
        });
    }
    drop(ready_tx);
    let (ok, failed) = connected(&mut ready_rx, count).await;
    let mut out = tokio::io::stdout();
    out.write_all(format!("{}\n", json!({ "connected": ok, "failed": failed })).as_bytes())
        .await?;
    out.flush().await?;
    // Until the coordinator closes our stdin.
    let mut stdin = BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(_)) = stdin.next_line().await {}
    let _ = stop_tx.send(true);
    tokio::time::sleep(Duration::from_millis(200)).await;
    out.write_all(format!("{}\n", report(&tally)).as_bytes()).await?;
    out.flush().await?;
    Ok(true)
}

/// Waits until each of `count` viewers has connected or failed: how many
/// of each.
async fn connected(ready: &mut tokio::sync::mpsc::Receiver<bool>, count: usize) -> (u64, u64) {
    let (mut ok, mut failed) = (0u64, 0u64);
    while let Some(r) = ready.recv().await {
        if r {
            ok += 1
        } else {
            failed += 1
        }
        if (ok + failed) as usize == count {
            break;
        }
    }
    (ok, failed)
}

/// A worker's report: what its viewers received, with the latency
/// histogram's non-empty buckets.
fn report(tally: &Tally) -> Value {
    let hist: Vec<(usize, u64)> = tally
        .hist
        .iter()
        .enumerate()
        .map(|(i, c)| (i, c.load(Ordering::Relaxed)))
        .filter(|(_, c)| *c > 0)
        .collect();
    json!({
        "received": tally.received.load(Ordering::Relaxed),
        "gaps": tally.gaps.load(Ordering::Relaxed),
        "closed": tally.closed.load(Ordering::Relaxed),
        "hist": hist,
    })
}

/// The number right after the last occurrence of `key` in `line`.
fn number_after(line: &str, key: &str) -> Option<u64> {
    let rest = &line[line.rfind(key)? + key.len()..];
    let end = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
    rest[..end].parse().ok()
}

type Ws = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

async fn open(addr: SocketAddr, local: SocketAddr, sid: &str) -> Result<Ws, Failure> {
    let socket = TcpSocket::new_v4()?;
    // A port left in TIME_WAIT by an earlier run may be taken again.
    socket.set_reuseaddr(true)?;
    if socket.bind(local).is_err() {
        // Taken (a listener, say): any free port of that address.
        socket.bind(SocketAddr::new(local.ip(), 0))?;
    }
    let tcp = tokio::time::timeout(Duration::from_secs(30), socket.connect(addr))
        .await
        .map_err(|_| Failure("connect timed out".into()))??;
    let config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0)
        .max_write_buffer_size(64 * 1024);
    let (mut ws, _) =
        tokio_tungstenite::client_async_with_config(format!("ws://{addr}/connection/websocket"), tcp, Some(config))
            .await?;
    ws.send(Message::Text(json!({ "id": 1, "connect": {} }).to_string().into()))
        .await?;
    ws.send(Message::Text(
        json!({ "id": 2, "subscribe": { "channel": format!("stream:{sid}") } })
            .to_string()
            .into(),
    ))
    .await?;
    // Both replies, then the viewer is in.
    let mut replies = 0;
    while replies < 2 {
        let msg = tokio::time::timeout(Duration::from_secs(30), ws.next())
            .await
            .map_err(|_| Failure("no reply in 30 s".into()))?
            .ok_or_else(|| Failure("closed before subscribing".into()))??;
        if let Message::Text(t) = msg {
            for line in t.as_str().lines() {
                let v: Value = serde_json::from_str(line)?;
                if v.get("error").is_some() {
                    return Err(Failure(format!("refused: {v}")));
                }
                if v.get("id").is_some() {
                    replies += 1;
                }
            }
        }
    }
    Ok(ws)
}

async fn watch(mut ws: Ws, tally: Arc<Tally>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let mut last_offset: Option<u64> = None;
    loop {
        let msg = tokio::select! {
            m = ws.next() => m,
            _ = stop.changed() => return,
        };
        let text = match msg {
            Some(Ok(Message::Text(t))) => t,
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                tally.closed.fetch_add(1, Ordering::Relaxed);
                return;
            }
            Some(Ok(_)) => continue,
        };
        let received_at = now_us();
        for line in text.as_str().lines() {
            if line == "{}" {
                let _ = ws.send(Message::Text("{}".into())).await;
                continue;
            }
            // Read without a full JSON parse: the load is on the gateway.
            if let Some(offset) = number_after(line, "\"offset\":") {
                if last_offset.is_some_and(|l| offset != l + 1) {
                    tally.gaps.fetch_add(1, Ordering::Relaxed);
                }
                last_offset = Some(offset);
            }
            if !line.contains("\"type\":\"message\"") {
                continue;
            }
            let Some(sent) = number_after(line, "\"text\":\"t=") else {
                continue;
            };
            let bucket = ((received_at.saturating_sub(sent)) / BUCKET_US).min(BUCKETS as u64 - 1) as usize;
            tally.received.fetch_add(1, Ordering::Relaxed);
            tally.hist[bucket].fetch_add(1, Ordering::Relaxed);
        }
    }
}
