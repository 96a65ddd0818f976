//! The one place that starts every background loop of a node: the streams
//! domain's offer timer and hold sweeper, the realtime publisher, seller
//! webhook deliveries, the sandbox's callbacks, the payments domain's
//! settlement and reconciliation,
//! housekeeping, and the demo's bots. Each stops when `stop` changes.

use std::time::Duration;

use payments::service::HoldEnd;
use serde_json::json;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::demo;
use crate::state::AppState;

/// Starts them all.
pub fn start(state: &AppState, stop: &watch::Receiver<bool>, demo: Option<demo::Demo>) -> Vec<JoinHandle<()>> {
    let mut workers = Vec::new();
    let (s, rx) = (state.clone(), stop.clone());
    workers.push(tokio::spawn(async move { s.streams.run_offer_timer(rx).await }));
    let (s, rx) = (state.clone(), stop.clone());
    workers.push(tokio::spawn(async move {
        let st = s.clone();
        s.streams
            .run_hold_sweeper(rx, move |expired| {
                st.metrics.holds_expired(1);
                let (st, hold) = (st.clone(), expired.hold.clone());
                tokio::spawn(async move { hold_expired(&st, &hold).await });
            })
            .await
    }));
    let (s, rx) = (state.clone(), stop.clone());
    workers.push(tokio::spawn(async move { s.hub.run(rx).await }));
    let (s, rx) = (state.clone(), stop.clone());
    workers.push(tokio::spawn(crate::adapters::webhooks::run(s, rx)));
    let (s, rx) = (state.clone(), stop.clone());
    workers.push(tokio::spawn(crate::adapters::mail::run(s, rx)));
    let (s, rx) = (state.clone(), stop.clone());
    workers.push(tokio::spawn(crate::adapters::retailcrm::run(s, rx)));
    let (s, rx) = (state.clone(), stop.clone());
    workers.push(tokio::spawn(crate::adapters::sandbox::run(s, rx)));
    let (s, rx) = (state.clone(), stop.clone());
    workers.push(tokio::spawn(async move { s.payments.run_settlement(rx).await }));
    let (s, rx) = (state.clone(), stop.clone());
    workers.push(tokio::spawn(async move { s.payments.run_reconciliation(rx).await }));
    let (s, rx) = (state.clone(), stop.clone());
    workers.push(tokio::spawn(housekeeping(s, rx)));
    if let Some(d) = demo {
        let (s, rx) = (state.clone(), stop.clone());
        workers.push(tokio::spawn(async move { demo::run_cycle(s, d, rx).await }));
    }
    workers
}

/// A hold ran out: the seller hears `hold.expired`, and its unpaid order
/// expires with it (a payment that still comes is recorded as late and
/// settled then).
async fn hold_expired(s: &AppState, expired: &streams::inventory::Hold) {
    let hold = &expired.id;
    match s.streams.offer_seller(&expired.offer_id).await {
        Ok(seller) => {
            let data = json!({
                "hold_id": hold, "offer_id": expired.offer_id, "buyer_id": expired.buyer_id,
                "quantity": expired.quantity, "expired_at": expired.expires_at,
            });
            if let Err(e) = s.payments.notify_seller(seller.as_str(), "hold.expired", &data).await {
                tracing::error!(%hold, error = %e, "could not queue the hold.expired webhook");
            }
        }
        Err(e) => tracing::warn!(%hold, error = %e, "expired hold of an unknown offer"),
    }
    s.payments.end_with_hold(hold.as_str(), HoldEnd::Expired).await;
}

/// Once a minute: rate-limit buckets, idle channels, expired idempotency
/// keys, console sessions and links.
async fn housekeeping(s: AppState, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(60)) => {
                s.limits.per_buyer.tidy();
                s.limits.per_addr.tidy();
                s.signin_limits.tidy();
                s.hub.channels().tidy();
                match s.keys.purge(s.streams.now()).await {
                    Ok(0) => {}
                    Ok(n) => tracing::debug!(keys = n, "expired idempotency keys removed"),
                    Err(e) => tracing::warn!(error = %e, "could not remove expired idempotency keys"),
                }
                match s.people.purge(s.payments.now()).await {
                    Ok(0) => {}
                    Ok(n) => tracing::debug!(rows = n, "expired console sessions, links and failures removed"),
                    Err(e) => tracing::warn!(error = %e, "could not remove expired console sessions"),
                }
                match crate::adapters::sandbox::purge(&s).await {
                    Ok(0) => {}
                    Ok(n) => tracing::debug!(callbacks = n, "delivered sandbox callbacks removed"),
                    Err(e) => tracing::warn!(error = %e, "could not remove delivered sandbox callbacks"),
                }
            }
            _ = stop.changed() => return,
        }
    }
}
