//! The embedded demo: a seller, a live stream with lots, and a never-ending
//! cycle of offers with a few simulated buyers, so a newcomer sees a live sale
//! the moment `haul` starts.
//!
//! The demo touches only what it made: its stream, lots and current offer
//! are named in `HAUL_DATA_DIR/demo.json`, never found by "the newest", so
//! a stream, lot or offer someone makes with the demo seller's key is never
//! adopted, sold to or stocked by the demo's bots.

use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};

use rand::Rng;
use streams::ids::{BuyerId, LotId, OfferId, SellerId, StreamId};
use streams::model::{OfferState, StreamState};
use streams::service::{NewLot, NewOffer, NewStream, OfferEnd};
use tokio::sync::watch;

use crate::state::AppState;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What the demo created or found.
#[derive(Debug, Clone)]
pub struct Demo {
    pub seller: SellerId,
    pub stream: StreamId,
    pub lots: Vec<LotId>,
    /// This start's one-time console sign-in link for the demo's owner.
    pub console: String,
    /// Where the demo names what it made.
    marker: PathBuf,
}

/// What the demo made, as `demo.json` keeps it.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Marker {
    stream: Option<String>,
    #[serde(default)]
    lots: Vec<String>,
    /// The offer the cycle runs now.
    offer: Option<String>,
}

impl Marker {
    /// The marker as written, or an empty one (none yet, or unreadable: the
    /// demo then makes new things rather than guess).
    fn read(path: &Path) -> Marker {
        std::fs::read(path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    /// Written whole (a temporary file renamed over it), owner-only.
    fn write(&self, path: &Path) -> std::io::Result<()> {
        use std::io::Write;
        let tmp = path.with_extension("json.tmp");
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut f = options.open(&tmp)?;
        f.write_all(&serde_json::to_vec(self).map_err(std::io::Error::other)?)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    }
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

/// The demo seller (made on first start, in test mode only) and its API key.
async fn demo_seller(state: &AppState) -> Result<SellerId, BoxError> {
    let sellers = &state.sellers;
    let now = state.streams.now();
    let (seller, created) = match sellers.demo().await? {
        Some(s) => (s, false),
        None => (
            sellers
                .create("Demo shop", true, crate::sellers::Mode::Test, now)
                .await?,
            true,
        ),
    };
    match (&state.config.demo_api_key, created) {
        (Some(key), _) => {
            sellers.add_key(&seller, key.expose_secret(), now).await?;
            println!("Demo seller {seller}: API key from HAUL_DEMO_API_KEY");
        }
        (None, true) => {
            let key = crate::sellers::generate_key(crate::sellers::Mode::Test);
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
    let seller = demo_seller(state).await?;
    let path = state.config.data_dir.join("demo.json");
    let mut marker = Marker::read(&path);
    let stream = own_stream(state, &seller, &mut marker).await?;
    let lots = own_lots(state, &seller, &stream, &mut marker).await?;
    marker.write(&path)?;
    println!(
        "Demo stream {stream} is live: http://{}/v1/public/streams/{stream}",
        state.config.listen
    );
    println!("Watch it in a browser: http://{}/watch/{stream}", state.config.listen);
    let console = console_link(state, &seller).await?;
    println!("Run the sale from the console: {console}  (a one-time sign-in link for the demo's owner)");
    Ok(Demo {
        seller,
        stream,
        lots,
        console,
        marker: path,
    })
}

/// The demo owner's email: a person made for the demo, signed in by the
/// link printed at every start (it has no password).
pub const DEMO_OWNER: &str = "owner@demo.haul.invalid";

/// A fresh one-time sign-in link for the demo's owner (made, and made the
/// demo's owner, at first start).
async fn console_link(state: &AppState, seller: &SellerId) -> Result<String, BoxError> {
    let now = state.payments.now();
    let person = state
        .people
        .find_or_create(DEMO_OWNER, "Demo owner", widget::Locale::default(), now)
        .await?;
    state
        .people
        .join(seller, &person.id, crate::people::Role::Owner, now)
        .await?;
    let token = state
        .people
        .new_link(&crate::people::LinkPurpose::SignIn, Some(DEMO_OWNER), None, now)
        .await?;
    Ok(format!("{}/console/link/{token}", state.public_url))
}

/// The demo's own stream, live: the one its marker names while it is not
/// over, else a new one.
async fn own_stream(state: &AppState, seller: &SellerId, marker: &mut Marker) -> Result<StreamId, BoxError> {
    let streams = &state.streams;
    let named = marker.stream.as_deref().and_then(|s| StreamId::parse(s).ok());
    if let Some(id) = named {
        match streams.stream(seller, &id).await {
            Ok(s) if s.state == StreamState::Scheduled => return Ok(streams.go_live(seller, &id).await?.id),
            Ok(s) if s.state != StreamState::Ended => return Ok(s.id),
            Ok(_) | Err(streams::service::Error::NotFound(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let new = NewStream {
        title: "Haul demo sale".into(),
    };
    let s = streams.create_stream(seller, new).await?;
    let s = streams.go_live(seller, &s.id).await?;
    *marker = Marker {
        stream: Some(s.id.to_string()),
        ..Marker::default()
    };
    Ok(s.id)
}

/// The demo's own lots on its stream: those its marker names that still
/// exist, else new ones.
async fn own_lots(
    state: &AppState,
    seller: &SellerId,
    stream: &StreamId,
    marker: &mut Marker,
) -> Result<Vec<LotId>, BoxError> {
    let streams = &state.streams;
    let there = streams.lots(seller, stream, false).await?;
    // In the marker's order: the cycle goes through them as it did.
    let lots: Vec<LotId> = marker
        .lots
        .iter()
        .filter_map(|m| there.iter().find(|l| l.id.as_str() == m).map(|l| l.id.clone()))
        .collect();
    if !lots.is_empty() {
        return Ok(lots);
    }
    let mut made = Vec::new();
    for (title, description, price) in LOTS {
        // The console's "launch" starts from these terms.
        let new = NewLot {
            description: (*description).into(),
            price_minor: Some(*price),
            currency: Some("RUB".into()),
            quantity: Some(20),
            per_buyer_limit: Some(2),
            duration_seconds: Some(120),
            ..NewLot::titled(*title)
        };
        made.push(streams.add_lot(seller, stream, new).await?.id);
    }
    marker.lots = made.iter().map(|l| l.to_string()).collect();
    marker.offer = None;
    Ok(made)
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
    // The demo's own offer left live by a previous run finishes first.
    let mut marker = Marker::read(&demo.marker);
    let open = match marker.offer.as_deref().and_then(|o| OfferId::parse(o).ok()) {
        Some(id) => match streams.offer(&demo.seller, &id).await {
            Ok(o) if o.state == OfferState::Live && demo.lots.contains(&o.lot_id) => Some(o),
            _ => None,
        },
        None => None,
    };
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
                        start_at: None,
                    },
                )
                .await?;
            marker.offer = Some(draft.id.to_string());
            marker.write(&demo.marker)?;
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
