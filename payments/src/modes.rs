//! Live and test modes. A seller's account has a live side and a test side,
//! each its own row of `sellers` with its own keys and objects; every order,
//! session, bank account and webhook endpoint belongs to the row that made
//! it, and so to that row's mode. The sandbox and its test cards serve test
//! mode only.
//!
//! A row's mode never changes, so the answer is kept for the life of the
//! process: the hot paths (starting a payment, a callback) read it from
//! memory after the first time.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use sqlx::AnyPool;

/// How many sellers' modes are kept before the memory starts over.
const KEPT: usize = 100_000;

/// Which mode each seller row is in.
#[derive(Clone)]
pub struct Modes {
    pool: AnyPool,
    known: Arc<Mutex<HashMap<String, bool>>>,
}

impl Modes {
    pub fn new(pool: AnyPool) -> Self {
        Modes {
            pool,
            known: Arc::default(),
        }
    }

    /// Is `seller` a live-mode row? A seller that does not exist counts as
    /// live: the strict side, where no test card is taken.
    pub async fn livemode(&self, seller: &str) -> Result<bool, sqlx::Error> {
        if let Some(live) = self.known.lock().unwrap_or_else(|p| p.into_inner()).get(seller) {
            return Ok(*live);
        }
        let row: Option<i64> = sqlx::query_scalar("SELECT livemode FROM sellers WHERE id = $1")
            .bind(seller)
            .fetch_optional(&self.pool)
            .await?;
        let Some(flag) = row else { return Ok(true) };
        let live = flag != 0;
        let mut known = self.known.lock().unwrap_or_else(|p| p.into_inner());
        if known.len() >= KEPT {
            known.clear();
        }
        known.insert(seller.to_owned(), live);
        Ok(live)
    }
}
