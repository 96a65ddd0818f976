//! RetailCRM's side of its API v5, as its public documentation describes
//! it, for the connector's tests: `POST /api/v5/orders/create` (form fields
//! `site` and `order`, a JSON string) and `GET /api/v5/orders/{externalId}
//! ?by=externalId&site=…`, the key in `X-API-KEY` (or `apiKey`), answers
//! `{"success": true, …}` or `{"success": false, "errorMsg", "errors"}`,
//! and the limit of 10 requests a second answered 503.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use serde_json::{json, Value};

#[derive(Default)]
pub struct Crm {
    pub key: String,
    pub site: String,
    next: u64,
    /// By externalId: (CRM id, the order as created, its status, delivery data).
    pub orders: HashMap<String, (u64, Value, String, Value)>,
    recent: VecDeque<Instant>,
    /// Requests answered 503 for the rate limit.
    pub limited: usize,
    /// Answer the next N requests 503 whatever the rate.
    pub busy_next: usize,
    /// Requests that went over 10 in a second (the client's fault).
    pub over_rate: usize,
}

pub type Shared = Arc<Mutex<Crm>>;

fn no(status: StatusCode, msg: &str, errors: Option<Value>) -> (StatusCode, Json<Value>) {
    let mut v = json!({ "success": false, "errorMsg": msg });
    if let Some(e) = errors {
        v["errors"] = e;
    }
    (status, Json(v))
}

/// The key and the rate, as RetailCRM checks them first.
fn admit(crm: &mut Crm, headers: &HeaderMap, query_key: Option<&str>) -> Result<(), (StatusCode, Json<Value>)> {
    let key = headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .or(query_key)
        .unwrap_or("");
    if key != crm.key {
        return Err(no(StatusCode::FORBIDDEN, "Wrong \"apiKey\" value.", None));
    }
    let now = Instant::now();
    while crm
        .recent
        .front()
        .is_some_and(|t| now.duration_since(*t).as_millis() >= 1000)
    {
        crm.recent.pop_front();
    }
    if crm.busy_next > 0 {
        crm.busy_next -= 1;
        crm.limited += 1;
        return Err(no(
            StatusCode::SERVICE_UNAVAILABLE,
            "Service temporarily unavailable",
            None,
        ));
    }
    if crm.recent.len() >= 10 {
        crm.over_rate += 1;
        crm.limited += 1;
        return Err(no(
            StatusCode::SERVICE_UNAVAILABLE,
            "Service temporarily unavailable",
            None,
        ));
    }
    crm.recent.push_back(now);
    Ok(())
}

async fn create(
    State(crm): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
    Form(form): Form<HashMap<String, String>>,
) -> (StatusCode, Json<Value>) {
    let mut crm = crm.lock().unwrap();
    if let Err(e) = admit(&mut crm, &headers, q.get("apiKey").map(String::as_str)) {
        return e;
    }
    if form.get("site") != Some(&crm.site) {
        return no(StatusCode::BAD_REQUEST, "Site is not found", None);
    }
    let Some(order) = form.get("order").and_then(|o| serde_json::from_str::<Value>(o).ok()) else {
        return no(
            StatusCode::BAD_REQUEST,
            "Parameter 'order' is missing or not JSON",
            None,
        );
    };
    let mut errors = serde_json::Map::new();
    let items = order["items"].as_array().cloned().unwrap_or_default();
    if items.is_empty() {
        errors.insert("items".into(), json!("This value should not be blank."));
    }
    for (i, item) in items.iter().enumerate() {
        if !item["initialPrice"].is_number() || !item["quantity"].is_number() || !item["productName"].is_string() {
            errors.insert(
                format!("items[{i}]"),
                json!("productName, initialPrice and quantity are required."),
            );
        }
    }
    let Some(external) = order["externalId"].as_str().map(str::to_owned) else {
        errors.insert("externalId".into(), json!("This value should not be blank."));
        return no(
            StatusCode::BAD_REQUEST,
            "Order is not loaded",
            Some(Value::Object(errors)),
        );
    };
    if crm.orders.contains_key(&external) {
        errors.insert("externalId".into(), json!("Order with this externalId already exists."));
    }
    if !errors.is_empty() {
        return no(
            StatusCode::BAD_REQUEST,
            "Order is not loaded",
            Some(Value::Object(errors)),
        );
    }
    crm.next += 1;
    let id = crm.next;
    let status = order["status"].as_str().unwrap_or("new").to_owned();
    crm.orders.insert(external, (id, order.clone(), status, json!({})));
    (
        StatusCode::CREATED,
        Json(json!({ "success": true, "id": id, "order": { "id": id } })),
    )
}

async fn read(
    State(crm): State<Shared>,
    headers: HeaderMap,
    Path(external): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> (StatusCode, Json<Value>) {
    let mut crm = crm.lock().unwrap();
    if let Err(e) = admit(&mut crm, &headers, q.get("apiKey").map(String::as_str)) {
        return e;
    }
    if q.get("by").map(String::as_str) != Some("externalId") || q.get("site") != Some(&crm.site) {
        return no(StatusCode::BAD_REQUEST, "by=externalId needs the site", None);
    }
    let Some((id, order, status, data)) = crm.orders.get(&external) else {
        return no(StatusCode::NOT_FOUND, "Not found", None);
    };
    let mut o = order.clone();
    o["id"] = json!(id);
    o["status"] = json!(status);
    let code = order["delivery"]["code"].clone();
    o["delivery"] = json!({ "code": code, "data": data });
    (StatusCode::OK, Json(json!({ "success": true, "order": o })))
}

/// A CRM at a fresh address: (its state, its base URL).
pub async fn start(key: &str, site: &str) -> (Shared, String) {
    let crm: Shared = Arc::new(Mutex::new(Crm {
        key: key.into(),
        site: site.into(),
        ..Crm::default()
    }));
    let app = Router::new()
        .route("/api/v5/orders/create", post(create))
        .route("/api/v5/orders/{external}", get(read))
        .with_state(crm.clone());
    let (listener, base) = super::bind().await;
    super::serve(listener, app);
    (crm, base)
}

/// A manager moves an order in the CRM (and sets its track number).
pub fn set_status(crm: &Shared, external: &str, status: &str, track: Option<&str>) {
    let mut crm = crm.lock().unwrap();
    let o = crm.orders.get_mut(external).expect("the order is in the CRM");
    o.2 = status.into();
    if let Some(t) = track {
        o.3 = json!({ "trackNumber": t });
    }
}
