//! The payments domain's operations, as the gateway calls them: starting a
//! payment (routing, failover, the circuit breaker), bank notifications
//! (verify, apply once, follow up), reconciliation, refunds, and settling
//! paid stream purchases with their stock, with the workers that retry them.
//!
//! [`Payments`] owns the store, the sealed credentials, the clock, and two
//! ports the gateway implements: a [`Transport`] that carries bank calls
//! (HTTP) and a [`Stock`] that moves stock (the streams domain). A bank
//! protocol ([`crate::acquirers`]) builds each call and reads its answer;
//! this crate knows no HTTP client and no stock engine.
//!
//! # Layout
//! - [`bank`]: one bank call at a time through the transport, with typed
//!   answers ([`BankError`]);
//! - [`breaker`]: bank accounts out of rotation after outages;
//! - `start`: a new attempt at the chosen bank, failing over to the next;
//! - `buyer`: the buyer's details and delivery at checkout;
//! - `fulfil`: a paid order's fulfilment moves and the refunds they owe;
//! - `notify`: banks' and the sandbox's notifications, verified and applied
//!   exactly once ([`Outcome`], [`Refusal`]);
//! - `reconcile`: open bank attempts polled until they end ([`Reconciled`]);
//! - `seller`: a seller's bank accounts, webhook endpoints and checkout
//!   sessions;
//! - `settle`: refunds, paid orders' holds sold (or re-taken, or refunded),
//!   unpaid orders ended with their holds;
//! - `workers`: the reconciliation and settlement loops.

pub mod bank;
pub mod breaker;
mod buyer;
mod fulfil;
mod notify;
mod reconcile;
mod seller;
mod settle;
mod start;
mod workers;

pub use self::bank::{BankError, Transport, TransportError};
pub use self::breaker::{Breakers, COOL_DOWN, TRIP_AFTER};
pub(crate) use self::buyer::buyer_of;
pub use self::fulfil::Fulfilled;
pub use self::notify::{CloudPaymentsAnswer, Outcome, Refusal};
pub use self::reconcile::{Reconciled, HORIZON_MS, QUIET_MS};
pub use self::settle::{refund_key, HoldEnd, SETTLE_GRACE_MS};
pub use self::start::{ChargeParts, Started, StreamOrder, PAYMENT_WINDOW_MS};

use std::sync::Arc;

use sqlx::AnyPool;

use crate::modes::Modes;
use crate::store::PaymentStore;
use crate::vault::Vault;

type Source = Box<dyn std::error::Error + Send + Sync>;

/// Everything an operation can answer besides success. The gateway maps
/// each to one HTTP answer; the texts are fit for a buyer or a seller (no
/// internal error text: sources are only logged).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The object does not exist, or belongs to someone else.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A field failed validation.
    #[error("{field}: {message}")]
    Invalid { field: &'static str, message: String },
    /// The order (or its hold) does not allow this now.
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// The banks could not do it.
    #[error("{message}")]
    Bank { code: &'static str, message: String },
    /// A backing store or the stock engine is away: try again.
    #[error("a backing store is unavailable")]
    Unavailable(#[source] Source),
    #[error("internal error")]
    Internal(#[source] Source),
}

impl Error {
    pub(crate) fn unavailable(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        Error::Unavailable(Box::new(e))
    }

    pub(crate) fn internal(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        Error::Internal(Box::new(e))
    }

    pub(crate) fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Error::Conflict {
            code,
            message: message.into(),
        }
    }

    pub(crate) fn bank(code: &'static str, message: impl Into<String>) -> Self {
        Error::Bank {
            code,
            message: message.into(),
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// Milliseconds since the Unix epoch, from the gateway's one clock (tests
/// move it instead of sleeping).
pub trait Clock: Send + Sync {
    fn now_ms(&self) -> i64;
}

/// Why a stock operation for a payment did not happen.
#[derive(Debug, thiserror::Error)]
pub enum StockError {
    /// The hold (or its offer) is gone: expired, released, never there.
    #[error("the hold is gone")]
    Gone,
    /// No stock is left to take again, or the buyer may take no more.
    #[error("no stock to take again")]
    SoldOut,
    /// Anything else; it may have half happened.
    #[error("stock failure: {0}")]
    Failed(#[source] Source),
}

/// The stock behind stream purchases, which the gateway moves through the
/// streams domain. Ids are the order's own (`offer_id`, `hold_id`, …).
#[async_trait::async_trait]
pub trait Stock: Send + Sync {
    /// Keeps a hold `ttl_ms` from now while its payment runs; its new expiry.
    async fn extend(&self, offer: &str, hold: &str, ttl_ms: i64) -> Result<i64>;
    /// A paid hold becomes a sale.
    async fn commit(&self, seller: &str, offer: &str, hold: &str) -> std::result::Result<(), StockError>;
    /// A hold goes back to stock.
    async fn release(&self, buyer: &str, offer: &str, hold: &str) -> std::result::Result<(), StockError>;
    /// Takes `amount_minor`'s worth of the offer again for `buyer` (a payment
    /// that came after its hold was gone), idempotently under `key`; the new
    /// hold.
    async fn retake(
        &self,
        buyer: &str,
        offer: &str,
        amount_minor: i64,
        key: &str,
    ) -> std::result::Result<String, StockError>;
}

/// Hears what the service did, for metrics (every method defaults to
/// nothing).
pub trait Observer: Send + Sync {
    /// A notification was taken or refused (`Outcome::as_str`, `refused`,
    /// `error`).
    fn callback(&self, _outcome: &'static str) {}
    /// One reconciliation poll came to this.
    fn reconciled(&self, _outcome: Reconciled) {}
    /// A paid order left unsettled was settled again.
    fn settlement_retried(&self) {}
    /// An order changed (its state, refunds or fulfilment), as it is now:
    /// the buyer's own channel is told.
    fn order_changed(&self, _order: &crate::store::Order) {}
}

/// Where browsers and banks reach this deployment's pages.
#[derive(Debug, Clone)]
pub struct Links {
    /// The public base URL, without a trailing slash.
    pub public_url: String,
}

impl Links {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.public_url)
    }
}

/// What [`Payments`] is made of.
pub struct Parts {
    pub pool: AnyPool,
    pub vault: Vault,
    pub clock: Arc<dyn Clock>,
    pub transport: Arc<dyn Transport>,
    pub stock: Arc<dyn Stock>,
    pub observer: Arc<dyn Observer>,
    pub links: Links,
    /// Signs and verifies the sandbox acquirer's callbacks.
    pub sandbox_secret: String,
}

/// The payments domain: see the module docs.
pub struct Payments {
    store: PaymentStore,
    pool: AnyPool,
    vault: Vault,
    clock: Arc<dyn Clock>,
    transport: Arc<dyn Transport>,
    stock: Arc<dyn Stock>,
    observer: Arc<dyn Observer>,
    breakers: Breakers,
    links: Links,
    sandbox_secret: String,
    modes: Modes,
}

impl Payments {
    pub fn new(p: Parts) -> Self {
        Payments {
            store: PaymentStore::new(p.pool.clone()),
            pool: p.pool.clone(),
            vault: p.vault,
            clock: p.clock,
            transport: p.transport,
            stock: p.stock,
            observer: p.observer,
            breakers: Breakers::default(),
            links: p.links,
            sandbox_secret: p.sandbox_secret,
            modes: Modes::new(p.pool),
        }
    }

    /// Orders, attempts and their transitions.
    pub fn store(&self) -> &PaymentStore {
        &self.store
    }

    pub fn now(&self) -> i64 {
        self.clock.now_ms()
    }

    /// Which mode each seller is in.
    pub fn modes(&self) -> &Modes {
        &self.modes
    }

    /// Is `seller` in live mode?
    pub async fn livemode(&self, seller: &str) -> Result<bool> {
        self.modes.livemode(seller).await.map_err(Error::unavailable)
    }

    /// The bank accounts out of rotation.
    pub fn breakers(&self) -> &Breakers {
        &self.breakers
    }

    /// Tells the observer an order changed (read as it is now).
    pub(crate) async fn changed(&self, order: &crate::ids::OrderId) {
        match self.store.order(order).await {
            Ok(Some(o)) => self.observer.order_changed(&o),
            Ok(None) => {}
            Err(e) => tracing::debug!(%order, error = ?e, "a changed order could not be read back to tell its buyer"),
        }
    }

    fn transport(&self) -> &dyn Transport {
        self.transport.as_ref()
    }
}
