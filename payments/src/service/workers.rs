//! The domain's background loops. Every node runs each; their steps are
//! idempotent, so two nodes on one order change nothing twice. Each stops
//! when `stop` changes.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use tokio::sync::watch;

use super::{Payments, Reconciled, HORIZON_MS, QUIET_MS, SETTLE_GRACE_MS};

/// How often the workers look.
const TICK: Duration = Duration::from_secs(2);

/// Longest wait between two polls of one attempt.
const MAX_BACKOFF_MS: i64 = 10 * 60_000;

/// Sleeps one tick; `false` when told to stop.
async fn tick(stop: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(TICK) => true,
        _ = stop.changed() => false,
    }
}

impl Payments {
    /// Polls open bank attempts (see [`Payments::reconcile`]), each with a
    /// back-off that doubles from [`QUIET_MS`] to ten minutes while nothing
    /// changes.
    pub async fn run_reconciliation(&self, mut stop: watch::Receiver<bool>) {
        // Per attempt: when to poll next and the wait after that.
        let mut next: HashMap<String, (i64, i64)> = HashMap::new();
        // Attempts whose disagreement the seller has been told of (once per
        // attempt on this node; the log and metric count every poll).
        let mut reported: HashSet<String> = HashSet::new();
        while tick(&mut stop).await {
            let now = self.now();
            let due = match self.store.open_attempts(now - QUIET_MS, now - HORIZON_MS, 500).await {
                Ok(d) => d,
                Err(e) => {
                    tracing::warn!(error = ?e, "reconciliation: could not read open attempts");
                    continue;
                }
            };
            let open: HashSet<String> = due.iter().map(|a| a.id.to_string()).collect();
            next.retain(|id, _| open.contains(id));
            reported.retain(|id| open.contains(id));
            for attempt in due {
                let key = attempt.id.to_string();
                let (at, wait) = next.get(&key).copied().unwrap_or((now, QUIET_MS));
                if at > now {
                    continue;
                }
                let outcome = self.reconcile(&attempt, !reported.contains(&key)).await;
                self.observer.reconciled(outcome);
                if let Err(e) = self.store.touch_attempt(&attempt.id, self.now()).await {
                    tracing::warn!(attempt = %attempt.id, error = ?e, "reconciliation: could not record the poll");
                }
                if outcome == Reconciled::Disagreement {
                    reported.insert(key.clone());
                }
                let wait = if outcome == Reconciled::Moved {
                    QUIET_MS
                } else {
                    (wait * 2).min(MAX_BACKOFF_MS)
                };
                next.insert(key, (now + wait, wait));
            }
        }
    }

    /// Settles paid stream purchases left unsettled for
    /// [`SETTLE_GRACE_MS`] (see [`Payments::settle_paid`]).
    pub async fn run_settlement(&self, mut stop: watch::Receiver<bool>) {
        while tick(&mut stop).await {
            self.expire_overdue().await;
            self.flag_unconfirmed().await;
            self.refund_owed_moves(SETTLE_GRACE_MS).await;
            // Duplicate charges whose refund did not go through at once.
            match self
                .store
                .unrefunded_duplicates(self.now() - SETTLE_GRACE_MS, 100)
                .await
            {
                Ok(due) => {
                    for attempt in due {
                        self.refund_duplicate(&attempt.id).await;
                    }
                }
                Err(e) => tracing::warn!(error = ?e, "could not look for unrefunded duplicate charges"),
            }
            let due = match self.store.unsettled(self.now() - SETTLE_GRACE_MS, 100).await {
                Ok(d) => d,
                Err(e) => {
                    tracing::warn!(error = ?e, "could not look for unsettled payments");
                    continue;
                }
            };
            for order in due {
                tracing::warn!(%order, "a paid order was not settled with its stock: settling it now");
                self.observer.settlement_retried();
                self.settle_paid(&order).await;
            }
        }
    }
}
