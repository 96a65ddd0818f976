//! The console at `/console`: sellers' people sign in (a password or a
//! one-time email link), act in one of their shops in one mode, with their
//! role checked on the server for every page and every API call.
//!
//! Pages are rendered on the server from askama templates (compiled into
//! the binary, `gateway/templates/console`), styled by one stylesheet; only
//! the live room has a script (a file: no inline script anywhere). Every form carries a CSRF token: a signed-in
//! browser's is its session's, a signed-out one's (sign-in, links) is a
//! cookie it must echo. The same session cookie also authenticates the
//! seller API ([`crate::http::extract::Seller`]), with the token in an
//! `X-CSRF-Token` header on every call that changes something and the
//! member's role checked against the operation's area
//! ([`crate::people::area_of`]).
//!
//! - [`signin`]: sign-in, email links, invitations and first owners, sign-out;
//! - [`team`]: members, roles, invitations;
//! - [`home`]: the overview and the shop and mode switch;
//! - [`live`]: the live room;
//! - [`orders`]: the order book and an order's page;
//! - [`keys`]: the shop's API keys;
//! - [`webhooks`]: the shop's webhook endpoints and their deliveries;
//! - [`embed`]: the widget's allowed sites, snippet, secret and signing helper.

mod embed;
mod home;
mod keys;
mod live;
mod orders;
mod signin;
mod team;
mod webhooks;

use std::net::IpAddr;

use askama::Template;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use streams::ids::SellerId;
use widget::Locale;

use crate::http::extract::Language;
use crate::http::ratelimit::Limiter;
use crate::people::{Role, Session};
use crate::state::AppState;

pub use home::acting_row;
pub use signin::owner_link;

/// Strict: only this origin's scripts (files, never inline), styles and
/// sockets; no framing.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' https: data:; \
                   connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/console", get(home::page))
        .route("/console/assets/console.css", get(stylesheet))
        .route("/console/assets/api.js", get(api_script))
        .merge(signin::router())
        .merge(team::router())
        .merge(home::router())
        .merge(live::router())
        .merge(orders::router())
        .merge(keys::router())
        .merge(webhooks::router())
        .merge(embed::router())
}

/// Sign-in attempts per address (`HAUL_RATE_SIGNIN`, 10 a minute by default).
pub fn signin_limiter(config: &crate::config::Config) -> Limiter<IpAddr> {
    Limiter::new(config.rate_signin)
}

/// A posted form, or why it could not be read (treated as a stale form).
pub type Submitted<T> = Result<axum::Form<T>, axum::extract::rejection::FormRejection>;

/// The words of a page, in its language.
pub struct Words(pub Locale);

impl Words {
    pub fn lang(&self) -> &'static str {
        self.0.tag()
    }

    pub fn get(&self, key: &str) -> &'static str {
        self.0.text(key)
    }

    /// The words of `key` with `{name}` replaced.
    pub fn fill(&self, key: &str, name: &str, value: &str) -> String {
        self.0.fill(key, &[(name, value)])
    }

    pub fn role(&self, role: Role) -> &'static str {
        self.get(&format!("console.role.{}", role.as_str()))
    }
}

/// What every signed-in page shows around its content.
pub struct Chrome {
    pub csrf: String,
    pub account: String,
    pub shop: String,
    pub live: bool,
    pub can_team: bool,
    pub can_orders: bool,
    pub can_keys: bool,
    pub can_webhooks: bool,
    pub can_widget: bool,
    /// (account id, shop name) of each of the person's shops.
    pub accounts: Vec<(String, String)>,
}

#[derive(Template)]
#[template(path = "console/message.html")]
struct Message<'a> {
    t: Words,
    chrome: Option<Chrome>,
    kind: &'a str,
    text: &'a str,
    back: &'a str,
}

/// The cookies' names: with the `__Host-` prefix (Secure, this host only,
/// path `/`) when Haul is served over HTTPS.
fn cookie_name(s: &AppState, base: &str) -> String {
    if secure(s) {
        format!("__Host-{base}")
    } else {
        base.to_owned()
    }
}

fn secure(s: &AppState) -> bool {
    s.public_url.starts_with("https://")
}

/// The session cookie's name.
pub fn session_cookie_name(s: &AppState) -> String {
    cookie_name(s, "haul_session")
}

/// A cookie's value, from the request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Lax, Secure over HTTPS;
/// `max_age_secs` 0 removes it.
fn set_cookie(s: &AppState, base: &str, value: &str, max_age_secs: i64) -> HeaderValue {
    let secure = if secure(s) { "; Secure" } else { "" };
    let v = format!(
        "{}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age_secs}{secure}",
        cookie_name(s, base)
    );
    HeaderValue::from_str(&v).unwrap_or_else(|_| HeaderValue::from_static("haul_invalid=; Max-Age=0"))
}

/// Equal strings, compared in time that does not depend on where they differ.
pub fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The signed-in session of a request, if any.
pub async fn session_of(s: &AppState, headers: &HeaderMap) -> Result<Option<(String, Session)>, sqlx::Error> {
    let Some(token) = cookie(headers, &session_cookie_name(s)) else {
        return Ok(None);
    };
    Ok(s.people
        .session(token, s.payments.now())
        .await?
        .map(|session| (token.to_owned(), session)))
}

/// The language of a console page: the person's choice, else the browser's.
fn words(session: Option<&Session>, language: &Language) -> Words {
    Words(match session {
        Some(s) => s.person.locale,
        None => language.choose(None, Locale::default()),
    })
}

/// What surrounds a signed-in page.
async fn chrome(s: &AppState, session: &Session) -> Result<Option<Chrome>, sqlx::Error> {
    let Some((account, role)) = &session.account else {
        return Ok(None);
    };
    let memberships = s.people.memberships(&session.person.id).await?;
    let shop = memberships
        .iter()
        .find(|m| m.account == *account)
        .map(|m| m.name.clone())
        .unwrap_or_default();
    Ok(Some(Chrome {
        csrf: session.csrf.clone(),
        account: account.to_string(),
        shop,
        live: session.live,
        can_team: role.allows(crate::people::Area::Team, false),
        can_orders: role.allows(crate::people::Area::Orders, false),
        can_keys: role.allows(crate::people::Area::Keys, false),
        can_webhooks: role.allows(crate::people::Area::Webhooks, false),
        can_widget: role.allows(crate::people::Area::Shop, false),
        accounts: memberships
            .into_iter()
            .map(|m| (m.account.to_string(), m.name))
            .collect(),
    }))
}

/// A rendered page with the console's headers.
fn html(status: StatusCode, body: Result<String, askama::Error>) -> Response {
    let body = match body {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(error = %e, "a console page did not render");
            return (StatusCode::INTERNAL_SERVER_ERROR, "the page did not render").into_response();
        }
    };
    let mut r = (status, Html(body)).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    r
}

/// A page that says one thing (an error or a notice).
fn message(status: StatusCode, t: Words, chrome: Option<Chrome>, kind: &str, text: &str, back: &str) -> Response {
    let page = Message {
        t,
        chrome,
        kind,
        text,
        back,
    };
    html(status, page.render())
}

/// The page of a store that did not answer.
fn unavailable(t: Words, e: &sqlx::Error) -> Response {
    tracing::warn!(error = %e, "a console page could not read the database");
    let text = t.get("console.error");
    message(StatusCode::SERVICE_UNAVAILABLE, t, None, "error", text, "/console")
}

/// Back to the sign-in page.
fn to_signin() -> Response {
    Redirect::to("/console/signin").into_response()
}

/// The session's account and role, or the page to show instead: signed
/// out goes to sign-in, no shop says so.
enum Gate {
    In {
        token: String,
        session: Session,
        account: SellerId,
        role: Role,
        t: Words,
    },
    Out(Response),
}

async fn gate(s: &AppState, headers: &HeaderMap, language: &Language) -> Gate {
    let found = match session_of(s, headers).await {
        Ok(f) => f,
        Err(e) => return Gate::Out(unavailable(words(None, language), &e)),
    };
    let Some((token, session)) = found else {
        return Gate::Out(to_signin());
    };
    let t = words(Some(&session), language);
    let Some((account, role)) = session.account.clone() else {
        let text = t.get("console.no_account");
        return Gate::Out(message(
            StatusCode::FORBIDDEN,
            t,
            None,
            "error",
            text,
            "/console/signin",
        ));
    };
    Gate::In {
        token,
        session,
        account,
        role,
        t,
    }
}

/// A signed-in member whose role reaches `area` (`write`: to change it),
/// with the page's surroundings and the seller row the session acts for.
struct Acting {
    session: Session,
    role: Role,
    t: Words,
    chrome: Option<Chrome>,
    row: SellerId,
}

/// The [`Acting`] member of a request, or the page instead (sign-in, 403
/// for a role that does not reach `area`, 404 for a mode the shop lacks).
async fn acting(
    s: &AppState,
    headers: &HeaderMap,
    language: &Language,
    area: crate::people::Area,
    write: bool,
) -> Result<Acting, Response> {
    let (session, account, role, t) = match gate(s, headers, language).await {
        Gate::In {
            session,
            account,
            role,
            t,
            ..
        } => (session, account, role, t),
        Gate::Out(r) => return Err(r),
    };
    let chrome = match chrome(s, &session).await {
        Ok(c) => c,
        Err(e) => return Err(unavailable(t, &e)),
    };
    if !role.allows(area, write) {
        let text = t.fill("console.forbidden", "role", t.role(role));
        return Err(message(StatusCode::FORBIDDEN, t, chrome, "error", &text, "/console"));
    }
    match acting_row(s, &account, session.live).await {
        Ok(Some(row)) => Ok(Acting {
            session,
            role,
            t,
            chrome,
            row,
        }),
        Ok(None) => {
            let text = t.get("console.not_found");
            Err(message(StatusCode::NOT_FOUND, t, chrome, "error", text, "/console"))
        }
        Err(e) => Err(unavailable(t, &e)),
    }
}

/// A form's CSRF token checked against the session's.
fn csrf_ok(session: &Session, given: &str) -> bool {
    !given.is_empty() && same(&session.csrf, given)
}

/// The page of a refused form token.
fn csrf_refused(t: Words) -> Response {
    let text = t.get("console.csrf");
    message(StatusCode::FORBIDDEN, t, None, "error", text, "/console")
}

async fn stylesheet() -> Response {
    static_file(include_str!("../../../assets/console.css"), "text/css; charset=utf-8")
}

async fn api_script() -> Response {
    static_file(
        include_str!("../../../assets/console-api.js"),
        "text/javascript; charset=utf-8",
    )
}

/// One of the console's own files (revalidated: a new release's arrive at once).
fn static_file(body: &'static str, content_type: &'static str) -> Response {
    let mut r = body.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_read_by_exact_name() {
        let mut h = HeaderMap::new();
        h.append(header::COOKIE, HeaderValue::from_static("a=1; haul_session=ses_x; b=2"));
        h.append(header::COOKIE, HeaderValue::from_static("haul_csrf=abc"));
        assert_eq!(cookie(&h, "haul_session"), Some("ses_x"));
        assert_eq!(cookie(&h, "haul_csrf"), Some("abc"));
        assert_eq!(cookie(&h, "session"), None);
        assert!(same("abc", "abc") && !same("abc", "abd") && !same("abc", "ab"));
    }
}
