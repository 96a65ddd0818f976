//! One viewer connection at `/connection/websocket`: the first command must be
//! `connect`; then subscribe/unsubscribe, ping and the `reserve` RPC, while
//! the channels' pushes are written from the connection's bounded queue and
//! the server pings every [`PING_SECS`].

use secrecy::ExposeSecret;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use futures_util::SinkExt;
use serde::Deserialize;
use serde_json::{json, Value};
use streams::ids::{random_token, BuyerId, OfferId, StreamId};
use streams::service::Error as DomainError;

use super::channels::{ConnHandle, Push};
use super::protocol::{self, Disconnect, ErrorCode, Frame, Request};
use super::AddrSlot;
use crate::http::error::ApiError;
use crate::http::extract::ClientAddr;
use crate::jwt;
use crate::reserve::{limit_reserve, reserve_counted};
use crate::state::AppState;

/// The server pings this often; the client answers within `PONG_GRACE_SECS`.
pub const PING_SECS: u64 = 25;
const PONG_GRACE_SECS: u64 = 10;
/// Time a new connection has to send `connect`.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Frames queued for one connection before it counts as too slow.
const QUEUE: usize = 256;
/// Largest frame a client may send.
const MAX_MESSAGE: usize = 64 * 1024;
/// Channels one connection may hold.
const MAX_SUBSCRIPTIONS: usize = 32;
/// The prefix of a viewer's own channel: `holds#<viewer id>`.
pub const PERSONAL_PREFIX: &str = "holds#";
/// A stream's seller channel, `seller#<stream id>`: each live offer's held
/// and sold units (`offer.stats`), for the seller's console only.
pub const SELLER_PREFIX: &str = "seller#";
pub const STREAM_PREFIX: &str = "stream:";

static NEXT_CONN: AtomicU64 = AtomicU64::new(1);

/// Commands a connection may send (pongs count too): a bucket of
/// [`BURST`] refilled at [`COMMANDS_PER_SEC`]. A command over it is answered
/// with error 111 (too many requests); a connection that goes on for
/// [`STRIKES`] more of those is disconnected with 3013, so one socket
/// cannot keep a core busy. A viewer page sends a handful a minute.
const COMMANDS_PER_SEC: f64 = 20.0;
const BURST: f64 = 100.0;
const STRIKES: u32 = 20;

/// What one command costs the connection's budget.
#[derive(Debug, PartialEq, Eq)]
enum Spend {
    Taken,
    /// Over the budget: answer "too many requests".
    Over,
    /// Over it for too long: disconnect.
    Exhausted,
}

/// A connection's command budget (a token bucket).
struct Budget {
    tokens: f64,
    at: Instant,
    strikes: u32,
}

impl Budget {
    fn new(now: Instant) -> Self {
        Budget {
            tokens: BURST,
            at: now,
            strikes: 0,
        }
    }

    fn spend(&mut self, now: Instant) -> Spend {
        let refill = now.saturating_duration_since(self.at).as_secs_f64() * COMMANDS_PER_SEC;
        self.tokens = (self.tokens + refill).min(BURST);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return Spend::Taken;
        }
        self.strikes += 1;
        if self.strikes > STRIKES {
            Spend::Exhausted
        } else {
            Spend::Over
        }
    }
}

pub async fn upgrade(State(s): State<AppState>, ClientAddr(addr): ClientAddr, ws: WebSocketUpgrade) -> Response {
    // A connection flood from one address is refused before the upgrade.
    if let Err(e) = s.limits.per_addr.check(&addr) {
        return e.into_response();
    }
    // Too many open from one address: the connection is told why and closed.
    let slot = s.realtime.admit(addr);
    // Small buffers: an idle viewer should cost kilobytes, not tungstenite's
    // default 128 KiB.
    ws.read_buffer_size(1024)
        .write_buffer_size(0)
        .max_write_buffer_size(256 * 1024)
        .max_message_size(MAX_MESSAGE)
        .max_frame_size(MAX_MESSAGE)
        .on_upgrade(move |mut socket| async move {
            match slot {
                Some(slot) => Connection::new(s, addr).run(socket, slot).await,
                None => close(&mut socket, Disconnect::ConnectionLimit).await,
            }
        })
}

async fn close(socket: &mut WebSocket, why: Disconnect) {
    let frame = CloseFrame {
        code: why.code(),
        reason: Utf8Bytes::from_static(why.reason()),
    };
    let _ = socket.send(Message::Close(Some(frame))).await;
}

/// A frame over the size limit is told so; any other read error means the
/// connection is gone.
fn read_error(e: axum::Error) -> Option<Disconnect> {
    let inner = e.into_inner();
    match inner.downcast_ref::<tungstenite::Error>() {
        Some(tungstenite::Error::Capacity(_)) => Some(Disconnect::MessageTooBig),
        _ => None,
    }
}

struct Connection {
    s: AppState,
    addr: IpAddr,
    handle: Arc<ConnHandle>,
    queue: tokio::sync::mpsc::Receiver<Arc<Push>>,
    viewer: Option<BuyerId>,
    /// The seller whose streams' seller channels this connection may hear
    /// (a console member's token says so).
    seller: Option<streams::ids::SellerId>,
    /// Subscribed channels, each with the offset its subscribe reply covered:
    /// pushes up to it are already known to the client.
    subscriptions: HashMap<String, u64>,
    budget: Budget,
}

/// What to do after a command.
enum Next {
    Reply(String),
    Close(Disconnect),
}

impl Connection {
    fn new(s: AppState, addr: IpAddr) -> Self {
        let (handle, queue) = ConnHandle::new(NEXT_CONN.fetch_add(1, Ordering::Relaxed), QUEUE);
        Self {
            s,
            addr,
            handle,
            queue,
            viewer: None,
            seller: None,
            subscriptions: HashMap::new(),
            budget: Budget::new(Instant::now()),
        }
    }

    async fn run(mut self, mut socket: WebSocket, slot: AddrSlot) {
        self.s.realtime.connections.fetch_add(1, Ordering::Relaxed);
        let why = self.serve(&mut socket).await;
        for (channel, _) in self.subscriptions.drain() {
            self.s.hub.channels().leave(&channel, self.handle.id);
        }
        self.s.realtime.connections.fetch_sub(1, Ordering::Relaxed);
        if let Some(why) = why {
            close(&mut socket, why).await;
        }
        drop(slot);
    }

    /// Serves until the connection ends; returns why the server ends it.
    async fn serve(&mut self, socket: &mut WebSocket) -> Option<Disconnect> {
        let mut shutdown = self.s.realtime.shutdown.subscribe();
        if *shutdown.borrow() {
            return Some(Disconnect::Shutdown);
        }
        let started = Instant::now();
        let mut ping = tokio::time::interval_at(
            tokio::time::Instant::now() + Duration::from_secs(PING_SECS),
            Duration::from_secs(PING_SECS),
        );
        let mut last_pong = Instant::now();
        let handle = self.handle.clone();
        let closed = handle.closed();
        tokio::pin!(closed);
        let mut deadline = started + CONNECT_TIMEOUT;
        let timeout = tokio::time::sleep_until(deadline.into());
        tokio::pin!(timeout);
        loop {
            let due = if self.viewer.is_none() {
                started + CONNECT_TIMEOUT
            } else {
                last_pong + Duration::from_secs(PING_SECS + PONG_GRACE_SECS)
            };
            if due != deadline {
                deadline = due;
                timeout.as_mut().reset(deadline.into());
            }
            tokio::select! {
                biased;
                _ = shutdown.changed() => return Some(Disconnect::Shutdown),
                why = &mut closed => return Some(why),
                _ = &mut timeout => {
                    return Some(if self.viewer.is_none() { Disconnect::BadRequest } else { Disconnect::NoPong });
                }
                push = self.queue.recv() => {
                    if !self.write_pushes(socket, push?).await {
                        return None;
                    }
                }
                _ = ping.tick(), if self.viewer.is_some() => {
                    if socket.send(Message::Text(Utf8Bytes::from_static("{}"))).await.is_err() {
                        return None;
                    }
                }
                msg = socket.recv() => {
                    let text = match msg {
                        None | Some(Ok(Message::Close(_))) => return None,
                        Some(Err(e)) => return read_error(e),
                        Some(Ok(Message::Text(t))) => t,
                        Some(Ok(Message::Binary(_))) => return Some(Disconnect::BadRequest),
                        Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    };
                    if let Err(end) = self.take_frames(socket, text.as_str(), &mut last_pong).await {
                        return end;
                    }
                }
            }
        }
    }

    /// Writes `first` and whatever else is waiting (up to 64) in one write;
    /// false when the socket is gone.
    async fn write_pushes(&mut self, socket: &mut WebSocket, first: Arc<Push>) -> bool {
        let mut next = Some(first);
        let mut fed = 0;
        while let Some(push) = next {
            // Skip what a subscribe reply covered, and channels left since.
            if matches!(self.subscriptions.get(&*push.channel), Some(&covered) if push.offset > covered) {
                if socket.feed(Message::Text(push.frame.clone())).await.is_err() {
                    return false;
                }
                fed += 1;
            }
            next = if fed < 64 { self.queue.try_recv().ok() } else { None };
        }
        fed == 0 || socket.flush().await.is_ok()
    }

    /// Runs the commands of one incoming frame and sends their replies
    /// together. `Err`: the connection ends (with a disconnect to send, or
    /// none when the socket is gone).
    async fn take_frames(
        &mut self,
        socket: &mut WebSocket,
        text: &str,
        last_pong: &mut Instant,
    ) -> Result<(), Option<Disconnect>> {
        let frames = match protocol::parse_frame(text) {
            Ok(f) => f,
            Err(e) => {
                tracing::debug!(addr = %self.addr, error = %e, "bad frame");
                return Err(Some(Disconnect::BadRequest));
            }
        };
        let mut replies = Vec::new();
        for frame in frames {
            match self.budget.spend(Instant::now()) {
                Spend::Taken => {}
                Spend::Over => {
                    if let Frame::Command { id, .. } = frame {
                        let code = ErrorCode::TooManyRequests as u32;
                        replies.push(protocol::error_reply(id, code, "too many requests"));
                    }
                    continue;
                }
                Spend::Exhausted => {
                    tracing::debug!(addr = %self.addr, "commands over budget: disconnected");
                    for r in replies {
                        let _ = socket.send(Message::Text(r.into())).await;
                    }
                    return Err(Some(Disconnect::TooManyRequests));
                }
            }
            match frame {
                Frame::Pong => *last_pong = Instant::now(),
                Frame::Command { id, request } => match self.command(id, request).await {
                    Next::Reply(r) => replies.push(r),
                    Next::Close(why) => {
                        for r in replies {
                            let _ = socket.send(Message::Text(r.into())).await;
                        }
                        return Err(Some(why));
                    }
                },
            }
        }
        if !replies.is_empty() && socket.send(Message::Text(replies.join("\n").into())).await.is_err() {
            return Err(None);
        }
        Ok(())
    }

    async fn command(&mut self, id: u32, request: Request) -> Next {
        let Some(viewer) = self.viewer.clone() else {
            return match request {
                Request::Connect(c) => self.connect(id, c),
                _ => Next::Close(Disconnect::BadRequest),
            };
        };
        match request {
            Request::Connect(_) => Next::Close(Disconnect::BadRequest),
            Request::Ping => Next::Reply(protocol::reply(id, "ping", json!({}))),
            Request::Subscribe(sub) => self.subscribe(id, &viewer, sub).await,
            Request::Unsubscribe(u) => {
                if self.subscriptions.remove(&u.channel).is_some() {
                    self.s.hub.channels().leave(&u.channel, self.handle.id);
                }
                Next::Reply(protocol::reply(id, "unsubscribe", json!({})))
            }
            Request::Rpc(rpc) => Next::Reply(self.rpc(id, &viewer, rpc).await),
            Request::Unsupported(what) => Next::Reply(protocol::error_reply(
                id,
                ErrorCode::NotAvailable as u32,
                &format!("{what} is not available"),
            )),
        }
    }

    fn connect(&mut self, id: u32, c: protocol::ConnectRequest) -> Next {
        let viewer = if c.token.is_empty() {
            match BuyerId::parse(&format!("anon.{}", random_token(20))) {
                Ok(v) => v,
                Err(_) => return Next::Close(Disconnect::BadRequest),
            }
        } else {
            let now = self.s.streams.now() / 1000;
            match jwt::decode(&c.token, self.s.token_secret.expose_secret().as_bytes(), now) {
                Ok(claims) => match BuyerId::parse(&claims.sub) {
                    Ok(v) => {
                        self.seller = claims
                            .sel
                            .as_deref()
                            .and_then(|s| streams::ids::SellerId::parse(s).ok());
                        self.handle
                            .staff
                            .store(self.seller.is_some(), std::sync::atomic::Ordering::Relaxed);
                        v
                    }
                    Err(_) => return Next::Close(Disconnect::InvalidToken),
                },
                Err(jwt::TokenError::Expired) => {
                    return Next::Reply(protocol::error_reply(
                        id,
                        ErrorCode::TokenExpired as u32,
                        "token expired",
                    ))
                }
                Err(e) => {
                    tracing::debug!(addr = %self.addr, error = %e, "connection token refused");
                    return Next::Close(Disconnect::InvalidToken);
                }
            }
        };
        let result = json!({
            "client": random_token(16),
            "version": concat!("haul ", env!("CARGO_PKG_VERSION")),
            "ping": PING_SECS,
            "pong": true,
            "data": { "viewer_id": viewer, "personal_channel": format!("{PERSONAL_PREFIX}{viewer}") },
        });
        self.viewer = Some(viewer);
        Next::Reply(protocol::reply(id, "connect", result))
    }

    async fn subscribe(&mut self, id: u32, viewer: &BuyerId, sub: protocol::SubscribeRequest) -> Next {
        let err = |code: ErrorCode, msg: &str| Next::Reply(protocol::error_reply(id, code as u32, msg));
        if self.subscriptions.contains_key(&sub.channel) {
            return err(ErrorCode::AlreadySubscribed, "already subscribed");
        }
        if self.subscriptions.len() >= MAX_SUBSCRIPTIONS {
            return err(ErrorCode::LimitExceeded, "too many subscriptions");
        }
        let mut seller_stream = None;
        let mut seller_data: Option<Value> = None;
        let stream = if let Some(raw) = sub.channel.strip_prefix(STREAM_PREFIX) {
            match StreamId::parse(raw) {
                Ok(sid) => Some(sid),
                Err(_) => return err(ErrorCode::UnknownChannel, "unknown channel"),
            }
        } else if let Some(owner) = sub.channel.strip_prefix(PERSONAL_PREFIX) {
            if owner != viewer.as_str() {
                return err(ErrorCode::PermissionDenied, "permission denied");
            }
            None
        } else if let Some(raw) = sub.channel.strip_prefix(SELLER_PREFIX) {
            let Ok(sid) = StreamId::parse(raw) else {
                return err(ErrorCode::UnknownChannel, "unknown channel");
            };
            let owner = match self.s.streams.stream_seller(&sid).await {
                Ok(owner) => owner,
                Err(DomainError::NotFound(_)) => return err(ErrorCode::UnknownChannel, "unknown channel"),
                Err(e) => {
                    tracing::warn!(error = ?e, "subscribe: could not read the stream's seller");
                    return err(ErrorCode::Internal, "internal server error");
                }
            };
            if self.seller.as_ref() != Some(&owner) {
                return err(ErrorCode::PermissionDenied, "permission denied");
            }
            seller_stream = Some((owner, sid));
            None
        } else {
            return err(ErrorCode::UnknownChannel, "unknown channel");
        };
        let since = sub.recover.then_some((sub.epoch.as_str(), sub.offset));
        // Joined first, position and state read after: nothing published in
        // between is lost. What the reply covers is skipped from the queue.
        let channels = self.s.hub.channels().clone();
        channels.join(&sub.channel, &self.handle);
        let position = match self.s.hub.position(&sub.channel, since).await {
            Ok(p) => p,
            Err(e) => {
                channels.leave(&sub.channel, self.handle.id);
                tracing::warn!(error = %e, "subscribe: could not read the channel position");
                return err(ErrorCode::Internal, "internal server error");
            }
        };
        if let Some((seller, sid)) = &seller_stream {
            // The seller channel's data: every live offer's levels now (read
            // after joining, so no change in between is missed).
            seller_data = Some(crate::realtime::publisher::seller_snapshot(&self.s.streams, seller, sid).await);
        }
        let data = match &stream {
            Some(sid) => match self.s.streams.stream_public(sid).await {
                Ok(state) => {
                    let mut v = serde_json::to_value(&state).unwrap_or(Value::Null);
                    // A test-mode stream says so (the page shows it); an
                    // unknown mode reads as live, the strict side.
                    let live = self.s.payments.livemode(state.seller_id.as_str()).await.unwrap_or(true);
                    if let Value::Object(o) = &mut v {
                        o.insert("livemode".into(), Value::Bool(live));
                    }
                    v
                }
                Err(e) => {
                    channels.leave(&sub.channel, self.handle.id);
                    if let DomainError::NotFound(_) = e {
                        return err(ErrorCode::UnknownChannel, "unknown channel");
                    }
                    tracing::warn!(error = ?e, "subscribe: could not read the stream state");
                    return err(ErrorCode::Internal, "internal server error");
                }
            },
            None => seller_data.unwrap_or_else(|| json!({})),
        };
        self.subscriptions.insert(sub.channel.clone(), position.offset);
        let publications: Vec<Value> = position
            .publications
            .iter()
            .map(|(offset, data)| {
                let data: Value = serde_json::from_str(data).unwrap_or(Value::Null);
                json!({ "data": data, "offset": offset })
            })
            .collect();
        let mut result = json!({
            "recoverable": true,
            "positioned": true,
            "epoch": position.epoch,
            "offset": position.offset,
            "data": data,
        });
        if sub.recover {
            result["was_recovering"] = json!(true);
            result["recovered"] = json!(position.recovered);
            result["publications"] = json!(publications);
        }
        Next::Reply(protocol::reply(id, "subscribe", result))
    }

    async fn rpc(&mut self, id: u32, viewer: &BuyerId, rpc: protocol::RpcRequest) -> String {
        if rpc.method != "reserve" {
            return protocol::error_reply(id, ErrorCode::MethodNotFound as u32, "method not found");
        }
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Reserve {
            offer_id: String,
            quantity: i64,
            request_id: String,
        }
        let args: Reserve = match rpc.data.as_deref().map(|d| serde_json::from_str(d.get())) {
            Some(Ok(a)) => a,
            Some(Err(e)) => return protocol::error_reply(id, ErrorCode::BadRequest as u32, &format!("reserve: {e}")),
            None => return protocol::error_reply(id, ErrorCode::BadRequest as u32, "reserve needs data"),
        };
        let started = Instant::now();
        if limit_reserve(&self.s, &self.addr, viewer, started).is_err() {
            return protocol::error_reply(id, ErrorCode::TooManyRequests as u32, "too many requests");
        }
        let Ok(offer) = OfferId::parse(&args.offer_id) else {
            return protocol::error_reply(id, protocol::APP_NOT_FOUND, "not_found");
        };
        let result = reserve_counted(
            &self.s,
            &self.addr,
            viewer,
            &offer,
            args.quantity,
            &args.request_id,
            started,
        )
        .await;
        match result {
            Ok(r) => protocol::reply(
                id,
                "rpc",
                json!({ "data": { "hold": r.hold, "units_left": r.units_left, "replayed": r.replayed } }),
            ),
            Err(DomainError::Refused(r)) => protocol::error_reply(id, protocol::APP_REFUSED, r.code()),
            Err(DomainError::NotFound(_)) => protocol::error_reply(id, protocol::APP_NOT_FOUND, "not_found"),
            Err(DomainError::Invalid { field, message }) => {
                protocol::error_reply(id, protocol::APP_INVALID, &format!("{field}: {message}"))
            }
            Err(e) => {
                let api: ApiError = e.into();
                tracing::warn!(error = %api, "reserve over the socket failed");
                protocol::error_reply(id, ErrorCode::Internal as u32, "internal server error")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_budget_refills_and_ends_a_flood() {
        let t0 = Instant::now();
        let mut b = Budget::new(t0);
        for _ in 0..BURST as usize {
            assert_eq!(b.spend(t0), Spend::Taken);
        }
        assert_eq!(b.spend(t0), Spend::Over);
        // A second later there is room for COMMANDS_PER_SEC more.
        let t1 = t0 + Duration::from_secs(1);
        for _ in 0..COMMANDS_PER_SEC as usize {
            assert_eq!(b.spend(t1), Spend::Taken);
        }
        for _ in 1..STRIKES {
            assert_eq!(b.spend(t1), Spend::Over);
        }
        assert_eq!(b.spend(t1), Spend::Exhausted);
    }
}
