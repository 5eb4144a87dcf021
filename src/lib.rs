//! wsloop: a WebSocket server (RFC 6455) on a single-threaded `mio` reactor.
//!
//! - [`proto`]: the protocol with no I/O (handshake, frames, sessions).

pub mod proto;
