//! What one loop, or another thread, asks a loop to do through its mailbox.

use std::net::SocketAddr;
use std::sync::Arc;

use mio::net::TcpStream;

use super::outbound::SharedFrame;
use super::token::ConnId;
use crate::proto::{CloseCode, OpCode};

/// A mailbox entry. Published frames travel by reference: every loop and every subscriber
/// shares the one encoded frame.
#[derive(Debug)]
pub(crate) enum Command {
    /// A frame published to `topic`, for this loop's subscribers.
    Deliver {
        topic: Arc<str>,
        frame: SharedFrame,
        exclude: Option<ConnId>,
    },
    /// A message, ping or pong for one of this loop's connections.
    Send {
        id: ConnId,
        opcode: OpCode,
        payload: Box<[u8]>,
    },
    /// Start the closing handshake on one of this loop's connections.
    Close {
        id: ConnId,
        code: CloseCode,
        reason: Box<str>,
    },
    /// A connection the accepting loop handed over; it is already counted for this loop.
    Adopt { stream: TcpStream, addr: SocketAddr },
}
