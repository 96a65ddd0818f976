//! The banks' sides of their protocols, for tests.
#![allow(dead_code)]

pub mod tbank;
