//! Reconciliation: attempts at real banks that are still open are polled
//! through each bank's status API until they end. What the bank says is
//! applied like a notification (deduplicated with them: one payment's
//! status takes effect once, whichever way it came). An attempt whose
//! creation had no clear answer is looked up by its order id: no payment at
//! the bank gives it up (and the buyer may try again, at any bank), a
//! payment found is followed from then on. Where the bank disagrees with a
//! state we already hold, it is reported (log and metric); where the order
//! moves, the seller hears of it through the usual webhooks.

use std::time::Duration;

use payments::acquirers::{Lookup, Mapped};
use payments::store::{Attempt, Callback, CallbackError};
use tokio::sync::watch;

use crate::app::AppState;

/// An open attempt is polled once it has been quiet this long.
pub const QUIET_MS: i64 = 30_000;
/// How often the worker looks.
const TICK: Duration = Duration::from_secs(2);

/// Attempts older than this are no longer polled (every bank's payment
/// page has long expired; what is still open is the seller's to look at).
pub const HORIZON_MS: i64 = 7 * 24 * 3_600_000;

/// Longest wait between two polls of one attempt.
const MAX_BACKOFF_MS: i64 = 10 * 60_000;

pub async fn run(s: AppState, mut stop: watch::Receiver<bool>) {
    // Per attempt: when to poll next and the wait after that (doubling from
    // QUIET_MS to MAX_BACKOFF_MS while nothing changes).
    let mut next: std::collections::HashMap<String, (i64, i64)> = Default::default();
    // Attempts whose disagreement the seller has been told of (once per
    // attempt on this node; the log and metric count every poll).
    let mut reported: std::collections::HashSet<String> = Default::default();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(TICK) => {}
            _ = stop.changed() => return,
        }
        let now = s.streams.now();
        let due = match s
            .payments
            .open_bank_attempts(now - QUIET_MS, now - HORIZON_MS, 500)
            .await
        {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = ?e, "reconciliation: could not read open attempts");
                continue;
            }
        };
        let open: std::collections::HashSet<String> = due.iter().map(|a| a.id.to_string()).collect();
        next.retain(|id, _| open.contains(id));
        reported.retain(|id| open.contains(id));
        for attempt in due {
            let key = attempt.id.to_string();
            let (at, wait) = next.get(&key).copied().unwrap_or((now, QUIET_MS));
            if at > now {
                continue;
            }
            let outcome = reconcile(&s, &attempt, !reported.contains(&key)).await;
            s.metrics.reconciled(outcome);
            if let Err(e) = s.payments.touch_attempt(&attempt.id, s.streams.now()).await {
                tracing::warn!(attempt = %attempt.id, error = ?e, "reconciliation: could not record the poll");
            }
            if outcome == "disagreement" {
                reported.insert(key.clone());
            }
            let wait = if outcome == "moved" {
                QUIET_MS
            } else {
                (wait * 2).min(MAX_BACKOFF_MS)
            };
            next.insert(key, (now + wait, wait));
        }
    }
}

/// Polls one attempt; answers what it came to (for the metric).
/// `report`: tell the seller of a disagreement (`payment.disagreement`).
pub async fn reconcile(s: &AppState, attempt: &Attempt, report: bool) -> &'static str {
    let Some(account) = &attempt.account_id else {
        return "skipped";
    };
    let order = match s.payments.order(&attempt.order_id).await {
        Ok(Some(o)) => o,
        _ => return "error",
    };
    let creds = match payments::accounts::credentials(&s.pool, &s.vault, &order.seller_id, account).await {
        Ok(Some(c)) => c,
        Ok(None) => {
            tracing::error!(attempt = %attempt.id, %account, "reconciliation: the attempt's bank account is gone");
            return "error";
        }
        Err(e) => {
            tracing::error!(attempt = %attempt.id, error = %e, "reconciliation: credentials do not open");
            return "error";
        }
    };
    let bank = match payments::service::bank::adapter(&creds) {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(attempt = %attempt.id, error = %e, "reconciliation: no adapter");
            return "error";
        }
    };
    let found = match &attempt.acquirer_ref {
        Some(made) => payments::service::bank::lookup(&s.transport, bank.as_ref(), attempt.id.as_str(), made).await,
        // The creation had no clear answer: ask by what it sent.
        None => match crate::routes::orders::ChargeParts::of(s, &order).await {
            Ok(parts) => {
                payments::service::bank::find(&s.transport, bank.as_ref(), &parts.charge(&order, attempt.id.as_str()))
                    .await
            }
            Err(_) => return "error",
        },
    };
    let found = match found {
        Ok(f) => f,
        Err(e) => {
            tracing::warn!(attempt = %attempt.id, error = %e, "reconciliation: no status from the bank");
            return "error";
        }
    };
    let mut state = match (found, &attempt.acquirer_ref) {
        (Lookup::Found(p), Some(_)) => p,
        (Lookup::Found(p), None) => {
            tracing::warn!(attempt = %attempt.id, payment = %p.payment_id, "reconciliation: the bank did create the payment");
            if let Err(e) = s
                .payments
                .set_started(
                    &attempt.id,
                    Some(account),
                    p.created_as.as_deref().unwrap_or(&p.payment_id),
                    s.streams.now(),
                )
                .await
            {
                tracing::error!(attempt = %attempt.id, error = ?e, "reconciliation: could not record the payment");
                return "error";
            }
            p
        }
        // Created, but nothing paid yet (CloudPayments' order waits for the buyer).
        (Lookup::NotFound, Some(_)) => return "unchanged",
        (Lookup::NotFound, None) => {
            let now = s.streams.now();
            let cause = "reconciliation: the bank has no payment for this attempt";
            return match s.payments.abandon_attempt(&attempt.id, cause, now).await {
                Ok(true) => {
                    tracing::info!(attempt = %attempt.id, "reconciliation: the bank never took it; given up");
                    "given_up"
                }
                Ok(false) => "unchanged",
                Err(e) => {
                    tracing::error!(attempt = %attempt.id, error = ?e, "reconciliation: could not give up");
                    "error"
                }
            };
        }
    };
    // An authorized payment waiting for capture is captured while the
    // attempt and its order stand, else let go.
    if bank.capture(&state, attempt.amount_minor, &attempt.currency).is_some() {
        match crate::routes::callbacks::capture_or_void(s, bank.as_ref(), attempt, &state).await {
            Ok(p) => state = p,
            Err(e) => {
                tracing::warn!(attempt = %attempt.id, error = %e, "reconciliation: capture failed");
                return "error";
            }
        }
    }
    let to = match bank.map_status(&state.status) {
        Mapped::State(st) => st,
        Mapped::Unknown => {
            tracing::warn!(attempt = %attempt.id, status = %state.status, "reconciliation: unknown bank status");
            return "unknown";
        }
    };
    if to == attempt.state {
        return "unchanged";
    }
    let callback = Callback {
        acquirer: attempt.acquirer.clone(),
        callback_id: format!("{}:{}", state.payment_id, state.status),
        attempt_id: attempt.id.clone(),
        amount_minor: state.amount_minor.unwrap_or(attempt.amount_minor),
        currency: attempt.currency.clone(),
        state: to,
        at: s.streams.now(),
    };
    match crate::routes::callbacks_apply(s, &callback).await {
        Ok("applied") => {
            tracing::warn!(attempt = %attempt.id, from = %attempt.state, to = %to, "reconciliation: the bank's answer moved the attempt");
            "moved"
        }
        Ok("ignored") => {
            disagreement(
                s,
                &order,
                attempt,
                &state.status,
                "the attempt already ended otherwise",
                report,
            )
            .await;
            "disagreement"
        }
        Ok(_) => "unchanged",
        Err(CallbackError::Store(e)) => {
            tracing::warn!(attempt = %attempt.id, error = ?e, "reconciliation: could not apply");
            "error"
        }
        Err(e) => {
            disagreement(s, &order, attempt, &state.status, &e.to_string(), report).await;
            "disagreement"
        }
    }
}

/// The bank's word differs from ours and ours stands: logged, counted (the
/// reconciliation metric) and told to the seller (`payment.disagreement`),
/// whose books should follow the bank's.
async fn disagreement(
    s: &AppState,
    order: &payments::store::Order,
    attempt: &Attempt,
    bank_status: &str,
    why: &str,
    report: bool,
) {
    tracing::error!(attempt = %attempt.id, ours = %attempt.state, bank = %bank_status, %why, "reconciliation: the bank disagrees with our records");
    if !report {
        return;
    }
    let data = serde_json::json!({
        "order_id": order.id, "attempt_id": attempt.id, "acquirer": attempt.acquirer,
        "our_state": attempt.state, "bank_status": bank_status, "reason": why,
    });
    if let Err(e) = payments::outbox::enqueue_now(
        &s.pool,
        &order.seller_id,
        "payment.disagreement",
        &data,
        s.streams.now(),
    )
    .await
    {
        tracing::error!(attempt = %attempt.id, error = %e, "could not queue the payment.disagreement webhook");
    }
}
