//! The reactor: one thread, one `mio::Poll`, a slab of connections. The only code in wsloop
//! that touches sockets.
//!
//! Each loop turn: wait for readiness (or the next deadline), accept, read every readable
//! connection into the one shared receive buffer until `WouldBlock` or its per-turn cap,
//! hand the frames to the handler, carry out what other loops and threads posted, fire due
//! deadlines, then write each connection's queued replies in one write.
//!
//! A [`Server`] is one loop; a [`Cluster`] runs several, one per thread, that share nothing
//! but the [`hub`](self::hub): mailboxes, connection counts and the topic map.

mod access;
mod app;
mod cluster;
mod command;
mod conn;
mod context;
mod core;
mod dial;
pub(crate) mod hub;
mod input;
mod listen;
mod outbound;
mod remote;
mod shutdown;
pub(crate) mod stats;
mod timers;
mod tls;
mod token;
mod topics;

pub use self::access::TARGET as ACCESS_LOG_TARGET;
pub use self::cluster::{available_cores, Cluster};
pub use self::context::Context;
pub use self::core::{Published, SendStatus};
pub use self::remote::{Remote, RemoteError};
pub use self::shutdown::ShutdownHandle;
pub use self::timers::{Timer, TimerId};
pub use self::token::{ConnId, MAX_LOOPS};

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll};

use self::app::{App, ConnData};
use self::command::Command;
use self::conn::{lookup, Conn};
use self::core::Core;
use self::dial::Connected;
use self::hub::{Hub, Inbox, PostError};
use self::timers::{Due, Millis, NEVER};
use self::tls::Tls;
use self::token::{LISTENER, MAX_INDEX, WAKER};
use crate::client::{ConnectError, ConnectOptions};
use crate::handler::{Error, Handler};
use crate::metrics::Metrics;
use crate::proto::connection::Expired;
use crate::proto::{CloseCode, OpCode, ReadyState};
use crate::Config;

/// Connections accepted per loop turn at most, so a connect flood cannot starve the
/// connections already open.
const ACCEPTS_PER_TURN: usize = 256;
/// Reads of connections still in their TLS handshake per loop turn at most: each can cost a
/// signature (tens of microseconds with ECDSA, a millisecond or more with RSA), so a flood
/// of handshakes must not starve the connections already open. The rest wait a turn.
const TLS_HANDSHAKES_PER_TURN: usize = 32;
/// When a read loop may stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Drain {
    /// A read that returns less than asked for has emptied the socket's receive queue, and
    /// anything arriving later raises a new edge (epoll(7)); this saves the `EAGAIN` read per
    /// wake-up. Not when the peer's FIN or an error came with the event: no new edge follows.
    UntilShortRead,
    /// Read until `WouldBlock`: the state of the socket is not known.
    UntilWouldBlock,
}

/// Commands from other threads carried out per loop turn at most.
const COMMANDS_PER_TURN: usize = 4096;
/// How long accepting pauses when the process is out of file descriptors.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// A WebSocket server on one event loop: bind it, then [`run`](Server::run) it on this
/// thread. [`Cluster`] runs one per core.
///
/// ```no_run
/// let server = wsloop::Server::bind(wsloop::Config::default(), wsloop::Echo)?;
/// println!("listening on ws://{}", server.local_addr());
/// let stop = server.shutdown_handle(); // for another thread or a signal handler
/// server.run()?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Server<H: Handler> {
    poll: Poll,
    listener: Option<TcpListener>,
    local_addr: SocketAddr,
    core: Core,
    app: App<H>,
    /// The one receive buffer every connection is read into.
    read_buf: Vec<u8>,
    /// Hand accepted connections to the least-loaded loop ([`Accept::Balanced`](crate::Accept)).
    balanced: bool,
    /// What other loops and threads posted for this loop.
    inbox: Inbox,
    /// Commands may be waiting in the inbox.
    commands_pending: bool,
    started: Instant,
    accept_resume_at: Option<Millis>,
    accept_pending: bool,
    /// Reads of TLS handshakes this turn may still do ([`TLS_HANDSHAKES_PER_TURN`]).
    tls_handshakes_left: usize,
    /// Set once shutdown has begun: when the loop gives up waiting for closes.
    shutdown_deadline: Option<Millis>,
}

impl<H: Handler> Server<H> {
    /// Binds the listening socket of `config.listen`.
    pub fn bind(config: Config, handler: H) -> io::Result<Server<H>> {
        config.validate().map_err(invalid_config)?;
        let listener = listen::bind(config.listen, config.backlog, false)?;
        Server::single(config, handler, Some(listener))
    }

    /// A loop with no listening socket, for outgoing connections only ([`Server::connect`],
    /// [`Context::connect`]): a client program. `config.listen` is not used.
    pub fn without_listener(config: Config, handler: H) -> io::Result<Server<H>> {
        config.validate().map_err(invalid_config)?;
        Server::single(config, handler, None)
    }

    /// The one loop of a server that is not a [`Cluster`].
    fn single(config: Config, handler: H, listener: Option<TcpListener>) -> io::Result<Server<H>> {
        let poll = Poll::new()?;
        let (hub, inboxes) = Hub::new(
            std::slice::from_ref(&poll),
            config.mailbox_capacity,
            config.max_connections,
        )?;
        let inbox = inboxes.into_iter().next().expect("one inbox per loop");
        Server::new_loop(config, handler, hub, 0, inbox, poll, listener)
    }

    /// Builds loop `loop_index` of the hub's loops, with `poll` (whose waker the hub holds)
    /// and, if it accepts, its listener.
    fn new_loop(
        config: Config,
        handler: H,
        hub: Arc<Hub>,
        loop_index: usize,
        inbox: Inbox,
        poll: Poll,
        listener: Option<TcpListener>,
    ) -> io::Result<Server<H>> {
        let mut listener = listener;
        let local_addr = match &mut listener {
            Some(listener) => {
                poll.registry()
                    .register(listener, LISTENER, Interest::READABLE)?;
                listener.local_addr()?
            }
            None => config.listen,
        };
        let registry = poll.registry().try_clone()?;
        // A wss:// record is decrypted only once it is whole in this buffer.
        let least = match config.tls {
            Some(_) => tls::MIN_READ_BUFFER,
            None => 1024,
        };
        let read_buf = vec![0; config.read_buffer_size.max(least)];
        let balanced = config.accept == crate::Accept::Balanced && hub.loops() > 1;
        Ok(Server {
            poll,
            listener,
            local_addr,
            core: Core::new(config, registry, hub, loop_index),
            app: App::new(handler),
            read_buf,
            balanced,
            inbox,
            commands_pending: false,
            started: Instant::now(),
            accept_resume_at: None,
            accept_pending: false,
            tls_handshakes_left: TLS_HANDSHAKES_PER_TURN,
            shutdown_deadline: None,
        })
    }

    /// The address the server listens on (useful after binding port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// A handle that stops the server from any thread: it stops accepting, sends close 1001
    /// to every open connection, waits (up to the close timeout) for them, and `run` returns.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle::new(self.core.hub.clone())
    }

    /// A handle to send and publish from other threads.
    pub fn remote(&self) -> Remote {
        Remote::new(self.core.hub.clone())
    }

    /// The server's figures, for `/metrics` or a dashboard.
    pub fn metrics(&self) -> Metrics {
        Metrics::new(self.core.hub.clone())
    }

    /// Opens an outgoing connection before the loop runs (from inside it, use
    /// [`Context::connect`]): its events come to this server's handler once `run` starts.
    pub fn connect(&mut self, url: &str, options: &ConnectOptions) -> Result<ConnId, ConnectError> {
        self.core.connect(url, options)
    }

    /// The handler, e.g. to read what it gathered after `run` returned.
    pub fn handler(&self) -> &H {
        &self.app.handler
    }

    /// The handler, to hand it what exists only once the server does (its
    /// [`shutdown_handle`](Server::shutdown_handle), say).
    pub fn handler_mut(&mut self) -> &mut H {
        &mut self.app.handler
    }

    /// Runs the loop until a shutdown completes.
    pub fn run(mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        let _on_loop = LoopThread::enter();
        let mut ctx = Context::new(&mut self.core, &mut self.app.data);
        self.app.handler.on_start(&mut ctx);
        // What on_start published to other loops must not wait for this loop's first event.
        self.wake_loops();
        loop {
            let timeout = self.poll_timeout();
            if let Err(err) = self.poll.poll(&mut events, timeout) {
                if err.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(err);
            }
            let woke = Instant::now();
            self.tls_handshakes_left = TLS_HANDSHAKES_PER_TURN;
            self.core.now = woke.duration_since(self.started).as_millis() as Millis;
            let mut event_count = 0;
            for event in events.iter() {
                event_count += 1;
                match event.token() {
                    // While accepting is paused for want of descriptors, new arrivals wait in
                    // the backlog until the pause ends.
                    LISTENER if self.accept_resume_at.is_none() => self.accept(),
                    LISTENER => {}
                    WAKER => self.commands_pending = true,
                    token => {
                        let Some(id) = ConnId::from_token(token) else {
                            continue;
                        };
                        if self.core.get(id).is_some_and(|conn| conn.dial.is_some()) {
                            self.on_connect_event(id);
                            continue;
                        }
                        if event.is_writable() {
                            self.flush(id);
                        }
                        if event.is_read_closed() || event.is_error() {
                            self.read(id, Drain::UntilWouldBlock);
                        } else if event.is_readable() {
                            self.read(id, Drain::UntilShortRead);
                        }
                    }
                }
            }
            if self.core.hub.shutdown_requested() && self.shutdown_deadline.is_none() {
                self.begin_shutdown();
            }
            if self.commands_pending {
                self.run_commands();
            }
            self.read_ready();
            if self.accept_pending || self.accept_resume_at.is_some_and(|at| at <= self.core.now) {
                self.accept_resume_at = None;
                self.accept();
            }
            self.fire_deadlines();
            self.flush_dirty();
            self.settle_failures();
            self.wake_loops();
            self.core.publish_traffic();
            self.core.stats.events_per_turn.observe(event_count);
            self.core.stats.turn_ns.observe_duration(woke.elapsed());
            if let Some(deadline) = self.shutdown_deadline {
                if self.core.conns.is_empty() {
                    return Ok(());
                }
                if self.core.now >= deadline {
                    let ids: Vec<ConnId> = self.ids().collect();
                    for id in ids {
                        self.drop_conn(id, Some(Error::Timeout));
                    }
                    return Ok(());
                }
            }
        }
    }

    /// How long the next poll may wait: not past the next deadline, and not at all when
    /// connections still have input to read or the handler is owed events (a queue that
    /// drained during the last flush of a turn owes `on_drain` with no socket event to come).
    fn poll_timeout(&self) -> Option<Duration> {
        let core = &self.core;
        let owed = !core.drained.is_empty()
            || !core.failed.is_empty()
            || !core.terminated.is_empty()
            || !core.publish_dropped.is_empty();
        if !core.ready.is_empty() || self.accept_pending || self.commands_pending || owed {
            return Some(Duration::ZERO);
        }
        let now = self.started.elapsed().as_millis() as Millis;
        let wake = [
            self.core.timers.next_wake(),
            self.accept_resume_at,
            self.shutdown_deadline,
        ]
        .into_iter()
        .flatten()
        .min()?;
        Some(Duration::from_millis(wake.saturating_sub(now)))
    }

    /// Carries out what other loops and threads posted, a bounded number per turn.
    fn run_commands(&mut self) {
        self.commands_pending = false;
        for _ in 0..COMMANDS_PER_TURN {
            let Ok(command) = self.inbox.try_recv() else {
                return;
            };
            match command {
                Command::Deliver {
                    topic,
                    frame,
                    exclude,
                } => {
                    self.core.deliver(&topic, &frame, exclude);
                }
                Command::Send {
                    id,
                    opcode,
                    payload,
                } => {
                    let _ = self.core.send(id, opcode, &payload);
                }
                Command::Close { id, code, reason } => {
                    let _ = self.core.close(id, code, &reason);
                }
                Command::Terminate { id } => {
                    self.core.terminate(id);
                }
                // Jobs come from threads that know nothing of the handler's data type.
                Command::Run(job) => {
                    job(&mut Context::new(&mut self.core, &mut ConnData::default()))
                }
                Command::Adopt { stream, addr } if self.shutdown_deadline.is_none() => {
                    self.admit(stream, addr);
                }
                // Shutting down: the connection is refused like any arriving now.
                Command::Adopt { .. } => self.core.hub.release(self.core.loop_index),
                Command::Resolved { id, addrs } => self.core.resolved(id, addrs),
            }
        }
        self.commands_pending = true;
    }

    /// Wakes the loops this turn posted commands to, once each.
    fn wake_loops(&mut self) {
        for index in self.core.wake.take().iter() {
            self.core.hub.wake(index);
        }
    }

    fn ids(&self) -> impl Iterator<Item = ConnId> + '_ {
        self.core
            .conns
            .iter()
            .map(|(index, conn)| self.core.id(index, conn.generation))
    }

    fn accept(&mut self) {
        self.accept_pending = false;
        for _ in 0..ACCEPTS_PER_TURN {
            let Some(listener) = &self.listener else {
                return;
            };
            match listener.accept() {
                Ok((stream, addr)) => self.place(stream, addr),
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => return,
                Err(err) if is_out_of_descriptors(&err) => {
                    log::warn!("accept paused for {ACCEPT_BACKOFF:?}: {err}");
                    self.accept_resume_at =
                        Some(self.core.now + ACCEPT_BACKOFF.as_millis() as Millis);
                    return;
                }
                // A connection reset before it was accepted, and the like: try the next one.
                Err(err) => log::debug!("accept: {err}"),
            }
        }
        self.accept_pending = true;
    }

    /// Decides which loop takes a connection just accepted: this one, or (balanced) the one
    /// holding the fewest; turns it away when the server is full.
    fn place(&mut self, mut stream: TcpStream, addr: SocketAddr) {
        let hub = self.core.hub.clone();
        let here = self.core.loop_index;
        let target = if self.balanced {
            hub.least_loaded()
        } else {
            here
        };
        if !hub.reserve(target) {
            log::debug!(
                "{addr}: refused, {} connections open",
                self.core.config.max_connections
            );
            self.core.stats.http_response(503);
            let mut response = Vec::new();
            crate::proto::handshake::write_response(
                &mut response,
                503,
                &[],
                b"too many connections\n",
            );
            // Best effort on a fresh socket with an empty send buffer; then it is dropped. A
            // wss:// client expects a TLS handshake, not HTTP: it gets the closed socket alone.
            if self.core.config.tls.is_none() {
                let _ = stream.write(&response);
            }
            return;
        }
        if target == here {
            return self.admit(stream, addr);
        }
        match hub.post(target, Command::Adopt { stream, addr }) {
            Ok(()) => self.core.wake.insert(target),
            // That loop is swamped (or gone): this one takes the connection after all.
            Err(PostError::Full(Command::Adopt { stream, addr }))
            | Err(PostError::Stopped(Command::Adopt { stream, addr })) => {
                hub.move_reservation(target, here);
                self.admit(stream, addr);
            }
            Err(_) => unreachable!("post gives back the command it was given"),
        }
    }

    /// Takes a new connection, already counted for this loop, into the slab.
    fn admit(&mut self, mut stream: TcpStream, addr: SocketAddr) {
        if let Err(err) = stream.set_nodelay(true) {
            log::debug!("{addr}: set_nodelay: {err}");
        }
        let tls = match &self.core.config.tls {
            None => None,
            Some(config) => match Tls::new(config) {
                Ok(tls) => Some(Box::new(tls)),
                Err(err) => {
                    log::warn!("{addr}: refused: TLS: {err}");
                    self.core.hub.release(self.core.loop_index);
                    return;
                }
            },
        };
        let generation = self.core.next_generation();
        let index = self.core.conns.vacant_key();
        let id = self.core.id(index, generation);
        if index >= MAX_INDEX {
            log::warn!("{addr}: refused: this loop holds the most connections an id can name");
            self.core.hub.release(self.core.loop_index);
            return;
        }
        if let Err(err) = self
            .core
            .registry
            .register(&mut stream, id.token(), Interest::READABLE)
        {
            log::warn!("{addr}: register: {err}");
            self.core.hub.release(self.core.loop_index);
            return;
        }
        self.core.conns.insert(Conn::new(stream, generation, tls));
        self.core.stats.accepted.inc();
        if let Some(log) = &mut self.core.access {
            log.open(index, addr);
        }
        let at = self.core.after(self.core.config.handshake_timeout);
        self.core.set_deadline(id, at);
    }

    /// Reads connection `id` until it is drained, its per-turn cap, or a backpressure pause.
    fn read(&mut self, id: ConnId, drain: Drain) {
        let max_reads = self.core.config.max_reads_per_wakeup.max(1);
        for _ in 0..max_reads {
            let Some(conn) = self.core.get_mut(id) else {
                return;
            };
            if conn.read_paused {
                conn.unread = true;
                return;
            }
            let Some(socket) = conn.socket.as_mut() else {
                return;
            };
            let mut tls_out = false;
            let result = match &mut conn.tls {
                None => socket.read(&mut self.read_buf),
                Some(tls) => {
                    // A server without TLS of its own sized its buffer for plain reads.
                    if self.read_buf.len() < tls::MIN_READ_BUFFER {
                        self.read_buf.resize(tls::MIN_READ_BUFFER, 0);
                    }
                    if tls.is_handshaking() {
                        if self.tls_handshakes_left == 0 {
                            conn.unread = true;
                            self.core.stats.tls_handshakes_deferred.inc();
                            break;
                        }
                        self.tls_handshakes_left -= 1;
                    }
                    let result = tls.read(socket, &mut self.read_buf);
                    // Handshake messages (or an alert) to send, with no plaintext queued.
                    tls_out = tls.wants_write();
                    result
                }
            };
            if tls_out {
                self.core.mark_dirty(id);
            }
            let Some(conn) = self.core.get_mut(id) else {
                return;
            };
            match result {
                Ok(0) => {
                    conn.unread = false;
                    self.on_eof(id);
                    return;
                }
                Ok(n) => {
                    // Plaintext from rustls says nothing of what the socket still holds.
                    let short = n < self.read_buf.len() && conn.tls.is_none();
                    input::on_input(&mut self.core, &mut self.app, id, &mut self.read_buf[..n]);
                    self.core.pause_if_over_limit(id);
                    if short && drain == Drain::UntilShortRead {
                        if let Some(conn) = self.core.get_mut(id) {
                            conn.unread = false;
                        }
                        return;
                    }
                }
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                    conn.unread = false;
                    return;
                }
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => {
                    self.drop_conn(id, Some(Error::Io(err)));
                    return;
                }
            }
        }
        // Cap reached (or the turn's TLS handshakes): the rest waits for the next turn, after
        // the other connections.
        if let Some(conn) = self.core.get_mut(id) {
            conn.unread = true;
            if !conn.in_ready {
                conn.in_ready = true;
                self.core.ready.push_back(id);
            }
        }
    }

    /// Reads again the connections that had input left at the end of the last turn.
    fn read_ready(&mut self) {
        for _ in 0..self.core.ready.len() {
            let Some(id) = self.core.ready.pop_front() else {
                break;
            };
            if let Some(conn) = self.core.get_mut(id) {
                conn.in_ready = false;
                self.read(id, Drain::UntilWouldBlock);
            }
        }
    }

    /// The peer closed its side.
    fn on_eof(&mut self, id: ConnId) {
        let Some(conn) = self.core.get_mut(id) else {
            return;
        };
        conn.peer_eof = true;
        if conn.ws.is_client() && conn.ws.is_handshaking() {
            let err = conn.ws.handle_eof();
            input::refused(&mut self.core, &mut self.app, id, err);
        } else if conn.ws.is_handshaking() {
            self.drop_conn(id, None);
        } else if !conn.ws.is_finishing() {
            // No close frame came: report 1006, send what is still queued, then drop.
            self.report_close(id, CloseCode::ABNORMAL, "");
            self.core.finish(id);
        } else if conn.write_shut {
            self.drop_conn(id, None);
        }
    }

    /// A readiness event on an outgoing connection's socket that is still connecting.
    fn on_connect_event(&mut self, id: ConnId) {
        match self.core.on_connect_event(id) {
            Connected::Yes | Connected::Pending => {}
            Connected::Failed(err) => self.drop_conn(id, Some(err)),
        }
    }

    fn flush(&mut self, id: ConnId) {
        match self.core.flush(id) {
            Ok(true) => self.drop_conn(id, None),
            Ok(false) => {}
            Err(err) => self.drop_conn(id, Some(Error::Io(err))),
        }
    }

    /// Writes every connection that queued bytes this turn: one write each.
    fn flush_dirty(&mut self) {
        let mut dirty = std::mem::take(&mut self.core.dirty);
        for id in dirty.drain(..) {
            self.flush(id);
        }
        // Keep the list's allocation; flushing never queues more.
        if self.core.dirty.is_empty() {
            self.core.dirty = dirty;
        }
    }

    /// Drops connections whose socket failed during a send, and tells the handler about
    /// queues that drained.
    fn settle_failures(&mut self) {
        while let Some(id) = self.core.terminated.pop() {
            self.drop_conn(id, None);
        }
        while let Some((id, err)) = self.core.failed.pop() {
            self.drop_conn(id, Some(err));
        }
        for (id, topic) in std::mem::take(&mut self.core.publish_dropped) {
            let mut ctx = Context::new(&mut self.core, &mut self.app.data);
            self.app.handler.on_publish_dropped(&mut ctx, id, &topic);
        }
        while let Some(id) = self.core.drained.pop() {
            if self
                .core
                .get(id)
                .is_some_and(|c| c.ready_state() == ReadyState::Open)
            {
                let mut ctx = Context::new(&mut self.core, &mut self.app.data);
                self.app.handler.on_drain(&mut ctx, id);
            }
        }
        // on_drain may have sent more.
        if !self.core.dirty.is_empty() {
            self.flush_dirty();
        }
    }

    fn fire_deadlines(&mut self) {
        let now = self.core.now;
        while let Some((popped_at, due)) = self.core.timers.pop_due(now) {
            let id = match due {
                Due::Conn(id) => id,
                Due::Timer(timer) => {
                    self.fire_timer(timer, popped_at);
                    continue;
                }
            };
            let Some(conn) = lookup(&mut self.core.conns, id) else {
                continue;
            };
            if self
                .core
                .timers
                .settle(id, &mut conn.deadline, popped_at, now)
            {
                self.on_deadline(id);
            }
        }
    }

    /// An application timer came due: the handler hears of it, unless it belongs to a
    /// connection that is no longer open (then it is dropped).
    fn fire_timer(&mut self, timer: TimerId, popped_at: Millis) {
        let Some(timer) = self.core.timers.fire(timer, popped_at, self.core.now) else {
            return;
        };
        if let Some(conn) = timer.conn {
            if self.core.get(conn).map(|c| c.ready_state()) != Some(ReadyState::Open) {
                self.core.timers.clear(timer.id);
                return;
            }
        }
        let mut ctx = Context::new(&mut self.core, &mut self.app.data);
        self.app.handler.on_timer(&mut ctx, timer);
    }

    /// The connection's deadline passed: what that means depends on its stage.
    fn on_deadline(&mut self, id: ConnId) {
        let Some(conn) = self.core.get_mut(id) else {
            return;
        };
        if conn.dial.is_some() {
            let err = io::Error::new(io::ErrorKind::TimedOut, "connect timed out");
            return self.drop_conn(id, Some(Error::Connect(err)));
        }
        match conn.ws.expire() {
            // The application is owed an error for its own connection.
            Expired::Handshake if conn.ws.is_client() => {
                self.drop_conn(id, Some(Error::Timeout));
            }
            Expired::Handshake => {
                self.core.stats.errors[stats::HANDSHAKE_TIMEOUT].inc();
                self.drop_conn(id, None);
            }
            Expired::Idle => {
                // Ask the peer whether it is still there.
                let _ = self.core.send(id, OpCode::Ping, b"");
                let at = self
                    .core
                    .config
                    .idle_timeout
                    .map_or(NEVER, |idle| self.core.after(idle));
                self.core.set_deadline(id, at);
            }
            Expired::Gone => self.drop_conn(id, Some(Error::Timeout)),
        }
    }

    fn begin_shutdown(&mut self) {
        log::info!(
            "shutting down: closing {} connections",
            self.core.conns.len()
        );
        if let Some(mut listener) = self.listener.take() {
            let _ = self.core.registry.deregister(&mut listener);
        }
        self.accept_pending = false;
        self.accept_resume_at = None;
        let ids: Vec<ConnId> = self.ids().collect();
        for id in ids {
            match self.core.get(id).map(|c| c.ready_state()) {
                Some(ReadyState::Connecting) => self.drop_conn(id, None),
                Some(ReadyState::Open) => {
                    let _ = self
                        .core
                        .close(id, CloseCode::GOING_AWAY, "server shutting down");
                }
                _ => {}
            }
        }
        self.shutdown_deadline = Some(self.core.after(self.core.config.close_timeout));
    }

    fn report_close(&mut self, id: ConnId, code: CloseCode, reason: &str) {
        if self.core.take_close_report(id, code) {
            let mut ctx = Context::new(&mut self.core, &mut self.app.data);
            self.app.handler.on_close(&mut ctx, id, code, reason);
        }
    }

    /// Removes the connection and closes its socket; the handler hears of it if it was open.
    fn drop_conn(&mut self, id: ConnId, err: Option<Error>) {
        let Some(conn) = self.core.get(id) else {
            return;
        };
        if let Some(err) = &err {
            log::debug!("{id}: dropped: {err}");
            self.core.stats.errors[stats::error_slot(err)].inc();
            if conn.owes_close() {
                let mut ctx = Context::new(&mut self.core, &mut self.app.data);
                self.app.handler.on_error(&mut ctx, id, err);
            }
        }
        self.report_close(id, CloseCode::ABNORMAL, "");
        if let Some(log) = &mut self.core.access {
            log.finish(id.index());
        }
        let mut conn = self.core.conns.remove(id.index());
        self.app.data.clear(id.index());
        if let Some(socket) = &mut conn.socket {
            let _ = self.core.registry.deregister(socket);
        }
        conn.out.release(&mut self.core.pool);
        self.core.hub.release(self.core.loop_index);
    }
}

// The loop runs on whatever thread the server is moved to after binding.
const _: () = {
    fn send<T: Send>() {}
    let _ = send::<Server<crate::Echo>>;
};

std::thread_local! {
    /// Set on a thread while it runs a loop, so that a call that would wait for a loop
    /// ([`Remote::connect`]) refuses instead of waiting for itself.
    static ON_LOOP_THREAD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Marks this thread as running a loop until dropped.
struct LoopThread;

impl LoopThread {
    fn enter() -> LoopThread {
        ON_LOOP_THREAD.with(|on| on.set(true));
        LoopThread
    }
}

impl Drop for LoopThread {
    fn drop(&mut self) {
        ON_LOOP_THREAD.with(|on| on.set(false));
    }
}

/// Whether this thread runs a loop.
fn on_loop_thread() -> bool {
    ON_LOOP_THREAD.with(std::cell::Cell::get)
}

/// A config that [`Config::validate`] refused, as the error `bind` returns.
fn invalid_config(reason: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, reason)
}

/// EMFILE, ENFILE, ENOBUFS, ENOMEM: accepting again at once would fail again.
fn is_out_of_descriptors(err: &io::Error) -> bool {
    matches!(
        err.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}
