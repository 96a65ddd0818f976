//! The one catalogue of API errors, mapped once to HTTP: a stable JSON body
//! `{ "error": { "code", "message", … } }` and the right status. Internal
//! failures are logged with their source and answered with an opaque 500/503.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use payments::service::Error as PaymentsError;
use serde_json::{json, Map, Value};
use streams::inventory::Refusal;
use streams::service::Error as DomainError;

type Source = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    #[error("{field}: {message}")]
    InvalidField { field: &'static str, message: String },
    /// A field inside the body, named by its path (`items[1].vat`).
    #[error("{field}: {message}")]
    InvalidPath { field: String, message: String },
    #[error("{message}")]
    Unauthorized { code: &'static str, message: String },
    /// Known, but not allowed this (a member's role, a missing CSRF token).
    #[error("{message}")]
    Forbidden { code: &'static str, message: String },
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    #[error(transparent)]
    Refused(Refusal),
    #[error("request body too large")]
    PayloadTooLarge,
    #[error("unsupported content type")]
    UnsupportedMediaType,
    #[error("too many requests")]
    RateLimited { retry_after_secs: u64 },
    /// The acquiring banks could not take the payment (502).
    #[error("{message}")]
    Acquirer { code: &'static str, message: String },
    #[error("a backing store is unavailable")]
    Unavailable(#[source] Source),
    #[error("internal error")]
    Internal(#[source] Source),
}

impl ApiError {
    pub fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest { .. } | ApiError::InvalidField { .. } | ApiError::InvalidPath { .. } => {
                StatusCode::BAD_REQUEST
            }
            ApiError::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden { .. } => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Refused(Refusal::SignedViewerRequired) => StatusCode::FORBIDDEN,
            ApiError::Conflict { .. } | ApiError::Refused(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Acquirer { .. } => StatusCode::BAD_GATEWAY,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest { code, .. }
            | ApiError::Unauthorized { code, .. }
            | ApiError::Forbidden { code, .. }
            | ApiError::Conflict { code, .. }
            | ApiError::Acquirer { code, .. } => code,
            ApiError::InvalidField { .. } | ApiError::InvalidPath { .. } => "invalid_field",
            ApiError::NotFound(_) => "not_found",
            ApiError::Refused(r) => r.code(),
            ApiError::PayloadTooLarge => "body_too_large",
            ApiError::UnsupportedMediaType => "unsupported_media_type",
            ApiError::RateLimited { .. } => "rate_limited",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::Internal(_) => "internal",
        }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::BadRequest {
            code,
            message: message.into(),
        }
    }

    pub fn unauthorized(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::Unauthorized {
            code,
            message: message.into(),
        }
    }

    pub fn internal(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        ApiError::Internal(Box::new(e))
    }

    fn extra(&self) -> Map<String, Value> {
        let mut m = Map::new();
        match self {
            ApiError::InvalidField { field, .. } => {
                m.insert("field".into(), json!(field));
            }
            ApiError::InvalidPath { field, .. } => {
                m.insert("field".into(), json!(field));
            }
            ApiError::Refused(Refusal::NotEnoughStock { left }) => {
                m.insert("units_left".into(), json!(left));
            }
            ApiError::Refused(Refusal::OverLimit { remaining } | Refusal::OverGroupLimit { remaining }) => {
                m.insert("remaining".into(), json!(remaining));
            }
            ApiError::RateLimited { retry_after_secs } => {
                m.insert("retry_after".into(), json!(retry_after_secs));
            }
            _ => {}
        }
        m
    }
}

impl From<DomainError> for ApiError {
    fn from(e: DomainError) -> Self {
        match e {
            // A refusal keeps its details (units left, remaining allowance).
            // An engine that lost an offer is rebuilt by the domain; if that
            // refusal still reaches here the engine is not answering properly.
            DomainError::Refused(r) if r != Refusal::NotLoaded => ApiError::Refused(r),
            e => crate::adapters::stock::answer(e).into(),
        }
    }
}

impl From<PaymentsError> for ApiError {
    fn from(e: PaymentsError) -> Self {
        match e {
            PaymentsError::NotFound(what) => ApiError::NotFound(what),
            PaymentsError::Invalid { field, message } => ApiError::InvalidField { field, message },
            PaymentsError::Conflict { code, message } => ApiError::Conflict { code, message },
            PaymentsError::Bank { code, message } => ApiError::Acquirer { code, message },
            PaymentsError::Unavailable(e) => ApiError::Unavailable(e),
            PaymentsError::Internal(e) => ApiError::Internal(e),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status_code();
        match &self {
            ApiError::Internal(source) | ApiError::Unavailable(source) => {
                tracing::error!(error = %self, source = ?source, "request failed");
            }
            _ => tracing::debug!(code = self.code(), error = %self, "request refused"),
        }
        let message = match &self {
            ApiError::Internal(_) => "internal error".to_owned(),
            other => other.to_string(),
        };
        let mut body = Map::new();
        body.insert("code".into(), json!(self.code()));
        body.insert("message".into(), json!(message));
        body.extend(self.extra());
        let mut resp = (status, axum::Json(json!({ "error": body }))).into_response();
        if let ApiError::RateLimited { retry_after_secs } = self {
            if let Ok(v) = HeaderValue::from_str(&retry_after_secs.to_string()) {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        if status == StatusCode::SERVICE_UNAVAILABLE {
            // A store or the stock engine is away; it is tried again at once.
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        resp
    }
}
