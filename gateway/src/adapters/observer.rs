//! What the payments service tells the gateway: its outcomes counted in
//! the metrics, and each change of a stream purchase pushed to its buyer's
//! own channel (`order.updated`: state, refunds, fulfilment and shipment —
//! nothing of the buyer's contact).

use std::sync::Arc;

use payments::service::{Observer, Reconciled};
use payments::store::Order;
use serde_json::json;

use crate::metrics::Metrics;
use crate::realtime::publisher::Hub;

pub struct PaymentsObserver {
    pub metrics: Arc<Metrics>,
    pub hub: Arc<Hub>,
}

/// The buyer's view of an order's change.
pub fn order_event(o: &Order) -> serde_json::Value {
    json!({
        "type": "order.updated",
        "order_id": o.id,
        "offer_id": o.offer_id,
        "state": o.state,
        "amount_minor": o.amount_minor,
        "currency": o.currency,
        "refunded_minor": o.refunded_minor,
        "fulfilment": o.fulfilment,
        "shipment": o.tracking_number.as_ref().map(|t| json!({ "carrier": o.carrier, "tracking_number": t })),
        "updated_at": o.updated_at,
    })
}

impl Observer for PaymentsObserver {
    fn callback(&self, outcome: &'static str) {
        Observer::callback(&*self.metrics, outcome);
    }

    fn reconciled(&self, outcome: Reconciled) {
        Observer::reconciled(&*self.metrics, outcome);
    }

    fn settlement_retried(&self) {
        Observer::settlement_retried(&*self.metrics);
    }

    fn order_changed(&self, order: &Order) {
        if let Some(buyer) = &order.buyer_id {
            self.hub.publish_personal(buyer, order_event(order));
        }
    }
}
