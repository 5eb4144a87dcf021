//! An open WebSocket connection's protocol state: the receive side, automatic pongs and the
//! closing handshake (RFC 6455 sections 5.5 and 7), with no sockets.
//!
//! The reactor feeds it the bytes it reads and writes out what it appends to the output
//! buffer. The same type serves the client role (the load generator, tests).

use std::borrow::Cow;

use super::close::CloseCode;
use super::encode::{encode_close, FrameSpec};
use super::error::ProtocolError;
use super::frame::{OpCode, MAX_CONTROL_PAYLOAD, MAX_HEADER_LEN, RSV1};
use super::receiver::{Decoded, Event, Receiver, Role};

/// The browser's `WebSocket.readyState`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadyState {
    /// The opening handshake has not finished.
    Connecting,
    /// Messages flow both ways.
    Open,
    /// A close frame has been sent or received, not both.
    Closing,
    /// The closing handshake is complete or the connection failed; the TCP connection is
    /// being (or has been) closed.
    Closed,
}

/// Why a send was refused.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendError {
    /// The connection is not open: a close frame was sent or it never opened.
    NotOpen,
    /// A control frame payload over 125 bytes.
    ControlTooLong,
    /// The connection belongs to another event loop whose mailbox is full: nothing was sent.
    MailboxFull,
    /// A close code that may not be sent (RFC 6455 section 7.4: 1004-1006 and 1015 are
    /// reserved, codes outside 1000-4999 are not valid): nothing was sent.
    InvalidCloseCode(u16),
    /// The loop holds the most application timers it can (16,777,215): none was set.
    TooManyTimers,
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SendError::NotOpen => "connection is not open",
            SendError::ControlTooLong => "control frame payload over 125 bytes",
            SendError::MailboxFull => "the connection's event loop has too many commands queued",
            SendError::InvalidCloseCode(_) => "this close code may not be sent (RFC 6455 7.4)",
            SendError::TooManyTimers => "the loop holds the most timers it can",
        })
    }
}

impl std::error::Error for SendError {}

/// What [`Session::poll`] found in the input.
#[derive(Debug, PartialEq, Eq)]
pub enum SessionEvent<'a> {
    /// A message, ping, pong or close from the peer (see [`Event`]). A ping has already been
    /// answered and a close echoed when this is returned.
    Frame(Event<'a>),
    /// The peer broke the protocol; a close frame with the matching code has been queued and
    /// no further input will be read.
    Failed(ProtocolError),
}

/// Protocol state of an open connection.
#[derive(Debug)]
pub struct Session {
    role: Role,
    receiver: Receiver,
    close_sent: bool,
    close_received: bool,
    failed: bool,
    auto_pong: bool,
}

impl Session {
    /// A session for `role`; messages over `max_message_size` bytes fail it with 1009.
    pub fn new(role: Role, max_message_size: usize) -> Session {
        Session {
            role,
            receiver: Receiver::new(role, max_message_size),
            close_sent: false,
            close_received: false,
            failed: false,
            auto_pong: true,
        }
    }

    /// Turns automatic pong replies off (they are on by default, as in browsers and `ws`).
    pub fn set_auto_pong(&mut self, on: bool) {
        self.auto_pong = on;
    }

    /// The receiver, to change what it accepts (compression).
    pub fn receiver_mut(&mut self) -> &mut Receiver {
        &mut self.receiver
    }

    /// The state as the browser API names it.
    pub fn ready_state(&self) -> ReadyState {
        match (self.close_sent, self.close_received) {
            (false, false) => ReadyState::Open,
            (true, true) => ReadyState::Closed,
            _ if self.failed => ReadyState::Closed,
            _ => ReadyState::Closing,
        }
    }

    /// Whether a close frame has been sent (nothing else may be sent after it).
    pub fn close_sent(&self) -> bool {
        self.close_sent
    }

    /// Whether input should still be read: false once a close frame arrived or the peer
    /// failed the protocol.
    pub fn wants_input(&self) -> bool {
        !self.close_received && !self.failed
    }

    /// Whether the receiver holds part of a frame or message.
    pub fn is_mid_message(&self) -> bool {
        self.receiver.is_mid_message()
    }

    /// Decodes the next event from `input`, appending any reply the protocol requires (a pong,
    /// the echo of a close, the close that fails the connection) to `out`.
    pub fn poll<'a>(
        &mut self,
        input: &'a mut [u8],
        out: &mut Vec<u8>,
    ) -> (usize, Option<SessionEvent<'a>>) {
        let all = input.len();
        if !self.wants_input() {
            return (all, None);
        }
        match self.receiver.poll(input) {
            Ok(Decoded { consumed, event }) => {
                let event = event.map(|event| {
                    self.react(&event, out);
                    SessionEvent::Frame(event)
                });
                (consumed, event)
            }
            Err(err) => {
                // "_Fail the WebSocket Connection_ ... the endpoint MAY send a Close frame"
                // (section 7.1.7); sending one with the reason tells the peer what went wrong.
                self.fail(out, err);
                (all, Some(SessionEvent::Failed(err)))
            }
        }
    }

    /// The replies the protocol itself makes to a received frame.
    fn react(&mut self, event: &Event<'_>, out: &mut Vec<u8>) {
        match event {
            // "Upon receipt of a Ping frame, an endpoint MUST send a Pong frame in response,
            // unless it already received a Close frame." (section 5.5.2)
            Event::Ping(payload) if self.auto_pong && !self.close_sent => {
                super::encode::encode_frame(out, self.spec(OpCode::Pong), payload);
            }
            // "If an endpoint receives a Close frame and did not previously send a Close frame,
            // the endpoint MUST send a Close frame in response. ... it typically echos the
            // status code it received." (section 5.5.1)
            Event::Close(code, _) => {
                self.close_received = true;
                if !self.close_sent {
                    self.close_sent = true;
                    encode_close(out, *code, "", self.mask());
                }
            }
            _ => {}
        }
    }

    /// Appends a data or control frame to `out`.
    pub fn send(
        &mut self,
        out: &mut Vec<u8>,
        opcode: OpCode,
        payload: &[u8],
    ) -> Result<(), SendError> {
        self.send_frame(out, opcode, payload, false)
    }

    /// Appends a frame whose payload was compressed with permessage-deflate when `compressed`
    /// (RSV1 set: RFC 7692 section 6).
    pub fn send_frame(
        &mut self,
        out: &mut Vec<u8>,
        opcode: OpCode,
        payload: &[u8],
        compressed: bool,
    ) -> Result<(), SendError> {
        self.check_sendable(opcode, payload.len())?;
        let spec = FrameSpec {
            rsv: if compressed { RSV1 } else { 0 },
            ..self.spec(opcode)
        };
        super::encode::encode_frame(out, spec, payload);
        Ok(())
    }

    /// The header of a frame the caller writes itself (header and payload in one vectored
    /// write). `compressed` sets RSV1, for a message compressed with permessage-deflate.
    /// Server role only: a client must mask the payload too.
    pub fn header(
        &self,
        opcode: OpCode,
        len: usize,
        compressed: bool,
    ) -> Result<([u8; MAX_HEADER_LEN], usize), SendError> {
        debug_assert_eq!(
            self.role,
            Role::Server,
            "a client must mask the payload as well"
        );
        self.check_sendable(opcode, len)?;
        let spec = FrameSpec {
            rsv: if compressed { RSV1 } else { 0 },
            ..self.spec(opcode)
        };
        Ok(spec.header(len))
    }

    /// Fails the connection for an error found outside the receiver (a compressed message
    /// that does not inflate): queues the close frame and stops reading, as for any
    /// protocol error.
    pub fn fail(&mut self, out: &mut Vec<u8>, err: ProtocolError) {
        self.failed = true;
        if !self.close_sent {
            self.close_sent = true;
            encode_close(out, Some(err.close_code()), err.reason(), self.mask());
        }
    }

    /// Whether a frame with `opcode` and a payload of `len` bytes may be sent now; callers
    /// check before work that cannot be undone, such as compressing with a kept context.
    pub fn check_sendable(&self, opcode: OpCode, len: usize) -> Result<(), SendError> {
        if self.close_sent {
            return Err(SendError::NotOpen);
        }
        if opcode.is_control() && len > MAX_CONTROL_PAYLOAD {
            return Err(SendError::ControlTooLong);
        }
        Ok(())
    }

    /// Starts the closing handshake: appends a close frame with `code` and `reason` (cut to fit).
    pub fn close(
        &mut self,
        out: &mut Vec<u8>,
        code: CloseCode,
        reason: &str,
    ) -> Result<(), SendError> {
        if self.close_sent {
            return Err(SendError::NotOpen);
        }
        if !code.is_sendable() {
            return Err(SendError::InvalidCloseCode(code.0));
        }
        self.close_sent = true;
        encode_close(out, Some(code), reason, self.mask());
        Ok(())
    }

    fn spec(&self, opcode: OpCode) -> FrameSpec {
        FrameSpec {
            mask: self.mask(),
            ..FrameSpec::server(opcode)
        }
    }

    /// A fresh masking key per frame in the client role ([`random_mask`]).
    fn mask(&self) -> Option<[u8; 4]> {
        match self.role {
            Role::Server => None,
            Role::Client => Some(random_mask()),
        }
    }
}

/// A fresh masking key for one client frame (RFC 6455 section 5.3: "The masking key needs to
/// be unpredictable; thus, the masking key MUST be derived from a strong source of entropy"):
/// rand's thread-local ChaCha12, seeded and reseeded from the operating system's CSPRNG.
pub fn random_mask() -> [u8; 4] {
    rand::random()
}

/// A client's `Sec-WebSocket-Key` nonce: "a randomly selected 16-byte value" (section 4.1),
/// from the same generator as [`random_mask`].
pub fn random_key() -> [u8; 16] {
    rand::random()
}

/// A payload that may be borrowed or owned, handed back for reuse after delivery.
pub fn into_buffer(payload: Cow<'_, [u8]>) -> Option<Vec<u8>> {
    match payload {
        Cow::Owned(buf) => Some(buf),
        Cow::Borrowed(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masking_keys_and_nonces_do_not_repeat() {
        // 1,000 draws of 32 bits collide with probability about 1e-4; of 128 bits, never.
        let masks: std::collections::HashSet<_> = (0..1000).map(|_| random_mask()).collect();
        assert!(masks.len() >= 999, "{} distinct of 1000", masks.len());
        let keys: std::collections::HashSet<_> = (0..1000).map(|_| random_key()).collect();
        assert_eq!(keys.len(), 1000);
    }
    use crate::proto::encode::encode_frame;

    fn client_frame(opcode: OpCode, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        encode_frame(
            &mut out,
            FrameSpec {
                mask: Some([9, 8, 7, 6]),
                ..FrameSpec::server(opcode)
            },
            payload,
        );
        out
    }

    #[test]
    fn answers_ping_with_the_same_payload() {
        let mut session = Session::new(Role::Server, 1024);
        let mut input = client_frame(OpCode::Ping, b"abc");
        let mut out = Vec::new();
        let (_, event) = session.poll(&mut input, &mut out);
        assert_eq!(
            event,
            Some(SessionEvent::Frame(Event::Ping(Cow::Borrowed(b"abc"))))
        );
        assert_eq!(out, [0x8A, 3, b'a', b'b', b'c']);
    }

    #[test]
    fn echoes_a_close_and_is_closed() {
        let mut session = Session::new(Role::Server, 1024);
        let mut input = client_frame(OpCode::Close, &[0x0f, 0xa0, b'x']); // 4000 "x"
        let mut out = Vec::new();
        session.poll(&mut input, &mut out);
        assert_eq!(out, [0x88, 2, 0x0f, 0xa0]);
        assert_eq!(session.ready_state(), ReadyState::Closed);
        assert!(!session.wants_input());
        assert_eq!(
            session.send(&mut out, OpCode::Text, b"late"),
            Err(SendError::NotOpen)
        );
    }

    #[test]
    fn server_initiated_close_waits_for_the_reply() {
        let mut session = Session::new(Role::Server, 1024);
        let mut out = Vec::new();
        session
            .close(&mut out, CloseCode::GOING_AWAY, "bye")
            .unwrap();
        assert_eq!(session.ready_state(), ReadyState::Closing);
        assert_eq!(&out[..4], &[0x88, 5, 0x03, 0xe9]);
        out.clear();
        let mut input = client_frame(OpCode::Close, &[0x03, 0xe9]);
        session.poll(&mut input, &mut out);
        assert!(out.is_empty(), "no second close frame");
        assert_eq!(session.ready_state(), ReadyState::Closed);
    }

    #[test]
    fn protocol_error_sends_the_matching_close_code() {
        let mut session = Session::new(Role::Server, 1024);
        let mut input = client_frame(OpCode::Text, &[0xc0, 0xaf]);
        let mut out = Vec::new();
        let (_, event) = session.poll(&mut input, &mut out);
        assert_eq!(
            event,
            Some(SessionEvent::Failed(ProtocolError::InvalidUtf8))
        );
        assert_eq!(&out[..4], &[0x88, 15, 0x03, 0xef]); // 1007 "invalid UTF-8"
        assert_eq!(session.ready_state(), ReadyState::Closed);
    }

    #[test]
    fn client_role_masks_what_it_sends() {
        let mut client = Session::new(Role::Client, 1024);
        let mut wire = Vec::new();
        client.send(&mut wire, OpCode::Binary, b"payload").unwrap();
        let mut server = Session::new(Role::Server, 1024);
        let mut out = Vec::new();
        let (_, event) = server.poll(&mut wire, &mut out);
        assert_eq!(
            event,
            Some(SessionEvent::Frame(Event::Binary(Cow::Borrowed(
                b"payload"
            ))))
        );
    }
}
