//! The banks' sides of their protocols, for tests.
#![allow(dead_code)]

pub mod cloudpayments;
pub mod stripe;
pub mod tbank;
pub mod yookassa;
