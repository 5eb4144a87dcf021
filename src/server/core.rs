//! The loop's state apart from the handler: connections, buffers, deadlines, and the
//! operations on them that both the loop and the handler's [`Context`](super::Context) use.

use std::collections::VecDeque;
use std::io;
use std::sync::Arc;
use std::time::Instant;

use mio::{Interest, Registry};
use slab::Slab;

use super::access::{AccessLog, Closer};
use super::command::Command;
use super::conn::{lookup, Conn};
use super::hub::{Hub, LoopSet, PostError};
use super::outbound::{shared_frame, BufPool, SharedFrame};
use super::stats::{self, LoopStats, TrafficCounts};
use super::timers::{Millis, Timers};
use super::token::ConnId;
use super::topics::{Left, Topics};
use crate::config::SlowSubscriber;
use crate::handler::Error;
use crate::proto::connection::{Accepted, FrameHead, Settings};
use crate::proto::deflate::SharedStreams;
use crate::proto::{CloseCode, OpCode, Request, SendError};
use crate::Config;

/// Payloads at least this large are written straight from the caller's memory (header and
/// payload in one vectored write) when nothing is queued; smaller ones are batched into the
/// connection's queue and go out in one write per connection per loop turn. Copying wins
/// well past small frames: a write(2) per 16 KiB message cost 6.8 µs of server CPU per
/// echo against 4.4 µs batched, and 64 KiB ones 15.7 against 14.5 µs; at 1 MiB the two are
/// even and the copy would hold the message twice (BENCHMARKS.md, "The speed of light").
const DIRECT_WRITE_MIN: usize = 256 << 10;

/// The compression buffer is freed after a message that made it larger than this.
const COMPRESSED_CAPACITY_MAX: usize = 1 << 20;

/// What a publish did: subscriber by subscriber on this loop, loop by loop for the others.
#[non_exhaustive]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Published {
    /// Subscribers on this loop the frame was queued for.
    pub sent: usize,
    /// Slow subscribers on this loop skipped ([`SlowSubscriber::Drop`]).
    pub dropped: usize,
    /// Slow subscribers on this loop closed ([`SlowSubscriber::Close`]).
    pub closed: usize,
    /// Other loops with subscribers that the frame was handed to; they apply the same
    /// policies to their own subscribers.
    pub loops: usize,
    /// Other loops with subscribers whose mailbox was full: their subscribers miss this
    /// message (counted in [`Remote::dropped_deliveries`](crate::Remote::dropped_deliveries)
    /// and logged).
    pub loops_full: usize,
}

/// How a send went; see [`Context::send`](super::Context::send). Only `Sent` and
/// `Forwarded` mean the message is on its way; `Dropped` means it is lost.
#[must_use = "a send can be refused (Dropped) or pass the backpressure limit"]
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendStatus {
    /// Written to the kernel or queued below the backpressure limit.
    Sent,
    /// Queued, and the connection's buffered amount is now over the backpressure limit: the
    /// server stops reading from it until it drains, and `on_drain` follows. Senders that
    /// cannot pause (fan-out) should drop or close.
    Backpressure,
    /// Not queued: the buffered amount is over `max_buffered`, or the connection belongs to
    /// another loop whose mailbox is full. The message is lost for this connection; closing
    /// it is usually right.
    Dropped,
    /// The connection belongs to another loop: the message was handed to that loop, which
    /// sends it (or drops it, if the connection has closed or is over `max_buffered`) on its
    /// next turn.
    Forwarded,
}

pub(crate) struct Core {
    pub(crate) config: Config,
    pub(crate) registry: Registry,
    pub(crate) conns: Slab<Conn>,
    pub(crate) pool: BufPool,
    pub(crate) timers: Timers,
    /// Connections with bytes queued in this turn, flushed at its end.
    pub(crate) dirty: Vec<ConnId>,
    /// Connections to read again next turn.
    pub(crate) ready: VecDeque<ConnId>,
    /// Connections whose socket failed during a send, to drop with the handler's knowledge.
    pub(crate) failed: Vec<(ConnId, Error)>,
    /// Connections whose queue drained after passing the limit, owed `on_drain`.
    pub(crate) drained: Vec<ConnId>,
    /// Connections the application terminated, to drop at the end of the turn.
    pub(crate) terminated: Vec<ConnId>,
    pub(crate) now: Millis,
    next_generation: u32,
    pub(crate) topics: Topics,
    /// Subscribers a publish skipped as too slow, owed `on_publish_dropped`.
    pub(crate) publish_dropped: Vec<(ConnId, String)>,
    /// Where outgoing messages are compressed before framing.
    compressed: Vec<u8>,
    /// zlib streams of the connections that keep no compression context.
    pub(crate) zlib: SharedStreams,
    /// What the loops of this server share.
    pub(crate) hub: Arc<Hub>,
    /// This loop's place among them.
    pub(crate) loop_index: usize,
    /// Loops this one posted commands to in this turn, woken once each at its end.
    pub(crate) wake: LoopSet,
    /// What this loop counts about itself (it is the only writer).
    pub(crate) stats: Arc<LoopStats>,
    /// Per-connection records for the access log, when it is on.
    pub(crate) access: Option<AccessLog>,
    /// Messages and bytes received and sent, copied to `stats` at the end of each turn.
    pub(crate) received: TrafficCounts,
    pub(crate) sent: TrafficCounts,
    /// The protocol settings every connection opens with, taken from `config`.
    settings: Settings,
}

impl Core {
    pub(crate) fn new(
        config: Config,
        registry: Registry,
        hub: Arc<Hub>,
        loop_index: usize,
    ) -> Core {
        Core {
            settings: Settings {
                max_message_size: config.max_message_size,
                auto_pong: config.auto_pong,
                deflate: config.deflate,
            },
            access: config.access_log.then(AccessLog::default),
            received: TrafficCounts::default(),
            sent: TrafficCounts::default(),
            config,
            registry,
            conns: Slab::new(),
            pool: BufPool::default(),
            timers: Timers::new(loop_index),
            dirty: Vec::new(),
            ready: VecDeque::new(),
            failed: Vec::new(),
            drained: Vec::new(),
            terminated: Vec::new(),
            now: 0,
            next_generation: 0,
            topics: Topics::default(),
            publish_dropped: Vec::new(),
            compressed: Vec::new(),
            zlib: SharedStreams::default(),
            stats: hub.stats(loop_index).clone(),
            hub,
            loop_index,
            wake: LoopSet::default(),
        }
    }

    /// The id for the connection in slab slot `index`.
    pub(crate) fn id(&self, index: usize, generation: u32) -> ConnId {
        ConnId::new(self.loop_index, index, generation)
    }

    /// Whether `id` names a connection of another loop.
    pub(crate) fn is_foreign(&self, id: ConnId) -> bool {
        id.loop_index() != self.loop_index
    }

    /// Posts a command to the loop that owns `id`, to be woken at the end of this turn.
    pub(crate) fn forward(&mut self, id: ConnId, command: Command) -> Result<(), PostError> {
        let index = id.loop_index();
        if index >= self.hub.loops() {
            return Err(PostError::Stopped(command));
        }
        self.hub.post(index, command)?;
        self.wake.insert(index);
        Ok(())
    }

    /// Sends a frame to a connection of another loop, through its mailbox.
    fn send_foreign(
        &mut self,
        id: ConnId,
        opcode: OpCode,
        payload: &[u8],
    ) -> Result<SendStatus, SendError> {
        if opcode.is_control() && payload.len() > 125 {
            return Err(SendError::ControlTooLong);
        }
        let command = Command::Send {
            id,
            opcode,
            payload: payload.into(),
        };
        match self.forward(id, command) {
            Ok(()) => Ok(SendStatus::Forwarded),
            Err(PostError::Full(_)) => Ok(SendStatus::Dropped),
            Err(PostError::Stopped(_)) => Err(SendError::NotOpen),
        }
    }

    pub(crate) fn next_generation(&mut self) -> u32 {
        self.next_generation = self.next_generation.wrapping_add(1);
        self.next_generation
    }

    /// The connection `id` names, unless it has gone (and its slot perhaps been reused) or
    /// belongs to another loop.
    pub(crate) fn get(&self, id: ConnId) -> Option<&Conn> {
        if self.is_foreign(id) {
            return None;
        }
        self.conns
            .get(id.index())
            .filter(|c| c.generation == id.generation())
    }

    pub(crate) fn get_mut(&mut self, id: ConnId) -> Option<&mut Conn> {
        if self.is_foreign(id) {
            return None;
        }
        lookup(&mut self.conns, id)
    }

    /// The connection and the buffer pool, borrowed together.
    pub(crate) fn conn_and_pool(&mut self, id: ConnId) -> Option<(&mut Conn, &mut BufPool)> {
        if self.is_foreign(id) {
            return None;
        }
        let conn = lookup(&mut self.conns, id)?;
        Some((conn, &mut self.pool))
    }

    /// Accepts the upgrade `request` of connection `id`: queues the 101 and opens the
    /// protocol (see [`Connection::accept`](crate::proto::Connection::accept)).
    pub(crate) fn accept(
        &mut self,
        id: ConnId,
        request: &Request<'_, '_>,
        protocol: Option<&str>,
        headers: &[(String, String)],
    ) -> Option<Accepted> {
        let conn = lookup(&mut self.conns, id)?;
        let out = conn.out.writer(&mut self.pool);
        let accepted = conn.ws.accept(
            out,
            request,
            protocol,
            headers,
            &self.settings,
            Instant::now(),
        );
        conn.opened = true;
        Some(accepted)
    }

    /// Moves the idle deadline of an open connection that is not closing.
    pub(crate) fn set_idle_deadline(&mut self, id: ConnId) {
        let at = self
            .config
            .idle_timeout
            .map_or(super::timers::NEVER, |idle| self.after(idle));
        if let Some(conn) = lookup(&mut self.conns, id) {
            if conn.ready_state() == crate::proto::ReadyState::Open {
                conn.ws.saw_input();
                self.timers.set(id, &mut conn.deadline, at);
            }
        }
    }

    /// Sets the connection's one deadline.
    pub(crate) fn set_deadline(&mut self, id: ConnId, at: Millis) {
        if let Some(conn) = lookup(&mut self.conns, id) {
            self.timers.set(id, &mut conn.deadline, at);
        }
    }

    /// `now + duration`, in loop time.
    pub(crate) fn after(&self, duration: std::time::Duration) -> Millis {
        self.now
            .saturating_add(duration.as_millis().try_into().unwrap_or(Millis::MAX))
    }

    /// Queues the connection for a flush at the end of this turn.
    pub(crate) fn mark_dirty(&mut self, id: ConnId) {
        if let Some(conn) = self.get_mut(id) {
            if !conn.dirty {
                conn.dirty = true;
                self.dirty.push(id);
            }
        }
    }

    /// Makes this turn's message and byte counts visible to scrapes.
    pub(crate) fn publish_traffic(&self) {
        self.stats.received.publish(&self.received);
        self.stats.sent.publish(&self.sent);
    }

    /// Sends one frame on an open connection; see [`SendStatus`].
    pub(crate) fn send(
        &mut self,
        id: ConnId,
        opcode: OpCode,
        payload: &[u8],
    ) -> Result<SendStatus, SendError> {
        if self.is_foreign(id) {
            return self.send_foreign(id, opcode, payload);
        }
        let limit = self.config.backpressure_limit;
        let max_buffered = self.config.max_buffered;
        let conn = lookup(&mut self.conns, id).ok_or(SendError::NotOpen)?;
        let buffered = conn.buffered();
        // Every check comes before compressing (see `Connection::frame_head`).
        conn.ws.check_sendable(opcode, payload.len())?;
        if buffered > max_buffered {
            self.stats.send_drops.inc();
            return Ok(SendStatus::Dropped);
        }
        self.sent.record(opcode, payload.len());
        if let Some(log) = &mut self.access {
            log.sent(id.index(), payload.len());
        }
        if conn.ws.is_client() {
            // A client masks every frame with a fresh key: the payload is copied anyway.
            let out = conn.out.writer(&mut self.pool);
            conn.ws
                .send(out, opcode, payload, &mut self.compressed, &mut self.zlib)?;
        } else {
            let FrameHead {
                header,
                header_len,
                payload,
            } = conn
                .ws
                .frame_head(opcode, payload, &mut self.compressed, &mut self.zlib)?;
            let socket = conn.socket.as_mut().filter(|_| buffered == 0);
            match socket {
                Some(socket) if payload.len() >= DIRECT_WRITE_MIN => {
                    let header = &header[..header_len];
                    // On wss:// the payload is encrypted straight from the caller's memory too.
                    let written = match &mut conn.tls {
                        None => conn
                            .out
                            .write_direct(socket, header, payload, &mut self.pool),
                        Some(tls) => conn.out.write_direct(
                            &mut tls.writer(socket),
                            header,
                            payload,
                            &mut self.pool,
                        ),
                    };
                    if let Err(err) = written {
                        self.failed.push((id, Error::Io(err)));
                        return Err(SendError::NotOpen);
                    }
                }
                _ => conn
                    .out
                    .push_frame(&header[..header_len], payload, &mut self.pool),
            }
        }
        if self.compressed.capacity() > COMPRESSED_CAPACITY_MAX {
            self.compressed = Vec::new();
        }
        let buffered = conn.buffered();
        let over = buffered > limit;
        if over {
            conn.owe_drain = true;
            if !conn.read_paused {
                conn.read_paused = true;
                self.stats.backpressure_pauses.inc();
            }
        }
        if buffered > 0 {
            self.mark_dirty(id);
        }
        Ok(if over {
            SendStatus::Backpressure
        } else {
            SendStatus::Sent
        })
    }

    /// Subscribes an open connection to `topic`; false if it is not open or already subscribed.
    pub(crate) fn subscribe(&mut self, id: ConnId, topic: &str) -> bool {
        if self.is_foreign(id) {
            return false;
        }
        let Some(conn) = lookup(&mut self.conns, id) else {
            return false;
        };
        // Published frames are encoded once, as a server's: unmasked.
        if conn.ws.is_client() {
            return false;
        }
        if !conn
            .ws
            .session()
            .is_some_and(|session| !session.close_sent())
        {
            return false;
        }
        match self.topics.subscribe(topic, id) {
            Some((topic_id, first)) => {
                conn.topics.push(topic_id);
                if first {
                    self.hub.add_interest(topic, self.loop_index);
                }
                true
            }
            None => false,
        }
    }

    /// Takes `id` out of a topic's subscribers, telling the other loops when it was this
    /// loop's last one.
    fn leave(&mut self, topic_id: usize, id: ConnId) -> bool {
        match self.topics.unsubscribe(topic_id, id) {
            Left::NotSubscribed => false,
            Left::Subscribed => true,
            Left::LastSubscriber(name) => {
                self.hub.remove_interest(&name, self.loop_index);
                true
            }
        }
    }

    /// Unsubscribes the connection from `topic`; false if it was not subscribed.
    pub(crate) fn unsubscribe(&mut self, id: ConnId, topic: &str) -> bool {
        if self.is_foreign(id) {
            return false;
        }
        let Some(topic_id) = self.topics.find(topic) else {
            return false;
        };
        let Some(conn) = lookup(&mut self.conns, id) else {
            return false;
        };
        conn.topics.retain(|&t| t != topic_id);
        self.leave(topic_id, id)
    }

    /// Marks the connection as no longer open for the handler: it leaves its topics, and
    /// returns whether `on_close` is still owed ([`Conn::owes_close`]); if so,
    /// the close is counted under `code`, the code `on_close` is about to report.
    pub(crate) fn take_close_report(&mut self, id: ConnId, code: CloseCode) -> bool {
        self.unsubscribe_all(id);
        match self.get_mut(id) {
            Some(conn) if conn.owes_close() => {
                conn.close_reported = true;
                // Counted against `upgrades` (open WebSockets): only what opened.
                if conn.opened {
                    self.stats.closed.inc();
                }
                self.stats.closes[stats::close_slot(code)].inc();
                if let Some(log) = &mut self.access {
                    log.closed(id.index(), code);
                }
                true
            }
            _ => false,
        }
    }

    /// Unsubscribes a connection that is going away from all its topics.
    fn unsubscribe_all(&mut self, id: ConnId) {
        if let Some(conn) = lookup(&mut self.conns, id) {
            for topic_id in std::mem::take(&mut conn.topics) {
                self.leave(topic_id, id);
            }
        }
    }

    /// Sends a message to every open subscriber of `topic` but `exclude`, on this loop and
    /// the others. The frame is built once; every subscriber's queue, here and on the other
    /// loops, holds a reference to it. Loops without subscribers to `topic` are not told.
    pub(crate) fn publish(
        &mut self,
        topic: &str,
        opcode: OpCode,
        payload: &[u8],
        exclude: Option<ConnId>,
    ) -> Published {
        let local = self.topics.find(topic);
        let others = self.hub.interested(topic, Some(self.loop_index));
        self.stats.publishes.inc();
        if local.is_none() && others.is_empty() {
            return Published::default();
        }
        let frame = shared_frame(opcode, payload);
        let mut report = match local {
            Some(topic_id) => self.deliver_to(topic_id, topic, &frame, exclude),
            None => Published::default(),
        };
        if !others.is_empty() {
            let (took, refused) = self.hub.forward(others, topic, &frame, exclude);
            for index in took.iter() {
                report.loops += 1;
                self.wake.insert(index);
            }
            report.loops_full = refused;
        }
        report
    }

    /// Queues a published frame for this loop's subscribers of `topic`. Like every other
    /// reply it goes out at the end of the loop turn, so a subscriber gets one vectored write
    /// per turn however many publishes reached it. (Writing to each subscriber at once, when
    /// its queue is empty, measured 5-6 µs of server CPU per delivery against 0.5-0.7 µs
    /// batched, at 1,000 publishes/s to 1,000 subscribers: BENCHMARKS.md.) Subscribers over
    /// the backpressure limit get the slow-subscriber policy instead.
    pub(crate) fn deliver(
        &mut self,
        topic: &str,
        frame: &SharedFrame,
        exclude: Option<ConnId>,
    ) -> Published {
        match self.topics.find(topic) {
            Some(topic_id) => self.deliver_to(topic_id, topic, frame, exclude),
            None => Published::default(),
        }
    }

    /// [`deliver`](Core::deliver) for a topic already looked up.
    fn deliver_to(
        &mut self,
        topic_id: usize,
        topic: &str,
        frame: &SharedFrame,
        exclude: Option<ConnId>,
    ) -> Published {
        let mut report = Published::default();
        let close_at = self.after(self.config.close_timeout);
        let Core {
            config,
            conns,
            pool,
            timers,
            topics,
            dirty,
            publish_dropped,
            stats,
            access,
            sent,
            ..
        } = self;
        let (opcode, len) = frame_kind(frame);
        for &id in topics.subscribers(topic_id) {
            if Some(id) == exclude {
                continue;
            }
            let Some(conn) = lookup(conns, id) else {
                continue;
            };
            let buffered = conn.buffered();
            let Some(session) = conn.ws.session_mut() else {
                continue;
            };
            if session.close_sent() {
                continue;
            }
            if buffered > config.backpressure_limit {
                match config.slow_subscriber {
                    SlowSubscriber::Drop => {
                        report.dropped += 1;
                        stats.slow_drops.inc();
                        publish_dropped.push((id, topic.to_owned()));
                        continue;
                    }
                    SlowSubscriber::Close(code) => {
                        report.closed += 1;
                        stats.slow_closes.inc();
                        let out = conn.out.writer(pool);
                        let before = out.len();
                        if session.close(out, code, "subscriber too slow").is_ok() {
                            let payload = out.len() - before - 2;
                            sent.record(OpCode::Close, payload);
                            if let Some(log) = access {
                                log.sent(id.index(), payload);
                                log.closing(id.index(), Closer::Server);
                            }
                        }
                        timers.set(id, &mut conn.deadline, close_at);
                    }
                }
            } else {
                report.sent += 1;
                conn.out.push_shared(frame.clone());
                if let Some(log) = access {
                    log.sent(id.index(), len);
                }
            }
            if !conn.out.is_empty() && !conn.dirty {
                conn.dirty = true;
                dirty.push(id);
            }
        }
        if report.sent > 0 {
            stats.deliveries.add(report.sent as u64);
            sent.record_many(opcode, len, report.sent);
        }
        report
    }

    /// Stops reading a connection whose queue is over the backpressure limit, whatever filled
    /// it: replies the handler sent, or the protocol's own pongs to a flood of pings.
    pub(crate) fn pause_if_over_limit(&mut self, id: ConnId) {
        let limit = self.config.backpressure_limit;
        let stats = &self.stats;
        if let Some(conn) = lookup(&mut self.conns, id) {
            if conn.buffered() > limit && !conn.read_paused {
                conn.read_paused = true;
                stats.backpressure_pauses.inc();
            }
        }
    }

    /// Starts the closing handshake on an open connection.
    pub(crate) fn close(
        &mut self,
        id: ConnId,
        code: CloseCode,
        reason: &str,
    ) -> Result<(), SendError> {
        if self.is_foreign(id) {
            let command = Command::Close {
                id,
                code,
                reason: reason.into(),
            };
            return match self.forward(id, command) {
                Ok(()) => Ok(()),
                Err(PostError::Full(_)) => Err(SendError::MailboxFull),
                Err(PostError::Stopped(_)) => Err(SendError::NotOpen),
            };
        }
        let at = self.after(self.config.close_timeout);
        let (conn, pool) = self.conn_and_pool(id).ok_or(SendError::NotOpen)?;
        if conn.ws.is_client() && conn.ws.is_handshaking() {
            // The browser's close() while CONNECTING: "Fail the WebSocket connection", which
            // reports an error and then a close with 1006. Nothing more is read, so a 101
            // arriving later in this turn opens nothing.
            conn.ws.finish();
            conn.out.release(pool);
            let aborted = io::Error::new(
                io::ErrorKind::Interrupted,
                "closed before the connection was established",
            );
            self.failed.push((id, Error::Connect(aborted)));
            return Ok(());
        }
        let header_len = conn.ws.control_header_len();
        let out = conn.out.writer(pool);
        let before = out.len();
        conn.ws.close(out, code, reason)?;
        let payload = out.len() - before - header_len;
        self.sent.record(OpCode::Close, payload);
        if let Some(log) = &mut self.access {
            log.sent(id.index(), payload);
            log.closing(id.index(), Closer::Server);
        }
        self.set_deadline(id, at);
        self.mark_dirty(id);
        Ok(())
    }

    /// Drops the connection without a closing handshake, like `ws`'s `terminate()`: nothing
    /// more is read, what is queued is discarded, and the socket closes at the end of this
    /// turn (`on_close` then reports 1006). Returns false if it was already gone.
    pub(crate) fn terminate(&mut self, id: ConnId) -> bool {
        if self.is_foreign(id) {
            return self.forward(id, Command::Terminate { id }).is_ok();
        }
        let Some((conn, pool)) = self.conn_and_pool(id) else {
            return false;
        };
        if conn.ws.is_finishing() && conn.terminated {
            return false;
        }
        conn.terminated = true;
        conn.ws.finish();
        conn.out.release(pool);
        self.terminated.push(id);
        true
    }

    /// Moves the connection to its last stage: flush what is queued, shut the write side,
    /// wait (bounded) for the peer to close.
    pub(crate) fn finish(&mut self, id: ConnId) {
        let at = self.after(self.config.close_timeout);
        if let Some(conn) = self.get_mut(id) {
            conn.ws.finish();
            self.set_deadline(id, at);
            self.mark_dirty(id);
        }
    }

    /// Writes the connection's queue; afterwards updates interest, resumes paused reading,
    /// and completes the last stage. Returns whether the connection should now be dropped
    /// (the peer is gone and everything is out), and the error if the socket failed.
    pub(crate) fn flush(&mut self, id: ConnId) -> Result<bool, io::Error> {
        let limit = self.config.backpressure_limit;
        let Some(conn) = lookup(&mut self.conns, id) else {
            return Ok(false);
        };
        conn.dirty = false;
        // An outgoing connection's queue (its request) waits for the connect.
        let Some(socket) = conn.socket.as_mut().filter(|_| conn.dial.is_none()) else {
            return Ok(false);
        };
        let empty = match &mut conn.tls {
            None => conn.out.flush(socket, &mut self.pool)?,
            // Emptied only when rustls has written every record too. Handshake messages
            // come with no queued plaintext, and go first: a client's plaintext (its
            // request) waits for the handshake while its ClientHello goes out.
            Some(tls) => {
                let mut writer = tls.writer(socket);
                writer.push()? && conn.out.flush(&mut writer, &mut self.pool)? && writer.push()?
            }
        };
        // Interest changes only when the queue goes from empty to blocked or back.
        if empty == conn.write_blocked {
            conn.write_blocked = !empty;
            let interest = if empty {
                Interest::READABLE
            } else {
                Interest::READABLE | Interest::WRITABLE
            };
            self.registry.reregister(socket, id.token(), interest)?;
        }
        // `buffered()`, field by field: the socket is still borrowed.
        let buffered = conn.out.len() + conn.tls.as_ref().map_or(0, |tls| tls.held());
        if conn.read_paused && buffered <= limit / 2 {
            conn.read_paused = false;
            if conn.unread && !conn.in_ready {
                conn.in_ready = true;
                self.ready.push_back(id);
            }
        }
        if !empty {
            return Ok(false);
        }
        if conn.owe_drain {
            conn.owe_drain = false;
            self.drained.push(id);
        }
        if conn.ws.is_finishing() {
            if !conn.write_shut {
                if let Some(tls) = &mut conn.tls {
                    tls.close_notify(socket);
                }
                conn.write_shut = true;
                // The peer sees EOF after our last bytes; we keep reading until it closes, so
                // that unread input does not turn our close into a reset.
                let _ = socket.shutdown(std::net::Shutdown::Write);
            }
            return Ok(conn.peer_eof);
        }
        Ok(false)
    }
}

/// The opcode and payload length of a server frame built by [`shared_frame`].
fn frame_kind(frame: &[u8]) -> (OpCode, usize) {
    let opcode = OpCode::from_nibble(frame[0] & 0x0F).expect("shared_frame writes a valid opcode");
    let header_len = match frame[1] & 0x7F {
        126 => 4,
        127 => 10,
        _ => 2,
    };
    (opcode, frame.len() - header_len)
}
