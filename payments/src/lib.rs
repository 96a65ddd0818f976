//! Payments: orders and their attempts at acquirers, inbound callback
//! verification, refunds, settlement, seller webhooks. No HTTP here; the
//! gateway wires it.
//!
//! # Layout
//! - [`accounts`]: sellers' accounts at banks, in priority order, secrets sealed;
//! - [`acquirers`]: real banks' protocols (signing, answers, notifications, statuses);
//! - [`checkout`]: checkout sessions for sellers' sites (receipt items, return URLs);
//! - [`details`]: buyer details and delivery asked at checkout, checked, kept with consent;
//! - [`fulfilment`]: a paid order's way to the buyer (forward-only moves, refunds they owe);
//! - [`idempotency`]: Idempotency-Key storage (Stripe's semantics);
//! - [`ids`]: `ord_…` and `pat_…` ids;
//! - [`mail`]: emails to buyers (paid, shipped, refunded), queued with their change;
//! - [`outbox`]: seller webhook endpoints, the outbox and deliveries;
//! - [`sandbox`]: the built-in test acquirer's cards and signed callbacks;
//! - [`service`]: the domain's operations and workers ([`service::Payments`]):
//!   starting payments, notifications, reconciliation, refunds, settlement;
//!   banks through a transport and stock through a trait the
//!   gateway provides;
//! - [`state`]: the order and attempt lifecycles (forward-only tables);
//! - [`store`]: orders, attempts, transitions and the callback inbox (SQLite
//!   and PostgreSQL); callbacks applied exactly once;
//! - [`vault`]: sealing credentials at rest;
//! - [`webhook`]: Standard Webhooks signing and verification for seller webhooks.

pub mod accounts;
pub mod acquirers;
pub mod checkout;
pub mod details;
pub mod fulfilment;
pub mod idempotency;
pub mod ids;
pub mod mail;
pub mod modes;
pub mod orderbook;
pub mod outbox;
pub mod sandbox;
pub mod sandbox_ledger;
pub mod service;
pub mod state;
pub mod store;
pub mod vault;
pub mod webhook;
