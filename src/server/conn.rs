//! One connection's state as the reactor keeps it.

use std::time::Instant;

use mio::net::TcpStream;
use slab::Slab;

use super::dial::Dial;
use super::outbound::OutQueue;
use super::timers::Deadline;
use super::tls::Tls;
use super::token::ConnId;
use super::topics::TopicId;
use crate::proto::{Connection, ReadyState};

/// A connection in the slab. Idle, it owns no buffers: the send queue's buffer and a
/// partial message's buffer exist only while there are bytes in them.
#[derive(Debug)]
pub(crate) struct Conn {
    /// `None` only while an outgoing connection's host name resolves.
    pub(crate) socket: Option<TcpStream>,
    pub(crate) generation: u32,
    /// The WebSocket protocol's state, from the request to the last bytes.
    pub(crate) ws: Connection,
    pub(crate) out: OutQueue,
    /// rustls's state on a wss:// connection; boxed so plain connections pay one pointer.
    pub(crate) tls: Option<Box<Tls>>,
    /// An outgoing connection until its TCP connect is done; boxed, and dropped then, so
    /// the server's connections pay one pointer for it.
    pub(crate) dial: Option<Box<Dial>>,
    pub(crate) deadline: Deadline,
    /// The topics it is subscribed to.
    pub(crate) topics: Vec<TopicId>,
    /// `on_open` was called.
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
    /// A connection the listener accepted.
    pub(crate) fn new(socket: TcpStream, generation: u32, tls: Option<Box<Tls>>) -> Conn {
        Conn::with(
            Some(socket),
            generation,
            Connection::server(Instant::now()),
            OutQueue::default(),
            tls,
            None,
        )
    }

    /// An outgoing connection: `ws` is the client's connection whose request waits in
    /// `out`, `dial` where to connect; the application holds its id from the start.
    pub(crate) fn client(
        generation: u32,
        ws: Connection,
        out: OutQueue,
        tls: Option<Box<Tls>>,
        dial: Box<Dial>,
    ) -> Conn {
        Conn::with(None, generation, ws, out, tls, Some(dial))
    }

    fn with(
        socket: Option<TcpStream>,
        generation: u32,
        ws: Connection,
        out: OutQueue,
        tls: Option<Box<Tls>>,
        dial: Option<Box<Dial>>,
    ) -> Conn {
        Conn {
            socket,
            generation,
            ws,
            out,
            tls,
            dial,
            deadline: Deadline::default(),
            topics: Vec::new(),
            opened: false,
            close_reported: false,
            read_paused: false,
            unread: false,
            in_ready: false,
            write_blocked: false,
            dirty: false,
            owe_drain: false,
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

    /// Whether `on_close` is still owed: exactly once for every connection the application
    /// knows, those `on_open` was called for and the outgoing ones `connect` gave an id to.
    pub(crate) fn owes_close(&self) -> bool {
        (self.opened || self.ws.is_client()) && !self.close_reported
    }

    /// The browser's `readyState`: CLOSED from `on_close` on, and CLOSING while a failed or
    /// terminated connection waits for the end of the turn to report it.
    pub(crate) fn ready_state(&self) -> ReadyState {
        if self.close_reported {
            return ReadyState::Closed;
        }
        match self.ws.ready_state() {
            ReadyState::Closed if self.owes_close() => ReadyState::Closing,
            state => state,
        }
    }
}
