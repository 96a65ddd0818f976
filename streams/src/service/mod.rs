//! The streams domain's operations, as the gateway calls them.
//!
//! [`Streams`] owns the store, the stock engine, the clock and the event sink.
//! Every operation checks that the seller owns what it touches (answering
//! "not found" otherwise, so ids of other sellers' objects leak nothing),
//! validates its input, and moves lifecycles only through [`crate::model`].

mod catalog;
mod edits;
mod stock;
mod workers;

pub use self::catalog::{LotPatch, NewLot, NewOffer, NewStream, OfferEnd};
pub use self::edits::{OfferPatch, MAX_END_NOTE};
pub use self::stock::{CommitOutcome, LotPublic, OfferPublic, PurchaseTerms, StreamPublic};

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use crate::clock::Clock;
use crate::events::EventSink;
use crate::ids::{OfferId, SellerId, StreamId};
use crate::inventory::{EngineError, HoldError, Inventory, Refusal};
use crate::model::IllegalTransition;
use crate::store::{StoreError, StreamStore};

/// Everything an operation can answer besides success.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The object does not exist, or belongs to another seller.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A field failed validation.
    #[error("{field}: {message}")]
    Invalid { field: &'static str, message: String },
    /// The lifecycle does not allow this now.
    #[error(transparent)]
    Conflict(#[from] IllegalTransition),
    /// The stock engine refused a reserve.
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// An operation on a hold could not be done.
    #[error(transparent)]
    Hold(#[from] HoldError),
    #[error("store failure")]
    Store(#[from] StoreError),
    #[error("stock engine failure")]
    Engine(#[from] EngineError),
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        Error::Store(StoreError::Db(e))
    }
}

pub type Result<T> = std::result::Result<T, Error>;

pub(crate) fn invalid(field: &'static str, message: impl Into<String>) -> Error {
    Error::Invalid {
        field,
        message: message.into(),
    }
}

/// Facts about an offer that never change after creation, cached so the
/// reserve path does not read the database.
#[derive(Debug, Clone)]
pub(crate) struct OfferMeta {
    pub stream_id: StreamId,
    pub seller_id: SellerId,
    pub hold_ttl_ms: i64,
}

/// Tunables of the domain.
#[derive(Debug, Clone)]
pub struct Settings {
    /// How long an ended offer's stock data stays in the engine after its
    /// last hold could expire (for idempotent retries and late commits).
    pub retain_ended_ms: i64,
    /// How often the sweeper looks for expired holds.
    pub sweep_interval_ms: u64,
    /// The offer timer re-reads the next end time at least this often, so it
    /// sees offers started by other nodes.
    pub timer_max_sleep_ms: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            retain_ended_ms: 24 * 3600 * 1000,
            sweep_interval_ms: 250,
            timer_max_sleep_ms: 1000,
        }
    }
}

/// The streams domain.
pub struct Streams {
    store: StreamStore,
    inventory: Arc<dyn Inventory>,
    clock: Arc<dyn Clock>,
    events: Arc<dyn EventSink>,
    settings: Settings,
    /// Woken when a local offer starts, so the timer re-reads the next end.
    timer_wake: Notify,
    meta: Mutex<HashMap<OfferId, OfferMeta>>,
    /// Offers whose close the engine did not take; the sweeper retries them.
    pending_close: Mutex<Vec<OfferId>>,
}

impl Streams {
    pub fn new(
        store: StreamStore,
        inventory: Arc<dyn Inventory>,
        clock: Arc<dyn Clock>,
        events: Arc<dyn EventSink>,
        settings: Settings,
    ) -> Self {
        Self {
            store,
            inventory,
            clock,
            events,
            settings,
            timer_wake: Notify::new(),
            meta: Mutex::new(HashMap::new()),
            pending_close: Mutex::new(Vec::new()),
        }
    }

    pub fn store(&self) -> &StreamStore {
        &self.store
    }

    pub fn inventory(&self) -> &Arc<dyn Inventory> {
        &self.inventory
    }

    pub fn now(&self) -> crate::clock::Millis {
        self.clock.now_ms()
    }

    pub(crate) fn lock_pending_close(&self) -> std::sync::MutexGuard<'_, Vec<OfferId>> {
        self.pending_close.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn lock_meta(&self) -> std::sync::MutexGuard<'_, HashMap<OfferId, OfferMeta>> {
        self.meta.lock().unwrap_or_else(|e| e.into_inner())
    }
}
