//! The payments crate's integration tests, in one binary:
//!
//! - `store`: the payments store on real SQLite and PostgreSQL (callbacks
//!   once, states forward, every change recorded);
//! - `standard_webhooks`: Haul's webhook signatures against the official
//!   `standardwebhooks` library.

mod standard_webhooks;
mod store;
