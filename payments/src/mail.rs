//! Emails to buyers: paid (with the receipt link), shipped (with the
//! tracking), refunded. Each is queued in the same transaction as the
//! change it tells of (from [`crate::outbox::enqueue`], beside the seller's
//! webhook), once per change, to the buyer's email from checkout — unless
//! the buyer opted out of the seller's emails. A worker (the gateway's)
//! claims due ones with a lease, renders the seller's template (or the
//! default) and sends it, retrying on a schedule. Templates are plain text
//! with `{{placeholders}}`; a value never becomes a placeholder itself.

use std::collections::BTreeMap;

use serde_json::Value;
use sqlx::{Any, AnyPool, Row, Transaction};

use crate::ids::random_body;

/// What a buyer is told of, by the seller webhook that goes with it.
pub const KINDS: &[(&str, &str)] = &[
    ("order.paid", "paid"),
    ("order.shipped", "shipped"),
    ("order.refunded", "refunded"),
];

/// Waits after each failed send (then given up): 1 min, 5 min, 30 min,
/// 2 h, 6 h.
pub const SCHEDULE_MS: &[i64] = &[60_000, 300_000, 1_800_000, 7_200_000, 21_600_000];

/// The placeholders a template may use.
pub const PLACEHOLDERS: &[&str] = &[
    "shop",
    "order_id",
    "reference",
    "amount",
    "refunded",
    "carrier",
    "tracking_number",
    "receipt_url",
    "opt_out_url",
];

/// The default template of a kind in a language: (subject, body).
pub fn default_template(kind: &str, locale: widget::Locale) -> Option<(&'static str, &'static str)> {
    use widget::Locale::{En, Ru};
    Some(match (kind, locale) {
        ("paid", En) => (
            "{{shop}}: your order is paid",
            "Thank you for your order at {{shop}}.\n\nOrder: {{order_id}}\nPaid: {{amount}}\n\nYour receipt: {{receipt_url}}\n\nWe will write again when it ships.\n\n--\nYou get this email because you bought at {{shop}}. No more emails from {{shop}}: {{opt_out_url}}\n",
        ),
        ("paid", Ru) => (
            "{{shop}}: заказ оплачен",
            "Спасибо за заказ в магазине {{shop}}.\n\nЗаказ: {{order_id}}\nОплачено: {{amount}}\n\nВаш чек: {{receipt_url}}\n\nМы напишем ещё раз, когда заказ отправят.\n\n--\nЭто письмо пришло, потому что вы купили в магазине {{shop}}. Больше не получать писем от {{shop}}: {{opt_out_url}}\n",
        ),
        ("shipped", En) => (
            "{{shop}}: your order is on its way",
            "Your order {{order_id}} from {{shop}} has shipped.\n\nCarrier: {{carrier}}\nTracking number: {{tracking_number}}\n\nYour receipt: {{receipt_url}}\n\n--\nNo more emails from {{shop}}: {{opt_out_url}}\n",
        ),
        ("shipped", Ru) => (
            "{{shop}}: заказ в пути",
            "Ваш заказ {{order_id}} из магазина {{shop}} отправлен.\n\nСлужба доставки: {{carrier}}\nТрек-номер: {{tracking_number}}\n\nВаш чек: {{receipt_url}}\n\n--\nБольше не получать писем от {{shop}}: {{opt_out_url}}\n",
        ),
        ("refunded", En) => (
            "{{shop}}: a refund for your order",
            "{{shop}} has refunded {{refunded}} of your order {{order_id}} ({{amount}}).\nThe money returns to your card as your bank handles it, usually within a few days.\n\nYour receipt: {{receipt_url}}\n\n--\nNo more emails from {{shop}}: {{opt_out_url}}\n",
        ),
        ("refunded", Ru) => (
            "{{shop}}: возврат по заказу",
            "Магазин {{shop}} вернул {{refunded}} по заказу {{order_id}} ({{amount}}).\nДеньги вернутся на карту, когда их проведёт ваш банк, обычно за несколько дней.\n\nВаш чек: {{receipt_url}}\n\n--\nБольше не получать писем от {{shop}}: {{opt_out_url}}\n",
        ),
        _ => return None,
    })
}

/// Fills a template: each `{{name}}` with its value (unknown ones stay as
/// they are); values are inserted once, never read as placeholders.
pub fn render(template: &str, values: &BTreeMap<&str, String>) -> String {
    let mut out = String::with_capacity(template.len() + 64);
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find("}}") {
            Some(end) => {
                let name = after[..end].trim();
                match values.get(name) {
                    Some(v) => out.push_str(v),
                    None => out.push_str(&rest[start..start + 2 + end + 2]),
                }
                rest = &after[end + 2..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// Checks a seller's template: plain text of sensible size, only known
/// placeholders, and a subject on one line.
pub fn check_template(subject: &str, body: &str) -> Result<(), (&'static str, String)> {
    if subject.trim().is_empty() || subject.chars().count() > 200 || subject.chars().any(char::is_control) {
        return Err(("subject", "1 to 200 characters on one line".into()));
    }
    if body.trim().is_empty() || body.chars().count() > 10_000 {
        return Err(("body", "1 to 10000 characters".into()));
    }
    if body.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return Err(("body", "no control characters but new lines and tabs".into()));
    }
    for (field, text) in [("subject", subject), ("body", body)] {
        let mut rest = text;
        while let Some(start) = rest.find("{{") {
            let after = &rest[start + 2..];
            let Some(end) = after.find("}}") else { break };
            let name = after[..end].trim();
            if !PLACEHOLDERS.contains(&name) {
                return Err((
                    field,
                    format!("unknown placeholder {{{{{name}}}}}; known: {}", PLACEHOLDERS.join(", ")),
                ));
            }
            rest = &after[end + 2..];
        }
    }
    Ok(())
}

/// Queues the buyer's email for a seller webhook's change, in its
/// transaction: when the event is one buyers hear of, the order has a
/// buyer's email and the buyer has not opted out. Once per change.
pub async fn enqueue_for_event(
    tx: &mut Transaction<'_, Any>,
    seller: &str,
    event_type: &str,
    data: &Value,
    now: i64,
) -> Result<(), sqlx::Error> {
    let Some(kind) = KINDS.iter().find(|(e, _)| *e == event_type).map(|(_, k)| *k) else {
        return Ok(());
    };
    let Some(order) = data.get("order_id").and_then(Value::as_str) else {
        return Ok(());
    };
    let email: Option<String> = sqlx::query_scalar("SELECT customer_email FROM checkout_sessions WHERE order_id = $1")
        .bind(order)
        .fetch_optional(&mut **tx)
        .await?
        .flatten();
    let Some(email) = email.filter(|e| !e.is_empty()) else {
        return Ok(());
    };
    let out: Option<i64> = sqlx::query_scalar("SELECT at FROM mail_opt_outs WHERE seller_id = $1 AND email = $2")
        .bind(seller)
        .bind(email.to_lowercase())
        .fetch_optional(&mut **tx)
        .await?;
    if out.is_some() {
        return Ok(());
    }
    // One email per change: a refund per refunded total, the rest once.
    let key = match kind {
        "refunded" => format!(
            "{order}:refunded:{}",
            data.get("refunded_minor").and_then(Value::as_i64).unwrap_or(0)
        ),
        k => format!("{order}:{k}"),
    };
    sqlx::query(
        "INSERT INTO buyer_emails (id, key, seller_id, order_id, kind, to_addr, data, state, next_at, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', $8, $8) ON CONFLICT (key) DO NOTHING",
    )
    .bind(format!("em_{}", random_body()))
    .bind(key)
    .bind(seller)
    .bind(order)
    .bind(kind)
    .bind(email)
    .bind(data.to_string())
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// A queued email, claimed.
#[derive(Debug, Clone)]
pub struct Due {
    pub id: String,
    pub seller_id: String,
    pub order_id: String,
    pub kind: String,
    pub to: String,
    pub data: Value,
    pub attempts: i64,
}

/// Claims up to `limit` due emails for `lease_ms`.
pub async fn claim_due(pool: &AnyPool, now: i64, limit: i64, lease_ms: i64) -> Result<Vec<Due>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT id FROM buyer_emails WHERE state = 'pending' AND next_at <= $1 AND claimed_until < $1 \
         ORDER BY next_at LIMIT $2",
    )
    .bind(now)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    let mut out = Vec::new();
    for r in rows {
        let id: String = r.try_get("id")?;
        let taken = sqlx::query(
            "UPDATE buyer_emails SET claimed_until = $1 WHERE id = $2 AND state = 'pending' AND claimed_until < $3",
        )
        .bind(now + lease_ms)
        .bind(&id)
        .bind(now)
        .execute(pool)
        .await?
        .rows_affected()
            == 1;
        if !taken {
            continue;
        }
        let row = sqlx::query("SELECT * FROM buyer_emails WHERE id = $1")
            .bind(&id)
            .fetch_one(pool)
            .await?;
        let data: String = row.try_get("data")?;
        out.push(Due {
            id,
            seller_id: row.try_get("seller_id")?,
            order_id: row.try_get("order_id")?,
            kind: row.try_get("kind")?,
            to: row.try_get("to_addr")?,
            data: serde_json::from_str(&data).unwrap_or(Value::Null),
            attempts: row.try_get("attempts")?,
        });
    }
    Ok(out)
}

/// How a send went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sent {
    Sent,
    /// The buyer opted out after it was queued.
    Skipped,
    Failed(String),
}

/// Records a send; a failure is tried again on the schedule, then given up.
pub async fn record(pool: &AnyPool, due: &Due, sent: &Sent, now: i64) -> Result<(), sqlx::Error> {
    match sent {
        Sent::Sent | Sent::Skipped => {
            let state = if *sent == Sent::Sent { "sent" } else { "skipped" };
            sqlx::query("UPDATE buyer_emails SET state = $1, sent_at = $2, attempts = attempts + 1 WHERE id = $3")
                .bind(state)
                .bind(now)
                .bind(&due.id)
                .execute(pool)
                .await?;
        }
        Sent::Failed(why) => {
            let wait = SCHEDULE_MS.get(due.attempts as usize).copied();
            let why: String = why.chars().take(300).collect();
            sqlx::query(
                "UPDATE buyer_emails SET state = $1, next_at = $2, attempts = attempts + 1, last_error = $3, \
                 claimed_until = 0 WHERE id = $4",
            )
            .bind(if wait.is_some() { "pending" } else { "failed" })
            .bind(now + wait.unwrap_or(0))
            .bind(why)
            .bind(&due.id)
            .execute(pool)
            .await?;
        }
    }
    Ok(())
}

/// A seller's template of a kind, if it set one.
pub async fn template(pool: &AnyPool, seller: &str, kind: &str) -> Result<Option<(String, String)>, sqlx::Error> {
    let row = sqlx::query("SELECT subject, body FROM mail_templates WHERE seller_id = $1 AND kind = $2")
        .bind(seller)
        .bind(kind)
        .fetch_optional(pool)
        .await?;
    row.map(|r| Ok((r.try_get("subject")?, r.try_get("body")?))).transpose()
}

/// Sets (or, with `None`, removes) a seller's template of a kind.
pub async fn set_template(
    pool: &AnyPool,
    seller: &str,
    kind: &str,
    template: Option<(&str, &str)>,
    now: i64,
) -> Result<(), sqlx::Error> {
    match template {
        None => {
            sqlx::query("DELETE FROM mail_templates WHERE seller_id = $1 AND kind = $2")
                .bind(seller)
                .bind(kind)
                .execute(pool)
                .await?;
        }
        Some((subject, body)) => {
            sqlx::query(
                "INSERT INTO mail_templates (seller_id, kind, subject, body, updated_at) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (seller_id, kind) DO UPDATE SET subject = $3, body = $4, updated_at = $5",
            )
            .bind(seller)
            .bind(kind)
            .bind(subject)
            .bind(body)
            .bind(now)
            .execute(pool)
            .await?;
        }
    }
    Ok(())
}

/// Whether a buyer opted out of a seller's emails.
pub async fn opted_out(pool: &AnyPool, seller: &str, email: &str) -> Result<bool, sqlx::Error> {
    let at: Option<i64> = sqlx::query_scalar("SELECT at FROM mail_opt_outs WHERE seller_id = $1 AND email = $2")
        .bind(seller)
        .bind(email.to_lowercase())
        .fetch_optional(pool)
        .await?;
    Ok(at.is_some())
}

/// A buyer opts out of a seller's emails (once).
pub async fn opt_out(pool: &AnyPool, seller: &str, email: &str, now: i64) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO mail_opt_outs (seller_id, email, at) VALUES ($1, $2, $3) ON CONFLICT (seller_id, email) DO NOTHING")
        .bind(seller)
        .bind(email.to_lowercase())
        .bind(now)
        .execute(pool)
        .await?;
    Ok(())
}

/// The emails of an order, for its detail: (kind, to, state, attempts, sent_at).
pub async fn of_order(pool: &AnyPool, order: &str) -> Result<Vec<Value>, sqlx::Error> {
    let rows = sqlx::query("SELECT kind, state, attempts, sent_at, created_at FROM buyer_emails WHERE order_id = $1 ORDER BY created_at, id")
        .bind(order)
        .fetch_all(pool)
        .await?;
    rows.iter()
        .map(|r| {
            Ok(serde_json::json!({
                "kind": r.try_get::<String, _>("kind")?,
                "state": r.try_get::<String, _>("state")?,
                "attempts": r.try_get::<i64, _>("attempts")?,
                "sent_at": r.try_get::<Option<i64>, _>("sent_at")?,
                "created_at": r.try_get::<i64, _>("created_at")?,
            }))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_fill_once_and_leave_unknown_names() {
        let mut v = BTreeMap::new();
        v.insert("shop", "Tea {{order_id}}".to_owned());
        v.insert("order_id", "ord_1".to_owned());
        assert_eq!(
            render("{{shop}} / {{ order_id }} / {{nope}} / {{", &v),
            "Tea {{order_id}} / ord_1 / {{nope}} / {{"
        );
        for (kind, _) in KINDS.iter().map(|(e, k)| (k, e)) {
            for l in widget::locale::ALL {
                let (s, b) = default_template(kind, *l).unwrap();
                assert!(check_template(s, b).is_ok(), "{kind} {l}");
                assert!(b.contains("{{opt_out_url}}"), "{kind} {l} lets the buyer opt out");
                assert!(b.contains("{{receipt_url}}"), "{kind} {l} links the receipt");
            }
        }
        assert_eq!(check_template("Hi {{name}}", "x").unwrap_err().0, "subject");
        assert_eq!(check_template("Hi", "a\u{7}").unwrap_err().0, "body");
        assert_eq!(check_template("two\nlines", "x").unwrap_err().0, "subject");
        assert!(check_template("{{shop}}", "{{tracking_number}}").is_ok());
    }
}
