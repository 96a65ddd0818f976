//! What viewers of a stream are told, as it happens (DESIGN.md, "Viewer
//! realtime protocol"). The domain emits these; the gateway's hub delivers them.

use serde::Serialize;

use crate::clock::Millis;
use crate::ids::{LotId, OfferId, StreamId};
use crate::model::{EndReason, Lot, StreamState};
use crate::money::Currency;

/// An event on a stream's public channel. Serialized with a `type` field.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type")]
pub enum StreamEvent {
    #[serde(rename = "stream.status")]
    StreamStatus { stream_id: StreamId, state: StreamState },
    #[serde(rename = "lot.pinned")]
    LotPinned { lot: LotView },
    #[serde(rename = "lot.unpinned")]
    LotUnpinned { lot_id: LotId },
    #[serde(rename = "offer.started")]
    OfferStarted {
        offer_id: OfferId,
        lot_id: LotId,
        price_minor: i64,
        currency: Currency,
        quantity: i64,
        per_buyer_limit: i64,
        ends_at: Millis,
        units_left: i64,
    },
    #[serde(rename = "offer.stock")]
    OfferStock { offer_id: OfferId, units_left: i64 },
    #[serde(rename = "offer.ended")]
    OfferEnded {
        offer_id: OfferId,
        reason: EndReason,
        /// The seller's word when it was ended early.
        #[serde(skip_serializing_if = "Option::is_none")]
        note: Option<String>,
    },
    /// A live offer's terms changed (stock added or taken away, the limit,
    /// the end moved).
    #[serde(rename = "offer.updated")]
    OfferUpdated {
        offer_id: OfferId,
        quantity: i64,
        per_buyer_limit: i64,
        ends_at: Millis,
        units_left: i64,
    },
    /// Social proof: someone bought; no personal data.
    #[serde(rename = "purchase")]
    Purchase {
        offer_id: OfferId,
        lot_id: LotId,
        quantity: i64,
    },
    /// How many are watching (all nodes; coalesced).
    #[serde(rename = "viewers")]
    Viewers { stream_id: StreamId, count: u64 },
    /// A note from the streamer to everyone watching.
    #[serde(rename = "message")]
    Message { stream_id: StreamId, text: String },
}

/// The public face of a lot.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LotView {
    pub id: LotId,
    pub title: String,
    pub description: String,
    pub image_url: Option<String>,
}

impl From<&Lot> for LotView {
    fn from(l: &Lot) -> Self {
        Self {
            id: l.id.clone(),
            title: l.title.clone(),
            description: l.description.clone(),
            image_url: l.image_url.clone(),
        }
    }
}

/// Where the domain sends events. Must not block: implementations queue.
pub trait EventSink: Send + Sync + 'static {
    fn publish(&self, stream: &StreamId, event: StreamEvent);
}

/// Drops every event (for tools and tests that do not watch).
#[derive(Debug, Default, Clone, Copy)]
pub struct NoEvents;

impl EventSink for NoEvents {
    fn publish(&self, _stream: &StreamId, _event: StreamEvent) {}
}
