//! In-process delivery of stream events. Each event is serialized once, with
//! `server_time`, and the same bytes go to every local subscriber.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use serde_json::Value;
use streams::clock::Clock;
use streams::events::{EventSink, StreamEvent};
use streams::ids::StreamId;
use streams::model::EndReason;
use tokio::sync::broadcast;

use crate::realtime::channels::{Channels, HistoryLimits};

/// One published event, ready to write.
#[derive(Debug, Clone)]
pub struct Published {
    pub stream: StreamId,
    /// The event as JSON, with `type` and `server_time` (ms).
    pub data: Arc<str>,
}

/// The node's event hub.
pub struct Hub {
    tx: broadcast::Sender<Arc<Published>>,
    channels: Channels,
    clock: Arc<dyn Clock>,
    /// Offers this node ended, by reason (time, sold_out, cancelled): each
    /// offer's end is published by exactly the one node that ended it.
    ended: [AtomicU64; 3],
}

impl Hub {
    pub fn new(clock: Arc<dyn Clock>, history: HistoryLimits) -> Self {
        let (tx, _) = broadcast::channel(4096);
        Self {
            tx,
            channels: Channels::new(history, clock.clone()),
            clock,
            ended: Default::default(),
        }
    }

    /// Offers this node ended: (time, sold_out, cancelled).
    pub fn offers_ended(&self) -> [(&'static str, u64); 3] {
        let n = |i: usize| self.ended[i].load(Ordering::Relaxed);
        [("time", n(0)), ("sold_out", n(1)), ("cancelled", n(2))]
    }

    /// The viewer channels of this node.
    pub fn channels(&self) -> &Channels {
        &self.channels
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Published>> {
        self.tx.subscribe()
    }
}

impl EventSink for Hub {
    fn publish(&self, stream: &StreamId, event: StreamEvent) {
        if let StreamEvent::OfferEnded { reason, .. } = &event {
            let i = match reason {
                EndReason::Time => 0,
                EndReason::SoldOut => 1,
                EndReason::Cancelled => 2,
            };
            self.ended[i].fetch_add(1, Ordering::Relaxed);
        }
        let mut value = match serde_json::to_value(&event) {
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
        self.channels.publish(&format!("stream:{stream}"), data.clone());
        let published = Published {
            stream: stream.clone(),
            data,
        };
        // No subscriber is not an error: nobody is watching yet.
        let _ = self.tx.send(Arc::new(published));
    }
}
