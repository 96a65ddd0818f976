//! What a seller sets up and reads back: bank accounts, webhook endpoints
//! and their deliveries, checkout sessions. Each is the seller's own: an id
//! of another seller's object is not found.

use crate::accounts::{self, Account, AccountError, Change, Credentials, NewAccount};
use crate::checkout::{self, NewSession, Session};
use crate::outbox::{self, Attempted, DeliveryView, Due, Endpoint};
use crate::state::OrderState;
use crate::store::Order;
use secrecy::ExposeSecret;

use super::{Error, Payments, Result};

fn account_error(e: AccountError) -> Error {
    match e {
        AccountError::Taken => Error::conflict("account_taken", "this bank account is already connected"),
        AccountError::Store(e) => Error::unavailable(e),
        AccountError::Sealed(e) => Error::internal(e),
    }
}

const ACCOUNT: Error = Error::NotFound("acquirer account");

impl Payments {
    /// Refuses credentials whose own format names the other mode: a bank's
    /// test terminal or test key belongs to test mode, a live key to live.
    async fn same_mode(&self, seller: &str, acquirer: &str, account: &str, secret: &str) -> Result<()> {
        let Some(key_live) = crate::acquirers::key_mode(acquirer, account, secret) else {
            return Ok(());
        };
        let live = self.livemode(seller).await?;
        if key_live == live {
            return Ok(());
        }
        let (what, mode, key) = if key_live {
            ("these are live credentials", "live", "hk_live_")
        } else {
            ("these are the bank's test credentials", "test", "hk_test_")
        };
        Err(Error::Invalid {
            field: if acquirer == crate::acquirers::tbank::ACQUIRER
                || acquirer == crate::acquirers::cloudpayments::ACQUIRER
            {
                "account"
            } else {
                "secret"
            },
            message: format!("{what}: connect them in {mode} mode, with an {key}… API key"),
        })
    }

    /// Proves the credentials are the account's by a call to its bank that
    /// only their holder gets a yes to (and, where the bank says, that the
    /// account is of the seller's mode). A refusal says nothing about who
    /// else may have connected the account.
    async fn prove(
        &self,
        seller: &str,
        acquirer: &str,
        account: &str,
        secret: &str,
        settings: &serde_json::Value,
    ) -> Result<()> {
        let first = secret.split('\n').next().unwrap_or_default();
        let creds = Credentials {
            account: Account {
                id: String::new(),
                acquirer: acquirer.to_owned(),
                account: account.to_owned(),
                settings: settings.clone(),
                priority: 0,
                enabled: true,
                created_at: 0,
                updated_at: 0,
            },
            seller_id: seller.to_owned(),
            secret: first.to_owned().into(),
            webhook_secret: None,
        };
        let Some(bank) = crate::acquirers::for_account(&creds) else {
            return Err(Error::Invalid {
                field: "acquirer",
                message: format!("one of: {}", accounts::ACQUIRERS.join(", ")),
            });
        };
        let unreachable = || {
            Error::bank(
                "acquirer_unavailable",
                format!("could not reach {acquirer} to check the credentials; try again"),
            )
        };
        let (status, body) = self
            .transport()
            .send(bank.bank(), bank.verify())
            .await
            .map_err(|_| unreachable())?;
        match bank.parse_verify(account, status, &body) {
            Ok(proof) => match proof.livemode {
                Some(live) if live != self.livemode(seller).await? => Err(Error::Invalid {
                    field: "account",
                    message: format!(
                        "{acquirer} says this is a {} account: connect it in that mode",
                        if live { "live" } else { "test" }
                    ),
                }),
                _ => Ok(()),
            },
            Err(crate::acquirers::AnswerError::Http(s)) if s >= 500 || s == 429 => Err(unreachable()),
            Err(_) => Err(Error::Invalid {
                field: "secret",
                message: format!("{acquirer} did not accept these credentials for this account"),
            }),
        }
    }

    /// Connects a bank account (its secret sealed at rest) to the seller's
    /// mode, once its bank has accepted the credentials; credentials of
    /// the other mode are refused.
    pub async fn connect_account(&self, seller: &str, new: &NewAccount<'_>) -> Result<Account> {
        self.same_mode(seller, new.acquirer, new.account, new.secret).await?;
        self.prove(seller, new.acquirer, new.account, new.secret, new.settings)
            .await?;
        accounts::create(&self.pool, &self.vault, seller, new, self.now())
            .await
            .map_err(account_error)
    }

    /// The seller's bank accounts, in priority order.
    pub async fn accounts(&self, seller: &str) -> Result<Vec<Account>> {
        accounts::list(&self.pool, seller).await.map_err(Error::unavailable)
    }

    pub async fn account(&self, seller: &str, id: &str) -> Result<Account> {
        accounts::get(&self.pool, seller, id)
            .await
            .map_err(Error::unavailable)?
            .ok_or(ACCOUNT)
    }

    /// An account with its opened secrets.
    pub async fn account_credentials(&self, seller: &str, id: &str) -> Result<Credentials> {
        accounts::credentials(&self.pool, &self.vault, seller, id)
            .await
            .map_err(account_error)?
            .ok_or(ACCOUNT)
    }

    pub async fn change_account(&self, seller: &str, id: &str, change: &Change<'_>) -> Result<Account> {
        if let Some(secret) = change.secret {
            let now = self.account_credentials(seller, id).await?;
            self.same_mode(seller, &now.account.acquirer, &now.account.account, secret)
                .await?;
            // A new API secret is proved like the first (a new webhook
            // secret alone is not the bank's to check).
            if secret.split('\n').next() != Some(now.secret.expose_secret()) {
                let settings = change.settings.unwrap_or(&now.account.settings);
                self.prove(seller, &now.account.acquirer, &now.account.account, secret, settings)
                    .await?;
            }
        }
        accounts::update(&self.pool, &self.vault, seller, id, change, self.now())
            .await
            .map_err(account_error)?
            .ok_or(ACCOUNT)
    }

    pub async fn remove_account(&self, seller: &str, id: &str) -> Result<()> {
        match accounts::delete(&self.pool, seller, id).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(ACCOUNT),
            Err(e) => Err(Error::unavailable(e)),
        }
    }

    /// A new webhook endpoint, with its first signing secret.
    pub async fn add_endpoint(&self, seller: &str, url: &str, event_types: &[String]) -> Result<Endpoint> {
        outbox::create_endpoint(&self.pool, &self.vault, seller, url, event_types, self.now())
            .await
            .map_err(Error::unavailable)
    }

    pub async fn endpoints(&self, seller: &str) -> Result<Vec<Endpoint>> {
        outbox::endpoints(&self.pool, &self.vault, seller)
            .await
            .map_err(Error::unavailable)
    }

    pub async fn endpoint(&self, seller: &str, id: &str) -> Result<Endpoint> {
        outbox::endpoint(&self.pool, &self.vault, seller, id)
            .await
            .map_err(Error::unavailable)?
            .ok_or(Error::NotFound("webhook endpoint"))
    }

    /// A new signing secret; the old one keeps signing beside it for a day.
    pub async fn update_endpoint(
        &self,
        seller: &str,
        id: &str,
        change: &outbox::EndpointChange<'_>,
    ) -> Result<Endpoint> {
        outbox::update_endpoint(&self.pool, &self.vault, seller, id, change)
            .await
            .map_err(Error::unavailable)?
            .ok_or(Error::NotFound("webhook endpoint"))
    }

    pub async fn delete_endpoint(&self, seller: &str, id: &str) -> Result<()> {
        if outbox::delete_endpoint(&self.pool, seller, id, self.now())
            .await
            .map_err(Error::unavailable)?
        {
            Ok(())
        } else {
            Err(Error::NotFound("webhook endpoint"))
        }
    }

    pub async fn rotate_endpoint_secret(&self, seller: &str, id: &str) -> Result<Endpoint> {
        outbox::rotate_secret(&self.pool, &self.vault, seller, id, self.now())
            .await
            .map_err(Error::unavailable)?
            .ok_or(Error::NotFound("webhook endpoint"))
    }

    /// An endpoint's latest deliveries, newest first.
    pub async fn deliveries(&self, seller: &str, endpoint: &str, limit: i64) -> Result<Vec<DeliveryView>> {
        self.endpoint(seller, endpoint).await?;
        outbox::deliveries(&self.pool, endpoint, limit)
            .await
            .map_err(Error::unavailable)
    }

    /// Sends a delivered (or given up) message to an endpoint again.
    pub async fn resend(&self, seller: &str, endpoint: &str, message: &str) -> Result<()> {
        self.endpoint(seller, endpoint).await?;
        match outbox::resend(&self.pool, endpoint, message, self.now()).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(Error::NotFound("delivery")),
            Err(e) => Err(Error::unavailable(e)),
        }
    }

    /// A validated checkout session and its order.
    pub async fn create_session(&self, seller: &str, new: &NewSession) -> Result<Session> {
        let (session, _) = checkout::create(&self.pool, &self.store, seller, new, self.now())
            .await
            .map_err(Error::unavailable)?;
        Ok(session)
    }

    pub async fn session(&self, seller: &str, id: &str) -> Result<Session> {
        checkout::get(&self.pool, seller, id)
            .await
            .map_err(Error::unavailable)?
            .ok_or(Error::NotFound("checkout session"))
    }

    /// A session by id alone (the id is the buyer's capability to pay it),
    /// with its seller.
    pub async fn session_by_id(&self, id: &str) -> Result<(String, Session)> {
        checkout::by_id(&self.pool, id)
            .await
            .map_err(Error::unavailable)?
            .ok_or(Error::NotFound("checkout session"))
    }

    /// The checkout session of an order, if it has one.
    pub async fn session_of_order(&self, order: &str) -> Result<Option<Session>> {
        checkout::by_order_id(&self.pool, order)
            .await
            .map_err(Error::unavailable)
    }

    /// The seller's sessions, newest first, before `before` (ms) when given.
    pub async fn sessions(&self, seller: &str, limit: i64, before: Option<i64>) -> Result<Vec<Session>> {
        checkout::list(&self.pool, seller, limit, before)
            .await
            .map_err(Error::unavailable)
    }

    /// A page of the seller's order book (see [`crate::orderbook`]).
    pub async fn order_book(
        &self,
        seller: &str,
        filter: &crate::orderbook::Filter,
        after: Option<&crate::orderbook::Cursor>,
        limit: i64,
    ) -> Result<Vec<crate::orderbook::Entry>> {
        crate::orderbook::page(
            &self.pool,
            crate::orderbook::Scope::Seller(seller),
            filter,
            after,
            limit,
        )
        .await
        .map_err(Error::unavailable)
    }

    /// A page of a buyer's own orders, newest first.
    pub async fn buyer_orders(
        &self,
        buyer: &str,
        filter: &crate::orderbook::Filter,
        after: Option<&crate::orderbook::Cursor>,
        limit: i64,
    ) -> Result<Vec<crate::orderbook::Entry>> {
        crate::orderbook::page(&self.pool, crate::orderbook::Scope::Buyer(buyer), filter, after, limit)
            .await
            .map_err(Error::unavailable)
    }

    /// Gives a session without a buyer contact (a stream purchase's) the
    /// email the buyer typed for the receipt.
    pub async fn set_session_email(&self, session: &str, email: &str) -> Result<()> {
        checkout::set_email(&self.pool, session, email)
            .await
            .map_err(Error::unavailable)
    }

    /// Records the language the buyer pays in (see [`checkout::set_locale`]).
    pub async fn set_session_locale(&self, session: &str, locale: widget::Locale) -> Result<()> {
        checkout::set_locale(&self.pool, session, locale)
            .await
            .map_err(Error::unavailable)
    }

    /// A session's order as it stands now: an open session past its time
    /// expires (and its order with it) when read. A stream purchase's
    /// session lives as long as its hold instead, which the sweeper expires.
    pub async fn session_order(&self, session: &Session) -> Result<Order> {
        let oid = checkout::order_id(session).ok_or_else(|| Error::Internal("a session without an order".into()))?;
        let mut order = self
            .store
            .order(&oid)
            .await
            .map_err(Error::unavailable)?
            .ok_or_else(|| Error::Internal("a session's order is missing".into()))?;
        let now = self.now();
        if !order.state.is_final() && order.hold_id.is_none() && session.expires_at <= now {
            let cause = "the checkout session expired";
            if let Ok(Ok(state)) = self.store.move_order(&oid, OrderState::Expired, cause, now).await {
                order.state = state;
            }
        }
        Ok(order)
    }

    /// Cancels an unpaid session's order (a paid one is refunded instead).
    pub async fn cancel_session(&self, session: &Session) -> Result<()> {
        let oid = checkout::order_id(session).ok_or_else(|| Error::Internal("a session without an order".into()))?;
        let cause = "cancelled by the seller";
        match self
            .store
            .move_order(&oid, OrderState::Cancelled, cause, self.now())
            .await
            .map_err(Error::unavailable)?
        {
            Ok(_) => Ok(()),
            Err(e) => Err(Error::conflict(
                "illegal_transition",
                format!("{e}; refund a paid order instead"),
            )),
        }
    }

    /// Deliveries due now, claimed for `lease_ms` (a node that dies
    /// mid-send frees them by then).
    pub async fn claim_deliveries(&self, limit: i64, lease_ms: i64) -> Result<Vec<Due>> {
        outbox::claim_due(&self.pool, &self.vault, self.now(), limit, lease_ms)
            .await
            .map_err(Error::unavailable)
    }

    /// Records a delivery attempt; when the next is due, if there is one.
    /// `jitter` in `[0, 1)` spreads retries.
    pub async fn record_delivery(&self, due: &Due, result: &Attempted, jitter: f64) -> Result<Option<i64>> {
        outbox::record(&self.pool, due, result, self.now(), jitter)
            .await
            .map_err(Error::unavailable)
    }

    /// Stops deliveries to an endpoint (it answered 410 Gone, say).
    pub async fn disable_endpoint(&self, id: &str, reason: &str) -> Result<()> {
        outbox::disable_endpoint(&self.pool, id, reason)
            .await
            .map_err(Error::unavailable)
    }
}
