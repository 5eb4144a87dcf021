//! One client connection's state machine: non-blocking connect, the TLS handshake (wss://),
//! the opening handshake, then frames through wsloop's [`Session`] in the client role (every
//! frame masked with a fresh key), and the closing handshake.
//!
//! The connection knows nothing of load modes: it hands each data message and pong to a
//! [`Handler`] with the connection's [`Traffic`] state, and the worker decides what to send.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::time::Instant;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use mio::net::TcpStream;
use socket2::{Domain, Protocol, Socket, Type};
use wsloop::proto::deflate::{parse_response, DeflateConfig, SharedStreams, CLIENT_OFFER};
use wsloop::proto::handshake::client::{check_response, write_request};
use wsloop::proto::{
    random_mask, CloseCode, Event, OpCode, PerMessageDeflate, Role, Session, SessionEvent, Status,
};

use crate::stats::ErrorKind;
use crate::target::Target;
use crate::tls::{self, Stream, Tls};
use crate::traffic::Traffic;

/// Largest server handshake answer accepted; a 101 is a few hundred bytes.
const MAX_RESPONSE_BYTES: usize = 16 << 10;
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
    phase: Phase,
    /// When the connect started: handshake latency and connect/handshake timeouts.
    pub started: Instant,
    /// When the closing handshake started (close timeout).
    pub closing_since: Option<Instant>,
    key: String,
    response: Vec<u8>,
    session: Session,
    /// permessage-deflate, when it was offered (`Some` but no state yet until the answer).
    deflate: Option<Deflate>,
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

impl Conn {
    /// Starts a non-blocking connect to `target`, bound to `source` first when given, with
    /// TLS over it when `tls` is given.
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
        let key = {
            let mut raw = [0u8; 16];
            for chunk in raw.chunks_mut(4) {
                chunk.copy_from_slice(&random_mask());
            }
            BASE64.encode(raw)
        };
        let mut request = Vec::with_capacity(256);
        let offer: &[(&str, &str)] = if deflate {
            &[("Sec-WebSocket-Extensions", CLIENT_OFFER)]
        } else {
            &[]
        };
        write_request(&mut request, &target.host, &target.path, &key, offer);
        let tcp = TcpStream::from_std(socket.into());
        let stream = match tls {
            None => Stream::Plain(tcp),
            Some(tls) => tls.connect(tcp)?,
        };
        Ok(Conn {
            stream,
            phase: Phase::Connecting,
            started: Instant::now(),
            closing_since: None,
            key,
            response: Vec::new(),
            session: Session::new(Role::Client, MAX_MESSAGE_BYTES),
            deflate: deflate.then(Deflate::default),
            out: request,
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
        self.phase
    }

    pub fn is_open(&self) -> bool {
        self.phase == Phase::Open
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
        if self.phase == Phase::Connecting {
            let tcp = self.stream.tcp();
            match tcp.take_error() {
                Ok(Some(e)) | Err(e) => return self.connect_failed(&e),
                Ok(None) => {}
            }
            match tcp.peer_addr() {
                Ok(_) => self.phase = Phase::Handshaking,
                Err(e) if e.kind() == io::ErrorKind::NotConnected => return Progress::Pending,
                Err(e) => return self.connect_failed(&e),
            }
        }
        let was_handshaking = self.phase == Phase::Handshaking;
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
        if was_handshaking && self.phase != Phase::Handshaking {
            Progress::Opened
        } else {
            Progress::Pending
        }
    }

    /// Feeds received bytes to the handshake check or the session.
    fn consume(
        &mut self,
        input: &mut [u8],
        handler: &mut impl Handler,
        at: Instant,
    ) -> Result<(), ErrorKind> {
        if self.phase == Phase::Handshaking {
            self.response.extend_from_slice(input);
            match check_response(&self.response, &self.key) {
                Ok(Status::Partial) if self.response.len() > MAX_RESPONSE_BYTES => {
                    return Err(ErrorKind::HandshakeFailed)
                }
                Ok(Status::Partial) => return Ok(()),
                // A malformed answer, another status than 101, or a wrong accept key.
                Err(_) => return Err(ErrorKind::HandshakeFailed),
                Ok(Status::Complete(len)) => {
                    if let Some(deflate) = &mut self.deflate {
                        // Offered: the server must have accepted, or the run measures
                        // something other than what was asked for.
                        let params = extensions_answer(&self.response[..len])
                            .and_then(|value| parse_response(&value))
                            .ok_or(ErrorKind::HandshakeFailed)?;
                        deflate.state = Some(PerMessageDeflate::new(
                            Role::Client,
                            params,
                            &DeflateConfig::default(),
                        ));
                        self.session.receiver_mut().allow_compressed(true);
                    }
                    self.phase = Phase::Open;
                    // Frames the server sent right behind its answer.
                    let mut rest = std::mem::take(&mut self.response);
                    self.frames(&mut rest[len..], handler, at);
                }
            }
            return Ok(());
        }
        self.frames(input, handler, at);
        Ok(())
    }

    /// Decodes every frame in `input`.
    fn frames(&mut self, input: &mut [u8], handler: &mut impl Handler, at: Instant) {
        let mut pos = 0;
        while pos < input.len() {
            let (consumed, event) = self.session.poll(&mut input[pos..], &mut self.out);
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
                // The session has already queued the pong.
                Some(SessionEvent::Frame(Event::Ping(_))) => {}
                Some(SessionEvent::Frame(Event::Close(code, _))) => {
                    self.close_received = true;
                    if self.closing_since.is_none() {
                        // The server closed first: an error unless we asked for it.
                        self.close_reason = Some(match code {
                            Some(code) => ErrorKind::ClosedWithCode(code.0),
                            None => ErrorKind::ClosedWithoutCode,
                        });
                        self.closing_since = Some(at);
                    }
                    self.phase = Phase::Closing;
                }
                // Compression was never offered, so a compressed frame is a protocol error
                // the receiver reports before this; kept for completeness of the match.
                Some(SessionEvent::Frame(Event::Compressed { text, data })) => {
                    match self.deflate.as_mut().and_then(|d| d.inflate(text, &data)) {
                        Some(Event::Text(text)) => {
                            handler.message(&mut self.traffic, true, text.as_bytes(), at)
                        }
                        Some(Event::Binary(data)) => {
                            handler.message(&mut self.traffic, false, &data, at)
                        }
                        _ => self.fail(ErrorKind::ProtocolError, at),
                    }
                }
                Some(SessionEvent::Failed(_)) => self.fail(ErrorKind::ProtocolError, at),
            }
            pos += consumed;
        }
    }

    fn fail(&mut self, kind: ErrorKind, at: Instant) {
        self.close_reason = Some(kind);
        self.closing_since.get_or_insert(at);
        self.phase = Phase::Closing;
    }

    /// The connect failed: its kind, and the system's reason where the kind does not say it.
    fn connect_failed(&mut self, e: &io::Error) -> Progress {
        let kind = connect_error(e);
        self.reason = reason(kind, e);
        Progress::Finished(Some(kind))
    }

    /// The server ended the TCP connection.
    fn end_of_stream(&mut self) -> Option<ErrorKind> {
        if self.phase == Phase::Handshaking && self.stream.tls_handshaking() {
            self.reason = Some("TLS: the connection ended during the TLS handshake".into());
            return Some(ErrorKind::TlsFailed);
        }
        match self.phase {
            Phase::Connecting | Phase::Handshaking => Some(ErrorKind::HandshakeFailed),
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

    /// Queues a data message; false when the connection is not open.
    pub fn send(&mut self, opcode: OpCode, payload: &[u8]) -> bool {
        if self.phase != Phase::Open {
            return false;
        }
        match self.deflate.as_mut().and_then(|d| d.compress(payload)) {
            Some(compressed) => self
                .session
                .send_frame(&mut self.out, opcode, compressed, true)
                .is_ok(),
            None => self.session.send(&mut self.out, opcode, payload).is_ok(),
        }
    }

    /// Queues a ping; false when the connection is not open.
    pub fn ping(&mut self, payload: &[u8]) -> bool {
        self.phase == Phase::Open
            && self
                .session
                .send(&mut self.out, OpCode::Ping, payload)
                .is_ok()
    }

    /// Starts the closing handshake with 1000 (normal closure).
    pub fn close(&mut self, at: Instant) {
        if self.phase == Phase::Open {
            // Only fails when a close was already sent, which phase Open rules out.
            let _ = self
                .session
                .close(&mut self.out, CloseCode::NORMAL, "load test done");
            self.phase = Phase::Closing;
            self.closing_since = Some(at);
        }
    }

    /// Writes queued output until done or the socket is full (the rest goes out on the next
    /// writable event). `Err` ends the connection.
    pub fn flush(&mut self) -> Result<(), Option<ErrorKind>> {
        if self.phase == Phase::Connecting {
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

/// A connection's permessage-deflate state (RFC 7692), client side.
#[derive(Debug, Default)]
struct Deflate {
    /// Made once the server accepted the offer.
    state: Option<PerMessageDeflate>,
    /// Streams for the directions that keep no context between messages.
    shared: SharedStreams,
    compressed: Vec<u8>,
}

impl Deflate {
    /// Compresses an outgoing payload; `None` before the handshake completed.
    fn compress(&mut self, payload: &[u8]) -> Option<&[u8]> {
        let state = self.state.as_mut()?;
        self.compressed.clear();
        state.deflate(payload, &mut self.compressed, &mut self.shared);
        Some(&self.compressed)
    }

    /// Inflates a message the server compressed; `None` if it does not inflate.
    fn inflate(&mut self, text: bool, data: &[u8]) -> Option<Event<'static>> {
        let state = self.state.as_mut()?;
        state
            .inflate_message(text, data, MAX_MESSAGE_BYTES, &mut self.shared)
            .ok()
    }
}

/// The value of the `Sec-WebSocket-Extensions` header of an HTTP response.
fn extensions_answer(response: &[u8]) -> Option<String> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut parsed = httparse::Response::new(&mut headers);
    parsed.parse(response).ok()?;
    parsed
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("sec-websocket-extensions"))
        .and_then(|h| std::str::from_utf8(h.value).ok())
        .map(str::to_owned)
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
