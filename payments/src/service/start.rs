//! Starting a payment: a new attempt at the bank the buyer chose, failing
//! over to the seller's next bank when one refuses to serve or is out; a
//! stream purchase's hold is kept while the payment runs.

use crate::accounts::{self, Account};
use crate::acquirers::{self, Charge, InitOutcome};
use crate::checkout::{self, Item};
use crate::ids::AttemptId;
use crate::sandbox;
use crate::sandbox_ledger::{self, Decided};
use crate::state::AttemptState;
use crate::store::{Attempt, Callback, NewOrder, Order};

use super::{bank, Error, Payments, Result};

/// How long a hold is kept once its payment has started. It is granted once
/// per hold: counted from the order's first attempt, so further attempts
/// (another bank, another tab) never keep the stock longer.
pub const PAYMENT_WINDOW_MS: i64 = 15 * 60 * 1000;

/// A started attempt: where the buyer pays.
#[derive(Debug)]
pub struct Started {
    pub attempt: Attempt,
    /// A stream purchase's hold, kept until then.
    pub hold_expires_at: Option<i64>,
    pub redirect_url: String,
}

/// A stream purchase's order and where it is paid.
#[derive(Debug)]
pub struct StreamOrder {
    pub order: Order,
    /// Made by this call.
    pub created: bool,
    /// Its checkout session's id, and page.
    pub session: String,
    pub checkout_url: String,
}

/// What a bank is told about an order's payment besides the attempt: the
/// receipt lines, the buyer's contacts, where the buyer comes back to.
pub struct ChargeParts {
    items: Vec<Item>,
    email: Option<String>,
    phone: Option<String>,
    back: String,
    description: String,
    notification_url: String,
    locale: Option<widget::Locale>,
}

impl ChargeParts {
    /// The charge of one attempt (T-Bank is told per payment where to
    /// report; the other banks' notification addresses are account settings).
    pub fn charge<'a>(&'a self, order: &'a Order, attempt: &'a str) -> Charge<'a> {
        Charge {
            reference: attempt,
            amount_minor: order.amount_minor,
            currency: &order.currency,
            description: &self.description,
            items: &self.items,
            email: self.email.as_deref(),
            phone: self.phone.as_deref(),
            success_url: &self.back,
            fail_url: &self.back,
            notification_url: &self.notification_url,
            locale: self.locale,
        }
    }

    fn has_contact(&self) -> bool {
        self.email.is_some() || self.phone.is_some()
    }
}

/// How one bank account answered a creation.
enum Tried {
    Made(Started),
    /// Refused to serve, out, or skipped: why (the next bank is tried).
    Next(String),
    /// Skipped: a receipt there needs the buyer's contact.
    NeedsContact(String),
}

impl Payments {
    /// The order of a stream purchase's hold and its checkout session (made
    /// on first call, the same after; `created`: made now). Paying goes
    /// through the checkout page, as on a seller's site; the buyer returns
    /// to `back_url`. The session lasts until the hold's payment window
    /// from `hold_expires_at` would close.
    pub async fn stream_order(
        &self,
        new: &NewOrder,
        item: Item,
        stream: &str,
        back_url: &str,
        hold_expires_at: i64,
    ) -> Result<StreamOrder> {
        let now = self.now();
        let (order, created) = self.store.create_order(new, now).await.map_err(Error::unavailable)?;
        if created {
            // Unpaid, it ends with its hold — by the record's own clock too.
            self.store
                .set_deadline(&order.id, hold_expires_at)
                .await
                .map_err(Error::unavailable)?;
        }
        let until = hold_expires_at.max(now) + PAYMENT_WINDOW_MS;
        // What the stream's checkout asks, as it stands now.
        let ask = crate::details::in_force(&self.pool, &order.seller_id, stream)
            .await
            .map_err(Error::unavailable)?;
        let session = checkout::for_order(&self.pool, &order, &[item], ask.as_ref(), back_url, until, now)
            .await
            .map_err(Error::unavailable)?;
        Ok(StreamOrder {
            checkout_url: self.links.url(&format!("/checkout/{}", session.id)),
            session: session.id,
            order,
            created,
        })
    }

    /// The acquirers a seller's buyers may choose for `currency`: its
    /// enabled banks that take it, then, in test mode only, the sandbox.
    pub async fn offered(&self, seller: &str, currency: &str) -> Result<Vec<String>> {
        let mut out: Vec<String> = Vec::new();
        let all = accounts::list(&self.pool, seller).await.map_err(Error::unavailable)?;
        for a in all {
            if a.enabled && !out.contains(&a.acquirer) && acquirers::takes(&a.acquirer, currency) {
                out.push(a.acquirer);
            }
        }
        if !self.livemode(seller).await? {
            out.push(sandbox::ACQUIRER.to_owned());
        }
        Ok(out)
    }

    /// The bank accounts to try for `acquirer`, in order: the seller's
    /// enabled accounts at that bank, then its other enabled accounts by
    /// priority (failover); only banks that take the order's currency.
    async fn candidates(&self, seller: &str, acquirer: &str, currency: &str) -> Result<Vec<Account>> {
        let all = accounts::list(&self.pool, seller).await.map_err(Error::unavailable)?;
        let (mut first, rest): (Vec<_>, Vec<_>) = all
            .into_iter()
            .filter(|a| a.enabled && acquirers::takes(&a.acquirer, currency))
            .partition(|a| a.acquirer == acquirer);
        if first.is_empty() {
            return Ok(Vec::new());
        }
        first.extend(rest);
        Ok(first)
    }

    /// What the banks are told about `order` besides the attempt.
    pub async fn charge_parts(&self, order: &Order) -> Result<ChargeParts> {
        let session = checkout::by_order_id(&self.pool, order.id.as_str())
            .await
            .map_err(Error::unavailable)?;
        let locale = session
            .as_ref()
            .and_then(|cs| cs.locale.as_deref())
            .and_then(widget::Locale::parse);
        let (items, email, phone, back) = match session {
            Some(cs) => (
                cs.items,
                cs.customer_email,
                cs.customer_phone,
                self.links.url(&format!("/checkout/{}?return=1", cs.id)),
            ),
            None => (
                vec![Item {
                    name: format!("Order {}", order.id),
                    quantity: 1,
                    price_minor: order.amount_minor,
                    vat: "none".into(),
                    payment_method: "full_payment".into(),
                    payment_object: "commodity".into(),
                }],
                None,
                None,
                self.links.public_url.clone(),
            ),
        };
        let description = order.reference.clone().unwrap_or_else(|| items[0].name.clone());
        Ok(ChargeParts {
            items,
            email,
            phone,
            back,
            description,
            notification_url: self.links.url("/v1/callbacks/tbank"),
            locale,
        })
    }

    /// A new attempt for an open order; a stream purchase's hold is kept for
    /// [`PAYMENT_WINDOW_MS`] from now first (a hold that is gone refuses).
    /// At a real bank, a refusal to serve or an outage moves on to the
    /// seller's next bank as a new attempt; no clear answer stops there (the
    /// attempt waits for reconciliation, and no other attempt starts
    /// meanwhile).
    pub async fn start_payment(&self, order: &Order, acquirer: &str) -> Result<Started> {
        if order.state.is_final() {
            return Err(Error::conflict("order_final", format!("the order is {}", order.state)));
        }
        // What the checkout asks of the buyer comes before any payment.
        if let Some(session) = checkout::by_order_id(&self.pool, order.id.as_str())
            .await
            .map_err(Error::unavailable)?
        {
            if session.ask.as_ref().is_some_and(|a| a.asks()) && session.buyer.is_none() {
                return Err(Error::conflict(
                    "details_required",
                    "give the buyer's details and delivery first (POST …/details)",
                ));
            }
        }
        let sandbox = acquirer == sandbox::ACQUIRER;
        if sandbox && self.livemode(&order.seller_id).await? {
            return Err(Error::Invalid {
                field: "acquirer",
                message: format!(
                    "the sandbox takes test-mode payments only; one of: {}",
                    self.offered(&order.seller_id, &order.currency).await?.join(", ")
                ),
            });
        }
        // The order's attempts so far: whether one waits for an answer, and
        // when the first started the payment window.
        let attempts = self.store.attempts(&order.id).await.map_err(Error::unavailable)?;
        let banks = if sandbox {
            Vec::new()
        } else {
            self.banks_for(order, acquirer, &attempts).await?
        };
        let hold_expires_at = match (&order.offer_id, &order.hold_id) {
            (Some(offer), Some(hold)) => {
                let until = self.keep_hold(&attempts, offer, hold).await?;
                // The order's deadline moves with its hold.
                self.store
                    .set_deadline(&order.id, until)
                    .await
                    .map_err(Error::unavailable)?;
                Some(until)
            }
            _ => None,
        };
        if sandbox {
            let attempt = self
                .store
                .create_attempt(order, acquirer, self.now())
                .await
                .map_err(Error::unavailable)?;
            let redirect_url = self.links.url(&format!("/sandbox/pay/{}", attempt.id));
            self.supersede(order, &attempts).await;
            return Ok(Started {
                attempt,
                hold_expires_at,
                redirect_url,
            });
        }
        let parts = self.charge_parts(order).await?;
        let mut reasons = Vec::new();
        let mut needs_contact = false;
        for account in banks {
            match self.try_bank(order, &account, &parts, hold_expires_at).await? {
                Tried::Made(started) => {
                    self.supersede(order, &attempts).await;
                    return Ok(started);
                }
                Tried::Next(why) => reasons.push(why),
                Tried::NeedsContact(why) => {
                    needs_contact = true;
                    reasons.push(why);
                }
            }
        }
        if needs_contact {
            return Err(Error::Invalid {
                field: "customer_email",
                message: "the buyer's email is needed for the receipt".into(),
            });
        }
        Err(Error::bank(
            "acquirers_unavailable",
            format!("no bank could take the payment: {}", reasons.join("; ")),
        ))
    }

    /// A new attempt replaces the order's open ones: each is cancelled at
    /// its bank where the bank can still cancel it (the sandbox: unless the
    /// buyer already paid it there — its verdict decides). One that cannot
    /// be cancelled and is paid after all is a duplicate charge, refunded
    /// as such. Failures leave the attempt as it was.
    async fn supersede(&self, order: &Order, previous: &[Attempt]) {
        for a in previous.iter().filter(|a| !a.state.is_final()) {
            if a.acquirer != sandbox::ACQUIRER {
                self.abandon_at_bank(order, a).await;
                continue;
            }
            let now = self.now();
            let decided = match self.pool.acquire().await {
                Ok(mut conn) => sandbox_ledger::decide(&mut conn, a.id.as_str(), "cancelled", now).await,
                Err(e) => Err(e),
            };
            match decided {
                Ok(Decided::Now) => {
                    let cancel = Callback {
                        acquirer: a.acquirer.clone(),
                        callback_id: format!("superseded:{}", a.id),
                        attempt_id: a.id.clone(),
                        amount_minor: a.amount_minor,
                        currency: a.currency.clone(),
                        state: AttemptState::Cancelled,
                        at: now,
                    };
                    if let Err(e) = self.apply(&cancel).await {
                        tracing::warn!(attempt = %a.id, error = %e, "a superseded attempt could not be marked cancelled");
                    }
                }
                Ok(Decided::Before(v)) => {
                    tracing::info!(attempt = %a.id, verdict = %v, "a superseded attempt was decided before; left as it is")
                }
                Err(e) => tracing::warn!(attempt = %a.id, error = %e, "a superseded attempt could not be cancelled"),
            }
        }
    }

    /// Cancels a replaced attempt at its bank, if the bank cancels unpaid
    /// payments only (Stripe); the bank's answer is applied like a
    /// notification. Anything else leaves the attempt as it was.
    async fn abandon_at_bank(&self, order: &Order, a: &Attempt) {
        let (Some(account), Some(reference)) = (&a.account_id, &a.acquirer_ref) else {
            return;
        };
        // A bank out of rotation is not waited for (the duplicate rule stands).
        if !self.breakers.allows(account) {
            return;
        }
        let creds = match accounts::credentials(&self.pool, &self.vault, &order.seller_id, account).await {
            Ok(Some(c)) => c,
            _ => return,
        };
        let Ok(adapter) = bank::adapter(&creds) else {
            return;
        };
        let bank = adapter.as_ref();
        let payment = match bank::abandon(self.transport(), bank, reference).await {
            Ok(Some(p)) => p,
            Ok(None) => return,
            Err(e) => {
                tracing::info!(attempt = %a.id, error = %e, "a replaced payment was not cancelled at its bank (paid, say)");
                return;
            }
        };
        let acquirers::Mapped::State(to) = bank.map_status(&payment.status) else {
            return;
        };
        let cancelled = Callback {
            acquirer: a.acquirer.clone(),
            callback_id: format!("{}:{}", payment.payment_id, payment.status),
            attempt_id: a.id.clone(),
            amount_minor: payment.amount_minor.unwrap_or(a.amount_minor),
            currency: a.currency.clone(),
            state: to,
            at: self.now(),
        };
        if let Err(e) = self.apply(&cancelled).await {
            tracing::warn!(attempt = %a.id, error = %e, "a replaced payment's cancellation could not be recorded");
        }
    }

    /// Keeps a stream purchase's hold until the payment window closes: from
    /// the order's first attempt, [`PAYMENT_WINDOW_MS`], however many
    /// attempts follow. The hold's expiry then.
    async fn keep_hold(&self, attempts: &[Attempt], offer: &str, hold: &str) -> Result<i64> {
        let now = self.now();
        let first = attempts.iter().map(|a| a.created_at).min().unwrap_or(now);
        let left = first + PAYMENT_WINDOW_MS - now;
        if left <= 0 {
            return Err(Error::conflict(
                "payment_window_over",
                "the time to pay for this hold is over; reserve again",
            ));
        }
        self.stock.extend(offer, hold, left).await
    }

    /// The accounts to try for a payment at `acquirer`; refuses while an
    /// earlier attempt's creation has no clear answer.
    async fn banks_for(&self, order: &Order, acquirer: &str, attempts: &[Attempt]) -> Result<Vec<Account>> {
        let banks = self.candidates(&order.seller_id, acquirer, &order.currency).await?;
        if banks.is_empty() {
            return Err(Error::Invalid {
                field: "acquirer",
                message: format!(
                    "one of: {}",
                    self.offered(&order.seller_id, &order.currency).await?.join(", ")
                ),
            });
        }
        if attempts
            .iter()
            .any(|a| a.account_id.is_some() && a.acquirer_ref.is_none() && !a.state.is_final())
        {
            return Err(Error::conflict(
                "payment_in_progress",
                "a bank has not answered about the last attempt yet; it is being checked",
            ));
        }
        Ok(banks)
    }

    /// One bank account's try at creating the payment.
    async fn try_bank(
        &self,
        order: &Order,
        account: &Account,
        parts: &ChargeParts,
        hold_expires_at: Option<i64>,
    ) -> Result<Tried> {
        // A bank that fiscalizes needs the buyer's email or phone for the
        // receipt (54-FZ); without one it is not asked.
        if account.settings.get("taxation").is_some() && !parts.has_contact() {
            return Ok(Tried::NeedsContact(format!(
                "{}: the receipt needs the buyer's email",
                account.acquirer
            )));
        }
        if !self.breakers.allows(&account.id) {
            return Ok(Tried::Next(format!(
                "{}: out of rotation after outages",
                account.acquirer
            )));
        }
        let creds = accounts::credentials(&self.pool, &self.vault, &order.seller_id, &account.id)
            .await
            .map_err(Error::internal)?
            .ok_or(Error::NotFound("acquirer account"))?;
        let adapter = bank::adapter(&creds).map_err(Error::internal)?;
        if !adapter.accepts(&order.currency) {
            return Ok(Tried::Next(format!(
                "{}: does not take {}",
                account.acquirer, order.currency
            )));
        }
        let attempt = self
            .store
            .create_attempt(order, &account.acquirer, self.now())
            .await
            .map_err(Error::unavailable)?;
        self.store
            .set_account(&attempt.id, &account.id)
            .await
            .map_err(Error::unavailable)?;
        let outcome = bank::init(
            self.transport(),
            adapter.as_ref(),
            &parts.charge(order, attempt.id.as_str()),
        )
        .await;
        let (url, acquirer_ref) = match self.made(account, &attempt, outcome).await? {
            Ok(made) => made,
            Err(why) => return Ok(Tried::Next(why)),
        };
        self.breakers.succeeded(&account.id);
        self.store
            .set_started(&attempt.id, Some(&account.id), &acquirer_ref, self.now())
            .await
            .map_err(Error::unavailable)?;
        let attempt = self
            .store
            .attempt(&attempt.id)
            .await
            .map_err(Error::unavailable)?
            .ok_or(Error::NotFound("attempt"))?;
        Ok(Tried::Made(Started {
            attempt,
            hold_expires_at,
            redirect_url: url,
        }))
    }

    /// Where the buyer pays a payment the bank made, and the bank's id of
    /// it; `Ok(Err(why))` when the bank refused to serve or was out (the
    /// attempt is given up and the next bank is tried).
    async fn made(
        &self,
        account: &Account,
        attempt: &Attempt,
        outcome: InitOutcome,
    ) -> Result<std::result::Result<(String, String), String>> {
        let why = match outcome {
            InitOutcome::Redirect { url, acquirer_ref } => return Ok(Ok((url, acquirer_ref))),
            // The bank's form runs in a page of Haul's.
            InitOutcome::Embedded { token, acquirer_ref } => {
                let url = self
                    .links
                    .url(&format!("/yookassa/confirm/{}?token={token}", attempt.id));
                return Ok(Ok((url, acquirer_ref)));
            }
            InitOutcome::Refused { code, message } => format!("refused by {} ({code}): {message}", account.acquirer),
            InitOutcome::Unavailable { why } => format!("{} is unavailable: {why}", account.acquirer),
            InitOutcome::Unknown { why } => {
                tracing::warn!(attempt = %attempt.id, bank = %account.id, %why, "no clear answer from the bank: reconciliation decides");
                return Err(Error::bank(
                    "acquirer_no_answer",
                    "the bank did not answer clearly; the payment is being checked, try again in a minute",
                ));
            }
        };
        self.moved_on(&account.id, &attempt.id, &why).await;
        Ok(Err(why))
    }

    /// A bank refused to serve or was out: the attempt is given up (the
    /// order stays open) and the account's breaker counts it.
    async fn moved_on(&self, account: &str, attempt: &AttemptId, why: &str) {
        tracing::warn!(%attempt, %account, %why, "the bank did not take the payment: next bank");
        if self.breakers.failed(account) {
            tracing::warn!(%account, "bank account taken out of rotation");
        }
        if let Err(e) = self.store.abandon_attempt(attempt, why, self.now()).await {
            tracing::error!(%attempt, error = ?e, "could not record a refused attempt");
        }
    }
}
