//! Notifications of payments: the sandbox's signed callbacks and each real
//! bank's own kind. Each is verified on its raw body before anything is
//! parsed, then applied exactly once by the store (the inbox row and the
//! state change in one transaction); what follows from it (the hold sold or
//! released) happens after. Refusals are logged with their reason and
//! change nothing.

use std::net::IpAddr;

use secrecy::ExposeSecret;

use crate::accounts::{self, Credentials};
use crate::acquirers::cloudpayments::{self as cp, Kind};
use crate::acquirers::{stripe, tbank, yookassa, Acquirer, Lookup, Mapped, Payment};
use crate::ids::AttemptId;
use crate::sandbox;
use crate::state::OrderState;
use crate::store::{Attempt, Callback, CallbackError, CallbackOutcome};

use super::{bank, Payments};

/// What a notification came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The attempt (and maybe its order) moved.
    Applied,
    /// Taken before: nothing changed.
    Duplicate,
    /// The attempt had already moved past that state.
    Ignored,
    /// A bank status this build does not know: left for reconciliation.
    Unknown,
    /// Not about a payment (another event kind): acknowledged.
    Acknowledged,
    /// A payment Haul did not make at the same bank account: acknowledged.
    NotOurs,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Applied => "applied",
            Outcome::Duplicate => "duplicate",
            Outcome::Ignored => "ignored",
            Outcome::Unknown => "unknown",
            Outcome::Acknowledged => "acknowledged",
            Outcome::NotOurs => "not_ours",
        }
    }
}

/// Why a notification was not taken.
#[derive(Debug)]
pub enum Refusal {
    /// It is wrong and will stay wrong (logged, nothing changes); the
    /// reason is about the notification and may be answered.
    Bad(String),
    /// It could not be taken now; the sender should send it again. The
    /// reason is internal: logged, never answered.
    Retry(String),
}

/// CloudPayments' answer code, or a refusal with the code to answer.
pub type CloudPaymentsAnswer = Result<i64, (i64, Refusal)>;

impl Payments {
    /// Logs and counts a refusal of `acquirer`'s notification.
    pub fn refused(&self, acquirer: &str, refusal: &Refusal) {
        match refusal {
            Refusal::Bad(reason) => {
                tracing::warn!(%acquirer, %reason, "notification refused");
                self.observer.callback("refused");
            }
            Refusal::Retry(reason) => {
                tracing::error!(%acquirer, %reason, "notification not taken; the sender will retry");
                self.observer.callback("error");
            }
        }
    }

    fn logged<T>(&self, acquirer: &str, r: Result<T, Refusal>) -> Result<T, Refusal> {
        if let Err(e) = &r {
            self.refused(acquirer, e);
        }
        r
    }

    /// Applies a verified callback exactly once and what follows from it
    /// (the hold sold or released).
    pub async fn apply(&self, callback: &Callback) -> Result<Outcome, CallbackError> {
        let outcome = self.store.apply_callback(callback).await?;
        let word = match &outcome {
            CallbackOutcome::Applied { .. } => Outcome::Applied,
            CallbackOutcome::Duplicate => Outcome::Duplicate,
            CallbackOutcome::Ignored { .. } => Outcome::Ignored,
        };
        tracing::info!(
            acquirer = %callback.acquirer,
            event = %callback.callback_id,
            attempt = %callback.attempt_id,
            outcome = word.as_str(),
            "callback received"
        );
        self.observer.callback(word.as_str());
        if let CallbackOutcome::Applied {
            order: state,
            duplicate,
            ..
        } = outcome
        {
            if duplicate {
                // One order, one charge: the second is given back.
                self.refund_duplicate(&callback.attempt_id).await;
            }
            if let Ok(Some(attempt)) = self.store.attempt(&callback.attempt_id).await {
                if state == OrderState::Succeeded {
                    self.settle_paid(&attempt.order_id).await;
                } else if state == OrderState::Failed {
                    self.release_after_failure(&attempt.order_id).await;
                }
                self.changed(&attempt.order_id).await;
            }
        }
        Ok(word)
    }

    /// The sandbox acquirer's signed callback (`signature`: its header).
    /// Duplicates and callbacks the attempt has moved past are taken too.
    pub async fn sandbox_callback(&self, signature: Option<&str>, body: &[u8]) -> Result<Outcome, Refusal> {
        let now = self.now();
        let r = async {
            let cb = sandbox::verify(self.sandbox_secret.as_bytes(), signature, body, now / 1000)
                .map_err(|e| Refusal::Bad(e.to_string()))?;
            let callback = cb.to_callback(now).map_err(|e| Refusal::Bad(e.to_string()))?;
            self.test_mode_attempt(&callback.attempt_id).await?;
            self.apply(&callback).await.map_err(refusal)
        }
        .await;
        self.logged(sandbox::ACQUIRER, r)
    }

    /// Refuses a sandbox payment of a live-mode order (an attempt made before
    /// modes existed, say): test cards never mark live money paid.
    async fn test_mode_attempt(&self, id: &AttemptId) -> Result<(), Refusal> {
        let retry = |e: crate::store::StoreError| Refusal::Retry(e.to_string());
        let Some(attempt) = self.store.attempt(id).await.map_err(retry)? else {
            return Ok(());
        };
        let Some(order) = self.store.order(&attempt.order_id).await.map_err(retry)? else {
            return Ok(());
        };
        let live = self
            .modes
            .livemode(&order.seller_id)
            .await
            .map_err(|e| Refusal::Retry(e.to_string()))?;
        if live || attempt.acquirer != sandbox::ACQUIRER {
            return Err(Refusal::Bad(
                "the sandbox takes test-mode payments only; this attempt is not one".into(),
            ));
        }
        Ok(())
    }

    /// T-Bank's notification: the terminal named in the body gives the
    /// password its `Token` must verify under.
    pub async fn tbank_notification(&self, body: &[u8]) -> Result<Outcome, Refusal> {
        let r = async {
            let key = tbank::terminal_of(body).map_err(|e| Refusal::Bad(e.to_string()))?;
            let creds = self.account_of(tbank::ACQUIRER, &key).await?;
            let n = tbank::verify_notification(body, creds.secret.expose_secret())
                .map_err(|e| Refusal::Bad(e.to_string()))?;
            let payment = Payment {
                reference: Some(n.order_id.clone()),
                payment_id: n.payment_id.clone(),
                created_as: Some(n.payment_id.clone()),
                status: n.status.clone(),
                amount_minor: Some(n.amount_minor),
            };
            self.follow(&creds, &payment).await
        }
        .await;
        self.logged(tbank::ACQUIRER, r)
    }

    /// CloudPayments' notification of `kind` to the site `account` (its
    /// Public ID), HMAC-checked on the raw body with the site's API secret
    /// (`signatures`: its Content-HMAC headers). A Check is answered from
    /// the attempt (10 unknown order, 12 wrong amount, 20 over); Pay and Fail
    /// are followed; a refusal answers 13.
    pub async fn cloudpayments_notification(
        &self,
        account: &str,
        kind: Kind,
        signatures: &[&str],
        body: &[u8],
    ) -> CloudPaymentsAnswer {
        let r = async {
            let refused = |c: i64| move |r: Refusal| (c, r);
            let creds = self
                .account_of(cp::ACQUIRER, account)
                .await
                .map_err(refused(cp::CHECK_REFUSED))?;
            let n = cp::verify_notification(kind, body, signatures, creds.secret.expose_secret())
                .map_err(|e| (cp::CHECK_REFUSED, Refusal::Bad(e.to_string())))?;
            let payment = n.payment();
            match kind {
                Kind::Check => self.cloudpayments_check(&creds, &n, &payment).await,
                // Refunds are Haul's own doing and recorded when asked.
                Kind::Refund => {
                    tracing::info!(transaction = %n.transaction_id, invoice = %n.invoice_id, "CloudPayments refund notification");
                    Ok(cp::CHECK_OK)
                }
                Kind::Pay | Kind::Fail => self
                    .follow(&creds, &payment)
                    .await
                    .map(|_| cp::CHECK_OK)
                    .map_err(refused(cp::CHECK_REFUSED)),
            }
        }
        .await;
        if let Err((_, e)) = &r {
            self.refused(cp::ACQUIRER, e);
        }
        r
    }

    /// A CloudPayments Check: may this payment go ahead?
    async fn cloudpayments_check(
        &self,
        creds: &Credentials,
        n: &cp::Notification,
        payment: &Payment,
    ) -> CloudPaymentsAnswer {
        let attempt = self
            .attempt_of(creds, payment)
            .await
            .map_err(|r| (cp::CHECK_UNKNOWN_INVOICE, r))?;
        let order_over = match self.store.order(&attempt.order_id).await {
            Ok(o) => o.is_none_or(|o| o.state.is_final()),
            Err(e) => {
                let why = format!("could not read the order: {e}");
                return Err((cp::CHECK_REFUSED, Refusal::Retry(why)));
            }
        };
        if attempt.state.is_final() || order_over {
            let why = format!("the attempt is already {} (its order is over)", attempt.state);
            return Err((cp::CHECK_EXPIRED, Refusal::Bad(why)));
        }
        if n.amount_minor != attempt.amount_minor || n.currency != attempt.currency {
            let why = "the amount differs from the attempt".to_owned();
            return Err((cp::CHECK_WRONG_AMOUNT, Refusal::Bad(why)));
        }
        Ok(cp::CHECK_OK)
    }

    /// YooKassa's notification to the shop `account`. It is not signed: only
    /// the object id is read from it, and the payment is fetched from the
    /// API with the shop's key. With the shop's `sender_allow_list` setting,
    /// only YooKassa's published networks (`from`) may send it.
    pub async fn yookassa_notification(&self, account: &str, from: IpAddr, body: &[u8]) -> Result<Outcome, Refusal> {
        let r = async {
            let creds = self.account_of(yookassa::ACQUIRER, account).await?;
            if creds.account.settings["sender_allow_list"].as_bool() == Some(true)
                && !yookassa::in_networks(from, yookassa::SENDER_NETWORKS)
            {
                return Err(Refusal::Bad(format!("{from} is not a YooKassa sender")));
            }
            let notice = yookassa::read_notification(body).map_err(|e| Refusal::Bad(e.to_string()))?;
            if !notice.event.starts_with("payment.") {
                tracing::info!(event = %notice.event, object = %notice.object_id, "YooKassa notification acknowledged");
                return Ok(Outcome::Acknowledged);
            }
            let adapter = bank::adapter(&creds).map_err(|e| Refusal::Retry(e.to_string()))?;
            // The object as the API has it; the body is not trusted (our
            // attempt id is in what the API answers).
            let payment = match bank::lookup(self.transport(), adapter.as_ref(), "", &notice.object_id).await {
                Ok(Lookup::Found(p)) => p,
                Ok(Lookup::NotFound) => {
                    return Err(Refusal::Bad(format!("YooKassa has no payment {:?}", notice.object_id)))
                }
                Err(e) => return Err(Refusal::Retry(format!("could not fetch the payment: {e}"))),
            };
            if !ours(yookassa::ACQUIRER, &payment) {
                return Ok(Outcome::NotOurs);
            }
            self.follow(&creds, &payment).await
        }
        .await;
        self.logged(yookassa::ACQUIRER, r)
    }

    /// A Stripe webhook event for the account `account`, verified with that
    /// endpoint's signing secret (`header`: its Stripe-Signature); Checkout
    /// Session events are followed, others acknowledged.
    pub async fn stripe_notification(
        &self,
        account: &str,
        header: Option<&str>,
        body: &[u8],
    ) -> Result<Outcome, Refusal> {
        let r = async {
            let creds = self.account_of(stripe::ACQUIRER, account).await?;
            let secret = creds
                .webhook_secret
                .as_ref()
                .map(ExposeSecret::expose_secret)
                .ok_or_else(|| Refusal::Bad("the account has no webhook secret".into()))?;
            let event = stripe::verify_webhook(header, body, secret, self.now() / 1000)
                .map_err(|e| Refusal::Bad(e.to_string()))?;
            let Some(payment) = stripe::session_event(&event) else {
                tracing::info!(event = %event.id, kind = %event.kind, "Stripe event acknowledged");
                return Ok(Outcome::Acknowledged);
            };
            let payment = payment.map_err(|e| Refusal::Bad(e.to_string()))?;
            if !ours(stripe::ACQUIRER, &payment) {
                return Ok(Outcome::NotOurs);
            }
            self.follow(&creds, &payment).await
        }
        .await;
        self.logged(stripe::ACQUIRER, r)
    }

    /// The bank account a notification names (`account` is the bank's id
    /// of it: terminal, site, shop).
    async fn account_of(&self, acquirer: &str, account: &str) -> Result<Credentials, Refusal> {
        if account.is_empty() || account.len() > 64 {
            return Err(Refusal::Bad(format!("unknown {acquirer} account")));
        }
        match accounts::by_bank_account(&self.pool, &self.vault, acquirer, account).await {
            Ok(Some(c)) => Ok(c),
            Ok(None) => Err(Refusal::Bad(format!("unknown {acquirer} account {account:?}"))),
            Err(e) => Err(Refusal::Retry(format!("could not read the account: {e}"))),
        }
    }

    /// The attempt a verified notification is about; it must have gone to
    /// this very bank account.
    async fn attempt_of(&self, creds: &Credentials, payment: &Payment) -> Result<Attempt, Refusal> {
        let reference = payment.reference.as_deref().unwrap_or_default();
        let unknown = || Refusal::Bad(format!("unknown order reference {reference:?}"));
        let attempt_id = AttemptId::parse(reference).map_err(|_| unknown())?;
        let attempt = match self.store.attempt(&attempt_id).await {
            Ok(Some(a)) => a,
            Ok(None) => return Err(unknown()),
            Err(e) => return Err(Refusal::Retry(format!("could not read the attempt: {e}"))),
        };
        if attempt.account_id.as_deref() != Some(creds.account.id.as_str()) {
            return Err(Refusal::Bad("the payment was not made with this bank account".into()));
        }
        Ok(attempt)
    }

    /// Takes a verified bank report of a payment: checks it is this
    /// account's attempt (and, where the bank names its payment as creation
    /// did, that very payment), captures it where the bank wants that, and
    /// applies its status exactly once (deduplicated per payment and
    /// status, with reconciliation's polls too).
    async fn follow(&self, creds: &Credentials, payment: &Payment) -> Result<Outcome, Refusal> {
        let adapter = bank::adapter(creds).map_err(|e| Refusal::Retry(e.to_string()))?;
        let bank = adapter.as_ref();
        let attempt = self.attempt_of(creds, payment).await?;
        let created_as = payment.created_as.as_deref();
        match (attempt.acquirer_ref.as_deref(), created_as) {
            (Some(ours), Some(theirs)) if ours != theirs => {
                return Err(Refusal::Bad("the payment id does not match the attempt".into()));
            }
            (Some(_), _) => {}
            // Creation had no clear answer, yet the bank made the payment: follow it.
            (None, _) => {
                let made = created_as.unwrap_or(&payment.payment_id);
                if let Err(e) = self
                    .store
                    .set_started(&attempt.id, Some(&creds.account.id), made, self.now())
                    .await
                {
                    return Err(Refusal::Retry(format!("not stored: {e}")));
                }
            }
        }
        let mut payment = payment.clone();
        if bank
            .capture(&payment, attempt.amount_minor, &attempt.currency)
            .is_some()
        {
            payment = self
                .capture_or_void(bank, &attempt, &payment)
                .await
                .map_err(Refusal::Retry)?;
        }
        let state = match bank.map_status(&payment.status) {
            Mapped::State(st) => st,
            Mapped::Unknown => {
                tracing::warn!(acquirer = bank.name(), status = %payment.status, attempt = %attempt.id, "unknown bank status: left for reconciliation");
                return Ok(Outcome::Unknown);
            }
        };
        let callback = Callback {
            acquirer: bank.name().into(),
            // Banks give no notification id that polls share: one payment
            // reports each status once.
            callback_id: format!("{}:{}", payment.payment_id, payment.status),
            attempt_id: attempt.id.clone(),
            amount_minor: payment.amount_minor.unwrap_or(attempt.amount_minor),
            currency: attempt.currency.clone(),
            state,
            at: self.now(),
        };
        self.apply(&callback).await.map_err(refusal)
    }

    /// An authorized payment waiting for capture: captured while its
    /// attempt and order stand (the amount must be the attempt's), else let
    /// go, so no money is taken for an order that is over; the payment as
    /// that left it.
    pub(super) async fn capture_or_void(
        &self,
        bank: &dyn Acquirer,
        attempt: &Attempt,
        payment: &Payment,
    ) -> Result<Payment, String> {
        let order_over = match self.store.order(&attempt.order_id).await {
            Ok(Some(o)) => o.state.is_final(),
            Ok(None) => true,
            Err(e) => return Err(format!("could not read the order: {e}")),
        };
        let wrong_amount = payment.amount_minor.is_some_and(|a| a != attempt.amount_minor);
        if attempt.state.is_final() || order_over || wrong_amount {
            tracing::warn!(attempt = %attempt.id, state = %attempt.state, order_over, wrong_amount, "an authorized payment is let go, not captured");
            return match bank::void(self.transport(), bank, payment).await {
                Ok(p) => Ok(p.unwrap_or_else(|| payment.clone())),
                Err(e) => Err(format!("void failed: {e}")),
            };
        }
        match bank::capture(self.transport(), bank, payment, attempt.amount_minor, &attempt.currency).await {
            Ok(p) => Ok(p.unwrap_or_else(|| payment.clone())),
            Err(e) => Err(format!("capture failed: {e}")),
        }
    }
}

/// A callback the store would not take: wrong for good, or try again.
fn refusal(e: CallbackError) -> Refusal {
    match e {
        CallbackError::Store(e) => Refusal::Retry(format!("not stored: {e}")),
        e => Refusal::Bad(e.to_string()),
    }
}

/// Whether a bank's payment was made by Haul (it carries an attempt id):
/// the same account may take payments elsewhere too, and their
/// notifications are acknowledged and left alone.
fn ours(acquirer: &str, payment: &Payment) -> bool {
    let ours = payment
        .reference
        .as_deref()
        .is_some_and(|r| AttemptId::parse(r).is_ok());
    if !ours {
        tracing::info!(%acquirer, payment = %payment.payment_id, "not a Haul payment: acknowledged, left alone");
    }
    ours
}
