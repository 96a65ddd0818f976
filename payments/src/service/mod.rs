//! The payments domain's operations that reach banks, as the gateway calls
//! them. A bank's protocol ([`crate::acquirers`]) builds each
//! [`Call`](crate::acquirers::Call) and reads its answer; a [`Transport`],
//! which the gateway implements over HTTP, carries it. This crate knows no
//! HTTP client.
//!
//! # Layout
//! - [`bank`]: one bank call at a time through the transport, with typed
//!   answers ([`BankError`]);
//! - [`breaker`]: bank accounts out of rotation after outages.

pub mod bank;
pub mod breaker;

pub use self::bank::{BankError, Transport, TransportError};
pub use self::breaker::{Breakers, COOL_DOWN, TRIP_AFTER};

type Source = Box<dyn std::error::Error + Send + Sync>;
