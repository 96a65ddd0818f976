//! Payments: orders and their attempts at acquirers, inbound callback
//! verification, seller webhooks. No HTTP here; the gateway wires it.
//!
//! # Layout
//! - [`state`]: the order and attempt lifecycles (forward-only tables);
//! - [`webhook`]: Standard Webhooks signing and verification for seller webhooks.

pub mod state;
pub mod webhook;
