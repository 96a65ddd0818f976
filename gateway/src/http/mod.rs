//! The HTTP edge: the console ([`console`]), the API's resources ([`routes`], thin handlers over the
//! service layers), what they extract from requests ([`extract`]), the one
//! error catalogue ([`error`]), the `Idempotency-Key` middleware
//! ([`idempotency`]), `livemode` on every answer ([`livemode`]), rate limits ([`ratelimit`]) and the OpenAPI document
//! ([`openapi`]).

pub mod console;
pub mod error;
pub mod extract;
pub mod idempotency;
pub mod livemode;
pub mod openapi;
pub mod ratelimit;
pub mod routes;
