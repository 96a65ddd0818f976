//! Seller webhooks: endpoints, the outbox, deliveries.
//!
//! A message is written to the outbox in the same transaction as the change
//! it reports ([`enqueue`] takes the caller's transaction), with one delivery
//! row per endpoint that wants its type. Workers claim due deliveries with a
//! lease (so two nodes never send the same one at once), send them signed by
//! the Standard Webhooks scheme, and record the result: delivered; retried on
//! the [`SCHEDULE_MS`] with jitter, about a day in all; or failed. The HTTP
//! side lives in the gateway.

use serde_json::Value;
use sqlx::any::AnyRow;
use sqlx::{Any, AnyPool, Row, Transaction};

use crate::ids::random_body;
use crate::vault::Vault;
use crate::webhook::WebhookSecret;

/// The event types a seller can subscribe to.
pub const EVENT_TYPES: &[&str] = &[
    "order.paid",
    "order.failed",
    "order.expired",
    "order.refunded",
    "order.confirmed",
    "order.packed",
    "order.shipped",
    "order.delivered",
    "order.cancelled",
    "order.returned",
    "order.unconfirmed",
    "hold.expired",
    "payment.disagreement",
    "payment.duplicate",
    "payment.duplicate_refunded",
];

/// Wait after each failed attempt before the next, in ms (then give up):
/// 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h — a little over a day.
pub const SCHEDULE_MS: &[i64] = &[
    5_000,
    5 * 60_000,
    30 * 60_000,
    2 * 3_600_000,
    5 * 3_600_000,
    10 * 3_600_000,
    10 * 3_600_000,
];

/// A seller's endpoint.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub id: String,
    pub seller_id: String,
    pub url: String,
    pub secret: WebhookSecret,
    /// The secret being rotated out, and until when it still signs.
    pub previous: Option<(WebhookSecret, i64)>,
    /// Empty: every type.
    pub event_types: Vec<String>,
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    pub created_at: i64,
}

impl Endpoint {
    /// The secrets that sign at `now` (during a rotation: both).
    pub fn signing_secrets(&self, now: i64) -> Vec<&WebhookSecret> {
        let mut out = vec![&self.secret];
        if let Some((old, until)) = &self.previous {
            if *until > now {
                out.push(old);
            }
        }
        out
    }
}

/// A delivery a worker has claimed.
#[derive(Debug, Clone)]
pub struct Due {
    pub message_id: String,
    pub endpoint: Endpoint,
    pub event_type: String,
    pub payload: String,
    pub attempts: i64,
}

/// Stored secrets start with this: sealed with the credentials key for
/// their endpoint. A value without it was written before sealing, as the
/// plain `whsec_…` (read as it is; sealed at the next rotation).
const SEALED: &str = "sealed:";

fn seal_secret(vault: &Vault, endpoint: &str, which: &str, secret: &WebhookSecret) -> String {
    let context = format!("webhook_endpoints:{endpoint}:{which}");
    format!("{SEALED}{}", vault.seal(&secret.expose(), &context))
}

fn open_secret(vault: &Vault, endpoint: &str, which: &str, stored: &str) -> Option<WebhookSecret> {
    let plain = match stored.strip_prefix(SEALED) {
        Some(sealed) => vault
            .open(sealed, &format!("webhook_endpoints:{endpoint}:{which}"))
            .ok()?,
        None => stored.to_owned(),
    };
    WebhookSecret::parse(&plain).ok()
}

fn endpoint_from_row(vault: &Vault, row: &AnyRow) -> Result<Endpoint, sqlx::Error> {
    let bad = |what: &str| sqlx::Error::Decode(format!("webhook_endpoints: bad {what}").into());
    let id: String = row.try_get("id")?;
    let secret: String = row.try_get("secret")?;
    let previous: Option<String> = row.try_get("previous_secret")?;
    let until: Option<i64> = row.try_get("previous_until")?;
    let types: String = row.try_get("event_types")?;
    let enabled: i64 = row.try_get("enabled")?;
    Ok(Endpoint {
        seller_id: row.try_get("seller_id")?,
        url: row.try_get("url")?,
        secret: open_secret(vault, &id, "secret", &secret).ok_or_else(|| bad("secret"))?,
        previous: match (previous, until) {
            (Some(p), Some(u)) => Some((
                open_secret(vault, &id, "previous", &p).ok_or_else(|| bad("previous secret"))?,
                u,
            )),
            _ => None,
        },
        id,
        event_types: if types == "*" {
            Vec::new()
        } else {
            types.split(' ').map(str::to_owned).collect()
        },
        enabled: enabled != 0,
        disabled_reason: row.try_get("disabled_reason")?,
        created_at: row.try_get("created_at")?,
    })
}

/// Adds an endpoint with a new secret.
pub async fn create_endpoint(
    pool: &AnyPool,
    vault: &Vault,
    seller: &str,
    url: &str,
    event_types: &[String],
    now: i64,
) -> Result<Endpoint, sqlx::Error> {
    let id = format!("ep_{}", random_body());
    let secret = WebhookSecret::generate();
    let types = if event_types.is_empty() {
        "*".to_owned()
    } else {
        event_types.join(" ")
    };
    sqlx::query(
        "INSERT INTO webhook_endpoints (id, seller_id, url, secret, event_types, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&id)
    .bind(seller)
    .bind(url)
    .bind(seal_secret(vault, &id, "secret", &secret))
    .bind(&types)
    .bind(now)
    .execute(pool)
    .await?;
    endpoint(pool, vault, seller, &id)
        .await?
        .ok_or_else(|| sqlx::Error::RowNotFound)
}

pub async fn endpoint(pool: &AnyPool, vault: &Vault, seller: &str, id: &str) -> Result<Option<Endpoint>, sqlx::Error> {
    let row = sqlx::query("SELECT * FROM webhook_endpoints WHERE id = $1 AND seller_id = $2 AND deleted_at IS NULL")
        .bind(id)
        .bind(seller)
        .fetch_optional(pool)
        .await?;
    row.as_ref().map(|r| endpoint_from_row(vault, r)).transpose()
}

pub async fn endpoints(pool: &AnyPool, vault: &Vault, seller: &str) -> Result<Vec<Endpoint>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT * FROM webhook_endpoints WHERE seller_id = $1 AND deleted_at IS NULL ORDER BY created_at, id",
    )
    .bind(seller)
    .fetch_all(pool)
    .await?;
    rows.iter().map(|r| endpoint_from_row(vault, r)).collect()
}

/// What a seller changes of an endpoint (`None`: left as it is).
#[derive(Debug, Default)]
pub struct EndpointChange<'a> {
    pub url: Option<&'a str>,
    /// Empty: every type.
    pub event_types: Option<&'a [String]>,
    pub enabled: Option<bool>,
}

/// Changes an endpoint of the seller's; the endpoint after, or none if
/// there is no such endpoint. Disabled, it gets no new messages and its
/// waiting deliveries wait; enabled again, they go out.
pub async fn update_endpoint(
    pool: &AnyPool,
    vault: &Vault,
    seller: &str,
    id: &str,
    change: &EndpointChange<'_>,
) -> Result<Option<Endpoint>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let found = sqlx::query("SELECT id FROM webhook_endpoints WHERE id = $1 AND seller_id = $2 AND deleted_at IS NULL")
        .bind(id)
        .bind(seller)
        .fetch_optional(&mut *tx)
        .await?;
    if found.is_none() {
        return Ok(None);
    }
    if let Some(url) = change.url {
        sqlx::query("UPDATE webhook_endpoints SET url = $1 WHERE id = $2")
            .bind(url)
            .bind(id)
            .execute(&mut *tx)
            .await?;
    }
    if let Some(types) = change.event_types {
        let types = if types.is_empty() {
            "*".to_owned()
        } else {
            types.join(" ")
        };
        sqlx::query("UPDATE webhook_endpoints SET event_types = $1 WHERE id = $2")
            .bind(types)
            .bind(id)
            .execute(&mut *tx)
            .await?;
    }
    match change.enabled {
        Some(true) => {
            sqlx::query("UPDATE webhook_endpoints SET enabled = 1, disabled_reason = NULL WHERE id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        Some(false) => {
            sqlx::query("UPDATE webhook_endpoints SET enabled = 0, disabled_reason = $1 WHERE id = $2")
                .bind("disabled by the seller")
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        None => {}
    }
    tx.commit().await?;
    endpoint(pool, vault, seller, id).await
}

/// Deletes an endpoint of the seller's: nothing more is sent to it (its
/// waiting deliveries never go out), its log is kept; whether it existed.
pub async fn delete_endpoint(pool: &AnyPool, seller: &str, id: &str, now: i64) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE webhook_endpoints SET deleted_at = $1, enabled = 0, disabled_reason = 'deleted' \
         WHERE id = $2 AND seller_id = $3 AND deleted_at IS NULL",
    )
    .bind(now)
    .bind(id)
    .bind(seller)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// How long a rotated-out secret keeps signing beside the new one.
pub const ROTATION_OVERLAP_MS: i64 = 24 * 3_600_000;

/// A new secret for an endpoint; the old one signs too for
/// [`ROTATION_OVERLAP_MS`], so the seller can switch without missing one.
pub async fn rotate_secret(
    pool: &AnyPool,
    vault: &Vault,
    seller: &str,
    id: &str,
    now: i64,
) -> Result<Option<Endpoint>, sqlx::Error> {
    let Some(ep) = endpoint(pool, vault, seller, id).await? else {
        return Ok(None);
    };
    let new = WebhookSecret::generate();
    sqlx::query(
        "UPDATE webhook_endpoints SET secret = $1, previous_secret = $2, previous_until = $3          WHERE id = $4 AND seller_id = $5",
    )
    .bind(seal_secret(vault, id, "secret", &new))
    .bind(seal_secret(vault, id, "previous", &ep.secret))
    .bind(now + ROTATION_OVERLAP_MS)
    .bind(id)
    .bind(seller)
    .execute(pool)
    .await?;
    endpoint(pool, vault, seller, id).await
}

/// One delivery as the seller sees it in the log.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DeliveryView {
    pub message_id: String,
    pub event_type: String,
    pub state: String,
    pub attempts: i64,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub next_at: Option<i64>,
    pub updated_at: i64,
}

/// The latest deliveries to an endpoint, newest first.
pub async fn deliveries(pool: &AnyPool, endpoint_id: &str, limit: i64) -> Result<Vec<DeliveryView>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT d.*, m.event_type FROM webhook_deliveries d JOIN webhook_messages m ON m.id = d.message_id          WHERE d.endpoint_id = $1 ORDER BY m.created_at DESC, d.message_id DESC LIMIT $2",
    )
    .bind(endpoint_id)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            let state: String = r.try_get("state")?;
            let next_at: i64 = r.try_get("next_at")?;
            Ok(DeliveryView {
                message_id: r.try_get("message_id")?,
                event_type: r.try_get("event_type")?,
                next_at: (state == "pending").then_some(next_at),
                state,
                attempts: r.try_get("attempts")?,
                last_status: r.try_get("last_status")?,
                last_error: r.try_get("last_error")?,
                updated_at: r.try_get("updated_at")?,
            })
        })
        .collect()
}

/// Sends a message to an endpoint again, now (a manual re-send after the
/// seller fixed their side). False when there is no such delivery.
pub async fn resend(pool: &AnyPool, endpoint_id: &str, message_id: &str, now: i64) -> Result<bool, sqlx::Error> {
    Ok(sqlx::query(
        "UPDATE webhook_deliveries SET state = 'pending', next_at = $1, claimed_until = 0, updated_at = $1          WHERE endpoint_id = $2 AND message_id = $3",
    )
    .bind(now)
    .bind(endpoint_id)
    .bind(message_id)
    .execute(pool)
    .await?
    .rows_affected()
        == 1)
}

/// Puts one message in the outbox in a transaction of its own (for events
/// that are not part of a payment change, like an expired hold).
pub async fn enqueue_now(
    pool: &AnyPool,
    seller: &str,
    event_type: &str,
    data: &Value,
    now: i64,
) -> Result<Option<String>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let id = enqueue(&mut tx, seller, event_type, data, now).await?;
    tx.commit().await?;
    Ok(id)
}

/// Stops deliveries to an endpoint (it answered 410 Gone, say).
pub async fn disable_endpoint(pool: &AnyPool, id: &str, reason: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE webhook_endpoints SET enabled = 0, disabled_reason = $1 WHERE id = $2")
        .bind(reason)
        .bind(id)
        .execute(pool)
        .await?;
    Ok(())
}

/// Writes a message and its deliveries inside the caller's transaction.
/// Returns the message id, or `None` when no endpoint wants this type.
pub async fn enqueue(
    tx: &mut Transaction<'_, Any>,
    seller: &str,
    event_type: &str,
    data: &Value,
    now: i64,
) -> Result<Option<String>, sqlx::Error> {
    // The buyer hears of it too, in the same transaction; a paid order goes
    // to the seller's CRM when it has one.
    crate::mail::enqueue_for_event(tx, seller, event_type, data, now).await?;
    if event_type == "order.paid" {
        if let Some(order) = data.get("order_id").and_then(Value::as_str) {
            sqlx::query(
                "INSERT INTO crm_exports (order_id, seller_id, state, next_at, created_at) \
                 SELECT $1, seller_id, 'pending', $2, $2 FROM crm_connectors WHERE seller_id = $3 AND enabled = 1 \
                 ON CONFLICT (order_id) DO NOTHING",
            )
            .bind(order)
            .bind(now)
            .bind(seller)
            .execute(&mut **tx)
            .await?;
        }
    }
    let rows = sqlx::query("SELECT id, event_types FROM webhook_endpoints WHERE seller_id = $1 AND enabled = 1")
        .bind(seller)
        .fetch_all(&mut **tx)
        .await?;
    let mut wanted = Vec::new();
    for row in &rows {
        let types: String = row.try_get("event_types")?;
        if types == "*" || types.split(' ').any(|t| t == event_type) {
            wanted.push(row.try_get::<String, _>("id")?);
        }
    }
    if wanted.is_empty() {
        return Ok(None);
    }
    // Every event says which mode it is from, at the top and on its object.
    let livemode: Option<i64> = sqlx::query_scalar("SELECT livemode FROM sellers WHERE id = $1")
        .bind(seller)
        .fetch_optional(&mut **tx)
        .await?;
    let livemode = livemode.is_none_or(|v| v != 0);
    let mut data = data.clone();
    if let Value::Object(fields) = &mut data {
        fields.insert("livemode".into(), Value::Bool(livemode));
    }
    let id = format!("msg_{}", random_body());
    let payload = serde_json::json!({
        "type": event_type,
        "timestamp": rfc3339(now),
        "livemode": livemode,
        "data": data,
    })
    .to_string();
    let order = data.get("order_id").and_then(Value::as_str).map(str::to_owned);
    sqlx::query(
        "INSERT INTO webhook_messages (id, seller_id, event_type, payload, created_at, order_id) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&id)
    .bind(seller)
    .bind(event_type)
    .bind(&payload)
    .bind(now)
    .bind(order)
    .execute(&mut **tx)
    .await?;
    for ep in wanted {
        sqlx::query(
            "INSERT INTO webhook_deliveries (message_id, endpoint_id, state, next_at, updated_at) \
             VALUES ($1, $2, 'pending', $3, $3)",
        )
        .bind(&id)
        .bind(&ep)
        .bind(now)
        .execute(&mut **tx)
        .await?;
    }
    Ok(Some(id))
}

/// One delivery of a message about an order.
#[derive(Debug, Clone, serde::Serialize)]
pub struct OrderDelivery {
    pub message_id: String,
    pub event_type: String,
    pub endpoint_id: String,
    pub state: String,
    pub attempts: i64,
    pub last_status: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// The deliveries of the seller's webhooks about `order`, oldest first
/// (at most `limit`).
pub async fn order_deliveries(
    pool: &AnyPool,
    seller: &str,
    order: &str,
    limit: i64,
) -> Result<Vec<OrderDelivery>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT m.id AS message_id, m.event_type, m.created_at, d.endpoint_id, d.state, d.attempts, d.last_status, \
         d.updated_at FROM webhook_messages m JOIN webhook_deliveries d ON d.message_id = m.id \
         WHERE m.order_id = $1 AND m.seller_id = $2 ORDER BY m.created_at, m.id, d.endpoint_id LIMIT $3",
    )
    .bind(order)
    .bind(seller)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(OrderDelivery {
                message_id: r.try_get("message_id")?,
                event_type: r.try_get("event_type")?,
                endpoint_id: r.try_get("endpoint_id")?,
                state: r.try_get("state")?,
                attempts: r.try_get("attempts")?,
                last_status: r.try_get("last_status")?,
                created_at: r.try_get("created_at")?,
                updated_at: r.try_get("updated_at")?,
            })
        })
        .collect()
}

/// Claims up to `limit` due deliveries for `lease_ms`.
pub async fn claim_due(
    pool: &AnyPool,
    vault: &Vault,
    now: i64,
    limit: i64,
    lease_ms: i64,
) -> Result<Vec<Due>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT d.message_id, d.attempts, m.event_type, m.payload, e.* \
         FROM webhook_deliveries d \
         JOIN webhook_messages m ON m.id = d.message_id \
         JOIN webhook_endpoints e ON e.id = d.endpoint_id \
         WHERE d.state = 'pending' AND d.next_at <= $1 AND d.claimed_until <= $1 AND e.enabled = 1 \
         ORDER BY d.next_at LIMIT $2",
    )
    .bind(now)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    let mut out = Vec::new();
    for row in &rows {
        let endpoint = endpoint_from_row(vault, row)?;
        let message_id: String = row.try_get("message_id")?;
        let claimed = sqlx::query(
            "UPDATE webhook_deliveries SET claimed_until = $1 \
             WHERE message_id = $2 AND endpoint_id = $3 AND state = 'pending' AND claimed_until <= $4",
        )
        .bind(now + lease_ms)
        .bind(&message_id)
        .bind(&endpoint.id)
        .bind(now)
        .execute(pool)
        .await?
        .rows_affected()
            == 1;
        if claimed {
            out.push(Due {
                message_id,
                event_type: row.try_get("event_type")?,
                payload: row.try_get("payload")?,
                attempts: row.try_get("attempts")?,
                endpoint,
            });
        }
    }
    Ok(out)
}

/// What happened to one attempt at a delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempted {
    Delivered {
        status: u16,
    },
    /// Try again later (or give up when the schedule is spent).
    Retry {
        status: Option<u16>,
        error: String,
    },
    /// Never again (410 Gone, a refused address).
    Failed {
        status: Option<u16>,
        error: String,
    },
}

/// Records an attempt. `jitter` in `[0, 1)` spreads retries (up to +20 %).
/// Returns when the next attempt is due, if there is one.
pub async fn record(
    pool: &AnyPool,
    due: &Due,
    result: &Attempted,
    now: i64,
    jitter: f64,
) -> Result<Option<i64>, sqlx::Error> {
    let attempts = due.attempts + 1;
    let (state, status, error, next_at) = match result {
        Attempted::Delivered { status } => ("delivered", Some(*status), None, None),
        Attempted::Failed { status, error } => ("failed", *status, Some(error.clone()), None),
        Attempted::Retry { status, error } => match SCHEDULE_MS.get(due.attempts as usize) {
            Some(wait) => {
                let next = now + wait + (*wait as f64 * 0.2 * jitter.clamp(0.0, 1.0)) as i64;
                ("pending", *status, Some(error.clone()), Some(next))
            }
            None => ("failed", *status, Some(error.clone()), None),
        },
    };
    sqlx::query(
        "UPDATE webhook_deliveries SET state = $1, attempts = $2, last_status = $3, last_error = $4, \
         next_at = $5, claimed_until = 0, updated_at = $6 WHERE message_id = $7 AND endpoint_id = $8",
    )
    .bind(state)
    .bind(attempts)
    .bind(status.map(i64::from))
    .bind(error)
    .bind(next_at.unwrap_or(now))
    .bind(now)
    .bind(&due.message_id)
    .bind(&due.endpoint.id)
    .execute(pool)
    .await?;
    Ok(next_at)
}

/// UTC time `ms` as RFC 3339 (`2026-11-24T10:00:00.000Z`).
pub fn rfc3339(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(rfc3339(1_795_523_696_789), "2026-11-24T12:34:56.789Z");
    }

    #[test]
    fn the_schedule_spans_about_a_day() {
        let total: i64 = SCHEDULE_MS.iter().sum();
        assert!((24 * 3_600_000..=30 * 3_600_000).contains(&total), "{total}");
    }
}
