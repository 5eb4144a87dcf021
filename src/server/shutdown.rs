//! Stopping every loop from another thread (a signal handler thread, a test).

use std::sync::Arc;

use super::hub::Hub;

/// Stops a running [`Server`](super::Server) or [`Cluster`](super::Cluster) gracefully;
/// cheap to clone and send to other threads.
#[derive(Clone)]
pub struct ShutdownHandle {
    hub: Arc<Hub>,
}

impl ShutdownHandle {
    pub(crate) fn new(hub: Arc<Hub>) -> ShutdownHandle {
        ShutdownHandle { hub }
    }

    /// Asks the server to stop: no new connections, close 1001 to every open one on every
    /// loop, and `run` returns once they are closed or the close timeout has passed.
    pub fn shutdown(&self) {
        self.hub.request_shutdown();
    }
}

impl std::fmt::Debug for ShutdownHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShutdownHandle")
            .field("requested", &self.hub.shutdown_requested())
            .finish()
    }
}
