//! The permessage-deflate extension (RFC 7692): negotiating it in the opening handshake and
//! compressing and decompressing whole messages, with no I/O.
//!
//! - [`negotiate`] reads the client's `Sec-WebSocket-Extensions` offers and returns the
//!   [`DeflateParams`] to answer with (their `Display` is the response header value).
//! - [`PerMessageDeflate`] is one connection's compression state. Its zlib streams are made on
//!   first use and dropped after each message when the negotiated parameters forbid context
//!   takeover in that direction, so an idle connection holds no zlib memory where the
//!   parameters allow it.
//!
//! The frame layer is not here: the receiver hands out
//! [`Event::Compressed`](crate::proto::Event::Compressed) for messages with RSV1 set, and the
//! sender sets RSV1 on the first frame of a message it compressed.
//!
//! What a zlib stream costs (from zlib-rs's allocation layout): a compressor about 370 KiB at
//! 15 window bits (its 128 KiB hash table does not shrink with the window, so still about
//! 240 KiB at 9 bits); a decompressor about 40 KiB whatever the window, since zlib-rs always
//! allocates the full 32 KiB. With context takeover a stream stays for the life of the
//! connection once a compressed message has gone that way.
//!
//! The code is in two parts, both re-exported here: `negotiation` (RFC 7692 section 7.1:
//! offers, answers and their parameters, on the header grammar of [`crate::proto::header`])
//! and `codec` (section 7.2: [`PerMessageDeflate`] and the [`SharedStreams`] it borrows).

mod codec;
mod negotiation;

pub use codec::{PerMessageDeflate, SharedStreams};
pub use negotiation::{
    negotiate, parse_response, DeflateConfig, DeflateParams, CLIENT_OFFER, EXTENSION_NAME,
};
