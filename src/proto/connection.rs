//! One WebSocket connection's life, in either role, with no sockets and no clock of its own:
//! the opening handshake (a server reading the request, a client checking the answer), the
//! open protocol with permessage-deflate both ways, the closing handshake, the keep-alive
//! ping, and the end.
//!
//! The server's reactor and the load generator keep one [`Connection`] per socket: they hand
//! it the bytes they read and the time, ask it for frames to send, and write out what it
//! appends to their output buffer. What a connection means to the application (handlers,
//! counters, timers, topics) stays with them.

use std::time::{Duration, Instant};

use super::deflate::{self, DeflateConfig, PerMessageDeflate, SharedStreams};
use super::error::ProtocolError;
use super::frame::{OpCode, MAX_HEADER_LEN};
use super::handshake::client::{Answer, BodyLength, RefusedHead, ResponseError};
use super::handshake::{self, Request};
use super::receiver::{Event, Role};
use super::session::{ReadyState, SendError, Session, SessionEvent};
use super::{CloseCode, Status};

/// What both roles need to open a connection.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Messages over this many bytes (after inflating) fail the connection with 1009.
    pub max_message_size: usize,
    /// Answer pings by themselves (on by default, as in browsers and `ws`).
    pub auto_pong: bool,
    /// permessage-deflate to accept (server) or offer (client); `None` turns it off.
    pub deflate: Option<DeflateConfig>,
}

/// A WebSocket connection's protocol state from its first byte to its last.
///
/// # Example
///
/// A client and a server, each a `Connection`, talking through byte buffers:
///
/// ```
/// use std::time::Instant;
/// use wsloop::proto::connection::{Offer, Settings};
/// use wsloop::proto::deflate::SharedStreams;
/// use wsloop::proto::{parse_request, Connection, Event, OpCode, Parsed, SessionEvent, Status};
/// use wsloop::proto::MAX_HEADERS;
///
/// let settings = Settings { max_message_size: 1 << 20, auto_pong: true, deflate: None };
/// let offer = Offer { host: "example.com", path: "/", protocols: &[], headers: &[] };
/// let now = Instant::now();
/// let (mut to_server, mut to_client) = (Vec::new(), Vec::new());
/// let mut client = Connection::client(&mut to_server, &offer, [7; 16], settings.clone(), now);
/// let mut server = Connection::server(now);
///
/// let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
/// let Ok(Status::Complete((Parsed::Upgrade(request), _))) = parse_request(&to_server, &mut headers)
/// else { panic!("an upgrade request") };
/// server.accept(&mut to_client, &request, None, &[], &settings, now);
/// assert!(matches!(client.handle_response(&to_client, now), Ok(Status::Complete(_))));
///
/// let (mut wire, mut scratch, mut zlib) = (Vec::new(), Vec::new(), SharedStreams::default());
/// client.send(&mut wire, OpCode::Text, b"hello", &mut scratch, &mut zlib).unwrap();
/// let (_, event) = server.poll(&mut wire, &mut Vec::new(), &mut zlib);
/// assert_eq!(event, Some(SessionEvent::Frame(Event::Text("hello".into()))));
/// ```
#[derive(Debug)]
pub struct Connection {
    stage: Stage,
    /// permessage-deflate state once negotiated; boxed so connections without it stay small.
    deflate: Option<Box<PerMessageDeflate>>,
    /// A keep-alive ping is out and no input has come since.
    ping_sent: bool,
    /// Which end of the connection this is: a client masks what it sends.
    role: Role,
}

#[derive(Debug)]
enum Stage {
    /// Server: reading the request. `kept` holds its bytes only while it is split over
    /// several reads (a request that arrives in one read is parsed where it landed);
    /// `since` times the handshake (no larger than the `Open` variant, so free).
    Request { kept: Vec<u8>, since: Instant },
    /// Client: the request is sent; reading the answer.
    Response(Box<Awaiting>),
    /// The WebSocket protocol runs: OPEN, or CLOSING while a close frame is awaited.
    Open(Session),
    /// The last bytes (an HTTP answer, a final close frame) are going out; nothing more is
    /// read or sent.
    Finishing,
}

/// A client's handshake in progress.
#[derive(Debug)]
struct Awaiting {
    key: String,
    kept: Vec<u8>,
    /// A non-101 head already read, whose body is still arriving after it in `kept`.
    refused: Option<RefusedHead>,
    since: Instant,
    settings: Settings,
    /// Subprotocols offered, in order.
    protocols: Vec<String>,
}

/// A client's upgrade request.
#[derive(Debug, Clone, Copy)]
pub struct Offer<'a> {
    /// The `Host` header: the URL's host, and its port unless it is the scheme's default.
    pub host: &'a str,
    /// The request target: the URL's path and query.
    pub path: &'a str,
    /// Subprotocols offered in `Sec-WebSocket-Protocol`, in order of preference.
    pub protocols: &'a [&'a str],
    /// Extra request headers (Origin, Cookie, Authorization).
    pub headers: &'a [(&'a str, &'a str)],
}

/// A server's answer to the application's decision on an upgrade request.
#[derive(Debug, Clone, Copy)]
pub struct Accepted {
    /// From accepting the TCP connection to writing 101.
    pub handshake: Duration,
}

/// The server's 101, as the client found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    /// The response's length in the bytes given; what follows is the server's first frames.
    pub len: usize,
    /// The subprotocol the server chose, one of those offered.
    pub protocol: Option<String>,
    /// permessage-deflate's parameters when the server accepted the offer.
    pub deflate: Option<String>,
    /// Every header of the 101, in order (the `upgrade` event's: cookies, say).
    pub headers: Vec<(String, String)>,
    /// From sending the request to reading the 101.
    pub handshake: Duration,
}

/// Why a client's handshake did not open the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpenError {
    /// The answer is not a valid 101 (see [`ResponseError`]).
    Response(ResponseError),
    /// The answer's head grew past the limit without ending.
    TooLarge,
    /// Not a 101 but another status, with its headers and body (the `unexpected-response`
    /// of Node's `ws`: a 401 with its reason, a redirect).
    Refused(Box<Refused>),
    /// The server closed the connection before its answer was whole.
    Closed,
    /// RFC 6455 section 4.1: "If the response includes a |Sec-WebSocket-Protocol| header
    /// field and this header field indicates the use of a subprotocol that was not present in
    /// the client's handshake ... the client MUST _Fail the WebSocket Connection_."
    ProtocolNotOffered(String),
    /// The same for an extension: "the use of an extension that was not present in the
    /// client's handshake", or parameters the client cannot use.
    ExtensionNotOffered(String),
}

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpenError::Response(err) => err.fmt(f),
            OpenError::TooLarge => f.write_str("the server's answer is too large"),
            OpenError::Refused(refused) => {
                write!(
                    f,
                    "the server answered {} {}",
                    refused.status, refused.reason
                )
            }
            OpenError::Closed => f.write_str("the server closed the connection before answering"),
            OpenError::ProtocolNotOffered(p) => {
                write!(
                    f,
                    "the server chose subprotocol {p:?}, which was not offered"
                )
            }
            OpenError::ExtensionNotOffered(e) => {
                write!(
                    f,
                    "the server answered extensions {e:?}, which were not offered"
                )
            }
        }
    }
}

impl std::error::Error for OpenError {}

/// The largest answer head a client reads; a 101 is a few hundred bytes.
pub const MAX_RESPONSE_HEAD: usize = 16 << 10;

/// The most of a refused answer's body that is kept; the rest is not read.
pub const MAX_REFUSED_BODY: usize = 64 << 10;

/// An answer other than 101.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub status: u16,
    pub reason: String,
    /// Every header, in order.
    pub headers: Vec<(String, String)>,
    /// The body, decoded from the chunked coding if it came so, at most [`MAX_REFUSED_BODY`].
    pub body: Vec<u8>,
    /// The body was read to its end (not cut at the limit or by the connection's end).
    pub whole: bool,
}

/// What a passed deadline means for the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expired {
    /// The opening handshake took too long (slowloris): drop it, no answer is owed.
    Handshake,
    /// Idle while open: send a ping and wait once more.
    Idle,
    /// No pong after the idle ping, no answer to a close, or the last bytes would not drain:
    /// the peer is gone.
    Gone,
}

/// A frame's header, written by the caller before its payload (a vectored write, with no
/// copy of the payload).
#[derive(Debug)]
pub struct FrameHead<'p> {
    pub header: [u8; MAX_HEADER_LEN],
    pub header_len: usize,
    /// The payload to write after the header: the caller's, or its compressed form.
    pub payload: &'p [u8],
}

impl Connection {
    /// A server's connection, accepted at `now`, reading the request.
    pub fn server(now: Instant) -> Connection {
        Connection {
            stage: Stage::Request {
                kept: Vec::new(),
                since: now,
            },
            deflate: None,
            ping_sent: false,
            role: Role::Server,
        }
    }

    /// A client's connection: appends the upgrade request `offer` describes to `out`,
    /// offering permessage-deflate too when `settings.deflate` is set. `key` is 16 random
    /// bytes (RFC 6455 section 4.1: "a nonce consisting of a randomly selected 16-byte value").
    pub fn client(
        out: &mut Vec<u8>,
        offer: &Offer<'_>,
        key: [u8; 16],
        settings: Settings,
        now: Instant,
    ) -> Connection {
        use base64::Engine;
        let key = base64::engine::general_purpose::STANDARD.encode(key);
        let joined = offer.protocols.join(", ");
        let mut extra: Vec<(&str, &str)> = Vec::with_capacity(offer.headers.len() + 2);
        if !offer.protocols.is_empty() {
            extra.push(("Sec-WebSocket-Protocol", &joined));
        }
        if settings.deflate.is_some() {
            extra.push(("Sec-WebSocket-Extensions", deflate::CLIENT_OFFER));
        }
        extra.extend_from_slice(offer.headers);
        handshake::client::write_request(out, offer.host, offer.path, &key, &extra);
        Connection {
            stage: Stage::Response(Box::new(Awaiting {
                key,
                kept: Vec::new(),
                refused: None,
                since: now,
                settings,
                protocols: offer.protocols.iter().map(|p| (*p).to_owned()).collect(),
            })),
            deflate: None,
            ping_sent: false,
            role: Role::Client,
        }
    }

    /// Whether this is the client's end: it masks what it sends, and its handshake reads an
    /// answer rather than a request.
    pub fn is_client(&self) -> bool {
        self.role == Role::Client
    }

    /// The size of the header of a control frame this end sends (payload under 126 bytes):
    /// 2 bytes, and 4 more for the client's masking key.
    pub fn control_header_len(&self) -> usize {
        match self.role {
            Role::Server => 2,
            Role::Client => 6,
        }
    }

    /// The browser's `readyState`.
    pub fn ready_state(&self) -> ReadyState {
        match &self.stage {
            Stage::Request { .. } | Stage::Response(_) => ReadyState::Connecting,
            Stage::Open(session) => session.ready_state(),
            Stage::Finishing => ReadyState::Closed,
        }
    }

    /// The open protocol's state, once the handshake is done and until the end.
    pub fn session(&self) -> Option<&Session> {
        match &self.stage {
            Stage::Open(session) => Some(session),
            _ => None,
        }
    }

    /// The open protocol's state, to send on it directly.
    pub fn session_mut(&mut self) -> Option<&mut Session> {
        match &mut self.stage {
            Stage::Open(session) => Some(session),
            _ => None,
        }
    }

    /// Whether the opening handshake is still going on.
    pub fn is_handshaking(&self) -> bool {
        matches!(self.stage, Stage::Request { .. } | Stage::Response(_))
    }

    /// Whether the last bytes are going out and nothing more will be read or sent.
    pub fn is_finishing(&self) -> bool {
        matches!(self.stage, Stage::Finishing)
    }

    /// Whether more input is wanted: the handshake is going on, or the protocol is open and
    /// no close frame or protocol failure has come from the peer.
    pub fn wants_input(&self) -> bool {
        match &self.stage {
            Stage::Request { .. } | Stage::Response(_) => true,
            Stage::Open(session) => session.wants_input(),
            Stage::Finishing => false,
        }
    }

    /// Server: takes the start of a request kept from earlier reads (empty if none), to be
    /// joined with the new bytes; give it back with [`keep_request`](Self::keep_request)
    /// while the request is incomplete.
    pub fn take_request(&mut self) -> Vec<u8> {
        match &mut self.stage {
            Stage::Request { kept, .. } => std::mem::take(kept),
            _ => Vec::new(),
        }
    }

    /// Server: whether part of a request is kept from earlier reads.
    pub fn has_partial_request(&self) -> bool {
        matches!(&self.stage, Stage::Request { kept, .. } if !kept.is_empty())
    }

    /// Server: keeps the start of a request until the rest arrives.
    pub fn keep_request(&mut self, bytes: &[u8]) {
        if let Stage::Request { kept, .. } = &mut self.stage {
            kept.clear();
            kept.extend_from_slice(bytes);
        }
    }

    /// Server: accepts `request`, appending the 101 to `out` with the chosen `protocol`,
    /// permessage-deflate when offered and configured (RFC 7692 section 5: the first offer
    /// the server supports), and the application's `headers`. The protocol runs from here.
    pub fn accept(
        &mut self,
        out: &mut Vec<u8>,
        request: &Request<'_, '_>,
        protocol: Option<&str>,
        headers: &[(String, String)],
        settings: &Settings,
        now: Instant,
    ) -> Accepted {
        let deflate = settings.deflate.as_ref().and_then(|config| {
            let params = deflate::negotiate(request.extension_offers(), config)?;
            let answer = params.to_string();
            Some((answer, PerMessageDeflate::new(Role::Server, params, config)))
        });
        handshake::write_accept(
            out,
            request.key(),
            protocol,
            deflate.as_ref().map(|(answer, _)| answer.as_str()),
            headers,
        );
        let since = match &self.stage {
            Stage::Request { since, .. } => *since,
            _ => now,
        };
        self.open(Role::Server, settings, deflate.map(|(_, state)| state));
        Accepted {
            handshake: now.saturating_duration_since(since),
        }
    }

    fn open(&mut self, role: Role, settings: &Settings, deflate: Option<PerMessageDeflate>) {
        let mut session = Session::new(role, settings.max_message_size);
        session.set_auto_pong(settings.auto_pong);
        session.receiver_mut().allow_compressed(deflate.is_some());
        self.stage = Stage::Open(session);
        self.deflate = deflate.map(Box::new);
    }

    /// Client: reads the server's answer from `input` (the bytes just read; earlier ones
    /// are kept here). `Partial` until the head is whole; then the connection is open and
    /// the bytes after the head (the server's first frames) are handed back, or the error
    /// says why not: the connection is then CLOSED and the caller closes the TCP connection.
    pub fn handle_response(
        &mut self,
        input: &[u8],
        now: Instant,
    ) -> Result<Status<(Opened, Vec<u8>)>, OpenError> {
        let stage = std::mem::replace(&mut self.stage, Stage::Finishing);
        let Stage::Response(mut awaiting) = stage else {
            self.stage = stage;
            return Err(OpenError::Response(ResponseError::Malformed));
        };
        awaiting.kept.extend_from_slice(input);
        if let Some(refused) = &awaiting.refused {
            return match refused_body(refused, &awaiting.kept[refused.len..], false) {
                Some(refused) => Err(OpenError::Refused(Box::new(refused))),
                None => {
                    self.stage = Stage::Response(awaiting);
                    Ok(Status::Partial)
                }
            };
        }
        let head = match handshake::client::read_response(&awaiting.kept, &awaiting.key) {
            Ok(Status::Partial) if awaiting.kept.len() > MAX_RESPONSE_HEAD => {
                return Err(OpenError::TooLarge)
            }
            Ok(Status::Partial) => {
                self.stage = Stage::Response(awaiting);
                return Ok(Status::Partial);
            }
            Ok(Status::Complete(Answer::Upgrade(head))) => head,
            Ok(Status::Complete(Answer::Refused(head))) => {
                return match refused_body(&head, &awaiting.kept[head.len..], false) {
                    Some(refused) => Err(OpenError::Refused(Box::new(refused))),
                    None => {
                        awaiting.refused = Some(head);
                        self.stage = Stage::Response(awaiting);
                        Ok(Status::Partial)
                    }
                };
            }
            Err(err) => return Err(OpenError::Response(err)),
        };
        let len = head.len;
        let headers = head.headers;
        let protocol = head.protocol.map(str::to_owned);
        if let Some(chosen) = protocol.as_ref() {
            if !awaiting.protocols.iter().any(|offered| offered == chosen) {
                return Err(OpenError::ProtocolNotOffered(chosen.clone()));
            }
        }
        let deflate = match (head.extensions, &awaiting.settings.deflate) {
            (None, _) => None,
            (Some(answer), Some(config)) => match deflate::parse_response(&answer) {
                Some(params) => {
                    Some((answer, PerMessageDeflate::new(Role::Client, params, config)))
                }
                None => return Err(OpenError::ExtensionNotOffered(answer)),
            },
            (Some(answer), None) => return Err(OpenError::ExtensionNotOffered(answer)),
        };
        let Awaiting {
            mut kept,
            since,
            settings,
            ..
        } = *awaiting;
        let opened = Opened {
            len,
            headers,
            protocol,
            deflate: deflate.as_ref().map(|(answer, _)| answer.clone()),
            handshake: now.saturating_duration_since(since),
        };
        self.open(Role::Client, &settings, deflate.map(|(_, state)| state));
        kept.drain(..len);
        Ok(Status::Complete((opened, kept)))
    }

    /// Client: the server closed the connection during the handshake. A refused answer
    /// whose body runs until the close (or was cut by it) is complete now; anything else is
    /// [`OpenError::Closed`]. The connection is CLOSED after this.
    pub fn handle_eof(&mut self) -> OpenError {
        let stage = std::mem::replace(&mut self.stage, Stage::Finishing);
        match stage {
            Stage::Response(awaiting) => match &awaiting.refused {
                Some(head) => refused_body(head, &awaiting.kept[head.len..], true)
                    .map_or(OpenError::Closed, |refused| {
                        OpenError::Refused(Box::new(refused))
                    }),
                None => OpenError::Closed,
            },
            stage => {
                self.stage = stage;
                OpenError::Closed
            }
        }
    }

    /// When the handshake started, while it goes on.
    pub fn handshake_started(&self) -> Option<Instant> {
        match &self.stage {
            Stage::Request { since, .. } => Some(*since),
            Stage::Response(awaiting) => Some(awaiting.since),
            _ => None,
        }
    }

    /// Decodes the next event from `input`, appending any reply the protocol requires (a
    /// pong, the echo of a close, the close that fails the connection) to `out`. Compressed
    /// messages come out inflated; one that does not inflate fails the connection (RFC 7692
    /// section 8.1... "the receiving endpoint MUST _Fail the WebSocket Connection_").
    /// Returns how many bytes were used; all of them once no more input is wanted.
    pub fn poll<'a>(
        &mut self,
        input: &'a mut [u8],
        out: &mut Vec<u8>,
        shared: &mut SharedStreams,
    ) -> (usize, Option<SessionEvent<'a>>) {
        let Stage::Open(session) = &mut self.stage else {
            return (input.len(), None);
        };
        let (used, event) = session.poll(input, out);
        let event = match event {
            Some(SessionEvent::Frame(Event::Compressed { text, data })) => {
                let max = session.receiver_mut().max_message_size();
                // The receiver yields compressed messages only when deflate was negotiated.
                let inflated = match self.deflate.as_mut() {
                    Some(deflate) => deflate.inflate_message(text, &data, max, shared),
                    None => Err(ProtocolError::ReservedBits),
                };
                Some(match inflated {
                    Ok(event) => SessionEvent::Frame(event),
                    Err(err) => {
                        session.fail(out, err);
                        SessionEvent::Failed(err)
                    }
                })
            }
            event => event,
        };
        (used, event)
    }

    /// Whether a frame with `opcode` and `len` payload bytes may be sent now.
    pub fn check_sendable(&self, opcode: OpCode, len: usize) -> Result<(), SendError> {
        match &self.stage {
            Stage::Open(session) => session.check_sendable(opcode, len),
            _ => Err(SendError::NotOpen),
        }
    }

    /// Server: the header of a frame carrying `payload`, compressed into `scratch` first
    /// when permessage-deflate is on and the message is worth it ("An endpoint MUST NOT set
    /// the "Per-Message Compressed" bit of control frames", RFC 7692 section 6.1). Every
    /// check comes before compressing: with a compression context kept across messages, a
    /// message compressed and then not sent would put the peer's inflater out of step.
    pub fn frame_head<'p>(
        &mut self,
        opcode: OpCode,
        payload: &'p [u8],
        scratch: &'p mut Vec<u8>,
        shared: &mut SharedStreams,
    ) -> Result<FrameHead<'p>, SendError> {
        let Stage::Open(session) = &mut self.stage else {
            return Err(SendError::NotOpen);
        };
        let (payload, compressed) = match self
            .deflate
            .as_mut()
            .filter(|d| !opcode.is_control() && d.should_compress(payload.len()))
        {
            Some(deflate) => {
                session.check_sendable(opcode, payload.len())?;
                scratch.clear();
                deflate.deflate(payload, scratch, shared);
                (&scratch[..], true)
            }
            None => (payload, false),
        };
        // Checks what it frames (and only that, when nothing was compressed).
        let (header, header_len) = session.header(opcode, payload.len(), compressed)?;
        Ok(FrameHead {
            header,
            header_len,
            payload,
        })
    }

    /// Appends a frame to `out`, masked in the client role and compressed (through
    /// `scratch`) when permessage-deflate is on, as [`frame_head`](Self::frame_head).
    pub fn send(
        &mut self,
        out: &mut Vec<u8>,
        opcode: OpCode,
        payload: &[u8],
        scratch: &mut Vec<u8>,
        shared: &mut SharedStreams,
    ) -> Result<(), SendError> {
        let Stage::Open(session) = &mut self.stage else {
            return Err(SendError::NotOpen);
        };
        session.check_sendable(opcode, payload.len())?;
        match self
            .deflate
            .as_mut()
            .filter(|d| !opcode.is_control() && d.should_compress(payload.len()))
        {
            Some(deflate) => {
                scratch.clear();
                deflate.deflate(payload, scratch, shared);
                session.send_frame(out, opcode, scratch, true)
            }
            None => session.send_frame(out, opcode, payload, false),
        }
    }

    /// Starts the closing handshake: appends a close frame with `code` and `reason`.
    pub fn close(
        &mut self,
        out: &mut Vec<u8>,
        code: CloseCode,
        reason: &str,
    ) -> Result<(), SendError> {
        match &mut self.stage {
            Stage::Open(session) => session.close(out, code, reason),
            _ => Err(SendError::NotOpen),
        }
    }

    /// Moves to the last stage: what is queued goes out, then the write side is shut.
    /// Nothing more is compressed or inflated, so the zlib state is freed now, not when the
    /// peer gets round to closing.
    pub fn finish(&mut self) {
        self.stage = Stage::Finishing;
        self.deflate = None;
    }

    /// The connection's deadline passed: what that means in its stage. An `Idle` open
    /// connection is marked as pinged; the caller sends the ping and waits once more.
    pub fn expire(&mut self) -> Expired {
        match &self.stage {
            Stage::Request { .. } | Stage::Response(_) => Expired::Handshake,
            Stage::Open(session)
                if session.ready_state() == ReadyState::Open && !self.ping_sent =>
            {
                self.ping_sent = true;
                Expired::Idle
            }
            Stage::Open(_) | Stage::Finishing => Expired::Gone,
        }
    }

    /// Input arrived: a keep-alive ping out is answered by it.
    pub fn saw_input(&mut self) {
        self.ping_sent = false;
    }
}

/// A refused answer once enough of its body is here: all of it, the first
/// [`MAX_REFUSED_BODY`] bytes, or (at the connection's `end`) what came; `None` while more is
/// to come.
fn refused_body(head: &RefusedHead, raw: &[u8], end: bool) -> Option<Refused> {
    let (body, whole) = match head.body {
        BodyLength::Empty => (Vec::new(), true),
        BodyLength::Length(len) => {
            let wanted = usize::try_from(len).unwrap_or(usize::MAX);
            let have = raw.len().min(wanted).min(MAX_REFUSED_BODY);
            let whole = have == wanted;
            if !whole && have < MAX_REFUSED_BODY && !end {
                return None;
            }
            (raw[..have].to_vec(), whole)
        }
        BodyLength::Chunked => {
            let (body, read) = dechunk(raw);
            // Small chunks take more room than their data: the bytes kept stay bounded.
            let waiting = read == Chunks::Partial
                && body.len() < MAX_REFUSED_BODY
                && raw.len() < 4 * MAX_REFUSED_BODY;
            if waiting && !end {
                return None;
            }
            (body, read == Chunks::Whole)
        }
        BodyLength::UntilClose => {
            let have = raw.len().min(MAX_REFUSED_BODY);
            if have < MAX_REFUSED_BODY && !end {
                return None;
            }
            (raw[..have].to_vec(), end && raw.len() <= MAX_REFUSED_BODY)
        }
    };
    Some(Refused {
        status: head.status,
        reason: head.reason.clone(),
        headers: head.headers.clone(),
        body,
        whole,
    })
}

/// How far [`dechunk`] got.
#[derive(Debug, PartialEq, Eq)]
enum Chunks {
    /// The last chunk was read.
    Whole,
    /// More is to come (or the limit was reached).
    Partial,
    /// A chunk is malformed: the body ends before it.
    Broken,
}

/// Decodes the chunked coding (RFC 9112 section 7.1) from the start of `raw`, up to
/// [`MAX_REFUSED_BODY`] bytes. Trailer fields are not read.
fn dechunk(mut raw: &[u8]) -> (Vec<u8>, Chunks) {
    let mut body = Vec::new();
    while body.len() < MAX_REFUSED_BODY {
        let (used, size) = match httparse::parse_chunk_size(raw) {
            Ok(httparse::Status::Complete(chunk)) => chunk,
            Ok(httparse::Status::Partial) => return (body, Chunks::Partial),
            Err(_) => return (body, Chunks::Broken),
        };
        if size == 0 {
            return (body, Chunks::Whole);
        }
        raw = &raw[used..];
        let size = usize::try_from(size).unwrap_or(usize::MAX);
        let take = size.min(raw.len()).min(MAX_REFUSED_BODY - body.len());
        body.extend_from_slice(&raw[..take]);
        if take < size {
            return (body, Chunks::Partial);
        }
        // The chunk's data ends with CRLF.
        match raw.get(size..size + 2) {
            Some(b"\r\n") => raw = &raw[size + 2..],
            Some(_) => return (body, Chunks::Broken),
            None => return (body, Chunks::Partial),
        }
    }
    (body, Chunks::Partial)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::handshake::{parse_request, Parsed, MAX_HEADERS};

    fn settings(deflate: bool) -> Settings {
        Settings {
            max_message_size: 1 << 20,
            auto_pong: true,
            deflate: deflate.then(DeflateConfig::default),
        }
    }

    const OFFER: Offer<'static> = Offer {
        host: "example.com",
        path: "/chat?room=1",
        protocols: &["chat", "superchat"],
        headers: &[("Origin", "https://example.com")],
    };

    /// A client and a server connection, opened through each other's bytes.
    fn pair(deflate: bool) -> (Connection, Connection, Opened) {
        let now = Instant::now();
        let mut request = Vec::new();
        let mut client = Connection::client(&mut request, &OFFER, [7; 16], settings(deflate), now);
        let mut server = Connection::server(now);
        let mut response = Vec::new();
        {
            let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let Ok(Status::Complete((Parsed::Upgrade(req), len))) =
                parse_request(&request, &mut headers)
            else {
                panic!("the client's request is an upgrade")
            };
            assert_eq!(len, request.len());
            assert_eq!(req.target(), "/chat?room=1");
            assert_eq!(req.origin(), Some("https://example.com"));
            assert_eq!(req.protocols().collect::<Vec<_>>(), ["chat", "superchat"]);
            server.accept(
                &mut response,
                &req,
                Some("chat"),
                &[],
                &settings(deflate),
                now,
            );
        }
        let Ok(Status::Complete((opened, rest))) = client.handle_response(&response, now) else {
            panic!("the server's answer opens the client")
        };
        assert!(rest.is_empty());
        (client, server, opened)
    }

    /// The Sec-WebSocket-Key of a request.
    fn key_of(request: &[u8]) -> String {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let Ok(Status::Complete((Parsed::Upgrade(req), _))) = parse_request(request, &mut headers)
        else {
            panic!("an upgrade request")
        };
        String::from_utf8(req.key().to_vec()).unwrap()
    }

    /// Every event `to` decodes from `wire`, with the replies it queued.
    fn receive(to: &mut Connection, mut wire: Vec<u8>) -> (Vec<String>, Vec<u8>) {
        let mut events = Vec::new();
        let mut replies = Vec::new();
        let mut shared = SharedStreams::default();
        let mut pos = 0;
        while pos < wire.len() {
            let (used, event) = to.poll(&mut wire[pos..], &mut replies, &mut shared);
            pos += used;
            if let Some(event) = event {
                events.push(format!("{event:?}"));
            }
        }
        (events, replies)
    }

    #[test]
    fn a_client_and_a_server_open_talk_compressed_and_close() {
        let (mut client, mut server, opened) = pair(true);
        assert_eq!(opened.protocol.as_deref(), Some("chat"));
        assert!(opened.deflate.is_some(), "permessage-deflate was agreed");
        assert_eq!(client.ready_state(), ReadyState::Open);
        assert_eq!(server.ready_state(), ReadyState::Open);

        let (mut scratch, mut shared) = (Vec::new(), SharedStreams::default());
        let text = "hello ".repeat(100);
        let mut wire = Vec::new();
        client
            .send(
                &mut wire,
                OpCode::Text,
                text.as_bytes(),
                &mut scratch,
                &mut shared,
            )
            .unwrap();
        assert!(
            wire.len() < text.len() / 4,
            "compressed: {} bytes",
            wire.len()
        );
        let (events, _) = receive(&mut server, wire);
        assert_eq!(
            events,
            [format!(
                "{:?}",
                SessionEvent::Frame(Event::Text(text.clone().into()))
            )]
        );

        let head = server
            .frame_head(OpCode::Text, text.as_bytes(), &mut scratch, &mut shared)
            .unwrap();
        let mut wire = head.header[..head.header_len].to_vec();
        wire.extend_from_slice(head.payload);
        let (events, _) = receive(&mut client, wire);
        assert_eq!(
            events,
            [format!(
                "{:?}",
                SessionEvent::Frame(Event::Text(text.into()))
            )]
        );

        let mut wire = Vec::new();
        client.close(&mut wire, CloseCode::NORMAL, "bye").unwrap();
        assert_eq!(client.ready_state(), ReadyState::Closing);
        let (_, echo) = receive(&mut server, wire);
        assert_eq!(server.ready_state(), ReadyState::Closed);
        assert!(!server.wants_input());
        receive(&mut client, echo);
        assert_eq!(client.ready_state(), ReadyState::Closed);
    }

    #[test]
    fn an_answer_split_over_reads_opens_once_whole_and_hands_back_the_first_frames() {
        let now = Instant::now();
        let mut request = Vec::new();
        let mut client = Connection::client(&mut request, &OFFER, [1; 16], settings(false), now);
        let key = key_of(&request);
        let mut answer = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {}\r\n\r\n",
            handshake::accept_key(key.as_bytes())
        )
        .into_bytes();
        answer.extend_from_slice(&[0x81, 2, b'h', b'i']);
        let (head, tail) = answer.split_at(30);
        assert_eq!(client.handle_response(head, now), Ok(Status::Partial));
        let Ok(Status::Complete((opened, mut rest))) = client.handle_response(tail, now) else {
            panic!("opened")
        };
        assert_eq!(opened.protocol, None);
        assert_eq!(rest, [0x81, 2, b'h', b'i']);
        let (_, event) = client.poll(&mut rest, &mut Vec::new(), &mut SharedStreams::default());
        assert_eq!(event, Some(SessionEvent::Frame(Event::Text("hi".into()))));
    }

    /// The answer to a request from a client offering `OFFER` without compression, with
    /// `extra` header lines.
    fn answer_with(extra: &str) -> Result<Status<(Opened, Vec<u8>)>, OpenError> {
        let now = Instant::now();
        let mut request = Vec::new();
        let mut client = Connection::client(&mut request, &OFFER, [2; 16], settings(false), now);
        let key = key_of(&request);
        let answer = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {}\r\n{extra}\r\n",
            handshake::accept_key(key.as_bytes())
        );
        client.handle_response(answer.as_bytes(), now)
    }

    #[test]
    fn a_subprotocol_or_extension_the_client_did_not_offer_fails_the_handshake() {
        assert_eq!(
            answer_with("Sec-WebSocket-Protocol: other\r\n").unwrap_err(),
            OpenError::ProtocolNotOffered("other".into())
        );
        assert_eq!(
            answer_with("Sec-WebSocket-Extensions: permessage-deflate\r\n").unwrap_err(),
            OpenError::ExtensionNotOffered("permessage-deflate".into())
        );
        assert!(matches!(
            answer_with("Sec-WebSocket-Protocol: superchat\r\n"),
            Ok(Status::Complete((Opened { protocol: Some(p), .. }, _))) if p == "superchat"
        ));
    }

    #[test]
    fn a_bad_key_a_bad_length_and_an_endless_head_are_errors() {
        let now = Instant::now();
        let mut client = Connection::client(&mut Vec::new(), &OFFER, [3; 16], settings(false), now);
        assert_eq!(
            client.handle_response(b"HTTP/1.1 401 No\r\nContent-Length: 1x\r\n\r\n", now),
            Err(OpenError::Response(ResponseError::Malformed))
        );
        assert_eq!(
            client.ready_state(),
            ReadyState::Closed,
            "a failed handshake ends it"
        );
        let mut client = Connection::client(&mut Vec::new(), &OFFER, [3; 16], settings(false), now);
        let bad = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
                   Connection: Upgrade\r\nSec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n\r\n";
        assert_eq!(
            client.handle_response(bad.as_bytes(), now),
            Err(OpenError::Response(ResponseError::BadAccept))
        );
        let mut client = Connection::client(&mut Vec::new(), &OFFER, [3; 16], settings(false), now);
        let endless = format!("HTTP/1.1 101 OK\r\nX: {}", "a".repeat(MAX_RESPONSE_HEAD));
        assert_eq!(
            client.handle_response(endless.as_bytes(), now),
            Err(OpenError::TooLarge)
        );
    }

    /// A client that offered `OFFER`, fed `answer` in the pieces given.
    fn refused(pieces: &[&[u8]], eof: bool) -> Result<Status<(Opened, Vec<u8>)>, OpenError> {
        let now = Instant::now();
        let mut client = Connection::client(&mut Vec::new(), &OFFER, [4; 16], settings(false), now);
        let mut last = Ok(Status::Partial);
        for piece in pieces {
            assert_eq!(last, Ok(Status::Partial), "an answer before its last piece");
            last = client.handle_response(piece, now);
        }
        if eof {
            assert_eq!(last, Ok(Status::Partial), "an answer before the end");
            last = Err(client.handle_eof());
        }
        last
    }

    fn refusal(status: u16, reason: &str, body: &[u8], whole: bool) -> OpenError {
        OpenError::Refused(Box::new(Refused {
            status,
            reason: reason.into(),
            headers: Vec::new(),
            body: body.to_vec(),
            whole,
        }))
    }

    /// The refusal without its headers, to compare.
    fn without_headers(result: Result<Status<(Opened, Vec<u8>)>, OpenError>) -> OpenError {
        match result {
            Err(OpenError::Refused(mut refused)) => {
                refused.headers.clear();
                OpenError::Refused(refused)
            }
            other => panic!("not a refusal: {other:?}"),
        }
    }

    #[test]
    fn a_401_comes_with_its_status_headers_and_body_however_it_is_split() {
        let answer = b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer\r\n\
                       Content-Length: 8\r\n\r\nno token";
        let Err(OpenError::Refused(whole)) = refused(&[answer], false) else {
            panic!("refused")
        };
        assert_eq!((whole.status, whole.reason.as_str()), (401, "Unauthorized"));
        assert_eq!(
            whole.headers[0],
            ("WWW-Authenticate".into(), "Bearer".into())
        );
        assert_eq!(
            (whole.body.as_slice(), whole.whole),
            (&b"no token"[..], true)
        );
        for cut in [10, answer.len() - 8, answer.len() - 3] {
            let (head, tail) = answer.split_at(cut);
            assert_eq!(
                refused(&[head, tail], false),
                Err(OpenError::Refused(whole.clone())),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn refused_bodies_chunked_until_close_empty_and_cut_at_the_limit() {
        let chunked = b"HTTP/1.1 403 Forbidden\r\nTransfer-Encoding: chunked\r\n\r\n\
                        4\r\nWiki\r\n5\r\npedia\r\n0\r\n\r\n";
        assert_eq!(
            without_headers(refused(&[chunked], false)),
            refusal(403, "Forbidden", b"Wikipedia", true)
        );
        let (head, tail) = chunked.split_at(chunked.len() - 7);
        assert_eq!(
            without_headers(refused(&[head, tail], false)),
            refusal(403, "Forbidden", b"Wikipedia", true)
        );
        let until_close = b"HTTP/1.0 500 Oops\r\n\r\nall of it";
        assert_eq!(
            without_headers(refused(&[until_close], true)),
            refusal(500, "Oops", b"all of it", true)
        );
        let empty = b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n";
        assert_eq!(
            without_headers(refused(&[empty], false)),
            refusal(204, "No Content", b"", true)
        );
        let mut large = b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 100000\r\n\r\n".to_vec();
        large.extend(std::iter::repeat_n(b'x', MAX_REFUSED_BODY));
        assert_eq!(
            without_headers(refused(&[&large], false)),
            refusal(502, "Bad Gateway", &[b'x'; MAX_REFUSED_BODY], false)
        );
        let short = b"HTTP/1.1 401 No\r\nContent-Length: 10\r\n\r\nabc";
        assert_eq!(
            without_headers(refused(&[short], true)),
            refusal(401, "No", b"abc", false),
            "cut by the connection's end"
        );
        let broken = b"HTTP/1.1 400 Bad\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcXY";
        assert_eq!(
            without_headers(refused(&[broken], false)),
            refusal(400, "Bad", b"abc", false),
            "a malformed chunk ends the body"
        );
        assert_eq!(refused(&[b"HTTP/1.1 10"], true), Err(OpenError::Closed));
    }

    #[test]
    fn a_compressed_message_that_does_not_inflate_fails_the_connection_with_a_close() {
        let (_, mut server, _) = pair(true);
        // RSV1 set on a masked text frame whose payload is not a deflate stream.
        let mut wire = vec![0xc1, 0x84, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff];
        let mut replies = Vec::new();
        let (used, event) = server.poll(&mut wire, &mut replies, &mut SharedStreams::default());
        assert_eq!(used, 10);
        let Some(SessionEvent::Failed(err)) = event else {
            panic!("failed: {event:?}")
        };
        assert_eq!(replies[0], 0x88, "a close frame was queued");
        let code = u16::from_be_bytes([replies[2], replies[3]]);
        assert_eq!(code, err.close_code().0);
        assert_eq!(server.ready_state(), ReadyState::Closed);
    }

    #[test]
    fn deadlines_mean_handshake_timeout_then_idle_ping_then_gone() {
        let mut server = Connection::server(Instant::now());
        assert_eq!(server.expire(), Expired::Handshake);
        let (_, mut server, _) = pair(false);
        assert_eq!(server.expire(), Expired::Idle);
        assert_eq!(server.expire(), Expired::Gone, "no input since the ping");
        server.saw_input();
        assert_eq!(server.expire(), Expired::Idle);
        server.finish();
        assert_eq!(server.expire(), Expired::Gone);
        assert_eq!(server.ready_state(), ReadyState::Closed);
    }

    #[test]
    fn the_handshake_stages_take_no_more_room_than_the_open_one() {
        // A server's request buffer and start time fit in the space `Open` takes anyway; a
        // client's handshake is boxed.
        assert_eq!(std::mem::size_of::<Stage>(), std::mem::size_of::<Session>());
    }
}
