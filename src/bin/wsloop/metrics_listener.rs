//! `--metrics-listen ADDR`: `/metrics` on an internal address of its own, apart from the
//! public port, served by a one-loop wsloop server on its own thread.

use std::io;
use std::net::SocketAddr;

use wsloop::{Config, Context, Handler, Metrics, Request, Response, Server, Upgrade};

/// Answers `GET /metrics` with the main server's figures, and nothing else.
struct MetricsOnly {
    metrics: Metrics,
}

impl Handler for MetricsOnly {
    type Data = ();

    fn on_request(&mut self, _ctx: &mut Context<'_>, req: &Request<'_, '_>) -> Response {
        match (req.method(), req.path()) {
            ("GET" | "HEAD", "/metrics") => Response::new(200)
                .header("Content-Type", Metrics::CONTENT_TYPE)
                .body(self.metrics.encode()),
            (_, "/metrics") => Response::text(405, "GET or HEAD\n").header("Allow", "GET, HEAD"),
            _ => Response::text(404, "only /metrics is served here\n"),
        }
    }

    fn on_upgrade(&mut self, _req: &Request<'_, '_>) -> Upgrade {
        Upgrade::reject(404, "only /metrics is served here")
    }
}

/// Binds `addr` and serves the metrics from a thread of its own; returns the bound address.
pub fn spawn(addr: SocketAddr, metrics: Metrics) -> io::Result<SocketAddr> {
    let config = Config {
        listen: addr,
        // Scrapers, not crowds.
        max_connections: 64,
        ..Config::default()
    };
    let server = Server::bind(config, MetricsOnly { metrics })?;
    let local = server.local_addr();
    std::thread::Builder::new()
        .name("wsloop-metrics".into())
        .spawn(move || {
            if let Err(err) = server.run() {
                log::error!("the metrics listener stopped: {err}");
            }
        })?;
    Ok(local)
}
