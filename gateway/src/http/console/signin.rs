//! Signing in and out: a password (counted against the email's lockout and
//! the address's rate), a one-time link by email, an invitation's link, an
//! account's first owner's link; signing out here or everywhere.
//!
//! Forms shown before sign-in carry a token that must match a cookie set
//! with the page (login CSRF); a link's page only asks, and its form uses
//! the link, so a mail scanner opening it signs no one in.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::Deserialize;
use streams::clock::Millis;
use streams::ids::{random_token, SellerId};

use super::{csrf_ok, csrf_refused, message, same, session_of, set_cookie, unavailable, words, Submitted, Words};
use crate::http::extract::{ClientAddr, Language};
use crate::people::{self, Link, LinkPurpose, People, Role, SignIn, SESSION_MAX_MS};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/console/signin", get(signin_page).post(signin))
        .route("/console/signin/email", post(email_link))
        .route("/console/link/{token}", get(link_page).post(use_link))
        .route("/console/signout", post(signout))
        .route("/console/signout/everywhere", post(signout_everywhere))
}

/// The signed-out forms' CSRF cookie.
const FORM_COOKIE: &str = "haul_form";

/// The link that makes `account`'s first owner (printed by `haul seller
/// create`): whoever opens it first chooses the owner's email and password.
pub async fn owner_link(
    people: &People,
    public_url: &str,
    account: &SellerId,
    now: Millis,
) -> Result<String, sqlx::Error> {
    let token = people
        .new_link(
            &LinkPurpose::Owner {
                account: account.clone(),
            },
            None,
            None,
            now,
        )
        .await?;
    Ok(format!("{}/console/link/{token}", public_url.trim_end_matches('/')))
}

#[derive(Template)]
#[template(path = "console/signin.html")]
struct SigninPage<'a> {
    t: Words,
    chrome: Option<super::Chrome>,
    csrf: &'a str,
    email: &'a str,
    /// (kind, text): `error` or `ok`.
    message: Option<(&'a str, String)>,
}

#[derive(Template)]
#[template(path = "console/link.html")]
struct LinkPage<'a> {
    t: Words,
    chrome: Option<super::Chrome>,
    csrf: &'a str,
    token: &'a str,
    heading: String,
    message: Option<String>,
    ask_email: bool,
    ask_name: bool,
    ask_password: bool,
}

/// The signed-out form token: the browser's cookie, or a new one (set on
/// the answer).
fn form_token(s: &AppState, headers: &HeaderMap) -> (String, bool) {
    match super::cookie(headers, &super::cookie_name(s, FORM_COOKIE)) {
        Some(v) if v.len() == 32 && v.bytes().all(|b| b.is_ascii_alphanumeric()) => (v.to_owned(), false),
        _ => (random_token(32), true),
    }
}

/// Whether a signed-out form's token matches its cookie.
fn form_ok(s: &AppState, headers: &HeaderMap, given: &str) -> bool {
    super::cookie(headers, &super::cookie_name(s, FORM_COOKIE)).is_some_and(|c| !given.is_empty() && same(c, given))
}

fn with_form_cookie(s: &AppState, mut r: Response, token: &str, fresh: bool) -> Response {
    if fresh {
        r.headers_mut()
            .append(header::SET_COOKIE, set_cookie(s, FORM_COOKIE, token, 3600 * 24));
    }
    r
}

/// Signs the browser in: a new session, its cookie, and on to the console.
async fn signed_in(s: &AppState, person: &str, account: Option<&SellerId>, t: &Words) -> Response {
    match s.people.start_session(person, account, s.payments.now()).await {
        Ok(token) => {
            let mut r = Redirect::to("/console").into_response();
            r.headers_mut().append(
                header::SET_COOKIE,
                set_cookie(s, "haul_session", &token, SESSION_MAX_MS / 1000),
            );
            r
        }
        Err(e) => unavailable(Words(t.0), &e),
    }
}

fn render_signin(
    s: &AppState,
    status: StatusCode,
    t: Words,
    headers: &HeaderMap,
    email: &str,
    message: Option<(&str, String)>,
) -> Response {
    let (csrf, fresh) = form_token(s, headers);
    let page = SigninPage {
        t,
        chrome: None,
        csrf: &csrf,
        email,
        message,
    };
    with_form_cookie(s, super::html(status, page.render()), &csrf, fresh)
}

async fn signin_page(State(s): State<AppState>, language: Language, headers: HeaderMap) -> Response {
    // Signed in to a shop already: on to it. A person with no shop stays
    // here, free to sign in as someone else.
    if let Ok(Some((_, session))) = session_of(&s, &headers).await {
        if session.account.is_some() {
            return Redirect::to("/console").into_response();
        }
    }
    render_signin(&s, StatusCode::OK, words(None, &language), &headers, "", None)
}

#[derive(Deserialize)]
struct SigninForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
}

/// A signed-out form (sign-in, email link) checked: its token against its
/// cookie, the address's rate, the email: (words, the form, the email),
/// or the page instead.
fn signed_out_form<T>(
    s: &AppState,
    addr: std::net::IpAddr,
    language: &Language,
    headers: &HeaderMap,
    form: Submitted<T>,
    fields: impl Fn(&T) -> (&str, &str),
) -> Result<(Words, T, String), Box<Response>> {
    let t = words(None, language);
    let Ok(Form(f)) = form else {
        return Err(Box::new(csrf_refused(t)));
    };
    let (csrf, raw_email) = fields(&f);
    if !form_ok(s, headers, csrf) {
        return Err(Box::new(csrf_refused(t)));
    }
    let refused = |status, key: &str, t: Words| {
        let text = t.get(key).to_owned();
        Box::new(render_signin(s, status, t, headers, raw_email, Some(("error", text))))
    };
    if s.signin_limits.check(&addr).is_err() {
        return Err(refused(StatusCode::TOO_MANY_REQUESTS, "console.slow_down", t));
    }
    let Some(email) = people::normalize_email(raw_email) else {
        return Err(refused(StatusCode::BAD_REQUEST, "console.bad_email", t));
    };
    Ok((t, f, email))
}

async fn signin(
    State(s): State<AppState>,
    ClientAddr(addr): ClientAddr,
    language: Language,
    headers: HeaderMap,
    form: Submitted<SigninForm>,
) -> Response {
    let (t, f, email) = match signed_out_form(&s, addr, &language, &headers, form, |f| (&f.csrf, &f.email)) {
        Ok(checked) => checked,
        Err(r) => return *r,
    };
    let now = s.payments.now();
    match s.people.sign_in(&email, &f.password, now).await {
        Ok(SignIn::Ok(person)) => signed_in(&s, &person.id, None, &t).await,
        Ok(SignIn::Refused) => {
            let text = t.get("console.wrong").to_owned();
            render_signin(&s, StatusCode::UNAUTHORIZED, t, &headers, &email, Some(("error", text)))
        }
        Ok(SignIn::Locked { until }) => {
            let minutes = ((until - now).max(0) + 59_999) / 60_000;
            let text = t.fill("console.locked", "minutes", &minutes.to_string());
            let mut r = render_signin(
                &s,
                StatusCode::TOO_MANY_REQUESTS,
                t,
                &headers,
                &email,
                Some(("error", text)),
            );
            if let Ok(v) = ((until - now).max(0) / 1000 + 1).to_string().parse() {
                r.headers_mut().insert(header::RETRY_AFTER, v);
            }
            r
        }
        Err(e) => unavailable(t, &e),
    }
}

#[derive(Deserialize)]
struct EmailForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    email: String,
}

/// Emails a sign-in link to a person who has that email; the answer is the
/// same whether or not anyone does.
async fn email_link(
    State(s): State<AppState>,
    ClientAddr(addr): ClientAddr,
    language: Language,
    headers: HeaderMap,
    form: Submitted<EmailForm>,
) -> Response {
    let (t, _, email) = match signed_out_form(&s, addr, &language, &headers, form, |f| (&f.csrf, &f.email)) {
        Ok(checked) => checked,
        Err(r) => return *r,
    };
    let now = s.payments.now();
    match s.people.by_email(&email).await {
        Ok(Some(person)) => match s.people.new_link(&LinkPurpose::SignIn, Some(&email), None, now).await {
            Ok(token) => {
                let pt = Words(person.locale);
                let link = format!("{}/console/link/{token}", s.public_url);
                let body = pt.fill("console.mail_signin_body", "link", &link);
                if let Err(why) =
                    crate::adapters::mail::send_now(&s.config, &email, pt.get("console.mail_signin_subject"), body)
                        .await
                {
                    tracing::warn!(%why, "a console sign-in link was not sent");
                }
            }
            Err(e) => return unavailable(t, &e),
        },
        Ok(None) => {}
        Err(e) => return unavailable(t, &e),
    }
    let text = t.fill("console.link_sent", "email", &email);
    render_signin(&s, StatusCode::OK, t, &headers, &email, Some(("ok", text)))
}

/// The shop's name, for a link's page.
async fn shop_name(s: &AppState, account: &SellerId) -> String {
    s.people.shop_name(account).await.ok().flatten().unwrap_or_default()
}

/// What a link's page asks: (email, name, password).
async fn asks(s: &AppState, link: &Link, signed_in: bool) -> Result<(bool, bool, bool), sqlx::Error> {
    Ok(match &link.purpose {
        LinkPurpose::SignIn => (false, false, false),
        LinkPurpose::Invite { .. } => {
            let person = match &link.email {
                Some(e) => s.people.by_email(e).await?,
                None => None,
            };
            match person {
                Some(p) => (false, false, !p.has_password),
                None => (false, true, true),
            }
        }
        // Signed in, the owner is the person signed in.
        LinkPurpose::Owner { .. } if signed_in => (false, false, false),
        LinkPurpose::Owner { .. } => (link.email.is_none(), true, true),
    })
}

async fn heading(s: &AppState, t: &Words, link: &Link) -> String {
    match &link.purpose {
        LinkPurpose::SignIn => t.fill("console.link_signin", "email", link.email.as_deref().unwrap_or("")),
        LinkPurpose::Invite { account, role } => t.0.fill(
            "console.link_invite",
            &[("shop", &shop_name(s, account).await), ("role", t.role(*role))],
        ),
        LinkPurpose::Owner { account } => t.fill("console.link_owner", "shop", &shop_name(s, account).await),
    }
}

#[allow(clippy::too_many_arguments)]
async fn render_link(
    s: &AppState,
    status: StatusCode,
    t: Words,
    headers: &HeaderMap,
    token: &str,
    link: &Link,
    signed_in: bool,
    message: Option<String>,
) -> Response {
    let (ask_email, ask_name, ask_password) = match asks(s, link, signed_in).await {
        Ok(a) => a,
        Err(e) => return unavailable(t, &e),
    };
    let (csrf, fresh) = form_token(s, headers);
    let page = LinkPage {
        heading: heading(s, &t, link).await,
        t,
        chrome: None,
        csrf: &csrf,
        token,
        message,
        ask_email,
        ask_name,
        ask_password,
    };
    with_form_cookie(s, super::html(status, page.render()), &csrf, fresh)
}

fn link_gone(t: Words) -> Response {
    let text = t.get("console.link_gone");
    message(StatusCode::GONE, t, None, "error", text, "/console/signin")
}

async fn link_page(
    State(s): State<AppState>,
    language: Language,
    headers: HeaderMap,
    Path(token): Path<String>,
) -> Response {
    let t = words(None, &language);
    let signed_in = matches!(session_of(&s, &headers).await, Ok(Some(_)));
    match s.people.peek_link(&token, s.payments.now()).await {
        Ok(Some(link)) => render_link(&s, StatusCode::OK, t, &headers, &token, &link, signed_in, None).await,
        Ok(None) => link_gone(t),
        Err(e) => unavailable(t, &e),
    }
}

#[derive(Deserialize)]
struct LinkForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    password: String,
}

/// What the form gave, checked before the link is used: (email, name,
/// password), or the message to show.
fn checked(
    t: &Words,
    f: &LinkForm,
    asks: (bool, bool, bool),
) -> Result<(Option<String>, String, Option<String>), String> {
    let (ask_email, ask_name, ask_password) = asks;
    let email = if ask_email {
        Some(people::normalize_email(&f.email).ok_or_else(|| t.get("console.bad_email").to_owned())?)
    } else {
        None
    };
    let name: String = f.name.trim().chars().filter(|c| !c.is_control()).take(100).collect();
    if ask_name && name.is_empty() {
        return Err(format!("{}: {}", t.get("console.name"), t.get("console.continue")));
    }
    let password = if ask_password {
        if let Some(rule) = people::password_problem(&f.password) {
            return Err(t.fill("console.bad_password", "rule", &rule));
        }
        Some(f.password.clone())
    } else {
        None
    };
    Ok((email, name, password))
}

async fn use_link(
    State(s): State<AppState>,
    language: Language,
    headers: HeaderMap,
    Path(token): Path<String>,
    form: Submitted<LinkForm>,
) -> Response {
    let t = words(None, &language);
    let Ok(Form(f)) = form else {
        return csrf_refused(t);
    };
    if !form_ok(&s, &headers, &f.csrf) {
        return csrf_refused(t);
    }
    let now = s.payments.now();
    let current = match session_of(&s, &headers).await {
        Ok(c) => c.map(|(_, session)| session),
        Err(e) => return unavailable(t, &e),
    };
    let link = match s.people.peek_link(&token, now).await {
        Ok(Some(l)) => l,
        Ok(None) => return link_gone(t),
        Err(e) => return unavailable(t, &e),
    };
    let asks = match asks(&s, &link, current.is_some()).await {
        Ok(a) => a,
        Err(e) => return unavailable(t, &e),
    };
    let (email, name, password) = match checked(&t, &f, asks) {
        Ok(c) => c,
        Err(why) => {
            return render_link(
                &s,
                StatusCode::BAD_REQUEST,
                t,
                &headers,
                &token,
                &link,
                current.is_some(),
                Some(why),
            )
            .await
        }
    };
    // An owner's link names no email: one already someone's is theirs to
    // use signed in, never taken over by whoever holds the link.
    if let (LinkPurpose::Owner { .. }, Some(e)) = (&link.purpose, &email) {
        match s.people.by_email(e).await {
            Ok(Some(_)) => {
                let why = t.get("console.wrong").to_owned();
                return render_link(&s, StatusCode::CONFLICT, t, &headers, &token, &link, false, Some(why)).await;
            }
            Ok(None) => {}
            Err(e) => return unavailable(t, &e),
        }
    }
    let link = match s.people.take_link(&token, now).await {
        Ok(Some(l)) => l,
        Ok(None) => return link_gone(t),
        Err(e) => return unavailable(t, &e),
    };
    let done = async {
        let locale = t.0;
        let (person, account, role) = match &link.purpose {
            LinkPurpose::SignIn => {
                let Some(p) = s.people.by_email(link.email.as_deref().unwrap_or("")).await? else {
                    return Ok(None);
                };
                (p, None, None)
            }
            LinkPurpose::Invite { account, role } => {
                let email = link.email.clone().unwrap_or_default();
                let shown = if name.is_empty() { email.clone() } else { name.clone() };
                let p = s.people.find_or_create(&email, &shown, locale, now).await?;
                (p, Some(account.clone()), Some(*role))
            }
            LinkPurpose::Owner { account } => {
                let p = match (&current, email.or(link.email.clone())) {
                    (Some(session), _) => session.person.clone(),
                    (None, Some(e)) => s.people.find_or_create(&e, &name, locale, now).await?,
                    (None, None) => return Ok(None),
                };
                (p, Some(account.clone()), Some(Role::Owner))
            }
        };
        if let Some(pw) = &password {
            if !person.has_password {
                s.people.set_password(&person.id, pw).await?;
            }
        }
        if let (Some(account), Some(role)) = (&account, role) {
            s.people.join(account, &person.id, role, now).await?;
        }
        Ok::<_, sqlx::Error>(Some((person, account)))
    }
    .await;
    match done {
        Ok(Some((person, account))) => signed_in(&s, &person.id, account.as_ref(), &t).await,
        Ok(None) => link_gone(t),
        Err(e) => unavailable(t, &e),
    }
}

#[derive(Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

fn signed_out(s: &AppState) -> Response {
    let mut r = Redirect::to("/console/signin").into_response();
    r.headers_mut()
        .append(header::SET_COOKIE, set_cookie(s, "haul_session", "", 0));
    r
}

async fn signout(
    State(s): State<AppState>,
    language: Language,
    headers: HeaderMap,
    form: Submitted<CsrfForm>,
) -> Response {
    let t = words(None, &language);
    let (token, session) = match session_of(&s, &headers).await {
        Ok(Some(found)) => found,
        Ok(None) => return signed_out(&s),
        Err(e) => return unavailable(t, &e),
    };
    if !form.is_ok_and(|Form(f)| csrf_ok(&session, &f.csrf)) {
        return csrf_refused(words(Some(&session), &language));
    }
    match s.people.end_session(&token).await {
        Ok(()) => signed_out(&s),
        Err(e) => unavailable(t, &e),
    }
}

async fn signout_everywhere(
    State(s): State<AppState>,
    language: Language,
    headers: HeaderMap,
    form: Submitted<CsrfForm>,
) -> Response {
    let t = words(None, &language);
    let session = match session_of(&s, &headers).await {
        Ok(Some((_, session))) => session,
        Ok(None) => return signed_out(&s),
        Err(e) => return unavailable(t, &e),
    };
    if !form.is_ok_and(|Form(f)| csrf_ok(&session, &f.csrf)) {
        return csrf_refused(words(Some(&session), &language));
    }
    match s.people.end_all_sessions(&session.person.id).await {
        Ok(n) => {
            tracing::info!(person = %session.person.id, sessions = n, "signed out everywhere");
            signed_out(&s)
        }
        Err(e) => unavailable(t, &e),
    }
}
