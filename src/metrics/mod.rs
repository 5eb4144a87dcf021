//! The server's figures, read from every loop on demand: [`Metrics`] renders them for
//! Prometheus and takes [`Snapshot`]s for dashboards.
//!
//! Loops count as they go, each into its own counters (plain loads and stores, no locks);
//! nothing is gathered until a scrape or a snapshot asks. See `BENCHMARKS.md` for what the
//! counting costs per message.

mod exposition;
mod process;
mod text;

use std::sync::Arc;

use crate::server::hub::Hub;
use crate::server::stats::LoopStats;

/// A handle on the server's figures, from [`Server::metrics`](crate::Server::metrics),
/// [`Cluster::metrics`](crate::Cluster::metrics), [`Remote::metrics`](crate::Remote::metrics)
/// or [`Context::metrics`](crate::Context::metrics). Cheap to clone; usable from any thread.
///
/// ```no_run
/// use wsloop::{Config, Context, Handler, Request, Response, Server, Upgrade};
///
/// struct App;
///
/// impl Handler for App {
///     type Data = ();
///
///     fn on_request(&mut self, ctx: &mut Context<'_>, req: &Request<'_, '_>) -> Response {
///         match req.path() {
///             "/metrics" => Response::new(200)
///                 .header("Content-Type", wsloop::Metrics::CONTENT_TYPE)
///                 .body(ctx.metrics().encode()),
///             _ => Response::text(404, "not found\n"),
///         }
///     }
///
///     fn on_upgrade(&mut self, _req: &Request<'_, '_>) -> Upgrade {
///         Upgrade::accept()
///     }
/// }
///
/// Server::bind(Config::default(), App)?.run()?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone)]
pub struct Metrics {
    hub: Arc<Hub>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("loops", &self.hub.loops())
            .finish()
    }
}

impl Metrics {
    /// The `Content-Type` of [`encode`](Metrics::encode)'s text.
    pub const CONTENT_TYPE: &'static str = text::CONTENT_TYPE;

    pub(crate) fn new(hub: Arc<Hub>) -> Metrics {
        Metrics { hub }
    }

    /// Every metric in the Prometheus text format, with a `loop` label on per-loop figures,
    /// and the process's memory, descriptors and CPU time.
    pub fn encode(&self) -> String {
        exposition::encode(&self.hub)
    }

    /// Time since the server was bound.
    pub fn uptime(&self) -> std::time::Duration {
        self.hub.uptime()
    }

    /// The running totals of each loop, for rates computed by the caller.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            loops: (0..self.hub.loops())
                .map(|index| LoopSnapshot::of(self.hub.stats(index)))
                .collect(),
        }
    }
}

/// Each loop's totals at one moment; two snapshots a second apart give rates.
#[non_exhaustive]
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// In loop order.
    pub loops: Vec<LoopSnapshot>,
}

impl Snapshot {
    /// The loops' figures added up.
    pub fn total(&self) -> LoopSnapshot {
        self.loops
            .iter()
            .fold(LoopSnapshot::default(), |sum, one| LoopSnapshot {
                open: sum.open + one.open,
                messages_in: sum.messages_in + one.messages_in,
                messages_out: sum.messages_out + one.messages_out,
                bytes_in: sum.bytes_in + one.bytes_in,
                bytes_out: sum.bytes_out + one.bytes_out,
            })
    }
}

/// One loop's totals since it started.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoopSnapshot {
    /// WebSocket connections open now.
    pub open: u64,
    /// Messages received, control frames included.
    pub messages_in: u64,
    /// Messages sent (publish deliveries and the protocol's own pongs and closes included).
    pub messages_out: u64,
    /// Payload bytes received (after decompression).
    pub bytes_in: u64,
    /// Payload bytes sent (before compression).
    pub bytes_out: u64,
}

impl LoopSnapshot {
    fn of(stats: &LoopStats) -> LoopSnapshot {
        LoopSnapshot {
            open: stats.open(),
            messages_in: stats.received.total_messages(),
            messages_out: stats.sent.total_messages(),
            bytes_in: stats.received.total_bytes(),
            bytes_out: stats.sent.total_bytes(),
        }
    }
}
