//! What the application writes: callbacks for the events of the browser `WebSocket` API and
//! Node's `ws`, and the answer to an upgrade request.

use std::fmt;
use std::io;

use crate::client::{OpenError, Opened, Refused};
use crate::proto::{CloseCode, ProtocolError, Request};
use crate::server::{ConnId, Context, Timer};

/// A complete message, borrowed from the receive buffer for the duration of the callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Message<'a> {
    Text(&'a str),
    Binary(&'a [u8]),
}

impl<'a> Message<'a> {
    /// The payload bytes.
    pub fn as_bytes(&self) -> &'a [u8] {
        match self {
            Message::Text(text) => text.as_bytes(),
            Message::Binary(bytes) => bytes,
        }
    }
}

/// Why a connection ended badly.
#[non_exhaustive]
#[derive(Debug)]
pub enum Error {
    /// The peer broke the protocol; a close frame with the matching code was sent.
    Protocol(ProtocolError),
    /// The socket failed (reset by the peer, for example).
    Io(io::Error),
    /// The peer did not answer a ping within the idle timeout, or a close within the close
    /// timeout; or an outgoing connection's handshake did not finish within its timeout.
    Timeout,
    /// An outgoing connection's host name did not resolve.
    Resolve(io::Error),
    /// An outgoing connection's TCP connect failed: refused, unreachable, or not done within
    /// the connect timeout (`TimedOut`); or `close` was called while it was CONNECTING.
    Connect(io::Error),
    /// An outgoing connection's opening handshake failed: an answer other than 101 (after
    /// [`Handler::on_unexpected_response`]), a bad `Sec-WebSocket-Accept`, a subprotocol or
    /// extension that was not offered, or the server closing before it answered.
    Handshake(OpenError),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Protocol(err) => write!(f, "protocol error: {err}"),
            Error::Io(err) => write!(f, "I/O error: {err}"),
            Error::Timeout => f.write_str("timed out"),
            Error::Resolve(err) => write!(f, "name resolution failed: {err}"),
            Error::Connect(err) => write!(f, "connect failed: {err}"),
            Error::Handshake(err) => write!(f, "opening handshake failed: {err}"),
        }
    }
}

impl std::error::Error for Error {}

/// The answer to an upgrade request, from [`Handler::on_upgrade`].
///
/// ```
/// use wsloop::Upgrade;
/// let accept: Upgrade = Upgrade::accept().protocol("chat.v2").header("X-Server", "wsloop");
/// let reject: Upgrade = Upgrade::reject(401, "log in first").header("WWW-Authenticate", "Bearer");
/// # let _ = (accept, reject);
/// ```
///
/// The server checks the answer before it acts on it: a subprotocol the client did not
/// offer, or a rejection status outside 400-599, is a bug in the handler; the client then
/// gets `500 Internal Server Error` and the server logs the reason.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Upgrade<D = ()> {
    /// Open the connection.
    #[non_exhaustive]
    Accept {
        /// The subprotocol chosen from those the client offered.
        protocol: Option<String>,
        /// Extra response headers.
        headers: Vec<(String, String)>,
        /// Topics to subscribe the connection to as it opens.
        topics: Vec<String>,
        /// The connection's [`Handler::Data`], from [`Upgrade::data`].
        data: Option<D>,
    },
    /// Answer with an HTTP error and close.
    #[non_exhaustive]
    Reject {
        status: u16,
        /// Extra response headers (`WWW-Authenticate`, `Retry-After`).
        headers: Vec<(String, String)>,
        body: String,
    },
}

impl<D> Upgrade<D> {
    /// Accept with no subprotocol, no extra headers and no data.
    pub fn accept() -> Upgrade<D> {
        Upgrade::Accept {
            protocol: None,
            headers: Vec::new(),
            topics: Vec::new(),
            data: None,
        }
    }

    /// Gives an accepted connection its [`Handler::Data`]: what the upgrade request said
    /// (the user, the room, the claims of a token), kept with the connection and lent to
    /// every event through [`Context::data`] until the connection ends.
    pub fn data(mut self, value: D) -> Upgrade<D> {
        if let Upgrade::Accept { data, .. } = &mut self {
            *data = Some(value);
        }
        self
    }

    /// Refuse with an HTTP `status` (400-599, e.g. 401, 403, 404) and a short text body.
    pub fn reject(status: u16, body: &str) -> Upgrade<D> {
        Upgrade::Reject {
            status,
            headers: Vec::new(),
            body: body.to_owned(),
        }
    }

    /// Chooses the subprotocol answered in `Sec-WebSocket-Protocol`. It must be one the
    /// client offered ([`Request::protocols`]).
    pub fn protocol(mut self, chosen: &str) -> Upgrade<D> {
        if let Upgrade::Accept { protocol, .. } = &mut self {
            *protocol = Some(chosen.to_owned());
        }
        self
    }

    /// Subscribes the connection to `topic` as it opens (see [`Context::publish`]).
    pub fn subscribe(mut self, topic: &str) -> Upgrade<D> {
        if let Upgrade::Accept { topics, .. } = &mut self {
            topics.push(topic.to_owned());
        }
        self
    }

    /// Adds a response header, to the 101 of an accepted upgrade or to the answer of a
    /// rejected one. Names that are not HTTP tokens and values with CR, LF or NUL are left
    /// out (and logged), so a header cannot split the response.
    pub fn header(mut self, name: &str, value: &str) -> Upgrade<D> {
        match &mut self {
            Upgrade::Accept { headers, .. } | Upgrade::Reject { headers, .. } => {
                headers.push((name.to_owned(), value.to_owned()));
            }
        }
        self
    }
}

/// The answer to a plain HTTP request (one that does not ask for a WebSocket), from
/// [`Handler::on_request`]. The connection closes after it; request bodies are not read.
///
/// ```
/// use wsloop::Response;
/// let health = Response::text(200, "ok\n");
/// let stats = Response::json(200, r#"{"connections":12}"#).header("Cache-Control", "no-store");
/// let gone = Response::new(404);
/// # let _ = (health, stats, gone);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

impl Response {
    /// A response with `status` (200-599) and an empty body.
    pub fn new(status: u16) -> Response {
        Response {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// A `text/plain` response.
    pub fn text(status: u16, body: &str) -> Response {
        Response::new(status)
            .header("Content-Type", "text/plain; charset=utf-8")
            .body(body)
    }

    /// An `application/json` response; `body` is sent as it is.
    pub fn json(status: u16, body: &str) -> Response {
        Response::new(status)
            .header("Content-Type", "application/json")
            .body(body)
    }

    /// Adds a header (invalid names and values are left out, as for [`Upgrade::header`]).
    /// `Content-Length` and `Connection` are written by the server.
    pub fn header(mut self, name: &str, value: &str) -> Response {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Sets the body (not sent in answer to `HEAD`, though its length is).
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Response {
        self.body = body.into();
        self
    }

    /// The status code.
    pub fn status(&self) -> u16 {
        self.status
    }
}

/// The application's side of the server. Every method has a default that does nothing (or
/// accepts the upgrade), so a handler implements only the events it cares about.
///
/// Events for one connection come in this order: `on_upgrade`, `on_open`, then any number
/// of `on_message` / `on_ping` / `on_pong` / `on_drain`, maybe `on_error`, and `on_close`
/// exactly once for every connection that was opened. An outgoing connection
/// ([`Context::connect`]) hears `on_upgrade_response` instead of `on_upgrade`, or
/// `on_unexpected_response` and `on_error` when it does not open; `on_close` comes exactly
/// once for every connection `connect` gave an id to, opened or not.
///
/// ```no_run
/// use wsloop::{Config, Context, ConnId, Handler, Message, Request, Server, Upgrade};
///
/// struct Shout;
///
/// /// Who is connected, from the upgrade request.
/// struct Caller {
///     name: String,
/// }
///
/// impl Handler for Shout {
///     type Data = Caller;
///
///     fn on_upgrade(&mut self, req: &Request<'_, '_>) -> Upgrade<Caller> {
///         match (req.path(), req.query_param("name")) {
///             ("/shout", Some(name)) => Upgrade::accept().data(Caller { name: name.into_owned() }),
///             ("/shout", None) => Upgrade::reject(400, "add ?name=YOU"),
///             _ => Upgrade::reject(404, "try /shout?name=YOU"),
///         }
///     }
///
///     fn on_message(&mut self, ctx: &mut Context<'_, Caller>, id: ConnId, msg: Message<'_>) {
///         if let (Message::Text(text), Some(caller)) = (msg, ctx.data(id)) {
///             let line = format!("{}: {}", caller.name, text.to_uppercase());
///             let _ = ctx.send_text(id, &line);
///         }
///     }
/// }
///
/// Server::bind(Config::default(), Shout)?.run()?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub trait Handler {
    /// What the application keeps per connection (`()` when nothing): set by
    /// [`Upgrade::data`] when `on_upgrade` accepts, read and changed in every event through
    /// [`Context::data`] / [`Context::data_mut`], and dropped when the connection leaves the
    /// server (after `on_close`). No `HashMap<ConnId, _>` in the application. `Send`, so
    /// a server can be moved to the thread that runs it.
    type Data: Send;

    /// The loop is about to start serving: set the loop's own timers here (a periodic
    /// tick with [`Context::set_interval`]). With several loops, each loop's handler hears
    /// it on its own loop.
    fn on_start(&mut self, _ctx: &mut Context<'_, Self::Data>) {}

    /// Checks an upgrade request (path, headers, `Origin`), picks a subprotocol, adds headers
    /// or rejects it, like `ws`'s `verifyClient` and `handleProtocols`.
    fn on_upgrade(&mut self, _req: &Request<'_, '_>) -> Upgrade<Self::Data> {
        Upgrade::accept()
    }

    /// Answers a plain HTTP request on the same port (`GET /healthz`, a small JSON
    /// endpoint, a page). The default answers `426 Upgrade Required`: this is a WebSocket
    /// endpoint. `HEAD` requests come here too; the server sends the answer without its body.
    fn on_request(
        &mut self,
        _ctx: &mut Context<'_, Self::Data>,
        _req: &Request<'_, '_>,
    ) -> Response {
        Response::text(426, "this is a WebSocket endpoint\n").header("Upgrade", "websocket")
    }

    /// The connection is open: the 101 response is queued and sends are accepted. What
    /// `on_upgrade` learned from the request is in [`Context::data`] if it put it there.
    fn on_open(&mut self, _ctx: &mut Context<'_, Self::Data>, _id: ConnId) {}

    /// A complete text or binary message. Messages the peer sent before it saw the server's
    /// close frame are still delivered (`ready_state` is then `Closing`); replies to them are
    /// refused, as nothing may follow a close frame.
    fn on_message(&mut self, _ctx: &mut Context<'_, Self::Data>, _id: ConnId, _msg: Message<'_>) {}

    /// A ping; with `auto_pong` on (the default) the pong has already been queued.
    fn on_ping(&mut self, _ctx: &mut Context<'_, Self::Data>, _id: ConnId, _payload: &[u8]) {}

    /// A pong, solicited or not.
    fn on_pong(&mut self, _ctx: &mut Context<'_, Self::Data>, _id: ConnId, _payload: &[u8]) {}

    /// The send queue, which had passed the backpressure limit, is empty again.
    fn on_drain(&mut self, _ctx: &mut Context<'_, Self::Data>, _id: ConnId) {}

    /// The connection is closed for the application, exactly once per opened connection:
    /// no more events follow and sends are refused. It comes at the first of these: the
    /// peer's close frame arrives (`code` and `reason` are the peer's, `1005` when its frame
    /// had none; the server has already queued its answering close frame, and the socket
    /// closes once that is written and the peer closes its side, within the close timeout),
    /// or the connection ends without a close frame (`1006`: the peer vanished, a timeout, a
    /// protocol error the server answered, or [`Context::terminate`]). After the server's
    /// own [`Context::close`] it comes when the peer answers, or with `1006` when it does not.
    fn on_close(
        &mut self,
        _ctx: &mut Context<'_, Self::Data>,
        _id: ConnId,
        _code: CloseCode,
        _reason: &str,
    ) {
    }

    /// Client: the server's 101 came (Node `ws`'s `upgrade` event): its headers are here
    /// (`Set-Cookie`, say), and `on_open` follows.
    fn on_upgrade_response(
        &mut self,
        _ctx: &mut Context<'_, Self::Data>,
        _id: ConnId,
        _response: &Opened,
    ) {
    }

    /// Client: the server answered with a status other than 101 (Node `ws`'s
    /// `unexpected-response`): a 401 with its reason, a redirect. The body is read up to
    /// [`MAX_REFUSED_BODY`](crate::proto::connection::MAX_REFUSED_BODY) bytes.
    /// `on_error` ([`Error::Handshake`]) and `on_close` (1006) follow.
    fn on_unexpected_response(
        &mut self,
        _ctx: &mut Context<'_, Self::Data>,
        _id: ConnId,
        _response: &Refused,
    ) {
    }

    /// Something went wrong; `on_close` follows.
    fn on_error(&mut self, _ctx: &mut Context<'_, Self::Data>, _id: ConnId, _err: &Error) {}

    /// A timer set with [`Context::set_timeout`] or [`Context::set_interval`] came due.
    fn on_timer(&mut self, _ctx: &mut Context<'_, Self::Data>, _timer: Timer) {}

    /// A message published to `topic` was not queued for subscriber `id`: its buffered
    /// amount was over the backpressure limit and the slow-subscriber policy is to drop.
    fn on_publish_dropped(
        &mut self,
        _ctx: &mut Context<'_, Self::Data>,
        _id: ConnId,
        _topic: &str,
    ) {
    }
}

/// A message that owns its payload, for sending from another thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OwnedMessage {
    Text(String),
    Binary(Vec<u8>),
}

impl OwnedMessage {
    /// Borrows it as a [`Message`].
    pub fn as_message(&self) -> Message<'_> {
        match self {
            OwnedMessage::Text(text) => Message::Text(text),
            OwnedMessage::Binary(bytes) => Message::Binary(bytes),
        }
    }
}

impl From<String> for OwnedMessage {
    fn from(text: String) -> OwnedMessage {
        OwnedMessage::Text(text)
    }
}

impl From<&str> for OwnedMessage {
    fn from(text: &str) -> OwnedMessage {
        OwnedMessage::Text(text.to_owned())
    }
}

impl From<Vec<u8>> for OwnedMessage {
    fn from(bytes: Vec<u8>) -> OwnedMessage {
        OwnedMessage::Binary(bytes)
    }
}

/// The binary's default handler: every message is sent back as it came.
#[derive(Debug, Default, Clone, Copy)]
pub struct Echo;

impl Handler for Echo {
    type Data = ();

    fn on_message(&mut self, ctx: &mut Context<'_>, id: ConnId, msg: Message<'_>) {
        // Backpressure needs no handling here: past the limit the server stops reading this
        // connection until the replies drain.
        let _ = ctx.send(id, msg);
    }
}
