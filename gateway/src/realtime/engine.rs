//! The fan-out engine: how a publication reaches every node's viewers, and
//! where channel offsets, epochs and history live. [`Local`] keeps them in
//! this node's [`Channels`] (one node); [`RedisBus`](super::bus::RedisBus)
//! keeps them in Redis and hands every publication to every node. Both pass
//! the same conformance suite (below), as the stock engines do theirs.

use std::sync::Arc;
use std::time::Duration;

use super::channels::{Channels, Position};

/// Why the engine could not answer.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("redis answered something unexpected: {0}")]
    Protocol(String),
}

/// What counting one stream's viewers on this node came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counted {
    /// The count to announce to viewers (over every node), when it changed.
    pub announce: Option<u64>,
    /// Count this stream again next time.
    pub again: bool,
}

/// How a node's Redis link is doing (engines that have one).
#[derive(Debug, Clone, Copy)]
pub struct Link {
    pub listening: bool,
    /// Publications given up because Redis could not take them in time.
    pub dropped: u64,
}

/// A fan-out engine. Publications on one channel reach every subscriber in
/// offset order; a subscriber that names the epoch and offset it saw gets
/// exactly what it missed, or is told it cannot recover.
#[async_trait::async_trait]
pub trait Engine: Send + Sync {
    /// Publishes `data` on `channel`; never waits.
    fn publish(&self, channel: Arc<str>, data: Arc<str>);

    /// Where a new subscriber of `channel` starts, and (with `since`) what
    /// it missed.
    async fn position(&self, channel: &str, since: Option<(&str, u64)>) -> Result<Position, EngineError>;

    /// This node has `here` viewers of `stream` (`before`: its count last
    /// time, if it counted; `open`: the channel still exists here).
    async fn count_viewers(&self, stream: &str, here: usize, before: Option<usize>, open: bool) -> Counted;

    /// Waits (at most `within`) until every publication is out; false when
    /// some are still waiting.
    async fn drain(&self, within: Duration) -> bool;

    /// The engine's link to other nodes, if it has one.
    fn link(&self) -> Option<Link> {
        None
    }
}

/// One node: offsets and history in this node's channels.
pub struct Local {
    channels: Arc<Channels>,
}

impl Local {
    pub fn new(channels: Arc<Channels>) -> Self {
        Local { channels }
    }
}

#[async_trait::async_trait]
impl Engine for Local {
    fn publish(&self, channel: Arc<str>, data: Arc<str>) {
        self.channels.publish(&channel, data);
    }

    async fn position(&self, channel: &str, since: Option<(&str, u64)>) -> Result<Position, EngineError> {
        Ok(self.channels.position(channel, since))
    }

    async fn count_viewers(&self, _stream: &str, here: usize, before: Option<usize>, open: bool) -> Counted {
        Counted {
            announce: before.map_or(here > 0, |b| b != here).then_some(here as u64),
            again: open,
        }
    }

    async fn drain(&self, _within: Duration) -> bool {
        true
    }
}

#[cfg(test)]
mod conformance {
    //! Every engine, the same promises: Local on its own channels, Redis
    //! with two nodes on one prefix (against the real server at
    //! `HAUL_TEST_REDIS_URL`).

    use std::sync::Arc;
    use std::time::Duration;

    use streams::clock::ManualClock;
    use tokio::sync::mpsc;

    use super::{Engine, Local};
    use crate::realtime::bus::RedisBus;
    use crate::realtime::channels::{Channels, ConnHandle, HistoryLimits, Push};

    const LIMITS: HistoryLimits = HistoryLimits {
        size: 100,
        ttl_ms: 60_000,
    };

    /// One node: its channels and engine.
    struct Node {
        channels: Arc<Channels>,
        engine: Arc<dyn Engine>,
    }

    fn channels() -> Arc<Channels> {
        Arc::new(Channels::new(LIMITS, Arc::new(ManualClock::new(1_000_000))))
    }

    /// Two views of one engine: the same node twice for Local, two nodes
    /// for Redis.
    async fn nodes(redis: bool) -> (Node, Node) {
        if !redis {
            let ch = channels();
            let engine: Arc<dyn Engine> = Arc::new(Local::new(ch.clone()));
            let a = Node {
                channels: ch.clone(),
                engine: engine.clone(),
            };
            return (a, Node { channels: ch, engine });
        }
        let url = streams::testing::redis_url();
        let prefix = streams::testing::redis_prefix();
        let mut two = Vec::new();
        for _ in 0..2 {
            let ch = channels();
            let bus = RedisBus::start(&url, &prefix, LIMITS, &ch, Default::default())
                .await
                .expect("Redis");
            two.push(Node {
                channels: ch,
                engine: bus,
            });
        }
        let b = two.pop().unwrap();
        (two.pop().unwrap(), b)
    }

    fn viewer(node: &Node, channel: &str, id: u64) -> (Arc<ConnHandle>, mpsc::Receiver<Arc<Push>>) {
        let (conn, rx) = ConnHandle::new(id, 64);
        node.channels.join(channel, &conn);
        (conn, rx)
    }

    async fn next(rx: &mut mpsc::Receiver<Arc<Push>>) -> Arc<Push> {
        tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("a publication within 5 s")
            .expect("open")
    }

    async fn publications_reach_every_subscriber_in_offset_order(redis: bool) {
        let (a, b) = nodes(redis).await;
        let start = a.engine.position("c", None).await.unwrap();
        let (_ca, mut ra) = viewer(&a, "c", 1);
        let (_cb, mut rb) = viewer(&b, "c", 2);
        for i in 0..5 {
            a.engine.publish("c".into(), format!("{{\"n\":{i}}}").into());
        }
        assert!(a.engine.drain(Duration::from_secs(5)).await);
        for rx in [&mut ra, &mut rb] {
            for i in 0..5u64 {
                let p = next(rx).await;
                assert_eq!(p.offset, start.offset + i + 1);
                assert!(
                    p.frame.as_str().contains(&format!("{{\"n\":{i}}}")),
                    "{}",
                    p.frame.as_str()
                );
            }
        }
        let now = b.engine.position("c", None).await.unwrap();
        assert_eq!((now.epoch, now.offset), (start.epoch, start.offset + 5));
    }

    async fn a_subscriber_recovers_exactly_what_it_missed(redis: bool) {
        let (a, b) = nodes(redis).await;
        a.engine.publish("r".into(), "first".into());
        assert!(a.engine.drain(Duration::from_secs(5)).await);
        let seen = b.engine.position("r", None).await.unwrap();
        for data in ["second", "third"] {
            a.engine.publish("r".into(), data.into());
        }
        assert!(a.engine.drain(Duration::from_secs(5)).await);
        let back = b.engine.position("r", Some((&seen.epoch, seen.offset))).await.unwrap();
        assert!(back.recovered);
        let missed: Vec<(u64, &str)> = back.publications.iter().map(|(o, d)| (*o, &**d)).collect();
        assert_eq!(missed, vec![(seen.offset + 1, "second"), (seen.offset + 2, "third")]);
        // Another epoch, or an offset from the future, cannot be recovered.
        let lost = b.engine.position("r", Some(("no-such-epoch", 1))).await.unwrap();
        assert!(!lost.recovered);
        let ahead = b
            .engine
            .position("r", Some((&seen.epoch, seen.offset + 10)))
            .await
            .unwrap();
        assert!(!ahead.recovered);
    }

    async fn viewer_counts_are_announced_when_they_change(redis: bool) {
        let (a, _b) = nodes(redis).await;
        let stream = format!("s_{}", streams::ids::random_token(8));
        let first = a.engine.count_viewers(&stream, 3, None, true).await;
        assert_eq!(first.announce, Some(3));
        assert!(first.again);
        // Nobody watching and nothing counted before: nothing to say.
        let empty = a.engine.count_viewers("s_nobody", 0, None, false).await;
        assert_eq!(empty.announce, None);
        assert!(!empty.again);
        // A change is announced (Redis holds changes back for an interval).
        let mut changed = None;
        for _ in 0..30 {
            let c = a.engine.count_viewers(&stream, 5, Some(3), true).await;
            if c.announce.is_some() {
                changed = c.announce;
                break;
            }
            assert!(c.again, "a held-back change is counted again");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(changed, Some(5));
    }

    macro_rules! conformance {
        ($($name:ident),* $(,)?) => {
            mod local {
                $(#[tokio::test] async fn $name() { super::$name(false).await })*
            }
            mod redis {
                $(#[tokio::test] async fn $name() { super::$name(true).await })*
            }
        };
    }

    conformance!(
        publications_reach_every_subscriber_in_offset_order,
        a_subscriber_recovers_exactly_what_it_missed,
        viewer_counts_are_announced_when_they_change,
    );
}
