//! What the application writes: callbacks for the events of the browser `WebSocket` API and
//! Node's `ws`, and the answer to an upgrade request.

use std::fmt;
use std::io;

use crate::proto::{CloseCode, ProtocolError, Request};
use crate::server::{ConnId, Context};

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
#[derive(Debug)]
pub enum Error {
    /// The peer broke the protocol; a close frame with the matching code was sent.
    Protocol(ProtocolError),
    /// The socket failed (reset by the peer, for example).
    Io(io::Error),
    /// The peer did not answer a ping within the idle timeout, or a close within the close
    /// timeout.
    Timeout,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Protocol(err) => write!(f, "protocol error: {err}"),
            Error::Io(err) => write!(f, "I/O error: {err}"),
            Error::Timeout => f.write_str("timed out"),
        }
    }
}

impl std::error::Error for Error {}

/// The answer to an upgrade request, from [`Handler::on_upgrade`].
///
/// ```
/// use wsloop::Upgrade;
/// let accept = Upgrade::accept().protocol("chat.v2").header("X-Server", "wsloop");
/// let reject = Upgrade::reject(403, "origin not allowed");
/// # let _ = (accept, reject);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Upgrade {
    /// Open the connection.
    Accept {
        /// The subprotocol chosen from those the client offered.
        protocol: Option<String>,
        /// Extra response headers.
        headers: Vec<(String, String)>,
        /// Topics to subscribe the connection to as it opens.
        topics: Vec<String>,
    },
    /// Answer with an HTTP error and close.
    Reject { status: u16, body: String },
}

impl Upgrade {
    /// Accept with no subprotocol and no extra headers.
    pub fn accept() -> Upgrade {
        Upgrade::Accept {
            protocol: None,
            headers: Vec::new(),
            topics: Vec::new(),
        }
    }

    /// Refuse with an HTTP `status` (e.g. 401, 403, 404) and a short text body.
    pub fn reject(status: u16, body: &str) -> Upgrade {
        Upgrade::Reject {
            status,
            body: body.to_owned(),
        }
    }

    /// Chooses the subprotocol answered in `Sec-WebSocket-Protocol`. It must be one the
    /// client offered ([`Request::protocols`]).
    pub fn protocol(mut self, chosen: &str) -> Upgrade {
        if let Upgrade::Accept { protocol, .. } = &mut self {
            *protocol = Some(chosen.to_owned());
        }
        self
    }

    /// Subscribes the connection to `topic` as it opens (see [`Context::publish`]).
    pub fn subscribe(mut self, topic: &str) -> Upgrade {
        if let Upgrade::Accept { topics, .. } = &mut self {
            topics.push(topic.to_owned());
        }
        self
    }

    /// Adds a response header to an accepted upgrade.
    pub fn header(mut self, name: &str, value: &str) -> Upgrade {
        if let Upgrade::Accept { headers, .. } = &mut self {
            headers.push((name.to_owned(), value.to_owned()));
        }
        self
    }
}

/// The application's side of the server. Every method has a default that does nothing (or
/// accepts the upgrade), so a handler implements only the events it cares about.
///
/// Events for one connection come in this order: `on_upgrade`, `on_open`, then any number
/// of `on_message` / `on_ping` / `on_pong` / `on_drain`, maybe `on_error`, and `on_close`
/// exactly once for every connection that was opened.
///
/// ```no_run
/// use wsloop::{Config, Context, ConnId, Handler, Message, Request, Server, Upgrade};
///
/// struct Shout;
///
/// impl Handler for Shout {
///     fn on_upgrade(&mut self, req: &Request<'_, '_>) -> Upgrade {
///         match req.path() {
///             "/shout" => Upgrade::accept(),
///             _ => Upgrade::reject(404, "try /shout"),
///         }
///     }
///
///     fn on_message(&mut self, ctx: &mut Context<'_>, id: ConnId, msg: Message<'_>) {
///         if let Message::Text(text) = msg {
///             let _ = ctx.send_text(id, &text.to_uppercase());
///         }
///     }
/// }
///
/// Server::bind(Config::default(), Shout)?.run()?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub trait Handler {
    /// Checks an upgrade request (path, headers, `Origin`), picks a subprotocol, adds headers
    /// or rejects it, like `ws`'s `verifyClient` and `handleProtocols`.
    fn on_upgrade(&mut self, _req: &Request<'_, '_>) -> Upgrade {
        Upgrade::accept()
    }

    /// The connection is open: the 101 response is queued and sends are accepted.
    fn on_open(&mut self, _ctx: &mut Context<'_>, _id: ConnId) {}

    /// A complete text or binary message. Messages the peer sent before it saw the server's
    /// close frame are still delivered (`ready_state` is then `Closing`); replies to them are
    /// refused, as nothing may follow a close frame.
    fn on_message(&mut self, _ctx: &mut Context<'_>, _id: ConnId, _msg: Message<'_>) {}

    /// A ping; with `auto_pong` on (the default) the pong has already been queued.
    fn on_ping(&mut self, _ctx: &mut Context<'_>, _id: ConnId, _payload: &[u8]) {}

    /// A pong, solicited or not.
    fn on_pong(&mut self, _ctx: &mut Context<'_>, _id: ConnId, _payload: &[u8]) {}

    /// The send queue, which had passed the backpressure limit, is empty again.
    fn on_drain(&mut self, _ctx: &mut Context<'_>, _id: ConnId) {}

    /// The connection is closing or closed: `code` is the peer's close code, `1005` when its
    /// close frame had none, `1006` when the connection ended without a close frame.
    fn on_close(&mut self, _ctx: &mut Context<'_>, _id: ConnId, _code: CloseCode, _reason: &str) {}

    /// Something went wrong; `on_close` follows.
    fn on_error(&mut self, _ctx: &mut Context<'_>, _id: ConnId, _err: &Error) {}

    /// A message published to `topic` was not queued for subscriber `id`: its buffered
    /// amount was over the backpressure limit and the slow-subscriber policy is to drop.
    fn on_publish_dropped(&mut self, _ctx: &mut Context<'_>, _id: ConnId, _topic: &str) {}
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
    fn on_message(&mut self, ctx: &mut Context<'_>, id: ConnId, msg: Message<'_>) {
        // Backpressure needs no handling here: past the limit the server stops reading this
        // connection until the replies drain.
        let _ = ctx.send(id, msg);
    }
}
