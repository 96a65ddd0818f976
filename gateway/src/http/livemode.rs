//! `livemode` on every API object. Whoever learns which seller a request
//! acts for (the API key's extractor, the idempotency layer, a buyer's
//! handler from the stream or order it serves) puts that seller's mode in
//! the request's [`Mode`] slot; this layer then writes `"livemode"` into
//! the JSON object answered, and into each object of a list's `data`.
//! Errors and non-JSON answers pass unchanged.

use std::sync::{Arc, OnceLock};

use axum::body::{to_bytes, Body};
use axum::extract::Request;
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::http::error::ApiError;

/// The mode of the seller a request turned out to act for.
#[derive(Clone, Default)]
pub struct Mode(Arc<OnceLock<bool>>);

impl Mode {
    /// Records the mode (the first one recorded stands).
    pub fn set(&self, live: bool) {
        let _ = self.0.set(live);
    }
}

/// An answer larger than this is passed as it is (none is, today).
const LIMIT: usize = 16 << 20;

pub async fn layer(mut req: Request, next: Next) -> Response {
    let mode = Mode::default();
    req.extensions_mut().insert(mode.clone());
    let resp = next.run(req).await;
    let Some(&live) = mode.0.get() else { return resp };
    let json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !resp.status().is_success() || !json {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let bytes = match to_bytes(body, LIMIT).await {
        Ok(b) => b,
        Err(e) => return ApiError::Internal(format!("reading an answer: {e}").into()).into_response(),
    };
    let Ok(mut value) = serde_json::from_slice::<Value>(&bytes) else {
        return Response::from_parts(parts, Body::from(bytes));
    };
    mark(&mut value, live);
    match serde_json::to_vec(&value) {
        Ok(out) => {
            parts.headers.remove(header::CONTENT_LENGTH);
            Response::from_parts(parts, Body::from(out))
        }
        Err(_) => Response::from_parts(parts, Body::from(bytes)),
    }
}

fn mark(value: &mut Value, live: bool) {
    let Value::Object(fields) = value else { return };
    fields.entry("livemode").or_insert(Value::Bool(live));
    if let Some(Value::Array(items)) = fields.get_mut("data") {
        for item in items {
            if let Value::Object(o) = item {
                o.entry("livemode").or_insert(Value::Bool(live));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::mark;
    use serde_json::json;

    #[test]
    fn objects_and_list_items_get_the_flag() {
        let mut one = json!({ "id": "str_1" });
        mark(&mut one, false);
        assert_eq!(one, json!({ "id": "str_1", "livemode": false }));
        let mut list = json!({ "data": [{ "id": "a" }, { "id": "b" }], "has_more": false });
        mark(&mut list, true);
        assert_eq!(
            list,
            json!({ "data": [{ "id": "a", "livemode": true }, { "id": "b", "livemode": true }],
                    "has_more": false, "livemode": true })
        );
        let mut scalar = json!(3);
        mark(&mut scalar, true);
        assert_eq!(scalar, json!(3));
    }
}
