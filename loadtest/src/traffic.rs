//! What each mode sends and how it checks and measures what comes back: the per-connection
//! [`Traffic`] state and the per-thread [`Load`] that drives it.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use wsloop::proto::OpCode;

use crate::cli::{ModeKind, Plan};
use crate::client::{Conn, Handler};
use crate::payload::{self, Payloads};
use crate::stamp::{Clock, Stamp, Stamper};
use crate::stats::{record, ErrorKind, Stats};

/// A message sent and not yet echoed.
#[derive(Debug, Clone, Copy)]
pub struct InFlight {
    pub seq: u64,
    /// When it should have left (open loop), else when it left.
    pub intended: Instant,
    pub sent: Instant,
}

/// One connection's share of the load.
#[derive(Debug, Default)]
pub struct Traffic {
    /// The connection's number in the run.
    pub id: u64,
    /// Sent, not yet echoed, oldest first: an echo server answers in order.
    pub inflight: VecDeque<InFlight>,
    pub next_seq: u64,
    /// Open loop and publishing: when the next message is due.
    pub next_due: Option<Instant>,
    /// Data messages received.
    pub received: u64,
    /// The ping waiting for its pong: its token and when it left.
    pub ping: Option<(u64, Instant)>,
    /// Whether the connection answered its last ping.
    pub alive: bool,
}

/// One worker thread's sending, checking and measuring.
#[derive(Debug)]
pub struct Load {
    mode: ModeKind,
    depth: usize,
    opcode: OpCode,
    text: bool,
    payloads: Payloads,
    stamper: Option<Stamper>,
    clock: Clock,
    scratch: Vec<u8>,
    /// Time zero of the run.
    start: Instant,
    window_start: Instant,
    window_end: Instant,
    /// Open loop: time between two messages of one connection (of one publisher).
    interval: Option<Duration>,
    /// False once the run has stopped sending.
    pub sending: bool,
    /// Messages this thread may still send, when --messages bounds the run.
    quota: Option<u64>,
    pub stats: Stats,
}

impl Load {
    /// The load for a thread that runs `plan` from `start`, with `quota` messages at most.
    pub fn new(plan: &Plan, start: Instant, clock: Clock, quota: Option<u64>) -> Load {
        let interval = match plan.mode {
            ModeKind::Latency => plan.rate.map(|rate| plan.connections as f64 / rate),
            ModeKind::Broadcast => plan.rate.map(|rate| plan.publishers as f64 / rate),
            _ => None,
        };
        let stamper = (plan.mode == ModeKind::Broadcast)
            .then(|| Stamper::new(plan.size, plan.text).ok())
            .flatten();
        Load {
            mode: plan.mode,
            depth: plan.depth,
            opcode: if plan.text {
                OpCode::Text
            } else {
                OpCode::Binary
            },
            text: plan.text,
            payloads: Payloads::new(plan.size, plan.text),
            stamper,
            clock,
            scratch: Vec::with_capacity(plan.size),
            start,
            window_start: start + plan.warmup,
            window_end: start + plan.duration,
            interval: interval.map(Duration::from_secs_f64),
            sending: plan.mode.sends_messages(),
            quota,
            stats: Stats::new(),
        }
    }

    /// Whether messages follow a schedule (open-loop latency, publishing).
    pub fn interval(&self) -> Option<Duration> {
        self.interval
    }

    /// Whether --messages has been used up.
    pub fn quota_used_up(&self) -> bool {
        self.quota == Some(0)
    }

    fn take_quota(&mut self) -> bool {
        match &mut self.quota {
            Some(0) => false,
            Some(left) => {
                *left -= 1;
                true
            }
            None => true,
        }
    }

    fn in_window(&self, at: Instant) -> bool {
        at >= self.window_start && at <= self.window_end
    }

    /// Closed loop (echo, closed-loop latency): tops the connection up to --depth in flight.
    pub fn fill(&mut self, conn: &mut Conn, now: Instant) {
        while self.sending
            && conn.traffic.inflight.len() < self.depth
            && now < self.window_end
            && self.take_quota()
        {
            self.send_echo(conn, now, now);
        }
    }

    /// Open loop: sends every message that is due by `now` (and has a free slot, for
    /// echoes). Late messages keep their intended time, so a server that held the slots
    /// is charged for the wait.
    pub fn send_due(&mut self, conn: &mut Conn, now: Instant) {
        let Some(interval) = self.interval else {
            return;
        };
        while let Some(due) = conn.traffic.next_due {
            let blocked =
                self.mode != ModeKind::Broadcast && conn.traffic.inflight.len() >= self.depth;
            if due > now || due >= self.window_end || !self.sending || blocked {
                break;
            }
            if !self.take_quota() {
                break;
            }
            if self.mode == ModeKind::Broadcast {
                self.publish(conn, due, now);
            } else {
                self.send_echo(conn, due, now);
            }
            conn.traffic.next_due = Some(due + interval);
        }
    }

    fn send_echo(&mut self, conn: &mut Conn, intended: Instant, now: Instant) {
        let seq = conn.traffic.next_seq;
        self.payloads
            .write(payload::token(conn.traffic.id, seq), &mut self.scratch);
        if !conn.send(self.opcode, &self.scratch) {
            return;
        }
        conn.traffic.next_seq += 1;
        conn.traffic.inflight.push_back(InFlight {
            seq,
            intended,
            sent: now,
        });
        self.stats.sent += 1;
        if self.interval.is_some() && self.in_window(now) {
            record(&mut self.stats.send_lag, now - intended);
        }
    }

    fn publish(&mut self, conn: &mut Conn, intended: Instant, now: Instant) {
        let Some(stamper) = &self.stamper else {
            return;
        };
        let stamp = Stamp {
            // The intended time: a publisher held up by a full socket is the server's delay.
            sent_ns: self.clock.unix_ns(intended),
            publisher: conn.traffic.id as u32,
            seq: conn.traffic.next_seq as u32,
        };
        stamper.write(stamp, &mut self.scratch);
        if conn.send(self.opcode, &self.scratch) {
            conn.traffic.next_seq += 1;
            self.stats.sent += 1;
            self.stats.published += 1;
            if self.stats.first_publish.is_none() {
                self.stats.first_publish = Some(now.saturating_duration_since(self.start));
            }
            if self.in_window(now) {
                record(&mut self.stats.send_lag, now - intended);
            }
        }
    }

    /// Queues a ping whose pong proves the connection alive. While one is unanswered no
    /// other is sent (a peer may answer only the latest of several pings, RFC 6455 section
    /// 5.5.3); its pong then proves the same.
    pub fn ping(&mut self, conn: &mut Conn, now: Instant) {
        conn.traffic.alive = false;
        if conn.traffic.ping.is_some() {
            return;
        }
        let token = payload::token(conn.traffic.id, conn.traffic.next_seq);
        if conn.ping(&token.to_be_bytes()) {
            conn.traffic.next_seq += 1;
            conn.traffic.ping = Some((token, now));
            self.stats.pings += 1;
        }
    }

    fn mismatch(&mut self) {
        self.stats.error(ErrorKind::PayloadMismatch);
    }

    fn echoed(&mut self, traffic: &mut Traffic, text: bool, payload: &[u8], at: Instant) {
        let Some(sent) = traffic.inflight.pop_front() else {
            return self.mismatch();
        };
        let token = payload::token(traffic.id, sent.seq);
        if text != self.text || !self.payloads.matches(token, payload) {
            return self.mismatch();
        }
        if self.in_window(at) {
            self.stats.window_messages += 1;
            self.stats.window_bytes += payload.len() as u64;
            record(&mut self.stats.latency, at - sent.intended);
            if self.interval.is_some() {
                record(&mut self.stats.latency_uncorrected, at - sent.sent);
            }
        }
    }

    fn delivered(&mut self, traffic: &Traffic, text: bool, payload: &[u8], at: Instant) {
        let stamp = match &self.stamper {
            Some(stamper) if text == self.text => stamper.read(payload),
            _ => None,
        };
        let Some(stamp) = stamp else {
            return self.mismatch();
        };
        // Whose message it is tells a fan-out from an echo (see the report's warnings).
        if u64::from(stamp.publisher) == traffic.id {
            self.stats.own_deliveries += 1;
        } else {
            self.stats.other_deliveries += 1;
        }
        let latency = Duration::from_nanos(self.clock.unix_ns(at).saturating_sub(stamp.sent_ns));
        if self.in_window(at) {
            self.stats.window_messages += 1;
            self.stats.window_bytes += payload.len() as u64;
            record(&mut self.stats.latency, latency);
        }
    }
}

impl Handler for Load {
    fn message(&mut self, traffic: &mut Traffic, text: bool, payload: &[u8], at: Instant) {
        traffic.received += 1;
        self.stats.received += 1;
        match self.mode {
            ModeKind::Echo | ModeKind::Latency => self.echoed(traffic, text, payload, at),
            ModeKind::Broadcast => self.delivered(traffic, text, payload, at),
            // Nothing was sent that could come back.
            ModeKind::Connect | ModeKind::Idle => self.mismatch(),
        }
    }

    fn pong(&mut self, traffic: &mut Traffic, payload: &[u8], _at: Instant) {
        match traffic.ping {
            Some((token, _)) if payload == token.to_be_bytes() => {
                traffic.ping = None;
                traffic.alive = true;
                self.stats.pongs += 1;
            }
            // An unsolicited pong is allowed (RFC 6455 section 5.5.3) and means nothing.
            None => {}
            Some(_) => self.mismatch(),
        }
    }
}

/// The first scheduled send at or after `after` for the `index`-th of `count` senders sharing
/// `rate` messages per second from `start`: sender `i` sends at `start + (i + k * count) / rate`,
/// so the sends of all senders are evenly spaced.
pub fn first_slot(start: Instant, index: u64, count: u64, rate: f64, after: Instant) -> Instant {
    let base = start + Duration::from_secs_f64(index as f64 / rate);
    if after <= base {
        return base;
    }
    let interval = count as f64 / rate;
    let slots = ((after - base).as_secs_f64() / interval).ceil();
    base + Duration::from_secs_f64(slots * interval)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_evenly_spread_and_never_early() {
        let start = Instant::now();
        // 4 senders at 1000/s: each every 4 ms, offset by 1 ms.
        assert_eq!(
            first_slot(start, 2, 4, 1000.0, start),
            start + Duration::from_millis(2)
        );
        let after = start + Duration::from_micros(6500);
        let slot = first_slot(start, 2, 4, 1000.0, after);
        assert!(slot >= after);
        let ms = (slot - start).as_secs_f64() * 1e3;
        assert!((ms - 10.0).abs() < 1e-6, "{ms}");
    }
}
