//! The independent checker of a fault run. It trusts nothing Haul says
//! about itself: it reads the buyers' history, the record (PostgreSQL, by
//! `psql`), the seller's webhooks as delivered, a viewer's realtime feed
//! and the engine's public stock, and reports each broken promise:
//!
//! - oversold: more units sold than the offer has;
//! - lost paid order: a payment the buyer was shown as sent, or a bank
//!   confirmation Haul acknowledged, that the record does not hold;
//! - double charge kept: an order keeping more money than its amount, or
//!   money kept on an order that sold nothing;
//! - sold unpaid / paid unsold: units sold against orders not paid, or paid
//!   orders without their unit;
//! - order left open: unpaid past its deadline;
//! - hold not returned: stock the engine still counts as held when no hold
//!   can be alive;
//! - missing webhook: a paid, expired or duplicate-refunded order the seller
//!   was not told of;
//! - realtime: a viewer whose last units-left differs from the engine's, or
//!   a gap in the publications the server claimed to have recovered.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use super::workload::History;
use super::World;
use crate::Failure;

pub struct Inputs<'a> {
    pub offer: &'a str,
    pub quantity: i64,
    pub history: &'a History,
    pub hooks: &'a Arc<Mutex<Vec<Value>>>,
    pub watcher: &'a Watcher,
    pub hold_ttl: Duration,
    /// When the nemesis healed what it broke (Unix ms).
    pub healed_at: u64,
}

#[derive(Default)]
pub struct Verdict {
    pub counts: BTreeMap<&'static str, u64>,
    pub violations: BTreeMap<&'static str, Vec<String>>,
    pub nemesis: Vec<(Duration, String)>,
    pub elapsed: Duration,
    pub settled_in: Duration,
}

impl Verdict {
    fn count(&mut self, what: &'static str, n: u64) {
        *self.counts.entry(what).or_default() += n;
    }

    fn violation(&mut self, kind: &'static str, what: String) {
        self.violations.entry(kind).or_default().push(what);
    }

    pub fn ok(&self) -> bool {
        self.violations.values().all(Vec::is_empty)
    }

    pub fn print(&self) {
        for (at, what) in &self.nemesis {
            println!("   {:>6.1} s  {what}", at.as_secs_f64());
        }
        let counts: Vec<String> = self.counts.iter().map(|(k, v)| format!("{k} {v}")).collect();
        println!("   {}", counts.join(", "));
        println!(
            "   settled {:.1} s after the workload; scenario {:.1} s",
            self.settled_in.as_secs_f64(),
            self.elapsed.as_secs_f64()
        );
        if self.ok() {
            println!("   no violations");
        }
        for (kind, list) in &self.violations {
            for v in list.iter().take(10) {
                println!("   VIOLATION {kind}: {v}");
            }
            if list.len() > 10 {
                println!("   … {} more {kind}", list.len() - 10);
            }
        }
    }
}

/// The checks every scenario reports, in the table's order.
pub const KINDS: &[&str] = &[
    "oversold",
    "slow answer",
    "slow recovery",
    "lost paid order",
    "double charge kept",
    "sold unpaid",
    "paid unsold",
    "order left open",
    "hold not returned",
    "missing webhook",
    "realtime",
];

/// The summary table of a run.
pub fn table(rows: &[(&str, Option<Verdict>)]) -> String {
    let mut out = String::from(
        "| scenario | reserves ok | 503s | selling again (a/b) ms | paid (shown) | double paid | late paid | unknown | sold/qty | dup refunds | late refunds | violations |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for (name, v) in rows {
        let Some(v) = v else {
            out.push_str(&format!("| {name} | did not run | | | | | | | | | | |\n"));
            continue;
        };
        let c = |k: &str| v.counts.get(k).copied().unwrap_or(0);
        let bad: Vec<String> = KINDS
            .iter()
            .filter_map(|k| {
                let n = v.violations.get(k).map_or(0, Vec::len);
                (n > 0).then(|| format!("{k} {n}"))
            })
            .collect();
        out.push_str(&format!(
            "| {name} | {} | {} | {}/{} | {} | {} | {} | {} | {}/{} | {} | {} | {} |\n",
            c("reserves ok"),
            c("503 answers"),
            c("node a selling again after ms"),
            c("node b selling again after ms"),
            c("payments shown sent"),
            c("orders paid twice"),
            c("late confirmations acknowledged"),
            c("unknown outcomes"),
            c("units sold"),
            c("quantity"),
            c("duplicate refunds"),
            c("late refunds"),
            if bad.is_empty() {
                "none".to_owned()
            } else {
                bad.join(", ")
            }
        ));
    }
    out
}

/// The record's side of one offer.
struct Record {
    sold: i64,
    /// id → (state, amount, refunded, expires_at, settled)
    orders: HashMap<String, (String, i64, i64, Option<i64>, bool)>,
    /// id → (order, state, amount, duplicate)
    attempts: HashMap<String, (String, String, i64, bool)>,
    /// attempt → (amount, kind)
    refunds: Vec<(String, i64, String)>,
}

async fn record(w: &World, offer: &str) -> Result<Record, Failure> {
    let q = |s: &str| s.replace("$offer", &offer.replace('\'', "''"));
    let sold =
        w.pg.query(&q(
            "SELECT COALESCE(SUM(quantity), 0) FROM sales WHERE offer_id = '$offer'",
        ))
        .await?
        .first()
        .and_then(|r| r[0].parse().ok())
        .unwrap_or(0);
    let mut orders = HashMap::new();
    for r in
        w.pg.query(&q(
            "SELECT id, state, amount_minor, refunded_minor, COALESCE(expires_at::text, ''), \
                   (settled_at IS NOT NULL)::text FROM orders WHERE offer_id = '$offer'",
        ))
        .await?
    {
        orders.insert(
            r[0].clone(),
            (
                r[1].clone(),
                r[2].parse().unwrap_or(0),
                r[3].parse().unwrap_or(0),
                r[4].parse().ok(),
                r[5] == "true",
            ),
        );
    }
    let mut attempts = HashMap::new();
    for r in
        w.pg.query(&q(
            "SELECT a.id, a.order_id, a.state, a.amount_minor, a.duplicate FROM payment_attempts a \
                   JOIN orders o ON o.id = a.order_id WHERE o.offer_id = '$offer'",
        ))
        .await?
    {
        attempts.insert(
            r[0].clone(),
            (r[1].clone(), r[2].clone(), r[3].parse().unwrap_or(0), r[4] == "1"),
        );
    }
    let refunds =
        w.pg.query(&q("SELECT r.attempt_id, r.amount_minor, r.kind FROM refunds r \
                   JOIN orders o ON o.id = r.order_id WHERE o.offer_id = '$offer'"))
            .await?
            .into_iter()
            .map(|r| (r[0].clone(), r[1].parse().unwrap_or(0), r[2].clone()))
            .collect();
    Ok(Record {
        sold,
        orders,
        attempts,
        refunds,
    })
}

fn open(state: &str) -> bool {
    matches!(state, "created" | "pending" | "requires_action")
}

fn paid(state: &str) -> bool {
    matches!(state, "succeeded" | "partially_refunded")
}

/// The engine's units left, as anyone reads them.
async fn units_left(w: &World, offer: &str) -> Option<i64> {
    let v: Value = w
        .http
        .get(format!("{}/v1/public/offers/{offer}", w.front))
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    v["units_left"].as_i64()
}

/// Every string in a webhook's data (ids of orders and attempts).
fn strings(v: &Value, out: &mut BTreeSet<String>) {
    match v {
        Value::String(s) => {
            out.insert(s.clone());
        }
        Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
        Value::Object(o) => o.values().for_each(|x| strings(x, out)),
        _ => {}
    }
}

pub async fn check(w: &World, i: &Inputs<'_>) -> Result<Verdict, Failure> {
    let ops = i.history.ops();

    // Quiet: every deadline passed and every worker has had its turn —
    // nothing open, every payment settled, no unit held, no duplicate
    // waiting for its refund, the viewer caught up, webhooks all in.
    let quiet_from = Instant::now();
    let bound = i.hold_ttl * 3 + Duration::from_secs(60);
    let mut last_hooks = usize::MAX;
    let mut rec = record(w, i.offer).await?;
    while quiet_from.elapsed() < bound {
        rec = record(w, i.offer).await?;
        let left = units_left(w, i.offer).await;
        let hooks = i.hooks.lock().expect("hooks lock").len();
        let settled = rec
            .orders
            .values()
            .all(|(state, _, _, _, settled)| !open(state) && (!paid(state) || *settled));
        let refunded = rec.attempts.iter().all(|(id, (_, state, _, dup))| {
            !(*dup && state == "succeeded") || rec.refunds.iter().any(|(a, _, k)| a == id && k == "duplicate")
        });
        let stock = left == Some(i.quantity - rec.sold);
        let viewer = i.watcher.units_left() == left;
        if settled && refunded && stock && viewer && hooks == last_hooks {
            break;
        }
        last_hooks = hooks;
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let settled_in = quiet_from.elapsed();
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    let observed = Observed {
        ops,
        rec,
        left: units_left(w, i.offer).await,
        hooks: i.hooks.lock().expect("hooks lock").clone(),
        feed: i.watcher.state.lock().expect("watcher lock").clone(),
        quantity: i.quantity,
        now_ms,
        healed_at: i.healed_at,
    };
    let mut v = judge(&observed);
    v.settled_in = settled_in;
    Ok(v)
}

/// Answers slower than this are a hang, whatever the fault: every wait on
/// Redis or PostgreSQL is bounded well below it.
pub const SLOW_MS: u64 = 5_000;

/// The longest a healed fault may keep selling stopped: a second for Haul,
/// and the second a buyer told 503 waits before asking again.
pub const RESUME_MS: u64 = 2_500;

/// Everything the checker read, once the run was quiet.
struct Observed {
    ops: Vec<super::workload::Op>,
    rec: Record,
    left: Option<i64>,
    hooks: Vec<Value>,
    feed: Feed,
    quantity: i64,
    now_ms: i64,
    healed_at: u64,
}

/// The verdicts on what was observed (no I/O).
fn judge(ob: &Observed) -> Verdict {
    let mut v = Verdict::default();
    let (ops, rec, left) = (&ob.ops, &ob.rec, ob.left);
    let now_ms = ob.now_ms;
    let quantity = ob.quantity;
    // The history's tallies.
    let tally = |op: &str, outcome: &str| ops.iter().filter(|o| o.op == op && o.outcome == outcome).count() as u64;
    v.count("reserves ok", tally("reserve", "ok"));
    v.count("payments shown sent", tally("pay", "ok"));
    v.count("late confirmations acknowledged", tally("late-pay", "ok"));
    v.count(
        "unknown outcomes",
        ops.iter().filter(|o| o.outcome == "info").count() as u64,
    );
    v.count("503 answers", ops.iter().filter(|o| o.status == 503).count() as u64);
    v.count(
        "slowest answer ms",
        ops.iter()
            .filter(|o| o.op != "late-pay")
            .map(|o| o.ms)
            .max()
            .unwrap_or(0),
    );
    // Selling resumes once the fault heals: on each node, the first reserve
    // answered by the stock engine (a hold or a refusal, not 503) after it
    // (buyers told 503 wait the second it asks for, then try again).
    for node in 0..2 {
        let first = ops
            .iter()
            .filter(|o| o.op == "reserve" && o.node == Some(node) && o.at_ms >= ob.healed_at)
            .filter(|o| o.status != 0 && o.status != 503)
            .map(|o| o.at_ms)
            .min();
        if let Some(first) = first {
            let after = first - ob.healed_at;
            v.count(
                ["node a selling again after ms", "node b selling again after ms"][node],
                after,
            );
            if after > RESUME_MS {
                v.violation(
                    "slow recovery",
                    format!(
                        "node {} answered no reserve for {after} ms after healing",
                        ["a", "b"][node]
                    ),
                );
            }
        }
    }
    for o in ops.iter().filter(|o| o.op != "late-pay" && o.ms > SLOW_MS) {
        v.violation(
            "slow answer",
            format!("{} took {} ms ({}, status {})", o.op, o.ms, o.outcome, o.status),
        );
    }
    let mut pays_per_order: HashMap<&str, u64> = HashMap::new();
    for o in ops.iter().filter(|o| o.op == "pay" && o.outcome == "ok") {
        *pays_per_order.entry(o.order.as_deref().unwrap_or("")).or_default() += 1;
    }
    v.count(
        "orders paid twice",
        pays_per_order.values().filter(|n| **n > 1).count() as u64,
    );
    v.count("units sold", rec.sold.max(0) as u64);
    v.count("quantity", quantity as u64);
    v.count(
        "duplicate refunds",
        rec.refunds.iter().filter(|(_, _, k)| k == "duplicate").count() as u64,
    );
    v.count(
        "late refunds",
        rec.orders.values().filter(|(s, ..)| s == "refunded").count() as u64,
    );

    // Oversold.
    if rec.sold > quantity {
        v.violation("oversold", format!("{} units sold of {}", rec.sold, quantity));
    }

    // Every acknowledged payment is in the record as succeeded.
    for o in ops
        .iter()
        .filter(|o| (o.op == "pay" || o.op == "late-pay") && o.outcome == "ok")
    {
        let attempt = o.attempt.as_deref().unwrap_or("");
        match rec.attempts.get(attempt) {
            Some((_, state, ..)) if state == "succeeded" => {}
            Some((_, state, ..)) => v.violation(
                "lost paid order",
                format!("{} acknowledged ({}) but the record says {state}", attempt, o.op),
            ),
            None => v.violation(
                "lost paid order",
                format!("{attempt} acknowledged ({}) but not in the record", o.op),
            ),
        }
    }

    // Money per order: what its succeeded attempts took, less refunds.
    let mut kept: HashMap<&str, i64> = HashMap::new();
    for (id, (order, state, amount, _)) in &rec.attempts {
        if state == "succeeded" {
            let refunded: i64 = rec.refunds.iter().filter(|(a, ..)| a == id).map(|(_, m, _)| m).sum();
            *kept.entry(order.as_str()).or_default() += amount - refunded;
        }
    }
    let mut paid_orders = 0i64;
    for (id, (state, amount, _, deadline, _)) in &rec.orders {
        let k = kept.get(id.as_str()).copied().unwrap_or(0);
        if paid(state) {
            paid_orders += 1;
            if k > *amount {
                v.violation("double charge kept", format!("{id} keeps {k} of an amount of {amount}"));
            }
        } else if k > 0 {
            v.violation("double charge kept", format!("{id} is {state} yet keeps {k}"));
        }
        if open(state) && deadline.is_some_and(|d| d + 10_000 < now_ms) {
            v.violation(
                "order left open",
                format!(
                    "{id} is {state} {} s past its deadline",
                    (now_ms - deadline.unwrap_or(now_ms)) / 1000
                ),
            );
        }
        if open(state) && deadline.is_none() {
            v.violation("order left open", format!("{id} is {state} and has no deadline"));
        }
    }
    // Every unit in the run is one order's (quantity 1 each).
    if rec.sold > paid_orders {
        v.violation(
            "sold unpaid",
            format!("{} units sold, {paid_orders} orders paid", rec.sold),
        );
    }
    if rec.sold < paid_orders {
        v.violation(
            "paid unsold",
            format!("{paid_orders} orders paid, {} units sold", rec.sold),
        );
    }

    // No hold outlives its lifetime: the engine's stock is the record's.
    if left != Some(quantity - rec.sold) {
        v.violation(
            "hold not returned",
            format!("the engine says {left:?} units left; {} sold of {}", rec.sold, quantity),
        );
    }

    // The seller heard of each paid, expired and duplicate-refunded order.
    let hooks = &ob.hooks;
    let mut told: HashMap<String, BTreeSet<String>> = HashMap::new();
    for h in hooks {
        let mut ids = BTreeSet::new();
        strings(&h["data"], &mut ids);
        told.entry(h["type"].as_str().unwrap_or("").to_owned())
            .or_default()
            .extend(ids);
    }
    let heard = |kind: &str, id: &str| told.get(kind).is_some_and(|s| s.contains(id));
    v.count("webhooks", hooks.len() as u64);
    for (id, (state, ..)) in &rec.orders {
        if (paid(state) || state == "refunded") && !heard("order.paid", id) {
            v.violation("missing webhook", format!("no order.paid for {id} ({state})"));
        }
        if state == "expired" && !heard("order.expired", id) {
            v.violation("missing webhook", format!("no order.expired for {id}"));
        }
    }
    for (attempt, _, kind) in &rec.refunds {
        if kind == "duplicate" && !heard("payment.duplicate_refunded", attempt) {
            v.violation(
                "missing webhook",
                format!("no payment.duplicate_refunded for {attempt}"),
            );
        }
    }

    // The viewer converged and saw no unannounced gap.
    let seen = ob.feed.units_left;
    if seen != left {
        v.violation(
            "realtime",
            format!("the viewer shows {seen:?} units left, the engine {left:?}"),
        );
    }
    let feed = &ob.feed;
    v.count("viewer publications", feed.publications);
    v.count("viewer resubscribes", feed.resubscribes);
    for gap in &feed.gaps {
        v.violation("realtime", gap.clone());
    }
    v
}

/// A viewer that watches the stream for the whole run, reconnecting (to
/// the other node if need be) and recovering as a client SDK does.
pub struct Watcher {
    state: Arc<Mutex<Feed>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[derive(Clone, Default)]
struct Feed {
    units_left: Option<i64>,
    publications: u64,
    resubscribes: u64,
    gaps: Vec<String>,
}

impl Watcher {
    pub fn start(nodes: Vec<u16>, stream: String, offer: String) -> Watcher {
        let state = Arc::new(Mutex::new(Feed::default()));
        let feed = state.clone();
        let task = tokio::spawn(async move {
            let mut position: Option<(String, u64)> = None;
            let mut n = 0usize;
            loop {
                let port = nodes[n % nodes.len()];
                n += 1;
                let _ = watch(port, &stream, &offer, &mut position, &feed).await;
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        });
        Watcher { state, task }
    }

    pub fn units_left(&self) -> Option<i64> {
        self.state.lock().expect("watcher lock").units_left
    }
}

fn offer_units(data: &Value, offer: &str) -> Option<i64> {
    data["offers"].as_array()?.iter().find(|o| o["id"] == offer)?["units_left"].as_i64()
}

/// One connection's life: subscribe (recovering from `position`), follow
/// publications, return when the connection ends.
async fn watch(
    port: u16,
    stream: &str,
    offer: &str,
    position: &mut Option<(String, u64)>,
    feed: &Arc<Mutex<Feed>>,
) -> Result<(), Failure> {
    let (mut ws, _) = tokio::time::timeout(
        Duration::from_secs(5),
        tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{port}/connection/websocket")),
    )
    .await
    .map_err(|_| Failure("connect timed out".into()))??;
    let mut sub = json!({ "channel": format!("stream:{stream}") });
    if let Some((epoch, offset)) = position.as_ref() {
        sub["recover"] = json!(true);
        sub["epoch"] = json!(epoch);
        sub["offset"] = json!(offset);
        feed.lock().expect("watcher lock").resubscribes += 1;
    }
    ws.send(Message::Text(json!({ "id": 1, "connect": {} }).to_string().into()))
        .await?;
    ws.send(Message::Text(json!({ "id": 2, "subscribe": sub }).to_string().into()))
        .await?;
    let apply = |data: &Value, offset: u64, position: &mut Option<(String, u64)>| {
        let mut f = feed.lock().expect("watcher lock");
        f.publications += 1;
        if let Some((epoch, last)) = position.as_mut() {
            if offset != *last + 1 {
                f.gaps.push(format!("offset {offset} after {last} in epoch {epoch}"));
            }
            *last = offset;
        }
        let id_matches = data["offer_id"] == offer;
        match data["type"].as_str() {
            Some("offer.stock") | Some("offer.started") if id_matches => {
                f.units_left = data["units_left"].as_i64();
            }
            _ => {}
        }
    };
    loop {
        let msg = match tokio::time::timeout(Duration::from_secs(30), ws.next()).await {
            Ok(Some(Ok(m))) => m,
            _ => return Ok(()),
        };
        let Message::Text(t) = msg else { continue };
        for line in t.as_str().lines() {
            if line == "{}" {
                ws.send(Message::Text("{}".into())).await?;
                continue;
            }
            let Ok(m) = serde_json::from_str::<Value>(line) else {
                continue;
            };
            if m["id"] == 2 {
                let r = &m["subscribe"];
                if m.get("error").is_some() {
                    return Err(Failure(format!("subscribe refused: {m}")));
                }
                let epoch = r["epoch"].as_str().unwrap_or("").to_owned();
                let offset = r["offset"].as_u64().unwrap_or(0);
                let recovered = r["recovered"].as_bool().unwrap_or(false);
                if recovered {
                    // The missed publications, in order, then the live ones.
                    if let Some(list) = r["publications"].as_array() {
                        for p in list {
                            apply(&p["data"], p["offset"].as_u64().unwrap_or(0), position);
                        }
                    }
                    if let Some((_, last)) = position.as_mut() {
                        *last = offset;
                    }
                } else {
                    // A fresh start: the state the server gave is the truth.
                    if let Some(u) = offer_units(&r["data"], offer) {
                        feed.lock().expect("watcher lock").units_left = Some(u);
                    }
                    *position = Some((epoch, offset));
                }
                continue;
            }
            if let Some(p) = m.get("push").and_then(|p| p.get("pub")) {
                apply(&p["data"], p["offset"].as_u64().unwrap_or(0), position);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::faults::workload::Op;

    fn op(op: &'static str, order: &str, attempt: &str, outcome: &'static str, ms: u64) -> Op {
        Op {
            at_ms: 0,
            buyer: 0,
            op,
            hold: None,
            order: Some(order.into()),
            attempt: Some(attempt.into()),
            status: 200,
            outcome,
            detail: String::new(),
            ms,
            node: Some(0),
        }
    }

    /// Two units; one order paid once, sold, told, seen.
    fn clean() -> Observed {
        let mut orders = HashMap::new();
        orders.insert("ord_1".to_owned(), ("succeeded".to_owned(), 100, 0, Some(1_000), true));
        let mut attempts = HashMap::new();
        attempts.insert(
            "pat_1".to_owned(),
            ("ord_1".to_owned(), "succeeded".to_owned(), 100, false),
        );
        Observed {
            ops: vec![op("pay", "ord_1", "pat_1", "ok", 40)],
            rec: Record {
                sold: 1,
                orders,
                attempts,
                refunds: vec![],
            },
            left: Some(1),
            hooks: vec![json!({ "type": "order.paid", "data": { "order_id": "ord_1" } })],
            feed: Feed {
                units_left: Some(1),
                ..Feed::default()
            },
            quantity: 2,
            now_ms: 100_000,
            healed_at: 0,
        }
    }

    fn kinds(ob: &Observed) -> Vec<&'static str> {
        judge(ob)
            .violations
            .into_iter()
            .filter(|(_, l)| !l.is_empty())
            .map(|(k, _)| k)
            .collect()
    }

    #[test]
    fn a_clean_run_has_no_violations() {
        assert_eq!(kinds(&clean()), Vec::<&str>::new());
    }

    #[test]
    fn more_sold_than_the_quantity_is_oversold() {
        let mut ob = clean();
        ob.quantity = 0;
        ob.left = Some(-1);
        ob.feed.units_left = Some(-1);
        assert!(kinds(&ob).contains(&"oversold"));
    }

    #[test]
    fn a_payment_the_buyer_saw_go_that_the_record_lacks_is_lost() {
        let mut ob = clean();
        ob.ops.push(op("pay", "ord_1", "pat_9", "ok", 40));
        assert_eq!(kinds(&ob), vec!["lost paid order"]);
        let mut ob = clean();
        ob.rec.attempts.get_mut("pat_1").unwrap().1 = "pending".into();
        assert!(kinds(&ob).contains(&"lost paid order"));
    }

    #[test]
    fn a_second_charge_kept_is_a_double_charge_until_it_is_refunded() {
        let mut ob = clean();
        ob.rec
            .attempts
            .insert("pat_2".into(), ("ord_1".into(), "succeeded".into(), 100, true));
        assert_eq!(kinds(&ob), vec!["double charge kept"]);
        ob.rec.refunds.push(("pat_2".into(), 100, "duplicate".into()));
        ob.hooks
            .push(json!({ "type": "payment.duplicate_refunded", "data": { "attempt_id": "pat_2" } }));
        assert_eq!(kinds(&ob), Vec::<&str>::new());
    }

    #[test]
    fn money_kept_on_an_order_that_sold_nothing_is_a_violation() {
        let mut ob = clean();
        ob.rec.orders.get_mut("ord_1").unwrap().0 = "expired".into();
        ob.rec.sold = 0;
        ob.left = Some(2);
        ob.feed.units_left = Some(2);
        ob.hooks = vec![json!({ "type": "order.expired", "data": { "order_id": "ord_1" } })];
        assert_eq!(kinds(&ob), vec!["double charge kept"]);
    }

    #[test]
    fn sold_and_paid_must_match() {
        let mut ob = clean();
        ob.rec.sold = 2;
        ob.left = Some(0);
        ob.feed.units_left = Some(0);
        assert_eq!(kinds(&ob), vec!["sold unpaid"]);
        let mut ob = clean();
        ob.rec.sold = 0;
        ob.left = Some(2);
        ob.feed.units_left = Some(2);
        assert_eq!(kinds(&ob), vec!["paid unsold"]);
    }

    #[test]
    fn an_unpaid_order_past_its_deadline_is_left_open() {
        let mut ob = clean();
        ob.rec
            .orders
            .insert("ord_2".into(), ("created".into(), 100, 0, Some(50_000), false));
        assert_eq!(kinds(&ob), vec!["order left open"]);
        // Within the grace after its deadline it is not yet.
        ob.rec.orders.get_mut("ord_2").unwrap().3 = Some(95_000);
        assert_eq!(kinds(&ob), Vec::<&str>::new());
    }

    #[test]
    fn stock_still_held_is_a_hold_not_returned_and_a_stale_viewer_is_a_realtime_fault() {
        let mut ob = clean();
        ob.left = Some(0);
        ob.feed.units_left = Some(0);
        assert_eq!(kinds(&ob), vec!["hold not returned"]);
        let mut ob = clean();
        ob.feed.units_left = Some(2);
        assert_eq!(kinds(&ob), vec!["realtime"]);
        let mut ob = clean();
        ob.feed.gaps.push("offset 5 after 3".into());
        assert_eq!(kinds(&ob), vec!["realtime"]);
    }

    #[test]
    fn a_paid_order_the_seller_was_not_told_of_is_a_missing_webhook() {
        let mut ob = clean();
        ob.hooks.clear();
        assert_eq!(kinds(&ob), vec!["missing webhook"]);
    }

    #[test]
    fn selling_that_does_not_resume_soon_after_healing_is_a_slow_recovery() {
        let mut ob = clean();
        let mut granted = op("reserve", "", "", "ok", 20);
        granted.at_ms = 10_000;
        ob.ops.push(granted);
        ob.healed_at = 9_000;
        assert_eq!(kinds(&ob), Vec::<&str>::new());
        ob.healed_at = 10_000 - RESUME_MS - 1;
        assert_eq!(kinds(&ob), vec!["slow recovery"]);
    }

    #[test]
    fn an_answer_slower_than_any_bounded_wait_is_a_hang() {
        let mut ob = clean();
        ob.ops.push(op("reserve", "", "", "fail", SLOW_MS + 1));
        assert_eq!(kinds(&ob), vec!["slow answer"]);
    }
}
