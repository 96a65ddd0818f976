//! The widget in the console: the sites allowed to open the checkout (a
//! manager's and an owner's), the snippet to paste, the widget secret (a new
//! one is an owner's, shown once) and a signed-checkout helper that signs
//! parameters with the shop's secret, so a seller's backend can compare its
//! own signature. All server forms, each with its CSRF token.

use std::collections::BTreeMap;

use askama::Template;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::Deserialize;

use super::{acting, csrf_ok, csrf_refused, html, unavailable, Acting, Chrome, Submitted, Words};
use crate::http::extract::Language;
use crate::people::Area;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/console/widget", get(page))
        .route("/console/widget/origins", post(save_origins))
        .route("/console/widget/secret", post(new_secret))
        .route("/console/widget/sign", post(sign))
}

#[derive(Template)]
#[template(path = "console/widget.html")]
struct WidgetPage {
    t: Words,
    chrome: Option<Chrome>,
    csrf: String,
    message: Option<(&'static str, String)>,
    origins: String,
    snippet: String,
    has_secret: bool,
    can_secret: bool,
    new_secret: Option<String>,
    params: String,
    /// (the signed text, the signature).
    signed: Option<(String, String)>,
}

/// What a page shows besides the shop's own settings.
#[derive(Default)]
struct Shown {
    message: Option<(&'static str, String)>,
    new_secret: Option<String>,
    params: String,
    signed: Option<(String, String)>,
    /// The origins as typed, when they were refused.
    origins: Option<String>,
}

async fn render(s: &AppState, a: Acting, status: StatusCode, shown: Shown) -> Response {
    let Acting {
        session,
        role,
        t,
        chrome,
        row,
    } = a;
    let (origins, secret) = match (
        s.sellers.widget_origins(row.as_str()).await,
        s.sellers.widget_secret(&row).await,
    ) {
        (Ok(o), Ok(sec)) => (o, sec),
        (Err(e), _) | (_, Err(e)) => return unavailable(t, &e),
    };
    let snippet = format!(
        "<script src=\"{base}/widget.js\"></script>\n<script>\n  Haul.checkout({{ session: 'cs_…',\n    onSuccess(state) {{}}, onFailure(state) {{}}, onClose() {{}},\n    locale: '{lang}' }});\n</script>",
        base = s.public_url,
        lang = t.lang(),
    );
    let page = WidgetPage {
        csrf: session.csrf.clone(),
        message: shown.message,
        origins: shown.origins.unwrap_or_else(|| origins.join("\n")),
        snippet,
        has_secret: secret.is_some(),
        can_secret: role.allows(Area::Keys, true),
        new_secret: shown.new_secret,
        params: shown.params,
        signed: shown.signed,
        chrome,
        t,
    };
    html(status, page.render())
}

async fn page(State(s): State<AppState>, language: Language, headers: HeaderMap) -> Response {
    match acting(&s, &headers, &language, Area::Shop, false).await {
        Ok(a) => render(&s, a, StatusCode::OK, Shown::default()).await,
        Err(r) => r,
    }
}

/// A posted form of a member whose role reaches `area`, its token checked.
async fn posted<T>(
    s: &AppState,
    headers: &HeaderMap,
    language: &Language,
    area: Area,
    form: Submitted<T>,
    csrf: impl Fn(&T) -> &str,
) -> Result<(Acting, T), Response> {
    let a = acting(s, headers, language, area, true).await?;
    let Ok(Form(f)) = form else {
        return Err(csrf_refused(a.t));
    };
    if !csrf_ok(&a.session, csrf(&f)) {
        return Err(csrf_refused(a.t));
    }
    Ok((a, f))
}

#[derive(Deserialize)]
struct OriginsForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    origins: String,
}

async fn save_origins(
    State(s): State<AppState>,
    language: Language,
    headers: HeaderMap,
    form: Submitted<OriginsForm>,
) -> Response {
    let (a, f) = match posted(&s, &headers, &language, Area::Shop, form, |f| &f.csrf).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let lines: Vec<String> = f
        .origins
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    match crate::sellers::checked_origins(&lines) {
        Ok(origins) => match s.sellers.set_widget_origins(&a.row, &origins).await {
            Ok(()) => {
                let text = a.t.get("console.widget.saved").to_owned();
                let shown = Shown {
                    message: Some(("ok", text)),
                    ..Shown::default()
                };
                render(&s, a, StatusCode::OK, shown).await
            }
            Err(e) => unavailable(a.t, &e),
        },
        Err((field, why)) => {
            // `origins[2]` names the line: the third.
            let line = field
                .trim_start_matches("origins[")
                .trim_end_matches(']')
                .parse::<usize>()
                .ok()
                .and_then(|i| lines.get(i).cloned())
                .unwrap_or_default();
            let shown = Shown {
                message: Some(("error", format!("{line}: {why}"))),
                origins: Some(f.origins),
                ..Shown::default()
            };
            render(&s, a, StatusCode::BAD_REQUEST, shown).await
        }
    }
}

#[derive(Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

/// A new widget secret (an owner's), shown once; the old one stops.
async fn new_secret(
    State(s): State<AppState>,
    language: Language,
    headers: HeaderMap,
    form: Submitted<CsrfForm>,
) -> Response {
    let (a, _) = match posted(&s, &headers, &language, Area::Keys, form, |f| &f.csrf).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let secret = format!("wsk_{}", streams::ids::random_token(40));
    match s.sellers.set_widget_secret(&a.row, &secret).await {
        Ok(()) => {
            let shown = Shown {
                new_secret: Some(secret),
                ..Shown::default()
            };
            render(&s, a, StatusCode::OK, shown).await
        }
        Err(e) => unavailable(a.t, &e),
    }
}

#[derive(Deserialize)]
struct SignForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    params: String,
}

/// Signs `key=value` lines (and `seller`) with the shop's widget secret.
async fn sign(
    State(s): State<AppState>,
    language: Language,
    headers: HeaderMap,
    form: Submitted<SignForm>,
) -> Response {
    let (a, f) = match posted(&s, &headers, &language, Area::Shop, form, |f| &f.csrf).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let secret = match s.sellers.widget_secret(&a.row).await {
        Ok(Some(secret)) => secret,
        Ok(None) => return render(&s, a, StatusCode::CONFLICT, Shown::default()).await,
        Err(e) => return unavailable(a.t, &e),
    };
    let mut params = BTreeMap::new();
    for line in f.params.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let (k, v) = line.split_once('=').unwrap_or((line, ""));
        params.insert(k.trim().to_owned(), v.trim().to_owned());
    }
    params.insert("seller".into(), a.row.to_string());
    let done = payments::checkout::signed::canonical(&params)
        .and_then(|canonical| payments::checkout::signed::sign(&secret, &params).map(|sig| (canonical, sig)));
    let shown = match done {
        Ok(signed) => Shown {
            signed: Some(signed),
            params: f.params,
            ..Shown::default()
        },
        Err(e) => Shown {
            message: Some(("error", e.to_string())),
            params: f.params,
            ..Shown::default()
        },
    };
    render(&s, a, StatusCode::OK, shown).await
}
