//! The streams crate's integration tests, in one binary, on the real
//! servers the test script starts:
//!
//! - `inventory`: one conformance suite for every stock engine;
//! - `store`: the durable store on SQLite and PostgreSQL, and their schemas
//!   compared after migrating;
//! - `service`: the service over a real store and engine, recovering from a
//!   node that stopped mid-sale.

mod inventory;
mod service;
mod store;
