//! `haul`, the gateway: HTTP API, configuration, authentication, rate limits,
//! and the wiring of stores and engines into one running application.
//!
//! # Layout
//! Edges and wiring only; the domains are `streams::service` and
//! `payments::service`.
//! - [`config`] — `HAUL_*` variables, validated; the `--help` text.
//! - [`app`] — `Application::build` + `run_until_stopped`; state; middleware.
//! - [`workers`] — the one place that starts every background loop.
//! - [`routes`] — one module per resource, each with its `router()`: thin
//!   handlers over the service layers.
//! - [`realtime`] — the Centrifugo client protocol for viewers: connections,
//!   channels, the publisher, fan-out behind an engine trait (in-process or
//!   Redis).
//! - [`adapters`] — the domains' ports: bank calls over HTTP, stock for
//!   payments over streams, seller webhook delivery, the sandbox's callbacks.
//! - [`error`] — the API error catalogue and its JSON form.
//! - [`extract`] — JSON bodies, ids, seller keys, viewer tokens, client address.
//! - [`idempotency`] — the `Idempotency-Key` middleware of creating calls.
//! - [`reserve`] — one reserve as HTTP and the realtime RPC take it.
//! - [`sellers`], [`jwt`] — sellers' API keys and widget settings; viewer tokens.
//! - [`metrics`], [`ratelimit`], [`demo`], [`openapi`].
#![forbid(unsafe_code)]

pub mod adapters;
pub mod app;
pub mod config;
pub mod demo;
pub mod error;
pub mod extract;
pub mod idempotency;
pub mod jwt;
pub mod metrics;
pub mod openapi;
pub mod ratelimit;
pub mod realtime;
pub mod reserve;
pub mod routes;
pub mod sellers;
pub mod workers;
