//! How publications reach every node: on one node, straight into its own
//! channels; with Redis, through Redis so that every node behaves as one.
//!
//! Redis keys, under the prefix `P`:
//! - `P:ch:<channel>:m` — the channel's epoch and top offset (a hash);
//! - `P:ch:<channel>:h` — its history (a stream bounded by size and age);
//! - `P:vw:<stream id>` — each node's viewer count of a stream;
//! - `P:bus` — the Pub/Sub channel every node listens on.
//!
//! A publication is one script: next offset, history entry, `PUBLISH` — so
//! the order on the bus is the order of the offsets. Each node's listener
//! hands publications to its [`Channels`]; when the listener's connection
//! breaks, publications may have been lost, so after it reconnects every
//! subscriber of the node is sent away to recover from the history.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use futures_util::StreamExt;
use redis::aio::ConnectionManager;
use redis::Script;
use streams::ids::random_token;
use streams::inventory::RedisPolicy;
use tokio::sync::mpsc;

use super::channels::{Channels, HistoryLimits, Position};
use super::engine::{Counted, Engine, EngineError, Link};

/// Publications queued for Redis before new ones are dropped (and counted).
const QUEUE: usize = 65_536;
/// How long a channel's epoch and top offset outlive its last publication.
const META_TTL_MS: i64 = 24 * 3600 * 1000;
/// A node's viewer count older than this no longer counts.
pub const VIEWERS_STALE_MS: i64 = 5_000;
/// At most one viewer count per stream per this long, across all nodes.
pub const VIEWERS_EVERY_MS: i64 = 900;

struct Scripts {
    publish: Script,
    position: Script,
    viewers: Script,
}

/// The Redis side of the realtime gateway.
pub struct RedisBus {
    conn: ConnectionManager,
    prefix: String,
    limits: HistoryLimits,
    scripts: Arc<Scripts>,
    queue: mpsc::Sender<(Arc<str>, Arc<str>)>,
    /// This node's name in the viewer counts.
    node: String,
    dropped: Arc<AtomicU64>,
    /// Publications queued or on their way to Redis.
    pending: Arc<AtomicU64>,
    listening: Arc<AtomicBool>,
}

impl RedisBus {
    /// Connects, starts listening (returns once the node hears the bus) and
    /// starts the publisher.
    pub async fn start(
        url: &str,
        prefix: &str,
        limits: HistoryLimits,
        channels: &Arc<Channels>,
        policy: RedisPolicy,
    ) -> Result<Arc<Self>, EngineError> {
        let client = redis::Client::open(url)?;
        let conn = ConnectionManager::new_with_config(client.clone(), policy.manager()).await?;
        let scripts = Arc::new(Scripts {
            publish: Script::new(include_str!("lua/publish.lua")),
            position: Script::new(include_str!("lua/position.lua")),
            viewers: Script::new(include_str!("lua/viewers.lua")),
        });
        let (tx, rx) = mpsc::channel(QUEUE);
        let bus_channel = format!("{prefix}:bus");
        let listening = Arc::new(AtomicBool::new(false));
        // The first subscription is made here, so a node never serves a
        // subscriber before it hears the bus.
        let mut pubsub = client.get_async_pubsub().await?;
        pubsub.subscribe(&bus_channel).await?;
        listening.store(true, Ordering::Relaxed);
        tokio::spawn(listen(
            client,
            bus_channel.clone(),
            pubsub,
            Arc::downgrade(channels),
            listening.clone(),
            policy,
        ));
        let pending = Arc::new(AtomicU64::new(0));
        let dropped = Arc::new(AtomicU64::new(0));
        let bus = Arc::new(Self {
            conn: conn.clone(),
            prefix: prefix.to_owned(),
            limits,
            scripts: scripts.clone(),
            queue: tx,
            node: random_token(12),
            dropped: dropped.clone(),
            pending: pending.clone(),
            listening,
        });
        tokio::spawn(publisher(
            conn,
            scripts,
            rx,
            PublishArgs {
                prefix: prefix.to_owned(),
                bus_channel,
                limits,
                pending,
                dropped,
            },
        ));
        Ok(bus)
    }

    /// Queues a publication; never waits. Dropped (and counted) only when
    /// Redis has been unreachable long enough to fill the queue.
    pub fn publish(&self, channel: Arc<str>, data: Arc<str>) {
        self.pending.fetch_add(1, Ordering::SeqCst);
        if self.queue.try_send((channel, data)).is_err() {
            self.pending.fetch_sub(1, Ordering::SeqCst);
            self.dropped.fetch_add(1, Ordering::Relaxed);
            tracing::error!("realtime bus queue full: a publication was dropped");
        }
    }

    /// Waits (at most `within`) until every queued publication is in Redis;
    /// false when some are still waiting.
    pub async fn drain(&self, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        while self.pending.load(Ordering::SeqCst) > 0 {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        true
    }

    /// Publications dropped because Redis could not take them.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Whether this node currently hears the bus.
    pub fn listening(&self) -> bool {
        self.listening.load(Ordering::Relaxed)
    }

    /// A channel's position and, with `since`, what the client missed.
    pub async fn position(&self, channel: &str, since: Option<(&str, u64)>) -> Result<Position, EngineError> {
        let (epoch, offset) = since.unwrap_or(("", 0));
        let mut attempt = 0;
        loop {
            let out: Result<Vec<String>, _> = self
                .scripts
                .position
                .key(format!("{}:ch:{channel}:m", self.prefix))
                .key(format!("{}:ch:{channel}:h", self.prefix))
                .arg(random_token(8))
                .arg(META_TTL_MS)
                .arg(self.limits.ttl_ms)
                .arg(epoch)
                .arg(offset)
                .invoke_async(&mut self.conn.clone())
                .await;
            match out {
                Ok(out) => return parse_position(out),
                // A connection broken since the last call is re-made by the
                // manager: try again shortly, a few times.
                Err(e) if attempt < 3 && (e.is_io_error() || e.is_connection_dropped()) => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(50 * attempt)).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Reports this node's viewer count of a stream. Returns the count over
    /// all nodes when this node is to announce it, and whether a change is
    /// still held back by the interval (report again next time).
    pub async fn viewers(&self, stream: &str, count: usize) -> Result<(Option<u64>, bool), EngineError> {
        let (sum, changed, held_back): (u64, u8, u8) = self
            .scripts
            .viewers
            .key(format!("{}:vw:{stream}", self.prefix))
            .arg(&self.node)
            .arg(count)
            .arg(VIEWERS_STALE_MS)
            .arg(VIEWERS_EVERY_MS)
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok(((changed == 1).then_some(sum), held_back == 1))
    }
}

#[async_trait::async_trait]
impl Engine for RedisBus {
    fn publish(&self, channel: Arc<str>, data: Arc<str>) {
        RedisBus::publish(self, channel, data)
    }

    async fn position(&self, channel: &str, since: Option<(&str, u64)>) -> Result<Position, EngineError> {
        RedisBus::position(self, channel, since).await
    }

    async fn count_viewers(&self, stream: &str, here: usize, before: Option<usize>, _open: bool) -> Counted {
        // Nothing to tell Redis about a stream nobody watched here.
        if here == 0 && before.is_none() {
            return Counted {
                announce: None,
                again: false,
            };
        }
        // Counted again while there are viewers here or a change not yet
        // announced.
        match self.viewers(stream, here).await {
            Ok((announce, held_back)) => Counted {
                announce,
                again: here > 0 || held_back,
            },
            Err(e) => {
                tracing::warn!(error = %e, "could not count viewers in Redis");
                Counted {
                    announce: None,
                    again: true,
                }
            }
        }
    }

    async fn drain(&self, within: Duration) -> bool {
        RedisBus::drain(self, within).await
    }

    fn link(&self) -> Option<Link> {
        Some(Link {
            listening: self.listening(),
            dropped: self.dropped(),
        })
    }
}

fn parse_position(out: Vec<String>) -> Result<Position, EngineError> {
    let bad = |what: &str| EngineError::Protocol(format!("position: {what}"));
    let mut it = out.into_iter();
    let epoch = it.next().ok_or_else(|| bad("no epoch"))?;
    let top: u64 = it
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("no top offset"))?;
    let recovered = it.next().as_deref() == Some("1");
    let mut publications = Vec::new();
    while let Some(o) = it.next() {
        let offset: u64 = o.parse().map_err(|_| bad("bad offset"))?;
        let data = it.next().ok_or_else(|| bad("an offset without data"))?;
        publications.push((offset, Arc::from(data)));
    }
    Ok(Position {
        epoch,
        offset: top,
        publications,
        recovered,
    })
}

struct PublishArgs {
    prefix: String,
    bus_channel: String,
    limits: HistoryLimits,
    pending: Arc<AtomicU64>,
    dropped: Arc<AtomicU64>,
}

/// Sends queued publications to Redis one at a time, in order. While Redis
/// is unreachable each is retried until it gets through; one that Redis
/// itself keeps refusing (a script or key error) is dropped after a few
/// tries, counted and logged, so it cannot hold up everything behind it.
async fn publisher(
    mut conn: ConnectionManager,
    scripts: Arc<Scripts>,
    mut rx: mpsc::Receiver<(Arc<str>, Arc<str>)>,
    args: PublishArgs,
) {
    while let Some((channel, data)) = rx.recv().await {
        let mut backoff = Duration::from_millis(50);
        let mut refusals = 0;
        loop {
            let sent: Result<u64, _> = scripts
                .publish
                .key(format!("{}:ch:{channel}:m", args.prefix))
                .key(format!("{}:ch:{channel}:h", args.prefix))
                .arg(&*channel)
                .arg(&*data)
                .arg(random_token(8))
                .arg(args.limits.size)
                .arg(args.limits.ttl_ms)
                .arg(META_TTL_MS)
                .arg(&args.bus_channel)
                .invoke_async(&mut conn)
                .await;
            match sent {
                Ok(_) => {
                    args.pending.fetch_sub(1, Ordering::SeqCst);
                    break;
                }
                Err(e) => {
                    let unreachable = e.is_io_error() || e.is_connection_dropped() || e.is_timeout();
                    if !unreachable {
                        refusals += 1;
                        if refusals >= 5 {
                            tracing::error!(error = %e, %channel, "Redis refused a publication; dropped");
                            args.dropped.fetch_add(1, Ordering::Relaxed);
                            args.pending.fetch_sub(1, Ordering::SeqCst);
                            break;
                        }
                    }
                    tracing::warn!(error = %e, %channel, "could not publish to Redis; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_millis(500));
                }
            }
        }
    }
}

/// Parses a bus message `channel \n offset \n data`.
pub fn parse_bus_message(payload: &[u8]) -> Option<(&str, u64, &str)> {
    let text = std::str::from_utf8(payload).ok()?;
    let mut parts = text.splitn(3, '\n');
    let channel = parts.next()?;
    let offset = parts.next()?.parse().ok()?;
    let data = parts.next()?;
    Some((channel, offset, data))
}

/// Hands bus messages to the node's channels until the node goes away;
/// reconnects after a break and then sends every subscriber to recover.
async fn listen(
    client: redis::Client,
    bus_channel: String,
    first: redis::aio::PubSub,
    channels: Weak<Channels>,
    listening: Arc<AtomicBool>,
    policy: RedisPolicy,
) {
    let mut pubsub = Some(first);
    let mut backoff = Duration::from_millis(50);
    let mut warned = false;
    loop {
        let conn = match pubsub.take() {
            Some(p) => p,
            None => {
                let attempt = async {
                    let mut p = client.get_async_pubsub().await?;
                    p.subscribe(&bus_channel).await?;
                    Ok::<_, redis::RedisError>(p)
                };
                let attempt = async {
                    match tokio::time::timeout(policy.timeout, attempt).await {
                        Ok(r) => r,
                        Err(_) => Err(redis::RedisError::from((
                            redis::ErrorKind::IoError,
                            "connection timed out",
                        ))),
                    }
                };
                match attempt.await {
                    Ok(p) => {
                        let Some(ch) = channels.upgrade() else { return };
                        tracing::info!("listening to the realtime bus again; viewers recover what they missed");
                        ch.reset_all();
                        listening.store(true, Ordering::Relaxed);
                        backoff = Duration::from_millis(50);
                        warned = false;
                        p
                    }
                    Err(e) => {
                        if channels.strong_count() == 0 {
                            return;
                        }
                        // Said once per outage; tried again at most
                        // the policy's cap apart.
                        if !warned {
                            tracing::warn!(error = %e, "realtime bus unreachable; retrying");
                            warned = true;
                        }
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(policy.reconnect_max.max(Duration::from_millis(50)));
                        continue;
                    }
                }
            }
        };
        let mut messages = conn.into_on_message();
        let mut alive = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                msg = messages.next() => {
                    let Some(msg) = msg else { break };
                    let Some(ch) = channels.upgrade() else { return };
                    match parse_bus_message(msg.get_payload_bytes()) {
                        Some((channel, offset, data)) => ch.deliver(channel, offset, data),
                        None => tracing::warn!("malformed message on the realtime bus ignored"),
                    }
                }
                _ = alive.tick() => {
                    if channels.strong_count() == 0 {
                        return;
                    }
                }
            }
        }
        listening.store(false, Ordering::Relaxed);
        tracing::warn!("lost the realtime bus connection; reconnecting");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bus_messages_parse_or_are_refused() {
        assert_eq!(
            parse_bus_message(b"stream:s_1\n42\n{\"a\":\"x\\ny\"}"),
            Some(("stream:s_1", 42, "{\"a\":\"x\\ny\"}"))
        );
        assert_eq!(parse_bus_message(b"c\n1\nline\nbreak"), Some(("c", 1, "line\nbreak")));
        assert_eq!(parse_bus_message(b"c\nx\n{}"), None);
        assert_eq!(parse_bus_message(b"c\n1"), None);
        assert_eq!(parse_bus_message(&[0xff, b'\n', b'1', b'\n']), None);
    }

    #[test]
    fn positions_parse_with_their_publications() {
        let p = parse_position(vec!["ep".into(), "7".into(), "1".into(), "6".into(), "{}".into()]).unwrap();
        assert_eq!((p.epoch.as_str(), p.offset, p.recovered), ("ep", 7, true));
        assert_eq!(p.publications.len(), 1);
        assert!(parse_position(vec!["ep".into()]).is_err());
        assert!(parse_position(vec!["ep".into(), "7".into(), "1".into(), "6".into()]).is_err());
    }
}
