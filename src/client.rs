//! The client role: outgoing connections in the same event loop as the server's, the
//! browser's `new WebSocket(url, protocols)` with the options of Node's `ws` client.
//!
//! A connection opened with [`Context::connect`](crate::Context::connect) (or
//! [`Server::connect`](crate::Server::connect) before the loop runs, or
//! [`Remote::connect`](crate::Remote::connect) from another thread) gets an id at once and is
//! CONNECTING through name resolution, the TCP connect, the TLS handshake (`wss://`) and the
//! opening handshake. Its events come to the same [`Handler`](crate::Handler) as the
//! server's: [`on_upgrade_response`](crate::Handler::on_upgrade_response) then `on_open`,
//! messages, `on_close`; or, when it cannot open,
//! [`on_unexpected_response`](crate::Handler::on_unexpected_response) for an answer other
//! than 101, then `on_error` and `on_close` with 1006, as a browser fires `error` then
//! `close`. Sends, `close`, `ready_state` and `buffered_amount` work as for the server's
//! connections; frames are masked with a fresh key from a CSPRNG-seeded generator each.
//!
//! ```no_run
//! use wsloop::client::ConnectOptions;
//! use wsloop::{Config, ConnId, Context, Handler, Message, Server};
//!
//! struct Hello;
//!
//! impl Handler for Hello {
//!     type Data = ();
//!
//!     fn on_open(&mut self, ctx: &mut Context<'_>, id: ConnId) {
//!         let _ = ctx.send_text(id, "hello");
//!     }
//!
//!     fn on_message(&mut self, ctx: &mut Context<'_>, id: ConnId, msg: Message<'_>) {
//!         println!("{msg:?}");
//!         let _ = ctx.close(id, wsloop::CloseCode::NORMAL, "bye");
//!     }
//! }
//!
//! let mut server = Server::bind(Config::default(), Hello)?;
//! server.connect("ws://127.0.0.1:9001/", &ConnectOptions::new().protocol("chat"))?;
//! server.run()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

pub use crate::proto::connection::{OpenError, Opened, Refused};
use crate::proto::deflate::DeflateConfig;
use crate::proto::url::UrlError;

/// How to open an outgoing connection: `new WebSocket(url, protocols)` and the options of
/// Node's `ws` client. Built like [`Upgrade`](crate::Upgrade):
///
/// ```
/// use std::time::Duration;
/// use wsloop::client::ConnectOptions;
///
/// let options = ConnectOptions::new()
///     .protocol("chat.v2")
///     .header("Authorization", "Bearer abc")
///     .header("Origin", "https://example.com")
///     .connect_timeout(Duration::from_secs(3))
///     .deflate(true);
/// # let _ = options;
/// ```
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    pub(crate) protocols: Vec<String>,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) connect_timeout: Duration,
    pub(crate) handshake_timeout: Option<Duration>,
    pub(crate) max_message_size: Option<usize>,
    pub(crate) deflate: Option<DeflateConfig>,
    pub(crate) tls: Option<Arc<rustls::ClientConfig>>,
}

impl Default for ConnectOptions {
    fn default() -> ConnectOptions {
        ConnectOptions {
            protocols: Vec::new(),
            headers: Vec::new(),
            connect_timeout: Duration::from_secs(10),
            handshake_timeout: None,
            max_message_size: None,
            deflate: None,
            tls: None,
        }
    }
}

impl ConnectOptions {
    /// No subprotocol, no extra headers, no compression, a 10 s connect timeout, the
    /// server's handshake timeout and message size limit ([`Config`](crate::Config)).
    pub fn new() -> ConnectOptions {
        ConnectOptions::default()
    }

    /// Offers a subprotocol in `Sec-WebSocket-Protocol` (in the order given: the browser's
    /// `protocols` argument). The server's choice is checked: one not offered fails the
    /// connection ([`OpenError::ProtocolNotOffered`]).
    pub fn protocol(mut self, name: &str) -> ConnectOptions {
        self.protocols.push(name.to_owned());
        self
    }

    /// Adds a request header (`Authorization`, `Cookie`, `Origin`). Names that are not HTTP
    /// tokens and values with CR, LF or NUL are refused by `connect`, so a header cannot
    /// split the request; the handshake's own headers cannot be replaced.
    pub fn header(mut self, name: &str, value: &str) -> ConnectOptions {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// How long name resolution and the TCP connect may take together (10 s by default);
    /// past it the connection fails with a timed-out [`Error::Connect`](crate::Error).
    pub fn connect_timeout(mut self, timeout: Duration) -> ConnectOptions {
        self.connect_timeout = timeout;
        self
    }

    /// How long the TLS and opening handshakes may take once connected (by default the
    /// server's [`Config::handshake_timeout`](crate::Config)).
    pub fn handshake_timeout(mut self, timeout: Duration) -> ConnectOptions {
        self.handshake_timeout = Some(timeout);
        self
    }

    /// Messages over this many bytes (after inflating) fail the connection with 1009 (by
    /// default the server's [`Config::max_message_size`](crate::Config)).
    pub fn max_message_size(mut self, bytes: usize) -> ConnectOptions {
        self.max_message_size = Some(bytes);
        self
    }

    /// Offers permessage-deflate (RFC 7692) with the default settings, as browsers do.
    pub fn deflate(mut self, on: bool) -> ConnectOptions {
        self.deflate = on.then(DeflateConfig::default);
        self
    }

    /// Offers permessage-deflate with these settings.
    pub fn deflate_config(mut self, config: DeflateConfig) -> ConnectOptions {
        self.deflate = Some(config);
        self
    }

    /// The TLS settings of a `wss://` connection: which servers to trust (see
    /// [`tls::client_config_with_ca_file`](crate::tls::client_config_with_ca_file)). A
    /// `wss://` URL without them is refused by `connect`.
    pub fn tls(mut self, config: Arc<rustls::ClientConfig>) -> ConnectOptions {
        self.tls = Some(config);
        self
    }
}

/// Why `connect` refused at once, before any event (what fails later comes to
/// [`Handler::on_error`](crate::Handler::on_error)).
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectError {
    /// The URL is not a `ws://` or `wss://` URL (the browser's `SyntaxError`).
    Url(UrlError),
    /// A request header has a name that is not an HTTP token or a value with CR, LF or NUL,
    /// or is one the handshake writes itself.
    Header(String),
    /// A subprotocol name that is not an HTTP token (RFC 6455 section 4.1), or offered twice.
    Protocol(String),
    /// A `wss://` URL, and [`ConnectOptions::tls`] was not given.
    NoTls,
    /// rustls refused the TLS settings.
    Tls(String),
    /// The loop already holds `max_connections` connections.
    Full,
    /// The server is shutting down, or has stopped.
    Stopped,
    /// [`Remote::connect`](crate::Remote::connect): the loop's mailbox is full; try again.
    Busy,
    /// [`Remote::connect`](crate::Remote::connect) on a loop's own thread, which would wait
    /// for itself: use [`Context::connect`](crate::Context::connect) there.
    OnLoopThread,
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectError::Url(err) => write!(f, "bad URL: {err}"),
            ConnectError::Header(name) => write!(f, "request header {name:?} cannot be sent"),
            ConnectError::Protocol(name) => write!(f, "subprotocol {name:?} cannot be offered"),
            ConnectError::NoTls => f.write_str("a wss:// URL needs ConnectOptions::tls"),
            ConnectError::Tls(err) => write!(f, "TLS settings refused: {err}"),
            ConnectError::Full => f.write_str("the loop holds max_connections connections"),
            ConnectError::Stopped => f.write_str("the server is shutting down"),
            ConnectError::Busy => f.write_str("the loop's mailbox is full"),
            ConnectError::OnLoopThread => {
                f.write_str("Remote::connect on a loop's thread: use Context::connect")
            }
        }
    }
}

impl std::error::Error for ConnectError {}

impl From<UrlError> for ConnectError {
    fn from(err: UrlError) -> ConnectError {
        ConnectError::Url(err)
    }
}
