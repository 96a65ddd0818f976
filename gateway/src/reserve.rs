//! One reserve as both edges take it (HTTP and the realtime RPC): the
//! buyer's and the address's rate limits, then the streams domain's reserve,
//! counted by outcome and latency.

use std::net::IpAddr;
use std::time::Instant;

use streams::ids::{BuyerId, OfferId};
use streams::inventory::Reserved;
use streams::service::Error as DomainError;

use crate::http::error::ApiError;
use crate::state::AppState;

/// The buyer's and the address's rate limits for one reserve; over either,
/// the attempt is counted as `rate_limited`. Shared by HTTP and the socket RPC.
pub fn limit_reserve(s: &AppState, addr: &IpAddr, buyer: &BuyerId, started: Instant) -> Result<(), ApiError> {
    let limited = s
        .limits
        .per_addr
        .check(addr)
        .and_then(|_| s.limits.per_buyer.check(&buyer.to_string()));
    if limited.is_err() {
        s.metrics.reserve("rate_limited", started.elapsed());
    }
    limited
}

/// Reserves, and counts the outcome and latency. Shared by HTTP and the socket RPC.
pub async fn reserve_counted(
    s: &AppState,
    buyer: &BuyerId,
    offer: &OfferId,
    quantity: i64,
    request_id: &str,
    started: Instant,
) -> Result<Reserved, DomainError> {
    let result = s.streams.reserve(buyer, offer, quantity, request_id).await;
    let outcome = match &result {
        Ok(r) if r.replayed => "replayed",
        Ok(_) => "held",
        Err(DomainError::Refused(r)) => r.code(),
        Err(DomainError::Invalid { .. }) => "invalid",
        Err(DomainError::NotFound(_)) => "not_found",
        Err(_) => "error",
    };
    s.metrics.reserve(outcome, started.elapsed());
    result
}
