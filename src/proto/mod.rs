//! The WebSocket protocol with no I/O: bytes in, events and bytes out.
//!
//! Nothing here imports `mio` or `std::net`, so every part can be tested and fuzzed from byte
//! slices. The reactor in [`crate::server`] is the only code that touches sockets.
//!
//! - [`handshake`]: the opening handshake (RFC 6455 section 4), both roles.
//! - [`header`]: the header grammar it reads: lists, tokens, quoted strings, extension
//!   parameters (RFC 9110 section 5.6, RFC 6455 section 9.1).
//! - [`frame`]: frame headers, parsed and encoded (section 5.2).
//! - [`mask`]: payload masking (section 5.3).
//! - [`receiver`]: frames to messages, with fragmentation, UTF-8 and size limits.
//! - [`session`]: an open connection: automatic pongs and the closing handshake.
//! - [`connection`]: a connection's whole life in either role: the handshake, the open
//!   session with permessage-deflate, keep-alive and the end; what the reactor and the load
//!   generator keep per socket.
//! - [`encode`]: outgoing frames.
//! - [`deflate`]: the permessage-deflate extension (RFC 7692): negotiation and compression.
//! - [`url`]: WebSocket URLs (RFC 6455 section 3): host, port, `Host` header, resource.

pub mod close;
pub mod connection;
pub mod deflate;
pub mod encode;
pub mod error;
pub mod frame;
pub mod handshake;
pub mod header;
pub mod mask;
pub mod query;
pub mod receiver;
pub mod session;
pub mod url;
pub mod utf8;

pub use close::{parse_close_payload, CloseCode};
pub use connection::Connection;
pub use deflate::{DeflateConfig, DeflateParams, PerMessageDeflate};
pub use encode::{encode_close, encode_frame, FrameSpec};
pub use error::ProtocolError;
pub use frame::{FrameHeader, OpCode, MAX_CONTROL_PAYLOAD, MAX_HEADER_LEN, RSV1, RSV2, RSV3};
pub use handshake::{accept_key, parse_request, HandshakeError, Parsed, Request, MAX_HEADERS};
pub use mask::{apply_mask, apply_mask_scalar};
pub use receiver::{Decoded, Event, Receiver, Role};
pub use session::{random_key, random_mask, ReadyState, SendError, Session, SessionEvent};
pub use utf8::{Utf8Error, Utf8Stream};

/// The result of parsing input that may be incomplete, as in `httparse`: `Partial` is not an
/// error, it asks for more bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status<T> {
    /// Parsed, with the value.
    Complete(T),
    /// The input ends before the item does; nothing was consumed.
    Partial,
}
