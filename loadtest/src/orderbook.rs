//! `loadtest orders`: the seller's order book at a million orders on
//! PostgreSQL. Makes a database of its own on the given server, has `haul`
//! migrate it and create a seller, loads the orders with one
//! `generate_series` insert per table (streams, lots, offers, orders with
//! their fulfilment, checkout sessions with buyers' contacts), then times
//! each filter of `GET /v1/orders` through a running `haul` — a first
//! page, and a page deep in the walk by cursor — beside the same query run
//! straight on PostgreSQL (the peer: what the database alone takes), and
//! prints each query's plan. The database is dropped at the end unless
//! `--keep`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::Value;
use sqlx::postgres::PgPoolOptions;
use sqlx::{PgPool, Row};

use loadtest::faults::infra::{seller_key, Node};
use loadtest::Failure;

/// The `p`th percentile of sorted values.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

pub const USAGE: &str = "\
usage: loadtest orders [options]

  --admin-url URL     a PostgreSQL server to make the benchmark's database on
                      (default postgres://postgres@127.0.0.1:5432/postgres)
  --redis-url URL     Redis for the node (default redis://127.0.0.1:6379)
  --orders N          orders in the book (default 1000000)
  --runs N            requests per query (default 40)
  --haul PATH         the haul binary (default: next to this one)
  --keep              keep the database (its name is printed)";

#[derive(Debug, Clone)]
pub struct Options {
    admin_url: String,
    redis_url: String,
    orders: u64,
    runs: usize,
    haul: PathBuf,
    keep: bool,
}

pub fn parse(args: &[String]) -> Result<Options, String> {
    let mut o = Options {
        admin_url: "postgres://postgres@127.0.0.1:5432/postgres".into(),
        redis_url: "redis://127.0.0.1:6379".into(),
        orders: 1_000_000,
        runs: 40,
        haul: std::env::current_exe()
            .ok()
            .and_then(|p| p.parent().map(|d| d.join("haul")))
            .unwrap_or_else(|| PathBuf::from("haul")),
        keep: false,
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        if flag == "--keep" {
            o.keep = true;
            continue;
        }
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--admin-url" => o.admin_url = value.clone(),
            "--redis-url" => o.redis_url = value.clone(),
            "--orders" => o.orders = loadtest::number(flag, value, 1_000, 50_000_000)?,
            "--runs" => o.runs = loadtest::number(flag, value, 5, 10_000)? as usize,
            "--haul" => o.haul = PathBuf::from(value),
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

fn db_error(what: &str) -> impl Fn(sqlx::Error) -> Failure + '_ {
    move |e| Failure(format!("{what}: {e}"))
}

/// The database URL of `name` on the admin URL's server.
fn url_of(admin: &str, name: &str) -> String {
    match admin.rsplit_once('/') {
        Some((server, _)) => format!("{server}/{name}"),
        None => format!("{admin}/{name}"),
    }
}

/// Streams, lots (one offer each) and the share of orders with a checkout
/// session (a seller's site) rather than a stream purchase.
const STREAMS: u64 = 20;
const LOTS: u64 = 200;

/// Loads `n` orders for `seller`, spread over 90 days before `t0` (one a
/// few ms apart, some at the same ms), their states and fulfilment as a
/// real book has them, a third of them checkout orders with a buyer's
/// email (50,000 distinct buyers) and phone.
async fn load(db: &PgPool, seller: &str, n: u64, t0: i64) -> Result<(), Failure> {
    let span: i64 = 90 * 24 * 3_600_000;
    let steps = [
        format!(
            "INSERT INTO streams (id, seller_id, title, state, created_at, live_at, ended_at) \
             SELECT 'str_bench' || lpad(i::text, 6, '0'), '{seller}', 'Stream ' || i, 'ended', {t0} - {span}, \
             {t0} - {span}, {t0} FROM generate_series(1, {STREAMS}) i"
        ),
        format!(
            "INSERT INTO lots (id, stream_id, seller_id, title, description, created_at, updated_at) \
             SELECT 'lot_bench' || lpad(i::text, 6, '0'), 'str_bench' || lpad((1 + i % {STREAMS})::text, 6, '0'), \
             '{seller}', 'Lot ' || i, '', {t0} - {span}, {t0} - {span} FROM generate_series(1, {LOTS}) i"
        ),
        format!(
            "INSERT INTO offers (id, lot_id, stream_id, seller_id, price_minor, currency, quantity, per_buyer_limit, \
             duration_ms, hold_ttl_ms, state, end_reason, created_at, started_at, ends_at, ended_at) \
             SELECT 'off_bench' || lpad(i::text, 6, '0'), 'lot_bench' || lpad(i::text, 6, '0'), \
             'str_bench' || lpad((1 + i % {STREAMS})::text, 6, '0'), '{seller}', 149000, 'RUB', 1000000, 1000000, \
             60000, 600000, 'ended', 'time', {t0} - {span}, {t0} - {span}, {t0}, {t0} FROM generate_series(1, {LOTS}) i"
        ),
        // i % 3 = 0: a checkout order of the seller's site; else a stream
        // purchase of offer 1 + i % 200. States: 70 % paid (of those some
        // refunded, and fulfilment by age), the rest expired, failed or open.
        format!(
            "INSERT INTO orders (id, seller_id, state, amount_minor, currency, hold_id, offer_id, buyer_id, reference, \
             refunded_minor, created_at, updated_at, stream_id, fulfilment, fulfilment_at) \
             SELECT 'ord_' || substr(md5(i::text), 1, 22), '{seller}', \
               CASE WHEN i % 10 < 6 THEN 'succeeded' WHEN i % 10 = 6 THEN 'refunded' WHEN i % 10 = 7 THEN 'expired' \
                    WHEN i % 10 = 8 THEN 'failed' ELSE 'created' END, \
               149000, 'RUB', \
               CASE WHEN i % 3 = 0 THEN NULL ELSE 'hld_' || substr(md5('h' || i), 1, 22) END, \
               CASE WHEN i % 3 = 0 THEN NULL ELSE 'off_bench' || lpad((1 + i % {LOTS})::text, 6, '0') END, \
               CASE WHEN i % 3 = 0 THEN NULL ELSE 'viewer-' || (i % 80000) END, \
               CASE WHEN i % 3 = 0 THEN 'site-' || i ELSE NULL END, \
               CASE WHEN i % 10 = 6 THEN 149000 ELSE 0 END, \
               {t0} - ({span} * ({n} - i) / {n}), {t0} - ({span} * ({n} - i) / {n}), \
               CASE WHEN i % 3 = 0 THEN NULL ELSE 'str_bench' || lpad((1 + (1 + i % {LOTS}) % {STREAMS})::text, 6, '0') END, \
               CASE WHEN i % 10 >= 7 THEN NULL WHEN i % 10 = 6 THEN 'cancelled' WHEN i > {n} - {n} / 50 THEN 'new' \
                    WHEN i > {n} - {n} / 20 THEN 'confirmed' WHEN i % 7 = 0 THEN 'shipped' ELSE 'delivered' END, \
               CASE WHEN i % 10 >= 7 THEN NULL ELSE {t0} - ({span} * ({n} - i) / {n}) END \
             FROM generate_series(1, {n}) i"
        ),
        format!(
            "INSERT INTO checkout_sessions (id, seller_id, order_id, items, success_url, cancel_url, customer_email, \
             customer_phone, expires_at, created_at) \
             SELECT 'cs_' || substr(md5('s' || i), 1, 22), '{seller}', 'ord_' || substr(md5(i::text), 1, 22), '[]', \
             'https://shop.example/ok', 'https://shop.example/', 'Buyer' || (i % 50000) || '@example.com', \
             '+7900' || lpad((i % 50000)::text, 7, '0'), {t0}, {t0} - ({span} * ({n} - i) / {n}) \
             FROM generate_series(3, {n}, 3) i"
        ),
        "ANALYZE".to_owned(),
    ];
    for sql in &steps {
        let started = Instant::now();
        sqlx::query(sql)
            .execute(db)
            .await
            .map_err(db_error("loading the book"))?;
        let table = sql.split_whitespace().nth(2).unwrap_or("(analyze)");
        println!("  loaded {table:<18} in {:>6.1} s", started.elapsed().as_secs_f64());
    }
    Ok(())
}

/// One filter of the book, as the API and as SQL.
struct Query {
    name: &'static str,
    api: String,
    sql: String,
}

/// What the order book asks PostgreSQL for a page (the shape
/// `payments::orderbook::page` builds), with `extra` conditions.
fn book_sql(seller: &str, extra: &str) -> String {
    format!(
        "SELECT o.*, o.stream_id AS book_stream, cs.customer_email AS book_email, cs.customer_phone AS book_phone \
         FROM orders o LEFT JOIN checkout_sessions cs ON cs.order_id = o.id WHERE o.seller_id = '{seller}'{extra} \
         ORDER BY o.created_at DESC, o.id DESC LIMIT 51"
    )
}

fn queries(seller: &str, n: u64, t0: i64, deep: &str) -> Vec<Query> {
    // A checkout order half way along (i % 3 = 0 has a reference).
    let reference = format!("site-{}", n / 2 / 3 * 3);
    let day = 24 * 3_600_000;
    let (deep_at, deep_id) = deep
        .split_once('_')
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
        .unwrap_or_default();
    let deep_cond = format!(" AND (o.created_at, o.id) < ({deep_at}, '{deep_id}')");
    let q = |name, api: &str, extra: &str| Query {
        name,
        api: format!("/v1/orders?limit=50{api}"),
        sql: book_sql(seller, extra),
    };
    vec![
        q("newest first, no filter", "", ""),
        q("deep page by cursor", &format!("&after={deep}"), &deep_cond),
        q("state=failed", "&state=failed", " AND o.state = 'failed'"),
        q("fulfilment=new", "&fulfilment=new", " AND o.fulfilment = 'new'"),
        q(
            "fulfilment=shipped, deep",
            &format!("&fulfilment=shipped&after={deep}"),
            &format!(" AND o.fulfilment = 'shipped'{deep_cond}"),
        ),
        q(
            "stream",
            "&stream=str_bench000007",
            " AND o.stream_id = 'str_bench000007'",
        ),
        q("offer", "&offer=off_bench000042", " AND o.offer_id = 'off_bench000042'"),
        q(
            "created range (one day)",
            &format!("&created_gte={}&created_lt={}", t0 - 30 * day, t0 - 29 * day),
            &format!(
                " AND o.created_at >= {} AND o.created_at < {}",
                t0 - 30 * day,
                t0 - 29 * day
            ),
        ),
        q(
            "buyer email",
            "&email=buyer4242%40example.com",
            " AND LOWER(cs.customer_email) = 'buyer4242@example.com'",
        ),
        q(
            "buyer phone",
            "&phone=%2B79000004242",
            " AND cs.customer_phone = '+79000004242'",
        ),
        q(
            "reference",
            &format!("&reference={reference}"),
            &format!(" AND o.reference = '{reference}'"),
        ),
        q(
            "state + stream",
            "&state=succeeded&stream=str_bench000003",
            " AND o.state = 'succeeded' AND o.stream_id = 'str_bench000003'",
        ),
    ]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

pub async fn run(o: Options) -> Result<bool, Failure> {
    let admin = PgPoolOptions::new()
        .max_connections(1)
        .connect(&o.admin_url)
        .await
        .map_err(db_error("the admin URL"))?;
    let name = format!("haul_book_{}", std::process::id());
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&admin)
        .await
        .map_err(db_error("creating the benchmark database"))?;
    println!(
        "database {name} on {}",
        o.admin_url.rsplit_once('@').map_or("", |(_, s)| s)
    );
    let result = bench(&o, &name).await;
    if o.keep {
        println!("kept database {name}");
    } else if let Err(e) = sqlx::query(&format!("DROP DATABASE {name} WITH (FORCE)"))
        .execute(&admin)
        .await
    {
        eprintln!("could not drop {name}: {e}");
    }
    result.map(|()| true)
}

async fn bench(o: &Options, name: &str) -> Result<(), Failure> {
    let url = url_of(&o.admin_url, name);
    let dir = std::env::temp_dir().join(format!("haul-book-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let env: Vec<(String, String)> = vec![
        ("HAUL_DATABASE_URL".into(), url.clone()),
        ("HAUL_REDIS_URL".into(), o.redis_url.clone()),
        ("HAUL_REDIS_PREFIX".into(), name.to_owned()),
        ("HAUL_DATA_DIR".into(), dir.display().to_string()),
        ("HAUL_LOG".into(), "warn".into()),
    ];
    let key = seller_key(&o.haul, &env).await?;
    let db = PgPoolOptions::new()
        .max_connections(2)
        .connect(&url)
        .await
        .map_err(db_error("the benchmark database"))?;
    let seller: String = sqlx::query("SELECT id FROM sellers WHERE livemode = 0 LIMIT 1")
        .fetch_one(&db)
        .await
        .map_err(db_error("the seller"))?
        .try_get("id")
        .map_err(db_error("the seller"))?;
    let t0 = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    println!("loading {} orders", o.orders);
    load(&db, &seller, o.orders, t0).await?;
    let http = reqwest::Client::new();
    let mut node = Node::new("book", o.haul.clone(), env, dir.join("haul.log"))?;
    node.start(&http).await?;
    let auth = format!("Bearer {key}");
    // A cursor a tenth of the way into the walk (100,000 orders deep in a
    // million).
    let deep_row = sqlx::query("SELECT created_at, id FROM orders ORDER BY created_at DESC, id DESC OFFSET $1 LIMIT 1")
        .bind((o.orders / 10) as i64)
        .fetch_one(&db)
        .await
        .map_err(db_error("the deep cursor"))?;
    let deep_at: i64 = deep_row.try_get("created_at").map_err(db_error("the deep cursor"))?;
    let deep_id: String = deep_row.try_get("id").map_err(db_error("the deep cursor"))?;
    let deep = format!("{deep_at}_{deep_id}");
    let list = queries(&seller, o.orders, t0, &deep);
    println!();
    println!(
        "{:<28} {:>5} {:>9} {:>9} {:>9} {:>9} {:>7}",
        "query", "rows", "api p50", "api p95", "sql p50", "sql p95", "api/sql"
    );
    let mut plans = Vec::new();
    let mut worst = 0.0f64;
    for q in &list {
        let mut api = Vec::with_capacity(o.runs);
        let mut sql = Vec::with_capacity(o.runs);
        let mut rows = 0;
        for i in 0..o.runs + 3 {
            let started = Instant::now();
            let r = http
                .get(format!("{}{}", node.base(), q.api))
                .header("authorization", &auth)
                .send()
                .await
                .map_err(|e| Failure(format!("{}: {e}", q.name)))?;
            let status = r.status();
            let body: Value = r.json().await.map_err(|e| Failure(format!("{}: {e}", q.name)))?;
            let took = started.elapsed();
            if !status.is_success() {
                return Err(Failure(format!("{}: {status} {body}", q.name)));
            }
            rows = body["data"].as_array().map_or(0, Vec::len);
            let started = Instant::now();
            sqlx::query(&q.sql).fetch_all(&db).await.map_err(db_error(q.name))?;
            let took_sql = started.elapsed();
            // The first few warm the caches.
            if i >= 3 {
                api.push(ms(took));
                sql.push(ms(took_sql));
            }
        }
        api.sort_by(f64::total_cmp);
        sql.sort_by(f64::total_cmp);
        let (a50, a95, s50, s95) = (
            percentile(&api, 50.0),
            percentile(&api, 95.0),
            percentile(&sql, 50.0),
            percentile(&sql, 95.0),
        );
        worst = worst.max(a50);
        println!(
            "{:<28} {:>5} {:>7.2}ms {:>7.2}ms {:>7.2}ms {:>7.2}ms {:>7.2}",
            q.name,
            rows,
            a50,
            a95,
            s50,
            s95,
            a50 / s50.max(0.001)
        );
        let plan: Vec<String> = sqlx::query(&format!("EXPLAIN (COSTS OFF) {}", q.sql))
            .fetch_all(&db)
            .await
            .map_err(db_error("a plan"))?
            .iter()
            .filter_map(|r| r.try_get::<String, _>(0).ok())
            .collect();
        plans.push((q.name, plan));
    }
    println!();
    println!("slowest median page through the API: {worst:.2} ms");
    println!();
    for (name, plan) in plans {
        println!("plan: {name}");
        for line in plan {
            println!("    {line}");
        }
    }
    node.kill().await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
