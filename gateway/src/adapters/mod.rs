//! The gateway's implementations of the domains' ports: bank calls over
//! HTTP ([`banks`]), and the stock behind payments over the streams domain,
//! with its clock ([`stock`]); seller webhooks delivered over HTTP
//! ([`webhooks`]); the sandbox acquirer's callbacks ([`sandbox`]).

pub mod banks;
pub mod sandbox;
pub mod stock;
pub mod webhooks;
