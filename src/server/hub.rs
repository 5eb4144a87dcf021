//! What the event loops of one server share: each loop's mailbox and waker, connection
//! counts and stats, which loops have subscribers to which topic, and the shutdown request.
//!
//! Nothing here is touched on a loop's per-message path. Connection counts change once per
//! connection; the topic map changes when a loop's first subscriber joins a topic or its
//! last one leaves, and is read once per publish (only when there are several loops);
//! mailboxes carry what one loop (or another thread) asks of another.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use mio::{Poll, Waker};

use super::command::Command;
use super::outbound::SharedFrame;
use super::stats::LoopStats;
use super::token::{ConnId, MAX_LOOPS, WAKER};

/// A set of loops, as a bitmap.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct LoopSet([u64; MAX_LOOPS / 64]);

impl LoopSet {
    pub(crate) fn insert(&mut self, index: usize) {
        self.0[index / 64] |= 1 << (index % 64);
    }

    pub(crate) fn remove(&mut self, index: usize) {
        self.0[index / 64] &= !(1 << (index % 64));
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.iter().all(|&word| word == 0)
    }

    /// Takes the set, leaving it empty.
    pub(crate) fn take(&mut self) -> LoopSet {
        std::mem::take(self)
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        self.0.iter().enumerate().flat_map(|(word_index, &word)| {
            let mut bits = word;
            std::iter::from_fn(move || {
                if bits == 0 {
                    return None;
                }
                let bit = bits.trailing_zeros() as usize;
                bits &= bits - 1;
                Some(word_index * 64 + bit)
            })
        })
    }
}

/// One loop's end of the hub as the others see it.
struct Mailbox {
    sender: SyncSender<Command>,
    waker: Waker,
    /// Connections the loop holds, counting sockets handed to it and not yet taken in.
    load: PaddedCount,
    /// Publish deliveries lost because this mailbox was full.
    dropped: AtomicU64,
    /// What the loop counts about itself; the loop holds a clone and is its only writer.
    stats: Arc<LoopStats>,
}

/// A counter on its own cache line, so loops updating their own counts do not slow each
/// other down.
#[repr(align(64))]
#[derive(Default)]
struct PaddedCount(AtomicUsize);

/// Shards of the topic map: publishes to different topics rarely meet on one lock.
const INTEREST_SHARDS: usize = 16;

/// Topic name to the loops with subscribers, for the topics of one shard.
type Shard = RwLock<HashMap<Box<str>, LoopSet>>;

/// Which loops have at least one subscriber to a topic.
struct Interest {
    shards: Box<[Shard]>,
}

impl Interest {
    fn new() -> Interest {
        Interest {
            shards: (0..INTEREST_SHARDS).map(|_| RwLock::default()).collect(),
        }
    }

    fn shard(&self, topic: &str) -> &Shard {
        let mut hasher = DefaultHasher::new();
        topic.hash(&mut hasher);
        &self.shards[hasher.finish() as usize % INTEREST_SHARDS]
    }
}

/// The loop's end of its mailbox.
pub(crate) type Inbox = Receiver<Command>;

/// The shared part of a server of one or more loops.
pub(crate) struct Hub {
    mailboxes: Box<[Mailbox]>,
    /// Connections held by all loops: `Config::max_connections` bounds this.
    open: AtomicUsize,
    max_connections: usize,
    /// `None` with one loop: a publish has nowhere else to go.
    interest: Option<Interest>,
    shutdown: AtomicBool,
    /// When the server was bound, for its uptime.
    started: Instant,
}

impl Hub {
    /// A hub for one loop per poll, each with a mailbox of `capacity` commands. Returns the
    /// inboxes, in loop order.
    pub(crate) fn new(
        polls: &[Poll],
        capacity: usize,
        max_connections: usize,
    ) -> std::io::Result<(Arc<Hub>, Vec<Inbox>)> {
        assert!(!polls.is_empty() && polls.len() <= MAX_LOOPS);
        let mut mailboxes = Vec::with_capacity(polls.len());
        let mut inboxes = Vec::with_capacity(polls.len());
        for poll in polls {
            let (sender, inbox) = std::sync::mpsc::sync_channel(capacity.max(1));
            mailboxes.push(Mailbox {
                sender,
                waker: Waker::new(poll.registry(), WAKER)?,
                load: PaddedCount::default(),
                dropped: AtomicU64::new(0),
                stats: Arc::default(),
            });
            inboxes.push(inbox);
        }
        let hub = Hub {
            interest: (polls.len() > 1).then(Interest::new),
            mailboxes: mailboxes.into(),
            open: AtomicUsize::new(0),
            max_connections,
            shutdown: AtomicBool::new(false),
            started: Instant::now(),
        };
        Ok((Arc::new(hub), inboxes))
    }

    /// How many loops the server runs.
    pub(crate) fn loops(&self) -> usize {
        self.mailboxes.len()
    }

    /// Queues a command for loop `index` without waking it; the command comes back if the
    /// mailbox is full or the loop has stopped.
    pub(crate) fn post(&self, index: usize, command: Command) -> Result<(), PostError> {
        self.mailboxes[index]
            .sender
            .try_send(command)
            .map_err(|err| match err {
                TrySendError::Full(command) => PostError::Full(command),
                TrySendError::Disconnected(command) => PostError::Stopped(command),
            })
    }

    /// Wakes loop `index` so it reads its mailbox.
    pub(crate) fn wake(&self, index: usize) {
        if let Err(err) = self.mailboxes[index].waker.wake() {
            log::error!("could not wake loop {index}: {err}");
        }
    }

    /// Counts a connection for loop `index`, unless the server holds `max_connections`.
    pub(crate) fn reserve(&self, index: usize) -> bool {
        let reserved = self
            .open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |open| {
                (open < self.max_connections).then_some(open + 1)
            })
            .is_ok();
        if reserved {
            self.mailboxes[index].load.0.fetch_add(1, Ordering::Relaxed);
        }
        reserved
    }

    /// Moves a counted connection from loop `from` to loop `to` (a hand-off that failed).
    pub(crate) fn move_reservation(&self, from: usize, to: usize) {
        self.mailboxes[from].load.0.fetch_sub(1, Ordering::Relaxed);
        self.mailboxes[to].load.0.fetch_add(1, Ordering::Relaxed);
    }

    /// A connection of loop `index` has gone.
    pub(crate) fn release(&self, index: usize) {
        self.mailboxes[index].load.0.fetch_sub(1, Ordering::Relaxed);
        self.open.fetch_sub(1, Ordering::AcqRel);
    }

    /// The loop holding the fewest connections (the lowest index among equals).
    pub(crate) fn least_loaded(&self) -> usize {
        let mut best = (usize::MAX, 0);
        for (index, mailbox) in self.mailboxes.iter().enumerate() {
            let load = mailbox.load.0.load(Ordering::Relaxed);
            if load < best.0 {
                best = (load, index);
            }
        }
        best.1
    }

    /// Connections held by each loop.
    pub(crate) fn connections(&self) -> Vec<usize> {
        self.mailboxes
            .iter()
            .map(|m| m.load.0.load(Ordering::Relaxed))
            .collect()
    }

    /// Publish deliveries lost to full mailboxes, each loop's count.
    pub(crate) fn dropped_deliveries(&self) -> Vec<u64> {
        self.mailboxes
            .iter()
            .map(|m| m.dropped.load(Ordering::Relaxed))
            .collect()
    }

    /// Time since the server was bound.
    pub(crate) fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// Loop `index`'s stats.
    pub(crate) fn stats(&self, index: usize) -> &Arc<LoopStats> {
        &self.mailboxes[index].stats
    }

    /// Loop `index` has its first subscriber to `topic`.
    pub(crate) fn add_interest(&self, topic: &str, index: usize) {
        if let Some(interest) = &self.interest {
            let mut shard = interest
                .shard(topic)
                .write()
                .unwrap_or_else(|e| e.into_inner());
            shard.entry(topic.into()).or_default().insert(index);
        }
    }

    /// Loop `index` has no subscriber to `topic` any more.
    pub(crate) fn remove_interest(&self, topic: &str, index: usize) {
        if let Some(interest) = &self.interest {
            let mut shard = interest
                .shard(topic)
                .write()
                .unwrap_or_else(|e| e.into_inner());
            if let Some(loops) = shard.get_mut(topic) {
                loops.remove(index);
                if loops.is_empty() {
                    shard.remove(topic);
                }
            }
        }
    }

    /// The loops other than `except` with subscribers to `topic`. With one loop, that loop
    /// (for publishes from other threads) unless it is `except`.
    pub(crate) fn interested(&self, topic: &str, except: Option<usize>) -> LoopSet {
        let mut loops = match &self.interest {
            Some(interest) => {
                let shard = interest
                    .shard(topic)
                    .read()
                    .unwrap_or_else(|e| e.into_inner());
                shard.get(topic).copied().unwrap_or_default()
            }
            None => {
                let mut only = LoopSet::default();
                only.insert(0);
                only
            }
        };
        if let Some(except) = except {
            loops.remove(except);
        }
        loops
    }

    /// Hands a published frame to each loop in `loops` (not woken: the caller wakes the
    /// loops it returns). A loop whose mailbox is full misses the message: the loss is
    /// counted and logged, and the publisher is not held up. Returns the loops that took
    /// it and how many refused.
    pub(crate) fn forward(
        &self,
        loops: LoopSet,
        topic: &str,
        frame: &SharedFrame,
        exclude: Option<ConnId>,
    ) -> (LoopSet, usize) {
        let mut took = LoopSet::default();
        let mut refused = 0;
        let topic: Arc<str> = topic.into();
        for index in loops.iter() {
            let command = Command::Deliver {
                topic: topic.clone(),
                frame: frame.clone(),
                exclude,
            };
            match self.post(index, command) {
                Ok(()) => took.insert(index),
                Err(PostError::Full(_)) => {
                    refused += 1;
                    let dropped = self.mailboxes[index]
                        .dropped
                        .fetch_add(1, Ordering::Relaxed)
                        + 1;
                    // Every loss is counted; the log line comes at the first and then at each
                    // power of two, so a stuck loop cannot flood the log.
                    if dropped.is_power_of_two() {
                        log::warn!(
                            "loop {index}: mailbox full, publish to {topic:?} not delivered there \
                             ({dropped} deliveries lost so far)"
                        );
                    }
                }
                // A stopped loop has no subscribers left to miss anything.
                Err(PostError::Stopped(_)) => {}
            }
        }
        (took, refused)
    }

    pub(crate) fn request_shutdown(&self) {
        self.shutdown.store(true, Ordering::Release);
        for index in 0..self.loops() {
            self.wake(index);
        }
    }

    pub(crate) fn shutdown_requested(&self) -> bool {
        self.shutdown.load(Ordering::Acquire)
    }
}

/// Why [`Hub::post`] gave a command back.
pub(crate) enum PostError {
    Full(Command),
    Stopped(Command),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loop_sets_hold_every_index() {
        let mut set = LoopSet::default();
        for index in [0, 1, 63, 64, 130, 255] {
            set.insert(index);
        }
        assert_eq!(set.iter().collect::<Vec<_>>(), [0, 1, 63, 64, 130, 255]);
        set.remove(64);
        assert_eq!(set.iter().collect::<Vec<_>>(), [0, 1, 63, 130, 255]);
        assert!(!set.take().is_empty());
        assert!(set.is_empty());
    }

    #[test]
    fn interest_follows_first_and_last_subscriber() {
        let polls: Vec<Poll> = (0..3).map(|_| Poll::new().unwrap()).collect();
        let (hub, _inboxes) = Hub::new(&polls, 4, 10).unwrap();
        hub.add_interest("room", 1);
        hub.add_interest("room", 2);
        let loops = |except| hub.interested("room", except).iter().collect::<Vec<_>>();
        assert_eq!(loops(None), [1, 2]);
        assert_eq!(loops(Some(1)), [2]);
        hub.remove_interest("room", 2);
        hub.remove_interest("room", 1);
        assert!(hub.interested("room", None).is_empty());
    }

    #[test]
    fn reservations_bound_the_whole_server_and_balance_loops() {
        let polls: Vec<Poll> = (0..2).map(|_| Poll::new().unwrap()).collect();
        let (hub, _inboxes) = Hub::new(&polls, 4, 3).unwrap();
        for _ in 0..3 {
            let index = hub.least_loaded();
            assert!(hub.reserve(index));
        }
        assert_eq!(hub.connections(), [2, 1]);
        assert!(!hub.reserve(1), "max_connections is for the whole server");
        hub.release(0);
        assert_eq!(hub.least_loaded(), 0, "ties go to the lowest index");
        assert!(hub.reserve(1));
        hub.move_reservation(1, 0);
        assert_eq!(hub.connections(), [2, 1]);
    }

    #[test]
    fn a_full_mailbox_counts_what_it_lost() {
        let polls: Vec<Poll> = (0..2).map(|_| Poll::new().unwrap()).collect();
        let (hub, inboxes) = Hub::new(&polls, 2, 10).unwrap();
        let mut loops = LoopSet::default();
        loops.insert(1);
        let frame: SharedFrame = Arc::from(&b"frame"[..]);
        let mut refused = 0;
        for _ in 0..5 {
            refused += hub.forward(loops, "room", &frame, None).1;
        }
        assert_eq!(refused, 3);
        assert_eq!(hub.dropped_deliveries(), [0, 3]);
        assert_eq!(inboxes[1].try_iter().count(), 2);
        assert_eq!(Arc::strong_count(&frame), 1, "no copy or reference leaks");
    }
}
