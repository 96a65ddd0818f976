//! The console's overview of a shop, and switching shop and mode.

use askama::Template;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::post;
use axum::{Form, Router};
use serde::Deserialize;
use streams::ids::SellerId;

use super::{acting, csrf_ok, csrf_refused, gate, html, message, unavailable, Acting, Chrome, Gate, Submitted, Words};
use crate::http::extract::Language;
use crate::sellers::Mode;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/console/switch", post(switch))
        .route("/console/language", post(language_choice))
}

#[derive(Deserialize)]
struct LanguageForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    locale: String,
}

/// The person's console language, kept with them (every browser follows).
async fn language_choice(
    State(s): State<AppState>,
    language: Language,
    headers: HeaderMap,
    form: Submitted<LanguageForm>,
) -> Response {
    let (session, t) = match gate(&s, &headers, &language).await {
        Gate::In { session, t, .. } => (session, t),
        Gate::Out(r) => return r,
    };
    let Ok(Form(f)) = form else { return csrf_refused(t) };
    if !csrf_ok(&session, &f.csrf) {
        return csrf_refused(t);
    }
    let Some(locale) = widget::Locale::parse(&f.locale).filter(|l| l.tag() == f.locale) else {
        let text = t.get("console.not_found");
        return message(StatusCode::BAD_REQUEST, t, None, "error", text, "/console");
    };
    match s
        .people
        .set_profile(&session.person.id, &session.person.name, locale)
        .await
    {
        Ok(()) => Redirect::to("/console").into_response(),
        Err(e) => unavailable(t, &e),
    }
}

/// A stream as the overview lists it.
struct StreamRow {
    id: String,
    title: String,
    state: &'static str,
}

#[derive(Template)]
#[template(path = "console/home.html")]
struct Home {
    t: Words,
    chrome: Option<Chrome>,
    csrf: String,
    shop: String,
    role_line: String,
    /// Whether the member may make streams.
    can_create: bool,
    streams: Vec<StreamRow>,
}

/// The seller row a session acts for: its account in its mode.
pub async fn acting_row(s: &AppState, account: &SellerId, live: bool) -> Result<Option<SellerId>, sqlx::Error> {
    let mode = if live { Mode::Live } else { Mode::Test };
    crate::sellers::mode_of_account(&s.pool, account, mode, s.payments.now()).await
}

pub async fn page(State(s): State<AppState>, language: Language, headers: HeaderMap) -> Response {
    // Every role reads the shop's streams.
    let Acting {
        session,
        role,
        t,
        chrome,
        row,
    } = match acting(&s, &headers, &language, crate::people::Area::Live, false).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let page = ::streams::store::Page {
        limit: 50,
        before: None,
    };
    let streams = match s.streams.list_streams(&row, page).await {
        Ok(list) => list,
        Err(e) => {
            tracing::warn!(error = %e, "the console could not list streams");
            let text = t.get("console.error");
            return message(StatusCode::SERVICE_UNAVAILABLE, t, chrome, "error", text, "/console");
        }
    };
    let streams = streams
        .into_iter()
        .map(|st| {
            let state = match st.state {
                ::streams::model::StreamState::Scheduled => "console.stream_state.scheduled",
                ::streams::model::StreamState::Live => "console.stream_state.live",
                ::streams::model::StreamState::Ended => "console.stream_state.ended",
            };
            StreamRow {
                id: st.id.to_string(),
                title: st.title,
                state: t.get(state),
            }
        })
        .collect();
    let page = Home {
        csrf: session.csrf.clone(),
        shop: chrome.as_ref().map(|c| c.shop.clone()).unwrap_or_default(),
        role_line: t.fill("console.your_role", "role", t.role(role)),
        can_create: role.allows(crate::people::Area::Live, true),
        streams,
        chrome,
        t,
    };
    html(StatusCode::OK, page.render())
}

#[derive(Deserialize)]
struct SwitchForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    account: String,
    #[serde(default)]
    mode: String,
}

/// Acts in another of the person's shops, or in the other mode.
async fn switch(
    State(s): State<AppState>,
    language: Language,
    headers: HeaderMap,
    form: Submitted<SwitchForm>,
) -> Response {
    let (token, session, t) = match gate(&s, &headers, &language).await {
        Gate::In { token, session, t, .. } => (token, session, t),
        Gate::Out(r) => return r,
    };
    let Ok(Form(f)) = form else { return csrf_refused(t) };
    if !csrf_ok(&session, &f.csrf) {
        return csrf_refused(t);
    }
    let (Ok(account), Some(mode)) = (SellerId::parse(&f.account), Mode::parse(&f.mode)) else {
        let text = t.get("console.not_found");
        return message(StatusCode::BAD_REQUEST, t, None, "error", text, "/console");
    };
    match s.people.role(&account, &session.person.id).await {
        Ok(Some(_)) => {}
        Ok(None) => {
            let text = t.get("console.not_found");
            return message(StatusCode::FORBIDDEN, t, None, "error", text, "/console");
        }
        Err(e) => return unavailable(t, &e),
    }
    // The demo has a test mode only.
    match acting_row(&s, &account, mode.is_live()).await {
        Ok(Some(_)) => {}
        Ok(None) => {
            let text = t.get("console.not_found");
            return message(StatusCode::CONFLICT, t, None, "error", text, "/console");
        }
        Err(e) => return unavailable(t, &e),
    }
    match s.people.switch(&token, &account, mode.is_live()).await {
        Ok(()) => Redirect::to("/console").into_response(),
        Err(e) => unavailable(t, &e),
    }
}
