//! The shop's order book in the console: the seller's orders newest first,
//! filtered by payment state, fulfilment and the buyer's email, phone or the
//! order's reference, a page at a time; an order's detail (buyer, delivery,
//! items, refunds, history) with its fulfilment moves and a refund that asks
//! to be confirmed. The moves and the refund go through the seller API from
//! the page's script (`assets/order.js`) with the session, so the role is
//! checked there (a refund is a manager's or an owner's), and a refund
//! carries an `Idempotency-Key`: a double click refunds once.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use payments::fulfilment::Fulfilment;
use payments::orderbook::{Cursor, Filter};
use payments::state::OrderState;
use serde::Deserialize;

use super::{acting, html, message, Acting, Chrome, Words};
use crate::http::extract::Language;
use crate::people::Area;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/console/orders", get(list))
        .route("/console/orders/{id}", get(detail))
        .route("/console/assets/order.js", get(script))
}

/// Orders a page lists.
const PAGE: i64 = 50;

struct Row {
    id: String,
    label: String,
    created: String,
    amount: String,
    state: &'static str,
    fulfilment: &'static str,
    unconfirmed: bool,
    buyer: String,
}

#[derive(Template)]
#[template(path = "console/orders.html")]
struct List {
    t: Words,
    chrome: Option<Chrome>,
    states: Vec<(&'static str, &'static str)>,
    fulfilments: Vec<(&'static str, &'static str)>,
    state: String,
    fulfilment: String,
    q: String,
    rows: Vec<Row>,
    next: Option<String>,
}

#[derive(Template)]
#[template(path = "console/order.html")]
struct Detail {
    t: Words,
    chrome: Option<Chrome>,
    csrf: String,
    words: String,
    id: String,
    label: String,
    currency: String,
    amount: String,
    state: &'static str,
    fulfilment: &'static str,
    refunded: String,
    left: String,
    left_minor: i64,
    buyer: String,
    delivery: String,
    items: Vec<String>,
    moves: Vec<(&'static str, &'static str)>,
    can_refund: bool,
    refunds: Vec<String>,
    history: Vec<String>,
}

/// A time as `YYYY-MM-DD HH:MM UTC`.
pub(super) fn when(ms: i64) -> String {
    let t = payments::outbox::rfc3339(ms);
    format!("{} {} UTC", &t[..10], &t[11..16])
}

fn money(t: &Words, minor: i64, currency: &str) -> String {
    let digits = streams::money::Currency::parse(currency).map_or(2, |c| c.exponent());
    t.0.money(minor, digits, currency)
}

fn state_words(t: &Words, s: OrderState) -> &'static str {
    t.get(&format!("watch.order.{}", s.as_str()))
}

fn fulfilment_words(t: &Words, f: Option<Fulfilment>) -> &'static str {
    f.map_or("", |f| t.get(&format!("watch.fulfilment.{}", f.as_str())))
}

#[derive(Debug, Default, Deserialize)]
struct ListQuery {
    #[serde(default)]
    state: String,
    #[serde(default)]
    fulfilment: String,
    #[serde(default)]
    q: String,
    #[serde(default)]
    after: String,
}

/// The filter of a search box's text: an email, a phone, else a reference.
fn search(filter: &mut Filter, q: &str) {
    let q = q.trim();
    if q.is_empty() {
        return;
    }
    if q.contains('@') {
        filter.email = Some(q.to_lowercase());
    } else if q.starts_with('+') {
        filter.phone = Some(q.chars().filter(|c| *c == '+' || c.is_ascii_digit()).collect());
    } else {
        filter.reference = Some(q.to_owned());
    }
}

async fn list(
    State(s): State<AppState>,
    language: Language,
    headers: HeaderMap,
    q: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Acting { t, chrome, row, .. } = match acting(&s, &headers, &language, Area::Orders, false).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let q = q.map(|Query(q)| q).unwrap_or_default();
    let mut filter = Filter {
        state: OrderState::ALL.iter().copied().find(|st| st.as_str() == q.state),
        fulfilment: Fulfilment::parse(&q.fulfilment),
        ..Filter::default()
    };
    search(&mut filter, &q.q);
    let after = Cursor::parse(&q.after);
    let mut entries = match s
        .payments
        .order_book(row.as_str(), &filter, after.as_ref(), PAGE + 1)
        .await
    {
        Ok(e) => e,
        Err(e) => {
            tracing::warn!(error = %e, "the console could not read the order book");
            let text = t.get("console.error");
            return message(StatusCode::SERVICE_UNAVAILABLE, t, chrome, "error", text, "/console");
        }
    };
    let more = entries.len() as i64 > PAGE;
    entries.truncate(PAGE as usize);
    let next = more.then(|| entries.last()).flatten().map(|e| {
        let query: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("state", &q.state)
            .append_pair("fulfilment", &q.fulfilment)
            .append_pair("q", &q.q)
            .append_pair("after", &Cursor::of(e).encode())
            .finish();
        format!("/console/orders?{query}")
    });
    let rows = entries
        .iter()
        .map(|e| {
            let o = &e.order;
            Row {
                id: o.id.to_string(),
                label: o.reference.clone().unwrap_or_else(|| o.id.to_string()),
                created: when(o.created_at),
                amount: money(&t, o.amount_minor, &o.currency),
                state: state_words(&t, o.state),
                fulfilment: fulfilment_words(&t, o.fulfilment),
                unconfirmed: o.unconfirmed_at.is_some() && o.fulfilment == Some(Fulfilment::New),
                buyer: [e.customer_email.clone(), e.customer_phone.clone()]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join(" · "),
            }
        })
        .collect();
    let page = List {
        states: OrderState::ALL
            .iter()
            .map(|st| (st.as_str(), state_words(&t, *st)))
            .collect(),
        fulfilments: Fulfilment::ALL
            .iter()
            .map(|f| (f.as_str(), fulfilment_words(&t, Some(*f))))
            .collect(),
        state: q.state,
        fulfilment: q.fulfilment,
        q: q.q,
        rows,
        next,
        chrome,
        t,
    };
    html(StatusCode::OK, page.render())
}

async fn detail(
    State(s): State<AppState>,
    language: Language,
    headers: HeaderMap,
    Path(raw): Path<String>,
) -> Response {
    let Acting {
        session,
        role,
        t,
        chrome,
        row,
    } = match acting(&s, &headers, &language, Area::Orders, false).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let not_found = |t: Words, chrome| {
        let text = t.get("console.not_found");
        message(StatusCode::NOT_FOUND, t, chrome, "error", text, "/console/orders")
    };
    let Ok(oid) = payments::ids::OrderId::parse(&raw) else {
        return not_found(t, chrome);
    };
    let read = async {
        let Some(order) = s.payments.store().order(&oid).await? else {
            return Ok(None);
        };
        if order.seller_id != row.as_str() {
            return Ok(None);
        }
        let session = s.payments.session_of_order(order.id.as_str()).await.ok().flatten();
        let refunds = s.payments.store().refunds_of(&order.id).await?;
        let moves = s.payments.fulfilment_moves(order.id.as_str()).await.unwrap_or_default();
        let transitions = s.payments.store().transitions(&order.id).await?;
        Ok::<_, payments::store::StoreError>(Some((order, session, refunds, moves, transitions)))
    }
    .await;
    let (order, checkout, refunds, moves, transitions) = match read {
        Ok(Some(found)) => found,
        Ok(None) => return not_found(t, chrome),
        Err(e) => {
            tracing::warn!(error = %e, "the console could not read an order");
            let text = t.get("console.error");
            return message(
                StatusCode::SERVICE_UNAVAILABLE,
                t,
                chrome,
                "error",
                text,
                "/console/orders",
            );
        }
    };
    let cur = order.currency.clone();
    let buyer_details = checkout.as_ref().and_then(|cs| cs.buyer.as_ref());
    let buyer = [
        buyer_details.and_then(|b| b.name.clone()),
        checkout.as_ref().and_then(|cs| cs.customer_email.clone()),
        checkout.as_ref().and_then(|cs| cs.customer_phone.clone()),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>()
    .join(" · ");
    let delivery = buyer_details
        .map(|b| {
            let mut parts = Vec::new();
            if let Some(d) = &b.delivery {
                parts.push(d.name.clone());
            }
            if let Some(a) = &b.address {
                parts.push(format!("{}, {}, {}", a.line1, a.city, a.country));
            }
            parts.join(" · ")
        })
        .unwrap_or_default();
    let items = checkout
        .as_ref()
        .map(|cs| {
            cs.items
                .iter()
                .map(|i| {
                    format!(
                        "{} × {} — {}",
                        i.name,
                        i.quantity,
                        money(&t, i.price_minor * i.quantity, &cur)
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let left_minor = if order.state.is_paid() {
        (order.amount_minor - order.refunded_minor).max(0)
    } else {
        0
    };
    let digits = streams::money::Currency::parse(&cur).map_or(2, |c| c.exponent());
    let scale = 10_i64.pow(u32::from(digits));
    let left = if digits == 0 {
        left_minor.to_string()
    } else {
        format!(
            "{}.{:0w$}",
            left_minor / scale,
            left_minor % scale,
            w = usize::from(digits)
        )
    };
    let mut history: Vec<(i64, String)> = transitions
        .iter()
        .map(|tr| {
            let from = tr.from.as_deref().unwrap_or("—");
            (
                tr.at,
                format!("{} · {} {from} → {} ({})", when(tr.at), tr.subject, tr.to, tr.cause),
            )
        })
        .collect();
    history.extend(moves.iter().map(|m| {
        let mut line = format!(
            "{} · {} → {} · {}",
            when(m.at),
            fulfilment_words(&t, Some(m.from)),
            fulfilment_words(&t, Some(m.to)),
            m.actor
        );
        if let Some(tn) = &m.tracking_number {
            line.push_str(&format!(" · {} {tn}", m.carrier.clone().unwrap_or_default()));
        }
        if let Some(n) = &m.note {
            line.push_str(&format!(" · {n}"));
        }
        (m.at, line)
    }));
    history.sort_by_key(|(at, _)| *at);
    let page = Detail {
        csrf: session.csrf.clone(),
        words: t.0.script_text(&["console.orders.", "console.room.failed"]),
        id: order.id.to_string(),
        label: order.reference.clone().unwrap_or_else(|| order.id.to_string()),
        amount: money(&t, order.amount_minor, &cur),
        state: state_words(&t, order.state),
        fulfilment: fulfilment_words(&t, order.fulfilment),
        refunded: if order.refunded_minor > 0 {
            t.fill("watch.refunded", "amount", &money(&t, order.refunded_minor, &cur))
        } else {
            String::new()
        },
        left,
        left_minor,
        buyer,
        delivery,
        items,
        moves: order
            .fulfilment
            .map(|from| {
                Fulfilment::ALL
                    .iter()
                    .filter(|to| from.allows(**to))
                    .map(|to| (to.as_str(), fulfilment_words(&t, Some(*to))))
                    .collect()
            })
            .unwrap_or_default(),
        can_refund: left_minor > 0 && role.allows(Area::Refunds, true),
        refunds: refunds
            .iter()
            .map(|(r, kind)| {
                format!(
                    "{} · {} · {} · {}",
                    when(r.created_at),
                    money(&t, r.amount_minor, &cur),
                    kind,
                    r.reason
                )
            })
            .collect(),
        history: history.into_iter().map(|(_, l)| l).collect(),
        currency: cur,
        chrome,
        t,
    };
    html(StatusCode::OK, page.render())
}

async fn script() -> Response {
    super::static_file(
        include_str!("../../../assets/order.js"),
        "text/javascript; charset=utf-8",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_search_box_finds_by_email_phone_or_reference() {
        let mut f = Filter::default();
        search(&mut f, " Anna@Shop.Example ");
        assert_eq!(f.email.as_deref(), Some("anna@shop.example"));
        let mut f = Filter::default();
        search(&mut f, "+7 900 123-45-67");
        assert_eq!(f.phone.as_deref(), Some("+79001234567"));
        let mut f = Filter::default();
        search(&mut f, "A-1001");
        assert_eq!(f.reference.as_deref(), Some("A-1001"));
        assert_eq!(when(0), "1970-01-01 00:00 UTC");
    }
}
