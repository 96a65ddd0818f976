//! Background work: offers that end by themselves, holds that expire.

use std::collections::HashMap;
use std::time::Duration;

use tokio::sync::watch;

use super::{Result, Streams};
use crate::clock::Millis;
use crate::events::StreamEvent;
use crate::ids::{HoldId, OfferId};
use crate::inventory::Expired;

/// How many expired holds one sweep releases at most.
const SWEEP_BATCH: usize = 1000;

impl Streams {
    /// Ends every live offer whose end time has come. Safe to run on every
    /// node at once: the store's compare-and-set lets exactly one node end each
    /// offer, and only that node closes its stock and tells viewers.
    pub async fn end_due_offers(&self) -> Result<usize> {
        let ended = self.store.end_due_offers(self.now()).await?;
        for offer in &ended {
            tracing::info!(offer = %offer.id, "offer ended: time");
            // `ended` holds the rows after the update; their state before was live.
            let mut before = offer.clone();
            before.state = crate::model::OfferState::Live;
            self.after_offer_ended(&before, crate::model::EndReason::Time).await;
        }
        Ok(ended.len())
    }

    /// Releases expired holds and tells viewers of the units that came back.
    pub async fn sweep_expired_holds(&self) -> Result<Vec<Expired>> {
        self.retry_pending_closes().await;
        let now = self.now();
        let due = self.inventory.due(now, SWEEP_BATCH).await?;
        // A node that recorded a sale and stopped before committing the hold in
        // the engine leaves a due hold with a sale: it is sold, not expired.
        let holds: Vec<HoldId> = due.iter().map(|(_, h)| h.clone()).collect();
        let sold = self.store.sale_times(&holds).await?;
        let mut expired = Vec::with_capacity(due.len());
        for (offer, hold) in due {
            if let Some(&sold_at) = sold.get(&hold) {
                expired.extend(self.finish_interrupted_commit(&offer, &hold, sold_at).await?);
            } else if let Some(e) = self.inventory.expire(&offer, &hold, now).await? {
                expired.push(e);
            }
        }
        // One stock event per offer: the last level is the current one.
        let mut latest = HashMap::new();
        for e in &expired {
            latest.insert(e.hold.offer_id.clone(), e.levels.left);
        }
        for (offer_id, units_left) in latest {
            let cached = self.lock_meta().get(&offer_id).map(|m| m.stream_id.clone());
            let stream = match cached {
                Some(s) => Some(s),
                None => self.store.offer(&offer_id).await.ok().flatten().map(|o| o.stream_id),
            };
            if let Some(stream) = stream {
                self.events
                    .publish(&stream, StreamEvent::OfferStock { offer_id, units_left });
            }
        }
        Ok(expired)
    }

    /// Commits, as of the time the sale was recorded, a hold whose sale is in
    /// the store but whose commit never reached the engine. A sale recorded
    /// after the hold had expired sold nothing; its record is removed and the
    /// hold expires (returned).
    async fn finish_interrupted_commit(
        &self,
        offer: &OfferId,
        hold: &HoldId,
        sold_at: Millis,
    ) -> Result<Option<Expired>> {
        match self.inventory.commit(offer, hold, sold_at).await? {
            Ok((h, committed)) => {
                if committed.newly {
                    tracing::warn!(%offer, %hold, units = h.quantity, "finished a commit interrupted after its sale was recorded");
                    if let Some(stream) = self.store.offer(offer).await?.map(|o| o.stream_id) {
                        self.events.publish(
                            &stream,
                            StreamEvent::OfferStock {
                                offer_id: offer.clone(),
                                units_left: committed.levels.left,
                            },
                        );
                    }
                }
            }
            Err(e) => {
                tracing::warn!(%offer, %hold, error = %e, "removing a sale whose hold was never committed");
                self.store.delete_sale(hold).await?;
                return Ok(self.inventory.expire(offer, hold, self.now()).await?);
            }
        }
        Ok(None)
    }

    async fn retry_pending_closes(&self) {
        let pending = std::mem::take(&mut *self.lock_pending_close());
        for offer in pending {
            if let Err(e) = self
                .inventory
                .close(&offer, self.now(), self.settings.retain_ended_ms)
                .await
            {
                tracing::warn!(offer = %offer, error = %e, "retrying close of an ended offer");
                self.lock_pending_close().push(offer);
            }
        }
    }

    /// Runs the offer timer until `shutdown` turns true: sleeps until the next
    /// offer end or scheduled start (re-reading it at least every
    /// `timer_max_sleep_ms`, and at once when something local changes), then
    /// ends and starts what is due.
    pub async fn run_offer_timer(&self, mut shutdown: watch::Receiver<bool>) {
        let max_sleep = self.settings.timer_max_sleep_ms as i64;
        loop {
            if let Err(e) = self.end_due_offers().await {
                tracing::error!(error = ?e, "offer timer failed; retrying");
            }
            // After the ends: an offer queued on a lot starts once the lot's
            // live offer is over.
            if let Err(e) = self.start_due_offers().await {
                tracing::error!(error = ?e, "offer timer could not start scheduled offers; retrying");
            }
            let wait_ms = match self.next_timer_event().await {
                Ok(Some(next)) => (next - self.now()).clamp(0, max_sleep),
                Ok(None) => max_sleep,
                Err(e) => {
                    tracing::error!(error = ?e, "offer timer could not read the next end");
                    max_sleep
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(wait_ms as u64)) => {}
                _ = self.timer_wake.notified() => {}
                _ = shutdown.changed() => return,
            }
            if *shutdown.borrow() {
                return;
            }
        }
    }

    /// Runs the hold sweeper until `shutdown` turns true. `on_expired` sees
    /// every hold this node released (for webhooks and metrics).
    pub async fn run_hold_sweeper(&self, mut shutdown: watch::Receiver<bool>, on_expired: impl Fn(&Expired)) {
        let interval = Duration::from_millis(self.settings.sweep_interval_ms);
        loop {
            match self.sweep_expired_holds().await {
                Ok(expired) => expired.iter().for_each(&on_expired),
                Err(e) => tracing::error!(error = ?e, "hold sweeper failed; retrying"),
            }
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = shutdown.changed() => return,
            }
            if *shutdown.borrow() {
                return;
            }
        }
    }
}
