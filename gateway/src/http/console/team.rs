//! The team: an owner sees the members, changes roles, removes members
//! (never the last owner) and invites people by email with a role.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::Deserialize;
use streams::ids::SellerId;

use super::{chrome, csrf_ok, csrf_refused, gate, html, message, unavailable, Chrome, Gate, Submitted, Words};
use crate::http::extract::{ClientAddr, Language};
use crate::people::{self, Area, LinkPurpose, Role, Session, ROLES};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/console/team", get(page))
        .route("/console/team/invite", post(invite))
        .route("/console/team/{person}/role", post(set_role))
        .route("/console/team/{person}/remove", post(remove))
}

struct MemberRow {
    id: String,
    name: String,
    email: String,
    role: &'static str,
    since: String,
    since_iso: String,
}

#[derive(Template)]
#[template(path = "console/team.html")]
struct TeamPage {
    t: Words,
    chrome: Option<Chrome>,
    csrf: String,
    message: Option<(&'static str, String)>,
    members: Vec<MemberRow>,
    /// (role, its name, what it may do).
    roles: Vec<(&'static str, &'static str, &'static str)>,
}

/// A date as `YYYY-MM-DD` (UTC).
fn day(ms: i64) -> String {
    payments::outbox::rfc3339(ms)[..10].to_owned()
}

/// The signed-in owner's session and account, or the page instead (a
/// member whose role may not manage the team gets 403).
async fn owner(s: &AppState, headers: &HeaderMap, language: &Language) -> Result<(Session, SellerId, Words), Response> {
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
    if !role.allows(Area::Team, true) {
        let chrome = chrome(s, &session).await.ok().flatten();
        let text = t.fill("console.forbidden", "role", t.role(role));
        return Err(message(StatusCode::FORBIDDEN, t, chrome, "error", &text, "/console"));
    }
    Ok((session, account, t))
}

/// An owner's posted form with its CSRF token checked: (session, account,
/// words, the form), or the page instead.
async fn owner_form<T>(
    s: &AppState,
    headers: &HeaderMap,
    language: &Language,
    form: Submitted<T>,
    csrf: impl Fn(&T) -> &str,
) -> Result<(Session, SellerId, Words, T), Response> {
    let (session, account, t) = owner(s, headers, language).await?;
    let Ok(Form(f)) = form else { return Err(csrf_refused(t)) };
    if !csrf_ok(&session, csrf(&f)) {
        return Err(csrf_refused(t));
    }
    Ok((session, account, t, f))
}

async fn render(
    s: &AppState,
    status: StatusCode,
    session: &Session,
    account: &SellerId,
    t: Words,
    message: Option<(&'static str, String)>,
) -> Response {
    let (members, chrome) = match (s.people.members(account).await, chrome(s, session).await) {
        (Ok(m), Ok(c)) => (m, c),
        (Err(e), _) | (_, Err(e)) => return unavailable(t, &e),
    };
    let members = members
        .into_iter()
        .map(|m| MemberRow {
            id: m.person.id,
            name: m.person.name,
            email: m.person.email,
            role: m.role.as_str(),
            since: day(m.since),
            since_iso: day(m.since),
        })
        .collect();
    let roles = ROLES
        .iter()
        .map(|r| {
            (
                r.as_str(),
                t.role(*r),
                t.get(&format!("console.role_help.{}", r.as_str())),
            )
        })
        .collect();
    let page = TeamPage {
        csrf: session.csrf.clone(),
        chrome,
        message,
        members,
        roles,
        t,
    };
    html(status, page.render())
}

async fn page(State(s): State<AppState>, language: Language, headers: HeaderMap) -> Response {
    match owner(&s, &headers, &language).await {
        Ok((session, account, t)) => render(&s, StatusCode::OK, &session, &account, t, None).await,
        Err(r) => r,
    }
}

#[derive(Deserialize)]
struct InviteForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    role: String,
}

async fn invite(
    State(s): State<AppState>,
    ClientAddr(addr): ClientAddr,
    language: Language,
    headers: HeaderMap,
    form: Submitted<InviteForm>,
) -> Response {
    let (session, account, t, f) = match owner_form(&s, &headers, &language, form, |f| &f.csrf).await {
        Ok(o) => o,
        Err(r) => return r,
    };
    // Each invitation is an email to any address: limited like sign-in links.
    if s.signin_limits.check(&addr).is_err() {
        let text = t.get("console.slow_down").to_owned();
        return render(
            &s,
            StatusCode::TOO_MANY_REQUESTS,
            &session,
            &account,
            t,
            Some(("error", text)),
        )
        .await;
    }
    let Some(email) = people::normalize_email(&f.email) else {
        let text = t.get("console.bad_email").to_owned();
        return render(
            &s,
            StatusCode::BAD_REQUEST,
            &session,
            &account,
            t,
            Some(("error", text)),
        )
        .await;
    };
    let Some(role) = Role::parse(&f.role) else {
        let text = format!("{}: {}", t.get("console.role"), t.get("console.not_found"));
        return render(
            &s,
            StatusCode::BAD_REQUEST,
            &session,
            &account,
            t,
            Some(("error", text)),
        )
        .await;
    };
    let now = s.payments.now();
    let purpose = LinkPurpose::Invite {
        account: account.clone(),
        role,
    };
    let token = match s
        .people
        .new_link(&purpose, Some(&email), Some(&session.person.id), now)
        .await
    {
        Ok(token) => token,
        Err(e) => return unavailable(t, &e),
    };
    let shop = s.people.shop_name(&account).await.ok().flatten().unwrap_or_default();
    // In the inviter's language: the invitee has none yet.
    let link = format!("{}/console/link/{token}", s.public_url);
    let by = if session.person.name.is_empty() {
        session.person.email.clone()
    } else {
        session.person.name.clone()
    };
    let body = t.0.fill(
        "console.mail_invite_body",
        &[("by", &by), ("shop", &shop), ("role", t.role(role)), ("link", &link)],
    );
    let subject = t.fill("console.mail_invite_subject", "shop", &shop);
    if let Err(why) = crate::adapters::mail::send_now(&s.config, &email, &subject, body).await {
        tracing::warn!(%why, "an invitation was not sent");
        let text = t.get("console.error").to_owned();
        return render(
            &s,
            StatusCode::BAD_GATEWAY,
            &session,
            &account,
            t,
            Some(("error", text)),
        )
        .await;
    }
    let text = t.fill("console.invited", "email", &email);
    render(&s, StatusCode::OK, &session, &account, t, Some(("ok", text))).await
}

#[derive(Deserialize)]
struct RoleForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    role: String,
}

async fn set_role(
    State(s): State<AppState>,
    language: Language,
    headers: HeaderMap,
    Path(person): Path<String>,
    form: Submitted<RoleForm>,
) -> Response {
    let (session, account, t, f) = match owner_form(&s, &headers, &language, form, |f| &f.csrf).await {
        Ok(o) => o,
        Err(r) => return r,
    };
    let Some(role) = Role::parse(&f.role) else {
        let text = format!("{}: {}", t.get("console.role"), t.get("console.not_found"));
        return render(
            &s,
            StatusCode::BAD_REQUEST,
            &session,
            &account,
            t,
            Some(("error", text)),
        )
        .await;
    };
    let done = s.people.set_role(&account, &person, role).await;
    after_change(&s, done, &session, &account, t).await
}

#[derive(Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

async fn remove(
    State(s): State<AppState>,
    language: Language,
    headers: HeaderMap,
    Path(person): Path<String>,
    form: Submitted<CsrfForm>,
) -> Response {
    let (session, account, t, _) = match owner_form(&s, &headers, &language, form, |f| &f.csrf).await {
        Ok(o) => o,
        Err(r) => return r,
    };
    let done = s.people.remove(&account, &person).await;
    after_change(&s, done, &session, &account, t).await
}

/// Back to the team after a change; a change refused for leaving the shop
/// without an owner says so.
async fn after_change(
    s: &AppState,
    done: Result<bool, sqlx::Error>,
    session: &Session,
    account: &SellerId,
    t: Words,
) -> Response {
    match done {
        Ok(true) => Redirect::to("/console/team").into_response(),
        Ok(false) => {
            let text = t.get("console.last_owner").to_owned();
            render(s, StatusCode::CONFLICT, session, account, t, Some(("error", text))).await
        }
        Err(e) => unavailable(t, &e),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn days_are_civil_dates() {
        assert_eq!(super::day(0), "1970-01-01");
        assert_eq!(super::day(1_796_601_600_000), "2026-12-07");
        assert_eq!(super::day(951_782_400_000), "2000-02-29");
    }
}
