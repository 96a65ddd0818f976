//! `haul`, the gateway: HTTP API, configuration, authentication, rate limits,
//! and the wiring of stores and engines into one running application.
//!
//! # Layout
//! - [`config`] — `HAUL_*` variables, validated; the `--help` text.
//! - [`app`] — `Application::build` + `run_until_stopped`; state; middleware.
//! - [`routes`] — one module per resource, each with its `router()`.
//! - [`realtime`] — the Centrifugo client protocol for viewers: connections,
//!   channels, the Redis bus between nodes.
//! - [`hub`] — publishes stream events to the realtime channels (and the bus).
//! - [`error`] — the API error catalogue and its JSON form.
//! - [`extract`] — JSON bodies, ids, seller keys, viewer tokens, client address.
//! - [`idempotency`] — the `Idempotency-Key` middleware of creating calls.
//! - [`sellers`], [`jwt`] — sellers' API keys; viewer tokens.
//! - [`banks`] — the payments domain's bank `Transport` over HTTP.
//! - [`reconcile`] — the worker that polls open bank attempts.
//! - [`webhooks`] — the worker that delivers sellers' webhooks from the outbox.
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
