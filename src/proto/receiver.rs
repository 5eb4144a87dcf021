//! The receive half of a WebSocket connection: frames in, messages and control frames out.
//!
//! [`Receiver::poll`] takes the bytes read so far, unmasks payloads in place and hands out
//! events that borrow them, so a message that arrives whole in one read is never copied. Only a
//! message that spans reads or frames is assembled in an owned buffer. Every length is
//! checked against the limits before anything is allocated for it.

use std::borrow::Cow;

use super::close::{parse_close_payload, CloseCode};
use super::error::ProtocolError;
use super::frame::{FrameHeader, OpCode, MAX_CONTROL_PAYLOAD, MAX_HEADER_LEN, RSV1};
use super::mask::apply_mask;
use super::utf8::{self, Utf8Stream};
use super::Status;

/// The most a frame's declared length makes the receiver reserve before its bytes arrive.
const RESERVE_AHEAD: u64 = 64 << 10;

/// Which end of the connection this is: it decides which frames must be masked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Receives masked frames: "a client MUST mask all frames that it sends to the server"
    /// (RFC 6455 section 5.1).
    Server,
    /// Receives unmasked frames: "A server MUST NOT mask any frames that it sends to the client".
    Client,
}

/// Something the peer sent, ready for the application.
#[derive(Debug, PartialEq, Eq)]
pub enum Event<'a> {
    /// A complete text message, valid UTF-8.
    Text(Cow<'a, str>),
    /// A complete binary message.
    Binary(Cow<'a, [u8]>),
    /// A ping; RFC 6455 section 5.5.2 asks for a pong with the same payload.
    Ping(Cow<'a, [u8]>),
    /// A pong, solicited or not.
    Pong(Cow<'a, [u8]>),
    /// A close frame: its code (`None` when the frame had no body) and reason.
    Close(Option<CloseCode>, Cow<'a, str>),
    /// A compressed message (RSV1 set on its first frame), still compressed; only produced when
    /// compressed messages were allowed with [`Receiver::allow_compressed`]. `text` says
    /// whether the inflated bytes must be UTF-8.
    Compressed { text: bool, data: Cow<'a, [u8]> },
}

/// The outcome of one [`Receiver::poll`] call.
#[derive(Debug)]
pub struct Decoded<'a> {
    /// How many input bytes were used. When `event` is `None` this is the whole input: what
    /// was not part of a complete frame has been kept inside the receiver.
    pub consumed: usize,
    pub event: Option<Event<'a>>,
}

/// Frame decoding state of one connection.
///
/// An idle receiver owns no heap memory; the buffer of a message in progress is released
/// when the message has been delivered.
#[derive(Debug)]
pub struct Receiver {
    role: Role,
    max_message_size: usize,
    compressed_allowed: bool,
    /// The start of a header that a read boundary cut off.
    header_spill: [u8; MAX_HEADER_LEN],
    header_spill_len: u8,
    frame: Option<FrameProgress>,
    message: Option<MessageProgress>,
    failed: Option<ProtocolError>,
}

/// A frame whose header has been read but not yet all of its payload.
#[derive(Debug)]
struct FrameProgress {
    opcode: OpCode,
    fin: bool,
    mask: Option<[u8; 4]>,
    phase: usize,
    remaining: u64,
    /// The payload read so far of a control frame cut by a read boundary.
    control: Vec<u8>,
    /// Whether any of this frame's payload has been consumed yet.
    started: bool,
}

/// A data message whose frames are not all in yet.
#[derive(Debug)]
struct MessageProgress {
    text: bool,
    compressed: bool,
    data: Vec<u8>,
    utf8: Utf8Stream,
}

impl Receiver {
    /// A receiver for `role` that fails messages over `max_message_size` bytes with 1009.
    pub fn new(role: Role, max_message_size: usize) -> Receiver {
        Receiver {
            role,
            max_message_size,
            compressed_allowed: false,
            header_spill: [0; MAX_HEADER_LEN],
            header_spill_len: 0,
            frame: None,
            message: None,
            failed: None,
        }
    }

    /// Accepts RSV1 on the first frame of a data message (permessage-deflate was negotiated);
    /// such messages come out as [`Event::Compressed`].
    pub fn allow_compressed(&mut self, allowed: bool) {
        self.compressed_allowed = allowed;
    }

    /// The configured maximum message size.
    pub fn max_message_size(&self) -> usize {
        self.max_message_size
    }

    /// Whether a frame or message is partly received (bytes are held that belong to it).
    pub fn is_mid_message(&self) -> bool {
        self.header_spill_len > 0 || self.frame.is_some() || self.message.is_some()
    }

    /// Decodes from `input` up to and including the next event.
    ///
    /// Payloads are unmasked in place in `input`. After an error the receiver stays failed:
    /// the byte stream can no longer be trusted.
    ///
    /// ```
    /// use wsloop::proto::{Event, Receiver, Role};
    /// let mut rx = Receiver::new(Role::Server, 1 << 20);
    /// // RFC 6455 section 5.7: a masked text frame "Hello".
    /// let mut input = [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58];
    /// let decoded = rx.poll(&mut input).unwrap();
    /// assert_eq!(decoded.consumed, 11);
    /// assert_eq!(decoded.event, Some(Event::Text("Hello".into())));
    /// ```
    pub fn poll<'a>(&mut self, input: &'a mut [u8]) -> Result<Decoded<'a>, ProtocolError> {
        if let Some(err) = self.failed {
            return Err(err);
        }
        let result = self.poll_inner(input);
        if let Err(err) = result {
            self.failed = Some(err);
            self.frame = None;
            self.message = None;
        }
        result
    }

    fn poll_inner<'a>(&mut self, input: &'a mut [u8]) -> Result<Decoded<'a>, ProtocolError> {
        let mut pos = 0;
        loop {
            if self.frame.is_none() {
                let Some(used) = self.read_header(&input[pos..])? else {
                    return Ok(Decoded {
                        consumed: input.len(),
                        event: None,
                    });
                };
                pos += used;
            }
            let frame = self.frame.as_mut().expect("a frame is in progress");
            let available = input.len() - pos;

            // The fast path: the whole payload is here and belongs to no larger message.
            let whole = !frame.started && frame.remaining <= available as u64;
            // A text or binary frame always starts a new message (begin_frame saw to that).
            let standalone =
                frame.opcode.is_control() || (frame.fin && frame.opcode != OpCode::Continuation);
            if whole && standalone {
                let len = frame.remaining as usize;
                let payload = &mut input[pos..pos + len];
                if let Some(mask) = frame.mask {
                    apply_mask(payload, mask, 0);
                }
                let opcode = frame.opcode;
                self.frame = None;
                let event = self.standalone_event(opcode, payload)?;
                return Ok(Decoded {
                    consumed: pos + len,
                    event: Some(event),
                });
            }

            // The slow path: copy this piece of the payload into the message or control buffer.
            let take = frame.remaining.min(available as u64) as usize;
            let piece = &mut input[pos..pos + take];
            if let Some(mask) = frame.mask {
                frame.phase = apply_mask(piece, mask, frame.phase);
            }
            pos += take;
            if frame.opcode.is_control() {
                frame.control.extend_from_slice(piece);
            } else {
                let message = self
                    .message
                    .as_mut()
                    .expect("data frames belong to a message");
                if !frame.started {
                    // Reserve for what is likely to come soon, not for what the header
                    // declares: a peer that declares 16 MiB and sends one byte must not cost
                    // 16 MiB. Past this, the buffer grows with the bytes that really arrive.
                    message
                        .data
                        .reserve(frame.remaining.min(RESERVE_AHEAD) as usize);
                }
                if message.text && !message.compressed {
                    message
                        .utf8
                        .feed(piece)
                        .map_err(|_| ProtocolError::InvalidUtf8)?;
                }
                message.data.extend_from_slice(piece);
            }
            frame.remaining -= take as u64;
            frame.started = true;
            if frame.remaining > 0 {
                debug_assert_eq!(pos, input.len());
                return Ok(Decoded {
                    consumed: pos,
                    event: None,
                });
            }
            let frame = self.frame.take().expect("a frame is in progress");
            if frame.opcode.is_control() {
                let event = control_event(frame.opcode, Cow::Owned(frame.control))?;
                return Ok(Decoded {
                    consumed: pos,
                    event: Some(event),
                });
            }
            if frame.fin {
                let message = self
                    .message
                    .take()
                    .expect("data frames belong to a message");
                return Ok(Decoded {
                    consumed: pos,
                    event: Some(message.finish()?),
                });
            }
        }
    }

    /// Reads the next frame header from the spill plus `input`, checks it and starts the frame.
    /// Returns how many bytes of `input` it used, or `None` when the header is still incomplete
    /// (the bytes are kept in the spill).
    fn read_header(&mut self, input: &[u8]) -> Result<Option<usize>, ProtocolError> {
        let have = usize::from(self.header_spill_len);
        let (header, used) = if have == 0 {
            match FrameHeader::parse(input)? {
                Status::Complete(parsed) => parsed,
                Status::Partial => {
                    self.header_spill[..input.len()].copy_from_slice(input);
                    self.header_spill_len = input.len() as u8;
                    return Ok(None);
                }
            }
        } else {
            let take = (MAX_HEADER_LEN - have).min(input.len());
            self.header_spill[have..have + take].copy_from_slice(&input[..take]);
            match FrameHeader::parse(&self.header_spill[..have + take])? {
                Status::Complete((header, len)) => {
                    self.header_spill_len = 0;
                    (header, len - have)
                }
                Status::Partial => {
                    self.header_spill_len = (have + take) as u8;
                    return Ok(None);
                }
            }
        };
        self.begin_frame(header)?;
        Ok(Some(used))
    }

    /// Applies the checks that need connection state and sets up the frame (and message).
    fn begin_frame(&mut self, header: FrameHeader) -> Result<(), ProtocolError> {
        let masked_ok = match self.role {
            Role::Server => header.mask.is_some(),
            Role::Client => header.mask.is_none(),
        };
        if !masked_ok {
            return Err(ProtocolError::BadMasking);
        }
        // "MUST be 0 unless an extension is negotiated that defines meanings for non-zero
        // values" (section 5.2). permessage-deflate defines RSV1, and only on the first frame
        // of a data message (RFC 7692 section 6).
        let first_data_frame = matches!(header.opcode, OpCode::Text | OpCode::Binary);
        let compressed = header.rsv == RSV1 && self.compressed_allowed && first_data_frame;
        if header.rsv != 0 && !compressed {
            return Err(ProtocolError::ReservedBits);
        }
        match header.opcode {
            OpCode::Close if header.payload_len == 1 => {
                return Err(ProtocolError::CloseFrameTooShort)
            }
            OpCode::Continuation if self.message.is_none() => {
                return Err(ProtocolError::UnexpectedContinuation)
            }
            OpCode::Text | OpCode::Binary if self.message.is_some() => {
                return Err(ProtocolError::ExpectedContinuation)
            }
            _ => {}
        }
        if header.opcode.is_control() {
            debug_assert!(header.payload_len as usize <= MAX_CONTROL_PAYLOAD);
        } else {
            let so_far = self.message.as_ref().map_or(0, |m| m.data.len() as u64);
            let total = so_far
                .checked_add(header.payload_len)
                .ok_or(ProtocolError::MessageTooBig)?;
            if total > self.max_message_size as u64 {
                return Err(ProtocolError::MessageTooBig);
            }
            if first_data_frame {
                self.message = Some(MessageProgress {
                    text: header.opcode == OpCode::Text,
                    compressed,
                    data: Vec::new(),
                    utf8: Utf8Stream::default(),
                });
            }
        }
        self.frame = Some(FrameProgress {
            opcode: header.opcode,
            fin: header.fin,
            mask: header.mask,
            phase: 0,
            remaining: header.payload_len,
            control: Vec::new(),
            started: false,
        });
        Ok(())
    }

    /// The event for a frame whose whole payload is in the input and that is a message alone.
    fn standalone_event<'a>(
        &mut self,
        opcode: OpCode,
        payload: &'a [u8],
    ) -> Result<Event<'a>, ProtocolError> {
        match opcode {
            OpCode::Text | OpCode::Binary => {
                let message = self
                    .message
                    .take()
                    .expect("begin_frame started the message");
                if message.compressed {
                    return Ok(Event::Compressed {
                        text: message.text,
                        data: Cow::Borrowed(payload),
                    });
                }
                if message.text {
                    let text = utf8::validate(payload).map_err(|_| ProtocolError::InvalidUtf8)?;
                    Ok(Event::Text(Cow::Borrowed(text)))
                } else {
                    Ok(Event::Binary(Cow::Borrowed(payload)))
                }
            }
            _ => control_event(opcode, Cow::Borrowed(payload)),
        }
    }
}

impl MessageProgress {
    fn finish<'a>(mut self) -> Result<Event<'a>, ProtocolError> {
        if self.compressed {
            return Ok(Event::Compressed {
                text: self.text,
                data: Cow::Owned(self.data),
            });
        }
        if !self.text {
            return Ok(Event::Binary(Cow::Owned(self.data)));
        }
        self.utf8.finish().map_err(|_| ProtocolError::InvalidUtf8)?;
        // Validated piece by piece already; this second pass is over an assembled message only.
        let text = String::from_utf8(self.data).map_err(|_| ProtocolError::InvalidUtf8)?;
        Ok(Event::Text(Cow::Owned(text)))
    }
}

fn control_event(opcode: OpCode, payload: Cow<'_, [u8]>) -> Result<Event<'_>, ProtocolError> {
    Ok(match opcode {
        OpCode::Ping => Event::Ping(payload),
        OpCode::Pong => Event::Pong(payload),
        OpCode::Close => {
            let (code, reason) = parse_close_payload(&payload)?;
            let reason_len = reason.len();
            let reason = match payload {
                Cow::Borrowed(bytes) => Cow::Borrowed(
                    utf8::validate(&bytes[bytes.len() - reason_len..]).expect("checked"),
                ),
                Cow::Owned(mut bytes) => {
                    bytes.drain(..bytes.len() - reason_len);
                    Cow::Owned(String::from_utf8(bytes).expect("checked"))
                }
            };
            Event::Close(code, reason)
        }
        _ => unreachable!("only control opcodes reach control_event"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::encode::{encode_frame, FrameSpec};

    const MASK: [u8; 4] = [0xa1, 0xb2, 0xc3, 0xd4];

    fn frame(fin: bool, opcode: OpCode, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        encode_frame(
            &mut out,
            FrameSpec {
                fin,
                rsv: 0,
                opcode,
                mask: Some(MASK),
            },
            payload,
        );
        out
    }

    #[derive(Debug, PartialEq)]
    enum Owned {
        Text(String),
        Binary(Vec<u8>),
        Ping(Vec<u8>),
        Pong(Vec<u8>),
        Close(Option<u16>, String),
    }

    fn to_owned(event: Event<'_>) -> Owned {
        match event {
            Event::Text(t) => Owned::Text(t.into_owned()),
            Event::Binary(b) => Owned::Binary(b.into_owned()),
            Event::Ping(b) => Owned::Ping(b.into_owned()),
            Event::Pong(b) => Owned::Pong(b.into_owned()),
            Event::Close(code, reason) => Owned::Close(code.map(|c| c.0), reason.into_owned()),
            Event::Compressed { .. } => panic!("compression not negotiated"),
        }
    }

    /// Feeds `chunks` in order, draining events after each, like a reactor does.
    fn decode_chunks(rx: &mut Receiver, chunks: &[&[u8]]) -> Result<Vec<Owned>, ProtocolError> {
        let mut events = Vec::new();
        for chunk in chunks {
            let mut buf = chunk.to_vec();
            let mut pos = 0;
            loop {
                let decoded = rx.poll(&mut buf[pos..])?;
                pos += decoded.consumed;
                match decoded.event {
                    Some(event) => events.push(to_owned(event)),
                    None => break,
                }
            }
            assert_eq!(pos, buf.len());
        }
        Ok(events)
    }

    fn sample_stream() -> (Vec<u8>, Vec<Owned>) {
        let mut bytes = Vec::new();
        bytes.extend(frame(true, OpCode::Text, "héllo".as_bytes()));
        bytes.extend(frame(false, OpCode::Binary, &[1, 2, 3]));
        bytes.extend(frame(true, OpCode::Ping, b"p"));
        bytes.extend(frame(false, OpCode::Continuation, &[4; 300]));
        bytes.extend(frame(true, OpCode::Continuation, &[]));
        bytes.extend(frame(false, OpCode::Text, "a€".as_bytes()));
        bytes.extend(frame(true, OpCode::Continuation, "b😀".as_bytes()));
        bytes.extend(frame(true, OpCode::Pong, b""));
        bytes.extend(frame(true, OpCode::Binary, &[9; 200]));
        bytes.extend(frame(true, OpCode::Close, &[0x03, 0xe8, b'b', b'y', b'e']));
        let mut binary = vec![1, 2, 3];
        binary.extend([4; 300]);
        let expected = vec![
            Owned::Text("héllo".into()),
            Owned::Ping(b"p".to_vec()),
            Owned::Binary(binary),
            Owned::Text("a€b😀".into()),
            Owned::Pong(vec![]),
            Owned::Binary(vec![9; 200]),
            Owned::Close(Some(1000), "bye".into()),
        ];
        (bytes, expected)
    }

    #[test]
    fn decodes_a_stream_in_one_piece() {
        let (bytes, expected) = sample_stream();
        let mut rx = Receiver::new(Role::Server, 1 << 20);
        assert_eq!(decode_chunks(&mut rx, &[&bytes]).unwrap(), expected);
        assert!(!rx.is_mid_message());
    }

    #[test]
    fn decodes_the_same_at_every_split_point() {
        let (bytes, expected) = sample_stream();
        for cut in 0..=bytes.len() {
            let mut rx = Receiver::new(Role::Server, 1 << 20);
            let got = decode_chunks(&mut rx, &[&bytes[..cut], &bytes[cut..]]).unwrap();
            assert_eq!(got, expected, "split at {cut}");
        }
    }

    #[test]
    fn decodes_byte_by_byte() {
        let (bytes, expected) = sample_stream();
        let chunks: Vec<&[u8]> = bytes.chunks(1).collect();
        let mut rx = Receiver::new(Role::Server, 1 << 20);
        assert_eq!(decode_chunks(&mut rx, &chunks).unwrap(), expected);
    }

    #[test]
    fn decodes_a_64_bit_length_frame_in_pieces() {
        let bytes = frame(true, OpCode::Binary, &[7; 70000]);
        for cut in [1, 2, 9, 10, 14, 15, 40000, 70013] {
            let mut rx = Receiver::new(Role::Server, 1 << 20);
            let got = decode_chunks(&mut rx, &[&bytes[..cut], &bytes[cut..]]).unwrap();
            assert_eq!(got, [Owned::Binary(vec![7; 70000])], "split at {cut}");
        }
    }

    #[test]
    fn borrows_whole_frames_from_the_input() {
        let mut bytes = frame(true, OpCode::Binary, b"abc");
        let mut rx = Receiver::new(Role::Server, 1 << 20);
        let decoded = rx.poll(&mut bytes).unwrap();
        assert!(matches!(
            decoded.event,
            Some(Event::Binary(Cow::Borrowed(b"abc")))
        ));
    }

    fn first_error(bytes: &[u8], max: usize) -> ProtocolError {
        let mut rx = Receiver::new(Role::Server, max);
        decode_chunks(&mut rx, &[bytes]).expect_err("must fail")
    }

    #[test]
    fn rejects_protocol_violations() {
        let mut unmasked = Vec::new();
        encode_frame(
            &mut unmasked,
            FrameSpec {
                fin: true,
                rsv: 0,
                opcode: OpCode::Text,
                mask: None,
            },
            b"hi",
        );
        assert_eq!(first_error(&unmasked, 100), ProtocolError::BadMasking);
        let mut rsv = frame(true, OpCode::Text, b"hi");
        rsv[0] |= RSV1;
        assert_eq!(first_error(&rsv, 100), ProtocolError::ReservedBits);
        assert_eq!(
            first_error(&frame(true, OpCode::Continuation, b"x"), 100),
            ProtocolError::UnexpectedContinuation
        );
        let mut two_starts = frame(false, OpCode::Text, b"a");
        two_starts.extend(frame(true, OpCode::Text, b"b"));
        assert_eq!(
            first_error(&two_starts, 100),
            ProtocolError::ExpectedContinuation
        );
        assert_eq!(
            first_error(&frame(true, OpCode::Close, &[3]), 100),
            ProtocolError::CloseFrameTooShort
        );
        assert_eq!(
            first_error(&frame(true, OpCode::Close, &[0x03, 0xed]), 100),
            ProtocolError::InvalidCloseCode(1005)
        );
        assert_eq!(
            first_error(&frame(true, OpCode::Text, &[0xff]), 100),
            ProtocolError::InvalidUtf8
        );
        assert_eq!(
            first_error(&frame(true, OpCode::Binary, &[0; 101]), 100),
            ProtocolError::MessageTooBig
        );
        let mut over = frame(false, OpCode::Binary, &[0; 60]);
        over.extend(frame(true, OpCode::Continuation, &[0; 41]));
        assert_eq!(first_error(&over, 100), ProtocolError::MessageTooBig);
    }

    #[test]
    fn rejects_huge_declared_length_before_allocating() {
        let mut header = vec![0x82, 0x80 | 127];
        header.extend_from_slice(&((1u64 << 63) - 1).to_be_bytes());
        header.extend_from_slice(&MASK);
        assert_eq!(first_error(&header, 16 << 20), ProtocolError::MessageTooBig);
    }

    #[test]
    fn fails_fast_on_bad_utf8_in_a_partial_frame() {
        let bytes = frame(
            true,
            OpCode::Text,
            &[b'a', 0xf4, 0x90, 0x80, 0x80, b'b', b'c'],
        );
        let mut rx = Receiver::new(Role::Server, 100);
        // Header plus the first three payload bytes: 0xf4 0x90 is already impossible.
        let header_len = 6;
        assert_eq!(
            decode_chunks(&mut rx, &[&bytes[..header_len + 3]]),
            Err(ProtocolError::InvalidUtf8)
        );
    }

    #[test]
    fn stays_failed_after_an_error() {
        let mut rx = Receiver::new(Role::Server, 100);
        assert!(decode_chunks(&mut rx, &[&frame(true, OpCode::Text, &[0xff])]).is_err());
        assert!(decode_chunks(&mut rx, &[&frame(true, OpCode::Text, b"ok")]).is_err());
    }

    #[test]
    fn client_role_rejects_masked_frames() {
        let mut rx = Receiver::new(Role::Client, 100);
        assert_eq!(
            decode_chunks(&mut rx, &[&frame(true, OpCode::Text, b"x")]),
            Err(ProtocolError::BadMasking)
        );
    }
}
