//! Buying: reserve, release and commit holds, with the store as the record the
//! engine is rebuilt from.

use serde::Serialize;

use super::{invalid, Error, OfferMeta, Result, Streams};
use crate::clock::Millis;
use crate::events::StreamEvent;
use crate::ids::{BuyerId, HoldId, LotId, OfferId, SellerId, StreamId};
use crate::inventory::{
    valid_request_id, GroupCap, Hold, HoldError, HoldStatus, OfferStock, Refusal, ReserveRequest, Reserved, StockLevels,
};
use crate::model::{EndReason, Offer, OfferState, StreamState};
use crate::money::Currency;

/// Units one reserve may take at most (the per-buyer limit usually binds first).
pub const MAX_UNITS_PER_RESERVE: i64 = 1000;
/// Cap on cached offer facts; the cache is cleared when it grows past this.
const META_CACHE_MAX: usize = 100_000;

/// What anyone may see of a lot.
#[derive(Debug, Clone, Serialize)]
pub struct LotPublic {
    pub id: LotId,
    pub title: String,
    pub description: String,
    pub image_url: Option<String>,
}

/// What anyone may see of a stream right now.
#[derive(Debug, Clone, Serialize)]
pub struct StreamPublic {
    pub id: StreamId,
    pub title: String,
    pub state: StreamState,
    pub pinned_lot: Option<LotPublic>,
    /// Live offers, oldest first.
    pub offers: Vec<OfferPublic>,
    pub server_time: Millis,
    /// Whose stream (for the caller to learn the seller's mode; not shown).
    #[serde(skip)]
    pub seller_id: SellerId,
}

/// What anyone may see of an offer.
#[derive(Debug, Clone, Serialize)]
pub struct OfferPublic {
    pub id: OfferId,
    pub stream_id: StreamId,
    pub lot_id: LotId,
    pub price_minor: i64,
    pub currency: Currency,
    pub quantity: i64,
    pub per_buyer_limit: i64,
    pub state: OfferState,
    pub end_reason: Option<EndReason>,
    pub ends_at: Option<Millis>,
    /// Units not held or sold; `None` before the offer starts.
    pub units_left: Option<i64>,
    /// Whose offer (not shown).
    #[serde(skip)]
    pub seller_id: SellerId,
}

/// What a buyer's live hold costs and whose sale it is: what the payments
/// side needs to make an order for it.
#[derive(Debug, Clone)]
pub struct PurchaseTerms {
    pub seller_id: SellerId,
    pub stream_id: StreamId,
    /// The lot's title, for the receipt line.
    pub title: String,
    pub hold: Hold,
    pub unit_price_minor: i64,
    pub amount_minor: i64,
    pub currency: Currency,
}

/// The result of committing a hold.
#[derive(Debug, Clone, Serialize)]
pub struct CommitOutcome {
    pub hold: Hold,
    pub levels: StockLevels,
    /// True when this commit sold the last unit and ended the offer.
    pub sold_out: bool,
}

impl Streams {
    /// The cached immutable facts of an offer, read from the store once.
    async fn offer_meta(&self, id: &OfferId) -> Result<OfferMeta> {
        if let Some(m) = self.lock_meta().get(id) {
            return Ok(m.clone());
        }
        let offer = self.store.offer(id).await?.ok_or(Error::NotFound("offer"))?;
        let meta = OfferMeta {
            stream_id: offer.stream_id,
            seller_id: offer.seller_id,
            hold_ttl_ms: offer.hold_ttl_ms,
        };
        let mut cache = self.lock_meta();
        if cache.len() >= META_CACHE_MAX {
            cache.clear();
        }
        cache.insert(id.clone(), meta.clone());
        Ok(meta)
    }

    /// The seller whose offer this is (from memory after the first time).
    pub async fn offer_seller(&self, id: &OfferId) -> Result<SellerId> {
        Ok(self.offer_meta(id).await?.seller_id)
    }

    /// Loads a live offer's stock into the engine from the store (after the
    /// engine lost it, or when the start-time load failed). Returns the
    /// refusal to give instead when the offer is not live.
    pub async fn rebuild_offer(&self, id: &OfferId) -> Result<Option<Refusal>> {
        let offer = self.store.offer(id).await?.ok_or(Error::NotFound("offer"))?;
        match (offer.state, offer.started_at, offer.ends_at) {
            (OfferState::Draft, _, _) => Ok(Some(Refusal::NotStarted)),
            (OfferState::Ended, _, _) => Ok(Some(Refusal::Ended)),
            (OfferState::Live, Some(starts_at), Some(ends_at)) => {
                let sold = self.store.sold_by_buyer(id).await?;
                let loaded = self
                    .inventory
                    .load(&OfferStock {
                        offer: offer.id.clone(),
                        quantity: offer.quantity,
                        per_buyer_limit: offer.per_buyer_limit,
                        starts_at,
                        ends_at,
                        sold,
                    })
                    .await?;
                if loaded {
                    tracing::info!(offer = %offer.id, "rebuilt offer stock in the engine from the store");
                }
                Ok(None)
            }
            (OfferState::Live, _, _) => Err(crate::store::StoreError::Corrupt {
                column: "offers.started_at",
                value: "live offer without start or end time".into(),
            }
            .into()),
        }
    }

    /// Rebuilds every live offer the engine does not know (at start-up, after
    /// the engine lost its data).
    pub async fn rebuild_all(&self) -> Result<usize> {
        let mut loaded = 0;
        for offer in self.store.live_offers().await? {
            if self.inventory.levels(&offer.id).await?.is_none() {
                self.rebuild_offer(&offer.id).await?;
                loaded += 1;
            }
        }
        Ok(loaded)
    }

    /// Holds `quantity` units of an offer for a buyer, or says why not.
    pub async fn reserve(&self, buyer: &BuyerId, offer: &OfferId, quantity: i64, request_id: &str) -> Result<Reserved> {
        self.reserve_capped(buyer, offer, quantity, request_id, None).await
    }

    /// [`Self::reserve`], with a cap on the units the buyer's group (its
    /// client address) may hold at once in the offer, however many buyer
    /// ids it uses.
    pub async fn reserve_capped(
        &self,
        buyer: &BuyerId,
        offer: &OfferId,
        quantity: i64,
        request_id: &str,
        group: Option<GroupCap>,
    ) -> Result<Reserved> {
        if !(1..=MAX_UNITS_PER_RESERVE).contains(&quantity) {
            return Err(invalid(
                "quantity",
                format!("must be from 1 to {MAX_UNITS_PER_RESERVE}"),
            ));
        }
        if !valid_request_id(request_id) {
            return Err(invalid(
                "request_id",
                "must be 1 to 64 characters of A-Z, a-z, 0-9, '_', '-'",
            ));
        }
        let meta = self.offer_meta(offer).await?;
        let mut req = ReserveRequest {
            offer: offer.clone(),
            buyer: buyer.clone(),
            quantity,
            ttl_ms: meta.hold_ttl_ms,
            request_id: request_id.to_owned(),
            hold_id: HoldId::generate(),
            now: self.now(),
            group,
        };
        let mut answer = self.inventory.reserve(&req).await?;
        if answer == Err(Refusal::NotLoaded) {
            if let Some(refusal) = self.rebuild_offer(offer).await? {
                return Err(refusal.into());
            }
            req.now = self.now();
            answer = self.inventory.reserve(&req).await?;
        }
        let reserved = answer?;
        if !reserved.replayed {
            self.events.publish(
                &meta.stream_id,
                StreamEvent::OfferStock {
                    offer_id: offer.clone(),
                    units_left: reserved.units_left,
                },
            );
        }
        Ok(reserved)
    }

    /// The buyer gives their hold back.
    pub async fn release(&self, buyer: &BuyerId, offer: &OfferId, hold: &HoldId) -> Result<Hold> {
        let meta = self.offer_meta(offer).await?;
        let (hold, levels) = self.inventory.release(offer, hold, Some(buyer)).await??;
        self.events.publish(
            &meta.stream_id,
            StreamEvent::OfferStock {
                offer_id: offer.clone(),
                units_left: levels.left,
            },
        );
        Ok(hold)
    }

    /// A hold as its buyer sees it.
    pub async fn buyer_hold(&self, buyer: &BuyerId, offer: &OfferId, hold: &HoldId) -> Result<Hold> {
        match self.inventory.hold(offer, hold).await? {
            Some(h) if h.buyer_id == *buyer => Ok(h),
            _ => Err(Error::NotFound("hold")),
        }
    }

    /// How many units of an offer an amount paid for (price × units).
    pub async fn units_for_amount(&self, offer: &OfferId, amount_minor: i64) -> Result<i64> {
        let o = self.store.offer(offer).await?.ok_or(Error::NotFound("offer"))?;
        if amount_minor <= 0 || amount_minor % o.price_minor != 0 {
            return Err(invalid("amount_minor", "not a whole number of units"));
        }
        Ok(amount_minor / o.price_minor)
    }

    /// The seller a stream belongs to.
    pub async fn stream_seller(&self, stream: &StreamId) -> Result<SellerId> {
        Ok(self
            .store
            .stream(stream)
            .await?
            .ok_or(Error::NotFound("stream"))?
            .seller_id)
    }

    /// The terms of a buyer's live hold (price × quantity, the seller).
    pub async fn purchase_terms(&self, buyer: &BuyerId, offer: &OfferId, hold: &HoldId) -> Result<PurchaseTerms> {
        let hold = self.buyer_hold(buyer, offer, hold).await?;
        if hold.status != HoldStatus::Held {
            return Err(HoldError::NotActive(hold.status).into());
        }
        let o = self.store.offer(offer).await?.ok_or(Error::NotFound("offer"))?;
        let amount_minor = o
            .price_minor
            .checked_mul(hold.quantity)
            .ok_or_else(|| invalid("quantity", "the amount is too large"))?;
        let lot = self.store.lot(&o.lot_id).await?.ok_or(Error::NotFound("lot"))?;
        Ok(PurchaseTerms {
            seller_id: o.seller_id,
            stream_id: o.stream_id,
            title: lot.title,
            hold,
            unit_price_minor: o.price_minor,
            amount_minor,
            currency: o.currency,
        })
    }

    /// Keeps a hold alive for another `ttl_ms` (while its payment is in progress).
    pub async fn extend_hold(&self, offer: &OfferId, hold: &HoldId, ttl_ms: i64) -> Result<Hold> {
        Ok(self.inventory.extend(offer, hold, ttl_ms, self.now()).await??)
    }

    /// The seller turns a hold into a sale (paid outside Haul, or by the
    /// payments domain). Records the sale in the store first, so the store
    /// always knows at least what the engine has sold; idempotent per hold.
    pub async fn commit_hold(&self, seller: &SellerId, offer_id: &OfferId, hold_id: &HoldId) -> Result<CommitOutcome> {
        let offer = self.owned_offer(seller, offer_id).await?;
        let hold = self
            .inventory
            .hold(offer_id, hold_id)
            .await?
            .ok_or(Error::NotFound("hold"))?;
        match hold.status {
            HoldStatus::Held | HoldStatus::Committed => {}
            other => return Err(HoldError::NotActive(other).into()),
        }
        let now = self.now();
        let inserted = self
            .store
            .insert_sale(hold_id, offer_id, &hold.buyer_id, hold.quantity, now)
            .await?;
        let (hold, committed) = match self.inventory.commit(offer_id, hold_id, now).await? {
            Ok(done) => done,
            Err(e) => {
                if inserted {
                    self.store.delete_sale(hold_id).await?;
                }
                return Err(e.into());
            }
        };
        let mut sold_out = false;
        if committed.newly {
            self.events.publish(
                &offer.stream_id,
                StreamEvent::Purchase {
                    offer_id: offer_id.clone(),
                    lot_id: offer.lot_id.clone(),
                    quantity: hold.quantity,
                },
            );
            self.events.publish(
                &offer.stream_id,
                StreamEvent::OfferStock {
                    offer_id: offer_id.clone(),
                    units_left: committed.levels.left,
                },
            );
            if committed.levels.sold >= committed.levels.quantity {
                sold_out = self.end_offer(&offer, OfferState::Live, EndReason::SoldOut).await?;
            }
        }
        Ok(CommitOutcome {
            hold,
            levels: committed.levels,
            sold_out,
        })
    }

    /// An offer as anyone may see it, with units left.
    pub async fn offer_public(&self, id: &OfferId) -> Result<OfferPublic> {
        let offer = self.store.offer(id).await?.ok_or(Error::NotFound("offer"))?;
        let units_left = self.units_left(&offer).await?;
        Ok(OfferPublic {
            id: offer.id,
            stream_id: offer.stream_id,
            lot_id: offer.lot_id,
            price_minor: offer.price_minor,
            currency: offer.currency,
            quantity: offer.quantity,
            per_buyer_limit: offer.per_buyer_limit,
            state: offer.state,
            end_reason: offer.end_reason,
            ends_at: offer.ends_at,
            units_left,
            seller_id: offer.seller_id,
        })
    }

    /// A stream as its viewers see it: title and state, the pinned lot, the
    /// live offers with units left, and the server's clock.
    pub async fn stream_public(&self, id: &StreamId) -> Result<StreamPublic> {
        let stream = self.store.stream(id).await?.ok_or(Error::NotFound("stream"))?;
        let pinned_lot = match &stream.pinned_lot_id {
            Some(lot) => self.store.lot(lot).await?.map(|l| LotPublic {
                id: l.id,
                title: l.title,
                description: l.description,
                image_url: l.image_url,
            }),
            None => None,
        };
        let mut offers = Vec::new();
        for offer in self.store.open_offers_of_stream(id).await? {
            if offer.state == OfferState::Live {
                offers.push(self.offer_public(&offer.id).await?);
            }
        }
        Ok(StreamPublic {
            id: stream.id,
            title: stream.title,
            state: stream.state,
            pinned_lot,
            offers,
            server_time: self.now(),
            seller_id: stream.seller_id,
        })
    }

    /// Units left: from the engine while it knows the offer, else from the store.
    pub async fn units_left(&self, offer: &Offer) -> Result<Option<i64>> {
        if offer.state == OfferState::Draft {
            return Ok(None);
        }
        if let Some(levels) = self.inventory.levels(&offer.id).await? {
            return Ok(Some(levels.left.max(0)));
        }
        let sold: i64 = self.store.sold_by_buyer(&offer.id).await?.iter().map(|s| s.units).sum();
        Ok(Some((offer.quantity - sold).max(0)))
    }

    /// Engine levels of an offer the seller owns (held, sold, left).
    pub async fn levels(&self, seller: &SellerId, id: &OfferId) -> Result<Option<StockLevels>> {
        self.owned_offer(seller, id).await?;
        Ok(self.inventory.levels(id).await?)
    }
}
