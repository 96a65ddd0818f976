//! The shop's API keys in the console (an owner's): each key's name, its
//! first characters, when it was made and last used, whether it works; a
//! new key shown once, a rotation, a revocation — the last three through
//! the seller API from the page's script (`assets/keys.js`).

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
        .route("/console/keys", get(page))
        .route("/console/assets/keys.js", get(script))
}

struct KeyRow {
    id: String,
    name: String,
    prefix: String,
    created: String,
    used: String,
    state: String,
    active: bool,
}

#[derive(Template)]
#[template(path = "console/keys.html")]
struct Keys {
    t: Words,
    chrome: Option<Chrome>,
    csrf: String,
    words: String,
    keys: Vec<KeyRow>,
}

async fn page(State(s): State<AppState>, language: Language, headers: HeaderMap) -> Response {
    let Acting {
        session,
        t,
        chrome,
        row,
        ..
    } = match acting(&s, &headers, &language, Area::Keys, false).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let all = match s.sellers.keys(&row).await {
        Ok(k) => k,
        Err(e) => {
            tracing::warn!(error = %e, "the console could not list keys");
            let text = t.get("console.error");
            return message(StatusCode::SERVICE_UNAVAILABLE, t, chrome, "error", text, "/console");
        }
    };
    let now = s.payments.now();
    let keys = all
        .iter()
        .map(|k| KeyRow {
            id: k.id.clone(),
            name: k.name.clone(),
            prefix: k.prefix.clone(),
            created: super::orders::when(k.created_at),
            used: k
                .last_used_at
                .map_or_else(|| t.get("console.keys.never").to_owned(), super::orders::when),
            state: match (k.revoked_at, k.expires_at) {
                (Some(_), _) => t.get("console.keys.revoked").to_owned(),
                (None, Some(at)) if at <= now => t.get("console.keys.revoked").to_owned(),
                (None, Some(at)) => t.fill("console.keys.expires", "at", &super::orders::when(at)),
                (None, None) => t.get("console.keys.active").to_owned(),
            },
            active: k.active(now),
        })
        .collect();
    let page = Keys {
        csrf: session.csrf.clone(),
        words: t.0.script_text(&["console.keys.", "console.room.failed"]),
        keys,
        chrome,
        t,
    };
    html(StatusCode::OK, page.render())
}

async fn script() -> Response {
    super::static_file(
        include_str!("../../../assets/keys.js"),
        "text/javascript; charset=utf-8",
    )
}
