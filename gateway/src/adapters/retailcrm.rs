//! The RetailCRM connector (optional, per seller), over RetailCRM's
//! published API v5: each paid order is created in the seller's CRM
//! (`POST /api/v5/orders/create`: the buyer, the items, the delivery and
//! its address, the payment) by a worker with retries, within the API's
//! limit of 10 requests a second; and the CRM's status changes come back
//! through a trigger the seller sets up in RetailCRM ("HTTP request" to
//! Haul's hook URL, which carries a secret of its own). The hook is only a
//! nudge: Haul reads the order's status from the CRM's API itself
//! (`GET /api/v5/orders/{externalId}?by=externalId`) and moves fulfilment
//! as the seller's status map says, so a forged call can change nothing the
//! CRM does not say. A seller without RetailCRM loses nothing.

use std::collections::BTreeMap;
use std::time::Duration;

use payments::fulfilment::{Fulfilment, Request};
use payments::ids::OrderId;
use payments::vault::Vault;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sqlx::{AnyPool, Row};
use tokio::sync::watch;

use crate::state::AppState;

/// How Haul's orders map onto the seller's CRM.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mapping {
    /// The CRM's order method code (its "способ оформления").
    #[serde(default)]
    pub order_method: Option<String>,
    #[serde(default)]
    pub order_type: Option<String>,
    /// The CRM's payment type code of a paid order.
    #[serde(default)]
    pub payment_type: Option<String>,
    /// Haul's delivery option id → the CRM's delivery type code.
    #[serde(default)]
    pub delivery_codes: BTreeMap<String, String>,
    /// The CRM's status code → the fulfilment state it means.
    #[serde(default)]
    pub status_map: BTreeMap<String, Fulfilment>,
}

/// A seller's connector.
#[derive(Debug, Clone)]
pub struct Connector {
    pub seller: String,
    pub base_url: String,
    pub api_key: String,
    pub site: String,
    pub mapping: Mapping,
    pub hook_token: String,
    pub enabled: bool,
}

fn context(seller: &str) -> String {
    format!("retailcrm:{seller}")
}

fn from_row(row: &sqlx::any::AnyRow, vault: &Vault) -> Result<Connector, sqlx::Error> {
    let seller: String = row.try_get("seller_id")?;
    let sealed: String = row.try_get("api_key")?;
    let settings: String = row.try_get("settings")?;
    Ok(Connector {
        api_key: vault.open(&sealed, &context(&seller)).unwrap_or_default(),
        base_url: row.try_get("base_url")?,
        site: row.try_get("site")?,
        mapping: serde_json::from_str(&settings).unwrap_or_default(),
        hook_token: row.try_get("hook_token")?,
        enabled: row.try_get::<i64, _>("enabled")? != 0,
        seller,
    })
}

/// A seller's connector, if it has one.
pub async fn connector(s: &AppState, seller: &str) -> Result<Option<Connector>, sqlx::Error> {
    load(&s.pool, s.sellers.vault(), seller).await
}

/// The connector a hook URL's secret names.
pub async fn connector_of_hook(s: &AppState, token: &str) -> Result<Option<Connector>, sqlx::Error> {
    by_hook(&s.pool, s.sellers.vault(), token).await
}

/// Saves a seller's connector.
pub async fn keep(s: &AppState, c: &Connector) -> Result<(), sqlx::Error> {
    save(&s.pool, s.sellers.vault(), c, s.payments.now()).await
}

/// Removes a seller's connector; whether it had one.
pub async fn forget(s: &AppState, seller: &str) -> Result<bool, sqlx::Error> {
    remove(&s.pool, seller).await
}

async fn load(pool: &AnyPool, vault: &Vault, seller: &str) -> Result<Option<Connector>, sqlx::Error> {
    let row = sqlx::query("SELECT * FROM crm_connectors WHERE seller_id = $1")
        .bind(seller)
        .fetch_optional(pool)
        .await?;
    row.as_ref().map(|r| from_row(r, vault)).transpose()
}

async fn by_hook(pool: &AnyPool, vault: &Vault, token: &str) -> Result<Option<Connector>, sqlx::Error> {
    let row = sqlx::query("SELECT * FROM crm_connectors WHERE hook_token = $1")
        .bind(token)
        .fetch_optional(pool)
        .await?;
    row.as_ref().map(|r| from_row(r, vault)).transpose()
}

/// Saves a connector (its API key sealed); the hook token stays when it has one.
async fn save(pool: &AnyPool, vault: &Vault, c: &Connector, now: i64) -> Result<(), sqlx::Error> {
    let settings = serde_json::to_string(&c.mapping).unwrap_or_else(|_| "{}".into());
    sqlx::query(
        "INSERT INTO crm_connectors (seller_id, base_url, api_key, site, settings, hook_token, enabled, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) ON CONFLICT (seller_id) DO UPDATE SET base_url = $2, api_key = $3, \
         site = $4, settings = $5, enabled = $7, updated_at = $8",
    )
    .bind(&c.seller)
    .bind(&c.base_url)
    .bind(vault.seal(&c.api_key, &context(&c.seller)))
    .bind(&c.site)
    .bind(settings)
    .bind(&c.hook_token)
    .bind(i64::from(c.enabled))
    .bind(now)
    .execute(pool)
    .await?;
    Ok(())
}

async fn remove(pool: &AnyPool, seller: &str) -> Result<bool, sqlx::Error> {
    Ok(sqlx::query("DELETE FROM crm_connectors WHERE seller_id = $1")
        .bind(seller)
        .execute(pool)
        .await?
        .rows_affected()
        == 1)
}

/// What went wrong with a call to the CRM.
#[derive(Debug, thiserror::Error)]
pub enum CrmError {
    /// Over the API's rate limit (503): try again shortly.
    #[error("the CRM is busy (over its rate limit)")]
    Busy,
    /// The CRM refused the request (its `errorMsg` and `errors`).
    #[error("the CRM refused: {0}")]
    Refused(String),
    #[error("the CRM could not be reached: {0}")]
    Unreachable(String),
}

fn major(minor: i64, currency: &str) -> Value {
    let digits = streams::money::Currency::parse(currency).map_or(2, |c| u32::from(c.exponent()));
    let scale = 10_f64.powi(digits as i32);
    json!((minor as f64) / scale)
}

async fn call(req: reqwest::RequestBuilder, key: &str) -> Result<Value, CrmError> {
    let r = req
        .header("X-API-KEY", key)
        .send()
        .await
        .map_err(|e| CrmError::Unreachable(e.without_url().to_string()))?;
    let status = r.status();
    let body: Value = r.json().await.unwrap_or(Value::Null);
    if status.as_u16() == 503 || status.as_u16() == 429 {
        return Err(CrmError::Busy);
    }
    if status.is_success() && body["success"] == true {
        return Ok(body);
    }
    let msg = body["errorMsg"].as_str().unwrap_or("no reason given");
    let errors = body.get("errors").map(|e| format!(" {e}")).unwrap_or_default();
    Err(CrmError::Refused(
        format!("{status}: {msg}{errors}").chars().take(300).collect(),
    ))
}

/// The order as RetailCRM's `orders/create` takes it.
async fn order_payload(s: &AppState, c: &Connector, order_id: &str) -> Result<Value, String> {
    let oid = OrderId::parse(order_id).map_err(|_| "not an order id".to_owned())?;
    let o = s
        .payments
        .store()
        .order(&oid)
        .await
        .map_err(|e| e.to_string())?
        .ok_or("the order is gone")?;
    let session = s.payments.session_of_order(order_id).await.map_err(|e| e.to_string())?;
    let buyer = session.as_ref().and_then(|cs| cs.buyer.clone());
    let items: Vec<Value> = session
        .as_ref()
        .map(|cs| cs.items.as_slice())
        .unwrap_or_default()
        .iter()
        .filter(|i| !(i.payment_object == "service" && i.name.starts_with("Delivery: ")))
        .map(|i| json!({ "productName": i.name, "initialPrice": major(i.price_minor, &o.currency), "quantity": i.quantity }))
        .collect();
    let created = crate::adapters::retailcrm::crm_time(o.created_at);
    let mut order = json!({
        "externalId": o.id,
        "number": o.reference.clone().unwrap_or_else(|| o.id.to_string()),
        "createdAt": created,
        "status": "new",
        "items": items,
        "payments": [{ "status": "paid", "amount": major(o.amount_minor - o.refunded_minor, &o.currency),
                       "type": c.mapping.payment_type }],
    });
    if let Some(m) = &c.mapping.order_method {
        order["orderMethod"] = json!(m);
    }
    if let Some(t) = &c.mapping.order_type {
        order["orderType"] = json!(t);
    }
    let email = session.as_ref().and_then(|cs| cs.customer_email.clone());
    let phone = session.as_ref().and_then(|cs| cs.customer_phone.clone());
    let name = buyer.as_ref().and_then(|b| b.name.clone());
    if let Some(n) = &name {
        let (first, last) = n.split_once(' ').map_or((n.as_str(), ""), |(f, l)| (f, l));
        order["firstName"] = json!(first);
        if !last.is_empty() {
            order["lastName"] = json!(last);
        }
    }
    if let Some(e) = email {
        order["email"] = json!(e);
    }
    if let Some(p) = phone {
        order["phone"] = json!(p);
    }
    if let Some(d) = buyer.as_ref().and_then(|b| b.delivery.clone()) {
        let mut delivery = json!({ "cost": major(d.price_minor, &o.currency) });
        if let Some(code) = c.mapping.delivery_codes.get(&d.id) {
            delivery["code"] = json!(code);
        }
        if let Some(a) = buyer.as_ref().and_then(|b| b.address.clone()) {
            let text = [Some(a.line1.clone()), a.line2.clone(), Some(a.city.clone())]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(", ");
            delivery["address"] = json!({ "countryIso": a.country, "region": a.region, "city": a.city,
                                          "index": a.postal_code, "text": text });
        } else if let Some(point) = d.address {
            delivery["address"] = json!({ "text": point });
        }
        order["delivery"] = delivery;
    }
    Ok(order)
}

/// RetailCRM's time form (`Y-m-d H:i:s`, UTC).
pub fn crm_time(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Creates one paid order in the CRM; its CRM id.
pub async fn export(s: &AppState, http: &reqwest::Client, c: &Connector, order_id: &str) -> Result<String, CrmError> {
    let order = order_payload(s, c, order_id).await.map_err(CrmError::Refused)?;
    let form = [("site", c.site.clone()), ("order", order.to_string())];
    let body = call(
        http.post(format!("{}/api/v5/orders/create", c.base_url)).form(&form),
        &c.api_key,
    )
    .await?;
    Ok(match &body["id"] {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        _ => String::new(),
    })
}

/// The order as the CRM has it (by Haul's id as its `externalId`).
pub async fn crm_order(http: &reqwest::Client, c: &Connector, order_id: &str) -> Result<Value, CrmError> {
    let url = format!("{}/api/v5/orders/{order_id}", c.base_url);
    let body = call(
        http.get(url).query(&[("by", "externalId"), ("site", c.site.as_str())]),
        &c.api_key,
    )
    .await?;
    Ok(body["order"].clone())
}

/// Waits after each failed export (then given up): 30 s, 2 min, 10 min, 1 h, 6 h.
const SCHEDULE_MS: &[i64] = &[30_000, 120_000, 600_000, 3_600_000, 21_600_000];
/// The API takes 10 requests a second: one node leaves 120 ms between them.
const SPACING: Duration = Duration::from_millis(120);

/// Exports due orders until the node stops.
pub async fn run(s: AppState, mut stop: watch::Receiver<bool>) {
    let http = match crate::adapters::webhooks::client(s.config.webhooks_allow_private) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "the CRM client could not be built; orders are not exported");
            return;
        }
    };
    loop {
        let now = s.payments.now();
        let due = sqlx::query(
            "SELECT order_id, seller_id, attempts FROM crm_exports WHERE state = 'pending' AND next_at <= $1 \
             AND claimed_until < $1 ORDER BY next_at LIMIT 20",
        )
        .bind(now)
        .fetch_all(&s.pool)
        .await;
        match due {
            Ok(rows) => {
                for r in rows {
                    let (Ok(order), Ok(seller), Ok(attempts)) = (
                        r.try_get::<String, _>("order_id"),
                        r.try_get::<String, _>("seller_id"),
                        r.try_get::<i64, _>("attempts"),
                    ) else {
                        continue;
                    };
                    export_one(&s, &http, &order, &seller, attempts).await;
                    tokio::time::sleep(SPACING).await;
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not look for orders to export to the CRM"),
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            _ = stop.changed() => return,
        }
        if *stop.borrow() {
            return;
        }
    }
}

async fn export_one(s: &AppState, http: &reqwest::Client, order: &str, seller: &str, attempts: i64) {
    let now = s.payments.now();
    let claimed = sqlx::query(
        "UPDATE crm_exports SET claimed_until = $1 WHERE order_id = $2 AND state = 'pending' AND claimed_until < $3",
    )
    .bind(now + 60_000)
    .bind(order)
    .bind(now)
    .execute(&s.pool)
    .await
    .is_ok_and(|r| r.rows_affected() == 1);
    if !claimed {
        return;
    }
    let connector = load(&s.pool, s.sellers.vault(), seller).await.ok().flatten();
    let outcome = match connector.filter(|c| c.enabled) {
        None => Err(CrmError::Refused("the connector was removed or disabled".into())),
        Some(c) => export(s, http, &c, order).await,
    };
    let now = s.payments.now();
    let q = match &outcome {
        Ok(crm_id) => {
            tracing::info!(%order, crm_id = %crm_id, "order exported to the CRM");
            sqlx::query("UPDATE crm_exports SET state = 'done', crm_id = $1, done_at = $2, attempts = attempts + 1 WHERE order_id = $3")
                .bind(crm_id.clone())
                .bind(now)
                .bind(order)
        }
        // Busy: free it for the next round, after the worker waits a second.
        Err(CrmError::Busy) => sqlx::query("UPDATE crm_exports SET claimed_until = 0 WHERE order_id = $1").bind(order),
        Err(e) => {
            tracing::warn!(%order, error = %e, "an order could not be exported to the CRM: retried");
            let wait = SCHEDULE_MS.get(attempts as usize).copied();
            sqlx::query(
                "UPDATE crm_exports SET state = $1, next_at = $2, claimed_until = 0, attempts = attempts + 1, \
                 last_error = $3 WHERE order_id = $4",
            )
            .bind(if wait.is_some() { "pending" } else { "failed" })
            .bind(now + wait.unwrap_or(0))
            .bind(e.to_string())
            .bind(order)
        }
    };
    if let Err(e) = q.execute(&s.pool).await {
        tracing::warn!(%order, error = %e, "a CRM export could not be recorded");
    }
    if matches!(outcome, Err(CrmError::Busy)) {
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// What a trigger's call did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Followed {
    pub order_id: String,
    pub crm_status: Option<String>,
    /// The fulfilment state Haul moved the order to, if it moved.
    pub moved_to: Option<Fulfilment>,
    pub note: Option<String>,
}

/// Follows a CRM trigger for one order: reads the order's status from the
/// CRM and moves Haul's fulfilment as the seller's map says.
pub async fn follow(s: &AppState, c: &Connector, order_id: &str) -> Result<Followed, crate::http::error::ApiError> {
    use crate::http::error::ApiError;
    let oid = OrderId::parse(order_id).map_err(|_| ApiError::InvalidField {
        field: "externalId",
        message: "not an order id of Haul's".into(),
    })?;
    let order = match s
        .payments
        .store()
        .order(&oid)
        .await
        .map_err(|e| ApiError::Unavailable(Box::new(e)))?
    {
        Some(o) if o.seller_id == c.seller => o,
        _ => return Err(ApiError::NotFound("order")),
    };
    let http = crate::adapters::webhooks::client(s.config.webhooks_allow_private).map_err(ApiError::internal)?;
    let crm = crm_order(&http, c, order_id).await.map_err(|e| ApiError::Acquirer {
        code: "crm_unavailable",
        message: e.to_string(),
    })?;
    let status = crm["status"].as_str().map(str::to_owned);
    let mut done = Followed {
        order_id: order_id.to_owned(),
        crm_status: status.clone(),
        moved_to: None,
        note: None,
    };
    let Some(to) = status.as_ref().and_then(|st| c.mapping.status_map.get(st)).copied() else {
        done.note = Some("the CRM's status maps to no fulfilment state".into());
        return Ok(done);
    };
    let (carrier, tracking) = if to == Fulfilment::Shipped {
        let track = crm["delivery"]["data"]["trackNumber"].as_str().map(str::to_owned);
        let carrier = crm["delivery"]["code"].as_str().unwrap_or("delivery").to_owned();
        let Some(track) = track else {
            done.note = Some("shipped in the CRM without a track number: not moved".into());
            return Ok(done);
        };
        (Some(carrier), Some(track))
    } else {
        (None, None)
    };
    let req = Request {
        to,
        actor: "retailcrm".into(),
        carrier,
        tracking_number: tracking,
        note: Some(format!("RetailCRM status {}", status.unwrap_or_default())),
        refund_minor: (to == Fulfilment::Returned).then_some(0),
    };
    match s.payments.fulfil(&order, &req).await {
        Ok(d) => {
            done.moved_to = d.fresh.then_some(to);
            if !d.fresh {
                done.note = Some("already there".into());
            }
        }
        Err(payments::service::Error::Conflict { message, .. }) => done.note = Some(message),
        Err(e) => return Err(e.into()),
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_as_the_crm_writes_them() {
        assert_eq!(crm_time(0), "1970-01-01 00:00:00");
        assert_eq!(crm_time(1_796_349_307_645), "2026-12-04 01:55:07");
        assert_eq!(crm_time(951_782_400_000), "2000-02-29 00:00:00");
    }
}
