//! Idempotency keys (Stripe's semantics) for creating calls: the first request
//! with a key runs and its answer is stored; the same key with the same
//! request gets the stored answer; with a different request, an error; while
//! the first is still running, a "try again" answer. Keys live at least
//! [`RETAIN_MS`]. An answer of a server failure (5xx) is not stored, so the
//! client may retry with the same key.

use sqlx::{AnyPool, Row};

/// How long a key is kept.
pub const RETAIN_MS: i64 = 24 * 3600 * 1000;
/// A request still marked running after this long is taken to have died
/// with its node; its key may be used again.
pub const IN_FLIGHT_MS: i64 = 60 * 1000;

/// What to do with a request carrying a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Begin {
    /// First use: run it, then [`finish`] or [`abandon`].
    Run,
    /// Seen and answered: send this again.
    Replay { status: u16, body: String },
    /// The key was used for a different request.
    Reused,
    /// The first request with this key is still running.
    InFlight,
}

/// A key as clients may send it: 1 to 255 visible ASCII characters.
pub fn valid_key(key: &str) -> bool {
    (1..=255).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_graphic())
}

/// Claims `key` for a request with `fingerprint`, or says what was seen before.
pub async fn begin(pool: &AnyPool, scope: &str, key: &str, fingerprint: &str, now: i64) -> Result<Begin, sqlx::Error> {
    for _ in 0..3 {
        // Expired keys, and claims whose node died, make room first.
        sqlx::query(
            "DELETE FROM idempotency_keys WHERE scope = $1 AND key = $2 \
             AND (created_at < $3 OR (state = 'in_flight' AND updated_at < $4))",
        )
        .bind(scope)
        .bind(key)
        .bind(now - RETAIN_MS)
        .bind(now - IN_FLIGHT_MS)
        .execute(pool)
        .await?;
        let claimed = sqlx::query(
            "INSERT INTO idempotency_keys (scope, key, fingerprint, state, created_at, updated_at) \
             VALUES ($1, $2, $3, 'in_flight', $4, $4) ON CONFLICT (scope, key) DO NOTHING",
        )
        .bind(scope)
        .bind(key)
        .bind(fingerprint)
        .bind(now)
        .execute(pool)
        .await?
        .rows_affected()
            == 1;
        if claimed {
            return Ok(Begin::Run);
        }
        let Some(row) = sqlx::query("SELECT * FROM idempotency_keys WHERE scope = $1 AND key = $2")
            .bind(scope)
            .bind(key)
            .fetch_optional(pool)
            .await?
        else {
            continue; // removed in between: claim again
        };
        let stored: String = row.try_get("fingerprint")?;
        if stored != fingerprint {
            return Ok(Begin::Reused);
        }
        let state: String = row.try_get("state")?;
        if state != "done" {
            return Ok(Begin::InFlight);
        }
        let status: i64 = row.try_get("status")?;
        let body: Option<String> = row.try_get("response")?;
        return Ok(Begin::Replay {
            status: u16::try_from(status).unwrap_or(500),
            body: body.unwrap_or_default(),
        });
    }
    Ok(Begin::InFlight)
}

/// Stores the answer of a request that ran.
pub async fn finish(
    pool: &AnyPool,
    scope: &str,
    key: &str,
    status: u16,
    body: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE idempotency_keys SET state = 'done', status = $1, response = $2, updated_at = $3 \
         WHERE scope = $4 AND key = $5",
    )
    .bind(i64::from(status))
    .bind(body)
    .bind(now)
    .bind(scope)
    .bind(key)
    .execute(pool)
    .await?;
    Ok(())
}

/// Releases a key whose request failed on the server's side.
pub async fn abandon(pool: &AnyPool, scope: &str, key: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM idempotency_keys WHERE scope = $1 AND key = $2 AND state = 'in_flight'")
        .bind(scope)
        .bind(key)
        .execute(pool)
        .await?;
    Ok(())
}

/// Deletes keys older than the retention; returns how many.
pub async fn purge(pool: &AnyPool, now: i64) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query("DELETE FROM idempotency_keys WHERE created_at < $1")
        .bind(now - RETAIN_MS)
        .execute(pool)
        .await?
        .rows_affected())
}

/// The stored keys over one pool, as the HTTP layer uses them.
#[derive(Clone)]
pub struct Keys {
    pool: AnyPool,
}

impl Keys {
    pub fn new(pool: AnyPool) -> Self {
        Keys { pool }
    }

    /// See [`begin`].
    pub async fn begin(&self, scope: &str, key: &str, fingerprint: &str, now: i64) -> Result<Begin, sqlx::Error> {
        begin(&self.pool, scope, key, fingerprint, now).await
    }

    /// See [`finish`].
    pub async fn finish(&self, scope: &str, key: &str, status: u16, body: &str, now: i64) -> Result<(), sqlx::Error> {
        finish(&self.pool, scope, key, status, body, now).await
    }

    /// See [`abandon`].
    pub async fn abandon(&self, scope: &str, key: &str) -> Result<(), sqlx::Error> {
        abandon(&self.pool, scope, key).await
    }

    /// See [`purge`].
    pub async fn purge(&self, now: i64) -> Result<u64, sqlx::Error> {
        purge(&self.pool, now).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_short_visible_ascii() {
        assert!(valid_key("order-123_ABC"));
        assert!(valid_key(&"k".repeat(255)));
        assert!(!valid_key(""));
        assert!(!valid_key(&"k".repeat(256)));
        assert!(!valid_key("with space"));
        assert!(!valid_key("ключ"));
    }
}
