//! Test support (feature `testing`): real PostgreSQL and Redis, each test with
//! its own database or key prefix so tests run in parallel.
//!
//! `HAUL_TEST_DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`)
//! names a server where the test user may create databases; `HAUL_TEST_REDIS_URL`
//! (default `redis://127.0.0.1:6379`) the Redis server. A missing server fails
//! the test: nothing is skipped.

use sqlx::{Connection, Executor, PgConnection};

use crate::ids::random_token;

pub fn postgres_admin_url() -> String {
    std::env::var("HAUL_TEST_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

pub fn redis_url() -> String {
    std::env::var("HAUL_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// A random Redis key prefix for one test.
pub fn redis_prefix() -> String {
    format!("haultest:{}", random_token(12))
}

/// Creates an empty PostgreSQL database named `haul_test_…` and returns its URL.
pub async fn fresh_postgres() -> String {
    let admin = postgres_admin_url();
    let name = format!("haul_test_{}", random_token(16).to_lowercase());
    let mut conn = PgConnection::connect(&admin)
        .await
        .expect("PostgreSQL must be running for this test (see HAUL_TEST_DATABASE_URL)");
    conn.execute(format!("CREATE DATABASE {name}").as_str())
        .await
        .expect("the test user must be allowed to create databases");
    let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
    format!("{base}/{name}")
}

/// A fresh SQLite file in a new temporary directory.
pub fn fresh_sqlite() -> String {
    let dir = std::env::temp_dir().join(format!("haul-test-{}", random_token(12)));
    std::fs::create_dir_all(&dir).expect("temp dir");
    format!("sqlite://{}/haul.db", dir.display())
}
