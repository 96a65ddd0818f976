//! The live room: one screen to run a stream's sale — its state and
//! viewers, the lots with one-tap pin and "launch offer" prefilled from the
//! lot's terms, each live offer's units left, held in checkout, sold and
//! revenue with a countdown and add stock / extend / end, the purchases and
//! notes, a note to post.
//!
//! The page is rendered here; its script (`assets/live.js`) listens on the
//! stream's channel (what viewers hear) and its seller channel (each
//! offer's levels) with a connection token only the console mints, and acts
//! through the seller API with the session's cookie and CSRF token — so the
//! member's role is checked there like every call's.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use secrecy::ExposeSecret;
use serde::Deserialize;
use streams::ids::StreamId;
use streams::model::StreamState;

use super::{acting, csrf_ok, csrf_refused, html, message, Acting, Chrome, Submitted, Words};
use crate::http::extract::Language;
use crate::people::Area;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/console/streams", post(create_stream))
        .route("/console/streams/{id}", get(room))
        .route("/console/assets/live.js", get(script))
}

/// How long the room's connection token lasts (the page is reloaded after).
const TOKEN_SECS: i64 = 12 * 3600;

struct LotRow {
    id: String,
    title: String,
    sku: String,
    pinned: bool,
    /// The launch form's prefill: major units, as the input takes them.
    price: String,
    currency: String,
    quantity: String,
    per_buyer: String,
    duration: String,
}

#[derive(Template)]
#[template(path = "console/live.html")]
struct Room {
    t: Words,
    chrome: Option<Chrome>,
    csrf: String,
    token: String,
    words: String,
    stream: String,
    title: String,
    state: &'static str,
    state_text: &'static str,
    can_write: bool,
    lots: Vec<LotRow>,
}

/// Minor units as the price input writes them (`149000`, 2 digits →
/// `1490.00`).
fn major(minor: i64, currency: &str) -> String {
    let digits = streams::money::Currency::parse(currency).map_or(2, |c| c.exponent());
    if digits == 0 {
        return minor.to_string();
    }
    let scale = 10_i64.pow(u32::from(digits));
    format!("{}.{:0w$}", minor / scale, minor % scale, w = usize::from(digits))
}

fn state_key(state: StreamState) -> (&'static str, &'static str) {
    match state {
        StreamState::Scheduled => ("scheduled", "console.stream_state.scheduled"),
        StreamState::Live => ("live", "console.stream_state.live"),
        StreamState::Ended => ("ended", "console.stream_state.ended"),
    }
}

async fn room(State(s): State<AppState>, language: Language, headers: HeaderMap, Path(raw): Path<String>) -> Response {
    let Acting {
        session,
        role,
        t,
        chrome,
        row,
    } = match acting(&s, &headers, &language, Area::Live, false).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let not_found = |t: Words, chrome| {
        let text = t.get("console.not_found");
        message(StatusCode::NOT_FOUND, t, chrome, "error", text, "/console")
    };
    let Ok(sid) = StreamId::parse(&raw) else {
        return not_found(t, chrome);
    };
    let (stream, lots) = match (
        s.streams.stream(&row, &sid).await,
        s.streams.lots(&row, &sid, false).await,
    ) {
        (Ok(st), Ok(l)) => (st, l),
        (Err(streams::service::Error::NotFound(_)), _) | (_, Err(streams::service::Error::NotFound(_))) => {
            return not_found(t, chrome)
        }
        (Err(e), _) | (_, Err(e)) => {
            tracing::warn!(error = ?e, "the live room could not read its stream");
            let text = t.get("console.error");
            return message(StatusCode::SERVICE_UNAVAILABLE, t, chrome, "error", text, "/console");
        }
    };
    let now_s = s.payments.now() / 1000;
    let claims = crate::jwt::Claims {
        sub: format!("console.{}", session.person.id),
        exp: now_s + TOKEN_SECS,
        iat: Some(now_s),
        nbf: None,
        sel: Some(row.to_string()),
    };
    let token = crate::jwt::encode(&claims, s.token_secret.expose_secret().as_bytes());
    let lots = lots
        .into_iter()
        .map(|l| {
            let currency = l.terms.currency.clone().unwrap_or_else(|| "RUB".into());
            LotRow {
                pinned: stream.pinned_lot_id.as_ref() == Some(&l.id),
                id: l.id.to_string(),
                title: l.title,
                sku: l.terms.sku.unwrap_or_default(),
                price: l.terms.price_minor.map(|p| major(p, &currency)).unwrap_or_default(),
                quantity: l.terms.quantity.unwrap_or(10).to_string(),
                per_buyer: l.terms.per_buyer_limit.map(|n| n.to_string()).unwrap_or_default(),
                duration: l.terms.duration_seconds.unwrap_or(120).to_string(),
                currency,
            }
        })
        .collect();
    let (state, state_key) = state_key(stream.state);
    let page = Room {
        csrf: session.csrf.clone(),
        token,
        words: t
            .0
            .script_text(&["console.room.", "console.stream_state.", "watch.order."]),
        stream: stream.id.to_string(),
        title: stream.title,
        state,
        state_text: t.get(state_key),
        can_write: role.allows(Area::Live, true),
        lots,
        chrome,
        t,
    };
    html(StatusCode::OK, page.render())
}

#[derive(Deserialize)]
struct NewStreamForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    title: String,
}

/// A new stream from the overview's form, then its live room.
async fn create_stream(
    State(s): State<AppState>,
    language: Language,
    headers: HeaderMap,
    form: Submitted<NewStreamForm>,
) -> Response {
    let Acting { session, t, row, .. } = match acting(&s, &headers, &language, Area::Live, true).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let Ok(Form(f)) = form else { return csrf_refused(t) };
    if !csrf_ok(&session, &f.csrf) {
        return csrf_refused(t);
    }
    let new = streams::service::NewStream { title: f.title };
    match s.streams.create_stream(&row, new).await {
        Ok(stream) => Redirect::to(&format!("/console/streams/{}", stream.id)).into_response(),
        Err(streams::service::Error::Invalid { message: why, .. }) => {
            let text = format!("{}: {why}", t.get("console.room.stream_title"));
            message(StatusCode::BAD_REQUEST, t, None, "error", &text, "/console")
        }
        Err(e) => {
            tracing::warn!(error = ?e, "the console could not make a stream");
            let text = t.get("console.error");
            message(StatusCode::SERVICE_UNAVAILABLE, t, None, "error", text, "/console")
        }
    }
}

async fn script() -> Response {
    super::static_file(
        include_str!("../../../assets/live.js"),
        "text/javascript; charset=utf-8",
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn prices_are_written_as_the_input_takes_them() {
        assert_eq!(super::major(149_000, "RUB"), "1490.00");
        assert_eq!(super::major(5, "RUB"), "0.05");
        assert_eq!(super::major(1234, "JPY"), "1234");
        assert_eq!(super::major(1_234_567, "KWD"), "1234.567");
    }
}
