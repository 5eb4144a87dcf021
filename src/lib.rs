//! wsloop: a WebSocket server (RFC 6455) on a single-threaded `mio` reactor, built to hold
//! very many connections on few cores.
//!
//! - [`proto`]: the protocol with no I/O (handshake, frames, sessions); usable in the client
//!   role too.
//! - [`Server`]: the event loop that owns the sockets.
//! - [`Handler`]: the application's callbacks, with a [`Context`] to send and close.
//! - [`tls`]: wss:// from PEM files, with certificate rotation.
//!
//! ```no_run
//! use wsloop::{Config, ConnId, Context, Handler, Message, Server};
//!
//! struct Echo;
//!
//! impl Handler for Echo {
//!     type Data = (); // nothing kept per connection
//!
//!     fn on_message(&mut self, ctx: &mut Context<'_>, id: ConnId, msg: Message<'_>) {
//!         let _ = ctx.send(id, msg);
//!     }
//! }
//!
//! Server::bind(Config::default(), Echo)?.run()?;
//! # Ok::<(), std::io::Error>(())
//! ```

// Connection ids pack a generation, a loop index and a slab index into a 64-bit poll token.
const _: () = assert!(usize::BITS >= 64, "wsloop needs a 64-bit target");

pub mod client;
mod config;
mod handler;
pub mod metrics;
pub mod page;
pub mod proto;
pub mod rooms;
mod server;
pub mod tls;
pub mod units;

pub use config::{Accept, Config, SlowSubscriber};
pub use handler::{Echo, Error, Handler, Message, OwnedMessage, Response, Upgrade};
pub use metrics::Metrics;
pub use proto::{CloseCode, ReadyState, Request, SendError};
pub use server::{
    available_cores, Cluster, ConnId, Context, Published, Remote, RemoteError, SendStatus, Server,
    ShutdownHandle, Timer, TimerId, ACCESS_LOG_TARGET, MAX_LOOPS,
};

// The README's examples are compiled as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
