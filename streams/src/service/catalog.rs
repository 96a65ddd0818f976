//! Streams, lots and offers as the seller manages them.

use serde::Deserialize;

use super::{invalid, Error, Result, Streams};
use crate::clock::Millis;
use crate::events::{LotView, StreamEvent};
use crate::ids::{LotId, OfferId, SellerId, StreamId};
use crate::inventory::OfferStock;
use crate::model::{EndReason, IllegalTransition, Lot, LotTerms, Offer, OfferState, Stream, StreamState};
use crate::money::{Currency, Money};
use crate::store::Page;

/// Longest an offer may run.
pub const MAX_OFFER_DURATION_MS: i64 = 7 * 24 * 3600 * 1000;
/// Units one offer may sell at most.
pub const MAX_QUANTITY: i64 = 1_000_000;
/// Hold time-to-live bounds: long enough to pay, short enough that unpaid
/// stock comes back during the stream.
pub const MIN_HOLD_TTL_MS: i64 = 5_000;
pub const MAX_HOLD_TTL_MS: i64 = 3600 * 1000;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewStream {
    pub title: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewLot {
    pub title: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub image_url: Option<String>,
    /// Default sale terms, each optional (see [`LotTerms`]).
    #[serde(default)]
    pub price_minor: Option<i64>,
    #[serde(default)]
    pub currency: Option<String>,
    #[serde(default)]
    pub quantity: Option<i64>,
    #[serde(default)]
    pub per_buyer_limit: Option<i64>,
    #[serde(default)]
    pub duration_seconds: Option<i64>,
    #[serde(default)]
    pub sku: Option<String>,
}

impl NewLot {
    /// A lot with a title and nothing else.
    pub fn titled(title: impl Into<String>) -> NewLot {
        NewLot {
            title: title.into(),
            description: String::new(),
            image_url: None,
            price_minor: None,
            currency: None,
            quantity: None,
            per_buyer_limit: None,
            duration_seconds: None,
            sku: None,
        }
    }

    fn terms(&self) -> LotTerms {
        LotTerms {
            price_minor: self.price_minor,
            currency: self.currency.clone(),
            quantity: self.quantity,
            per_buyer_limit: self.per_buyer_limit,
            duration_seconds: self.duration_seconds,
            sku: self.sku.clone(),
        }
    }
}

/// Changes to a lot; absent fields stay as they are. `image_url: null` removes the image.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LotPatch {
    pub title: Option<String>,
    pub description: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    pub image_url: Option<Option<String>>,
    /// Each default sale term: a value sets it, `null` clears it.
    #[serde(default, deserialize_with = "double_option")]
    pub price_minor: Option<Option<i64>>,
    #[serde(default, deserialize_with = "double_option")]
    pub currency: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    pub quantity: Option<Option<i64>>,
    #[serde(default, deserialize_with = "double_option")]
    pub per_buyer_limit: Option<Option<i64>>,
    #[serde(default, deserialize_with = "double_option")]
    pub duration_seconds: Option<Option<i64>>,
    #[serde(default, deserialize_with = "double_option")]
    pub sku: Option<Option<String>>,
}

/// A field given (even as null) is `Some`; left out, `None`.
fn double_option<'de, D, T>(d: D) -> std::result::Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// Checks a lot's default terms: each within what an offer allows.
fn check_terms(t: LotTerms) -> Result<LotTerms> {
    if let Some(p) = t.price_minor {
        if !(1..=crate::money::MAX_AMOUNT_MINOR).contains(&p) {
            return Err(invalid("price_minor", "a whole number of minor units from 1"));
        }
    }
    let currency = match &t.currency {
        Some(c) => Some(
            Currency::parse(c)
                .map_err(|_| invalid("currency", "an ISO 4217 currency code"))?
                .code()
                .to_owned(),
        ),
        None => None,
    };
    if t.price_minor.is_some() != currency.is_some() {
        return Err(invalid("currency", "a price and its currency go together"));
    }
    if let Some(q) = t.quantity {
        if !(1..=MAX_QUANTITY).contains(&q) {
            return Err(invalid("quantity", format!("from 1 to {MAX_QUANTITY}")));
        }
    }
    if let Some(l) = t.per_buyer_limit {
        if l < 1 || t.quantity.is_some_and(|q| l > q) {
            return Err(invalid("per_buyer_limit", "from 1 to the quantity"));
        }
    }
    if let Some(d) = t.duration_seconds {
        if !(1..=MAX_OFFER_DURATION_MS / 1000).contains(&d) {
            return Err(invalid("duration_seconds", "from 1 second to 7 days"));
        }
    }
    let sku = match &t.sku {
        Some(s) => Some(text("sku", s, 1, 64)?),
        None => None,
    };
    Ok(LotTerms { currency, sku, ..t })
}

/// When an offer ends: after a duration from its start, or at a fixed time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OfferEnd {
    AfterMs(i64),
    At(Millis),
}

/// A new offer, already parsed by the caller into domain types where it can.
#[derive(Debug, Clone)]
pub struct NewOffer {
    pub lot_id: LotId,
    pub price_minor: i64,
    pub currency: String,
    pub quantity: i64,
    pub per_buyer_limit: Option<i64>,
    pub end: OfferEnd,
    pub hold_ttl_ms: Option<i64>,
    /// Start by itself at this time (when the stream is live and the lot
    /// has no live offer then).
    pub start_at: Option<Millis>,
}

/// A lot that is archived is kept, not sold.
pub(super) fn not_archived(lot: &Lot) -> Result<()> {
    if lot.archived_at.is_some() {
        return Err(IllegalTransition {
            code: "lot_archived",
            message: "the lot is archived".into(),
        }
        .into());
    }
    Ok(())
}

/// A scheduled start must be ahead, within the longest an offer may wait.
pub(super) fn check_start_at(at: Option<Millis>, now: Millis) -> Result<Option<Millis>> {
    match at {
        Some(t) if t <= now || t - now > MAX_OFFER_DURATION_MS => {
            Err(invalid("start_at", "must be in the future, at most 7 days ahead"))
        }
        other => Ok(other),
    }
}

fn text(field: &'static str, value: &str, min: usize, max: usize) -> Result<String> {
    let trimmed = value.trim();
    let len = trimmed.chars().count();
    if len < min || len > max {
        return Err(invalid(field, format!("must be {min} to {max} characters")));
    }
    if trimmed.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return Err(invalid(field, "must not contain control characters"));
    }
    Ok(trimmed.to_owned())
}

fn image_url(value: Option<&str>) -> Result<Option<String>> {
    let Some(url) = value else { return Ok(None) };
    let ok = (url.starts_with("https://") || url.starts_with("http://"))
        && url.len() <= 2048
        && url.len() > "https://".len()
        && !url.chars().any(|c| c.is_whitespace() || c.is_control());
    if !ok {
        return Err(invalid(
            "image_url",
            "must be an http(s) URL of at most 2048 characters",
        ));
    }
    Ok(Some(url.to_owned()))
}

impl Streams {
    pub(super) async fn owned_stream(&self, seller: &SellerId, id: &StreamId) -> Result<Stream> {
        match self.store.stream(id).await? {
            Some(s) if s.seller_id == *seller => Ok(s),
            _ => Err(Error::NotFound("stream")),
        }
    }

    pub(super) async fn owned_lot(&self, seller: &SellerId, id: &LotId) -> Result<Lot> {
        match self.store.lot(id).await? {
            Some(l) if l.seller_id == *seller => Ok(l),
            _ => Err(Error::NotFound("lot")),
        }
    }

    pub(crate) async fn owned_offer(&self, seller: &SellerId, id: &OfferId) -> Result<Offer> {
        match self.store.offer(id).await? {
            Some(o) if o.seller_id == *seller => Ok(o),
            _ => Err(Error::NotFound("offer")),
        }
    }

    // ----- streams -------------------------------------------------------

    pub async fn create_stream(&self, seller: &SellerId, new: NewStream) -> Result<Stream> {
        let stream = Stream {
            id: StreamId::generate(),
            seller_id: seller.clone(),
            title: text("title", &new.title, 1, 200)?,
            state: StreamState::Scheduled,
            pinned_lot_id: None,
            created_at: self.now(),
            live_at: None,
            ended_at: None,
        };
        self.store.insert_stream(&stream).await?;
        Ok(stream)
    }

    pub async fn stream(&self, seller: &SellerId, id: &StreamId) -> Result<Stream> {
        self.owned_stream(seller, id).await
    }

    pub async fn list_streams(&self, seller: &SellerId, page: Page) -> Result<Vec<Stream>> {
        Ok(self.store.list_streams(seller, page).await?)
    }

    /// Moves a stream through `step` with compare-and-set, retrying if it raced.
    async fn move_stream(
        &self,
        seller: &SellerId,
        id: &StreamId,
        step: fn(StreamState) -> std::result::Result<StreamState, IllegalTransition>,
    ) -> Result<Stream> {
        loop {
            let stream = self.owned_stream(seller, id).await?;
            let next = step(stream.state)?;
            if self.store.set_stream_state(id, stream.state, next, self.now()).await? {
                let stream = self.owned_stream(seller, id).await?;
                self.events.publish(
                    id,
                    StreamEvent::StreamStatus {
                        stream_id: id.clone(),
                        state: stream.state,
                    },
                );
                return Ok(stream);
            }
        }
    }

    pub async fn go_live(&self, seller: &SellerId, id: &StreamId) -> Result<Stream> {
        let stream = self.move_stream(seller, id, StreamState::go_live).await?;
        // Offers scheduled on it may be due.
        self.timer_wake.notify_one();
        Ok(stream)
    }

    /// Ends a stream and cancels its offers that have not ended.
    pub async fn end_stream(&self, seller: &SellerId, id: &StreamId) -> Result<Stream> {
        let stream = self.move_stream(seller, id, StreamState::end).await?;
        for offer in self.store.open_offers_of_stream(id).await? {
            self.end_offer(&offer, offer.state, EndReason::Cancelled).await?;
        }
        Ok(stream)
    }

    /// Tells everyone watching a stream something (`message` event): the
    /// streamer's note, e.g. "next drop in five minutes".
    pub async fn post_message(&self, seller: &SellerId, id: &StreamId, message: &str) -> Result<()> {
        let text = text("text", message, 1, 500)?;
        let stream = self.owned_stream(seller, id).await?;
        if stream.state == StreamState::Ended {
            return Err(IllegalTransition {
                code: "stream_ended",
                message: "the stream has ended".into(),
            }
            .into());
        }
        self.events.publish(
            id,
            StreamEvent::Message {
                stream_id: id.clone(),
                text,
            },
        );
        Ok(())
    }

    // ----- lots ----------------------------------------------------------

    pub async fn add_lot(&self, seller: &SellerId, stream_id: &StreamId, new: NewLot) -> Result<Lot> {
        let stream = self.owned_stream(seller, stream_id).await?;
        stream.state.allows_editing()?;
        let now = self.now();
        let lot = Lot {
            id: LotId::generate(),
            stream_id: stream.id,
            seller_id: seller.clone(),
            title: text("title", &new.title, 1, 200)?,
            description: text("description", &new.description, 0, 5000)?,
            image_url: image_url(new.image_url.as_deref())?,
            terms: check_terms(new.terms())?,
            created_at: now,
            updated_at: now,
            archived_at: None,
        };
        self.store.insert_lot(&lot).await?;
        Ok(lot)
    }

    pub async fn lot(&self, seller: &SellerId, id: &LotId) -> Result<Lot> {
        self.owned_lot(seller, id).await
    }

    /// A stream's lots, oldest first (archived ones too when `archived`).
    pub async fn lots(&self, seller: &SellerId, stream_id: &StreamId, archived: bool) -> Result<Vec<Lot>> {
        self.owned_stream(seller, stream_id).await?;
        Ok(self.store.lots_of_stream(stream_id, archived).await?)
    }

    pub async fn update_lot(&self, seller: &SellerId, id: &LotId, patch: LotPatch) -> Result<Lot> {
        let mut lot = self.owned_lot(seller, id).await?;
        not_archived(&lot)?;
        let stream = self.owned_stream(seller, &lot.stream_id).await?;
        stream.state.allows_editing()?;
        if let Some(t) = &patch.title {
            lot.title = text("title", t, 1, 200)?;
        }
        if let Some(d) = &patch.description {
            lot.description = text("description", d, 0, 5000)?;
        }
        if let Some(url) = &patch.image_url {
            lot.image_url = image_url(url.as_deref())?;
        }
        let mut terms = lot.terms.clone();
        if let Some(v) = patch.price_minor {
            terms.price_minor = v;
        }
        if let Some(v) = &patch.currency {
            terms.currency = v.clone();
        }
        if let Some(v) = patch.quantity {
            terms.quantity = v;
        }
        if let Some(v) = patch.per_buyer_limit {
            terms.per_buyer_limit = v;
        }
        if let Some(v) = patch.duration_seconds {
            terms.duration_seconds = v;
        }
        if let Some(v) = &patch.sku {
            terms.sku = v.clone();
        }
        lot.terms = check_terms(terms)?;
        lot.updated_at = self.now();
        self.store.update_lot(&lot).await?;
        if stream.pinned_lot_id.as_ref() == Some(&lot.id) {
            self.events.publish(
                &lot.stream_id,
                StreamEvent::LotPinned {
                    lot: LotView::from(&lot),
                },
            );
        }
        Ok(lot)
    }

    /// Pins a lot on its stream (replacing the pinned one, if any).
    pub async fn pin_lot(&self, seller: &SellerId, id: &LotId) -> Result<Stream> {
        let lot = self.owned_lot(seller, id).await?;
        not_archived(&lot)?;
        let stream = self.owned_stream(seller, &lot.stream_id).await?;
        stream.state.allows_editing()?;
        if !self.store.set_pinned_lot(&stream.id, Some(id)).await? {
            // The stream ended between the read and the write.
            StreamState::Ended.allows_editing()?;
        }
        self.events.publish(
            &stream.id,
            StreamEvent::LotPinned {
                lot: LotView::from(&lot),
            },
        );
        self.owned_stream(seller, &stream.id).await
    }

    /// Unpins whatever lot is pinned on the stream.
    pub async fn unpin_lot(&self, seller: &SellerId, stream_id: &StreamId) -> Result<Stream> {
        let stream = self.owned_stream(seller, stream_id).await?;
        stream.state.allows_editing()?;
        if let Some(lot_id) = stream.pinned_lot_id {
            self.store.set_pinned_lot(stream_id, None).await?;
            self.events.publish(stream_id, StreamEvent::LotUnpinned { lot_id });
        }
        self.owned_stream(seller, stream_id).await
    }

    // ----- offers --------------------------------------------------------

    pub async fn create_offer(&self, seller: &SellerId, new: NewOffer) -> Result<Offer> {
        let lot = self.owned_lot(seller, &new.lot_id).await?;
        not_archived(&lot)?;
        let stream = self.owned_stream(seller, &lot.stream_id).await?;
        stream.state.allows_editing()?;
        let currency = Currency::parse(&new.currency).map_err(|e| invalid("currency", e.to_string()))?;
        let price = Money::new(new.price_minor, currency).map_err(|e| invalid("price_minor", e.to_string()))?;
        if !(1..=MAX_QUANTITY).contains(&new.quantity) {
            return Err(invalid("quantity", format!("must be from 1 to {MAX_QUANTITY}")));
        }
        let per_buyer_limit = new.per_buyer_limit.unwrap_or(new.quantity);
        if !(1..=new.quantity).contains(&per_buyer_limit) {
            return Err(invalid("per_buyer_limit", "must be from 1 to the offer's quantity"));
        }
        let hold_ttl_ms = new.hold_ttl_ms.unwrap_or(10 * 60 * 1000);
        if !(MIN_HOLD_TTL_MS..=MAX_HOLD_TTL_MS).contains(&hold_ttl_ms) {
            return Err(invalid(
                "hold_ttl_seconds",
                format!("must be from {} to {}", MIN_HOLD_TTL_MS / 1000, MAX_HOLD_TTL_MS / 1000),
            ));
        }
        let now = self.now();
        let (duration_ms, end_at_requested) = match new.end {
            OfferEnd::AfterMs(ms) if (1000..=MAX_OFFER_DURATION_MS).contains(&ms) => (Some(ms), None),
            OfferEnd::AfterMs(_) => {
                return Err(invalid(
                    "duration_seconds",
                    format!("must be from 1 to {}", MAX_OFFER_DURATION_MS / 1000),
                ))
            }
            OfferEnd::At(at) if at > now && at - now <= MAX_OFFER_DURATION_MS => (None, Some(at)),
            OfferEnd::At(_) => return Err(invalid("ends_at", "must be in the future, at most 7 days ahead")),
        };
        let start_at = check_start_at(new.start_at, now)?;
        if let (Some(start), Some(end)) = (start_at, end_at_requested) {
            if end <= start {
                return Err(invalid("ends_at", "must be after start_at"));
            }
        }
        let offer = Offer {
            id: OfferId::generate(),
            lot_id: lot.id,
            stream_id: stream.id,
            seller_id: seller.clone(),
            price_minor: price.amount_minor,
            currency: price.currency,
            quantity: new.quantity,
            per_buyer_limit,
            duration_ms,
            end_at_requested,
            hold_ttl_ms,
            state: OfferState::Draft,
            end_reason: None,
            created_at: now,
            started_at: None,
            ends_at: None,
            ended_at: None,
            start_at,
            end_note: None,
        };
        self.store.insert_offer(&offer).await?;
        if start_at.is_some() {
            self.timer_wake.notify_one();
        }
        Ok(offer)
    }

    pub async fn offer(&self, seller: &SellerId, id: &OfferId) -> Result<Offer> {
        self.owned_offer(seller, id).await
    }

    pub async fn offers(&self, seller: &SellerId, stream_id: &StreamId) -> Result<Vec<Offer>> {
        self.owned_stream(seller, stream_id).await?;
        Ok(self.store.offers_of_stream(stream_id).await?)
    }

    /// Starts a draft offer: it goes live, its stock is loaded into the engine
    /// and viewers are told.
    pub async fn start_offer(&self, seller: &SellerId, id: &OfferId) -> Result<Offer> {
        let offer = self.owned_offer(seller, id).await?;
        let stream = self.owned_stream(seller, &offer.stream_id).await?;
        let lot = self.owned_lot(seller, &offer.lot_id).await?;
        not_archived(&lot)?;
        self.start_now(offer, stream.state).await
    }

    /// Starts a draft offer now (the seller's tap, or its scheduled time).
    pub(super) async fn start_now(&self, offer: Offer, stream: StreamState) -> Result<Offer> {
        let (seller, id) = (&offer.seller_id, &offer.id);
        offer.state.start(stream)?;
        let now = self.now();
        let ends_at = match (offer.duration_ms, offer.end_at_requested) {
            (Some(ms), _) => now + ms,
            (None, Some(at)) if at > now => at,
            _ => {
                return Err(IllegalTransition {
                    code: "offer_end_passed",
                    message: "the offer's end time has already passed".into(),
                }
                .into())
            }
        };
        match self.store.start_offer(id, now, ends_at).await {
            Ok(true) => {}
            // Raced with a cancel or another start: report what it is now.
            Ok(false) => {
                let current = self.owned_offer(seller, id).await?;
                return Err(match current.state.start(StreamState::Live) {
                    Err(e) => e.into(),
                    Ok(_) => IllegalTransition {
                        code: "offer_changed",
                        message: "the offer changed while starting it; try again".into(),
                    }
                    .into(),
                });
            }
            Err(crate::store::StoreError::Db(sqlx::Error::Database(e))) if e.is_unique_violation() => {
                return Err(IllegalTransition {
                    code: "lot_has_live_offer",
                    message: "this lot already has a live offer".into(),
                }
                .into())
            }
            Err(e) => return Err(e.into()),
        }
        let offer = self.owned_offer(seller, id).await?;
        let stock = OfferStock {
            offer: offer.id.clone(),
            quantity: offer.quantity,
            per_buyer_limit: offer.per_buyer_limit,
            starts_at: now,
            ends_at,
            sold: Vec::new(),
        };
        // If this fails the offer is live without stock in the engine; the first
        // reserve finds it not loaded and loads it from the store.
        if let Err(e) = self.inventory.load(&stock).await {
            tracing::warn!(offer = %offer.id, error = %e, "could not load a started offer into the stock engine");
        }
        self.events.publish(
            &offer.stream_id,
            StreamEvent::OfferStarted {
                offer_id: offer.id.clone(),
                lot_id: offer.lot_id.clone(),
                price_minor: offer.price_minor,
                currency: offer.currency,
                quantity: offer.quantity,
                per_buyer_limit: offer.per_buyer_limit,
                ends_at,
                units_left: offer.quantity,
            },
        );
        self.timer_wake.notify_one();
        Ok(offer)
    }

    /// Cancels a draft or live offer.
    pub async fn cancel_offer(&self, seller: &SellerId, id: &OfferId) -> Result<Offer> {
        loop {
            let offer = self.owned_offer(seller, id).await?;
            offer.state.cancel()?;
            if self.end_offer(&offer, offer.state, EndReason::Cancelled).await? {
                return self.owned_offer(seller, id).await;
            }
        }
    }

    /// Ends `offer` if it is still in `from`; closes its stock and tells
    /// viewers. Returns false when someone else ended it first.
    pub(crate) async fn end_offer(&self, offer: &Offer, from: OfferState, reason: EndReason) -> Result<bool> {
        self.end_offer_noted(offer, from, reason, None).await
    }

    /// [`Self::end_offer`] with the seller's word to viewers.
    pub(crate) async fn end_offer_noted(
        &self,
        offer: &Offer,
        from: OfferState,
        reason: EndReason,
        note: Option<&str>,
    ) -> Result<bool> {
        let now = self.now();
        if !self.store.end_offer(&offer.id, from, reason, now, note).await? {
            return Ok(false);
        }
        let mut ended = offer.clone();
        ended.end_note = note.map(str::to_owned);
        self.after_offer_ended(&ended, reason).await;
        Ok(true)
    }

    /// What follows an offer's end, on the one node that ended it.
    pub(crate) async fn after_offer_ended(&self, offer: &Offer, reason: EndReason) {
        if offer.state == OfferState::Live || offer.started_at.is_some() {
            if let Err(e) = self
                .inventory
                .close(&offer.id, self.now(), self.settings.retain_ended_ms)
                .await
            {
                // The sweeper retries until the engine answers; until then the
                // engine is unreachable and refuses every reserve anyway.
                tracing::warn!(offer = %offer.id, error = %e, "could not close an ended offer in the stock engine");
                self.lock_pending_close().push(offer.id.clone());
            }
        }
        self.events.publish(
            &offer.stream_id,
            StreamEvent::OfferEnded {
                offer_id: offer.id.clone(),
                reason,
                note: offer.end_note.clone(),
            },
        );
        // A scheduled offer may have waited for this one's lot.
        self.timer_wake.notify_one();
    }
}
