//! Building outgoing frames.

use super::close::{encode_close_payload, CloseCode};
use super::frame::{FrameHeader, OpCode, MAX_HEADER_LEN};
use super::mask::apply_mask;

/// Everything about a frame but its payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameSpec {
    pub fin: bool,
    pub rsv: u8,
    pub opcode: OpCode,
    /// `Some` in the client role, which must mask every frame; `None` in the server role.
    pub mask: Option<[u8; 4]>,
}

impl FrameSpec {
    /// A final, unmasked frame as a server sends it.
    pub fn server(opcode: OpCode) -> FrameSpec {
        FrameSpec {
            fin: true,
            rsv: 0,
            opcode,
            mask: None,
        }
    }

    /// The header this spec gives a payload of `len` bytes; returns the bytes and their count.
    pub fn header(&self, len: usize) -> ([u8; MAX_HEADER_LEN], usize) {
        let header = FrameHeader {
            fin: self.fin,
            rsv: self.rsv,
            opcode: self.opcode,
            mask: self.mask,
            payload_len: len as u64,
        };
        let mut bytes = [0u8; MAX_HEADER_LEN];
        let n = header.encode(&mut bytes);
        (bytes, n)
    }
}

/// Appends a whole frame to `out`, masking the payload copy when the spec has a mask.
///
/// ```
/// use wsloop::proto::{encode_frame, FrameSpec, OpCode};
/// let mut out = Vec::new();
/// encode_frame(&mut out, FrameSpec::server(OpCode::Text), b"Hello");
/// assert_eq!(out, [0x81, 0x05, b'H', b'e', b'l', b'l', b'o']);
/// ```
pub fn encode_frame(out: &mut Vec<u8>, spec: FrameSpec, payload: &[u8]) {
    let (header, n) = spec.header(payload.len());
    out.reserve(n + payload.len());
    out.extend_from_slice(&header[..n]);
    let start = out.len();
    out.extend_from_slice(payload);
    if let Some(mask) = spec.mask {
        apply_mask(&mut out[start..], mask, 0);
    }
}

/// Appends a close frame with `code` and `reason` (cut to fit 125 bytes).
pub fn encode_close(
    out: &mut Vec<u8>,
    code: Option<CloseCode>,
    reason: &str,
    mask: Option<[u8; 4]>,
) {
    let mut payload = [0u8; 125];
    let len = match code {
        Some(code) => encode_close_payload(code, reason, &mut payload),
        None => 0,
    };
    let spec = FrameSpec {
        mask,
        ..FrameSpec::server(OpCode::Close)
    };
    encode_frame(out, spec, &payload[..len]);
}
