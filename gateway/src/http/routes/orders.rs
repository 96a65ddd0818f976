//! Orders for stream purchases: a viewer's hold becomes an order (one per
//! hold), a payment attempt starts at an acquirer, and a seller refunds.
//! What happens to money and stock is the payments service's.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use payments::fulfilment::Fulfilment;
use payments::ids::OrderId;
use payments::orderbook::{csv_line, Cursor, Entry, Filter, CSV_HEADER};
use payments::state::OrderState;
use payments::store::{NewOrder, Order};
use serde::Deserialize;
use serde_json::{json, Value};
use streams::ids::{HoldId, OfferId, SellerId};

use crate::http::error::ApiError;
use crate::http::extract::{id, Caller, Json, Seller, Viewer};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/offers/{id}/holds/{hold}/order", post(order_for_hold))
        .route("/v1/orders", get(list))
        .route("/v1/viewer/orders", get(my_orders))
        .route("/v1/orders/export.csv", get(export))
        .route("/v1/orders/{id}", get(get_order))
        .route("/v1/orders/{id}/refunds", post(refund))
        .route("/v1/orders/{id}/attempts", post(start_attempt))
}

type Answer = Result<(StatusCode, axum::Json<Value>), ApiError>;

fn unavailable(e: impl std::error::Error + Send + Sync + 'static) -> ApiError {
    ApiError::Unavailable(Box::new(e))
}

async fn view(s: &AppState, order: &Order) -> Result<Value, ApiError> {
    let attempts = s.payments.store().attempts(&order.id).await.map_err(unavailable)?;
    let live = s.payments.livemode(&order.seller_id).await?;
    Ok(json!({
        "id": order.id,
        "livemode": live,
        "state": order.state,
        "amount_minor": order.amount_minor,
        "currency": order.currency,
        "hold_id": order.hold_id,
        "offer_id": order.offer_id,
        "attempts": attempts.iter().map(|a| json!({
            "id": a.id, "acquirer": a.acquirer, "state": a.state,
            "created_at": a.created_at,
            // Succeeded after another attempt had paid: refunded by Haul.
            "duplicate": a.duplicate,
        })).collect::<Vec<_>>(),
        "created_at": order.created_at,
    }))
}

/// The order of a hold (made on first call; the same order after), with
/// the checkout page that pays it; the buyer returns to the stream.
async fn order_for_hold(
    State(s): State<AppState>,
    Viewer(buyer): Viewer,
    Path((raw_offer, raw_hold)): Path<(String, String)>,
) -> Answer {
    let offer = id(&raw_offer, OfferId::parse)?;
    let hold = id(&raw_hold, HoldId::parse)?;
    let terms = s.streams.purchase_terms(&buyer, &offer, &hold).await?;
    let new = NewOrder {
        seller_id: terms.seller_id.to_string(),
        amount_minor: terms.amount_minor,
        currency: terms.currency.code().to_owned(),
        hold_id: Some(hold.to_string()),
        offer_id: Some(offer.to_string()),
        buyer_id: Some(buyer.to_string()),
        reference: None,
    };
    let item = payments::checkout::Item {
        name: terms.title.chars().take(128).collect(),
        quantity: terms.hold.quantity,
        price_minor: terms.unit_price_minor,
        vat: "none".into(),
        payment_method: "full_payment".into(),
        payment_object: "commodity".into(),
    };
    let back = format!("{}/watch/{}", s.public_url, terms.stream_id);
    let made = s
        .payments
        .stream_order(&new, item, terms.stream_id.as_str(), &back, terms.hold.expires_at)
        .await?;
    let status = if made.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let mut v = view(&s, &made.order).await?;
    v["checkout_session"] = json!(made.session);
    v["checkout_url"] = json!(made.checkout_url);
    Ok((status, axum::Json(v)))
}

/// The order book's query: filters, page size and cursor.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct BookQuery {
    pub(super) limit: Option<i64>,
    /// `next_cursor` of the page before.
    pub(super) after: Option<String>,
    stream: Option<String>,
    offer: Option<String>,
    state: Option<String>,
    fulfilment: Option<String>,
    unconfirmed: Option<bool>,
    /// Created at or after, Unix ms.
    created_gte: Option<i64>,
    /// Created before, Unix ms.
    created_lt: Option<i64>,
    email: Option<String>,
    phone: Option<String>,
    reference: Option<String>,
}

/// Longest a text filter may be.
const MAX_FILTER_LEN: usize = 200;

impl BookQuery {
    pub(super) fn filter(&self) -> Result<Filter, ApiError> {
        let invalid = |field: &'static str, message: &str| ApiError::InvalidField {
            field,
            message: message.into(),
        };
        let text = |field: &'static str, v: &Option<String>| -> Result<Option<String>, ApiError> {
            match v.as_deref().map(str::trim) {
                None => Ok(None),
                Some("") => Err(invalid(field, "must not be empty")),
                Some(t) if t.len() > MAX_FILTER_LEN || t.chars().any(char::is_control) => Err(invalid(
                    field,
                    "must be at most 200 characters, none of them control characters",
                )),
                Some(t) => Ok(Some(t.to_owned())),
            }
        };
        let stream = text("stream", &self.stream)?;
        if let Some(v) = &stream {
            streams::ids::StreamId::parse(v).map_err(|_| invalid("stream", "not a stream id"))?;
        }
        let offer = text("offer", &self.offer)?;
        if let Some(v) = &offer {
            OfferId::parse(v).map_err(|_| invalid("offer", "not an offer id"))?;
        }
        let state = match text("state", &self.state)? {
            None => None,
            Some(v) => Some(OrderState::parse(&v).ok_or_else(|| {
                invalid(
                    "state",
                    "one of created, pending, requires_action, succeeded, failed, cancelled, expired, partially_refunded, refunded",
                )
            })?),
        };
        let fulfilment = match text("fulfilment", &self.fulfilment)? {
            None => None,
            Some(v) => Some(Fulfilment::parse(&v).ok_or_else(|| {
                invalid(
                    "fulfilment",
                    "one of new, confirmed, packed, shipped, delivered, cancelled, returned",
                )
            })?),
        };
        for (field, v) in [("created_gte", self.created_gte), ("created_lt", self.created_lt)] {
            if v.is_some_and(|t| t < 0) {
                return Err(invalid(field, "a time in Unix milliseconds"));
            }
        }
        Ok(Filter {
            stream,
            offer,
            state,
            fulfilment,
            unconfirmed: self.unconfirmed,
            movable_to: None,
            created_gte: self.created_gte,
            created_lt: self.created_lt,
            email: text("email", &self.email)?,
            phone: text("phone", &self.phone)?,
            reference: text("reference", &self.reference)?,
        })
    }

    fn after(&self) -> Result<Option<Cursor>, ApiError> {
        self.after
            .as_deref()
            .map(|c| {
                Cursor::parse(c).ok_or(ApiError::InvalidField {
                    field: "after",
                    message: "not a cursor this API gave".into(),
                })
            })
            .transpose()
    }
}

fn book_query(q: Result<Query<BookQuery>, QueryRejection>) -> Result<BookQuery, ApiError> {
    q.map(|Query(q)| q)
        .map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))
}

fn entry_view(e: &Entry, live: bool) -> Value {
    let o = &e.order;
    json!({
        "id": o.id, "livemode": live, "state": o.state, "amount_minor": o.amount_minor,
        "currency": o.currency, "refunded_minor": o.refunded_minor, "reference": o.reference,
        "stream_id": e.stream_id, "offer_id": o.offer_id, "hold_id": o.hold_id, "buyer_id": o.buyer_id,
        "customer_email": e.customer_email, "customer_phone": e.customer_phone,
        "fulfilment": o.fulfilment, "unconfirmed": is_unconfirmed(o),
        "carrier": o.carrier, "tracking_number": o.tracking_number,
        "created_at": o.created_at, "updated_at": o.updated_at,
    })
}

/// Flagged as not confirmed in the seller's time, and still not confirmed.
pub(super) fn is_unconfirmed(o: &Order) -> bool {
    o.unconfirmed_at.is_some() && o.fulfilment == Some(Fulfilment::New)
}

/// Cuts rows read one past `limit` to the page: whether more follow, and
/// the cursor of the next page.
fn one_page(rows: &mut Vec<Entry>, limit: i64) -> (bool, Option<String>) {
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let next = more.then(|| rows.last()).flatten().map(|e| Cursor::of(e).encode());
    (more, next)
}

/// The seller's order book: newest first, filtered, one page.
async fn list(
    State(s): State<AppState>,
    Seller(seller): Seller,
    q: Result<Query<BookQuery>, QueryRejection>,
) -> Answer {
    let q = book_query(q)?;
    let limit = q.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(ApiError::InvalidField {
            field: "limit",
            message: "must be from 1 to 200".into(),
        });
    }
    let (filter, after) = (q.filter()?, q.after()?);
    let live = s.payments.livemode(seller.as_str()).await?;
    // One more than asked tells whether another page follows.
    let mut rows = s
        .payments
        .order_book(seller.as_str(), &filter, after.as_ref(), limit + 1)
        .await?;
    let (more, next) = one_page(&mut rows, limit);
    let data: Vec<Value> = rows.iter().map(|e| entry_view(e, live)).collect();
    Ok((
        StatusCode::OK,
        axum::Json(json!({ "data": data, "has_more": more, "next_cursor": next })),
    ))
}

/// A viewer's own query: a stream, a page.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MineQuery {
    limit: Option<i64>,
    after: Option<String>,
    stream: Option<String>,
}

/// A viewer's own orders (this stream's, with `stream`), newest first:
/// state, amounts and refunds, nothing of anyone else's.
async fn my_orders(
    State(s): State<AppState>,
    Viewer(buyer): Viewer,
    q: Result<Query<MineQuery>, QueryRejection>,
) -> Answer {
    let Query(q) = q.map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))?;
    let limit = q.limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::InvalidField {
            field: "limit",
            message: "must be from 1 to 100".into(),
        });
    }
    let book = BookQuery {
        after: q.after,
        stream: q.stream,
        ..BookQuery::default()
    };
    let (filter, after) = (book.filter()?, book.after()?);
    let mut rows = s
        .payments
        .buyer_orders(buyer.as_str(), &filter, after.as_ref(), limit + 1)
        .await?;
    let (more, next) = one_page(&mut rows, limit);
    let mut data = Vec::with_capacity(rows.len());
    for e in &rows {
        let o = &e.order;
        let live = s.payments.livemode(&o.seller_id).await?;
        data.push(json!({
            "id": o.id, "livemode": live, "state": o.state, "amount_minor": o.amount_minor,
            "currency": o.currency, "refunded_minor": o.refunded_minor, "stream_id": e.stream_id,
            "offer_id": o.offer_id, "hold_id": o.hold_id, "created_at": o.created_at,
            "fulfilment": o.fulfilment,
            "shipment": o.tracking_number.as_ref().map(|t| json!({ "carrier": o.carrier, "tracking_number": t })),
        }));
    }
    // A signed-in viewer is one seller's, in one mode; an anonymous one's
    // orders say each their own.
    let live = data.iter().any(|d| d["livemode"] == true);
    Ok((
        StatusCode::OK,
        axum::Json(json!({ "data": data, "has_more": more, "next_cursor": next, "livemode": live })),
    ))
}

/// Rows per read of the export.
const EXPORT_PAGE: i64 = 500;

/// The same filter as CSV, streamed page by page (never the whole book in
/// memory). A read that fails midway ends the body with an error, so a
/// client never takes a cut file for a whole one.
async fn export(
    State(s): State<AppState>,
    Seller(seller): Seller,
    q: Result<Query<BookQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let q = book_query(q)?;
    if q.limit.is_some() || q.after.is_some() {
        return Err(ApiError::bad_request(
            "invalid_query",
            "the export takes filters only, no limit or cursor",
        ));
    }
    let filter = q.filter()?;
    // The first page is read before answering: a database that is away
    // gets a 503, not a broken download.
    let first = s
        .payments
        .order_book(seller.as_str(), &filter, None, EXPORT_PAGE)
        .await?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<String, std::io::Error>>(2);
    tokio::spawn(async move {
        let mut rows = first;
        let mut chunk = String::from(CSV_HEADER);
        loop {
            for e in &rows {
                chunk.push_str(&csv_line(e));
            }
            if tx.send(Ok(std::mem::take(&mut chunk))).await.is_err() || (rows.len() as i64) < EXPORT_PAGE {
                return;
            }
            let Some(after) = rows.last().map(Cursor::of) else {
                return;
            };
            rows = match s
                .payments
                .order_book(seller.as_str(), &filter, Some(&after), EXPORT_PAGE)
                .await
            {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(error = %e, "the order export stopped: a page could not be read");
                    let _ = tx
                        .send(Err(std::io::Error::other("the export could not be completed")))
                        .await;
                    return;
                }
            };
        }
    });
    let body = axum::body::Body::from_stream(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }));
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (header::CONTENT_DISPOSITION, "attachment; filename=\"orders.csv\""),
        ],
        body,
    )
        .into_response())
}

fn seller_id(o: &Order) -> Result<SellerId, ApiError> {
    SellerId::parse(&o.seller_id).map_err(ApiError::internal)
}

/// A buyer's own order (another's is not found).
async fn owned(s: &AppState, buyer: &streams::ids::BuyerId, raw: &str) -> Result<Order, ApiError> {
    let oid = id(raw, OrderId::parse)?;
    match s.payments.store().order(&oid).await.map_err(unavailable)? {
        Some(o) if o.buyer_id.as_deref() == Some(buyer.as_str()) => Ok(o),
        _ => Err(ApiError::NotFound("order")),
    }
}

/// A seller's own order (another's is not found).
async fn sellers(s: &AppState, seller: &SellerId, raw: &str) -> Result<Order, ApiError> {
    let oid = id(raw, OrderId::parse)?;
    match s.payments.store().order(&oid).await.map_err(unavailable)? {
        Some(o) if o.seller_id == seller.as_str() => Ok(o),
        _ => Err(ApiError::NotFound("order")),
    }
}

/// The buyer's or the seller's view of an order.
async fn get_order(State(s): State<AppState>, caller: Caller, Path(raw): Path<String>) -> Answer {
    let order = match &caller {
        Caller::Viewer(buyer) => owned(&s, buyer, &raw).await?,
        Caller::Seller(seller) => sellers(&s, seller, &raw).await?,
    };
    let seller_view = matches!(caller, Caller::Seller(_));
    let mut v = view(&s, &order).await?;
    v["refunded_minor"] = json!(order.refunded_minor);
    v["reference"] = json!(order.reference);
    let store = s.payments.store();
    let session = s.payments.session_of_order(order.id.as_str()).await?;
    v["items"] = json!(session.as_ref().map(|cs| &cs.items));
    // The checkout page of a paid order shows what was bought, paid and
    // refunded: the buyer's receipt page.
    v["receipt_url"] = json!(session
        .as_ref()
        .filter(|_| order.state.is_paid())
        .map(|cs| format!("{}/checkout/{}", s.public_url, cs.id)));
    let refunds = store.refunds_of(&order.id).await.map_err(unavailable)?;
    v["refunds"] = json!(refunds
        .iter()
        .map(
            |(r, kind)| json!({ "id": r.id, "attempt_id": r.attempt_id, "amount_minor": r.amount_minor,
                                "kind": kind, "reason": r.reason, "created_at": r.created_at })
        )
        .collect::<Vec<_>>());
    v["fulfilment"] = json!(order.fulfilment);
    v["shipment"] = json!(order.tracking_number.as_ref().map(|t| json!({
        "carrier": order.carrier, "tracking_number": t,
    })));
    if seller_view {
        v["fulfilment_at"] = json!(order.fulfilment_at);
        v["unconfirmed"] = json!(is_unconfirmed(&order));
        let settings = s.sellers.settings(&seller_id(&order)?).await.map_err(unavailable)?;
        v["confirm_by"] = json!(
            match (order.fulfilment, order.fulfilment_at, settings.confirm_within_minutes) {
                (Some(Fulfilment::New), Some(at), Some(m)) => Some(at + i64::from(m) * 60_000),
                _ => None,
            }
        );
        let moves = s.payments.fulfilment_moves(order.id.as_str()).await?;
        v["fulfilment_history"] = json!(moves
            .iter()
            .map(
                |m| json!({ "id": m.id, "from": m.from, "to": m.to, "actor": m.actor, "carrier": m.carrier,
                             "tracking_number": m.tracking_number, "note": m.note,
                             "refund_minor": m.refund_minor, "refund_id": m.refund_id, "at": m.at })
            )
            .collect::<Vec<_>>());
        let deliveries = s.payments.order_deliveries(&order.seller_id, order.id.as_str()).await?;
        v["webhook_deliveries"] = json!(deliveries);
        v["buyer_emails"] = json!(s.payments.order_emails(order.id.as_str()).await?);
        let buyer = session.as_ref().and_then(|cs| cs.buyer.as_ref());
        v["customer"] = json!({
            "name": buyer.and_then(|b| b.name.clone()),
            "email": session.as_ref().and_then(|cs| cs.customer_email.clone()),
            "phone": session.as_ref().and_then(|cs| cs.customer_phone.clone()),
        });
        v["delivery"] = json!(buyer.and_then(|b| b.delivery.as_ref()));
        v["shipping_address"] = json!(buyer.and_then(|b| b.address.as_ref()));
        v["delivery_minor"] = json!(order.delivery_minor);
        let history = store.transitions(&order.id).await.map_err(unavailable)?;
        v["history"] = json!(history
            .iter()
            .map(
                |t| json!({ "subject": t.subject, "attempt_id": t.attempt_id, "from": t.from, "to": t.to,
                            "cause": t.cause, "at": t.at })
            )
            .collect::<Vec<_>>());
    }
    Ok((StatusCode::OK, axum::Json(v)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewRefund {
    /// Omitted: all that is left.
    amount_minor: Option<i64>,
    #[serde(default)]
    reason: Option<String>,
}

async fn refund(
    State(s): State<AppState>,
    Seller(seller): Seller,
    Path(raw): Path<String>,
    headers: axum::http::HeaderMap,
    Json(body): Json<NewRefund>,
) -> Answer {
    let order = sellers(&s, &seller, &raw).await?;
    let reason = body.reason.unwrap_or_else(|| "requested by the seller".into());
    if reason.is_empty() || reason.chars().count() > 200 {
        return Err(ApiError::InvalidField {
            field: "reason",
            message: "1 to 200 characters".into(),
        });
    }
    // The seller's Idempotency-Key (the middleware lets one request per key
    // run at a time) makes the bank's key: a retry of a refund whose
    // recording failed asks the bank for the same refund. Without one, each
    // request is a refund of its own.
    let seller_key = headers.get("idempotency-key").and_then(|v| v.to_str().ok());
    let bank_key = payments::service::refund_key(order.id.as_str(), seller.as_str(), seller_key);
    let r = s.payments.refund(&order, body.amount_minor, &reason, &bank_key).await?;
    Ok((StatusCode::CREATED, axum::Json(json!(r))))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StartAttempt {
    acquirer: String,
}

/// Starts paying: a new attempt at the chosen acquirer; the hold is kept
/// for [`payments::service::PAYMENT_WINDOW_MS`] from now.
async fn start_attempt(
    State(s): State<AppState>,
    Viewer(buyer): Viewer,
    Path(raw): Path<String>,
    Json(body): Json<StartAttempt>,
) -> Answer {
    let order = owned(&s, &buyer, &raw).await?;
    let started = s.payments.start_payment(&order, &body.acquirer).await?;
    let mut v = super::attempt_view(&started);
    v["livemode"] = s.payments.livemode(&order.seller_id).await?.into();
    Ok((StatusCode::CREATED, axum::Json(v)))
}
