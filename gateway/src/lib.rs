//! `haul`, the gateway: HTTP API, configuration, authentication, rate limits,
//! and the wiring of stores and engines into one running application.
//!
//! # Layout
//! Edges and wiring only; the domains are `streams::service` and
//! `payments::service`.
//! - [`config`] — `HAUL_*` variables, validated; the `--help` text.
//! - [`app`] — `Application::build` + `run_until_stopped`; the router's
//!   middleware.
//! - [`state`] — what every handler and worker shares.
//! - [`workers`] — the one place that starts every background loop.
//! - [`http`] — the HTTP edge: [`http::routes`] (one module per resource,
//!   thin handlers over the service layers), extractors, the error
//!   catalogue, the `Idempotency-Key` middleware, rate limits, OpenAPI.
//! - [`realtime`] — the Centrifugo client protocol for viewers: connections,
//!   channels, the publisher, fan-out behind an engine trait (in-process or
//!   Redis).
//! - [`adapters`] — the domains' ports: bank calls over HTTP, stock for
//!   payments over streams, seller webhook delivery, the sandbox's callbacks.
//! - [`reserve`] — one reserve as HTTP and the realtime RPC take it.
//! - [`sellers`], [`jwt`] — sellers' API keys and widget settings; viewer tokens.
//! - [`metrics`], [`demo`].
#![forbid(unsafe_code)]
// The OpenAPI document's schemas are one `json!` literal, deeper than the
// default limit of macro expansion.
#![recursion_limit = "256"]

pub mod adapters;
pub mod app;
pub mod config;
pub mod demo;
pub mod http;
pub mod jwt;
pub mod metrics;
pub mod people;
pub mod realtime;
pub mod reserve;
pub mod sellers;
pub mod state;
pub mod workers;
