//! The gateway's implementations of the domains' ports and its outbound
//! calls:
//! - [`banks`]: bank calls over HTTP;
//! - [`stock`]: the stock behind payments over the streams domain, with its
//!   clock;
//! - [`webhooks`]: seller webhooks delivered over HTTP, to globally
//!   reachable addresses only ([`addresses`]);
//! - [`sandbox`]: the sandbox acquirer's callbacks;
//! - [`mail`]: buyers' emails sent through SMTP (or written to files);
//! - [`retailcrm`]: paid orders to the seller's RetailCRM, its statuses back;
//! - [`observer`]: the payments service's outcomes (metrics, buyers told).

pub mod addresses;
pub mod banks;
pub mod mail;
pub mod observer;
pub mod retailcrm;
pub mod sandbox;
pub mod stock;
pub mod webhooks;
