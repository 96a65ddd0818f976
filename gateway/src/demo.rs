//! The embedded demo: a seller, a live stream with lots, and a never-ending
//! cycle of offers with a few simulated buyers, so a newcomer sees a live sale
//! the moment `haul` starts.

use secrecy::ExposeSecret;
use std::time::Duration;

use rand::Rng;
use streams::ids::{BuyerId, LotId, SellerId, StreamId};
use streams::model::{OfferState, StreamState};
use streams::service::{NewLot, NewOffer, NewStream, OfferEnd};
use streams::store::Page;
use tokio::sync::watch;

use crate::state::AppState;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What the demo created or found.
#[derive(Debug, Clone)]
pub struct Demo {
    pub seller: SellerId,
    pub stream: StreamId,
    pub lots: Vec<LotId>,
}

const LOTS: &[(&str, &str, i64)] = &[
    (
        "Hand-thrown ceramic mug",
        "Stoneware, 350 ml, glazed by hand. Each one is a little different.",
        149_000,
    ),
    (
        "Merino wool scarf",
        "Extra-fine merino, 180 × 30 cm, in forest green.",
        259_000,
    ),
    (
        "Cast-iron skillet, 26 cm",
        "Pre-seasoned, oven-safe, lasts a lifetime.",
        329_000,
    ),
];

/// The demo seller (made on first start) and its API key.
async fn demo_seller(state: &AppState) -> Result<SellerId, BoxError> {
    let sellers = &state.sellers;
    let now = state.streams.now();
    let (seller, created) = match sellers.demo().await? {
        Some(s) => (s, false),
        None => (sellers.create("Demo shop", true, now).await?, true),
    };
    match (&state.config.demo_api_key, created) {
        (Some(key), _) => {
            sellers.add_key(&seller, key.expose_secret(), now).await?;
            println!("Demo seller {seller}: API key from HAUL_DEMO_API_KEY");
        }
        (None, true) => {
            let key = crate::sellers::generate_key();
            sellers.add_key(&seller, &key, now).await?;
            println!("Demo seller {seller}: API key {key}  (shown once; set HAUL_DEMO_API_KEY to fix it)");
        }
        (None, false) => {
            println!("Demo seller {seller}: its API key was printed at first start (HAUL_DEMO_API_KEY sets one)");
        }
    }
    Ok(seller)
}

/// Finds or creates the demo seller, its key, its live stream and lots.
pub async fn seed(state: &AppState) -> Result<Demo, BoxError> {
    let streams = &state.streams;
    let seller = demo_seller(state).await?;
    let existing = streams
        .list_streams(
            &seller,
            Page {
                limit: 20,
                before: None,
            },
        )
        .await?
        .into_iter()
        .find(|s| s.state != StreamState::Ended);
    let stream = match existing {
        Some(s) => s,
        None => {
            let s = streams
                .create_stream(
                    &seller,
                    NewStream {
                        title: "Haul demo sale".into(),
                    },
                )
                .await?;
            streams.go_live(&seller, &s.id).await?
        }
    };
    if stream.state == StreamState::Scheduled {
        streams.go_live(&seller, &stream.id).await?;
    }
    let mut lots: Vec<LotId> = streams
        .lots(&seller, &stream.id)
        .await?
        .into_iter()
        .map(|l| l.id)
        .collect();
    if lots.is_empty() {
        for (title, description, _) in LOTS {
            let lot = streams
                .add_lot(
                    &seller,
                    &stream.id,
                    NewLot {
                        title: (*title).into(),
                        description: (*description).into(),
                        image_url: None,
                    },
                )
                .await?;
            lots.push(lot.id);
        }
    }
    println!(
        "Demo stream {} is live: http://{}/v1/public/streams/{}",
        stream.id, state.config.listen, stream.id
    );
    println!(
        "Watch it in a browser: http://{}/watch/{}",
        state.config.listen, stream.id
    );
    Ok(Demo {
        seller,
        stream: stream.id,
        lots,
    })
}

/// Sleeps, or returns true when shutdown was asked for.
async fn pause(shutdown: &mut watch::Receiver<bool>, d: Duration) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => *shutdown.borrow(),
        _ = shutdown.changed() => true,
    }
}

/// Runs offers one after another on the demo lots until shutdown.
pub async fn run_cycle(state: AppState, demo: Demo, mut shutdown: watch::Receiver<bool>) {
    let mut turn = 0usize;
    loop {
        match one_offer(&state, &demo, turn, &mut shutdown).await {
            Ok(true) => return,
            Ok(false) => {}
            Err(e) => tracing::warn!(error = ?e, "demo offer cycle failed; retrying"),
        }
        turn += 1;
        if pause(&mut shutdown, Duration::from_secs(5)).await {
            return;
        }
    }
}

/// Runs one offer to its end with simulated buyers. Returns true on shutdown.
async fn one_offer(
    state: &AppState,
    demo: &Demo,
    turn: usize,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<bool, BoxError> {
    let streams = &state.streams;
    // A live offer left from a previous run finishes first.
    let open = streams
        .offers(&demo.seller, &demo.stream)
        .await?
        .into_iter()
        .find(|o| o.state == OfferState::Live);
    let offer = match open {
        Some(o) => o,
        None => {
            let lot = &demo.lots[turn % demo.lots.len()];
            let price = LOTS[turn % LOTS.len()].2;
            streams.pin_lot(&demo.seller, lot).await?;
            let draft = streams
                .create_offer(
                    &demo.seller,
                    NewOffer {
                        lot_id: lot.clone(),
                        price_minor: price,
                        currency: "RUB".into(),
                        quantity: 12,
                        per_buyer_limit: Some(2),
                        end: OfferEnd::AfterMs(45_000),
                        hold_ttl_ms: Some(20_000),
                    },
                )
                .await?;
            streams.start_offer(&demo.seller, &draft.id).await?
        }
    };
    loop {
        let wait = Duration::from_millis(rand::rng().random_range(1200..3000));
        if pause(shutdown, wait).await {
            return Ok(true);
        }
        let current = streams.offer(&demo.seller, &offer.id).await?;
        if current.state == OfferState::Ended {
            return Ok(false);
        }
        let (buyer_n, commit) = {
            let mut rng = rand::rng();
            (rng.random_range(0..40), rng.random_bool(0.6))
        };
        let buyer = BuyerId::parse(&format!("demo.buyer-{buyer_n}"))?;
        let request = streams::ids::random_token(12);
        if let Ok(r) = streams.reserve(&buyer, &offer.id, 1, &request).await {
            if commit {
                if pause(shutdown, Duration::from_millis(800)).await {
                    return Ok(true);
                }
                streams.commit_hold(&demo.seller, &offer.id, &r.hold.id).await?;
            }
        }
    }
}
