//! Several event loops, one per thread, sharing one port: the way to use every core.

use std::io;
use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{mpsc, Arc};
use std::thread;

use mio::Poll;

use super::hub::Hub;
use super::token::MAX_LOOPS;
use super::{listen, Remote, Server, ShutdownHandle};
use crate::handler::Handler;
use crate::{Accept, Config};

/// A server of `threads` independent event loops. Each loop is a [`Server`] on its own
/// thread, with its own poll, connections, receive buffer, timers, buffer pool and handler
/// (built per loop by the factory given to [`bind`](Cluster::bind)); no lock or atomic is
/// touched on a loop's per-message path.
///
/// What crosses loops goes as messages: a [`Context::publish`](crate::Context::publish)
/// reaches subscribers on every loop (the frame encoded once and shared), a send or close to
/// a connection of another loop is forwarded to it, and [`Remote`] reaches any connection
/// from any thread. `max_connections` counts the whole server. [`ConnId::loop_index`]
/// tells which loop holds a connection.
///
/// ```no_run
/// use wsloop::{Cluster, Config, Echo};
/// let threads = wsloop::available_cores();
/// let cluster = Cluster::bind(Config::default(), threads, |_loop_index| Echo)?;
/// println!("{} loops on ws://{}", threads, cluster.local_addr());
/// cluster.run()?;
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// [`ConnId::loop_index`]: crate::ConnId::loop_index
///
/// A panic in a handler aborts the whole process, after a log line naming the loop: the
/// loop's connections could not be served any more, and a process that goes on accepting
/// with a loop gone would be half alive. Run it under a supervisor that restarts it.
pub struct Cluster<H: Handler> {
    loops: Vec<Server<H>>,
    hub: Arc<Hub>,
    local_addr: SocketAddr,
}

/// The CPUs this process may run on (its affinity mask, and its cgroup's CPU quota): the
/// number of loops that keeps every allowed core busy, like nginx's `worker_processes auto`.
pub fn available_cores() -> usize {
    thread::available_parallelism().map_or(1, |n| n.get().min(MAX_LOOPS))
}

impl<H: Handler + Send + 'static> Cluster<H> {
    /// Binds `config.listen` for `threads` loops (1 to [`MAX_LOOPS`]), building each
    /// loop's handler with `handler(loop_index)`.
    pub fn bind(
        config: Config,
        threads: usize,
        mut handler: impl FnMut(usize) -> H,
    ) -> io::Result<Cluster<H>> {
        if threads == 0 || threads > MAX_LOOPS {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("a server runs 1 to {MAX_LOOPS} loops, not {threads}"),
            ));
        }
        config.validate().map_err(super::invalid_config)?;
        let reuse_port = config.accept == Accept::ReusePort;
        let first = listen::bind(config.listen, config.backlog, reuse_port)?;
        let local_addr = first.local_addr()?;
        let mut listeners = vec![Some(first)];
        for _ in 1..threads {
            listeners.push(match reuse_port {
                true => Some(listen::bind(local_addr, config.backlog, true)?),
                // Loop 0 accepts for all.
                false => None,
            });
        }
        let polls = (0..threads)
            .map(|_| Poll::new())
            .collect::<io::Result<Vec<_>>>()?;
        let (hub, inboxes) = Hub::new(&polls, config.mailbox_capacity, config.max_connections)?;
        let config = Config {
            listen: local_addr,
            ..config
        };
        let mut loops = Vec::with_capacity(threads);
        for (index, ((poll, inbox), listener)) in
            polls.into_iter().zip(inboxes).zip(listeners).enumerate()
        {
            loops.push(Server::new_loop(
                config.clone(),
                handler(index),
                hub.clone(),
                index,
                inbox,
                poll,
                listener,
            )?);
        }
        Ok(Cluster {
            loops,
            hub,
            local_addr,
        })
    }

    /// The address the server listens on (useful after binding port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// How many loops the server runs.
    pub fn loops(&self) -> usize {
        self.loops.len()
    }

    /// Stops every loop from any thread: no new connections, close 1001 to every open one,
    /// and `run` returns once all are closed or the close timeout has passed.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle::new(self.hub.clone())
    }

    /// A handle to send, close and publish from other threads.
    pub fn remote(&self) -> Remote {
        Remote::new(self.hub.clone())
    }

    /// The figures of every loop, for `/metrics` or a dashboard.
    pub fn metrics(&self) -> crate::Metrics {
        crate::Metrics::new(self.hub.clone())
    }

    /// Runs every loop on a thread of its own (`wsloop-loop-N`) and returns when all have
    /// stopped. If one fails, the others are shut down and its error is returned.
    pub fn run(self) -> io::Result<()> {
        let hub = self.hub;
        let (done, results) = mpsc::channel();
        let mut threads = Vec::with_capacity(self.loops.len());
        for (index, server) in self.loops.into_iter().enumerate() {
            let done = done.clone();
            let spawned = thread::Builder::new()
                .name(format!("wsloop-loop-{index}"))
                .spawn(move || {
                    let result = match catch_unwind(AssertUnwindSafe(|| server.run())) {
                        Ok(result) => result,
                        Err(panic) => abort_after_panic(index, panic.as_ref()),
                    };
                    let _ = done.send((index, result));
                });
            match spawned {
                Ok(thread) => threads.push(thread),
                Err(err) => {
                    hub.request_shutdown();
                    threads.into_iter().for_each(|t| drop(t.join()));
                    return Err(err);
                }
            }
        }
        drop(done);
        let mut outcome = Ok(());
        for (index, result) in results.iter() {
            if let Err(err) = result {
                log::error!("loop {index} failed: {err}; stopping the others");
                hub.request_shutdown();
                if outcome.is_ok() {
                    outcome = Err(err);
                }
            }
        }
        for thread in threads {
            let _ = thread.join();
        }
        outcome
    }
}

/// Ends the process after a handler panicked on loop `index`.
fn abort_after_panic(index: usize, panic: &(dyn std::any::Any + Send)) -> ! {
    let what = panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)");
    let line = format!(
        "wsloop: loop {index} panicked ({what}); aborting the process, since its connections \
         can no longer be served"
    );
    log::error!("{line}");
    // Also straight to stderr, in case no logger is installed.
    eprintln!("{line}");
    std::process::abort()
}
