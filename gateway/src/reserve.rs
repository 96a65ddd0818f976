//! One reserve as both edges take it (HTTP and the realtime RPC): the
//! buyer's and the address's rate limits, then the streams domain's reserve,
//! counted by outcome and latency.

use std::net::IpAddr;
use std::time::Instant;

use streams::ids::{BuyerId, OfferId};
use streams::inventory::{GroupCap, Refusal, Reserved};
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

/// The group a client address's reserves count against: the address, or
/// for IPv6 its /64 (one subscriber's network; an IPv4 address in IPv6 is
/// the IPv4 address).
pub fn address_group(addr: &IpAddr) -> String {
    match addr {
        IpAddr::V4(v4) => format!("ip:{v4}"),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => format!("ip:{v4}"),
            None => {
                let s = v6.segments();
                format!("ip:{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

/// A seller that sells to its signed-in viewers only takes holds from
/// viewers whose token it signed (`<seller id>.<its viewer id>`), not from
/// anonymous viewers or another seller's. Unknown offers pass (the reserve
/// answers them); settings that cannot be read refuse (503), never let an
/// anonymous viewer through.
async fn may_buy(s: &AppState, buyer: &BuyerId, offer: &OfferId) -> Result<(), DomainError> {
    let seller = match s.streams.offer_seller(offer).await {
        Ok(seller) => seller,
        Err(DomainError::NotFound(_)) => return Ok(()),
        Err(e) => return Err(e),
    };
    let settings = s.sellers.settings_fresh(&seller).await?;
    let own = buyer
        .as_str()
        .strip_prefix(seller.as_str())
        .is_some_and(|rest| rest.starts_with('.'));
    if settings.signed_viewers_only && !own {
        return Err(DomainError::Refused(Refusal::SignedViewerRequired));
    }
    Ok(())
}

/// Reserves, and counts the outcome and latency; the units held from the
/// client's address are capped per offer (`HAUL_HOLDS_PER_ADDR`). Shared by
/// HTTP and the socket RPC.
pub async fn reserve_counted(
    s: &AppState,
    addr: &IpAddr,
    buyer: &BuyerId,
    offer: &OfferId,
    quantity: i64,
    request_id: &str,
    started: Instant,
) -> Result<Reserved, DomainError> {
    if let Err(e) = may_buy(s, buyer, offer).await {
        let outcome = match &e {
            DomainError::Refused(r) => r.code(),
            _ => "error",
        };
        s.metrics.reserve(outcome, started.elapsed());
        return Err(e);
    }
    let group = s.config.holds_per_addr.map(|units| GroupCap {
        key: address_group(addr),
        units,
    });
    let result = s
        .streams
        .reserve_capped(buyer, offer, quantity, request_id, group)
        .await;
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

#[cfg(test)]
mod tests {
    use super::address_group;

    #[test]
    fn an_address_groups_by_itself_and_ipv6_by_its_64() {
        let g = |a: &str| address_group(&a.parse().unwrap());
        assert_eq!(g("203.0.113.7"), "ip:203.0.113.7");
        assert_eq!(g("::ffff:203.0.113.7"), "ip:203.0.113.7");
        assert_eq!(g("2001:db8:1:2:aaaa::1"), "ip:2001:db8:1:2::/64");
        assert_eq!(g("2001:db8:1:2:bbbb::9"), g("2001:db8:1:2::1"));
        assert_ne!(g("2001:db8:1:3::1"), g("2001:db8:1:2::1"));
    }
}
