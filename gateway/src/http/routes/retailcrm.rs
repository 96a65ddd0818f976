//! Seller API: the RetailCRM connector ([`crate::adapters::retailcrm`]) —
//! set up, read (never its key), removed — and the hook RetailCRM's
//! trigger calls when an order's status changes there.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::adapters::retailcrm::{self, Connector, Mapping};
use crate::http::error::ApiError;
use crate::http::extract::{ClientAddr, Json, Seller};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/integrations/retailcrm", get(read).put(set_up).delete(remove))
        .route("/v1/integrations/retailcrm/hook/{token}", post(hook).get(hook))
}

type Answer = Result<(StatusCode, axum::Json<Value>), ApiError>;

fn unavailable(e: sqlx::Error) -> ApiError {
    ApiError::Unavailable(Box::new(e))
}

fn view(s: &AppState, c: &Connector) -> Value {
    json!({
        "base_url": c.base_url, "site": c.site, "enabled": c.enabled,
        "order_method": c.mapping.order_method, "order_type": c.mapping.order_type,
        "payment_type": c.mapping.payment_type, "delivery_codes": c.mapping.delivery_codes,
        "status_map": c.mapping.status_map,
        // For RetailCRM's trigger ("HTTP request", with the order's
        // externalId): the secret is in the path.
        "hook_url": format!("{}/v1/integrations/retailcrm/hook/{}", s.public_url, c.hook_token),
        "api_key_set": !c.api_key.is_empty(),
    })
}

async fn read(State(s): State<AppState>, Seller(seller): Seller) -> Answer {
    let c = retailcrm::connector(&s, seller.as_str())
        .await
        .map_err(unavailable)?
        .ok_or(ApiError::NotFound("RetailCRM connector"))?;
    Ok((StatusCode::OK, axum::Json(view(&s, &c))))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SetUp {
    base_url: String,
    api_key: String,
    site: String,
    #[serde(default = "yes")]
    enabled: bool,
    #[serde(flatten)]
    mapping: Mapping,
}

fn yes() -> bool {
    true
}

fn code_ok(v: &str) -> bool {
    !v.is_empty() && v.len() <= 100 && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

async fn set_up(State(s): State<AppState>, Seller(seller): Seller, Json(b): Json<SetUp>) -> Answer {
    let invalid = |field: &'static str, message: &str| ApiError::InvalidField {
        field,
        message: message.into(),
    };
    let base = b.base_url.trim_end_matches('/').to_owned();
    crate::adapters::webhooks::check_url(&base, s.config.webhooks_allow_private)
        .await
        .map_err(|m| invalid("base_url", &m))?;
    if !(base.starts_with("https://") || s.config.webhooks_allow_private) {
        return Err(invalid(
            "base_url",
            "must be https (the API key travels with every call)",
        ));
    }
    if b.api_key.trim().is_empty()
        || b.api_key.len() > 200
        || b.api_key.chars().any(|c| c.is_control() || c.is_whitespace())
    {
        return Err(invalid("api_key", "the CRM's API key (1 to 200 visible characters)"));
    }
    if !code_ok(&b.site) {
        return Err(invalid("site", "the CRM's site (store) code"));
    }
    let m = &b.mapping;
    for (field, v) in [
        ("order_method", &m.order_method),
        ("order_type", &m.order_type),
        ("payment_type", &m.payment_type),
    ] {
        if v.as_deref().is_some_and(|v| !code_ok(v)) {
            return Err(invalid(field, "a CRM code (letters, digits, - and _)"));
        }
    }
    if m.delivery_codes.iter().any(|(k, v)| !code_ok(k) || !code_ok(v)) || m.delivery_codes.len() > 50 {
        return Err(invalid("delivery_codes", "Haul delivery ids to CRM delivery codes"));
    }
    if m.status_map.keys().any(|k| !code_ok(k)) || m.status_map.len() > 100 {
        return Err(invalid("status_map", "CRM status codes to fulfilment states"));
    }
    if m.status_map
        .values()
        .any(|f| *f == payments::fulfilment::Fulfilment::New)
    {
        return Err(invalid(
            "status_map",
            "an order is new when paid; map statuses to later states",
        ));
    }
    let existing = retailcrm::connector(&s, seller.as_str()).await.map_err(unavailable)?;
    let c = Connector {
        seller: seller.to_string(),
        base_url: base,
        api_key: b.api_key,
        site: b.site,
        mapping: b.mapping,
        hook_token: existing
            .map(|e| e.hook_token)
            .unwrap_or_else(|| format!("rch_{}", streams::ids::random_token(32))),
        enabled: b.enabled,
    };
    retailcrm::keep(&s, &c).await.map_err(unavailable)?;
    Ok((StatusCode::OK, axum::Json(view(&s, &c))))
}

async fn remove(State(s): State<AppState>, Seller(seller): Seller) -> Answer {
    if !retailcrm::forget(&s, seller.as_str()).await.map_err(unavailable)? {
        return Err(ApiError::NotFound("RetailCRM connector"));
    }
    Ok((StatusCode::OK, axum::Json(json!({ "deleted": true }))))
}

#[derive(Debug, Deserialize)]
struct HookQuery {
    #[serde(rename = "externalId")]
    external_id: Option<String>,
}

/// RetailCRM's trigger: which order changed (its `externalId`, Haul's id).
async fn hook(
    State(s): State<AppState>,
    ClientAddr(addr): ClientAddr,
    Path(token): Path<String>,
    q: Result<Query<HookQuery>, axum::extract::rejection::QueryRejection>,
) -> Answer {
    s.limits.per_addr.check(&addr)?;
    let c = match retailcrm::connector_of_hook(&s, &token).await.map_err(unavailable)? {
        Some(c) if c.enabled => c,
        _ => return Err(ApiError::NotFound("RetailCRM connector")),
    };
    let Ok(Query(HookQuery {
        external_id: Some(order),
    })) = q
    else {
        return Err(ApiError::InvalidField {
            field: "externalId",
            message: "the order's externalId (Haul's order id) as a query parameter".into(),
        });
    };
    let done = retailcrm::follow(&s, &c, &order).await?;
    Ok((StatusCode::OK, axum::Json(json!(done))))
}
