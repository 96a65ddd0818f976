//! Seller API: a paid order's fulfilment — one order's move
//! (`POST /v1/orders/{id}/fulfilment`) and bulk moves by ids or by the
//! order book's filter (`POST /v1/orders/fulfilment`). The rules live in
//! [`payments::fulfilment`]; refunds a move owes are the payments service's.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use payments::fulfilment::{Fulfilment, Request};
use payments::ids::OrderId;
use payments::service::Fulfilled;
use serde::Deserialize;
use serde_json::{json, Value};

use super::orders::BookQuery;
use crate::http::error::ApiError;
use crate::http::extract::{id, Actor, Json, Seller};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/orders/fulfilment", post(bulk))
        .route("/v1/orders/{id}/fulfilment", post(move_one))
}

type Answer = Result<(StatusCode, axum::Json<Value>), ApiError>;

fn state_of(raw: &str) -> Result<Fulfilment, ApiError> {
    Fulfilment::parse(raw).ok_or_else(|| ApiError::InvalidField {
        field: "state",
        message: "one of confirmed, packed, shipped, delivered, cancelled, returned".into(),
    })
}

/// One order's move.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MoveBody {
    state: String,
    carrier: Option<String>,
    tracking_number: Option<String>,
    note: Option<String>,
    /// A return's refund (0 for none).
    refund_minor: Option<i64>,
}

pub(super) fn done_view(d: &Fulfilled) -> Value {
    let m = &d.moved;
    json!({
        "order_id": d.order.id,
        "state": d.order.state,
        "fulfilment": m.to,
        "refunded_minor": d.order.refunded_minor,
        "changed": d.fresh,
        "move": {
            "id": m.id, "from": m.from, "to": m.to, "actor": m.actor, "carrier": m.carrier,
            "tracking_number": m.tracking_number, "note": m.note, "refund_minor": m.refund_minor,
            "refund_id": d.refund_id, "at": m.at,
        },
        // Owed when the bank did not answer: Haul keeps asking.
        "refund_owed_minor": d.refund_owed,
    })
}

async fn move_one(
    State(s): State<AppState>,
    Seller(seller): Seller,
    Actor(actor): Actor,
    Path(raw): Path<String>,
    Json(body): Json<MoveBody>,
) -> Answer {
    let oid = id(&raw, OrderId::parse)?;
    let order = match s
        .payments
        .store()
        .order(&oid)
        .await
        .map_err(|e| ApiError::Unavailable(Box::new(e)))?
    {
        Some(o) if o.seller_id == seller.as_str() => o,
        _ => return Err(ApiError::NotFound("order")),
    };
    let req = Request {
        to: state_of(&body.state)?,
        actor,
        carrier: body.carrier,
        tracking_number: body.tracking_number,
        note: body.note,
        refund_minor: body.refund_minor,
    };
    if req.to == Fulfilment::New {
        return Err(ApiError::InvalidField {
            field: "state",
            message: "an order is new when paid; it cannot be moved there".into(),
        });
    }
    let done = s.payments.fulfil(&order, &req).await?;
    let status = if done.fresh {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, axum::Json(done_view(&done))))
}

/// Orders a bulk move takes per request.
const BULK_MAX: i64 = 100;

/// A bulk move: by ids, or by the order book's filter.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BulkBody {
    state: String,
    note: Option<String>,
    ids: Option<Vec<String>>,
    filter: Option<BookQuery>,
}

/// Moves many orders at once (confirmed, packed, delivered, cancelled: the
/// moves that need nothing per order). By `ids` (at most 100), or by
/// `filter` (the order book's; the orders that can make the move, 100 at a
/// time, `has_more` telling whether to call again). Each order moves or is
/// refused on its own; one refusal stops nothing.
async fn bulk(
    State(s): State<AppState>,
    Seller(seller): Seller,
    Actor(actor): Actor,
    Json(body): Json<BulkBody>,
) -> Answer {
    let to = state_of(&body.state)?;
    if matches!(to, Fulfilment::New | Fulfilment::Shipped | Fulfilment::Returned) {
        return Err(ApiError::InvalidField {
            field: "state",
            message: "bulk moves are to confirmed, packed, delivered or cancelled; shipping and returns name a tracking number or a refund per order".into(),
        });
    }
    let (orders, more) = match (&body.ids, &body.filter) {
        (Some(ids), None) => {
            if ids.is_empty() || ids.len() as i64 > BULK_MAX {
                return Err(ApiError::InvalidField {
                    field: "ids",
                    message: format!("from 1 to {BULK_MAX} order ids"),
                });
            }
            let mut orders = Vec::with_capacity(ids.len());
            for raw in ids {
                let oid = OrderId::parse(raw).map_err(|_| ApiError::InvalidField {
                    field: "ids",
                    message: format!("{raw:?} is not an order id"),
                })?;
                orders.push((
                    raw.clone(),
                    s.payments
                        .store()
                        .order(&oid)
                        .await
                        .map_err(|e| ApiError::Unavailable(Box::new(e)))?,
                ));
            }
            (orders, false)
        }
        (None, Some(q)) => {
            if q.limit.is_some() || q.after.is_some() {
                return Err(ApiError::InvalidField {
                    field: "filter",
                    message: "a bulk move's filter takes no limit or cursor".into(),
                });
            }
            let mut filter = q.filter()?;
            filter.movable_to = Some(to);
            let mut rows = s
                .payments
                .order_book(seller.as_str(), &filter, None, BULK_MAX + 1)
                .await?;
            let more = rows.len() as i64 > BULK_MAX;
            rows.truncate(BULK_MAX as usize);
            (
                rows.into_iter()
                    .map(|e| (e.order.id.to_string(), Some(e.order)))
                    .collect(),
                more,
            )
        }
        _ => {
            return Err(ApiError::InvalidField {
                field: "ids",
                message: "give ids or filter, one of them".into(),
            })
        }
    };
    let mut moved = Vec::new();
    let mut unchanged = Vec::new();
    let mut refused = Vec::new();
    let mut owed = Vec::new();
    for (raw, order) in orders {
        let Some(order) = order.filter(|o| o.seller_id == seller.as_str()) else {
            refused.push(json!({ "id": raw, "code": "not_found", "message": "order not found" }));
            continue;
        };
        let req = Request {
            to,
            actor: actor.clone(),
            carrier: None,
            tracking_number: None,
            note: body.note.clone(),
            refund_minor: None,
        };
        match s.payments.fulfil(&order, &req).await {
            Ok(d) if d.fresh => {
                if d.refund_owed > 0 {
                    owed.push(json!({ "id": raw, "refund_owed_minor": d.refund_owed }));
                }
                moved.push(raw);
            }
            Ok(_) => unchanged.push(raw),
            // A bad note is the request's, not the order's: stop at once.
            Err(payments::service::Error::Invalid { field, message }) => {
                return Err(ApiError::InvalidField { field, message });
            }
            Err(payments::service::Error::Unavailable(e)) => return Err(ApiError::Unavailable(e)),
            Err(e) => {
                let e = ApiError::from(e);
                refused.push(json!({ "id": raw, "code": e.code(), "message": e.to_string() }));
            }
        }
    }
    Ok((
        StatusCode::OK,
        axum::Json(json!({
            "state": to, "moved": moved, "unchanged": unchanged, "refused": refused,
            "refunds_owed": owed, "has_more": more,
        })),
    ))
}
