//! The viewer realtime gateway: the Centrifugo client protocol (JSON) over
//! WebSocket at `/connection/websocket`.
//!
//! # Layout
//! - [`protocol`]: frames, replies, error and disconnect codes;
//! - [`connection`]: one viewer connection;
//! - [`channels`]: this node's channels, offsets, history, fan-out to its
//!   connections;
//! - [`engine`]: the fan-out engine trait, with the in-process one; [`bus`]
//!   is the Redis one (every node as one);
//! - [`publisher`]: stream events onto channels (stock coalesced, viewer
//!   counts).
//!
//! Channels: `stream:<stream id>` (the stream's public events; the subscribe
//! reply's `data` is the stream's current state) and `holds#<viewer id>`,
//! which only that viewer may subscribe to.

pub mod bus;
pub mod channels;
pub mod connection;
pub mod engine;
pub mod protocol;
pub mod publisher;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::routing::get;
use axum::Router;
use tokio::sync::watch;

use crate::state::AppState;

/// Node-wide realtime state.
pub struct Realtime {
    /// Open viewer connections.
    pub connections: AtomicU64,
    /// Connections opened since the start.
    pub accepted: AtomicU64,
    /// Connections refused because their address had too many open.
    pub refused: AtomicU64,
    /// Turns true when the node stops: every connection is told to reconnect.
    pub shutdown: watch::Sender<bool>,
    per_addr: Arc<Mutex<HashMap<IpAddr, u32>>>,
    max_per_addr: u32,
}

/// One open connection counted against its address; uncounted when dropped.
pub struct AddrSlot {
    addr: IpAddr,
    table: Arc<Mutex<HashMap<IpAddr, u32>>>,
}

impl Drop for AddrSlot {
    fn drop(&mut self) {
        let mut t = self.table.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = t.get_mut(&self.addr) {
            *n -= 1;
            if *n == 0 {
                t.remove(&self.addr);
            }
        }
    }
}

impl Realtime {
    pub fn new(max_per_addr: u32) -> Self {
        Self {
            connections: AtomicU64::new(0),
            accepted: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            shutdown: watch::channel(false).0,
            per_addr: Arc::default(),
            max_per_addr,
        }
    }

    /// Counts a new connection from `addr`, or refuses it when the address
    /// already has as many open as allowed.
    pub fn admit(&self, addr: IpAddr) -> Option<AddrSlot> {
        let mut t = self.per_addr.lock().unwrap_or_else(|e| e.into_inner());
        let n = t.entry(addr).or_insert(0);
        if *n >= self.max_per_addr {
            drop(t);
            self.refused.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        *n += 1;
        self.accepted.fetch_add(1, Ordering::Relaxed);
        Some(AddrSlot {
            addr,
            table: self.per_addr.clone(),
        })
    }
}

/// The realtime series of `/metrics` (Prometheus text).
pub fn render_metrics(rt: &Realtime, hub: &publisher::Hub) -> String {
    use std::fmt::Write;
    let ch = hub.channels();
    let mut out = String::new();
    let mut series = |name: &str, kind: &str, help: &str, value: u64| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}");
    };
    series(
        "haul_viewer_connections",
        "gauge",
        "Open viewer connections on this node.",
        rt.connections.load(Ordering::Relaxed),
    );
    series(
        "haul_viewer_connections_accepted_total",
        "counter",
        "Viewer connections accepted.",
        rt.accepted.load(Ordering::Relaxed),
    );
    series(
        "haul_viewer_connections_refused_total",
        "counter",
        "Viewer connections refused: too many open from one address.",
        rt.refused.load(Ordering::Relaxed),
    );
    series(
        "haul_viewer_subscriptions",
        "gauge",
        "Channel subscriptions on this node.",
        ch.subscriptions() as u64,
    );
    series(
        "haul_publications_total",
        "counter",
        "Publications fanned out to this node's viewers.",
        ch.published(),
    );
    series(
        "haul_viewer_slow_disconnects_total",
        "counter",
        "Viewers disconnected for not reading fast enough (they reconnect and recover).",
        ch.slow_disconnects(),
    );
    if let Some(link) = hub.engine().link() {
        series(
            "haul_bus_listening",
            "gauge",
            "1 while this node hears the Redis realtime bus.",
            link.listening as u64,
        );
        series(
            "haul_bus_dropped_total",
            "counter",
            "Publications dropped because Redis could not take them in time.",
            link.dropped,
        );
    }
    out
}

pub fn router() -> Router<AppState> {
    Router::new().route("/connection/websocket", get(connection::upgrade))
}
