//! The publisher of stream events to viewers. Each event is serialized
//! once, with `server_time`, and published on the stream's channel through
//! the node's fan-out [`Engine`] (this node's channels, or Redis to every
//! node).
//!
//! `offer.stock` is coalesced per offer: the first change after a quiet
//! [`STOCK_INTERVAL`] goes out at once, later ones at most once per interval
//! with the level read from the stock engine when it goes out, so the last
//! value viewers see is the current one whichever node sold last; nothing is
//! sent for an offer after it ended. `viewers` is counted every
//! [`VIEWERS_INTERVAL`] and announced when it changed.
//!
//! The seller's console hears more on the stream's seller channel
//! (`seller#<stream>`): after any change of an offer's stock, its levels —
//! quantity, held in checkout, sold, left — read from the stock engine
//! (`offer.stats`, at most one per offer per flush, every 50 ms).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::Value;
use streams::clock::Clock;
use streams::events::{EventSink, StreamEvent};
use streams::ids::{OfferId, StreamId};
use streams::inventory::Inventory;
use streams::model::EndReason;
use tokio::sync::{broadcast, watch};
use tokio::time::Instant;

use super::bus::RedisBus;
use super::channels::{Channels, HistoryLimits, Position};
use super::connection::STREAM_PREFIX;
use super::engine::{Engine, EngineError, Local};

/// At most one `offer.stock` per offer per this interval (from each node).
pub const STOCK_INTERVAL: Duration = Duration::from_millis(250);
/// How often viewer counts are taken.
pub const VIEWERS_INTERVAL: Duration = Duration::from_secs(1);

/// One published event, ready to write.
#[derive(Debug, Clone)]
pub struct Published {
    pub stream: StreamId,
    /// The event as JSON, with `type` and `server_time` (ms).
    pub data: Arc<str>,
}

struct StockEntry {
    stream: StreamId,
    /// The latest level this node saw, when one is waiting to go out.
    pending: Option<i64>,
    sent_at: Instant,
}

/// The node's event hub.
pub struct Hub {
    tx: broadcast::Sender<Arc<Published>>,
    channels: Arc<Channels>,
    engine: Arc<dyn Engine>,
    clock: Arc<dyn Clock>,
    inventory: Arc<dyn Inventory>,
    stock: Mutex<HashMap<OfferId, StockEntry>>,
    /// Offers whose levels changed since the last flush, for the seller
    /// channel (kept past an offer's end: its last sale is told too).
    stats: Mutex<HashMap<OfferId, StreamId>>,
    /// Streams this node counted viewers of last time, with the local count
    /// (one node: also the last count announced).
    viewers: Mutex<HashMap<StreamId, usize>>,
    /// Offers this node ended, by reason (time, sold_out, cancelled): each
    /// offer's end is published by exactly the one node that ended it.
    ended: [AtomicU64; 3],
}

/// Where viewers' pushes come from on a node.
pub enum HubBus {
    /// One node keeps offsets and history in memory.
    Own,
    /// Redis at this URL, keys under this prefix.
    Redis {
        url: String,
        prefix: String,
        policy: streams::inventory::RedisPolicy,
    },
}

impl Hub {
    pub async fn new(
        clock: Arc<dyn Clock>,
        history: HistoryLimits,
        inventory: Arc<dyn Inventory>,
        bus: HubBus,
    ) -> Result<Self, EngineError> {
        let (tx, _) = broadcast::channel(4096);
        let channels = Arc::new(Channels::new(history, clock.clone()));
        let engine: Arc<dyn Engine> = match bus {
            HubBus::Own => Arc::new(Local::new(channels.clone())),
            HubBus::Redis { url, prefix, policy } => RedisBus::start(&url, &prefix, history, &channels, policy).await?,
        };
        Ok(Self {
            tx,
            channels,
            engine,
            clock,
            inventory,
            stock: Mutex::new(HashMap::new()),
            stats: Mutex::new(HashMap::new()),
            viewers: Mutex::new(HashMap::new()),
            ended: Default::default(),
        })
    }

    /// Offers this node ended: (time, sold_out, cancelled).
    pub fn offers_ended(&self) -> [(&'static str, u64); 3] {
        let n = |i: usize| self.ended[i].load(Ordering::Relaxed);
        [("time", n(0)), ("sold_out", n(1)), ("cancelled", n(2))]
    }

    /// The viewer channels of this node.
    pub fn channels(&self) -> &Arc<Channels> {
        &self.channels
    }

    /// The fan-out engine.
    pub fn engine(&self) -> &dyn Engine {
        self.engine.as_ref()
    }

    /// Every event this node publishes (for tests and tools).
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Published>> {
        self.tx.subscribe()
    }

    /// Where a new subscriber of `channel` starts, and (with `since`) what it missed.
    pub async fn position(&self, channel: &str, since: Option<(&str, u64)>) -> Result<Position, EngineError> {
        self.engine.position(channel, since).await
    }

    fn lock_stock(&self) -> MutexGuard<'_, HashMap<OfferId, StockEntry>> {
        self.stock.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Serializes an event with the server's time and publishes it.
    fn emit(&self, stream: &StreamId, event: &StreamEvent) {
        let mut value = match serde_json::to_value(event) {
            Ok(v) => v,
            Err(e) => {
                tracing::error!(error = %e, "could not serialize a stream event");
                return;
            }
        };
        if let Value::Object(m) = &mut value {
            m.insert("server_time".into(), Value::from(self.clock.now_ms()));
        }
        let data: Arc<str> = value.to_string().into();
        let channel: Arc<str> = format!("{STREAM_PREFIX}{stream}").into();
        self.engine.publish(channel, data.clone());
        // No receiver is not an error: nobody is watching yet.
        let _ = self.tx.send(Arc::new(Published {
            stream: stream.clone(),
            data,
        }));
    }

    /// Publishes `value` (an object; `server_time` is added) on a viewer's
    /// own channel, `holds#<viewer>`: what only that viewer hears, on
    /// whichever node they are connected.
    pub fn publish_personal(&self, viewer: &str, mut value: Value) {
        if let Value::Object(m) = &mut value {
            m.insert("server_time".into(), Value::from(self.clock.now_ms()));
        }
        let channel: Arc<str> = format!("{}{viewer}", crate::realtime::connection::PERSONAL_PREFIX).into();
        self.engine.publish(channel, value.to_string().into());
    }

    /// Sends the seller channels the levels of offers that changed.
    pub async fn flush_stats(&self) {
        let due: Vec<(OfferId, StreamId)> = std::mem::take(&mut *self.stats.lock().unwrap_or_else(|e| e.into_inner()))
            .into_iter()
            .collect();
        for (offer, stream) in due {
            let Ok(Some(levels)) = self.inventory.levels(&offer).await else {
                continue;
            };
            let mut value = stats_value(&offer, &levels);
            if let Value::Object(m) = &mut value {
                m.insert("server_time".into(), Value::from(self.clock.now_ms()));
            }
            let channel: Arc<str> = format!("{}{stream}", crate::realtime::connection::SELLER_PREFIX).into();
            self.engine.publish(channel, value.to_string().into());
        }
    }

    /// Sends stock levels whose interval has passed (all waiting ones when
    /// `all`), read fresh from the engine.
    pub async fn flush_stock(&self, all: bool) {
        // Taken out before the level is read: a change after the read sets
        // the entry pending again and goes out next time, so the last level
        // always reaches viewers.
        let due: Vec<(OfferId, StreamId, i64)> = {
            let mut stock = self.lock_stock();
            let now = Instant::now();
            stock.retain(|_, e| e.pending.is_some() || now.duration_since(e.sent_at) < Duration::from_secs(60));
            stock
                .iter_mut()
                .filter(|(_, e)| e.pending.is_some() && (all || now.duration_since(e.sent_at) >= STOCK_INTERVAL))
                .map(|(o, e)| {
                    e.sent_at = now;
                    (o.clone(), e.stream.clone(), e.pending.take().unwrap_or(0))
                })
                .collect()
        };
        for (offer, stream, seen) in due {
            let units_left = match self.inventory.levels(&offer).await {
                Ok(Some(l)) => l.left.max(0),
                _ => seen,
            };
            self.emit(
                &stream,
                &StreamEvent::OfferStock {
                    offer_id: offer,
                    units_left,
                },
            );
        }
    }

    fn stock_changed(&self, stream: &StreamId, offer: &OfferId, units_left: i64) {
        let now = Instant::now();
        let send_now = {
            let mut stock = self.lock_stock();
            let e = stock.entry(offer.clone()).or_insert_with(|| StockEntry {
                stream: stream.clone(),
                pending: None,
                sent_at: now - STOCK_INTERVAL,
            });
            if e.pending.is_none() && now.duration_since(e.sent_at) >= STOCK_INTERVAL {
                e.sent_at = now;
                true
            } else {
                e.pending = Some(units_left);
                false
            }
        };
        if send_now {
            self.emit(
                stream,
                &StreamEvent::OfferStock {
                    offer_id: offer.clone(),
                    units_left,
                },
            );
        }
    }

    /// Counts this node's viewers of each stream and announces the counts
    /// that changed (over all nodes, with Redis).
    pub async fn count_viewers(&self) {
        let mut now: HashMap<StreamId, (usize, bool)> = HashMap::new();
        for (channel, n) in self.channels.viewer_counts(STREAM_PREFIX) {
            if let Some(sid) = channel
                .strip_prefix(STREAM_PREFIX)
                .and_then(|s| StreamId::parse(s).ok())
            {
                now.insert(sid, (n, true));
            }
        }
        let before = std::mem::take(&mut *self.viewers.lock().unwrap_or_else(|e| e.into_inner()));
        // Streams counted before whose channel is gone here: zero viewers.
        for sid in before.keys() {
            now.entry(sid.clone()).or_insert((0, false));
        }
        let mut keep = HashMap::new();
        for (sid, (count, exists)) in now {
            let counted = self
                .engine
                .count_viewers(sid.as_str(), count, before.get(&sid).copied(), exists)
                .await;
            if let Some(count) = counted.announce {
                self.publish(
                    &sid,
                    StreamEvent::Viewers {
                        stream_id: sid.clone(),
                        count,
                    },
                );
            }
            if counted.again {
                keep.insert(sid, count);
            }
        }
        *self.viewers.lock().unwrap_or_else(|e| e.into_inner()) = keep;
    }

    /// Flushes coalesced stock and counts viewers until the node stops.
    pub async fn run(&self, mut stop: watch::Receiver<bool>) {
        let mut stock = tokio::time::interval(Duration::from_millis(50));
        let mut viewers = tokio::time::interval(VIEWERS_INTERVAL);
        stock.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        viewers.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stock.tick() => {
                    self.flush_stock(false).await;
                    self.flush_stats().await;
                }
                _ = viewers.tick() => self.count_viewers().await,
                _ = stop.changed() => {
                    self.flush_stock(true).await;
                    self.flush_stats().await;
                    return;
                }
            }
        }
    }
}

/// An offer's levels as the seller channel tells them.
fn stats_value(offer: &OfferId, l: &streams::inventory::StockLevels) -> Value {
    serde_json::json!({
        "type": "offer.stats", "offer_id": offer, "quantity": l.quantity,
        "held": l.held, "sold": l.sold, "units_left": l.left.max(0),
    })
}

/// What a seller channel's subscriber starts from: every live offer's
/// levels (`{ "offers": [...] }`; an offer whose levels cannot be read is
/// left out, and comes with its next change).
pub async fn seller_snapshot(
    streams: &streams::service::Streams,
    seller: &streams::ids::SellerId,
    stream: &StreamId,
) -> Value {
    let mut offers = Vec::new();
    if let Ok(all) = streams.offers(seller, stream).await {
        for o in all.iter().filter(|o| o.state == streams::model::OfferState::Live) {
            if let Ok(Some(levels)) = streams.levels(seller, &o.id).await {
                offers.push(stats_value(&o.id, &levels));
            }
        }
    }
    serde_json::json!({ "offers": offers })
}

impl EventSink for Hub {
    fn publish(&self, stream: &StreamId, event: StreamEvent) {
        let changed = match &event {
            StreamEvent::OfferStarted { offer_id, .. }
            | StreamEvent::OfferStock { offer_id, .. }
            | StreamEvent::OfferUpdated { offer_id, .. }
            | StreamEvent::OfferEnded { offer_id, .. }
            | StreamEvent::Purchase { offer_id, .. } => Some(offer_id),
            _ => None,
        };
        if let Some(offer) = changed {
            self.stats
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(offer.clone(), stream.clone());
        }
        match &event {
            StreamEvent::OfferStock { offer_id, units_left } => {
                self.stock_changed(stream, offer_id, *units_left);
                return;
            }
            // The update carries the level right after the change: an older
            // one still held back must not follow it.
            StreamEvent::OfferUpdated { offer_id, .. } => {
                if let Some(e) = self.lock_stock().get_mut(offer_id) {
                    e.pending = None;
                }
            }
            StreamEvent::OfferEnded { offer_id, reason, .. } => {
                let i = match reason {
                    EndReason::Time => 0,
                    EndReason::SoldOut => 1,
                    EndReason::Cancelled => 2,
                };
                self.ended[i].fetch_add(1, Ordering::Relaxed);
                // The last level still held back goes out first, so every
                // viewer ends on the offer's final count; nothing of it is
                // kept after.
                let held_back = self.lock_stock().remove(offer_id).and_then(|e| e.pending);
                if let Some(units_left) = held_back {
                    self.emit(
                        stream,
                        &StreamEvent::OfferStock {
                            offer_id: offer_id.clone(),
                            units_left,
                        },
                    );
                }
            }
            _ => {}
        }
        self.emit(stream, &event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::realtime::channels::ConnHandle;
    use streams::clock::ManualClock;
    use streams::inventory::MemoryInventory;

    /// A node's hub on its own, with a small history.
    async fn hub() -> Hub {
        let limits = HistoryLimits {
            size: 10,
            ttl_ms: 60_000,
        };
        Hub::new(
            Arc::new(ManualClock::new(0)),
            limits,
            Arc::new(MemoryInventory::new()),
            HubBus::Own,
        )
        .await
        .unwrap()
    }

    fn viewers_events(rx: &mut broadcast::Receiver<Arc<Published>>) -> Vec<u64> {
        let mut out = Vec::new();
        while let Ok(p) = rx.try_recv() {
            let v: serde_json::Value = serde_json::from_str(&p.data).unwrap();
            if v["type"] == "viewers" {
                out.push(v["count"].as_u64().unwrap());
            }
        }
        out
    }

    #[tokio::test]
    async fn viewer_counts_are_announced_on_change_and_zero_only_once() {
        let hub = hub().await;
        let mut rx = hub.subscribe();
        let sid = StreamId::generate();
        let channel = format!("{STREAM_PREFIX}{sid}");
        let (a, _qa) = ConnHandle::new(1, 16);
        let (b, _qb) = ConnHandle::new(2, 16);
        hub.channels().join(&channel, &a);
        hub.channels().join(&channel, &b);
        hub.count_viewers().await;
        hub.count_viewers().await;
        assert_eq!(viewers_events(&mut rx), vec![2]);
        hub.channels().leave(&channel, 1);
        hub.channels().leave(&channel, 2);
        for _ in 0..3 {
            hub.count_viewers().await;
        }
        // The channel keeps its history (so it lives on), yet zero goes out once.
        assert_eq!(viewers_events(&mut rx), vec![0]);
    }

    /// A level held back by coalescing is not lost when the offer ends
    /// (sold out by the very change it holds back): it goes out before the
    /// end, and nothing of the offer is sent after. Found by the fault run.
    #[tokio::test]
    async fn an_ending_offer_sends_its_held_back_level_first() {
        let hub = hub().await;
        let mut rx = hub.subscribe();
        let (sid, offer) = (StreamId::generate(), OfferId::generate());
        let stock = |n| StreamEvent::OfferStock {
            offer_id: offer.clone(),
            units_left: n,
        };
        hub.publish(&sid, stock(2));
        hub.publish(&sid, stock(1));
        hub.publish(&sid, stock(0));
        hub.publish(
            &sid,
            StreamEvent::OfferEnded {
                offer_id: offer.clone(),
                reason: EndReason::SoldOut,
                note: None,
            },
        );
        hub.flush_stock(true).await;
        let mut seen = Vec::new();
        while let Ok(p) = rx.try_recv() {
            let v: serde_json::Value = serde_json::from_str(&p.data).unwrap();
            seen.push(format!("{} {}", v["type"].as_str().unwrap(), v["units_left"]));
        }
        assert_eq!(seen, vec!["offer.stock 2", "offer.stock 0", "offer.ended null"]);
    }
}
