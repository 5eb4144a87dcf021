//! What each loop counts about itself: connections, messages, bytes, closes, loop turns.
//!
//! Only the owning loop writes its [`LoopStats`]; a scrape ([`Metrics`](crate::Metrics))
//! reads every loop's from another thread. So a count is an atomic updated by a relaxed load
//! and store rather than a read-modify-write: that compiles to the same plain load, add and
//! store as a `u64` field would (no lock prefix, no fence), and a reader still sees each
//! value whole. The loops' stats are separate, cache-line aligned allocations, so loops never
//! write to a line another loop writes.
//!
//! Messages and bytes, counted several times per message, are plain integers in the loop's
//! own state ([`TrafficCounts`]) and copied to the shared [`Traffic`] once per loop turn: a
//! scrape sees them at most one turn late.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use crate::handler::Error;
use crate::proto::{CloseCode, OpCode};

/// A count written by one thread and read by any.
#[derive(Debug, Default)]
pub(crate) struct Counter(AtomicU64);

impl Counter {
    #[inline]
    pub(crate) fn add(&self, n: u64) {
        // One writer: no other thread can change the value between the load and the store.
        self.0.store(self.0.load(Relaxed).wrapping_add(n), Relaxed);
    }

    #[inline]
    pub(crate) fn inc(&self) {
        self.add(1);
    }

    /// Replaces the value (with a total the loop keeps itself).
    pub(crate) fn set(&self, value: u64) {
        self.0.store(value, Relaxed);
    }

    pub(crate) fn get(&self) -> u64 {
        self.0.load(Relaxed)
    }
}

/// Per-opcode counts have a slot per [`OpCode`], in its order, so that the opcode is the
/// index; the continuation slot stays 0 (a continuation frame is never a message).
pub(crate) const OPCODES: usize = 6;
/// Label values of the per-opcode counts, by slot; `None` for the unused slot.
pub(crate) const OPCODE_NAMES: [Option<&str>; OPCODES] = [
    None,
    Some("text"),
    Some("binary"),
    Some("close"),
    Some("ping"),
    Some("pong"),
];

#[inline]
fn opcode_slot(opcode: OpCode) -> usize {
    opcode as usize
}

/// Messages and their payload bytes by opcode, as the loop counts them: plain integers.
#[derive(Debug, Default)]
pub(crate) struct TrafficCounts {
    messages: [u64; OPCODES],
    bytes: [u64; OPCODES],
}

impl TrafficCounts {
    #[inline]
    pub(crate) fn record(&mut self, opcode: OpCode, len: usize) {
        let slot = opcode_slot(opcode);
        self.messages[slot] += 1;
        self.bytes[slot] += len as u64;
    }

    /// `count` messages of `len` bytes each (one publish to `count` subscribers).
    pub(crate) fn record_many(&mut self, opcode: OpCode, len: usize, count: usize) {
        let slot = opcode_slot(opcode);
        self.messages[slot] += count as u64;
        self.bytes[slot] += (len as u64).saturating_mul(count as u64);
    }
}

/// Messages and their payload bytes by opcode, as a scrape reads them.
#[derive(Debug, Default)]
pub(crate) struct Traffic {
    pub(crate) messages: [Counter; OPCODES],
    pub(crate) bytes: [Counter; OPCODES],
}

impl Traffic {
    /// Makes the loop's counts visible to scrapes.
    pub(crate) fn publish(&self, counts: &TrafficCounts) {
        for (shared, &count) in self.messages.iter().zip(&counts.messages) {
            shared.set(count);
        }
        for (shared, &count) in self.bytes.iter().zip(&counts.bytes) {
            shared.set(count);
        }
    }

    pub(crate) fn total_messages(&self) -> u64 {
        self.messages.iter().map(Counter::get).sum()
    }

    pub(crate) fn total_bytes(&self) -> u64 {
        self.bytes.iter().map(Counter::get).sum()
    }
}

/// Close codes counted apart: 1000-1015 each, then application ranges and the rest, so the
/// number of label values stays fixed whatever peers send.
pub(crate) const CLOSE_SLOTS: usize = 19;

/// The slot of a close code; [`close_label`] names it.
pub(crate) fn close_slot(code: CloseCode) -> usize {
    match code.0 {
        1000..=1015 => usize::from(code.0 - 1000),
        3000..=3999 => 16,
        4000..=4999 => 17,
        _ => 18,
    }
}

/// The `code` label of a close slot.
pub(crate) fn close_label(slot: usize) -> String {
    match slot {
        0..=15 => (1000 + slot).to_string(),
        16 => "3xxx".into(),
        17 => "4xxx".into(),
        _ => "other".into(),
    }
}

/// Why connections were dropped, in the order of [`ERROR_NAMES`].
pub(crate) const ERROR_KINDS: usize = 6;
/// Label values of the error counts.
pub(crate) const ERROR_NAMES: [&str; ERROR_KINDS] = [
    "protocol",
    "io",
    "timeout",
    "handshake_timeout",
    "connect",
    "handshake",
];
/// The slot of an opening handshake that did not finish in time.
pub(crate) const HANDSHAKE_TIMEOUT: usize = 3;

pub(crate) fn error_slot(err: &Error) -> usize {
    match err {
        Error::Protocol(_) => 0,
        Error::Io(_) => 1,
        Error::Timeout => 2,
        Error::Resolve(_) | Error::Connect(_) => 4,
        Error::Handshake(_) => 5,
    }
}

/// HTTP statuses answered instead of an upgrade, by status (100-599).
pub(crate) const STATUS_SLOTS: usize = 500;

/// A histogram with fixed bucket bounds: counts per bucket, their sum and how many.
#[derive(Debug)]
pub(crate) struct Buckets {
    /// Upper bounds (inclusive), ascending; a last, unbounded bucket follows.
    pub(crate) bounds: &'static [u64],
    pub(crate) counts: Box<[Counter]>,
    pub(crate) sum: Counter,
}

impl Buckets {
    fn new(bounds: &'static [u64]) -> Buckets {
        Buckets {
            bounds,
            counts: (0..=bounds.len()).map(|_| Counter::default()).collect(),
            sum: Counter::default(),
        }
    }

    #[inline]
    pub(crate) fn observe(&self, value: u64) {
        let slot = self.bounds.partition_point(|&bound| bound < value);
        self.counts[slot].inc();
        self.sum.add(value);
    }

    pub(crate) fn observe_duration(&self, elapsed: Duration) {
        self.observe(u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX));
    }
}

/// Loop-turn and handshake bounds, in nanoseconds: 10 µs to 1 s.
const LATENCY_BOUNDS_NS: &[u64] = &[
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    1_000_000_000,
];

/// Readiness events per loop turn: powers of two up to the poll's capacity (1024).
const EVENT_BOUNDS: &[u64] = &[0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024];

/// One loop's counts. Aligned so that no two loops' stats share a cache line.
#[repr(align(64))]
#[derive(Debug)]
pub(crate) struct LoopStats {
    /// TCP connections taken into this loop.
    pub(crate) accepted: Counter,
    /// Opening handshakes completed (101 sent).
    pub(crate) upgrades: Counter,
    /// WebSocket connections whose close was reported (`on_close`).
    pub(crate) closed: Counter,
    /// HTTP answers other than 101, by status - 100.
    pub(crate) http_responses: Box<[Counter]>,
    /// Closes by code (the code `on_close` reported), by [`close_slot`].
    pub(crate) closes: [Counter; CLOSE_SLOTS],
    /// Connections dropped for an error, by [`ERROR_NAMES`].
    pub(crate) errors: [Counter; ERROR_KINDS],
    /// Copies of the loop's [`TrafficCounts`], made at the end of each turn.
    pub(crate) received: Traffic,
    pub(crate) sent: Traffic,
    /// Times a connection went over the backpressure limit and stopped being read.
    pub(crate) backpressure_pauses: Counter,
    /// Sends dropped because the connection was over `max_buffered`.
    pub(crate) send_drops: Counter,
    /// Publishes made on this loop.
    pub(crate) publishes: Counter,
    /// Published frames queued for this loop's subscribers.
    pub(crate) deliveries: Counter,
    /// Deliveries skipped for slow subscribers (`SlowSubscriber::Drop`).
    pub(crate) slow_drops: Counter,
    /// Slow subscribers closed (`SlowSubscriber::Close`).
    pub(crate) slow_closes: Counter,
    /// TLS handshake reads put off to a later turn by the per-turn cap.
    pub(crate) tls_handshakes_deferred: Counter,
    pub(crate) handshake_ns: Buckets,
    pub(crate) turn_ns: Buckets,
    pub(crate) events_per_turn: Buckets,
}

impl Default for LoopStats {
    fn default() -> LoopStats {
        LoopStats {
            accepted: Counter::default(),
            upgrades: Counter::default(),
            closed: Counter::default(),
            http_responses: (0..STATUS_SLOTS).map(|_| Counter::default()).collect(),
            closes: Default::default(),
            errors: Default::default(),
            received: Traffic::default(),
            sent: Traffic::default(),
            backpressure_pauses: Counter::default(),
            send_drops: Counter::default(),
            publishes: Counter::default(),
            deliveries: Counter::default(),
            slow_drops: Counter::default(),
            slow_closes: Counter::default(),
            tls_handshakes_deferred: Counter::default(),
            handshake_ns: Buckets::new(LATENCY_BOUNDS_NS),
            turn_ns: Buckets::new(LATENCY_BOUNDS_NS),
            events_per_turn: Buckets::new(EVENT_BOUNDS),
        }
    }
}

impl LoopStats {
    /// Counts an HTTP answer other than 101; statuses outside 100-599 are not sent.
    pub(crate) fn http_response(&self, status: u16) {
        if let Some(counter) = usize::from(status)
            .checked_sub(100)
            .and_then(|slot| self.http_responses.get(slot))
        {
            counter.inc();
        }
    }

    /// WebSocket connections open now: upgraded and not yet reported closed.
    pub(crate) fn open(&self) -> u64 {
        self.upgrades.get().saturating_sub(self.closed.get())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_take_values_up_to_their_bound() {
        let b = Buckets::new(&[10, 100]);
        for v in [0, 10, 11, 100, 101, u64::MAX] {
            b.observe(v);
        }
        let counts: Vec<u64> = b.counts.iter().map(Counter::get).collect();
        assert_eq!(counts, [2, 2, 2]);
        assert_eq!(b.sum.get(), 0u64.wrapping_add(222).wrapping_add(u64::MAX));
    }

    #[test]
    fn close_codes_map_to_fixed_labels() {
        assert_eq!(close_label(close_slot(CloseCode::NORMAL)), "1000");
        assert_eq!(close_label(close_slot(CloseCode(1015))), "1015");
        assert_eq!(close_label(close_slot(CloseCode(3001))), "3xxx");
        assert_eq!(close_label(close_slot(CloseCode(4999))), "4xxx");
        assert_eq!(close_label(close_slot(CloseCode(2000))), "other");
        assert!((0..CLOSE_SLOTS).all(close_slot_round_trips));
    }

    fn close_slot_round_trips(slot: usize) -> bool {
        match close_label(slot).parse::<u16>() {
            Ok(code) => close_slot(CloseCode(code)) == slot,
            Err(_) => slot >= 16,
        }
    }

    #[test]
    fn statuses_outside_the_range_are_not_counted() {
        let stats = LoopStats::default();
        stats.http_response(99);
        stats.http_response(600);
        stats.http_response(404);
        stats.http_response(404);
        let total: u64 = stats.http_responses.iter().map(Counter::get).sum();
        assert_eq!(total, 2);
        assert_eq!(stats.http_responses[304].get(), 2);
    }
}
