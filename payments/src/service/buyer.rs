//! The buyer's details at checkout (see [`crate::details`]): a seller's
//! settings, and what a buyer gives before paying — the order's total and
//! receipt lines following the delivery chosen, the details kept for next
//! time when the buyer asks.

use sqlx::Row;

use crate::checkout::{self, Item, Session};
use crate::details::{self, Ask, Details};
use crate::ids::OrderId;

use super::{Error, Payments, Result};

/// A receipt line Haul added for delivery.
fn is_delivery_line(i: &Item) -> bool {
    i.payment_object == "service" && i.name.starts_with("Delivery: ")
}

impl Payments {
    /// A seller's own email template of a kind (`None`: the default).
    pub async fn mail_template(&self, seller: &str, kind: &str) -> Result<Option<(String, String)>> {
        crate::mail::template(&self.pool, seller, kind)
            .await
            .map_err(Error::unavailable)
    }

    /// Sets (or, with `None`, removes) a seller's email template of a kind.
    pub async fn set_mail_template(&self, seller: &str, kind: &str, template: Option<(&str, &str)>) -> Result<()> {
        crate::mail::set_template(&self.pool, seller, kind, template, self.now())
            .await
            .map_err(Error::unavailable)
    }

    /// A buyer opts out of a seller's emails.
    pub async fn mail_opt_out(&self, seller: &str, email: &str) -> Result<()> {
        crate::mail::opt_out(&self.pool, seller, email, self.now())
            .await
            .map_err(Error::unavailable)
    }

    /// The emails an order's buyer was sent (or is due).
    pub async fn order_emails(&self, order: &str) -> Result<Vec<serde_json::Value>> {
        crate::mail::of_order(&self.pool, order)
            .await
            .map_err(Error::unavailable)
    }

    /// A seller's checkout settings for a scope (`""` or a stream's id).
    pub async fn checkout_settings(&self, seller: &str, scope: &str) -> Result<Option<Ask>> {
        details::settings(&self.pool, seller, scope)
            .await
            .map_err(Error::unavailable)
    }

    /// Sets (checked) or removes a scope's checkout settings.
    pub async fn set_checkout_settings(&self, seller: &str, scope: &str, ask: Option<&Ask>) -> Result<()> {
        if let Some(a) = ask {
            a.check().map_err(|e| Error::Invalid {
                field: "checkout",
                message: e.to_string(),
            })?;
        }
        details::set_settings(&self.pool, seller, scope, ask, self.now())
            .await
            .map_err(Error::unavailable)
    }

    /// The details a session's buyer kept with its seller, if any.
    pub async fn saved_details(&self, session: &Session) -> Result<Option<Details>> {
        let oid = OrderId::parse(&session.order_id).map_err(Error::internal)?;
        let Some(order) = self.store.order(&oid).await.map_err(Error::unavailable)? else {
            return Ok(None);
        };
        let Some(buyer) = &order.buyer_id else { return Ok(None) };
        details::profile(&self.pool, &order.seller_id, buyer)
            .await
            .map_err(Error::unavailable)
    }

    /// Takes the buyer's (checked) details for a session not paid yet: the
    /// order's total becomes the goods and the delivery chosen, the receipt
    /// gets the delivery line and the buyer's contact. Once a payment has
    /// started they are fixed (409 `details_locked`). `save`: keep them for
    /// the buyer's next purchase from this seller; else forget any kept.
    pub async fn give_details(&self, session: &Session, given: Details, save: bool) -> Result<Session> {
        if !session.ask.as_ref().is_some_and(Ask::asks) {
            return Err(Error::conflict("nothing_asked", "this checkout asks for no details"));
        }
        let oid = OrderId::parse(&session.order_id).map_err(Error::internal)?;
        let order = self
            .store
            .order(&oid)
            .await
            .map_err(Error::unavailable)?
            .ok_or(Error::NotFound("order"))?;
        let mut items: Vec<Item> = session.items.iter().filter(|i| !is_delivery_line(i)).cloned().collect();
        let delivery_minor = given.delivery.as_ref().map_or(0, |d| d.price_minor);
        if let Some(line) = given.delivery.as_ref().and_then(details::delivery_item) {
            items.push(line);
        }
        let amount: i64 = items.iter().map(|i| i.price_minor * i.quantity).sum();
        let items_json = serde_json::to_string(&items).map_err(Error::internal)?;
        let buyer_json = serde_json::to_string(&given).map_err(Error::internal)?;
        let now = self.now();
        let mut tx = self.pool.begin().await.map_err(Error::unavailable)?;
        // Written first (SQLite takes its lock at once); only an order no
        // payment has started on changes its total.
        let changed = sqlx::query(
            "UPDATE orders SET amount_minor = $1, delivery_minor = $2, updated_at = $3 WHERE id = $4 \
             AND state = 'created' AND NOT EXISTS (SELECT 1 FROM payment_attempts a WHERE a.order_id = $4)",
        )
        .bind(amount)
        .bind(delivery_minor)
        .bind(now)
        .bind(order.id.as_str())
        .execute(&mut *tx)
        .await
        .map_err(Error::unavailable)?
        .rows_affected()
            == 1;
        if !changed {
            let _ = tx.rollback().await;
            return Err(Error::conflict(
                "details_locked",
                "the payment has started: the details and delivery are fixed",
            ));
        }
        sqlx::query(
            "UPDATE checkout_sessions SET buyer = $1, items = $2, \
             customer_email = COALESCE($3, customer_email), customer_phone = COALESCE($4, customer_phone) WHERE id = $5",
        )
        .bind(buyer_json)
        .bind(items_json)
        .bind(given.email.clone())
        .bind(given.phone.clone())
        .bind(&session.id)
        .execute(&mut *tx)
        .await
        .map_err(Error::unavailable)?;
        tx.commit().await.map_err(Error::unavailable)?;
        if let Some(buyer) = &order.buyer_id {
            let keep = save.then_some(&given);
            details::keep_profile(&self.pool, &order.seller_id, buyer, keep, now)
                .await
                .map_err(Error::unavailable)?;
        }
        checkout::by_order_id(&self.pool, order.id.as_str())
            .await
            .map_err(Error::unavailable)?
            .ok_or(Error::NotFound("checkout session"))
    }
}

/// The buyer's details on an order, for the seller's webhook (read in the
/// webhook's own transaction).
pub(crate) async fn buyer_of(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    order: &str,
) -> std::result::Result<Option<serde_json::Value>, sqlx::Error> {
    let row = sqlx::query("SELECT buyer, customer_email, customer_phone FROM checkout_sessions WHERE order_id = $1")
        .bind(order)
        .fetch_optional(&mut **tx)
        .await?;
    let Some(row) = row else { return Ok(None) };
    let buyer: Option<String> = row.try_get("buyer")?;
    let details: Option<Details> = buyer.and_then(|b| serde_json::from_str(&b).ok());
    let email: Option<String> = row.try_get("customer_email")?;
    let phone: Option<String> = row.try_get("customer_phone")?;
    Ok(Some(serde_json::json!({
        "customer": {
            "name": details.as_ref().and_then(|d| d.name.clone()),
            "email": email,
            "phone": phone,
        },
        "delivery": details.as_ref().and_then(|d| d.delivery.as_ref()).map(|d| serde_json::json!({
            "id": d.id, "name": d.name, "kind": d.kind, "price_minor": d.price_minor, "pickup_address": d.address,
        })),
        "shipping_address": details.as_ref().and_then(|d| d.address.clone()),
    })))
}
