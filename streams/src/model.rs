//! Streams, lots and offers, and the state machines that govern them.
//!
//! Every lifecycle change goes through a transition function here, so an
//! illegal move (ending an ended stream, starting a cancelled offer) is refused
//! in one place with one error code, whatever the caller.

use serde::Serialize;

use crate::clock::Millis;
use crate::ids::{LotId, OfferId, SellerId, StreamId};
use crate::money::Currency;

/// A stream's lifecycle: `scheduled → live → ended`, or `scheduled → ended`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StreamState {
    Scheduled,
    Live,
    Ended,
}

/// An offer's lifecycle: `draft → live → ended(reason)`, or `draft → ended(cancelled)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OfferState {
    Draft,
    Live,
    Ended,
}

/// Why an offer ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    /// Its end time passed.
    Time,
    /// Every unit was sold.
    SoldOut,
    /// The seller cancelled it (or ended its stream).
    Cancelled,
}

macro_rules! text_enum {
    ($ty:ident { $($variant:ident => $text:literal),* $(,)? }) => {
        impl $ty {
            pub fn as_str(&self) -> &'static str {
                match self { $($ty::$variant => $text),* }
            }

            /// Reads the stored form back; `None` for text Haul never writes.
            pub fn from_db(s: &str) -> Option<Self> {
                match s { $($text => Some($ty::$variant),)* _ => None }
            }
        }
    };
}

text_enum!(StreamState { Scheduled => "scheduled", Live => "live", Ended => "ended" });
text_enum!(OfferState { Draft => "draft", Live => "live", Ended => "ended" });
text_enum!(EndReason { Time => "time", SoldOut => "sold_out", Cancelled => "cancelled" });

/// An illegal lifecycle transition.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct IllegalTransition {
    /// Stable machine-readable code, e.g. `stream_not_live`.
    pub code: &'static str,
    pub message: String,
}

fn illegal(code: &'static str, message: impl Into<String>) -> IllegalTransition {
    IllegalTransition {
        code,
        message: message.into(),
    }
}

impl StreamState {
    pub fn go_live(self) -> Result<StreamState, IllegalTransition> {
        match self {
            StreamState::Scheduled => Ok(StreamState::Live),
            StreamState::Live => Err(illegal("stream_already_live", "the stream is already live")),
            StreamState::Ended => Err(illegal("stream_ended", "the stream has ended")),
        }
    }

    pub fn end(self) -> Result<StreamState, IllegalTransition> {
        match self {
            StreamState::Scheduled | StreamState::Live => Ok(StreamState::Ended),
            StreamState::Ended => Err(illegal("stream_ended", "the stream has already ended")),
        }
    }

    /// Lots can be added, changed and pinned until the stream ends.
    pub fn allows_editing(self) -> Result<(), IllegalTransition> {
        match self {
            StreamState::Ended => Err(illegal("stream_ended", "the stream has ended")),
            _ => Ok(()),
        }
    }
}

impl OfferState {
    /// `draft → live`; the stream must be live.
    pub fn start(self, stream: StreamState) -> Result<OfferState, IllegalTransition> {
        match (self, stream) {
            (OfferState::Draft, StreamState::Live) => Ok(OfferState::Live),
            (OfferState::Draft, _) => Err(illegal(
                "stream_not_live",
                "offers can only start while their stream is live",
            )),
            (OfferState::Live, _) => Err(illegal("offer_already_live", "the offer is already live")),
            (OfferState::Ended, _) => Err(illegal("offer_ended", "the offer has ended")),
        }
    }

    /// `draft | live → ended(cancelled)`.
    pub fn cancel(self) -> Result<OfferState, IllegalTransition> {
        match self {
            OfferState::Draft | OfferState::Live => Ok(OfferState::Ended),
            OfferState::Ended => Err(illegal("offer_ended", "the offer has already ended")),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Stream {
    pub id: StreamId,
    pub seller_id: SellerId,
    pub title: String,
    pub state: StreamState,
    /// The one lot currently pinned on screen, if any.
    pub pinned_lot_id: Option<LotId>,
    pub created_at: Millis,
    pub live_at: Option<Millis>,
    pub ended_at: Option<Millis>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Lot {
    pub id: LotId,
    pub stream_id: StreamId,
    pub seller_id: SellerId,
    pub title: String,
    pub description: String,
    pub image_url: Option<String>,
    /// What an offer of it sells for by default (the console's "launch"
    /// fills its form from these).
    #[serde(flatten)]
    pub terms: LotTerms,
    pub created_at: Millis,
    pub updated_at: Millis,
    /// Archived: kept for the orders that name it, not listed, not sold.
    pub archived_at: Option<Millis>,
}

/// A lot's default sale terms, each optional: the price, the units in
/// stock, the per-buyer cap, how long an offer runs, the seller's SKU.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct LotTerms {
    pub price_minor: Option<i64>,
    pub currency: Option<String>,
    pub quantity: Option<i64>,
    pub per_buyer_limit: Option<i64>,
    pub duration_seconds: Option<i64>,
    pub sku: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Offer {
    pub id: OfferId,
    pub lot_id: LotId,
    pub stream_id: StreamId,
    pub seller_id: SellerId,
    /// Unit price in minor units of `currency`.
    pub price_minor: i64,
    pub currency: Currency,
    /// Units for sale in this offer; held + sold never exceeds it.
    pub quantity: i64,
    /// Units one buyer may hold and buy in this offer, together.
    pub per_buyer_limit: i64,
    /// How long the offer runs once started (when no fixed end time was given).
    pub duration_ms: Option<i64>,
    /// A fixed end time requested at creation (instead of a duration).
    pub end_at_requested: Option<Millis>,
    /// How long a hold lasts before its units come back unless paid.
    pub hold_ttl_ms: i64,
    pub state: OfferState,
    pub end_reason: Option<EndReason>,
    pub created_at: Millis,
    pub started_at: Option<Millis>,
    /// When a live offer ends by itself; set at start.
    pub ends_at: Option<Millis>,
    pub ended_at: Option<Millis>,
    /// A draft scheduled to start by itself at this time.
    pub start_at: Option<Millis>,
    /// The seller's word to viewers when it was ended early.
    pub end_note: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_goes_live_once_and_ends_once() {
        let live = StreamState::Scheduled.go_live().unwrap();
        assert_eq!(live.go_live().unwrap_err().code, "stream_already_live");
        let ended = live.end().unwrap();
        assert_eq!(ended.end().unwrap_err().code, "stream_ended");
        assert_eq!(ended.go_live().unwrap_err().code, "stream_ended");
    }

    #[test]
    fn offer_starts_only_from_draft_on_a_live_stream() {
        assert_eq!(
            OfferState::Draft.start(StreamState::Scheduled).unwrap_err().code,
            "stream_not_live"
        );
        assert_eq!(OfferState::Draft.start(StreamState::Live).unwrap(), OfferState::Live);
        assert_eq!(
            OfferState::Live.start(StreamState::Live).unwrap_err().code,
            "offer_already_live"
        );
        assert_eq!(OfferState::Ended.cancel().unwrap_err().code, "offer_ended");
    }

    #[test]
    fn stored_state_text_round_trips() {
        for s in [StreamState::Scheduled, StreamState::Live, StreamState::Ended] {
            assert_eq!(StreamState::from_db(s.as_str()), Some(s));
        }
        for r in [EndReason::Time, EndReason::SoldOut, EndReason::Cancelled] {
            assert_eq!(EndReason::from_db(r.as_str()), Some(r));
        }
        assert_eq!(OfferState::from_db("bogus"), None);
    }
}
