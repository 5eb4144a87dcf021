//! Why a peer's bytes broke the protocol, and the close code that says so.

use std::fmt;

use super::close::CloseCode;

/// A violation of RFC 6455 (or of a configured limit) by the peer. Each one fails the
/// connection with the close code from [`ProtocolError::close_code`].
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtocolError {
    /// An opcode from the reserved ranges %x3-7 or %xB-F.
    ReservedOpcode(u8),
    /// An RSV bit set that no negotiated extension defines.
    ReservedBits,
    /// A client frame without a mask (the server role), or a server frame with one (the client role).
    BadMasking,
    /// A 64-bit payload length with its most significant bit set.
    LengthTopBitSet,
    /// A control frame with more than 125 bytes of payload.
    ControlFrameTooLong,
    /// A control frame without FIN.
    FragmentedControlFrame,
    /// A continuation frame with no fragmented message to continue.
    UnexpectedContinuation,
    /// A text or binary frame while a fragmented message is still open.
    ExpectedContinuation,
    /// A text message or close reason that is not UTF-8.
    InvalidUtf8,
    /// A close frame with a one-byte payload.
    CloseFrameTooShort,
    /// A close frame with a code that must not be sent on the wire.
    InvalidCloseCode(u16),
    /// A message (after inflating, where compressed) over the configured maximum size.
    MessageTooBig,
    /// A compressed message that does not inflate (permessage-deflate).
    BadCompression,
}

impl ProtocolError {
    /// The close code to send when failing the connection for this error.
    pub fn close_code(self) -> CloseCode {
        match self {
            ProtocolError::InvalidUtf8 => CloseCode::INVALID_PAYLOAD,
            ProtocolError::MessageTooBig => CloseCode::MESSAGE_TOO_BIG,
            _ => CloseCode::PROTOCOL_ERROR,
        }
    }

    /// A short reason, sent in the close frame.
    pub fn reason(self) -> &'static str {
        match self {
            ProtocolError::ReservedOpcode(_) => "reserved opcode",
            ProtocolError::ReservedBits => "reserved bits set",
            ProtocolError::BadMasking => "bad masking",
            ProtocolError::LengthTopBitSet => "payload length too large",
            ProtocolError::ControlFrameTooLong => "control frame too long",
            ProtocolError::FragmentedControlFrame => "fragmented control frame",
            ProtocolError::UnexpectedContinuation => "unexpected continuation frame",
            ProtocolError::ExpectedContinuation => "expected continuation frame",
            ProtocolError::InvalidUtf8 => "invalid UTF-8",
            ProtocolError::CloseFrameTooShort => "close frame too short",
            ProtocolError::InvalidCloseCode(_) => "invalid close code",
            ProtocolError::MessageTooBig => "message too big",
            ProtocolError::BadCompression => "bad compressed data",
        }
    }
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProtocolError::ReservedOpcode(op) => write!(f, "reserved opcode {op:#x}"),
            ProtocolError::InvalidCloseCode(code) => write!(f, "invalid close code {code}"),
            other => f.write_str(other.reason()),
        }
    }
}

impl std::error::Error for ProtocolError {}
