//! The lifecycles of orders and payment attempts: explicit tables of the
//! moves allowed, forward only. A callback that would move a state backwards
//! (a late `pending` after `succeeded`, say) is refused by the table, not by
//! luck in the order callbacks arrive.

use std::fmt;

use serde::{Deserialize, Serialize};

/// An order (the payment intent): one per hold or checkout session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderState {
    /// Made, no attempt at an acquirer yet.
    Created,
    /// An attempt is in progress at an acquirer.
    Pending,
    /// The buyer must act (3-D Secure challenge, bank app).
    RequiresAction,
    /// Paid.
    Succeeded,
    /// No attempt can succeed any more (declined everywhere, or given up).
    Failed,
    /// Cancelled by the buyer or the seller before payment.
    Cancelled,
    /// Not paid in time (the hold expired, the session lapsed).
    Expired,
    /// Some of the amount was returned.
    PartiallyRefunded,
    /// All of the amount was returned.
    Refunded,
}

/// One try at one acquirer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttemptState {
    Created,
    Pending,
    RequiresAction,
    Succeeded,
    /// Declined, or the acquirer refused to serve.
    Failed,
    Cancelled,
}

/// A move the lifecycle does not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{what} cannot go from {from} to {to}")]
pub struct IllegalMove {
    pub what: &'static str,
    pub from: &'static str,
    pub to: &'static str,
}

impl OrderState {
    pub const ALL: [OrderState; 9] = [
        OrderState::Created,
        OrderState::Pending,
        OrderState::RequiresAction,
        OrderState::Succeeded,
        OrderState::Failed,
        OrderState::Cancelled,
        OrderState::Expired,
        OrderState::PartiallyRefunded,
        OrderState::Refunded,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OrderState::Created => "created",
            OrderState::Pending => "pending",
            OrderState::RequiresAction => "requires_action",
            OrderState::Succeeded => "succeeded",
            OrderState::Failed => "failed",
            OrderState::Cancelled => "cancelled",
            OrderState::Expired => "expired",
            OrderState::PartiallyRefunded => "partially_refunded",
            OrderState::Refunded => "refunded",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// Whether money was taken (and maybe partly returned).
    pub fn is_paid(self) -> bool {
        matches!(
            self,
            OrderState::Succeeded | OrderState::PartiallyRefunded | OrderState::Refunded
        )
    }

    /// Whether the order waits for nothing more (short of a refund).
    pub fn is_final(self) -> bool {
        !matches!(
            self,
            OrderState::Created | OrderState::Pending | OrderState::RequiresAction
        )
    }

    /// Whether `self → to` is allowed. A success reported after the order
    /// was cancelled or expired is allowed on purpose: the money was taken,
    /// so the order must say so (and is then refunded or re-takes stock).
    pub fn allows(self, to: OrderState) -> bool {
        use OrderState::*;
        // requires_action may go back to pending (the buyer acted, or a new
        // attempt after a failover); nothing goes back to created.
        matches!(
            (self, to),
            (
                Created,
                Pending | RequiresAction | Succeeded | Failed | Cancelled | Expired
            ) | (Pending, RequiresAction | Succeeded | Failed | Cancelled | Expired)
                | (RequiresAction, Pending | Succeeded | Failed | Cancelled | Expired)
                | (Cancelled | Expired, Succeeded)
                | (Succeeded, PartiallyRefunded | Refunded)
                | (PartiallyRefunded, PartiallyRefunded | Refunded)
        )
    }

    pub fn step(self, to: OrderState) -> Result<OrderState, IllegalMove> {
        if self.allows(to) {
            Ok(to)
        } else {
            Err(IllegalMove {
                what: "an order",
                from: self.as_str(),
                to: to.as_str(),
            })
        }
    }
}

impl AttemptState {
    pub const ALL: [AttemptState; 6] = [
        AttemptState::Created,
        AttemptState::Pending,
        AttemptState::RequiresAction,
        AttemptState::Succeeded,
        AttemptState::Failed,
        AttemptState::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AttemptState::Created => "created",
            AttemptState::Pending => "pending",
            AttemptState::RequiresAction => "requires_action",
            AttemptState::Succeeded => "succeeded",
            AttemptState::Failed => "failed",
            AttemptState::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }

    pub fn is_final(self) -> bool {
        matches!(
            self,
            AttemptState::Succeeded | AttemptState::Failed | AttemptState::Cancelled
        )
    }

    /// Whether `self → to` is allowed. An acquirer that reports success on
    /// an attempt we cancelled has taken the money: that is recorded too.
    pub fn allows(self, to: AttemptState) -> bool {
        use AttemptState::*;
        matches!(
            (self, to),
            (Created, Pending | RequiresAction | Succeeded | Failed | Cancelled)
                | (Pending, RequiresAction | Succeeded | Failed | Cancelled)
                | (RequiresAction, Pending | Succeeded | Failed | Cancelled)
                | (Cancelled, Succeeded)
        )
    }

    pub fn step(self, to: AttemptState) -> Result<AttemptState, IllegalMove> {
        if self.allows(to) {
            Ok(to)
        } else {
            Err(IllegalMove {
                what: "a payment attempt",
                from: self.as_str(),
                to: to.as_str(),
            })
        }
    }
}

impl fmt::Display for OrderState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for AttemptState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_ever_goes_back_to_created_or_stays_put_except_partial_refunds() {
        for from in OrderState::ALL {
            assert!(!from.allows(OrderState::Created), "{from} -> created");
            assert_eq!(
                from.allows(from),
                from == OrderState::PartiallyRefunded,
                "{from} -> itself"
            );
        }
        for from in AttemptState::ALL {
            assert!(!from.allows(AttemptState::Created) && !from.allows(from), "{from}");
        }
    }

    #[test]
    fn paid_orders_only_move_to_refunds_and_refunded_is_the_end() {
        for to in OrderState::ALL {
            let refund = matches!(to, OrderState::PartiallyRefunded | OrderState::Refunded);
            assert_eq!(OrderState::Succeeded.allows(to), refund, "succeeded -> {to}");
            assert!(!OrderState::Refunded.allows(to), "refunded -> {to}");
            assert!(!OrderState::Failed.allows(to), "failed -> {to}");
        }
    }

    #[test]
    fn a_late_success_is_recorded_but_a_late_pending_is_not() {
        assert_eq!(
            OrderState::Expired.step(OrderState::Succeeded),
            Ok(OrderState::Succeeded)
        );
        assert_eq!(
            OrderState::Cancelled.step(OrderState::Succeeded),
            Ok(OrderState::Succeeded)
        );
        let e = OrderState::Succeeded.step(OrderState::Pending).unwrap_err();
        assert_eq!(e.to_string(), "an order cannot go from succeeded to pending");
        assert!(AttemptState::Succeeded.step(AttemptState::Failed).is_err());
        assert!(AttemptState::Failed.step(AttemptState::Succeeded).is_err());
    }

    #[test]
    fn states_round_trip_through_their_names() {
        for s in OrderState::ALL {
            assert_eq!(OrderState::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        for s in AttemptState::ALL {
            assert_eq!(AttemptState::parse(s.as_str()), Some(s));
        }
        assert_eq!(OrderState::parse("paid"), None);
    }
}
