//! The state every request handler and worker shares: configuration,
//! secrets, the domains' services, the realtime node, and the pool (which
//! only the state and the adapters hold).

use std::ops::Deref;
use std::sync::Arc;

use secrecy::SecretString;
use sqlx::AnyPool;
use streams::db::DbKind;
use streams::service::Streams;

use crate::config::Config;
use crate::http::ratelimit::Limits;
use crate::metrics::Metrics;
use crate::realtime::publisher::Hub;

/// Shared state of every request handler and worker.
pub struct AppInner {
    pub config: Config,
    pub pool: AnyPool,
    pub db_kind: DbKind,
    pub streams: Arc<Streams>,
    pub hub: Arc<Hub>,
    pub metrics: Arc<Metrics>,
    pub limits: Limits,
    pub token_secret: SecretString,
    /// Signs and verifies the sandbox acquirer's callbacks.
    pub sandbox_secret: SecretString,
    /// Where browsers and acquirers reach this node.
    pub public_url: String,
    /// Sends the sandbox acquirer's callbacks.
    pub http: reqwest::Client,
    /// The payments domain (orders, attempts, banks, refunds, settlement).
    pub payments: Arc<payments::service::Payments>,
    /// Sellers' API keys and widget settings.
    pub sellers: crate::sellers::Sellers,
    /// The console's people, members, links and sessions.
    pub people: crate::people::People,
    /// Console sign-in attempts per client address.
    pub signin_limits: crate::http::ratelimit::Limiter<std::net::IpAddr>,
    /// Stored Idempotency-Keys and their answers.
    pub keys: payments::idempotency::Keys,
    pub realtime: crate::realtime::Realtime,
}

#[derive(Clone)]
pub struct AppState(Arc<AppInner>);

impl AppState {
    pub fn new(inner: AppInner) -> Self {
        AppState(Arc::new(inner))
    }
}

impl Deref for AppState {
    type Target = AppInner;
    fn deref(&self) -> &AppInner {
        &self.0
    }
}
