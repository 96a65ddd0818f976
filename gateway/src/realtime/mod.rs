//! The viewer realtime gateway: the Centrifugo client protocol (JSON) over
//! WebSocket at `/connection/websocket`.
//!
//! # Layout
//! - [`protocol`]: frames, replies, error and disconnect codes;
//! - [`channels`]: this node's channels, offsets, history, fan-out;
//! - [`connection`]: one viewer connection.
//!
//! Channels: `stream:<stream id>` (the stream's public events; the subscribe
//! reply's `data` is the stream's current state) and `holds#<viewer id>`,
//! which only that viewer may subscribe to.

pub mod channels;
pub mod connection;
pub mod protocol;

use std::sync::atomic::AtomicU64;

use axum::routing::get;
use axum::Router;
use tokio::sync::watch;

use crate::app::AppState;

/// Node-wide realtime state.
pub struct Realtime {
    /// Open viewer connections.
    pub connections: AtomicU64,
    /// Turns true when the node stops: every connection is told to reconnect.
    pub shutdown: watch::Sender<bool>,
}

impl Default for Realtime {
    fn default() -> Self {
        Self {
            connections: AtomicU64::new(0),
            shutdown: watch::channel(false).0,
        }
    }
}

pub fn router() -> Router<AppState> {
    Router::new().route("/connection/websocket", get(connection::upgrade))
}
