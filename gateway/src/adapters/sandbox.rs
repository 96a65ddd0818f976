//! The sandbox acquirer's callbacks, sent to Haul over real HTTP as an
//! acquirer would: signed, retried until taken (2xx) or refused (4xx). They
//! are written to a durable outbox (`sandbox_callbacks`) before the buyer is
//! told the payment was sent, and delivered by a worker on every node, so a
//! node that stops in between loses nothing: another delivers them. With
//! `HAUL_SANDBOX_CHAOS` on, every callback is sent twice and the first
//! round in reverse order.

use std::time::Duration;

use axum::http::header;
use payments::sandbox;
use payments::sandbox_ledger::{self, Decided};
use payments::store::Attempt;
use secrecy::ExposeSecret;
use serde_json::json;
use sqlx::Row;
use streams::ids::random_token;
use tokio::sync::watch;

use crate::state::AppState;

/// How long one node owns a callback it is delivering.
const LEASE_MS: i64 = 30_000;
/// Waits after failed deliveries (then the last one, again and again).
const BACKOFF_MS: &[i64] = &[200, 1_000, 5_000, 30_000, 120_000];
/// How often the worker looks for due callbacks.
const TICK: Duration = Duration::from_millis(500);

/// What the sandbox decides about a payment with its callbacks.
pub enum Verdict {
    /// The card page's answer: the payment's verdict, unless it has one.
    Decide(&'static str),
    /// A challenge's answer, moving the verdict on from `from`.
    Advance { from: &'static str, to: &'static str },
}

/// What queueing came to.
#[derive(Debug, PartialEq, Eq)]
pub enum Queued {
    /// Recorded; being delivered.
    Sent,
    /// The payment was decided before (paid, cancelled…): nothing sent.
    DecidedBefore(String),
}

/// Records the sandbox's verdict on an attempt and, in the same
/// transaction, its callbacks (in the order they are to be sent), then
/// starts delivering them at once. A payment decided before (a second
/// submit, or a cancellation that won the race) sends nothing.
pub async fn queue_reports(
    s: &AppState,
    attempt: &Attempt,
    reports: Vec<(&'static str, Option<&'static str>)>,
    verdict: Verdict,
) -> Result<Queued, sqlx::Error> {
    let now = s.payments.now();
    let bodies: Vec<String> = reports
        .iter()
        .map(|(status, decline)| {
            json!({
                "event_id": format!("evt_{}", random_token(20)),
                "payment_id": attempt.id,
                "status": status,
                "amount_minor": attempt.amount_minor,
                "currency": attempt.currency,
                "decline_code": decline,
                "created_at": now / 1000,
            })
            .to_string()
        })
        .collect();
    let mut order: Vec<&String> = bodies.iter().collect();
    if s.config.sandbox_chaos {
        // Out of order first, then every one again.
        order = bodies.iter().rev().chain(bodies.iter()).collect();
    }
    let mut tx = s.pool.begin().await?;
    let id = attempt.id.as_str();
    match verdict {
        Verdict::Decide(status) => {
            if let Decided::Before(v) = sandbox_ledger::decide(&mut tx, id, status, now).await? {
                return Ok(Queued::DecidedBefore(v));
            }
        }
        Verdict::Advance { from, to } => {
            if !sandbox_ledger::advance(&mut tx, id, from, to, now).await? {
                let v = sandbox_ledger::verdict(&mut tx, id).await?.unwrap_or_default();
                return Ok(Queued::DecidedBefore(v));
            }
        }
    }
    for (seq, body) in order.into_iter().enumerate() {
        sqlx::query(
            "INSERT INTO sandbox_callbacks (id, attempt_id, seq, body, due_at, created_at) \
             VALUES ($1, $2, $3, $4, $5, $5)",
        )
        .bind(format!("sbc_{}", random_token(20)))
        .bind(attempt.id.as_str())
        .bind(seq as i64)
        .bind(body)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    let s = s.clone();
    tokio::spawn(async move { deliver_due(&s).await });
    Ok(Queued::Sent)
}

/// How long a delivered callback is kept (to answer what was sent).
const KEEP_DONE_MS: i64 = 24 * 3600 * 1000;

/// Forgets callbacks delivered more than a day ago; how many.
pub async fn purge(s: &AppState) -> Result<u64, sqlx::Error> {
    let done = sqlx::query("DELETE FROM sandbox_callbacks WHERE done_at IS NOT NULL AND done_at < $1")
        .bind(s.payments.now() - KEEP_DONE_MS)
        .execute(&s.pool)
        .await?;
    Ok(done.rows_affected())
}

/// Delivers due callbacks until `stop` changes.
pub async fn run(s: AppState, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(TICK) => {}
            _ = stop.changed() => return,
        }
        deliver_due(&s).await;
    }
}

/// One round: each attempt's due callbacks, in order; an attempt whose
/// callback was not taken waits for its next try before the rest.
async fn deliver_due(s: &AppState) {
    let now = s.payments.now();
    let rows = match sqlx::query(
        "SELECT id, attempt_id, body, tries FROM sandbox_callbacks \
         WHERE done_at IS NULL AND due_at <= $1 AND (lease_until IS NULL OR lease_until < $1) \
         ORDER BY attempt_id, seq LIMIT 100",
    )
    .bind(now)
    .fetch_all(&s.pool)
    .await
    {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, "could not read the sandbox's callbacks");
            return;
        }
    };
    let mut stuck: Vec<String> = Vec::new();
    for row in rows {
        let (Ok(id), Ok(attempt), Ok(body), Ok(tries)) = (
            row.try_get::<String, _>("id"),
            row.try_get::<String, _>("attempt_id"),
            row.try_get::<String, _>("body"),
            row.try_get::<i64, _>("tries"),
        ) else {
            continue;
        };
        if stuck.contains(&attempt) {
            continue;
        }
        // Claimed by one node at a time.
        let claimed = sqlx::query(
            "UPDATE sandbox_callbacks SET lease_until = $1 WHERE id = $2 AND done_at IS NULL \
             AND (lease_until IS NULL OR lease_until < $3)",
        )
        .bind(now + LEASE_MS)
        .bind(&id)
        .bind(now)
        .execute(&s.pool)
        .await
        .map(|r| r.rows_affected() == 1)
        .unwrap_or(false);
        if !claimed {
            stuck.push(attempt);
            continue;
        }
        let taken = post(s, &body).await;
        let now = s.payments.now();
        let update = if taken {
            sqlx::query("UPDATE sandbox_callbacks SET done_at = $1, lease_until = NULL WHERE id = $2")
                .bind(now)
                .bind(&id)
        } else {
            stuck.push(attempt);
            let wait = BACKOFF_MS[(tries as usize).min(BACKOFF_MS.len() - 1)];
            sqlx::query("UPDATE sandbox_callbacks SET tries = tries + 1, due_at = $1, lease_until = NULL WHERE id = $2")
                .bind(now + wait)
                .bind(&id)
        };
        if let Err(e) = update.execute(&s.pool).await {
            tracing::warn!(error = %e, "could not record a sandbox callback's delivery");
        }
    }
}

/// Posts one callback: `true` when Haul took it (2xx) or refused it for
/// good (4xx: sending it again would change nothing).
async fn post(s: &AppState, body: &str) -> bool {
    let url = format!("{}/v1/callbacks/sandbox", s.public_url);
    let signature = sandbox::sign(
        s.sandbox_secret.expose_secret().as_bytes(),
        s.payments.now() / 1000,
        body.as_bytes(),
    );
    let sent = s
        .http
        .post(&url)
        .header(header::CONTENT_TYPE, "application/json")
        .header(sandbox::SIGNATURE_HEADER, signature)
        .body(body.to_owned())
        .send()
        .await;
    match sent {
        Ok(r) if r.status().is_success() => true,
        Ok(r) if r.status().is_client_error() => {
            tracing::error!(status = %r.status(), "the sandbox's callback was refused");
            true
        }
        Ok(r) => {
            tracing::warn!(status = %r.status(), "sandbox callback not taken; retrying");
            false
        }
        Err(e) => {
            tracing::warn!(error = %e, "sandbox callback not delivered; retrying");
            false
        }
    }
}
