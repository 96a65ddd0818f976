//! Changing offers and lots once they exist: a draft's terms; a live
//! offer's stock, per-buyer limit and end, while viewers buy; ending an
//! offer early with a word to viewers; scheduled offers that start by
//! themselves; lots archived (kept for the orders that name them) or
//! deleted (never offered).
//!
//! A live change never lets the engine sell more than the record says: what
//! tightens (less stock, a lower limit, an earlier end) is made in the
//! engine first, atomically against every reserve, and refused there if
//! buyers already hold or bought more than the new quantity; then the
//! record; then the engine is set to the record's terms, which also makes
//! what loosens take effect. Every change is broadcast as `offer.updated`.

use super::catalog::{check_start_at, MAX_HOLD_TTL_MS, MAX_OFFER_DURATION_MS, MAX_QUANTITY, MIN_HOLD_TTL_MS};
use super::{invalid, Result, Streams};
use crate::clock::Millis;
use crate::events::StreamEvent;
use crate::ids::{LotId, OfferId, SellerId};
use crate::inventory::{Adjust, AdjustRefusal, StockLevels};
use crate::model::{EndReason, IllegalTransition, Lot, Offer, OfferState, StreamState};
use crate::money::Money;
use crate::store::LiveTerms;

/// Changes to an offer; `None` leaves a term as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OfferPatch {
    /// Drafts only.
    pub price_minor: Option<i64>,
    pub quantity: Option<i64>,
    pub per_buyer_limit: Option<i64>,
    /// Drafts: how long it runs once started.
    pub duration_ms: Option<i64>,
    /// Drafts: a fixed end; live offers: the new end.
    pub ends_at: Option<Millis>,
    /// Live offers: move the end by this much (negative: sooner).
    pub extend_ms: Option<i64>,
    /// Drafts only.
    pub hold_ttl_ms: Option<i64>,
    /// Drafts only: `Some(None)` unschedules.
    pub start_at: Option<Option<Millis>>,
}

fn conflict(code: &'static str, message: impl Into<String>) -> super::Error {
    IllegalTransition {
        code,
        message: message.into(),
    }
    .into()
}

fn changed() -> super::Error {
    conflict("offer_changed", "the offer changed meanwhile; read it and try again")
}

/// The longest a note to viewers may be.
pub const MAX_END_NOTE: usize = 200;

impl Streams {
    /// Changes an offer: any term of a draft; the stock, limit and end of a
    /// live one (see the module docs); nothing of an ended one.
    pub async fn edit_offer(&self, seller: &SellerId, id: &OfferId, patch: OfferPatch) -> Result<Offer> {
        let offer = self.owned_offer(seller, id).await?;
        match offer.state {
            OfferState::Draft => self.edit_draft(offer, patch).await,
            OfferState::Live => self.edit_live(offer, patch).await,
            OfferState::Ended => Err(conflict("offer_ended", "the offer has ended")),
        }
    }

    async fn edit_draft(&self, mut offer: Offer, p: OfferPatch) -> Result<Offer> {
        if p.extend_ms.is_some() {
            return Err(invalid(
                "extend_seconds",
                "a draft has no end yet: give duration_seconds or ends_at",
            ));
        }
        let now = self.now();
        if let Some(price) = p.price_minor {
            offer.price_minor = Money::new(price, offer.currency)
                .map_err(|e| invalid("price_minor", e.to_string()))?
                .amount_minor;
        }
        if let Some(q) = p.quantity {
            if !(1..=MAX_QUANTITY).contains(&q) {
                return Err(invalid("quantity", format!("must be from 1 to {MAX_QUANTITY}")));
            }
            offer.quantity = q;
        }
        match p.per_buyer_limit {
            Some(l) => offer.per_buyer_limit = l,
            // Less stock than the limit: the limit follows.
            None => offer.per_buyer_limit = offer.per_buyer_limit.min(offer.quantity),
        }
        if !(1..=offer.quantity).contains(&offer.per_buyer_limit) {
            return Err(invalid("per_buyer_limit", "must be from 1 to the offer's quantity"));
        }
        match (p.duration_ms, p.ends_at) {
            (Some(_), Some(_)) => return Err(invalid("ends_at", "give duration_seconds or ends_at, not both")),
            (Some(ms), None) => {
                if !(1000..=MAX_OFFER_DURATION_MS).contains(&ms) {
                    return Err(invalid(
                        "duration_seconds",
                        format!("must be from 1 to {}", MAX_OFFER_DURATION_MS / 1000),
                    ));
                }
                offer.duration_ms = Some(ms);
                offer.end_at_requested = None;
            }
            (None, Some(at)) => {
                if at <= now || at - now > MAX_OFFER_DURATION_MS {
                    return Err(invalid("ends_at", "must be in the future, at most 7 days ahead"));
                }
                offer.duration_ms = None;
                offer.end_at_requested = Some(at);
            }
            (None, None) => {}
        }
        if let Some(ttl) = p.hold_ttl_ms {
            if !(MIN_HOLD_TTL_MS..=MAX_HOLD_TTL_MS).contains(&ttl) {
                return Err(invalid(
                    "hold_ttl_seconds",
                    format!("must be from {} to {}", MIN_HOLD_TTL_MS / 1000, MAX_HOLD_TTL_MS / 1000),
                ));
            }
            offer.hold_ttl_ms = ttl;
        }
        if let Some(at) = p.start_at {
            offer.start_at = check_start_at(at, now)?;
        }
        if let (Some(start), Some(end)) = (offer.start_at, offer.end_at_requested) {
            if end <= start {
                return Err(invalid("ends_at", "must be after start_at"));
            }
        }
        if !self.store.update_draft_offer(&offer).await? {
            return Err(changed());
        }
        // The reserve path's cache holds the hold time.
        self.lock_meta().remove(&offer.id);
        self.timer_wake.notify_one();
        Ok(offer)
    }

    async fn edit_live(&self, offer: Offer, p: OfferPatch) -> Result<Offer> {
        if p.price_minor.is_some() || p.hold_ttl_ms.is_some() || p.start_at.is_some() || p.duration_ms.is_some() {
            return Err(conflict(
                "offer_live",
                "a live offer's price, hold time, duration and start are fixed; change its quantity, per_buyer_limit, ends_at or extend_seconds",
            ));
        }
        let (Some(started), Some(ends)) = (offer.started_at, offer.ends_at) else {
            return Err(changed());
        };
        let now = self.now();
        let old = LiveTerms {
            quantity: offer.quantity,
            per_buyer_limit: offer.per_buyer_limit,
            ends_at: ends,
        };
        let mut new = old;
        if let Some(q) = p.quantity {
            if !(1..=MAX_QUANTITY).contains(&q) {
                return Err(invalid("quantity", format!("must be from 1 to {MAX_QUANTITY}")));
            }
            new.quantity = q;
        }
        new.per_buyer_limit = p.per_buyer_limit.unwrap_or(new.per_buyer_limit.min(new.quantity));
        if !(1..=new.quantity).contains(&new.per_buyer_limit) {
            return Err(invalid("per_buyer_limit", "must be from 1 to the offer's quantity"));
        }
        new.ends_at = match (p.ends_at, p.extend_ms) {
            (Some(_), Some(_)) => return Err(invalid("ends_at", "give ends_at or extend_seconds, not both")),
            (Some(at), None) => at,
            (None, Some(by)) => ends
                .checked_add(by)
                .ok_or_else(|| invalid("extend_seconds", "is too large"))?,
            (None, None) => ends,
        };
        if new.ends_at != ends {
            if new.ends_at <= now {
                return Err(invalid(
                    "ends_at",
                    "must be in the future (end it now with POST /v1/offers/{id}/end)",
                ));
            }
            if new.ends_at - started > MAX_OFFER_DURATION_MS {
                return Err(invalid("ends_at", "an offer runs at most 7 days from its start"));
            }
        }
        let tight = Adjust {
            quantity: (new.quantity < old.quantity).then_some(new.quantity),
            per_buyer_limit: (new.per_buyer_limit < old.per_buyer_limit).then_some(new.per_buyer_limit),
            ends_at: (new.ends_at < old.ends_at).then_some(new.ends_at),
        };
        if tight != Adjust::default() {
            self.adjust_loaded(&offer.id, &tight).await?;
        }
        if new != old && !self.store.update_live_terms(&offer.id, old, new).await? {
            // Another change or the end came first: the engine goes back to
            // what the record says now.
            if let Some(now_offer) = self.store.offer(&offer.id).await? {
                let _ = self.sync_engine(&now_offer).await;
            }
            return Err(changed());
        }
        let updated = self.owned_offer(&offer.seller_id, &offer.id).await?;
        let levels = self.sync_engine(&updated).await?;
        if new != old {
            self.events.publish(
                &updated.stream_id,
                StreamEvent::OfferUpdated {
                    offer_id: updated.id.clone(),
                    quantity: new.quantity,
                    per_buyer_limit: new.per_buyer_limit,
                    ends_at: new.ends_at,
                    units_left: levels.map_or(new.quantity, |l| l.left),
                },
            );
            if new.ends_at != old.ends_at {
                self.timer_wake.notify_one();
            }
        }
        Ok(updated)
    }

    /// Adjusts an offer in the engine, loading it from the record first if
    /// the engine lost it.
    async fn adjust_loaded(&self, id: &OfferId, change: &Adjust) -> Result<StockLevels> {
        for _ in 0..2 {
            match self.inventory.adjust(id, change).await? {
                Ok(levels) => return Ok(levels),
                Err(AdjustRefusal::NotLoaded) => {
                    self.rebuild_offer(id).await?;
                }
                Err(AdjustRefusal::Closed) => return Err(conflict("offer_ended", "the offer has ended")),
                Err(AdjustRefusal::BelowTaken { taken }) => {
                    return Err(conflict(
                        "quantity_below_taken",
                        format!("buyers hold or bought {taken} units: the quantity cannot go below that"),
                    ))
                }
            }
        }
        Err(conflict(
            "offer_changed",
            "the stock engine could not load the offer; try again",
        ))
    }

    /// Sets the engine to a live offer's recorded terms; its levels (`None`
    /// when it is not loaded: the next reserve loads the record).
    async fn sync_engine(&self, offer: &Offer) -> Result<Option<StockLevels>> {
        if offer.state != OfferState::Live {
            return Ok(None);
        }
        let all = Adjust {
            quantity: Some(offer.quantity),
            per_buyer_limit: Some(offer.per_buyer_limit),
            ends_at: offer.ends_at,
        };
        match self.inventory.adjust(&offer.id, &all).await? {
            Ok(levels) => Ok(Some(levels)),
            Err(AdjustRefusal::NotLoaded) | Err(AdjustRefusal::Closed) => Ok(None),
            Err(AdjustRefusal::BelowTaken { taken }) => Err(conflict(
                "quantity_below_taken",
                format!("buyers hold or bought {taken} units: the quantity cannot go below that"),
            )),
        }
    }

    /// Ends a draft or live offer now, with a word viewers see.
    pub async fn end_offer_now(&self, seller: &SellerId, id: &OfferId, note: Option<&str>) -> Result<Offer> {
        let note = match note.map(str::trim) {
            None => None,
            Some(n) if n.is_empty() || n.chars().count() > MAX_END_NOTE || n.chars().any(char::is_control) => {
                return Err(invalid(
                    "note",
                    format!("1 to {MAX_END_NOTE} characters, none of them control characters"),
                ))
            }
            Some(n) => Some(n.to_owned()),
        };
        loop {
            let offer = self.owned_offer(seller, id).await?;
            offer.state.cancel()?;
            if self
                .end_offer_noted(&offer, offer.state, EndReason::Cancelled, note.as_deref())
                .await?
            {
                return self.owned_offer(seller, id).await;
            }
        }
    }

    /// Archives a lot: out of the stream's listing, never pinned or offered
    /// again, kept for the orders that name it. Its drafts are cancelled;
    /// a lot with a live offer is refused (end the offer first).
    pub async fn archive_lot(&self, seller: &SellerId, id: &LotId) -> Result<Lot> {
        let lot = self.owned_lot(seller, id).await?;
        if lot.archived_at.is_some() {
            return Ok(lot);
        }
        let offers = self.store.offers_of_stream(&lot.stream_id).await?;
        let mine: Vec<&Offer> = offers.iter().filter(|o| o.lot_id == lot.id).collect();
        if mine.iter().any(|o| o.state == OfferState::Live) {
            return Err(conflict("lot_has_live_offer", "end the lot's live offer first"));
        }
        for o in mine.into_iter().filter(|o| o.state == OfferState::Draft) {
            self.end_offer(o, OfferState::Draft, EndReason::Cancelled).await?;
        }
        self.unpin_if_pinned(&lot).await?;
        self.store.archive_lot(id, self.now()).await?;
        self.owned_lot(seller, id).await
    }

    /// Deletes a lot that was never offered (one that was is archived).
    pub async fn delete_lot(&self, seller: &SellerId, id: &LotId) -> Result<()> {
        let lot = self.owned_lot(seller, id).await?;
        let offered = self
            .store
            .offers_of_stream(&lot.stream_id)
            .await?
            .iter()
            .any(|o| o.lot_id == lot.id);
        if offered {
            return Err(conflict(
                "lot_has_offers",
                "the lot was offered: archive it instead (it is kept for its orders)",
            ));
        }
        self.unpin_if_pinned(&lot).await?;
        if !self.store.delete_lot(id).await? {
            return Err(conflict(
                "lot_has_offers",
                "the lot was offered meanwhile: archive it instead",
            ));
        }
        Ok(())
    }

    async fn unpin_if_pinned(&self, lot: &Lot) -> Result<()> {
        let stream = self.owned_stream(&lot.seller_id, &lot.stream_id).await?;
        if stream.pinned_lot_id.as_ref() == Some(&lot.id) && stream.state != StreamState::Ended {
            self.store.set_pinned_lot(&stream.id, None).await?;
            self.events
                .publish(&stream.id, StreamEvent::LotUnpinned { lot_id: lot.id.clone() });
        }
        Ok(())
    }

    /// Starts scheduled offers whose time has come (on live streams, on lots
    /// with no live offer); how many started. Safe on every node at once:
    /// the store lets one start each.
    pub async fn start_due_offers(&self) -> Result<usize> {
        let mut started = 0;
        for offer in self.store.due_scheduled_offers(self.now(), 50).await? {
            let id = offer.id.clone();
            match self.start_now(offer.clone(), StreamState::Live).await {
                Ok(_) => {
                    tracing::info!(offer = %id, "scheduled offer started");
                    started += 1;
                }
                // Its fixed end passed while it waited: it can never run.
                Err(super::Error::Conflict(e)) if e.code == "offer_end_passed" => {
                    tracing::warn!(offer = %id, "a scheduled offer's end passed before it could start: cancelled");
                    self.end_offer(&offer, OfferState::Draft, EndReason::Cancelled).await?;
                }
                // Another node started it, or its lot's offer is still live.
                Err(super::Error::Conflict(e)) => {
                    tracing::debug!(offer = %id, code = e.code, "scheduled offer not started")
                }
                Err(e) => return Err(e),
            }
        }
        Ok(started)
    }

    /// When the offer timer must wake next: the earliest live offer's end
    /// or scheduled start ahead.
    pub(super) async fn next_timer_event(&self) -> Result<Option<Millis>> {
        let end = self.store.next_offer_end().await?;
        let start = self.store.next_scheduled_start(self.now()).await?;
        Ok(match (end, start) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        })
    }
}
