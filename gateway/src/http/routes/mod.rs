//! The HTTP API, one module per resource, each exporting its `router()`.

mod acquirers;
mod buyers;
mod callbacks;
mod catalog;
mod checkout;
mod details;
mod fulfilment;
mod keys;
mod mail;
mod offers;
mod ops;
mod orders;
mod pages;
mod retailcrm;
mod sandbox;
mod settings;
mod webhooks;
mod widget;

use axum::Router;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::http::error::ApiError;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .merge(acquirers::router())
        .merge(catalog::router())
        .merge(checkout::router())
        .merge(offers::router())
        .merge(orders::router())
        .merge(fulfilment::router())
        .merge(details::router())
        .merge(mail::router())
        .merge(retailcrm::router())
        .merge(buyers::router())
        .merge(callbacks::router())
        .merge(ops::router())
        .merge(pages::router())
        .merge(sandbox::router())
        .merge(settings::router())
        .merge(webhooks::router())
        .merge(widget::router())
        .merge(keys::router())
        .merge(crate::http::console::router())
        .merge(crate::realtime::router())
}

/// `?limit=&before=` on listings.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    pub limit: Option<i64>,
    pub before: Option<i64>,
}

impl PageQuery {
    pub fn page(&self) -> Result<::streams::store::Page, ApiError> {
        let limit = self.limit.unwrap_or(50);
        if !(1..=200).contains(&limit) {
            return Err(ApiError::InvalidField {
                field: "limit",
                message: "must be from 1 to 200".into(),
            });
        }
        Ok(::streams::store::Page {
            limit,
            before: self.before,
        })
    }
}

/// A listing: `{ "data": [...], "next_before": <created_at of the last item> }`.
pub fn list<T: serde::Serialize>(items: &[T], created_at: impl Fn(&T) -> i64, limit: i64) -> Value {
    let next = (items.len() as i64 == limit)
        .then(|| items.last().map(&created_at))
        .flatten();
    json!({ "data": items, "next_before": next })
}

/// A started attempt as the buyer sees it, with where to pay.
pub fn attempt_view(started: &payments::service::Started) -> serde_json::Value {
    let attempt = &started.attempt;
    serde_json::json!({
        "id": attempt.id, "order_id": attempt.order_id, "acquirer": attempt.acquirer, "state": attempt.state,
        "amount_minor": attempt.amount_minor, "currency": attempt.currency,
        "hold_expires_at": started.hold_expires_at,
        // Where the buyer pays: the acquirer's hosted page.
        "redirect_url": started.redirect_url,
    })
}
