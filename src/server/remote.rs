//! Reaching the loops from other threads: commands through their mailboxes, plus wakers.

use std::fmt;
use std::sync::Arc;

use super::command::Command;
use super::hub::{Hub, PostError};
use super::outbound::shared_frame;
use super::token::ConnId;
use crate::client::{ConnectError, ConnectOptions};
use crate::handler::OwnedMessage;
use crate::proto::{CloseCode, OpCode};

/// Why a [`Remote`] call was refused.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemoteError {
    /// The loop's mailbox is full; try again later.
    Full,
    /// The server has stopped.
    Stopped,
    /// A ping payload over 125 bytes (RFC 6455 section 5.5).
    TooLong,
}

impl fmt::Display for RemoteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RemoteError::Full => "the loop's mailbox is full",
            RemoteError::Stopped => "the server has stopped",
            RemoteError::TooLong => "a ping payload is at most 125 bytes",
        })
    }
}

impl std::error::Error for RemoteError {}

/// Sends, closes and publishes from any thread, on every loop of the server; cheap to clone.
///
/// ```no_run
/// let server = wsloop::Server::bind(wsloop::Config::default(), wsloop::Echo)?;
/// let remote = server.remote();
/// std::thread::spawn(move || loop {
///     let _ = remote.publish("ticks", "tick".into(), None);
///     std::thread::sleep(std::time::Duration::from_secs(1));
/// });
/// server.run()?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone)]
pub struct Remote {
    hub: Arc<Hub>,
}

impl Remote {
    pub(crate) fn new(hub: Arc<Hub>) -> Remote {
        Remote { hub }
    }

    /// Publishes `message` to `topic` on every loop with subscribers to it, as
    /// [`Context::publish`](super::Context::publish) does. The frame is encoded here, once,
    /// and shared by every loop and subscriber. Publishes from one thread to one topic
    /// arrive in order everywhere.
    ///
    /// A loop whose mailbox is full misses the message (counted in
    /// [`dropped_deliveries`](Remote::dropped_deliveries) and logged); the call fails with
    /// [`RemoteError::Full`] only when no loop took it, so trying again cannot deliver twice.
    pub fn publish(
        &self,
        topic: &str,
        message: OwnedMessage,
        exclude: Option<ConnId>,
    ) -> Result<(), RemoteError> {
        let loops = self.hub.interested(topic, None);
        if loops.is_empty() {
            return Ok(());
        }
        let (opcode, payload) = match &message {
            OwnedMessage::Text(text) => (OpCode::Text, text.as_bytes()),
            OwnedMessage::Binary(bytes) => (OpCode::Binary, &bytes[..]),
        };
        let frame = shared_frame(opcode, payload);
        let (took, refused) = self.hub.forward(loops, topic, &frame, exclude);
        for index in took.iter() {
            self.hub.wake(index);
        }
        match (took.is_empty(), refused) {
            (false, _) => Ok(()),
            (true, 0) => Err(RemoteError::Stopped),
            (true, _) => Err(RemoteError::Full),
        }
    }

    /// Sends `message` to connection `id`, on whichever loop holds it (ignored if it has
    /// closed by then).
    pub fn send(&self, id: ConnId, message: OwnedMessage) -> Result<(), RemoteError> {
        let (opcode, payload) = match message {
            OwnedMessage::Text(text) => (OpCode::Text, text.into_bytes()),
            OwnedMessage::Binary(bytes) => (OpCode::Binary, bytes),
        };
        self.submit(
            id.loop_index(),
            Command::Send {
                id,
                opcode,
                payload: payload.into(),
            },
        )
    }

    /// Starts the closing handshake on connection `id` with `code` and `reason`.
    pub fn close(&self, id: ConnId, code: CloseCode, reason: &str) -> Result<(), RemoteError> {
        self.submit(
            id.loop_index(),
            Command::Close {
                id,
                code,
                reason: reason.into(),
            },
        )
    }

    /// Sends a ping to connection `id`; its pong comes to the handler's `on_pong`.
    pub fn ping(&self, id: ConnId, payload: &[u8]) -> Result<(), RemoteError> {
        if payload.len() > crate::proto::MAX_CONTROL_PAYLOAD {
            return Err(RemoteError::TooLong);
        }
        self.submit(
            id.loop_index(),
            Command::Send {
                id,
                opcode: OpCode::Ping,
                payload: payload.into(),
            },
        )
    }

    /// Drops connection `id` without a closing handshake, as
    /// [`Context::terminate`](super::Context::terminate) does.
    pub fn terminate(&self, id: ConnId) -> Result<(), RemoteError> {
        self.submit(id.loop_index(), Command::Terminate { id })
    }

    /// Runs `job` on loop `loop_index` (see [`ConnId::loop_index`]) with that loop's
    /// [`Context`](super::Context): anything a handler can do there, from another thread.
    ///
    /// ```no_run
    /// let server = wsloop::Server::bind(wsloop::Config::default(), wsloop::Echo)?;
    /// let remote = server.remote();
    /// std::thread::spawn(move || {
    ///     let _ = remote.run(0, |ctx| {
    ///         let open: Vec<_> = ctx.connections().collect();
    ///         for id in open {
    ///             let _ = ctx.send_text(id, "maintenance in 5 minutes");
    ///         }
    ///     });
    /// });
    /// server.run()?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn run(
        &self,
        loop_index: usize,
        job: impl FnOnce(&mut super::Context<'_>) + Send + 'static,
    ) -> Result<(), RemoteError> {
        if loop_index >= self.hub.loops() {
            return Err(RemoteError::Stopped);
        }
        self.submit(loop_index, Command::Run(Box::new(job)))
    }

    /// Opens an outgoing connection on the loop that holds the fewest connections, as
    /// [`Context::connect`](super::Context::connect) does there, and returns its id once
    /// that loop has taken it (within one loop turn): events about it go to that loop's
    /// handler. Blocks the calling thread meanwhile, so it is refused on a loop's own thread
    /// ([`ConnectError::OnLoopThread`]): use the context there.
    pub fn connect(&self, url: &str, options: &ConnectOptions) -> Result<ConnId, ConnectError> {
        if super::on_loop_thread() {
            return Err(ConnectError::OnLoopThread);
        }
        let (reply, answer) = std::sync::mpsc::sync_channel(1);
        let url = url.to_owned();
        let options = options.clone();
        let job = move |ctx: &mut super::Context<'_>| {
            let _ = reply.send(ctx.connect(&url, &options));
        };
        match self.run(self.hub.least_loaded(), job) {
            Ok(()) => {}
            Err(RemoteError::Full) => return Err(ConnectError::Busy),
            Err(_) => return Err(ConnectError::Stopped),
        }
        // A loop that stops first drops the job, and with it the sender.
        answer.recv().unwrap_or(Err(ConnectError::Stopped))
    }

    /// The figures of every loop, for `/metrics` or a dashboard.
    pub fn metrics(&self) -> crate::Metrics {
        crate::Metrics::new(self.hub.clone())
    }

    /// How many event loops the server runs.
    pub fn loops(&self) -> usize {
        self.hub.loops()
    }

    /// Connections each loop holds (open, opening or closing), in loop order.
    pub fn connections(&self) -> Vec<usize> {
        self.hub.connections()
    }

    /// Publish deliveries each loop missed because its mailbox was full, in loop order.
    pub fn dropped_deliveries(&self) -> Vec<u64> {
        self.hub.dropped_deliveries()
    }

    fn submit(&self, index: usize, command: Command) -> Result<(), RemoteError> {
        if index >= self.hub.loops() {
            // No such loop: an id from another server; like a closed connection, ignored.
            return Ok(());
        }
        match self.hub.post(index, command) {
            Ok(()) => {
                self.hub.wake(index);
                Ok(())
            }
            Err(PostError::Full(_)) => Err(RemoteError::Full),
            Err(PostError::Stopped(_)) => Err(RemoteError::Stopped),
        }
    }
}

impl fmt::Debug for Remote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Remote")
            .field("loops", &self.hub.loops())
            .finish()
    }
}
