//! The streams service over a real store and engine: recovery from a node
//! that stopped between recording a sale and committing the hold, on SQLite +
//! in-process holds and on PostgreSQL + Redis.

use std::sync::Arc;

use streams::clock::{Clock, ManualClock};
use streams::db;
use streams::events::NoEvents;
use streams::ids::{BuyerId, SellerId};
use streams::inventory::{HoldStatus, Inventory, MemoryInventory, RedisInventory};
use streams::service::{NewLot, NewOffer, NewStream, OfferEnd, Settings, Streams};
use streams::store::StreamStore;
use streams::testing;

const T0: i64 = 1_700_000_000_000;
const TTL_MS: i64 = 30_000;

async fn service(url: String, inventory: Arc<dyn Inventory>) -> (Streams, ManualClock, SellerId) {
    let (pool, _) = db::connect(&url).await.expect("connect and migrate");
    let seller = SellerId::generate();
    sqlx::query("INSERT INTO sellers (id, name, is_demo, created_at) VALUES ($1, 'S', 0, $2)")
        .bind(seller.as_str())
        .bind(T0)
        .execute(&pool)
        .await
        .unwrap();
    let clock = ManualClock::new(T0);
    let streams = Streams::new(
        StreamStore::new(pool),
        inventory,
        Arc::new(clock.clone()),
        Arc::new(NoEvents),
        Settings::default(),
    );
    (streams, clock, seller)
}

async fn embedded() -> (Streams, ManualClock, SellerId) {
    service(testing::fresh_sqlite(), Arc::new(MemoryInventory::new())).await
}

async fn shared() -> (Streams, ManualClock, SellerId) {
    let redis = RedisInventory::connect(&testing::redis_url(), &testing::redis_prefix())
        .await
        .expect("Redis must be running for this test (see HAUL_TEST_REDIS_URL)");
    service(testing::fresh_postgres().await, Arc::new(redis)).await
}

async fn interrupted_commits_are_finished_not_expired(setup: (Streams, ManualClock, SellerId)) {
    let (s, clock, seller) = setup;
    let stream = s
        .create_stream(&seller, NewStream { title: "Sale".into() })
        .await
        .unwrap();
    s.go_live(&seller, &stream.id).await.unwrap();
    let lot = s.add_lot(&seller, &stream.id, NewLot::titled("Mug")).await.unwrap();
    let offer = s
        .create_offer(
            &seller,
            NewOffer {
                lot_id: lot.id.clone(),
                price_minor: 1000,
                currency: "RUB".into(),
                quantity: 3,
                per_buyer_limit: Some(3),
                end: OfferEnd::AfterMs(3_600_000),
                hold_ttl_ms: Some(TTL_MS),
                start_at: None,
            },
        )
        .await
        .unwrap();
    s.start_offer(&seller, &offer.id).await.unwrap();
    let alice = BuyerId::parse("alice").unwrap();
    let bob = BuyerId::parse("bob").unwrap();
    let a = s.reserve(&alice, &offer.id, 2, "a1").await.unwrap().hold;
    let b = s.reserve(&bob, &offer.id, 1, "b1").await.unwrap().hold;

    // A node records Alice's sale, then stops before the engine's commit.
    clock.advance(1_000);
    assert!(s
        .store()
        .insert_sale(&a.id, &offer.id, &alice, a.quantity, clock.now_ms())
        .await
        .unwrap());
    // Another records Bob's sale only after his hold had run out.
    clock.advance(TTL_MS);
    assert!(s
        .store()
        .insert_sale(&b.id, &offer.id, &bob, b.quantity, clock.now_ms())
        .await
        .unwrap());

    let expired = s.sweep_expired_holds().await.unwrap();
    // Alice's units stay sold; Bob's come back and his stale sale is gone.
    assert_eq!(expired.iter().map(|e| &e.hold.id).collect::<Vec<_>>(), vec![&b.id]);
    let levels = s.inventory().levels(&offer.id).await.unwrap().unwrap();
    assert_eq!((levels.held, levels.sold, levels.left), (0, 2, 1));
    let a_now = s.inventory().hold(&offer.id, &a.id).await.unwrap().unwrap();
    assert_eq!(a_now.status, HoldStatus::Committed);
    let sales = s.store().sold_by_buyer(&offer.id).await.unwrap();
    assert_eq!(sales.len(), 1);
    assert_eq!((sales[0].buyer.as_str(), sales[0].units), ("alice", 2));

    // The store and the engine agree: a rebuild would count the same.
    assert_eq!(s.offer_public(&offer.id).await.unwrap().units_left, Some(1));
    // And the unit left can be sold once, not twice.
    let carol = BuyerId::parse("carol").unwrap();
    assert!(s.reserve(&carol, &offer.id, 1, "c1").await.is_ok());
    assert!(s.reserve(&bob, &offer.id, 1, "b2").await.is_err());
}

mod embedded {
    #[tokio::test]
    async fn interrupted_commits_are_finished_not_expired() {
        super::interrupted_commits_are_finished_not_expired(super::embedded().await).await;
    }
}

mod shared {
    #[tokio::test]
    async fn interrupted_commits_are_finished_not_expired() {
        super::interrupted_commits_are_finished_not_expired(super::shared().await).await;
    }
}
