//! Channels of this node: their subscribers, offsets and recovery history.
//!
//! Every publication gets the next offset of its channel within the channel's
//! epoch (a random string fixed when the channel is created here). The push is
//! serialized once and the same bytes are queued to every subscriber. A
//! subscriber whose bounded queue is full is told to go (slow: reconnect and
//! recover) instead of growing memory.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use streams::clock::{Clock, Millis};
use streams::ids::random_token;
use tokio::sync::{mpsc, Notify};

use super::protocol::{self, Disconnect};

/// A connection as the channels see it: where its frames go, and how to make
/// it leave.
pub struct ConnHandle {
    pub id: u64,
    tx: mpsc::Sender<Arc<str>>,
    close: Mutex<Option<Disconnect>>,
    close_notify: Notify,
}

impl ConnHandle {
    pub fn new(id: u64, queue: usize) -> (Arc<Self>, mpsc::Receiver<Arc<str>>) {
        let (tx, rx) = mpsc::channel(queue);
        let handle = Arc::new(Self {
            id,
            tx,
            close: Mutex::new(None),
            close_notify: Notify::new(),
        });
        (handle, rx)
    }

    /// Queues a frame; false (and the connection told to go) when the queue is full.
    pub fn send(&self, frame: Arc<str>) -> bool {
        match self.tx.try_send(frame) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.disconnect(Disconnect::Slow);
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    /// Asks the connection to close with `why` (the first reason wins).
    pub fn disconnect(&self, why: Disconnect) {
        let mut c = self.close.lock().unwrap_or_else(|e| e.into_inner());
        if c.is_none() {
            *c = Some(why);
        }
        self.close_notify.notify_one();
    }

    /// Waits until someone asks the connection to close.
    pub async fn closed(&self) -> Disconnect {
        loop {
            if let Some(why) = *self.close.lock().unwrap_or_else(|e| e.into_inner()) {
                return why;
            }
            self.close_notify.notified().await;
        }
    }
}

struct Entry {
    offset: u64,
    at: Millis,
    /// The publication's data (JSON), for replies that recover it.
    data: Arc<str>,
}

struct Channel {
    epoch: String,
    top: u64,
    history: VecDeque<Entry>,
    subscribers: HashMap<u64, Arc<ConnHandle>>,
}

/// Where a subscriber starts: the channel's position, and what it missed.
#[derive(Debug)]
pub struct Position {
    pub epoch: String,
    pub offset: u64,
    /// Publications after the client's offset, oldest first (when recovering).
    pub publications: Vec<(u64, Arc<str>)>,
    pub recovered: bool,
}

/// History bounds.
#[derive(Debug, Clone, Copy)]
pub struct HistoryLimits {
    pub size: usize,
    pub ttl_ms: i64,
}

pub struct Channels {
    inner: Mutex<HashMap<String, Channel>>,
    limits: HistoryLimits,
    clock: Arc<dyn Clock>,
    published: AtomicU64,
}

impl Channels {
    pub fn new(limits: HistoryLimits, clock: Arc<dyn Clock>) -> Self {
        Self {
            inner: Mutex::new(HashMap::new()),
            limits,
            clock,
            published: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Channel>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn trim(&self, ch: &mut Channel, now: Millis) {
        while ch.history.len() > self.limits.size
            || ch.history.front().is_some_and(|e| e.at + self.limits.ttl_ms <= now)
        {
            ch.history.pop_front();
        }
    }

    /// Publishes `data` (JSON) to a channel; returns its offset.
    pub fn publish(&self, channel: &str, data: Arc<str>) -> u64 {
        let now = self.clock.now_ms();
        let mut map = self.lock();
        let ch = map.entry(channel.to_owned()).or_insert_with(new_channel);
        ch.top += 1;
        let offset = ch.top;
        let push: Arc<str> = protocol::publication_push(channel, &data, offset).into();
        ch.history.push_back(Entry { offset, at: now, data });
        self.trim(ch, now);
        ch.subscribers.retain(|_, sub| sub.send(push.clone()));
        self.published.fetch_add(1, Ordering::Relaxed);
        offset
    }

    /// Adds a subscriber and tells it where it starts. With `since` (epoch,
    /// offset) it also gets what it missed, all or nothing: `recovered` is
    /// false when the epoch changed or the history no longer reaches back.
    pub fn subscribe(&self, channel: &str, conn: &Arc<ConnHandle>, since: Option<(&str, u64)>) -> Position {
        let now = self.clock.now_ms();
        let mut map = self.lock();
        let ch = map.entry(channel.to_owned()).or_insert_with(new_channel);
        self.trim(ch, now);
        let mut publications = Vec::new();
        let mut recovered = false;
        if let Some((epoch, offset)) = since {
            if epoch == ch.epoch && offset <= ch.top {
                let oldest_needed = offset + 1;
                let covered = oldest_needed > ch.top || ch.history.front().is_some_and(|e| e.offset <= oldest_needed);
                if covered {
                    publications = ch
                        .history
                        .iter()
                        .filter(|e| e.offset > offset)
                        .map(|e| (e.offset, e.data.clone()))
                        .collect();
                    recovered = true;
                }
            }
        }
        ch.subscribers.insert(conn.id, conn.clone());
        Position {
            epoch: ch.epoch.clone(),
            offset: ch.top,
            publications,
            recovered,
        }
    }

    pub fn unsubscribe(&self, channel: &str, conn: u64) {
        let now = self.clock.now_ms();
        let mut map = self.lock();
        if let Some(ch) = map.get_mut(channel) {
            ch.subscribers.remove(&conn);
            self.trim(ch, now);
            if ch.subscribers.is_empty() && ch.history.is_empty() {
                map.remove(channel);
            }
        }
    }

    /// Drops channels with neither subscribers nor recoverable history.
    pub fn tidy(&self) {
        let now = self.clock.now_ms();
        let mut map = self.lock();
        map.retain(|_, ch| {
            self.trim(ch, now);
            !(ch.subscribers.is_empty() && ch.history.is_empty())
        });
    }

    /// Subscriptions across all channels.
    pub fn subscriptions(&self) -> usize {
        self.lock().values().map(|c| c.subscribers.len()).sum()
    }

    pub fn published(&self) -> u64 {
        self.published.load(Ordering::Relaxed)
    }
}

fn new_channel() -> Channel {
    Channel {
        epoch: random_token(8),
        top: 0,
        history: VecDeque::new(),
        subscribers: HashMap::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use streams::clock::ManualClock;

    fn channels(clock: &ManualClock) -> Channels {
        Channels::new(
            HistoryLimits {
                size: 3,
                ttl_ms: 10_000,
            },
            Arc::new(clock.clone()),
        )
    }

    #[test]
    fn a_resubscriber_gets_exactly_what_it_missed() {
        let clock = ManualClock::new(0);
        let ch = channels(&clock);
        let (a, mut rx) = ConnHandle::new(1, 16);
        let start = ch.subscribe("c", &a, None);
        assert_eq!((start.offset, start.recovered), (0, false));
        ch.publish("c", "{\"n\":1}".into());
        assert!(rx.try_recv().unwrap().contains("\"offset\":1"));
        ch.unsubscribe("c", 1);
        ch.publish("c", "{\"n\":2}".into());
        ch.publish("c", "{\"n\":3}".into());
        let back = ch.subscribe("c", &a, Some((&start.epoch, 1)));
        assert!(back.recovered);
        assert_eq!(back.offset, 3);
        let got: Vec<u64> = back.publications.iter().map(|p| p.0).collect();
        assert_eq!(got, vec![2, 3]);
    }

    #[test]
    fn recovery_fails_whole_when_history_no_longer_reaches_back() {
        let clock = ManualClock::new(0);
        let ch = channels(&clock);
        let (a, _rx) = ConnHandle::new(1, 16);
        let start = ch.subscribe("c", &a, None);
        for n in 0..5 {
            ch.publish("c", format!("{{\"n\":{n}}}").into());
        }
        // Size 3 keeps offsets 3..=5: from 1 the gap is not covered.
        let from_one = ch.subscribe("c", &a, Some((&start.epoch, 1)));
        assert!(!from_one.recovered && from_one.publications.is_empty());
        let from_two = ch.subscribe("c", &a, Some((&start.epoch, 2)));
        assert!(from_two.recovered);
        assert_eq!(from_two.publications.len(), 3);
        // Another epoch never recovers; nor does an offset from the future.
        assert!(!ch.subscribe("c", &a, Some(("other", 5))).recovered);
        assert!(!ch.subscribe("c", &a, Some((&start.epoch, 9))).recovered);
        // Up to date: recovered with nothing to add.
        let current = ch.subscribe("c", &a, Some((&start.epoch, 5)));
        assert!(current.recovered && current.publications.is_empty());
        // Age bounds history too.
        clock.advance(10_000);
        assert!(!ch.subscribe("c", &a, Some((&start.epoch, 4))).recovered);
    }

    #[test]
    fn a_subscriber_with_a_full_queue_is_told_to_go_and_dropped() {
        let clock = ManualClock::new(0);
        let ch = channels(&clock);
        let (slow, _rx) = ConnHandle::new(1, 2);
        let (fast, mut fast_rx) = ConnHandle::new(2, 16);
        ch.subscribe("c", &slow, None);
        ch.subscribe("c", &fast, None);
        for n in 0..3 {
            ch.publish("c", format!("{{\"n\":{n}}}").into());
        }
        assert_eq!(*slow.close.lock().unwrap(), Some(Disconnect::Slow));
        assert_eq!(ch.subscriptions(), 1);
        for _ in 0..3 {
            assert!(fast_rx.try_recv().is_ok());
        }
    }
}
