//! Streams, lots and offers with their lifecycles, and the stock engines that
//! hold units for buyers. No HTTP here: the gateway calls [`service::Streams`].
//!
//! # Layout
//! - [`ids`], [`money`], [`clock`] — typed ids, money in minor units, time.
//! - [`model`] — streams, lots, offers and their state machines.
//! - [`db`] — opening SQLite or PostgreSQL and applying `migrations/`.
//! - [`store`] — durable records of streams, lots, offers and sales.
//! - [`inventory`] — the stock engines behind one trait: in-process and Redis.
//! - [`events`] — what viewers of a stream are told, as it happens.
//! - [`service`] — the operations the gateway exposes, tying the above together:
//!   offer timers, hold expiry, rebuilding the engine from the store.
//! - `testing` (feature `testing`) — fresh databases and Redis prefixes
//!   on the real servers, for tests.
#![forbid(unsafe_code)]

pub mod clock;
pub mod db;
pub mod events;
pub mod ids;
pub mod inventory;
pub mod model;
pub mod money;
pub mod service;
pub mod store;
#[cfg(feature = "testing")]
pub mod testing;
