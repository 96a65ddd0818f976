//! The sandbox acquirer's book of its payments (`sandbox_payments`): the
//! one verdict it holds on each, as a bank holds the truth its status API
//! answers. A verdict is decided once (a primary key is the referee, on
//! SQLite and PostgreSQL alike): the card page's answer and a cancellation
//! (a newer attempt started for the order) race for it, and the loser is
//! told what won. Only a 3-D Secure challenge moves a verdict on, from
//! `requires_action` to its answer.

use sqlx::{AnyConnection, Row};

/// What deciding a payment came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decided {
    /// This decision is the payment's verdict.
    Now,
    /// The payment was decided before: its verdict.
    Before(String),
}

/// Decides `attempt`'s verdict as `status`, unless it was decided before.
pub async fn decide(db: &mut AnyConnection, attempt: &str, status: &str, now: i64) -> Result<Decided, sqlx::Error> {
    let made = sqlx::query(
        "INSERT INTO sandbox_payments (attempt_id, status, decided_at, updated_at) VALUES ($1, $2, $3, $3) \
         ON CONFLICT (attempt_id) DO NOTHING",
    )
    .bind(attempt)
    .bind(status)
    .bind(now)
    .execute(&mut *db)
    .await?
    .rows_affected();
    if made == 1 {
        return Ok(Decided::Now);
    }
    Ok(Decided::Before(verdict(db, attempt).await?.unwrap_or_default()))
}

/// Moves a verdict on from `from` to `to` (a challenge answered); whether
/// it was still `from`.
pub async fn advance(
    db: &mut AnyConnection,
    attempt: &str,
    from: &str,
    to: &str,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let moved =
        sqlx::query("UPDATE sandbox_payments SET status = $1, updated_at = $2 WHERE attempt_id = $3 AND status = $4")
            .bind(to)
            .bind(now)
            .bind(attempt)
            .bind(from)
            .execute(db)
            .await?
            .rows_affected();
    Ok(moved == 1)
}

/// The payment's verdict, if it has one (none: the buyer has not paid).
pub async fn verdict(db: &mut AnyConnection, attempt: &str) -> Result<Option<String>, sqlx::Error> {
    let row = sqlx::query("SELECT status FROM sandbox_payments WHERE attempt_id = $1")
        .bind(attempt)
        .fetch_optional(db)
        .await?;
    row.map(|r| r.try_get::<String, _>("status")).transpose()
}
