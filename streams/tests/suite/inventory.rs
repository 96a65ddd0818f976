//! One conformance suite for every stock engine: the in-process engine and the
//! Redis engine (against the real server at `HAUL_TEST_REDIS_URL`, default
//! `redis://127.0.0.1:6379`, each test under its own random key prefix).

use std::collections::HashMap;
use std::sync::Arc;

use streams::ids::{random_token, BuyerId, HoldId, OfferId};
use streams::inventory::{
    Adjust, AdjustRefusal, GroupCap, HoldError, HoldStatus, Inventory, MemoryInventory, OfferStock, RedisInventory,
    Refusal, ReserveRequest,
};
use streams::store::BuyerSold;

const T0: i64 = 1_700_000_000_000;

fn redis_url() -> String {
    std::env::var("HAUL_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

async fn memory() -> Arc<dyn Inventory> {
    Arc::new(MemoryInventory::new())
}

async fn redis() -> Arc<dyn Inventory> {
    Arc::new(redis_at(&format!("haultest:{}", random_token(10))).await)
}

async fn redis_at(prefix: &str) -> RedisInventory {
    RedisInventory::connect(&redis_url(), prefix)
        .await
        .expect("Redis must be running for the engine conformance tests")
}

fn buyer(n: usize) -> BuyerId {
    BuyerId::parse(&format!("buyer-{n}")).unwrap()
}

fn stock(quantity: i64, limit: i64) -> OfferStock {
    OfferStock {
        offer: OfferId::generate(),
        quantity,
        per_buyer_limit: limit,
        starts_at: T0,
        ends_at: T0 + 60_000,
        sold: Vec::new(),
    }
}

fn req(stock: &OfferStock, buyer: &BuyerId, quantity: i64, request_id: &str, now: i64) -> ReserveRequest {
    ReserveRequest {
        offer: stock.offer.clone(),
        buyer: buyer.clone(),
        quantity,
        ttl_ms: 10_000,
        request_id: request_id.to_owned(),
        hold_id: HoldId::generate(),
        now,
        group: None,
    }
}

async fn loaded(engine: &dyn Inventory, quantity: i64, limit: i64) -> OfferStock {
    let s = stock(quantity, limit);
    assert!(engine.load(&s).await.unwrap());
    s
}

async fn reserve_holds_units_and_reports_what_is_left(engine: Arc<dyn Inventory>) {
    let s = loaded(&*engine, 10, 5).await;
    let r = engine.reserve(&req(&s, &buyer(1), 3, "a", T0)).await.unwrap().unwrap();
    assert_eq!(r.units_left, 7);
    assert_eq!(r.hold.quantity, 3);
    assert_eq!(r.hold.status, HoldStatus::Held);
    assert_eq!(r.hold.expires_at, T0 + 10_000);
    assert!(!r.replayed);
    let levels = engine.levels(&s.offer).await.unwrap().unwrap();
    assert_eq!((levels.quantity, levels.held, levels.sold, levels.left), (10, 3, 0, 7));
    assert_eq!(engine.hold(&s.offer, &r.hold.id).await.unwrap(), Some(r.hold));
}

async fn reserve_refuses_when_stock_runs_out(engine: Arc<dyn Inventory>) {
    let s = loaded(&*engine, 3, 3).await;
    engine.reserve(&req(&s, &buyer(1), 2, "a", T0)).await.unwrap().unwrap();
    let r = engine.reserve(&req(&s, &buyer(2), 2, "a", T0)).await.unwrap();
    assert_eq!(r, Err(Refusal::NotEnoughStock { left: 1 }));
    engine.reserve(&req(&s, &buyer(2), 1, "b", T0)).await.unwrap().unwrap();
    let r = engine.reserve(&req(&s, &buyer(3), 1, "a", T0)).await.unwrap();
    assert_eq!(r, Err(Refusal::SoldOut));
}

async fn reserve_refuses_when_per_buyer_limit_reached(engine: Arc<dyn Inventory>) {
    let s = loaded(&*engine, 100, 3).await;
    engine.reserve(&req(&s, &buyer(1), 2, "a", T0)).await.unwrap().unwrap();
    let r = engine.reserve(&req(&s, &buyer(1), 2, "b", T0)).await.unwrap();
    assert_eq!(r, Err(Refusal::OverLimit { remaining: 1 }));
    engine.reserve(&req(&s, &buyer(1), 1, "c", T0)).await.unwrap().unwrap();
    let r = engine.reserve(&req(&s, &buyer(1), 1, "d", T0)).await.unwrap();
    assert_eq!(r, Err(Refusal::OverLimit { remaining: 0 }));
    // Another buyer is not affected.
    engine.reserve(&req(&s, &buyer(2), 3, "a", T0)).await.unwrap().unwrap();
}

fn capped(r: ReserveRequest, group: &str, units: i64) -> ReserveRequest {
    ReserveRequest {
        group: Some(GroupCap {
            key: group.to_owned(),
            units,
        }),
        ..r
    }
}

/// Many buyer ids from one group hold no more than the group's cap at once;
/// units come back to the group when its holds are released, expire or are
/// sold, and other groups are not affected.
async fn a_group_of_buyers_holds_no_more_than_its_cap(engine: Arc<dyn Inventory>) {
    let s = loaded(&*engine, 20, 1).await;
    let mut held = Vec::new();
    for i in 0..3 {
        let r = capped(req(&s, &buyer(i), 1, "a", T0), "ip:203.0.113.7", 3);
        held.push(engine.reserve(&r).await.unwrap().unwrap().hold);
    }
    for i in 3..20 {
        let r = capped(req(&s, &buyer(i), 1, "a", T0), "ip:203.0.113.7", 3);
        assert_eq!(
            engine.reserve(&r).await.unwrap(),
            Err(Refusal::OverGroupLimit { remaining: 0 }),
            "buyer {i}"
        );
    }
    // A replay of a held request is still answered.
    let again = capped(req(&s, &buyer(0), 1, "a", T0), "ip:203.0.113.7", 3);
    assert!(engine.reserve(&again).await.unwrap().unwrap().replayed);
    // Another address, and an uncapped reserve, are not affected.
    let other = capped(req(&s, &buyer(50), 1, "a", T0), "ip:198.51.100.1", 3);
    engine.reserve(&other).await.unwrap().unwrap();
    engine.reserve(&req(&s, &buyer(51), 1, "a", T0)).await.unwrap().unwrap();
    assert_eq!(engine.levels(&s.offer).await.unwrap().unwrap().left, 15);
    // A quantity over what is left of the cap says how much is.
    let wide = loaded(&*engine, 20, 5).await;
    let first = capped(req(&wide, &buyer(1), 2, "a", T0), "g", 3);
    engine.reserve(&first).await.unwrap().unwrap();
    let over = capped(req(&wide, &buyer(2), 2, "a", T0), "g", 3);
    assert_eq!(
        engine.reserve(&over).await.unwrap(),
        Err(Refusal::OverGroupLimit { remaining: 1 })
    );

    // Released, sold and expired holds stop counting: one slot each.
    engine.release(&s.offer, &held[0].id, None).await.unwrap().unwrap();
    let r = capped(req(&s, &buyer(10), 1, "b", T0), "ip:203.0.113.7", 3);
    engine.reserve(&r).await.unwrap().unwrap();
    engine.commit(&s.offer, &held[1].id, T0 + 1).await.unwrap().unwrap();
    let r = capped(req(&s, &buyer(11), 1, "b", T0 + 1), "ip:203.0.113.7", 3);
    engine.reserve(&r).await.unwrap().unwrap();
    let r = capped(req(&s, &buyer(12), 1, "b", T0 + 1), "ip:203.0.113.7", 3);
    assert_eq!(
        engine.reserve(&r).await.unwrap(),
        Err(Refusal::OverGroupLimit { remaining: 0 })
    );
    let swept = engine.sweep(T0 + 10_000, 100).await.unwrap();
    assert!(swept.iter().any(|e| e.hold.id == held[2].id));
    let r = capped(req(&s, &buyer(13), 1, "c", T0 + 10_000), "ip:203.0.113.7", 3);
    engine.reserve(&r).await.unwrap().unwrap();
}

async fn reserve_is_idempotent_per_buyer_and_request_id(engine: Arc<dyn Inventory>) {
    let s = loaded(&*engine, 10, 10).await;
    let first = engine
        .reserve(&req(&s, &buyer(1), 2, "same", T0))
        .await
        .unwrap()
        .unwrap();
    let again = engine
        .reserve(&req(&s, &buyer(1), 2, "same", T0 + 5))
        .await
        .unwrap()
        .unwrap();
    assert!(again.replayed);
    assert_eq!(again.hold, first.hold);
    assert_eq!(engine.levels(&s.offer).await.unwrap().unwrap().held, 2);
    // The same request id from another buyer is another request.
    let other = engine
        .reserve(&req(&s, &buyer(2), 2, "same", T0))
        .await
        .unwrap()
        .unwrap();
    assert_ne!(other.hold.id, first.hold.id);
    // The same id for another quantity is refused, not silently answered.
    let r = engine.reserve(&req(&s, &buyer(1), 3, "same", T0)).await.unwrap();
    assert_eq!(r, Err(Refusal::RequestIdReused));
}

async fn reserve_refuses_outside_the_offer_window_and_unknown_offers(engine: Arc<dyn Inventory>) {
    let s = loaded(&*engine, 10, 10).await;
    let r = engine.reserve(&req(&s, &buyer(1), 1, "a", T0 - 1)).await.unwrap();
    assert_eq!(r, Err(Refusal::NotStarted));
    let r = engine.reserve(&req(&s, &buyer(1), 1, "b", T0 + 60_000)).await.unwrap();
    assert_eq!(r, Err(Refusal::Ended));
    let unknown = stock(1, 1);
    let r = engine.reserve(&req(&unknown, &buyer(1), 1, "a", T0)).await.unwrap();
    assert_eq!(r, Err(Refusal::NotLoaded));
}

async fn release_gives_units_back_once_and_only_to_the_owner(engine: Arc<dyn Inventory>) {
    let s = loaded(&*engine, 5, 5).await;
    let h = engine
        .reserve(&req(&s, &buyer(1), 4, "a", T0))
        .await
        .unwrap()
        .unwrap()
        .hold;
    let r = engine.release(&s.offer, &h.id, Some(&buyer(2))).await.unwrap();
    assert_eq!(r, Err(HoldError::NotOwner));
    let (released, levels) = engine.release(&s.offer, &h.id, Some(&buyer(1))).await.unwrap().unwrap();
    assert_eq!(released.status, HoldStatus::Released);
    assert_eq!(levels.left, 5);
    let (_, levels) = engine.release(&s.offer, &h.id, None).await.unwrap().unwrap();
    assert_eq!(levels.left, 5, "a second release must not give units back twice");
    // The buyer's limit counts only what they still hold.
    engine.reserve(&req(&s, &buyer(1), 5, "b", T0)).await.unwrap().unwrap();
    let r = engine.release(&s.offer, &HoldId::generate(), None).await.unwrap();
    assert_eq!(r, Err(HoldError::NotFound));
}

async fn commit_sells_a_live_hold_once(engine: Arc<dyn Inventory>) {
    let s = loaded(&*engine, 5, 5).await;
    let h = engine
        .reserve(&req(&s, &buyer(1), 2, "a", T0))
        .await
        .unwrap()
        .unwrap()
        .hold;
    let (committed_hold, c) = engine.commit(&s.offer, &h.id, T0 + 1).await.unwrap().unwrap();
    assert!(c.newly);
    assert_eq!(committed_hold.status, HoldStatus::Committed);
    assert_eq!((c.levels.held, c.levels.sold, c.levels.left), (0, 2, 3));
    let (_, again) = engine.commit(&s.offer, &h.id, T0 + 2).await.unwrap().unwrap();
    assert!(!again.newly);
    assert_eq!(again.levels.sold, 2);
    // A committed hold cannot be released, and it still counts for the buyer's limit.
    let r = engine.release(&s.offer, &h.id, None).await.unwrap();
    assert_eq!(r, Err(HoldError::NotActive(HoldStatus::Committed)));
    let r = engine.reserve(&req(&s, &buyer(1), 4, "b", T0)).await.unwrap();
    assert_eq!(r, Err(Refusal::OverLimit { remaining: 3 }));
    // An expired hold cannot be committed, even before the sweeper ran.
    let late = engine
        .reserve(&req(&s, &buyer(2), 1, "a", T0))
        .await
        .unwrap()
        .unwrap()
        .hold;
    let r = engine.commit(&s.offer, &late.id, late.expires_at).await.unwrap();
    assert_eq!(r, Err(HoldError::NotActive(HoldStatus::Expired)));
}

async fn sweep_releases_expired_holds_once_and_respects_extensions(engine: Arc<dyn Inventory>) {
    let s = loaded(&*engine, 10, 10).await;
    let a = engine
        .reserve(&req(&s, &buyer(1), 2, "a", T0))
        .await
        .unwrap()
        .unwrap()
        .hold;
    let b = engine
        .reserve(&req(&s, &buyer(2), 3, "a", T0 + 100))
        .await
        .unwrap()
        .unwrap()
        .hold;
    let extended = engine
        .extend(&s.offer, &b.id, 30_000, T0 + 5_000)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(extended.expires_at, T0 + 35_000);
    assert!(engine.sweep(T0 + 9_999, 100).await.unwrap().is_empty());
    let swept = engine.sweep(T0 + 20_000, 100).await.unwrap();
    assert_eq!(swept.len(), 1);
    assert_eq!(swept[0].hold.id, a.id);
    assert_eq!(swept[0].hold.status, HoldStatus::Expired);
    assert_eq!(swept[0].levels.left, 7);
    assert!(
        engine.sweep(T0 + 20_000, 100).await.unwrap().is_empty(),
        "expired twice"
    );
    let r = engine.extend(&s.offer, &a.id, 10_000, T0 + 20_000).await.unwrap();
    assert_eq!(r, Err(HoldError::NotActive(HoldStatus::Expired)));
    assert_eq!(engine.live_holds().await.unwrap(), 1);
    let swept = engine.sweep(T0 + 35_000, 100).await.unwrap();
    assert_eq!(swept.len(), 1);
    assert_eq!(engine.levels(&s.offer).await.unwrap().unwrap().left, 10);
}

async fn close_stops_new_reserves_but_keeps_live_holds(engine: Arc<dyn Inventory>) {
    let s = loaded(&*engine, 10, 10).await;
    let h = engine
        .reserve(&req(&s, &buyer(1), 2, "a", T0))
        .await
        .unwrap()
        .unwrap()
        .hold;
    engine.close(&s.offer, T0 + 10, 60_000).await.unwrap();
    let r = engine.reserve(&req(&s, &buyer(2), 1, "a", T0 + 20)).await.unwrap();
    assert_eq!(r, Err(Refusal::Ended));
    // A retry of an earlier reserve still gets its hold back.
    let again = engine
        .reserve(&req(&s, &buyer(1), 2, "a", T0 + 20))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.hold.id, h.id);
    let (_, c) = engine.commit(&s.offer, &h.id, T0 + 30).await.unwrap().unwrap();
    assert_eq!(c.levels.sold, 2);
}

async fn load_rebuilds_sold_units_and_never_overwrites(engine: Arc<dyn Inventory>) {
    let mut s = stock(5, 2);
    s.sold = vec![
        BuyerSold {
            buyer: buyer(1),
            units: 2,
        },
        BuyerSold {
            buyer: buyer(2),
            units: 1,
        },
    ];
    assert!(engine.load(&s).await.unwrap());
    let levels = engine.levels(&s.offer).await.unwrap().unwrap();
    assert_eq!((levels.sold, levels.left), (3, 2));
    let r = engine.reserve(&req(&s, &buyer(1), 1, "a", T0)).await.unwrap();
    assert_eq!(r, Err(Refusal::OverLimit { remaining: 0 }));
    engine.reserve(&req(&s, &buyer(2), 1, "a", T0)).await.unwrap().unwrap();
    // A second load (another node rebuilding at the same time) changes nothing.
    s.sold.clear();
    assert!(!engine.load(&s).await.unwrap());
    assert_eq!(engine.levels(&s.offer).await.unwrap().unwrap().left, 1);
}

/// Thousands of concurrent reserves from many buyers on a small quantity:
/// exactly `quantity` units end up held, no buyer passes the limit, and every
/// unit comes back once the holds expire.
async fn concurrent_reserves_never_oversell(engine: Arc<dyn Inventory>) {
    let quantity = 50;
    let limit = 3;
    let s = loaded(&*engine, quantity, limit).await;
    let mut tasks = Vec::new();
    for i in 0..4000usize {
        let engine = engine.clone();
        let r = req(
            &s,
            &buyer(i % 400),
            1 + (i % 3) as i64,
            &format!("r{i}"),
            T0 + (i % 50) as i64,
        );
        tasks.push(tokio::spawn(async move { engine.reserve(&r).await.unwrap() }));
    }
    let mut per_buyer: HashMap<BuyerId, i64> = HashMap::new();
    let mut held = 0;
    for t in tasks {
        if let Ok(r) = t.await.unwrap() {
            held += r.hold.quantity;
            *per_buyer.entry(r.hold.buyer_id).or_default() += r.hold.quantity;
        }
    }
    assert_eq!(
        held, quantity,
        "demand far exceeds stock, so every unit must be held, none twice"
    );
    assert!(per_buyer.values().all(|&u| u <= limit), "a buyer passed the limit");
    let levels = engine.levels(&s.offer).await.unwrap().unwrap();
    assert_eq!((levels.held, levels.left), (quantity, 0));
    let mut back = 0;
    loop {
        let swept = engine.sweep(T0 + 100_000, 7).await.unwrap();
        if swept.is_empty() {
            break;
        }
        back += swept.iter().map(|e| e.hold.quantity).sum::<i64>();
    }
    assert_eq!(back, quantity);
    assert_eq!(engine.levels(&s.offer).await.unwrap().unwrap().left, quantity);
}

async fn adjust_changes_terms_at_once_never_below_what_is_taken(engine: Arc<dyn Inventory>) {
    let s = loaded(&*engine, 5, 5).await;
    engine.reserve(&req(&s, &buyer(1), 3, "a", T0)).await.unwrap().unwrap();
    let q = |n: i64| Adjust {
        quantity: Some(n),
        ..Adjust::default()
    };
    assert_eq!(
        engine.adjust(&s.offer, &q(2)).await.unwrap(),
        Err(AdjustRefusal::BelowTaken { taken: 3 })
    );
    assert_eq!(
        engine.levels(&s.offer).await.unwrap().unwrap().quantity,
        5,
        "a refusal changes nothing"
    );
    let l = engine.adjust(&s.offer, &q(3)).await.unwrap().unwrap();
    assert_eq!((l.quantity, l.held, l.left), (3, 3, 0));
    assert_eq!(
        engine.reserve(&req(&s, &buyer(2), 1, "a", T0)).await.unwrap(),
        Err(Refusal::SoldOut)
    );
    let l = engine.adjust(&s.offer, &q(6)).await.unwrap().unwrap();
    assert_eq!(l.left, 3);
    engine.reserve(&req(&s, &buyer(2), 2, "b", T0)).await.unwrap().unwrap();
    // A lower limit holds for what a buyer takes next.
    let limit = Adjust {
        per_buyer_limit: Some(1),
        ..Adjust::default()
    };
    engine.adjust(&s.offer, &limit).await.unwrap().unwrap();
    assert_eq!(
        engine.reserve(&req(&s, &buyer(3), 2, "a", T0)).await.unwrap(),
        Err(Refusal::OverLimit { remaining: 1 })
    );
    // An earlier end refuses from then on; a later one sells on.
    let end = |at: i64| Adjust {
        ends_at: Some(at),
        ..Adjust::default()
    };
    engine.adjust(&s.offer, &end(T0 + 100)).await.unwrap().unwrap();
    assert_eq!(
        engine.reserve(&req(&s, &buyer(3), 1, "b", T0 + 100)).await.unwrap(),
        Err(Refusal::Ended)
    );
    engine.adjust(&s.offer, &end(T0 + 200)).await.unwrap().unwrap();
    engine
        .reserve(&req(&s, &buyer(3), 1, "c", T0 + 150))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        engine.adjust(&OfferId::generate(), &q(1)).await.unwrap(),
        Err(AdjustRefusal::NotLoaded)
    );
    engine.close(&s.offer, T0 + 300, 60_000).await.unwrap();
    assert_eq!(
        engine.adjust(&s.offer, &q(9)).await.unwrap(),
        Err(AdjustRefusal::Closed)
    );
}

/// Stock added and taken away while thousands of reserves race: held +
/// sold never passes the quantity at any moment, and every unit the
/// final quantity allows is taken.
async fn changing_stock_during_a_storm_never_oversells(engine: Arc<dyn Inventory>) {
    let s = loaded(&*engine, 10, 1).await;
    let mut tasks = Vec::new();
    for i in 0..3000usize {
        let engine = engine.clone();
        let r = req(&s, &buyer(i), 1, "r", T0 + (i % 50) as i64);
        tasks.push(tokio::spawn(async move { engine.reserve(&r).await.unwrap().is_ok() }));
    }
    let seller = {
        let engine = engine.clone();
        let offer = s.offer.clone();
        tokio::spawn(async move {
            let mut accepted = Vec::new();
            for n in [20, 5, 40, 30, 60] {
                let change = Adjust {
                    quantity: Some(n),
                    ..Adjust::default()
                };
                match engine.adjust(&offer, &change).await.unwrap() {
                    Ok(l) => {
                        assert!(l.held + l.sold <= l.quantity, "{l:?}");
                        accepted.push(n);
                    }
                    Err(AdjustRefusal::BelowTaken { taken }) => assert!(taken > n),
                    Err(e) => panic!("{e}"),
                }
                tokio::task::yield_now().await;
            }
            accepted
        })
    };
    let mut held = 0;
    for t in tasks {
        held += i64::from(t.await.unwrap());
    }
    let accepted = seller.await.unwrap();
    // Buyers keep coming after the last change.
    for i in 3000..3200usize {
        let r = req(&s, &buyer(i), 1, "r", T0 + 60);
        held += i64::from(engine.reserve(&r).await.unwrap().is_ok());
    }
    let levels = engine.levels(&s.offer).await.unwrap().unwrap();
    assert_eq!(Some(&levels.quantity), accepted.last(), "{accepted:?}");
    assert_eq!(levels.held, held, "every hold counted once");
    assert!(levels.held <= levels.quantity, "{levels:?}");
    assert_eq!(levels.left, 0, "demand far exceeds stock: every unit is taken");
}

macro_rules! conformance {
    ($engine:ident: $($test:ident),* $(,)?) => {
        mod $engine {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test(super::$engine().await).await;
                }
            )*
        }
    };
}

macro_rules! suite {
    ($($engine:ident),*) => {
        $(conformance!($engine:
            reserve_holds_units_and_reports_what_is_left,
            reserve_refuses_when_stock_runs_out,
            reserve_refuses_when_per_buyer_limit_reached,
            a_group_of_buyers_holds_no_more_than_its_cap,
            reserve_is_idempotent_per_buyer_and_request_id,
            reserve_refuses_outside_the_offer_window_and_unknown_offers,
            release_gives_units_back_once_and_only_to_the_owner,
            commit_sells_a_live_hold_once,
            sweep_releases_expired_holds_once_and_respects_extensions,
            close_stops_new_reserves_but_keeps_live_holds,
            load_rebuilds_sold_units_and_never_overwrites,
            concurrent_reserves_never_oversell,
            adjust_changes_terms_at_once_never_below_what_is_taken,
            changing_stock_during_a_storm_never_oversells,
        );)*
    };
}

suite!(memory, redis);

/// Two gateway nodes share one Redis: concurrent reserves through both never
/// oversell, and each expired hold is released by exactly one node's sweeper.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_redis_nodes_share_stock_without_overselling() {
    let prefix = format!("haultest:{}", random_token(10));
    let a: Arc<dyn Inventory> = Arc::new(redis_at(&prefix).await);
    let b: Arc<dyn Inventory> = Arc::new(redis_at(&prefix).await);
    let s = stock(30, 2);
    assert!(a.load(&s).await.unwrap());
    assert!(!b.load(&s).await.unwrap());
    let mut tasks = Vec::new();
    for i in 0..2000usize {
        let engine = if i % 2 == 0 { a.clone() } else { b.clone() };
        let r = req(&s, &buyer(i % 300), 1, &format!("r{i}"), T0);
        tasks.push(tokio::spawn(async move { engine.reserve(&r).await.unwrap() }));
    }
    let mut held = 0;
    for t in tasks {
        if let Ok(r) = t.await.unwrap() {
            held += r.hold.quantity;
        }
    }
    assert_eq!(held, 30);
    let (sa, sb) = tokio::join!(a.sweep(T0 + 20_000, 1000), b.sweep(T0 + 20_000, 1000));
    let released: i64 = sa
        .unwrap()
        .iter()
        .chain(sb.unwrap().iter())
        .map(|e| e.hold.quantity)
        .sum();
    assert_eq!(released, 30, "each hold released exactly once across nodes");
    assert_eq!(a.levels(&s.offer).await.unwrap().unwrap().left, 30);
}
