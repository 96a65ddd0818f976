//! Stock holds: the inventory engines.
//!
//! An engine keeps, per live offer, the quantity, the units held and sold, each
//! buyer's units, and the live holds ordered by expiry. Every operation on one
//! offer is atomic in the engine (a mutex in-process, a Lua script in Redis), so
//! held + sold never exceeds the quantity and no buyer passes their limit,
//! whatever the concurrency and however many gateway nodes share the engine.
//!
//! The durable store stays the record: an engine that has lost an offer answers
//! [`Refusal::NotLoaded`] and the caller reloads it from the database with
//! [`Inventory::load`] (quantity, limits and units already sold).
//!
//! Time is always passed in by the caller (`now`), so every engine can be tested
//! with a controllable clock and several nodes agree on expiry.

mod memory;
mod redis;

pub use self::memory::MemoryInventory;
pub use self::redis::{RedisInventory, RedisPolicy};

use async_trait::async_trait;
use serde::Serialize;

use crate::clock::Millis;
use crate::ids::{BuyerId, HoldId, OfferId};
use crate::store::BuyerSold;

/// What an engine needs to know about an offer to sell its stock.
#[derive(Debug, Clone)]
pub struct OfferStock {
    pub offer: OfferId,
    pub quantity: i64,
    pub per_buyer_limit: i64,
    /// Reserves before this time are refused as not started.
    pub starts_at: Millis,
    /// Reserves from this time on are refused as ended, even before the
    /// offer timer has marked the offer ended.
    pub ends_at: Millis,
    /// Units already sold, per buyer (from the durable store when rebuilding).
    pub sold: Vec<BuyerSold>,
}

/// A request to hold units.
#[derive(Debug, Clone)]
pub struct ReserveRequest {
    pub offer: OfferId,
    pub buyer: BuyerId,
    pub quantity: i64,
    pub ttl_ms: i64,
    /// The buyer's own request id: a retry with the same id returns the same
    /// hold instead of taking more stock. 1–64 characters, `[A-Za-z0-9_-]`.
    pub request_id: String,
    /// The id the new hold gets if one is created.
    pub hold_id: HoldId,
    pub now: Millis,
    /// A cap on the units one group of buyers (the client address they
    /// come from) may hold at once in this offer, whatever their ids.
    pub group: Option<GroupCap>,
}

/// A cap on the units a group of buyers holds at once in one offer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupCap {
    /// The group: any text without `|` (e.g. `ip:203.0.113.7`).
    pub key: String,
    /// Units the group may hold at once (sold units do not count).
    pub units: i64,
}

/// Where a hold stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HoldStatus {
    Held,
    Committed,
    Released,
    Expired,
}

impl HoldStatus {
    /// Reads the one-letter status the Redis scripts store.
    fn from_code(s: &str) -> Option<Self> {
        Some(match s {
            "h" => HoldStatus::Held,
            "c" => HoldStatus::Committed,
            "r" => HoldStatus::Released,
            "x" => HoldStatus::Expired,
            _ => return None,
        })
    }
}

/// A hold on units of an offer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Hold {
    pub id: HoldId,
    pub offer_id: OfferId,
    pub buyer_id: BuyerId,
    pub quantity: i64,
    pub expires_at: Millis,
    pub status: HoldStatus,
}

/// The answer to a successful reserve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reserved {
    pub hold: Hold,
    /// Units left for others right after this reserve.
    pub units_left: i64,
    /// True when this request id had already been answered: nothing new was taken.
    pub replayed: bool,
}

/// Why a reserve was refused. Each is a normal answer, not a failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The engine does not know the offer (never started, or state lost).
    #[error("offer is not loaded in the stock engine")]
    NotLoaded,
    #[error("the offer has not started")]
    NotStarted,
    #[error("the offer has ended")]
    Ended,
    #[error("sold out")]
    SoldOut,
    #[error("only {left} units left")]
    NotEnoughStock { left: i64 },
    #[error("over the per-buyer limit; {remaining} more units allowed")]
    OverLimit { remaining: i64 },
    /// The buyer's group (client address) already holds its share.
    #[error("too many units held from this address; {remaining} more may be held now")]
    OverGroupLimit { remaining: i64 },
    /// The request id was used before for another quantity.
    #[error("request id was already used with a different quantity")]
    RequestIdReused,
    /// The seller sells to its own signed-in viewers only (decided before
    /// the engine is asked).
    #[error("this seller sells to its signed-in viewers only")]
    SignedViewerRequired,
}

impl Refusal {
    /// Stable code for APIs and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::NotLoaded => "not_loaded",
            Refusal::NotStarted => "offer_not_started",
            Refusal::Ended => "offer_ended",
            Refusal::SoldOut => "sold_out",
            Refusal::NotEnoughStock { .. } => "not_enough_stock",
            Refusal::OverLimit { .. } => "over_buyer_limit",
            Refusal::OverGroupLimit { .. } => "over_address_limit",
            Refusal::RequestIdReused => "request_id_reused",
            Refusal::SignedViewerRequired => "signed_viewer_required",
        }
    }
}

/// New terms for a live offer; `None` leaves a term as it is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Adjust {
    pub quantity: Option<i64>,
    pub per_buyer_limit: Option<i64>,
    pub ends_at: Option<Millis>,
}

/// Why an adjustment was not made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AdjustRefusal {
    #[error("offer is not loaded in the stock engine")]
    NotLoaded,
    #[error("the offer is closed")]
    Closed,
    /// The quantity asked is below what buyers hold and bought.
    #[error("{taken} units are held or sold")]
    BelowTaken { taken: i64 },
}

/// Why an operation on an existing hold did not happen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HoldError {
    #[error("no such hold")]
    NotFound,
    #[error("the hold belongs to another buyer")]
    NotOwner,
    #[error("the hold is {0:?}, not held")]
    NotActive(HoldStatus),
}

/// Units of one offer, as the engine counts them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct StockLevels {
    pub quantity: i64,
    pub held: i64,
    pub sold: i64,
    pub left: i64,
}

/// The result of committing a hold (turning held units into sold ones).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Committed {
    /// False when the hold had already been committed (idempotent retry).
    pub newly: bool,
    pub levels: StockLevels,
}

/// A hold that the sweeper released because it expired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expired {
    pub hold: Hold,
    pub levels: StockLevels,
}

/// Failure of the engine itself (not a refusal).
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("redis error")]
    Redis(#[from] ::redis::RedisError),
    #[error("unexpected answer from the stock engine: {0}")]
    Protocol(String),
}

/// A stock engine. See the module docs for the guarantees every implementation gives.
#[async_trait]
pub trait Inventory: Send + Sync + 'static {
    /// Loads an offer's stock if the engine does not know it yet. Returns false
    /// (and changes nothing) when it was already loaded, so concurrent loads
    /// after a loss are harmless.
    async fn load(&self, stock: &OfferStock) -> Result<bool, EngineError>;

    /// Takes `quantity` units for the buyer, atomically, or says why not.
    async fn reserve(&self, req: &ReserveRequest) -> Result<Result<Reserved, Refusal>, EngineError>;

    /// Pushes a live hold's expiry to `now + ttl_ms` (never earlier than it was).
    async fn extend(
        &self,
        offer: &OfferId,
        hold: &HoldId,
        ttl_ms: i64,
        now: Millis,
    ) -> Result<Result<Hold, HoldError>, EngineError>;

    /// Gives a live hold's units back. `buyer` must own it when given.
    /// Releasing a hold that is already released or expired is a no-op that
    /// returns it as it is.
    async fn release(
        &self,
        offer: &OfferId,
        hold: &HoldId,
        buyer: Option<&BuyerId>,
    ) -> Result<Result<(Hold, StockLevels), HoldError>, EngineError>;

    /// Turns a live, unexpired hold into sold units. Idempotent.
    async fn commit(
        &self,
        offer: &OfferId,
        hold: &HoldId,
        now: Millis,
    ) -> Result<Result<(Hold, Committed), HoldError>, EngineError>;

    /// A hold as the engine knows it.
    async fn hold(&self, offer: &OfferId, hold: &HoldId) -> Result<Option<Hold>, EngineError>;

    /// Up to `max` holds whose expiry is at or before `now`, oldest first,
    /// without releasing them (the caller may commit some first).
    async fn due(&self, now: Millis, max: usize) -> Result<Vec<(OfferId, HoldId)>, EngineError>;

    /// Releases one hold if it is still held and due at `now`; `None` when it
    /// was extended, committed or released meanwhile.
    async fn expire(&self, offer: &OfferId, hold: &HoldId, now: Millis) -> Result<Option<Expired>, EngineError>;

    /// Releases up to `max` holds whose expiry is at or before `now`, oldest first.
    async fn sweep(&self, now: Millis, max: usize) -> Result<Vec<Expired>, EngineError> {
        let mut out = Vec::new();
        for (offer, hold) in self.due(now, max).await? {
            if let Some(e) = self.expire(&offer, &hold, now).await? {
                out.push(e);
            }
        }
        Ok(out)
    }

    /// Marks the offer closed: no new reserves; live holds stay until they
    /// expire or are committed. The offer's data is forgotten `retain_ms` after
    /// its last hold could expire.
    async fn close(&self, offer: &OfferId, now: Millis, retain_ms: i64) -> Result<(), EngineError>;

    /// Changes a loaded, open offer's terms at once, atomically with every
    /// reserve: its quantity (never below the units held and sold), its
    /// per-buyer limit (holds already taken stay), its end time.
    async fn adjust(&self, offer: &OfferId, change: &Adjust)
        -> Result<Result<StockLevels, AdjustRefusal>, EngineError>;

    /// Current levels, cheaply; `None` when the offer is not loaded.
    async fn levels(&self, offer: &OfferId) -> Result<Option<StockLevels>, EngineError>;

    /// Live holds across all offers (for the `haul_holds_live` gauge).
    async fn live_holds(&self) -> Result<u64, EngineError>;

    /// Is the engine reachable?
    async fn ping(&self) -> Result<(), EngineError>;
}

/// Is `id` acceptable as a reserve request id?
pub fn valid_request_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}
