//! The in-process stock engine: one mutex over plain maps. Every operation is a
//! few map lookups, so the lock is held for microseconds.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;

use super::{
    Adjust, AdjustRefusal, Committed, EngineError, Expired, Hold, HoldError, HoldStatus, Inventory, OfferStock,
    Refusal, ReserveRequest, Reserved, StockLevels,
};
use crate::clock::Millis;
use crate::ids::{BuyerId, HoldId, OfferId};

struct OfferEntry {
    quantity: i64,
    limit: i64,
    starts_at: Millis,
    ends_at: Millis,
    held: i64,
    sold: i64,
    /// Units held + sold per buyer.
    buyers: HashMap<BuyerId, i64>,
    holds: HashMap<HoldId, Hold>,
    /// (buyer, request id) → hold, for idempotent reserves.
    requests: HashMap<(BuyerId, String), HoldId>,
    /// Set by `close`: when the entry may be forgotten, and the retention used.
    closed: Option<(Millis, i64)>,
    /// Units held now per buyer group, and each capped hold's group.
    groups: HashMap<String, i64>,
    hold_groups: HashMap<HoldId, String>,
}

impl OfferEntry {
    fn levels(&self) -> StockLevels {
        StockLevels {
            quantity: self.quantity,
            held: self.held,
            sold: self.sold,
            left: self.quantity - self.held - self.sold,
        }
    }

    /// Gives a held hold's units back and marks it `status`.
    fn give_back(&mut self, hold: &HoldId, status: HoldStatus) -> Option<Hold> {
        let h = self.holds.get_mut(hold)?;
        if h.status != HoldStatus::Held {
            return None;
        }
        h.status = status;
        let h = h.clone();
        self.ungroup(&h);
        self.held -= h.quantity;
        if let Some(units) = self.buyers.get_mut(&h.buyer_id) {
            *units -= h.quantity;
            if *units <= 0 {
                self.buyers.remove(&h.buyer_id);
            }
        }
        Some(h)
    }

    /// A hold stops counting against its group (released, expired, sold).
    fn ungroup(&mut self, h: &Hold) {
        if let Some(group) = self.hold_groups.remove(&h.id) {
            if let Some(units) = self.groups.get_mut(&group) {
                *units -= h.quantity;
                if *units <= 0 {
                    self.groups.remove(&group);
                }
            }
        }
    }

    fn push_forget_at(&mut self, expires_at: Millis) {
        if let Some((forget_at, retain)) = self.closed.as_mut() {
            *forget_at = (*forget_at).max(expires_at + *retain);
        }
    }
}

#[derive(Default)]
struct Inner {
    offers: HashMap<OfferId, OfferEntry>,
    /// Live holds by expiry: the sweeper's queue.
    by_expiry: BTreeSet<(Millis, OfferId, HoldId)>,
}

/// The embedded, single-process stock engine.
#[derive(Default)]
pub struct MemoryInventory {
    inner: Mutex<Inner>,
}

impl MemoryInventory {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the maps half-updated in
        // a way that breaks the invariants (every update is completed before any
        // call that could panic), so a poisoned lock is safe to keep using.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl Inventory for MemoryInventory {
    async fn load(&self, stock: &OfferStock) -> Result<bool, EngineError> {
        let mut inner = self.lock();
        if inner.offers.contains_key(&stock.offer) {
            return Ok(false);
        }
        let buyers: HashMap<BuyerId, i64> = stock.sold.iter().map(|s| (s.buyer.clone(), s.units)).collect();
        let sold = buyers.values().sum();
        inner.offers.insert(
            stock.offer.clone(),
            OfferEntry {
                quantity: stock.quantity,
                limit: stock.per_buyer_limit,
                starts_at: stock.starts_at,
                ends_at: stock.ends_at,
                held: 0,
                sold,
                buyers,
                holds: HashMap::new(),
                requests: HashMap::new(),
                closed: None,
                groups: HashMap::new(),
                hold_groups: HashMap::new(),
            },
        );
        Ok(true)
    }

    async fn reserve(&self, req: &ReserveRequest) -> Result<Result<Reserved, Refusal>, EngineError> {
        let mut inner = self.lock();
        let Some(entry) = inner.offers.get_mut(&req.offer) else {
            return Ok(Err(Refusal::NotLoaded));
        };
        let key = (req.buyer.clone(), req.request_id.clone());
        if let Some(id) = entry.requests.get(&key) {
            let hold = entry.holds[id].clone();
            if hold.quantity != req.quantity {
                return Ok(Err(Refusal::RequestIdReused));
            }
            let units_left = entry.levels().left;
            return Ok(Ok(Reserved {
                hold,
                units_left,
                replayed: true,
            }));
        }
        if entry.closed.is_some() || req.now >= entry.ends_at {
            return Ok(Err(Refusal::Ended));
        }
        if req.now < entry.starts_at {
            return Ok(Err(Refusal::NotStarted));
        }
        let left = entry.levels().left;
        if left <= 0 {
            return Ok(Err(Refusal::SoldOut));
        }
        let mine = entry.buyers.get(&req.buyer).copied().unwrap_or(0);
        if mine + req.quantity > entry.limit {
            return Ok(Err(Refusal::OverLimit {
                remaining: (entry.limit - mine).max(0),
            }));
        }
        if let Some(cap) = &req.group {
            let theirs = entry.groups.get(&cap.key).copied().unwrap_or(0);
            if theirs + req.quantity > cap.units {
                return Ok(Err(Refusal::OverGroupLimit {
                    remaining: (cap.units - theirs).max(0),
                }));
            }
        }
        if req.quantity > left {
            return Ok(Err(Refusal::NotEnoughStock { left }));
        }
        let hold = Hold {
            id: req.hold_id.clone(),
            offer_id: req.offer.clone(),
            buyer_id: req.buyer.clone(),
            quantity: req.quantity,
            expires_at: req.now + req.ttl_ms,
            status: HoldStatus::Held,
        };
        entry.held += req.quantity;
        *entry.buyers.entry(req.buyer.clone()).or_insert(0) += req.quantity;
        entry.holds.insert(hold.id.clone(), hold.clone());
        entry.requests.insert(key, hold.id.clone());
        if let Some(cap) = &req.group {
            *entry.groups.entry(cap.key.clone()).or_insert(0) += req.quantity;
            entry.hold_groups.insert(hold.id.clone(), cap.key.clone());
        }
        let units_left = entry.levels().left;
        inner
            .by_expiry
            .insert((hold.expires_at, req.offer.clone(), hold.id.clone()));
        Ok(Ok(Reserved {
            hold,
            units_left,
            replayed: false,
        }))
    }

    async fn extend(
        &self,
        offer: &OfferId,
        hold: &HoldId,
        ttl_ms: i64,
        now: Millis,
    ) -> Result<Result<Hold, HoldError>, EngineError> {
        let mut inner = self.lock();
        let Some(entry) = inner.offers.get_mut(offer) else {
            return Ok(Err(HoldError::NotFound));
        };
        let Some(h) = entry.holds.get_mut(hold) else {
            return Ok(Err(HoldError::NotFound));
        };
        if h.status != HoldStatus::Held {
            return Ok(Err(HoldError::NotActive(h.status)));
        }
        if now >= h.expires_at {
            return Ok(Err(HoldError::NotActive(HoldStatus::Expired)));
        }
        let old = h.expires_at;
        h.expires_at = old.max(now + ttl_ms);
        let h = h.clone();
        entry.push_forget_at(h.expires_at);
        inner.by_expiry.remove(&(old, offer.clone(), hold.clone()));
        inner.by_expiry.insert((h.expires_at, offer.clone(), hold.clone()));
        Ok(Ok(h))
    }

    async fn release(
        &self,
        offer: &OfferId,
        hold: &HoldId,
        buyer: Option<&BuyerId>,
    ) -> Result<Result<(Hold, StockLevels), HoldError>, EngineError> {
        let mut inner = self.lock();
        let Some(entry) = inner.offers.get_mut(offer) else {
            return Ok(Err(HoldError::NotFound));
        };
        let Some(h) = entry.holds.get(hold) else {
            return Ok(Err(HoldError::NotFound));
        };
        if buyer.is_some_and(|b| *b != h.buyer_id) {
            return Ok(Err(HoldError::NotOwner));
        }
        match h.status {
            HoldStatus::Held => {}
            HoldStatus::Committed => return Ok(Err(HoldError::NotActive(HoldStatus::Committed))),
            HoldStatus::Released | HoldStatus::Expired => return Ok(Ok((h.clone(), entry.levels()))),
        }
        let released = entry.give_back(hold, HoldStatus::Released).expect("checked held above");
        let levels = entry.levels();
        inner
            .by_expiry
            .remove(&(released.expires_at, offer.clone(), hold.clone()));
        Ok(Ok((released, levels)))
    }

    async fn commit(
        &self,
        offer: &OfferId,
        hold: &HoldId,
        now: Millis,
    ) -> Result<Result<(Hold, Committed), HoldError>, EngineError> {
        let mut inner = self.lock();
        let Some(entry) = inner.offers.get_mut(offer) else {
            return Ok(Err(HoldError::NotFound));
        };
        let Some(h) = entry.holds.get_mut(hold) else {
            return Ok(Err(HoldError::NotFound));
        };
        match h.status {
            HoldStatus::Committed => {
                let h = h.clone();
                let levels = entry.levels();
                return Ok(Ok((h, Committed { newly: false, levels })));
            }
            HoldStatus::Held if now < h.expires_at => {}
            HoldStatus::Held => return Ok(Err(HoldError::NotActive(HoldStatus::Expired))),
            other => return Ok(Err(HoldError::NotActive(other))),
        }
        h.status = HoldStatus::Committed;
        let h = h.clone();
        entry.ungroup(&h);
        entry.held -= h.quantity;
        entry.sold += h.quantity;
        let levels = entry.levels();
        inner.by_expiry.remove(&(h.expires_at, offer.clone(), hold.clone()));
        Ok(Ok((h, Committed { newly: true, levels })))
    }

    async fn hold(&self, offer: &OfferId, hold: &HoldId) -> Result<Option<Hold>, EngineError> {
        let inner = self.lock();
        Ok(inner.offers.get(offer).and_then(|e| e.holds.get(hold)).cloned())
    }

    async fn due(&self, now: Millis, max: usize) -> Result<Vec<(OfferId, HoldId)>, EngineError> {
        let mut inner = self.lock();
        inner
            .offers
            .retain(|_, e| !matches!(e.closed, Some((forget_at, _)) if forget_at <= now));
        Ok(inner
            .by_expiry
            .iter()
            .take_while(|(at, _, _)| *at <= now)
            .take(max)
            .map(|(_, offer, hold)| (offer.clone(), hold.clone()))
            .collect())
    }

    async fn expire(&self, offer: &OfferId, hold: &HoldId, now: Millis) -> Result<Option<Expired>, EngineError> {
        let mut inner = self.lock();
        let Some(entry) = inner.offers.get_mut(offer) else {
            inner.by_expiry.retain(|(_, o, h)| !(o == offer && h == hold));
            return Ok(None);
        };
        let expires_at = match entry.holds.get(hold) {
            Some(h) if h.status == HoldStatus::Held => h.expires_at,
            _ => return Ok(None),
        };
        if expires_at > now {
            return Ok(None);
        }
        let Some(h) = entry.give_back(hold, HoldStatus::Expired) else {
            return Ok(None);
        };
        let levels = entry.levels();
        inner.by_expiry.remove(&(expires_at, offer.clone(), hold.clone()));
        Ok(Some(Expired { hold: h, levels }))
    }

    async fn close(&self, offer: &OfferId, _now: Millis, retain_ms: i64) -> Result<(), EngineError> {
        let mut inner = self.lock();
        if let Some(entry) = inner.offers.get_mut(offer) {
            if entry.closed.is_none() {
                let last_expiry = entry
                    .holds
                    .values()
                    .filter(|h| h.status == HoldStatus::Held)
                    .map(|h| h.expires_at)
                    .max()
                    .unwrap_or(entry.ends_at)
                    .max(entry.ends_at);
                entry.closed = Some((last_expiry + retain_ms, retain_ms));
            }
        }
        Ok(())
    }

    async fn adjust(
        &self,
        offer: &OfferId,
        change: &Adjust,
    ) -> Result<Result<StockLevels, AdjustRefusal>, EngineError> {
        let mut inner = self.lock();
        let Some(entry) = inner.offers.get_mut(offer) else {
            return Ok(Err(AdjustRefusal::NotLoaded));
        };
        if entry.closed.is_some() {
            return Ok(Err(AdjustRefusal::Closed));
        }
        let taken = entry.held + entry.sold;
        if change.quantity.is_some_and(|q| q < taken) {
            return Ok(Err(AdjustRefusal::BelowTaken { taken }));
        }
        if let Some(q) = change.quantity {
            entry.quantity = q;
        }
        if let Some(l) = change.per_buyer_limit {
            entry.limit = l;
        }
        if let Some(at) = change.ends_at {
            entry.ends_at = at;
        }
        Ok(Ok(entry.levels()))
    }

    async fn levels(&self, offer: &OfferId) -> Result<Option<StockLevels>, EngineError> {
        Ok(self.lock().offers.get(offer).map(OfferEntry::levels))
    }

    async fn live_holds(&self) -> Result<u64, EngineError> {
        Ok(self.lock().by_expiry.len() as u64)
    }

    async fn ping(&self) -> Result<(), EngineError> {
        Ok(())
    }
}
