//! The gateway's implementations of the domains' ports: bank calls over
//! HTTP ([`banks`]), and the stock behind payments over the streams domain,
//! with its clock ([`stock`]).

pub mod banks;
pub mod stock;
