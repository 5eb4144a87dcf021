//! One connection's state as the reactor keeps it.

use std::time::Instant;

use mio::net::TcpStream;
use slab::Slab;

use super::outbound::OutQueue;
use super::timers::Deadline;
use super::tls::Tls;
use super::token::ConnId;
use super::topics::TopicId;
use crate::proto::deflate::PerMessageDeflate;
use crate::proto::{ReadyState, Session};

/// Where a connection is in its life.
#[derive(Debug)]
pub(crate) enum Stage {
    /// Reading the opening handshake. `request` holds its bytes only while it is split over
    /// several reads; a request that arrives in one read is parsed where it landed.
    /// `accepted` times the handshake (no larger than the `Open` variant, so free).
    Handshake { request: Vec<u8>, accepted: Instant },
    /// The WebSocket protocol runs: OPEN, or CLOSING while a close frame is awaited.
    Open(Session),
    /// The last bytes (an HTTP answer, a final close frame) are going out; after them the
    /// write side is shut and input is discarded until the peer closes or time runs out.
    Finishing,
}

/// A connection in the slab. Idle, it owns no buffers: the send queue's buffer and a
/// partial message's buffer exist only while there are bytes in them.
#[derive(Debug)]
pub(crate) struct Conn {
    pub(crate) socket: TcpStream,
    pub(crate) generation: u32,
    pub(crate) stage: Stage,
    pub(crate) out: OutQueue,
    /// rustls's state on a wss:// connection; boxed so plain connections pay one pointer.
    pub(crate) tls: Option<Box<Tls>>,
    pub(crate) deadline: Deadline,
    /// permessage-deflate state when negotiated; boxed so connections without it stay small.
    pub(crate) deflate: Option<Box<PerMessageDeflate>>,
    /// The topics it is subscribed to.
    pub(crate) topics: Vec<TopicId>,
    /// `on_open` was called, so `on_close` is owed exactly once.
    pub(crate) opened: bool,
    /// `on_close` was called.
    pub(crate) close_reported: bool,
    /// Over the backpressure limit: not read until the queue drains to half of it.
    pub(crate) read_paused: bool,
    /// The socket may hold input not read yet (the per-wake-up cap or a pause stopped reading).
    pub(crate) unread: bool,
    /// Queued in the loop's list of connections to read again.
    pub(crate) in_ready: bool,
    /// Registered for WRITABLE because the kernel refused bytes.
    pub(crate) write_blocked: bool,
    /// Queued in the loop's list of connections to flush this turn.
    pub(crate) dirty: bool,
    /// A send passed the backpressure limit: `on_drain` is owed when the queue empties.
    pub(crate) owe_drain: bool,
    /// An idle ping is out and unanswered.
    pub(crate) ping_sent: bool,
    /// The write side has been shut down.
    pub(crate) write_shut: bool,
    /// The peer closed its side.
    pub(crate) peer_eof: bool,
    /// The application terminated it; it is dropped at the end of the turn.
    pub(crate) terminated: bool,
}

/// The connection `id` names, unless it has gone (and its slot perhaps been reused): the
/// generation check that keeps a stale id or poll token away from a new connection. A free
/// function so callers can borrow the slab apart from the rest of the loop's state.
pub(crate) fn lookup(conns: &mut Slab<Conn>, id: ConnId) -> Option<&mut Conn> {
    conns
        .get_mut(id.index())
        .filter(|c| c.generation == id.generation())
}

impl Conn {
    pub(crate) fn new(socket: TcpStream, generation: u32, tls: Option<Box<Tls>>) -> Conn {
        Conn {
            socket,
            generation,
            stage: Stage::Handshake {
                request: Vec::new(),
                accepted: Instant::now(),
            },
            out: OutQueue::default(),
            tls,
            deadline: Deadline::default(),
            deflate: None,
            topics: Vec::new(),
            opened: false,
            close_reported: false,
            read_paused: false,
            unread: false,
            in_ready: false,
            write_blocked: false,
            dirty: false,
            owe_drain: false,
            ping_sent: false,
            write_shut: false,
            peer_eof: false,
            terminated: false,
        }
    }

    /// The browser's `bufferedAmount`: plaintext queued, and on a wss:// connection what
    /// rustls accepted and has not all written yet.
    #[inline]
    pub(crate) fn buffered(&self) -> usize {
        self.out.len() + self.tls.as_ref().map_or(0, |tls| tls.held())
    }

    /// The browser's `readyState`.
    pub(crate) fn ready_state(&self) -> ReadyState {
        match &self.stage {
            Stage::Handshake { .. } => ReadyState::Connecting,
            Stage::Open(session) => session.ready_state(),
            Stage::Finishing => ReadyState::Closed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timing_the_handshake_does_not_grow_a_connection() {
        // The handshake's start time fits beside its buffer in the space `Open` takes anyway.
        let handshake = std::mem::size_of::<Vec<u8>>() + std::mem::size_of::<Instant>();
        assert!(handshake <= std::mem::size_of::<Session>());
        assert_eq!(std::mem::size_of::<Stage>(), std::mem::size_of::<Session>());
    }
}
