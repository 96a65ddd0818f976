//! One conformance suite for the durable store, run on SQLite and on the real
//! PostgreSQL server (each test on its own fresh database), and a check that
//! both sets of migrations build the same schema.

use std::sync::Arc;

use sqlx::AnyPool;
use streams::db;
use streams::ids::{BuyerId, HoldId, LotId, OfferId, SellerId, StreamId};
use streams::model::{EndReason, Lot, Offer, OfferState, Stream, StreamState};
use streams::money::Currency;
use streams::store::{Page, StreamStore};
use streams::testing;

const T0: i64 = 1_700_000_000_000;

async fn sqlite() -> String {
    testing::fresh_sqlite()
}

async fn postgres() -> String {
    testing::fresh_postgres().await
}

async fn open(url: &str) -> (StreamStore, AnyPool) {
    let (pool, _) = db::connect(url).await.expect("connect and migrate");
    (StreamStore::new(pool.clone()), pool)
}

async fn seller(pool: &AnyPool) -> SellerId {
    let id = SellerId::generate();
    sqlx::query("INSERT INTO sellers (id, name, is_demo, created_at) VALUES ($1, 'S', 0, $2)")
        .bind(id.as_str())
        .bind(T0)
        .execute(pool)
        .await
        .unwrap();
    id
}

fn stream(seller: &SellerId, created_at: i64) -> Stream {
    Stream {
        id: StreamId::generate(),
        seller_id: seller.clone(),
        title: "Sale".into(),
        state: StreamState::Scheduled,
        pinned_lot_id: None,
        created_at,
        live_at: None,
        ended_at: None,
    }
}

fn lot(s: &Stream) -> Lot {
    Lot {
        id: LotId::generate(),
        stream_id: s.id.clone(),
        seller_id: s.seller_id.clone(),
        title: "Mug".into(),
        description: "Ceramic".into(),
        image_url: Some("https://example.com/mug.jpg".into()),
        terms: streams::model::LotTerms {
            price_minor: Some(49_000),
            currency: Some("RUB".into()),
            quantity: Some(12),
            per_buyer_limit: Some(2),
            duration_seconds: Some(90),
            sku: Some("MUG-1".into()),
        },
        created_at: T0,
        updated_at: T0,
        archived_at: None,
    }
}

fn offer(l: &Lot) -> Offer {
    Offer {
        id: OfferId::generate(),
        lot_id: l.id.clone(),
        stream_id: l.stream_id.clone(),
        seller_id: l.seller_id.clone(),
        price_minor: 149_000,
        currency: Currency::parse("RUB").unwrap(),
        quantity: 10,
        per_buyer_limit: 2,
        duration_ms: Some(60_000),
        end_at_requested: None,
        hold_ttl_ms: 30_000,
        state: OfferState::Draft,
        end_reason: None,
        created_at: T0,
        started_at: None,
        ends_at: None,
        ended_at: None,
        start_at: None,
        end_note: None,
    }
}

/// A seller, a stream, a lot and a draft offer, stored.
async fn fixture(store: &StreamStore, pool: &AnyPool) -> (Stream, Lot, Offer) {
    let sel = seller(pool).await;
    let s = stream(&sel, T0);
    store.insert_stream(&s).await.unwrap();
    let l = lot(&s);
    store.insert_lot(&l).await.unwrap();
    let o = offer(&l);
    store.insert_offer(&o).await.unwrap();
    (s, l, o)
}

async fn records_round_trip(url: String) {
    let (store, pool) = open(&url).await;
    let (s, l, o) = fixture(&store, &pool).await;
    let got = store.stream(&s.id).await.unwrap().unwrap();
    assert_eq!((got.title, got.state, got.created_at), (s.title, s.state, s.created_at));
    let got = store.lot(&l.id).await.unwrap().unwrap();
    assert_eq!((got.title, got.image_url, got.terms), (l.title, l.image_url, l.terms));
    let got = store.offer(&o.id).await.unwrap().unwrap();
    assert_eq!(got.price_minor, 149_000);
    assert_eq!(got.currency.code(), "RUB");
    assert_eq!((got.duration_ms, got.end_at_requested), (Some(60_000), None));
    assert!(store.stream(&StreamId::generate()).await.unwrap().is_none());
    assert_eq!(store.offers_of_stream(&s.id).await.unwrap().len(), 1);
    assert_eq!(store.lots_of_stream(&s.id, false).await.unwrap().len(), 1);
}

async fn listing_pages_newest_first_per_seller(url: String) {
    let (store, pool) = open(&url).await;
    let a = seller(&pool).await;
    let b = seller(&pool).await;
    for i in 0..5 {
        store.insert_stream(&stream(&a, T0 + i)).await.unwrap();
    }
    store.insert_stream(&stream(&b, T0)).await.unwrap();
    let first = store.list_streams(&a, Page { limit: 3, before: None }).await.unwrap();
    assert_eq!(
        first.iter().map(|s| s.created_at).collect::<Vec<_>>(),
        vec![T0 + 4, T0 + 3, T0 + 2]
    );
    let rest = store
        .list_streams(
            &a,
            Page {
                limit: 3,
                before: Some(T0 + 2),
            },
        )
        .await
        .unwrap();
    assert_eq!(rest.iter().map(|s| s.created_at).collect::<Vec<_>>(), vec![T0 + 1, T0]);
    assert_eq!(
        store
            .list_streams(
                &b,
                Page {
                    limit: 10,
                    before: None
                }
            )
            .await
            .unwrap()
            .len(),
        1
    );
}

async fn state_changes_are_compare_and_set(url: String) {
    let (store, pool) = open(&url).await;
    let (s, l, _) = fixture(&store, &pool).await;
    assert!(store
        .set_stream_state(&s.id, StreamState::Scheduled, StreamState::Live, T0 + 1)
        .await
        .unwrap());
    assert!(!store
        .set_stream_state(&s.id, StreamState::Scheduled, StreamState::Live, T0 + 2)
        .await
        .unwrap());
    let got = store.stream(&s.id).await.unwrap().unwrap();
    assert_eq!((got.state, got.live_at), (StreamState::Live, Some(T0 + 1)));
    assert!(store.set_pinned_lot(&s.id, Some(&l.id)).await.unwrap());
    assert_eq!(
        store.stream(&s.id).await.unwrap().unwrap().pinned_lot_id,
        Some(l.id.clone())
    );
    assert!(store
        .set_stream_state(&s.id, StreamState::Live, StreamState::Ended, T0 + 3)
        .await
        .unwrap());
    assert!(
        !store.set_pinned_lot(&s.id, None).await.unwrap(),
        "an ended stream keeps its pin"
    );
}

async fn a_lot_has_at_most_one_live_offer(url: String) {
    let (store, pool) = open(&url).await;
    let (_, l, o) = fixture(&store, &pool).await;
    let second = offer(&l);
    store.insert_offer(&second).await.unwrap();
    assert!(store.start_offer(&o.id, T0, T0 + 60_000).await.unwrap());
    let err = store.start_offer(&second.id, T0, T0 + 60_000).await.unwrap_err();
    assert!(
        matches!(err, streams::store::StoreError::Db(sqlx::Error::Database(ref e)) if e.is_unique_violation()),
        "{err:?}"
    );
    assert!(
        !store.start_offer(&o.id, T0, T0 + 60_000).await.unwrap(),
        "a live offer cannot start again"
    );
}

async fn an_offer_ends_exactly_once_under_racing_nodes(url: String) {
    let (store, pool) = open(&url).await;
    let (_, l, o) = fixture(&store, &pool).await;
    store.start_offer(&o.id, T0, T0 + 1_000).await.unwrap();
    let mut others = Vec::new();
    for _ in 0..5 {
        let o2 = offer(&l);
        // Other lots' offers due at the same time, to end in the same sweep.
        let l2 = Lot {
            id: LotId::generate(),
            ..l.clone()
        };
        store.insert_lot(&l2).await.unwrap();
        let o2 = Offer {
            lot_id: l2.id.clone(),
            ..o2
        };
        store.insert_offer(&o2).await.unwrap();
        store.start_offer(&o2.id, T0, T0 + 1_000).await.unwrap();
        others.push(o2.id);
    }
    assert!(store.end_due_offers(T0 + 999).await.unwrap().is_empty());
    assert_eq!(store.next_offer_end().await.unwrap(), Some(T0 + 1_000));
    // Several "nodes", each with its own pool, race to end the due offers.
    let mut nodes = Vec::new();
    for _ in 0..4 {
        nodes.push(Arc::new(open(&url).await.0));
    }
    let racing = nodes.iter().map(|n| {
        let n = n.clone();
        tokio::spawn(async move { n.end_due_offers(T0 + 1_000).await.unwrap() })
    });
    let mut ended: Vec<OfferId> = Vec::new();
    for r in racing {
        ended.extend(r.await.unwrap().into_iter().map(|o| o.id));
    }
    ended.sort();
    let mut expected = others.clone();
    expected.push(o.id.clone());
    expected.sort();
    assert_eq!(ended, expected, "every due offer ended once, by exactly one node");
    let got = store.offer(&o.id).await.unwrap().unwrap();
    assert_eq!(
        (got.state, got.end_reason, got.ended_at),
        (OfferState::Ended, Some(EndReason::Time), Some(T0 + 1_000))
    );
    assert!(!store
        .end_offer(&o.id, OfferState::Live, EndReason::Cancelled, T0 + 2_000, None)
        .await
        .unwrap());
    assert_eq!(store.next_offer_end().await.unwrap(), None);
}

async fn sales_are_recorded_once_per_hold(url: String) {
    let (store, pool) = open(&url).await;
    let (_, _, o) = fixture(&store, &pool).await;
    let alice = BuyerId::parse("alice").unwrap();
    let bob = BuyerId::parse("bob").unwrap();
    let h1 = HoldId::generate();
    assert!(store.insert_sale(&h1, &o.id, &alice, 2, T0).await.unwrap());
    assert!(
        !store.insert_sale(&h1, &o.id, &alice, 2, T0).await.unwrap(),
        "same hold twice"
    );
    store
        .insert_sale(&HoldId::generate(), &o.id, &bob, 1, T0)
        .await
        .unwrap();
    store
        .insert_sale(&HoldId::generate(), &o.id, &alice, 1, T0)
        .await
        .unwrap();
    let sold = store.sold_by_buyer(&o.id).await.unwrap();
    assert_eq!(
        sold.iter().map(|s| (s.buyer.as_str(), s.units)).collect::<Vec<_>>(),
        vec![("alice", 3), ("bob", 1)]
    );
    store.delete_sale(&h1).await.unwrap();
    assert_eq!(store.sold_by_buyer(&o.id).await.unwrap()[0].units, 1);
}

async fn migrations_apply_once_and_reopen_cleanly(url: String) {
    let (store, pool) = open(&url).await;
    fixture(&store, &pool).await;
    pool.close().await;
    let (store, _) = open(&url).await;
    store.ping().await.unwrap();
}

macro_rules! suite {
    ($($backend:ident),*) => {
        $(mod $backend {
            suite!(@tests $backend:
                records_round_trip,
                listing_pages_newest_first_per_seller,
                state_changes_are_compare_and_set,
                a_lot_has_at_most_one_live_offer,
                an_offer_ends_exactly_once_under_racing_nodes,
                sales_are_recorded_once_per_hold,
                migrations_apply_once_and_reopen_cleanly
            );
        })*
    };
    (@tests $backend:ident: $($test:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $test() {
                super::$test(super::$backend().await).await;
            }
        )*
    };
}

suite!(sqlite, postgres);

/// One database's schema in comparable terms: per table its columns (name,
/// kind of type, nullable), primary key, and other indexes (columns, unique,
/// partial).
#[derive(Debug, PartialEq, Eq, Default)]
struct Schema {
    tables: std::collections::BTreeMap<String, Table>,
}

#[derive(Debug, PartialEq, Eq, Default)]
struct Table {
    columns: std::collections::BTreeSet<(String, &'static str, bool)>,
    primary_key: Vec<String>,
    indexes: std::collections::BTreeSet<(String, bool, bool)>,
}

/// The kinds of column type that change what a value can be.
fn kind(declared: &str) -> &'static str {
    let t = declared.to_ascii_lowercase();
    if t.contains("int") {
        "integer"
    } else if t.contains("char") || t.contains("text") || t.contains("clob") {
        "text"
    } else if t.contains("real") || t.contains("double") || t.contains("float") || t.contains("numeric") {
        "real"
    } else if t.contains("blob") || t.contains("bytea") {
        "bytes"
    } else if t.contains("bool") {
        "boolean"
    } else {
        "other"
    }
}

async fn sqlite_schema(pool: &AnyPool) -> Schema {
    use sqlx::Row;
    let mut schema = Schema::default();
    let tables = sqlx::query(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' AND name NOT LIKE '\\_sqlx%' ESCAPE '\\'",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    for t in tables {
        let name: String = t.get("name");
        let mut table = Table::default();
        let cols = sqlx::query("SELECT name, type, \"notnull\" AS nn, pk FROM pragma_table_info($1) ORDER BY pk")
            .bind(&name)
            .fetch_all(pool)
            .await
            .unwrap();
        for c in cols {
            let (col, ty, nn, pk): (String, String, i64, i64) =
                (c.get("name"), c.get("type"), c.get("nn"), c.get("pk"));
            // A primary key column is never null, whatever SQLite's table says.
            table.columns.insert((col.clone(), kind(&ty), nn == 0 && pk == 0));
            if pk > 0 {
                table.primary_key.push(col);
            }
        }
        let indexes = sqlx::query("SELECT name, \"unique\" AS u, origin, partial FROM pragma_index_list($1)")
            .bind(&name)
            .fetch_all(pool)
            .await
            .unwrap();
        for i in indexes {
            let (index, unique, origin, partial): (String, i64, String, i64) =
                (i.get("name"), i.get("u"), i.get("origin"), i.get("partial"));
            if origin == "pk" {
                continue;
            }
            let cols = sqlx::query("SELECT name FROM pragma_index_info($1) ORDER BY seqno")
                .bind(&index)
                .fetch_all(pool)
                .await
                .unwrap();
            // An expression's column has no name (`LOWER(email)`).
            let cols: Vec<String> = cols
                .iter()
                .map(|r| {
                    r.get::<Option<String>, _>("name")
                        .unwrap_or_else(|| "(expression)".into())
                })
                .collect();
            table.indexes.insert((cols.join(","), unique != 0, partial != 0));
        }
        schema.tables.insert(name, table);
    }
    schema
}

async fn postgres_schema(pool: &AnyPool) -> Schema {
    use sqlx::Row;
    let mut schema = Schema::default();
    let cols = sqlx::query(
        "SELECT table_name::text AS t, column_name::text AS c, data_type::text AS ty, \
         CASE WHEN is_nullable = 'YES' THEN 1 ELSE 0 END AS nullable \
         FROM information_schema.columns WHERE table_schema = current_schema() AND table_name NOT LIKE '\\_sqlx%'",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    for c in cols {
        let (t, col, ty, nullable): (String, String, String, i32) =
            (c.get("t"), c.get("c"), c.get("ty"), c.get("nullable"));
        let table = schema.tables.entry(t).or_default();
        table.columns.insert((col, kind(&ty), nullable != 0));
    }
    let indexes = sqlx::query(
        "SELECT t.relname::text AS t, \
         CASE WHEN ix.indisprimary THEN 1 ELSE 0 END AS pk, \
         CASE WHEN ix.indisunique THEN 1 ELSE 0 END AS u, \
         CASE WHEN ix.indpred IS NULL THEN 0 ELSE 1 END AS partial, \
         array_to_string(ARRAY(SELECT COALESCE(a.attname::text, '(expression)') \
           FROM unnest(ix.indkey) WITH ORDINALITY AS k(attnum, ord) \
           LEFT JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum ORDER BY k.ord), ',') AS cols \
         FROM pg_index ix JOIN pg_class t ON t.oid = ix.indrelid JOIN pg_namespace n ON n.oid = t.relnamespace \
         WHERE n.nspname = current_schema() AND t.relname NOT LIKE '\\_sqlx%'",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    for i in indexes {
        let (t, pk, unique, partial, cols): (String, i32, i32, i32, String) =
            (i.get("t"), i.get("pk"), i.get("u"), i.get("partial"), i.get("cols"));
        let table = schema.tables.entry(t).or_default();
        if pk != 0 {
            table.primary_key = cols.split(',').map(str::to_owned).collect();
        } else {
            table.indexes.insert((cols, unique != 0, partial != 0));
        }
    }
    schema
}

#[tokio::test]
async fn sqlite_and_postgres_migrate_to_the_same_schema() {
    let (sqlite, _) = db::connect(&sqlite().await).await.expect("migrate SQLite");
    let (postgres, _) = db::connect(&postgres().await).await.expect("migrate PostgreSQL");
    let (a, b) = (sqlite_schema(&sqlite).await, postgres_schema(&postgres).await);
    assert!(!a.tables.is_empty(), "SQLite has tables");
    let names = |s: &Schema| s.tables.keys().cloned().collect::<Vec<_>>();
    assert_eq!(names(&a), names(&b), "the same tables");
    for (name, ta) in &a.tables {
        let tb = &b.tables[name];
        assert_eq!(
            ta.columns, tb.columns,
            "columns of {name} (SQLite left, PostgreSQL right)"
        );
        assert_eq!(ta.primary_key, tb.primary_key, "primary key of {name}");
        assert_eq!(ta.indexes, tb.indexes, "indexes of {name}");
    }
}
