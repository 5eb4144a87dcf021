//! Frame headers (RFC 6455 section 5.2): parsing and encoding as pure functions over byte slices.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-------+-+-------------+-------------------------------+
//! |F|R|R|R| opcode|M| Payload len |    Extended payload length    |
//! |I|S|S|S|  (4)  |A|     (7)     |             (16/64)           |
//! |N|V|V|V|       |S|             |   (if payload len==126/127)   |
//! | |1|2|3|       |K|             |                               |
//! +-+-+-+-+-------+-+-------------+ - - - - - - - - - - - - - - - +
//! |     Extended payload length continued, if payload len == 127  |
//! + - - - - - - - - - - - - - - - +-------------------------------+
//! |                               |Masking-key, if MASK set to 1  |
//! +-------------------------------+-------------------------------+
//! ```

use super::error::ProtocolError;
use super::Status;

/// The longest possible frame header: 2 fixed bytes, 8 length bytes, 4 mask bytes.
pub const MAX_HEADER_LEN: usize = 14;

/// The largest payload of a control frame.
///
/// RFC 6455 section 5.5: "All control frames MUST have a payload length of 125 bytes or less".
pub const MAX_CONTROL_PAYLOAD: usize = 125;

/// A frame opcode (RFC 6455 section 5.2, "Opcode: 4 bits"). The order is relied on:
/// per-opcode metrics use `opcode as usize` as their index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpCode {
    Continuation,
    Text,
    Binary,
    Close,
    Ping,
    Pong,
}

impl OpCode {
    /// Decodes the low nibble of the first header byte; `None` for the reserved opcodes
    /// %x3-7 and %xB-F.
    pub fn from_nibble(nibble: u8) -> Option<OpCode> {
        match nibble {
            0x0 => Some(OpCode::Continuation),
            0x1 => Some(OpCode::Text),
            0x2 => Some(OpCode::Binary),
            0x8 => Some(OpCode::Close),
            0x9 => Some(OpCode::Ping),
            0xA => Some(OpCode::Pong),
            _ => None,
        }
    }

    /// The wire value of this opcode.
    pub fn as_nibble(self) -> u8 {
        match self {
            OpCode::Continuation => 0x0,
            OpCode::Text => 0x1,
            OpCode::Binary => 0x2,
            OpCode::Close => 0x8,
            OpCode::Ping => 0x9,
            OpCode::Pong => 0xA,
        }
    }

    /// Close, ping and pong: "Control frames are identified by opcodes where the most
    /// significant bit of the opcode is 1" (section 5.5).
    pub fn is_control(self) -> bool {
        self.as_nibble() & 0x8 != 0
    }
}

/// RSV1, the bit permessage-deflate uses to mark a compressed message (RFC 7692 section 6).
pub const RSV1: u8 = 0x40;
/// RSV2; no extension wsloop knows uses it.
pub const RSV2: u8 = 0x20;
/// RSV3; no extension wsloop knows uses it.
pub const RSV3: u8 = 0x10;

/// A parsed frame header. The payload follows it on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    pub fin: bool,
    /// The RSV1..RSV3 bits, in their wire positions (`RSV1`, `RSV2`, `RSV3`).
    pub rsv: u8,
    pub opcode: OpCode,
    pub mask: Option<[u8; 4]>,
    pub payload_len: u64,
}

impl FrameHeader {
    /// Parses a header from the start of `buf`.
    ///
    /// Returns `Status::Partial` when `buf` ends before the header does (nothing is consumed
    /// then: call again with more bytes), or the header and its length in bytes. Checks that
    /// need no connection state are made here: reserved opcodes, the 64-bit length's top bit,
    /// and the control-frame rules of section 5.5.
    ///
    /// ```
    /// use wsloop::proto::{FrameHeader, OpCode, Status};
    /// // A masked text frame "Hello" from RFC 6455 section 5.7, header only.
    /// let bytes = [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d];
    /// let (header, len) = match FrameHeader::parse(&bytes).unwrap() {
    ///     Status::Complete(parsed) => parsed,
    ///     Status::Partial => unreachable!(),
    /// };
    /// assert_eq!(len, 6);
    /// assert_eq!(header.opcode, OpCode::Text);
    /// assert_eq!(header.payload_len, 5);
    /// assert_eq!(FrameHeader::parse(&bytes[..3]).unwrap(), Status::Partial);
    /// ```
    pub fn parse(buf: &[u8]) -> Result<Status<(FrameHeader, usize)>, ProtocolError> {
        let (b0, b1) = match buf {
            [b0, b1, ..] => (*b0, *b1),
            _ => return Ok(Status::Partial),
        };
        let fin = b0 & 0x80 != 0;
        let rsv = b0 & (RSV1 | RSV2 | RSV3);
        // "If an unknown opcode is received, the receiving endpoint MUST _Fail the WebSocket
        // Connection_." (section 5.2)
        let opcode =
            OpCode::from_nibble(b0 & 0x0F).ok_or(ProtocolError::ReservedOpcode(b0 & 0x0F))?;
        let masked = b1 & 0x80 != 0;
        let len7 = b1 & 0x7F;

        if opcode.is_control() {
            // "All control frames MUST have a payload length of 125 bytes or less and MUST NOT
            // be fragmented." (section 5.5)
            if !fin {
                return Err(ProtocolError::FragmentedControlFrame);
            }
            if usize::from(len7) > MAX_CONTROL_PAYLOAD {
                return Err(ProtocolError::ControlFrameTooLong);
            }
        }

        let len_bytes = match len7 {
            126 => 2,
            127 => 8,
            _ => 0,
        };
        let header_len = 2 + len_bytes + if masked { 4 } else { 0 };
        if buf.len() < header_len {
            return Ok(Status::Partial);
        }
        let payload_len = match len7 {
            126 => u64::from(u16::from_be_bytes([buf[2], buf[3]])),
            127 => {
                let mut be = [0u8; 8];
                be.copy_from_slice(&buf[2..10]);
                let len = u64::from_be_bytes(be);
                // "the most significant bit MUST be 0" (section 5.2)
                if len >> 63 != 0 {
                    return Err(ProtocolError::LengthTopBitSet);
                }
                len
            }
            n => u64::from(n),
        };
        let mask = if masked {
            let at = 2 + len_bytes;
            Some([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]])
        } else {
            None
        };
        Ok(Status::Complete((
            FrameHeader {
                fin,
                rsv,
                opcode,
                mask,
                payload_len,
            },
            header_len,
        )))
    }

    /// Writes this header into `out` in its shortest form and returns how many bytes it took.
    ///
    /// ```
    /// use wsloop::proto::{FrameHeader, OpCode, MAX_HEADER_LEN};
    /// let header = FrameHeader { fin: true, rsv: 0, opcode: OpCode::Binary, mask: None, payload_len: 256 };
    /// let mut out = [0u8; MAX_HEADER_LEN];
    /// let len = header.encode(&mut out);
    /// assert_eq!(&out[..len], &[0x82, 126, 0x01, 0x00]);
    /// ```
    pub fn encode(&self, out: &mut [u8; MAX_HEADER_LEN]) -> usize {
        out[0] = (u8::from(self.fin) << 7) | self.rsv | self.opcode.as_nibble();
        let mask_bit = if self.mask.is_some() { 0x80 } else { 0 };
        let mut len = if self.payload_len < 126 {
            out[1] = mask_bit | self.payload_len as u8;
            2
        } else if let Ok(short) = u16::try_from(self.payload_len) {
            out[1] = mask_bit | 126;
            out[2..4].copy_from_slice(&short.to_be_bytes());
            4
        } else {
            out[1] = mask_bit | 127;
            out[2..10].copy_from_slice(&self.payload_len.to_be_bytes());
            10
        };
        if let Some(mask) = self.mask {
            out[len..len + 4].copy_from_slice(&mask);
            len += 4;
        }
        len
    }

    /// The encoded length of this header.
    pub fn encoded_len(&self) -> usize {
        let len_bytes = match self.payload_len {
            0..=125 => 0,
            126..=0xFFFF => 2,
            _ => 8,
        };
        2 + len_bytes + if self.mask.is_some() { 4 } else { 0 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_complete(bytes: &[u8]) -> (FrameHeader, usize) {
        match FrameHeader::parse(bytes).expect("valid header") {
            Status::Complete(parsed) => parsed,
            Status::Partial => panic!("partial"),
        }
    }

    #[test]
    fn round_trips_all_length_forms() {
        for &len in &[
            0u64,
            1,
            125,
            126,
            127,
            0xFFFF,
            0x1_0000,
            1 << 40,
            (1 << 63) - 1,
        ] {
            for mask in [None, Some([1, 2, 3, 4])] {
                let header = FrameHeader {
                    fin: len % 2 == 0,
                    rsv: RSV1,
                    opcode: OpCode::Binary,
                    mask,
                    payload_len: len,
                };
                let mut out = [0u8; MAX_HEADER_LEN];
                let n = header.encode(&mut out);
                assert_eq!(n, header.encoded_len());
                assert_eq!(parse_complete(&out[..n]), (header, n));
                for cut in 0..n {
                    assert_eq!(
                        FrameHeader::parse(&out[..cut]).unwrap(),
                        Status::Partial,
                        "cut at {cut}"
                    );
                }
            }
        }
    }

    #[test]
    fn rejects_reserved_opcodes() {
        for op in [3u8, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF] {
            assert_eq!(
                FrameHeader::parse(&[0x80 | op, 0x80]),
                Err(ProtocolError::ReservedOpcode(op))
            );
        }
    }

    #[test]
    fn rejects_length_with_top_bit() {
        let mut bytes = vec![0x82, 127];
        bytes.extend_from_slice(&(1u64 << 63).to_be_bytes());
        assert_eq!(
            FrameHeader::parse(&bytes),
            Err(ProtocolError::LengthTopBitSet)
        );
    }

    #[test]
    fn rejects_bad_control_frames() {
        assert_eq!(
            FrameHeader::parse(&[0x09, 0x80]),
            Err(ProtocolError::FragmentedControlFrame)
        );
        assert_eq!(
            FrameHeader::parse(&[0x89, 0x80 | 126]),
            Err(ProtocolError::ControlFrameTooLong)
        );
        assert!(FrameHeader::parse(&[0x89, 0x80 | 125]).is_ok());
    }

    #[test]
    fn parses_rfc_examples() {
        // RFC 6455 section 5.7: a single-frame unmasked text message "Hello".
        let (header, len) = parse_complete(&[0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]);
        assert_eq!(len, 2);
        assert!(header.fin);
        assert_eq!(header.opcode, OpCode::Text);
        assert_eq!(header.mask, None);
        // 64 KiB binary message in a single unmasked frame.
        let (header, len) = parse_complete(&[0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0]);
        assert_eq!((header.payload_len, len), (65536, 10));
    }
}
