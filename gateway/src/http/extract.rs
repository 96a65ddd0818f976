//! Extractors that answer in Haul's error format: JSON bodies, path ids,
//! seller API keys, viewer tokens, the client address and the buyer's
//! language.

use secrecy::ExposeSecret;
use std::net::{IpAddr, SocketAddr};

use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use serde::de::DeserializeOwned;
use streams::ids::{BuyerId, SellerId};
use widget::Locale;

use crate::http::error::ApiError;
use crate::state::AppState;
use crate::{jwt, sellers};

/// A JSON body; malformed, mistyped or oversized bodies get a clear 4xx.
pub struct Json<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Json(v)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

fn json_rejection(r: JsonRejection) -> ApiError {
    match r.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge,
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::UnsupportedMediaType,
        _ => {
            let code = match r {
                JsonRejection::JsonDataError(_) => "invalid_body",
                _ => "invalid_json",
            };
            ApiError::bad_request(code, r.body_text())
        }
    }
}

/// Parses a path id, answering 400 `invalid_id` for a malformed one.
pub fn id<T, E: std::fmt::Display>(raw: &str, parse: impl Fn(&str) -> Result<T, E>) -> Result<T, ApiError> {
    parse(raw).map_err(|e| ApiError::bad_request("invalid_id", format!("{raw:.80}: {e}")))
}

pub(crate) fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then_some(token.trim())
}

/// A seller authenticated by an API key (`Authorization: Bearer hk_…`),
/// or by a console member's session cookie: then every call that changes
/// something carries the session's `X-CSRF-Token`, and the member's role
/// must reach the operation's area ([`crate::people::area_of`]).
pub struct Seller(pub SellerId);

/// The seller a console session acts for, if the member's role allows the
/// operation.
async fn console_seller(parts: &mut Parts, state: &AppState) -> Result<Option<Seller>, ApiError> {
    let Some((_, session)) = crate::http::console::session_of(state, &parts.headers)
        .await
        .map_err(|e| ApiError::Unavailable(Box::new(e)))?
    else {
        return Ok(None);
    };
    let Some((account, role)) = session.account.clone() else {
        return Err(ApiError::Forbidden {
            code: "no_account",
            message: "this person is not a member of any seller account".into(),
        });
    };
    let write = !matches!(parts.method, axum::http::Method::GET | axum::http::Method::HEAD);
    if write {
        let given = parts
            .headers
            .get("x-csrf-token")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if given.is_empty() || !crate::http::console::same(given, &session.csrf) {
            return Err(ApiError::Forbidden {
                code: "csrf_failed",
                message: "send the session's CSRF token as X-CSRF-Token".into(),
            });
        }
    }
    let path = parts
        .extensions
        .get::<axum::extract::MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    let allowed = match crate::people::area_of(&path) {
        Some(area) => role.allows(area, write),
        None => role == crate::people::Role::Owner,
    };
    if !allowed {
        return Err(ApiError::Forbidden {
            code: "forbidden_role",
            message: format!("a {} may not {} {path}", role.as_str(), parts.method),
        });
    }
    let row = crate::http::console::acting_row(state, &account, session.live)
        .await
        .map_err(|e| ApiError::Unavailable(Box::new(e)))?
        .ok_or_else(|| ApiError::Forbidden {
            code: "no_account",
            message: "this account has no row in this mode".into(),
        })?;
    show_mode(parts, session.live);
    parts.extensions.insert(Actor(format!("person:{}", session.person.id)));
    Ok(Some(Seller(row)))
}

impl FromRequestParts<AppState> for Seller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        if bearer(parts).is_none() {
            if let Some(seller) = console_seller(parts, state).await? {
                return Ok(seller);
            }
        }
        let key = bearer(parts).ok_or_else(|| {
            ApiError::unauthorized("missing_api_key", "send the API key as Authorization: Bearer hk_…")
        })?;
        if !sellers::valid_key_format(key) {
            return Err(ApiError::unauthorized("invalid_api_key", "the API key is not valid"));
        }
        match state.sellers.for_key(key, state.payments.now()).await {
            Ok(Some(owner)) => {
                show_mode(parts, owner.mode.is_live());
                parts.extensions.insert(Actor(format!("api_key:{}", owner.key_id)));
                Ok(Seller(owner.seller))
            }
            Ok(None) => Err(ApiError::unauthorized("invalid_api_key", "the API key is not valid")),
            Err(e) => Err(ApiError::Unavailable(Box::new(e))),
        }
    }
}

/// Who acts, as records name them (`api_key:key_…`): set by [`Seller`],
/// read by handlers that record their actor (take it after `Seller`).
#[derive(Debug, Clone)]
pub struct Actor(pub String);

impl<S: Send + Sync> FromRequestParts<S> for Actor {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Actor>()
            .cloned()
            .ok_or_else(|| ApiError::Internal("the actor is read before the seller".into()))
    }
}

/// Records the mode of the seller a request acts for: every object
/// answered then says `livemode` ([`crate::http::livemode`]).
pub fn show_mode(parts: &Parts, live: bool) {
    if let Some(slot) = parts.extensions.get::<crate::http::livemode::Mode>() {
        slot.set(live);
    }
}

/// Either a seller (an `hk_…` API key, or a console member's session) or a
/// viewer (a viewer token).
pub enum Caller {
    Seller(SellerId),
    Viewer(BuyerId),
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let key = bearer(parts).is_some_and(|t| t.starts_with(sellers::KEY_PREFIX));
        let console = bearer(parts).is_none()
            && crate::http::console::cookie(&parts.headers, &crate::http::console::session_cookie_name(state))
                .is_some();
        if key || console {
            let Seller(s) = Seller::from_request_parts(parts, state).await?;
            Ok(Caller::Seller(s))
        } else {
            let Viewer(v) = Viewer::from_request_parts(parts, state).await?;
            Ok(Caller::Viewer(v))
        }
    }
}

/// A viewer authenticated by a viewer token (`Authorization: Bearer <JWT>`).
pub struct Viewer(pub BuyerId);

impl FromRequestParts<AppState> for Viewer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let token = bearer(parts)
            .ok_or_else(|| ApiError::unauthorized("missing_token", "send a viewer token as Authorization: Bearer"))?;
        let now = state.streams.now() / 1000;
        let claims = jwt::decode(token, state.token_secret.expose_secret().as_bytes(), now)
            .map_err(|e| ApiError::unauthorized(e.code(), e.to_string()))?;
        let buyer =
            BuyerId::parse(&claims.sub).map_err(|e| ApiError::unauthorized("token_bad_claims", format!("sub: {e}")))?;
        Ok(Viewer(buyer))
    }
}

/// The client's address: the peer, or the first `X-Forwarded-For` entry when
/// configured to trust a proxy in front.
pub struct ClientAddr(pub IpAddr);

impl FromRequestParts<AppState> for ClientAddr {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        if state.config.trust_forwarded_for {
            let forwarded = parts
                .headers
                .get("x-forwarded-for")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split(',').next())
                .and_then(|ip| ip.trim().parse().ok());
            if let Some(ip) = forwarded {
                return Ok(ClientAddr(ip));
            }
        }
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ci| ci.0.ip())
            .ok_or_else(|| ApiError::Internal("no peer address on the request".into()))?;
        Ok(ClientAddr(peer))
    }
}

/// What a buyer's request says of the language they read: the one picked
/// on the page (`?lang=`) and the browser's `Accept-Language`. Never
/// refuses: a tag Haul does not speak is no preference.
#[derive(Debug, Clone, Default)]
pub struct Language {
    picked: Option<Locale>,
    accept: Option<Locale>,
}

impl Language {
    /// The page's language: the buyer's pick, then the purchase's
    /// (`recorded`), the browser's, the seller's default.
    pub fn choose(&self, recorded: Option<&str>, seller: Locale) -> Locale {
        self.picked
            .or_else(|| recorded.and_then(Locale::parse))
            .or(self.accept)
            .unwrap_or(seller)
    }

    /// The seller's default language, read fresh enough for a page
    /// (English when it cannot be read: a page still shows).
    pub async fn seller_default(state: &AppState, seller: &str) -> Locale {
        match SellerId::parse(seller) {
            Ok(id) => state
                .sellers
                .settings_fresh(&id)
                .await
                .map(|s| s.locale)
                .unwrap_or_default(),
            Err(_) => Locale::default(),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Language {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let picked = parts.uri.query().and_then(|q| {
            form_urlencoded::parse(q.as_bytes())
                .find(|(k, _)| k == "lang")
                .and_then(|(_, v)| Locale::parse(&v))
        });
        let accept = parts
            .headers
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok())
            .and_then(Locale::from_accept_language);
        Ok(Language { picked, accept })
    }
}
