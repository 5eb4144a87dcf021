//! Stopping the loop from another thread (a signal handler thread, a test).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use mio::Waker;

/// The request to stop, and the waker that makes the loop notice it.
pub(crate) struct ShutdownFlag {
    requested: AtomicBool,
    waker: Arc<Waker>,
}

impl ShutdownFlag {
    pub(crate) fn new(waker: Arc<Waker>) -> ShutdownFlag {
        ShutdownFlag {
            requested: AtomicBool::new(false),
            waker,
        }
    }

    pub(crate) fn requested(&self) -> bool {
        self.requested.load(Ordering::Acquire)
    }
}

/// Stops a running [`Server`](super::Server) gracefully; cheap to clone and send to other
/// threads.
#[derive(Clone)]
pub struct ShutdownHandle {
    flag: Arc<ShutdownFlag>,
}

impl ShutdownHandle {
    pub(crate) fn new(flag: Arc<ShutdownFlag>) -> ShutdownHandle {
        ShutdownHandle { flag }
    }

    /// Asks the server to stop: no new connections, close 1001 to every open one, and `run`
    /// returns once they are closed or the close timeout has passed.
    pub fn shutdown(&self) {
        self.flag.requested.store(true, Ordering::Release);
        if let Err(err) = self.flag.waker.wake() {
            log::error!("could not wake the server loop: {err}");
        }
    }
}

impl std::fmt::Debug for ShutdownHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShutdownHandle")
            .field("requested", &self.flag.requested())
            .finish()
    }
}
