//! Durable records of streams, lots, offers and sales, through sqlx's `Any`
//! driver so one set of SQL serves SQLite and PostgreSQL.
//!
//! Lifecycle changes are compare-and-set updates (`… WHERE state = $old`): the
//! caller reads the row, asks the state machine in [`crate::model`] for the
//! next state, and writes it only if nobody moved the row meanwhile. That is
//! atomic on both databases without long transactions, and it is what makes an
//! offer's end fire exactly once when several nodes race for it.

use std::collections::HashMap;

use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};

use crate::clock::Millis;
use crate::ids::{BuyerId, HoldId, LotId, OfferId, SellerId, StreamId};
use crate::model::{EndReason, Lot, Offer, OfferState, Stream, StreamState};
use crate::money::Currency;

/// A failure of the durable store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error")]
    Db(#[from] sqlx::Error),
    /// A stored value Haul could not have written (hand-edited rows, a bad migration).
    #[error("corrupt stored value in {column}: {value:?}")]
    Corrupt { column: &'static str, value: String },
}

type Result<T> = std::result::Result<T, StoreError>;

fn corrupt(column: &'static str, value: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        column,
        value: value.into(),
    }
}

fn parse_id<T, E>(row: &AnyRow, column: &'static str, parse: impl Fn(&str) -> std::result::Result<T, E>) -> Result<T> {
    let s: String = row.try_get(column)?;
    parse(&s).map_err(|_| corrupt(column, s))
}

fn parse_opt_id<T, E>(
    row: &AnyRow,
    column: &'static str,
    parse: impl Fn(&str) -> std::result::Result<T, E>,
) -> Result<Option<T>> {
    let s: Option<String> = row.try_get(column)?;
    s.map(|s| parse(&s).map_err(|_| corrupt(column, s))).transpose()
}

fn stream_from_row(row: &AnyRow) -> Result<Stream> {
    let state: String = row.try_get("state")?;
    Ok(Stream {
        id: parse_id(row, "id", StreamId::parse)?,
        seller_id: parse_id(row, "seller_id", SellerId::parse)?,
        title: row.try_get("title")?,
        state: StreamState::from_db(&state).ok_or_else(|| corrupt("streams.state", state))?,
        pinned_lot_id: parse_opt_id(row, "pinned_lot_id", LotId::parse)?,
        created_at: row.try_get("created_at")?,
        live_at: row.try_get("live_at")?,
        ended_at: row.try_get("ended_at")?,
    })
}

/// A lot's terms as stored: JSON, or NULL when it has none.
fn terms_json(terms: &crate::model::LotTerms) -> Option<String> {
    (*terms != crate::model::LotTerms::default())
        .then(|| serde_json::to_string(terms).ok())
        .flatten()
}

fn lot_from_row(row: &AnyRow) -> Result<Lot> {
    Ok(Lot {
        id: parse_id(row, "id", LotId::parse)?,
        stream_id: parse_id(row, "stream_id", StreamId::parse)?,
        seller_id: parse_id(row, "seller_id", SellerId::parse)?,
        title: row.try_get("title")?,
        description: row.try_get("description")?,
        image_url: row.try_get("image_url")?,
        terms: row
            .try_get::<Option<String>, _>("terms")?
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default(),
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        archived_at: row.try_get("archived_at")?,
    })
}

fn offer_from_row(row: &AnyRow) -> Result<Offer> {
    let state: String = row.try_get("state")?;
    let reason: Option<String> = row.try_get("end_reason")?;
    let currency: String = row.try_get("currency")?;
    Ok(Offer {
        id: parse_id(row, "id", OfferId::parse)?,
        lot_id: parse_id(row, "lot_id", LotId::parse)?,
        stream_id: parse_id(row, "stream_id", StreamId::parse)?,
        seller_id: parse_id(row, "seller_id", SellerId::parse)?,
        price_minor: row.try_get("price_minor")?,
        currency: Currency::parse(&currency).map_err(|_| corrupt("offers.currency", currency))?,
        quantity: row.try_get("quantity")?,
        per_buyer_limit: row.try_get("per_buyer_limit")?,
        duration_ms: row.try_get("duration_ms")?,
        end_at_requested: row.try_get("end_at_requested")?,
        hold_ttl_ms: row.try_get("hold_ttl_ms")?,
        state: OfferState::from_db(&state).ok_or_else(|| corrupt("offers.state", state))?,
        end_reason: reason
            .map(|r| EndReason::from_db(&r).ok_or_else(|| corrupt("offers.end_reason", r)))
            .transpose()?,
        created_at: row.try_get("created_at")?,
        started_at: row.try_get("started_at")?,
        ends_at: row.try_get("ends_at")?,
        ended_at: row.try_get("ended_at")?,
        start_at: row.try_get("start_at")?,
        end_note: row.try_get("end_note")?,
    })
}

const STREAM_COLS: &str = "id, seller_id, title, state, pinned_lot_id, created_at, live_at, ended_at";
const LOT_COLS: &str =
    "id, stream_id, seller_id, title, description, image_url, terms, created_at, updated_at, archived_at";
const OFFER_COLS: &str = "id, lot_id, stream_id, seller_id, price_minor, currency, quantity, \
     per_buyer_limit, duration_ms, end_at_requested, hold_ttl_ms, state, end_reason, created_at, \
     started_at, ends_at, ended_at, start_at, end_note";

/// A page of a listing, newest first.
#[derive(Debug, Clone, Copy)]
pub struct Page {
    pub limit: i64,
    /// Only items created strictly before this time (the previous page's last `created_at`).
    pub before: Option<Millis>,
}

/// A live offer's terms a seller may change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LiveTerms {
    pub quantity: i64,
    pub per_buyer_limit: i64,
    pub ends_at: Millis,
}

/// One buyer's sold units in an offer: the durable side of a per-buyer limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuyerSold {
    pub buyer: BuyerId,
    pub units: i64,
}

/// The durable store of the streams domain.
#[derive(Debug, Clone)]
pub struct StreamStore {
    pool: AnyPool,
}

impl StreamStore {
    pub fn new(pool: AnyPool) -> Self {
        Self { pool }
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    // ----- streams -------------------------------------------------------

    #[tracing::instrument(skip(self, stream), fields(stream = %stream.id))]
    pub async fn insert_stream(&self, stream: &Stream) -> Result<()> {
        sqlx::query(
            "INSERT INTO streams (id, seller_id, title, state, pinned_lot_id, created_at, live_at, ended_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(stream.id.as_str())
        .bind(stream.seller_id.as_str())
        .bind(&stream.title)
        .bind(stream.state.as_str())
        .bind(stream.pinned_lot_id.as_ref().map(|l| l.as_str().to_owned()))
        .bind(stream.created_at)
        .bind(stream.live_at)
        .bind(stream.ended_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// A stream, whoever owns it (the caller checks ownership).
    pub async fn stream(&self, id: &StreamId) -> Result<Option<Stream>> {
        let sql = format!("SELECT {STREAM_COLS} FROM streams WHERE id = $1");
        let row = sqlx::query(&sql).bind(id.as_str()).fetch_optional(&self.pool).await?;
        row.as_ref().map(stream_from_row).transpose()
    }

    pub async fn list_streams(&self, seller: &SellerId, page: Page) -> Result<Vec<Stream>> {
        let sql = format!(
            "SELECT {STREAM_COLS} FROM streams WHERE seller_id = $1 AND created_at < $2 \
             ORDER BY created_at DESC, id DESC LIMIT $3"
        );
        let rows = sqlx::query(&sql)
            .bind(seller.as_str())
            .bind(page.before.unwrap_or(i64::MAX))
            .bind(page.limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(stream_from_row).collect()
    }

    /// Moves a stream from `from` to `to`, stamping `live_at` or `ended_at`.
    /// Returns false when the stream was no longer in `from`.
    pub async fn set_stream_state(
        &self,
        id: &StreamId,
        from: StreamState,
        to: StreamState,
        now: Millis,
    ) -> Result<bool> {
        let column = match to {
            StreamState::Live => "live_at",
            StreamState::Ended => "ended_at",
            StreamState::Scheduled => "created_at",
        };
        let sql = format!("UPDATE streams SET state = $1, {column} = $2 WHERE id = $3 AND state = $4");
        let done = sqlx::query(&sql)
            .bind(to.as_str())
            .bind(now)
            .bind(id.as_str())
            .bind(from.as_str())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Pins `lot` (or unpins, with `None`) on a stream that has not ended.
    /// Returns false when the stream has ended meanwhile.
    pub async fn set_pinned_lot(&self, id: &StreamId, lot: Option<&LotId>) -> Result<bool> {
        let done = sqlx::query("UPDATE streams SET pinned_lot_id = $1 WHERE id = $2 AND state <> 'ended'")
            .bind(lot.map(|l| l.as_str().to_owned()))
            .bind(id.as_str())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    // ----- lots ----------------------------------------------------------

    pub async fn insert_lot(&self, lot: &Lot) -> Result<()> {
        sqlx::query(
            "INSERT INTO lots (id, stream_id, seller_id, title, description, image_url, terms, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(lot.id.as_str())
        .bind(lot.stream_id.as_str())
        .bind(lot.seller_id.as_str())
        .bind(&lot.title)
        .bind(&lot.description)
        .bind(lot.image_url.clone())
        .bind(terms_json(&lot.terms))
        .bind(lot.created_at)
        .bind(lot.updated_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn lot(&self, id: &LotId) -> Result<Option<Lot>> {
        let sql = format!("SELECT {LOT_COLS} FROM lots WHERE id = $1");
        let row = sqlx::query(&sql).bind(id.as_str()).fetch_optional(&self.pool).await?;
        row.as_ref().map(lot_from_row).transpose()
    }

    /// A stream's lots, oldest first; archived ones only when asked.
    pub async fn lots_of_stream(&self, stream: &StreamId, archived: bool) -> Result<Vec<Lot>> {
        let which = if archived { "" } else { " AND archived_at IS NULL" };
        let sql = format!("SELECT {LOT_COLS} FROM lots WHERE stream_id = $1{which} ORDER BY created_at, id");
        let rows = sqlx::query(&sql).bind(stream.as_str()).fetch_all(&self.pool).await?;
        rows.iter().map(lot_from_row).collect()
    }

    /// Archives a lot (once; false when it was already).
    pub async fn archive_lot(&self, id: &LotId, now: Millis) -> Result<bool> {
        let done =
            sqlx::query("UPDATE lots SET archived_at = $1, updated_at = $1 WHERE id = $2 AND archived_at IS NULL")
                .bind(now)
                .bind(id.as_str())
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Deletes a lot that was never offered; false when it has offers (it
    /// is kept for them: archive it instead).
    pub async fn delete_lot(&self, id: &LotId) -> Result<bool> {
        let done =
            sqlx::query("DELETE FROM lots WHERE id = $1 AND NOT EXISTS (SELECT 1 FROM offers WHERE lot_id = $1)")
                .bind(id.as_str())
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn update_lot(&self, lot: &Lot) -> Result<()> {
        sqlx::query(
            "UPDATE lots SET title = $1, description = $2, image_url = $3, terms = $4, updated_at = $5 WHERE id = $6",
        )
        .bind(&lot.title)
        .bind(&lot.description)
        .bind(lot.image_url.clone())
        .bind(terms_json(&lot.terms))
        .bind(lot.updated_at)
        .bind(lot.id.as_str())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    // ----- offers --------------------------------------------------------

    pub async fn insert_offer(&self, offer: &Offer) -> Result<()> {
        sqlx::query(
            "INSERT INTO offers (id, lot_id, stream_id, seller_id, price_minor, currency, quantity, \
             per_buyer_limit, duration_ms, end_at_requested, hold_ttl_ms, state, end_reason, created_at, \
             started_at, ends_at, ended_at, start_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)",
        )
        .bind(offer.id.as_str())
        .bind(offer.lot_id.as_str())
        .bind(offer.stream_id.as_str())
        .bind(offer.seller_id.as_str())
        .bind(offer.price_minor)
        .bind(offer.currency.code())
        .bind(offer.quantity)
        .bind(offer.per_buyer_limit)
        .bind(offer.duration_ms)
        .bind(offer.end_at_requested)
        .bind(offer.hold_ttl_ms)
        .bind(offer.state.as_str())
        .bind(offer.end_reason.map(|r| r.as_str()))
        .bind(offer.created_at)
        .bind(offer.started_at)
        .bind(offer.ends_at)
        .bind(offer.ended_at)
        .bind(offer.start_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Writes a draft offer's terms (price, quantity, limit, duration or
    /// end, hold time, scheduled start); false when it is no longer a draft.
    pub async fn update_draft_offer(&self, offer: &Offer) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE offers SET price_minor = $1, quantity = $2, per_buyer_limit = $3, duration_ms = $4, \
             end_at_requested = $5, hold_ttl_ms = $6, start_at = $7 WHERE id = $8 AND state = 'draft'",
        )
        .bind(offer.price_minor)
        .bind(offer.quantity)
        .bind(offer.per_buyer_limit)
        .bind(offer.duration_ms)
        .bind(offer.end_at_requested)
        .bind(offer.hold_ttl_ms)
        .bind(offer.start_at)
        .bind(offer.id.as_str())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Changes a live offer's quantity, limit and end from `old` to `new`
    /// (compare-and-set: false when it ended or another change came first).
    pub async fn update_live_terms(&self, id: &OfferId, old: LiveTerms, new: LiveTerms) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE offers SET quantity = $1, per_buyer_limit = $2, ends_at = $3 WHERE id = $4 AND state = 'live' \
             AND quantity = $5 AND per_buyer_limit = $6 AND ends_at = $7",
        )
        .bind(new.quantity)
        .bind(new.per_buyer_limit)
        .bind(new.ends_at)
        .bind(id.as_str())
        .bind(old.quantity)
        .bind(old.per_buyer_limit)
        .bind(old.ends_at)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Draft offers due to start by themselves: scheduled at or before
    /// `now`, on a live stream, on a lot with no live offer; earliest first.
    pub async fn due_scheduled_offers(&self, now: Millis, limit: i64) -> Result<Vec<Offer>> {
        let cols = OFFER_COLS
            .split(", ")
            .map(|c| format!("o.{}", c.trim()))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "SELECT {cols} FROM offers o JOIN streams s ON s.id = o.stream_id \
             WHERE o.state = 'draft' AND o.start_at IS NOT NULL AND o.start_at <= $1 AND s.state = 'live' \
             AND NOT EXISTS (SELECT 1 FROM offers l WHERE l.lot_id = o.lot_id AND l.state = 'live') \
             ORDER BY o.start_at, o.created_at, o.id LIMIT $2"
        );
        let rows = sqlx::query(&sql).bind(now).bind(limit).fetch_all(&self.pool).await?;
        rows.iter().map(offer_from_row).collect()
    }

    /// The earliest scheduled start after `now` among drafts on live
    /// streams (those already due wait for their lot's live offer to end).
    pub async fn next_scheduled_start(&self, now: Millis) -> Result<Option<Millis>> {
        let row = sqlx::query(
            "SELECT MIN(o.start_at) AS next FROM offers o JOIN streams s ON s.id = o.stream_id \
             WHERE o.state = 'draft' AND o.start_at > $1 AND s.state = 'live'",
        )
        .bind(now)
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get("next")?)
    }

    pub async fn offer(&self, id: &OfferId) -> Result<Option<Offer>> {
        let sql = format!("SELECT {OFFER_COLS} FROM offers WHERE id = $1");
        let row = sqlx::query(&sql).bind(id.as_str()).fetch_optional(&self.pool).await?;
        row.as_ref().map(offer_from_row).transpose()
    }

    pub async fn offers_of_stream(&self, stream: &StreamId) -> Result<Vec<Offer>> {
        let sql = format!("SELECT {OFFER_COLS} FROM offers WHERE stream_id = $1 ORDER BY created_at, id");
        let rows = sqlx::query(&sql).bind(stream.as_str()).fetch_all(&self.pool).await?;
        rows.iter().map(offer_from_row).collect()
    }

    /// `draft → live` with its start and end times. Returns false when the
    /// offer was no longer a draft. A unique violation means the lot already
    /// has a live offer.
    pub async fn start_offer(&self, id: &OfferId, started_at: Millis, ends_at: Millis) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE offers SET state = 'live', started_at = $1, ends_at = $2 WHERE id = $3 AND state = 'draft'",
        )
        .bind(started_at)
        .bind(ends_at)
        .bind(id.as_str())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Ends an offer that is still in `from`. Returns false when another caller
    /// (another node's timer, a concurrent cancel) got there first: exactly
    /// one caller ever sees true for a given offer.
    pub async fn end_offer(
        &self,
        id: &OfferId,
        from: OfferState,
        reason: EndReason,
        now: Millis,
        note: Option<&str>,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE offers SET state = 'ended', end_reason = $1, ended_at = $2, end_note = $5 \
             WHERE id = $3 AND state = $4",
        )
        .bind(reason.as_str())
        .bind(now)
        .bind(id.as_str())
        .bind(from.as_str())
        .bind(note.map(str::to_owned))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Ends every live offer whose end time has come, and returns exactly the
    /// offers this call ended (rows another node ended are not returned).
    pub async fn end_due_offers(&self, now: Millis) -> Result<Vec<Offer>> {
        let sql = format!(
            "UPDATE offers SET state = 'ended', end_reason = 'time', ended_at = $1 \
             WHERE state = 'live' AND ends_at <= $1 RETURNING {OFFER_COLS}"
        );
        let rows = sqlx::query(&sql).bind(now).fetch_all(&self.pool).await?;
        rows.iter().map(offer_from_row).collect()
    }

    /// The earliest end time among live offers, to sleep exactly until it.
    pub async fn next_offer_end(&self) -> Result<Option<Millis>> {
        let row = sqlx::query("SELECT MIN(ends_at) AS next FROM offers WHERE state = 'live'")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get("next")?)
    }

    /// Offers of a stream that are not ended (what ending the stream cancels).
    pub async fn open_offers_of_stream(&self, stream: &StreamId) -> Result<Vec<Offer>> {
        let sql =
            format!("SELECT {OFFER_COLS} FROM offers WHERE stream_id = $1 AND state <> 'ended' ORDER BY created_at");
        let rows = sqlx::query(&sql).bind(stream.as_str()).fetch_all(&self.pool).await?;
        rows.iter().map(offer_from_row).collect()
    }

    /// Every live offer (to rebuild the stock engine after it lost its state).
    pub async fn live_offers(&self) -> Result<Vec<Offer>> {
        let sql = format!("SELECT {OFFER_COLS} FROM offers WHERE state = 'live'");
        let rows = sqlx::query(&sql).fetch_all(&self.pool).await?;
        rows.iter().map(offer_from_row).collect()
    }

    // ----- sales ---------------------------------------------------------

    /// Records a committed hold. Idempotent per hold: returns false when the
    /// sale was already recorded.
    pub async fn insert_sale(
        &self,
        hold: &HoldId,
        offer: &OfferId,
        buyer: &BuyerId,
        quantity: i64,
        now: Millis,
    ) -> Result<bool> {
        let done = sqlx::query(
            "INSERT INTO sales (hold_id, offer_id, buyer_id, quantity, committed_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (hold_id) DO NOTHING",
        )
        .bind(hold.as_str())
        .bind(offer.as_str())
        .bind(buyer.as_str())
        .bind(quantity)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Removes a sale whose hold could not be committed in the stock engine.
    pub async fn delete_sale(&self, hold: &HoldId) -> Result<()> {
        sqlx::query("DELETE FROM sales WHERE hold_id = $1")
            .bind(hold.as_str())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// When each of these holds was recorded as sold, for those that were.
    pub async fn sale_times(&self, holds: &[HoldId]) -> Result<HashMap<HoldId, Millis>> {
        let mut out = HashMap::new();
        for chunk in holds.chunks(500) {
            let marks: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
            let sql = format!(
                "SELECT hold_id, committed_at FROM sales WHERE hold_id IN ({})",
                marks.join(", ")
            );
            let mut q = sqlx::query(&sql);
            for h in chunk {
                q = q.bind(h.as_str());
            }
            for r in q.fetch_all(&self.pool).await? {
                out.insert(parse_id(&r, "hold_id", HoldId::parse)?, r.try_get("committed_at")?);
            }
        }
        Ok(out)
    }

    /// Units sold in an offer, per buyer.
    pub async fn sold_by_buyer(&self, offer: &OfferId) -> Result<Vec<BuyerSold>> {
        let rows = sqlx::query(
            "SELECT buyer_id, CAST(SUM(quantity) AS BIGINT) AS units FROM sales WHERE offer_id = $1 \
             GROUP BY buyer_id ORDER BY buyer_id",
        )
        .bind(offer.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(BuyerSold {
                    buyer: parse_id(r, "buyer_id", BuyerId::parse)?,
                    units: r.try_get("units")?,
                })
            })
            .collect()
    }

    /// Is the store reachable?
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}
