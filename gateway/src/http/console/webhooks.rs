//! The shop's webhook endpoints in the console (a manager's and an
//! owner's): each endpoint's URL, events and whether it is sent to, with
//! its latest deliveries; adding one (its secret shown once), pausing,
//! rotating the secret, deleting, sending a delivery again — those through
//! the seller API from the page's script (`assets/webhooks.js`).

use askama::Template;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use axum::Router;

use super::{acting, html, message, Acting, Chrome, Words};
use crate::http::extract::Language;
use crate::people::Area;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/console/webhooks", get(page))
        .route("/console/assets/webhooks.js", get(script))
}

/// Deliveries shown per endpoint.
const SHOWN: i64 = 20;

struct DeliveryRow {
    message: String,
    at: String,
    event: String,
    state: String,
    detail: String,
}

struct EndpointRow {
    id: String,
    url: String,
    events: String,
    enabled: bool,
    reason: String,
    deliveries: Vec<DeliveryRow>,
}

#[derive(Template)]
#[template(path = "console/webhooks.html")]
struct Hooks {
    t: Words,
    chrome: Option<Chrome>,
    csrf: String,
    words: String,
    endpoints: Vec<EndpointRow>,
    event_types: &'static [&'static str],
}

async fn page(State(s): State<AppState>, language: Language, headers: HeaderMap) -> Response {
    let Acting {
        session,
        t,
        chrome,
        row,
        ..
    } = match acting(&s, &headers, &language, Area::Webhooks, false).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let read = async {
        let mut out = Vec::new();
        for e in s.payments.endpoints(row.as_str()).await? {
            let deliveries = s.payments.deliveries(row.as_str(), &e.id, SHOWN).await?;
            out.push((e, deliveries));
        }
        Ok::<_, payments::service::Error>(out)
    }
    .await;
    let found = match read {
        Ok(f) => f,
        Err(e) => {
            tracing::warn!(error = %e, "the console could not read the webhook endpoints");
            let text = t.get("console.error");
            return message(StatusCode::SERVICE_UNAVAILABLE, t, chrome, "error", text, "/console");
        }
    };
    let endpoints = found
        .into_iter()
        .map(|(e, deliveries)| EndpointRow {
            events: if e.event_types.is_empty() {
                t.get("console.hooks.all_events").to_owned()
            } else {
                e.event_types.join(", ")
            },
            reason: e.disabled_reason.clone().unwrap_or_default(),
            deliveries: deliveries
                .into_iter()
                .map(|d| DeliveryRow {
                    at: super::orders::when(d.updated_at),
                    detail: match (d.last_status, d.last_error) {
                        (Some(code), _) => format!("HTTP {code} · {}×", d.attempts),
                        (None, Some(why)) => format!("{why} · {}×", d.attempts),
                        (None, None) => format!("{}×", d.attempts),
                    },
                    message: d.message_id,
                    event: d.event_type,
                    state: d.state,
                })
                .collect(),
            id: e.id,
            url: e.url,
            enabled: e.enabled,
        })
        .collect();
    let page = Hooks {
        csrf: session.csrf.clone(),
        words: t.0.script_text(&["console.hooks.", "console.room.failed"]),
        endpoints,
        event_types: payments::outbox::EVENT_TYPES,
        chrome,
        t,
    };
    html(StatusCode::OK, page.render())
}

async fn script() -> Response {
    super::static_file(
        include_str!("../../../assets/webhooks.js"),
        "text/javascript; charset=utf-8",
    )
}
