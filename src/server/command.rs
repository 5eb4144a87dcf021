//! What one loop, or another thread, asks a loop to do through its mailbox.

use std::net::SocketAddr;
use std::sync::Arc;

use mio::net::TcpStream;

use super::context::Context;
use super::outbound::SharedFrame;
use super::token::ConnId;
use crate::proto::{CloseCode, OpCode};

/// Work another thread hands to a loop, with the loop's [`Context`].
pub(crate) type Job = Box<dyn FnOnce(&mut Context<'_>) + Send>;

/// A mailbox entry. Published frames travel by reference: every loop and every subscriber
/// shares the one encoded frame.
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
    /// Drop one of this loop's connections without a closing handshake.
    Terminate { id: ConnId },
    /// A connection the accepting loop handed over; it is already counted for this loop.
    Adopt { stream: TcpStream, addr: SocketAddr },
    /// Run a closure on this loop.
    Run(Job),
    /// The resolver's answer for an outgoing connection of this loop.
    Resolved {
        id: ConnId,
        addrs: std::io::Result<Vec<SocketAddr>>,
    },
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Command::Deliver { topic, frame, .. } => {
                write!(f, "Deliver({topic:?}, {} B)", frame.len())
            }
            Command::Send {
                id,
                opcode,
                payload,
            } => {
                write!(f, "Send({id}, {opcode:?}, {} B)", payload.len())
            }
            Command::Close { id, code, .. } => write!(f, "Close({id}, {code})"),
            Command::Terminate { id } => write!(f, "Terminate({id})"),
            Command::Adopt { addr, .. } => write!(f, "Adopt({addr})"),
            Command::Run(_) => f.write_str("Run"),
            Command::Resolved { id, .. } => write!(f, "Resolved({id})"),
        }
    }
}
