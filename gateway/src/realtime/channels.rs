//! Channels of this node: their subscribers and, when the node keeps history
//! itself (one node, no Redis), their offsets and recovery history.
//!
//! Each channel has its own lock, so publications to one stream never wait on
//! another stream's fan-out. A publication is serialized once into a [`Push`]
//! and the same bytes are queued to every subscriber. A subscriber whose
//! bounded queue is full is told to go (slow: reconnect and recover) instead of
//! growing memory.
//!
//! With Redis, offsets and history live in Redis and publications arrive
//! through [`Channels::deliver`] in offset order; a gap in the offsets (a lost
//! bus message) disconnects the channel's subscribers with "insufficient
//! state", so their clients reconnect and recover from Redis.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use axum::extract::ws::Utf8Bytes;
use streams::clock::{Clock, Millis};
use streams::ids::random_token;
use tokio::sync::{mpsc, Notify};

use super::protocol::{self, Disconnect};

/// One publication as it goes out: the bytes, and what a connection needs to
/// skip pushes its subscribe reply already covered.
#[derive(Debug)]
pub struct Push {
    pub channel: Arc<str>,
    pub offset: u64,
    /// Reference-counted: every subscriber writes these same bytes.
    pub frame: Utf8Bytes,
}

/// A connection as the channels see it: where its pushes go, and how to make
/// it leave.
pub struct ConnHandle {
    pub id: u64,
    /// A seller's own connection (the console's live room): it hears the
    /// stream like a viewer but is not counted as one.
    pub staff: std::sync::atomic::AtomicBool,
    tx: mpsc::Sender<Arc<Push>>,
    close: Mutex<Option<Disconnect>>,
    close_notify: Notify,
}

impl ConnHandle {
    pub fn new(id: u64, queue: usize) -> (Arc<Self>, mpsc::Receiver<Arc<Push>>) {
        let (tx, rx) = mpsc::channel(queue);
        let handle = Arc::new(Self {
            id,
            staff: std::sync::atomic::AtomicBool::new(false),
            tx,
            close: Mutex::new(None),
            close_notify: Notify::new(),
        });
        (handle, rx)
    }

    /// Queues a push; false (and the connection told to go) when the queue is full.
    pub fn send(&self, push: Arc<Push>) -> bool {
        match self.tx.try_send(push) {
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

    /// Why the connection was asked to close, if it was.
    pub fn close_reason(&self) -> Option<Disconnect> {
        *self.close.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until someone asks the connection to close.
    pub async fn closed(&self) -> Disconnect {
        loop {
            if let Some(why) = self.close_reason() {
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

#[derive(Default)]
struct State {
    /// Set when the channel left the map: whoever holds it must look again.
    dead: bool,
    /// Kept here only when the node keeps its own history.
    epoch: String,
    /// The last offset published (own history) or delivered (from Redis).
    top: Option<u64>,
    history: VecDeque<Entry>,
    subscribers: HashMap<u64, Arc<ConnHandle>>,
}

struct Channel {
    name: Arc<str>,
    state: Mutex<State>,
}

impl Channel {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
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
    map: RwLock<HashMap<Arc<str>, Arc<Channel>>>,
    limits: HistoryLimits,
    clock: Arc<dyn Clock>,
    published: AtomicU64,
    slow: AtomicU64,
}

/// Recovery from a history, all or nothing: what the client missed after
/// `since`, given the channel's top offset and the oldest offset still kept.
pub fn recover<'a>(
    since: u64,
    top: u64,
    oldest_kept: Option<u64>,
    entries: impl Iterator<Item = (u64, &'a Arc<str>)>,
) -> Option<Vec<(u64, Arc<str>)>> {
    if since > top {
        return None;
    }
    let covered = since == top || oldest_kept.is_some_and(|o| o <= since + 1);
    covered.then(|| {
        entries
            .filter(|(o, _)| *o > since)
            .map(|(o, d)| (o, d.clone()))
            .collect()
    })
}

impl Channels {
    pub fn new(limits: HistoryLimits, clock: Arc<dyn Clock>) -> Self {
        Self {
            map: RwLock::new(HashMap::new()),
            limits,
            clock,
            published: AtomicU64::new(0),
            slow: AtomicU64::new(0),
        }
    }

    fn get(&self, name: &str) -> Option<Arc<Channel>> {
        self.map.read().unwrap_or_else(|e| e.into_inner()).get(name).cloned()
    }

    fn get_or_create(&self, name: &str) -> Arc<Channel> {
        if let Some(ch) = self.get(name) {
            return ch;
        }
        let mut map = self.map.write().unwrap_or_else(|e| e.into_inner());
        map.entry(name.into())
            .or_insert_with(|| {
                Arc::new(Channel {
                    name: name.into(),
                    state: Mutex::new(State {
                        epoch: random_token(8),
                        ..State::default()
                    }),
                })
            })
            .clone()
    }

    /// Runs `f` on the live state of a channel, creating it when needed.
    fn with_live<T>(&self, name: &str, mut f: impl FnMut(&Channel, &mut State) -> T) -> T {
        loop {
            let ch = self.get_or_create(name);
            let mut st = ch.lock();
            if !st.dead {
                return f(&ch, &mut st);
            }
        }
    }

    fn trim(&self, st: &mut State, now: Millis) {
        while st.history.len() > self.limits.size
            || st.history.front().is_some_and(|e| e.at + self.limits.ttl_ms <= now)
        {
            st.history.pop_front();
        }
    }

    fn fan_out(&self, ch: &Channel, st: &mut State, offset: u64, data: &str) {
        let push = Arc::new(Push {
            channel: ch.name.clone(),
            offset,
            frame: Utf8Bytes::from(protocol::publication_push(&ch.name, data, offset)),
        });
        let before = st.subscribers.len();
        st.subscribers.retain(|_, sub| sub.send(push.clone()));
        let dropped = before - st.subscribers.len();
        if dropped > 0 {
            self.slow.fetch_add(dropped as u64, Ordering::Relaxed);
        }
        self.published.fetch_add(1, Ordering::Relaxed);
    }

    /// Publishes `data` (JSON) on a channel whose history this node keeps;
    /// returns its offset.
    pub fn publish(&self, channel: &str, data: Arc<str>) -> u64 {
        let now = self.clock.now_ms();
        self.with_live(channel, |ch, st| {
            let offset = st.top.unwrap_or(0) + 1;
            st.top = Some(offset);
            st.history.push_back(Entry {
                offset,
                at: now,
                data: data.clone(),
            });
            self.trim(st, now);
            self.fan_out(ch, st, offset, &data);
            offset
        })
    }

    /// Delivers a publication from the shared bus to this node's subscribers.
    /// Publications arrive in offset order; an old one is ignored, and a gap
    /// sends the subscribers away to recover what was lost.
    pub fn deliver(&self, channel: &str, offset: u64, data: &str) {
        let Some(ch) = self.get(channel) else {
            return; // nobody here watches it
        };
        let mut st = ch.lock();
        if st.dead {
            return;
        }
        match st.top {
            Some(top) if offset <= top => return,
            Some(top) if offset > top + 1 => {
                tracing::warn!(
                    channel,
                    expected = top + 1,
                    got = offset,
                    "publications lost on the bus"
                );
                for (_, sub) in st.subscribers.drain() {
                    sub.disconnect(Disconnect::InsufficientState);
                }
            }
            _ => {}
        }
        st.top = Some(offset);
        self.fan_out(&ch, &mut st, offset, data);
    }

    /// Sends every subscriber away to recover (the bus was interrupted and
    /// publications may have been lost).
    pub fn reset_all(&self) {
        let channels: Vec<Arc<Channel>> = self
            .map
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        for ch in channels {
            let mut st = ch.lock();
            st.top = None;
            for (_, sub) in st.subscribers.drain() {
                sub.disconnect(Disconnect::InsufficientState);
            }
        }
    }

    /// Adds a subscriber. Its position is read afterwards (see [`Self::position`]
    /// or the shared history), so nothing published in between is lost.
    pub fn join(&self, channel: &str, conn: &Arc<ConnHandle>) {
        self.with_live(channel, |_, st| {
            st.subscribers.insert(conn.id, conn.clone());
        })
    }

    /// The position of a channel whose history this node keeps. With `since`
    /// (epoch, offset) also what the client missed, all or nothing:
    /// `recovered` is false when the epoch changed or the history no longer
    /// reaches back.
    pub fn position(&self, channel: &str, since: Option<(&str, u64)>) -> Position {
        let now = self.clock.now_ms();
        self.with_live(channel, |_, st| {
            self.trim(st, now);
            let top = st.top.unwrap_or(0);
            let missed = match since {
                Some((epoch, offset)) if epoch == st.epoch => recover(
                    offset,
                    top,
                    st.history.front().map(|e| e.offset),
                    st.history.iter().map(|e| (e.offset, &e.data)),
                ),
                _ => None,
            };
            Position {
                epoch: st.epoch.clone(),
                offset: top,
                recovered: missed.is_some(),
                publications: missed.unwrap_or_default(),
            }
        })
    }

    /// Removes a subscriber; drops the channel when nothing is left in it.
    pub fn leave(&self, channel: &str, conn: u64) {
        let Some(ch) = self.get(channel) else {
            return;
        };
        let empty = {
            let mut st = ch.lock();
            st.subscribers.remove(&conn);
            self.trim(&mut st, self.clock.now_ms());
            st.subscribers.is_empty() && st.history.is_empty()
        };
        if empty {
            self.drop_if_empty(channel);
        }
    }

    /// Removes a channel with neither subscribers nor history. The map's lock
    /// is taken before the channel's, never the other way round.
    fn drop_if_empty(&self, name: &str) {
        let now = self.clock.now_ms();
        let mut map = self.map.write().unwrap_or_else(|e| e.into_inner());
        let remove = match map.get(name) {
            Some(ch) => {
                let mut st = ch.lock();
                self.trim(&mut st, now);
                let empty = st.subscribers.is_empty() && st.history.is_empty();
                if empty {
                    st.dead = true;
                }
                empty
            }
            None => false,
        };
        if remove {
            map.remove(name);
        }
    }

    /// Drops channels with neither subscribers nor recoverable history.
    pub fn tidy(&self) {
        let names: Vec<Arc<str>> = self
            .map
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .cloned()
            .collect();
        for name in names {
            self.drop_if_empty(&name);
        }
    }

    /// Subscribers of every channel whose name starts with `prefix`.
    pub fn counts(&self, prefix: &str) -> Vec<(Arc<str>, usize)> {
        self.counted(prefix, |_| true)
    }

    /// Each channel's subscribers who are viewers (not a seller's own
    /// connections), by channel, for channels starting with `prefix`.
    pub fn viewer_counts(&self, prefix: &str) -> Vec<(Arc<str>, usize)> {
        self.counted(prefix, |h| !h.staff.load(std::sync::atomic::Ordering::Relaxed))
    }

    fn counted(&self, prefix: &str, counts: impl Fn(&ConnHandle) -> bool) -> Vec<(Arc<str>, usize)> {
        let channels: Vec<Arc<Channel>> = self
            .map
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .filter(|c| c.name.starts_with(prefix))
            .cloned()
            .collect();
        channels
            .into_iter()
            .map(|c| {
                let n = c.lock().subscribers.values().filter(|h| counts(h)).count();
                (c.name.clone(), n)
            })
            .collect()
    }

    /// Subscriptions across all channels.
    pub fn subscriptions(&self) -> usize {
        self.counts("").iter().map(|(_, n)| n).sum()
    }

    /// Publications fanned out by this node.
    pub fn published(&self) -> u64 {
        self.published.load(Ordering::Relaxed)
    }

    /// Subscribers sent away because their queue was full.
    pub fn slow_disconnects(&self) -> u64 {
        self.slow.load(Ordering::Relaxed)
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

    fn offsets(rx: &mut mpsc::Receiver<Arc<Push>>) -> Vec<u64> {
        let mut out = Vec::new();
        while let Ok(p) = rx.try_recv() {
            out.push(p.offset);
        }
        out
    }

    #[test]
    fn a_resubscriber_gets_exactly_what_it_missed() {
        let clock = ManualClock::new(0);
        let ch = channels(&clock);
        let (a, mut rx) = ConnHandle::new(1, 16);
        ch.join("c", &a);
        let start = ch.position("c", None);
        assert_eq!((start.offset, start.recovered), (0, false));
        ch.publish("c", "{\"n\":1}".into());
        assert!(rx.try_recv().unwrap().frame.as_str().contains("\"offset\":1"));
        ch.leave("c", 1);
        ch.publish("c", "{\"n\":2}".into());
        ch.publish("c", "{\"n\":3}".into());
        assert!(offsets(&mut rx).is_empty());
        ch.join("c", &a);
        let back = ch.position("c", Some((&start.epoch, 1)));
        assert!(back.recovered);
        assert_eq!(back.offset, 3);
        let got: Vec<u64> = back.publications.iter().map(|p| p.0).collect();
        assert_eq!(got, vec![2, 3]);
    }

    #[test]
    fn recovery_fails_whole_when_history_no_longer_reaches_back() {
        let clock = ManualClock::new(0);
        let ch = channels(&clock);
        let start = ch.position("c", None);
        for n in 0..5 {
            ch.publish("c", format!("{{\"n\":{n}}}").into());
        }
        // Size 3 keeps offsets 3..=5: from 1 the gap is not covered.
        let from_one = ch.position("c", Some((&start.epoch, 1)));
        assert!(!from_one.recovered && from_one.publications.is_empty());
        let from_two = ch.position("c", Some((&start.epoch, 2)));
        assert!(from_two.recovered);
        assert_eq!(from_two.publications.len(), 3);
        // Another epoch never recovers; nor does an offset from the future.
        assert!(!ch.position("c", Some(("other", 5))).recovered);
        assert!(!ch.position("c", Some((&start.epoch, 9))).recovered);
        // Up to date: recovered with nothing to add.
        let current = ch.position("c", Some((&start.epoch, 5)));
        assert!(current.recovered && current.publications.is_empty());
        // Age bounds history too.
        clock.advance(10_000);
        assert!(!ch.position("c", Some((&start.epoch, 4))).recovered);
    }

    #[test]
    fn a_subscriber_with_a_full_queue_is_told_to_go_and_dropped() {
        let clock = ManualClock::new(0);
        let ch = channels(&clock);
        let (slow, _rx) = ConnHandle::new(1, 2);
        let (fast, mut fast_rx) = ConnHandle::new(2, 16);
        ch.join("c", &slow);
        ch.join("c", &fast);
        for n in 0..3 {
            ch.publish("c", format!("{{\"n\":{n}}}").into());
        }
        assert_eq!(slow.close_reason(), Some(Disconnect::Slow));
        assert_eq!(ch.subscriptions(), 1);
        assert_eq!(ch.slow_disconnects(), 1);
        assert_eq!(offsets(&mut fast_rx), vec![1, 2, 3]);
    }

    #[test]
    fn every_subscriber_gets_the_same_bytes() {
        let clock = ManualClock::new(0);
        let ch = channels(&clock);
        let (a, mut ra) = ConnHandle::new(1, 4);
        let (b, mut rb) = ConnHandle::new(2, 4);
        ch.join("c", &a);
        ch.join("c", &b);
        ch.publish("c", "{\"n\":1}".into());
        let (pa, pb) = (ra.try_recv().unwrap(), rb.try_recv().unwrap());
        assert!(Arc::ptr_eq(&pa, &pb));
        assert_eq!(pa.frame.as_str().as_ptr(), pb.frame.as_str().as_ptr());
    }

    #[test]
    fn shared_delivery_skips_old_offsets_and_sends_subscribers_away_on_a_gap() {
        let clock = ManualClock::new(0);
        let ch = channels(&clock);
        let (a, mut rx) = ConnHandle::new(1, 16);
        // Nobody watches: nothing is kept.
        ch.deliver("c", 1, "{}");
        assert!(ch.counts("").is_empty());
        ch.join("c", &a);
        ch.deliver("c", 5, "{}");
        ch.deliver("c", 6, "{}");
        ch.deliver("c", 6, "{}");
        ch.deliver("c", 4, "{}");
        assert_eq!(offsets(&mut rx), vec![5, 6]);
        ch.deliver("c", 8, "{}");
        assert_eq!(a.close_reason(), Some(Disconnect::InsufficientState));
        assert_eq!(ch.subscriptions(), 0);
        // Channels with nobody and no history go.
        ch.tidy();
        assert!(ch.counts("").is_empty());
    }

    #[test]
    fn a_reset_sends_everyone_away() {
        let clock = ManualClock::new(0);
        let ch = channels(&clock);
        let (a, _ra) = ConnHandle::new(1, 4);
        let (b, _rb) = ConnHandle::new(2, 4);
        ch.join("x", &a);
        ch.join("y", &b);
        ch.reset_all();
        assert_eq!(a.close_reason(), Some(Disconnect::InsufficientState));
        assert_eq!(b.close_reason(), Some(Disconnect::InsufficientState));
        assert_eq!(ch.subscriptions(), 0);
    }

    #[test]
    fn joins_racing_with_leaves_are_never_lost() {
        let clock = ManualClock::new(0);
        let ch = Arc::new(channels(&clock));
        let threads: Vec<_> = (0..4u64)
            .map(|t| {
                let ch = ch.clone();
                std::thread::spawn(move || {
                    for i in 0..2000u64 {
                        let id = t * 1_000_000 + i;
                        let (h, _rx) = ConnHandle::new(id, 1);
                        ch.join("c", &h);
                        if i % 2 == 0 {
                            ch.leave("c", id);
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(ch.subscriptions(), 4 * 1000);
    }
}
