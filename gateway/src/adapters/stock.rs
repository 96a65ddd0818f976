//! The payments domain's [`Stock`] over the streams domain: a paid
//! order's hold is extended, committed, released or taken again through
//! [`Streams`], and its errors keep the answers the API gives for them.

use std::sync::Arc;

use payments::service::{Clock as PaymentsClock, Error, Stock, StockError};
use streams::clock::Clock;
use streams::ids::{BuyerId, HoldId, OfferId, SellerId};
use streams::inventory::{HoldError, Refusal};
use streams::service::{Error as DomainError, Streams};

/// Stock for payments, through the streams domain.
pub struct StreamsStock(pub Arc<Streams>);

/// The streams domain's clock, for payments.
pub struct SharedClock(pub Arc<dyn Clock>);

impl PaymentsClock for SharedClock {
    fn now_ms(&self) -> i64 {
        self.0.now_ms()
    }
}

/// An order's stored id that does not parse: the store is wrong.
fn stored<T, E: std::fmt::Display>(what: &str, raw: &str, parse: impl Fn(&str) -> Result<T, E>) -> Result<T, String> {
    parse(raw).map_err(|e| format!("a stored {what} id {raw:.80} does not parse: {e}"))
}

fn failed(why: impl Into<String>) -> StockError {
    StockError::Failed(why.into().into())
}

/// An order's offer and hold ids.
fn held(offer: &str, hold: &str) -> Result<(OfferId, HoldId), StockError> {
    let offer = stored("offer", offer, OfferId::parse).map_err(failed)?;
    let hold = stored("hold", hold, HoldId::parse).map_err(failed)?;
    Ok((offer, hold))
}

/// A hold operation's end: done, the hold gone, or a failure.
fn done<T>(r: streams::service::Result<T>) -> Result<(), StockError> {
    match r {
        Ok(_) => Ok(()),
        Err(DomainError::Hold(_) | DomainError::NotFound(_)) => Err(StockError::Gone),
        Err(e) => Err(StockError::Failed(Box::new(e))),
    }
}

/// A streams error as payments answers it (the same HTTP answer as from a
/// streams route, but for a refusal's details).
pub(crate) fn answer(e: DomainError) -> Error {
    match e {
        DomainError::NotFound(what) => Error::NotFound(what),
        DomainError::Invalid { field, message } => Error::Invalid { field, message },
        DomainError::Conflict(t) => Error::Conflict {
            code: t.code,
            message: t.message,
        },
        DomainError::Refused(Refusal::NotLoaded) => Error::Unavailable("stock engine lost the offer".into()),
        DomainError::Refused(r) => Error::Conflict {
            code: r.code(),
            message: r.to_string(),
        },
        DomainError::Hold(HoldError::NotFound | HoldError::NotOwner) => Error::NotFound("hold"),
        DomainError::Hold(HoldError::NotActive(status)) => Error::Conflict {
            code: "hold_not_active",
            message: format!(
                "the hold is {}",
                serde_json::to_value(status)
                    .unwrap_or_default()
                    .as_str()
                    .unwrap_or("not active")
            ),
        },
        DomainError::Store(e) => Error::Unavailable(Box::new(e)),
        DomainError::Engine(e) => Error::Unavailable(Box::new(e)),
    }
}

#[async_trait::async_trait]
impl Stock for StreamsStock {
    async fn extend(&self, offer: &str, hold: &str, ttl_ms: i64) -> payments::service::Result<i64> {
        let offer = stored("offer", offer, OfferId::parse).map_err(|e| Error::Internal(e.into()))?;
        let hold = stored("hold", hold, HoldId::parse).map_err(|e| Error::Internal(e.into()))?;
        let held = self.0.extend_hold(&offer, &hold, ttl_ms).await.map_err(answer)?;
        Ok(held.expires_at)
    }

    async fn commit(&self, seller: &str, offer: &str, hold: &str) -> Result<(), StockError> {
        let seller = stored("seller", seller, SellerId::parse).map_err(failed)?;
        let (offer, hold) = held(offer, hold)?;
        done(self.0.commit_hold(&seller, &offer, &hold).await)
    }

    async fn release(&self, buyer: &str, offer: &str, hold: &str) -> Result<(), StockError> {
        let buyer = stored("buyer", buyer, BuyerId::parse).map_err(failed)?;
        let (offer, hold) = held(offer, hold)?;
        done(self.0.release(&buyer, &offer, &hold).await)
    }

    async fn retake(&self, buyer: &str, offer: &str, amount_minor: i64, key: &str) -> Result<String, StockError> {
        let buyer = stored("buyer", buyer, BuyerId::parse).map_err(failed)?;
        let offer = stored("offer", offer, OfferId::parse).map_err(failed)?;
        let units = self
            .0
            .units_for_amount(&offer, amount_minor)
            .await
            .map_err(|e| StockError::Failed(Box::new(e)))?;
        match self.0.reserve(&buyer, &offer, units, key).await {
            Ok(again) => Ok(again.hold.id.to_string()),
            Err(DomainError::Refused(_)) => Err(StockError::SoldOut),
            Err(e) => Err(StockError::Failed(Box::new(e))),
        }
    }
}
