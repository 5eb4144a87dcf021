//! One client connection: the socket (a non-blocking connect, bound to a source address when
//! asked), TLS over it for wss:// ([`Stream`]), timing (when the connect and the closing
//! handshake started) and counting (the error kind that ended it, with the system's or
//! rustls's reason).
//!
//! The protocol lifecycle lives in wsloop's [`proto::Connection`](Connection), the state
//! machine the server runs too: the upgrade request and the check of the `101` (accept key,
//! extensions), frames in the client role (every frame masked with a fresh key),
//! permessage-deflate both ways (a message that does not inflate fails the connection with a
//! close frame, RFC 7692 section 8), automatic pongs and the closing handshake. This file
//! hands it the bytes it reads and writes out what it queues.
//!
//! The connection knows nothing of load modes: it hands each data message and pong to a
//! [`Handler`] with the connection's [`Traffic`] state, and the worker decides what to send.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::time::Instant;

use mio::net::TcpStream;
use socket2::{Domain, Protocol, Socket, Type};
use wsloop::proto::connection::{Offer, Settings};
use wsloop::proto::deflate::{DeflateConfig, SharedStreams};
use wsloop::proto::{
    random_key, CloseCode, Connection, Event, OpCode, ReadyState, SessionEvent, Status,
};

use crate::stats::ErrorKind;
use crate::target::Target;
use crate::tls::{self, Stream, Tls};
use crate::traffic::Traffic;

/// Largest message accepted from the server; an echo is never larger than what was sent.
pub const MAX_MESSAGE_BYTES: usize = 64 << 20;

/// Where a connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// TCP connect in progress.
    Connecting,
    /// Upgrade request sent (over wss://, queued behind the TLS handshake), waiting for `101`.
    Handshaking,
    /// Messages flow.
    Open,
    /// A close frame has been sent or received; waiting for the TCP connection to end.
    Closing,
}

/// What a readiness event did to a connection.
#[derive(Debug, PartialEq, Eq)]
pub enum Progress {
    /// Nothing that concerns the worker.
    Pending,
    /// The handshake has just completed.
    Opened,
    /// The connection is over; `Some` when it ended in error.
    Finished(Option<ErrorKind>),
}

/// What a readiness event reported for a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    /// Only room to write.
    Writable,
    /// Data to read.
    Readable,
    /// The peer closed its side or the socket has an error: read until the end.
    Closed,
}

/// Receives what the server sends on an open connection.
pub trait Handler {
    /// A complete data message (text or binary), received at `at`.
    fn message(&mut self, traffic: &mut Traffic, text: bool, payload: &[u8], at: Instant);
    /// A pong, received at `at`.
    fn pong(&mut self, traffic: &mut Traffic, payload: &[u8], at: Instant);
}

/// One WebSocket client connection.
#[derive(Debug)]
pub struct Conn {
    stream: Stream,
    /// The TCP connect is in progress; after it, the protocol's state gives the phase.
    connecting: bool,
    /// When the connect started: handshake latency and connect/handshake timeouts.
    pub started: Instant,
    /// When the closing handshake started (close timeout).
    pub closing_since: Option<Instant>,
    /// The protocol, from the upgrade request to the closing handshake.
    connection: Connection,
    /// permessage-deflate's working memory when it was offered; boxed, so connections
    /// without it carry one pointer.
    deflate: Option<Box<Compression>>,
    out: Vec<u8>,
    out_pos: usize,
    /// Why the server ended the connection, kept until the TCP connection ends.
    close_reason: Option<ErrorKind>,
    close_received: bool,
    /// What the system or rustls said of the error that ended the connection, if anything.
    reason: Option<String>,
    /// Mode-specific state: messages in flight, schedule, pings.
    pub traffic: Traffic,
}

/// What [`Connection`] borrows to compress and inflate (its own per-connection state, the
/// negotiated parameters and any kept context, it holds itself).
#[derive(Debug, Default)]
struct Compression {
    /// zlib streams for the directions that keep no context between messages.
    shared: SharedStreams,
    /// An outgoing message's compressed form.
    scratch: Vec<u8>,
}

impl Conn {
    /// Starts a non-blocking connect to `target`, bound to `source` first when given, with
    /// TLS over it when `tls` is given, and queues the upgrade request (offering
    /// permessage-deflate when `deflate`).
    pub fn connect(
        id: u64,
        target: &Target,
        source: Option<IpAddr>,
        deflate: bool,
        tls: Option<&Tls>,
    ) -> io::Result<Conn> {
        let socket = Socket::new(
            Domain::for_address(target.addr),
            Type::STREAM,
            Some(Protocol::TCP),
        )?;
        socket.set_nonblocking(true)?;
        // Latency is the point; Nagle's algorithm would hold back small messages.
        socket.set_nodelay(true)?;
        if let Some(ip) = source {
            defer_port_choice(&socket);
            socket.bind(&SocketAddr::new(ip, 0).into())?;
        }
        match socket.connect(&target.addr.into()) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
            Err(e) => return Err(e),
        }
        let tcp = TcpStream::from_std(socket.into());
        let stream = match tls {
            None => Stream::Plain(tcp),
            Some(tls) => tls.connect(tcp)?,
        };
        let key = random_key();
        let offer = Offer {
            host: &target.host,
            path: &target.path,
            protocols: &[],
            headers: &[],
        };
        let settings = Settings {
            max_message_size: MAX_MESSAGE_BYTES,
            auto_pong: true,
            // Every message compressed, as --deflate says (and as browsers do): no threshold.
            deflate: deflate.then(|| DeflateConfig {
                threshold: 0,
                ..DeflateConfig::default()
            }),
        };
        let mut out = Vec::with_capacity(256);
        let started = Instant::now();
        let connection = Connection::client(&mut out, &offer, key, settings, started);
        Ok(Conn {
            stream,
            connecting: true,
            started,
            closing_since: None,
            connection,
            deflate: deflate.then(Box::default),
            out,
            out_pos: 0,
            close_reason: None,
            close_received: false,
            reason: None,
            traffic: Traffic {
                id,
                ..Traffic::default()
            },
        })
    }

    /// The socket, to register with the event loop.
    pub fn stream(&mut self) -> &mut TcpStream {
        self.stream.tcp()
    }

    pub fn phase(&self) -> Phase {
        if self.connecting {
            return Phase::Connecting;
        }
        match self.connection.ready_state() {
            ReadyState::Connecting => Phase::Handshaking,
            ReadyState::Open => Phase::Open,
            ReadyState::Closing | ReadyState::Closed => Phase::Closing,
        }
    }

    pub fn is_open(&self) -> bool {
        self.phase() == Phase::Open
    }

    /// What the system or rustls said of the error that ended the connection, once.
    pub fn take_reason(&mut self) -> Option<String> {
        self.reason.take()
    }

    /// Handles a readiness event: finishes the connect, reads and decodes what arrived.
    /// Output is not flushed here; the worker queues its sends first and then calls
    /// [`Conn::flush`].
    pub fn on_ready(
        &mut self,
        readiness: Readiness,
        buf: &mut [u8],
        handler: &mut impl Handler,
    ) -> Progress {
        if self.connecting {
            let tcp = self.stream.tcp();
            match tcp.take_error() {
                Ok(Some(e)) | Err(e) => return self.connect_failed(&e),
                Ok(None) => {}
            }
            match tcp.peer_addr() {
                Ok(_) => self.connecting = false,
                Err(e) if e.kind() == io::ErrorKind::NotConnected => return Progress::Pending,
                Err(e) => return self.connect_failed(&e),
            }
        }
        let was_handshaking = self.phase() == Phase::Handshaking;
        if readiness != Readiness::Writable {
            loop {
                match self.stream.read(buf) {
                    Ok(0) => {
                        // The close echo (or anything else queued), on a best-effort basis.
                        let _ = self.flush();
                        return Progress::Finished(self.end_of_stream());
                    }
                    Ok(n) => {
                        let at = Instant::now();
                        if let Err(kind) = self.consume(&mut buf[..n], handler, at) {
                            return Progress::Finished(Some(kind));
                        }
                        // A short read emptied the socket: the read that would only say
                        // so (EAGAIN) is saved, one syscall per wake-up (epoll(7)). More data
                        // raises a new edge; an end of stream must be read to the end.
                        if n < buf.len()
                            && readiness == Readiness::Readable
                            && self.stream.drained()
                        {
                            break;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Progress::Finished(self.read_error(&e)),
                }
            }
        }
        if was_handshaking && self.phase() != Phase::Handshaking {
            Progress::Opened
        } else {
            Progress::Pending
        }
    }

    /// Feeds received bytes to the handshake check or, once open, the frame decoder.
    fn consume(
        &mut self,
        input: &mut [u8],
        handler: &mut impl Handler,
        at: Instant,
    ) -> Result<(), ErrorKind> {
        if !self.connection.is_handshaking() {
            self.frames(input, handler, at);
            return Ok(());
        }
        match self.connection.handle_response(input, at) {
            Ok(Status::Partial) => Ok(()),
            // A malformed answer, another status than 101, a wrong accept key, an extension
            // or subprotocol not offered, or a head that never ends: the reason says which.
            Err(err) => {
                self.reason = Some(format!("handshake: {err}"));
                Err(ErrorKind::HandshakeFailed)
            }
            Ok(Status::Complete((opened, mut rest))) => {
                // Offered: the server must have accepted, or the run measures something
                // other than what was asked for.
                if self.deflate.is_some() && opened.deflate.is_none() {
                    self.reason = Some("handshake: the server declined permessage-deflate".into());
                    return Err(ErrorKind::HandshakeFailed);
                }
                // Frames the server sent right behind its answer.
                self.frames(&mut rest, handler, at);
                Ok(())
            }
        }
    }

    /// Decodes every frame in `input`.
    fn frames(&mut self, input: &mut [u8], handler: &mut impl Handler, at: Instant) {
        // Without permessage-deflate nothing is inflated: empty streams, never used.
        let mut unused = SharedStreams::default();
        let shared = match &mut self.deflate {
            Some(deflate) => &mut deflate.shared,
            None => &mut unused,
        };
        let mut pos = 0;
        while pos < input.len() {
            let (consumed, event) = self
                .connection
                .poll(&mut input[pos..], &mut self.out, shared);
            match event {
                None => {}
                Some(SessionEvent::Frame(Event::Text(text))) => {
                    handler.message(&mut self.traffic, true, text.as_bytes(), at)
                }
                Some(SessionEvent::Frame(Event::Binary(data))) => {
                    handler.message(&mut self.traffic, false, &data, at)
                }
                Some(SessionEvent::Frame(Event::Pong(data))) => {
                    handler.pong(&mut self.traffic, &data, at)
                }
                // The connection has already queued the pong.
                Some(SessionEvent::Frame(Event::Ping(_))) => {}
                Some(SessionEvent::Frame(Event::Close(code, _))) => {
                    // The connection has already queued the echo.
                    self.close_received = true;
                    if self.closing_since.is_none() {
                        // The server closed first: an error unless we asked for it.
                        self.close_reason = Some(match code {
                            Some(code) => ErrorKind::ClosedWithCode(code.0),
                            None => ErrorKind::ClosedWithoutCode,
                        });
                        self.closing_since = Some(at);
                    }
                }
                // The server broke the protocol (a message that does not inflate included):
                // the connection has queued the close frame that says why and reads no more.
                // (A compressed message never comes out of `poll`, which inflates it; it is
                // matched here only to be complete.)
                Some(SessionEvent::Failed(_))
                | Some(SessionEvent::Frame(Event::Compressed { .. })) => {
                    self.close_reason = Some(ErrorKind::ProtocolError);
                    self.closing_since.get_or_insert(at);
                }
            }
            pos += consumed;
        }
    }

    /// The connect failed: its kind, and the system's reason where the kind does not say it.
    fn connect_failed(&mut self, e: &io::Error) -> Progress {
        let kind = connect_error(e);
        self.reason = reason(kind, e);
        Progress::Finished(Some(kind))
    }

    /// The server ended the TCP connection.
    fn end_of_stream(&mut self) -> Option<ErrorKind> {
        let phase = self.phase();
        if phase == Phase::Handshaking && self.stream.tls_handshaking() {
            self.reason = Some("TLS: the connection ended during the TLS handshake".into());
            return Some(ErrorKind::TlsFailed);
        }
        match phase {
            Phase::Connecting => Some(ErrorKind::HandshakeFailed),
            Phase::Handshaking => {
                // A refusal whose body ran to the close, or no answer at all.
                self.reason = Some(format!("handshake: {}", self.connection.handle_eof()));
                Some(ErrorKind::HandshakeFailed)
            }
            Phase::Open => Some(ErrorKind::Dropped),
            Phase::Closing if self.close_received => self.close_reason,
            Phase::Closing => Some(self.close_reason.unwrap_or(ErrorKind::Dropped)),
        }
    }

    /// A read or write failed: the end of the stream, a TLS failure, or another socket error
    /// (with their reasons).
    fn read_error(&mut self, e: &io::Error) -> Option<ErrorKind> {
        if let Some(why) = tls::failure(e) {
            self.reason = Some(why);
            return Some(ErrorKind::TlsFailed);
        }
        match e.kind() {
            io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe => self.end_of_stream(),
            _ => {
                self.reason = reason(ErrorKind::Io, e);
                Some(ErrorKind::Io)
            }
        }
    }

    /// Queues a data message (compressed when permessage-deflate is on); false when the
    /// connection is not open.
    pub fn send(&mut self, opcode: OpCode, payload: &[u8]) -> bool {
        let (mut scratch, mut shared) = (Vec::new(), SharedStreams::default());
        let (scratch, shared) = match &mut self.deflate {
            Some(deflate) => (&mut deflate.scratch, &mut deflate.shared),
            // Nothing is compressed: empty, never used.
            None => (&mut scratch, &mut shared),
        };
        self.connection
            .send(&mut self.out, opcode, payload, scratch, shared)
            .is_ok()
    }

    /// Queues a ping; false when the connection is not open.
    pub fn ping(&mut self, payload: &[u8]) -> bool {
        // Control frames are never compressed.
        self.send(OpCode::Ping, payload)
    }

    /// Starts the closing handshake with 1000 (normal closure), when the connection is open.
    pub fn close(&mut self, at: Instant) {
        // Refused while the handshake goes on and once a close frame was sent (on receiving
        // one, the echo was sent).
        if self
            .connection
            .close(&mut self.out, CloseCode::NORMAL, "load test done")
            .is_ok()
        {
            self.closing_since = Some(at);
        }
    }

    /// Writes queued output until done or the socket is full (the rest goes out on the next
    /// writable event). `Err` ends the connection.
    pub fn flush(&mut self) -> Result<(), Option<ErrorKind>> {
        if self.connecting {
            return Ok(());
        }
        while self.out_pos < self.out.len() {
            match self.stream.write(&self.out[self.out_pos..]) {
                Ok(n) => self.out_pos += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.read_error(&e)),
            }
        }
        self.out.clear();
        self.out_pos = 0;
        // Over TLS, what rustls still holds (its handshake, ciphertext the socket had no
        // room for) goes out as the socket allows.
        if let Err(e) = self.stream.flush_pending() {
            return Err(self.read_error(&e));
        }
        Ok(())
    }
}

/// Lets the kernel pick the source port at connect time, by the whole 4-tuple, instead of at
/// bind time, when any port bound to the address is taken for every destination
/// (IP_BIND_ADDRESS_NO_PORT). Best effort: without it only fewer connections fit.
fn defer_port_choice(socket: &Socket) {
    let on: libc::c_int = 1;
    // SAFETY: a valid socket descriptor, and a pointer to an int of the size given.
    unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

/// What the system said of `e`, for the kinds whose name does not say it all (any other
/// failure to connect, any other socket error).
pub fn reason(kind: ErrorKind, e: &io::Error) -> Option<String> {
    matches!(kind, ErrorKind::ConnectFailed | ErrorKind::Io).then(|| e.to_string())
}

/// Classifies a failed connect.
pub fn connect_error(e: &io::Error) -> ErrorKind {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => ErrorKind::Refused,
        io::ErrorKind::TimedOut => ErrorKind::Timeout,
        _ => ErrorKind::ConnectFailed,
    }
}
