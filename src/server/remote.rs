//! Sending and publishing from other threads: a bounded channel into the loop plus its waker.

use std::fmt;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::Arc;

use mio::Waker;

use super::token::ConnId;
use crate::handler::OwnedMessage;

/// Commands queued at most; past this, [`Remote`] calls fail with [`RemoteError::Full`]
/// instead of letting another thread grow the loop's memory without bound.
pub(crate) const COMMAND_QUEUE: usize = 64 * 1024;

/// What another thread asked the loop to do.
#[derive(Debug)]
pub(crate) enum Command {
    Publish {
        topic: String,
        message: OwnedMessage,
        exclude: Option<ConnId>,
    },
    Send {
        id: ConnId,
        message: OwnedMessage,
    },
}

/// Why a [`Remote`] call was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemoteError {
    /// The loop has [`COMMAND_QUEUE`](self) commands waiting already; try again later.
    Full,
    /// The server has stopped.
    Stopped,
}

impl fmt::Display for RemoteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RemoteError::Full => "the server's command queue is full",
            RemoteError::Stopped => "the server has stopped",
        })
    }
}

impl std::error::Error for RemoteError {}

/// Sends and publishes from any thread; cheap to clone.
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
    commands: SyncSender<Command>,
    waker: Arc<Waker>,
}

impl Remote {
    pub(crate) fn new(commands: SyncSender<Command>, waker: Arc<Waker>) -> Remote {
        Remote { commands, waker }
    }

    /// Publishes `message` to `topic`, as [`Context::publish`](super::Context::publish) does.
    pub fn publish(
        &self,
        topic: &str,
        message: OwnedMessage,
        exclude: Option<ConnId>,
    ) -> Result<(), RemoteError> {
        self.submit(Command::Publish {
            topic: topic.to_owned(),
            message,
            exclude,
        })
    }

    /// Sends `message` to connection `id` (ignored if it has closed by then).
    pub fn send(&self, id: ConnId, message: OwnedMessage) -> Result<(), RemoteError> {
        self.submit(Command::Send { id, message })
    }

    fn submit(&self, command: Command) -> Result<(), RemoteError> {
        match self.commands.try_send(command) {
            Ok(()) => self.waker.wake().map_err(|_| RemoteError::Stopped),
            Err(TrySendError::Full(_)) => Err(RemoteError::Full),
            Err(TrySendError::Disconnected(_)) => Err(RemoteError::Stopped),
        }
    }
}

impl fmt::Debug for Remote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Remote")
    }
}

/// The loop's end of the channel.
pub(crate) type Commands = Receiver<Command>;
