//! The Autobahn|Testsuite client driver: wsloop's client role against the fuzzingserver.
//!
//! ```sh
//! bash ../shared/autobahn/run-client.sh --cases quick --agent wsloop -- \
//!     target/release/examples/autobahn_client
//! ```
//!
//! As every Autobahn driver does: read the case count from `/getCaseCount`, then for each
//! case open `/runCase?case=N&agent=AGENT` and echo every message back until the server
//! closes, then open `/updateReports?agent=AGENT`. One connection at a time, each opened
//! from the close of the one before, in one event loop. `AUTOBAHN_URL` and
//! `AUTOBAHN_AGENT` come from `run-client.sh`.

use std::process::ExitCode;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use std::time::Duration;
use wsloop::client::ConnectOptions;

use wsloop::{
    CloseCode, Config, ConnId, Context, Error, Handler, Message, Server, ShutdownHandle, Timer,
};

/// Where the driver is in the suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Reading the number of cases; `None` until it came.
    Count(Option<u32>),
    /// Running case `n` (1-based) of `of`.
    Case { n: u32, of: u32 },
    /// Asking the server to write its report.
    Report,
}

struct Driver {
    base: String,
    agent: String,
    options: ConnectOptions,
    step: Step,
    stop: Option<ShutdownHandle>,
    /// Connections that could not be opened at all (the run is then broken).
    failures: Arc<AtomicU32>,
}

impl Driver {
    /// Opens the connection for the current step.
    fn open(&mut self, ctx: &mut Context<'_>) {
        let path = match self.step {
            Step::Count(_) => "/getCaseCount".to_owned(),
            Step::Case { n, .. } => format!("/runCase?case={n}&agent={}", self.agent),
            Step::Report => format!("/updateReports?agent={}", self.agent),
        };
        if let Err(err) = ctx.connect(&format!("{}{path}", self.base), &self.options) {
            eprintln!("autobahn_client: cannot connect to {path}: {err}");
            self.failures.fetch_add(1, Ordering::Relaxed);
            self.finish();
        }
    }

    fn finish(&self) {
        if let Some(stop) = &self.stop {
            stop.shutdown();
        }
    }
}

impl Handler for Driver {
    type Data = ();

    fn on_start(&mut self, ctx: &mut Context<'_>) {
        self.open(ctx);
    }

    fn on_message(&mut self, ctx: &mut Context<'_>, id: ConnId, msg: Message<'_>) {
        match self.step {
            Step::Count(_) => {
                let count = match msg {
                    Message::Text(text) => text.trim().parse().ok(),
                    Message::Binary(_) => None,
                };
                self.step = Step::Count(count);
            }
            // Backpressure pauses reading this connection until the echo drains.
            Step::Case { .. } => {
                let _ = ctx.send(id, msg);
            }
            Step::Report => {}
        }
    }

    fn on_error(&mut self, _ctx: &mut Context<'_>, _id: ConnId, err: &Error) {
        // Many cases end in an error on purpose (a protocol violation the client must fail
        // the connection for); only a connection that never opened is the driver's problem.
        if matches!(
            err,
            Error::Resolve(_) | Error::Connect(_) | Error::Handshake(_)
        ) {
            eprintln!("autobahn_client: {:?}: {err}", self.step);
            self.failures.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn on_close(&mut self, ctx: &mut Context<'_>, _id: ConnId, _code: CloseCode, _reason: &str) {
        self.step = match self.step {
            Step::Count(Some(of)) if of > 0 => Step::Case { n: 1, of },
            Step::Count(_) => {
                eprintln!("autobahn_client: no case count from {}", self.base);
                self.failures.fetch_add(1, Ordering::Relaxed);
                return self.finish();
            }
            Step::Case { n, of } if n < of => Step::Case { n: n + 1, of },
            Step::Case { .. } => {
                // `on_close` comes with the server's close frame, and the fuzzingserver
                // records a case when its TCP connection ends: the report waits for that.
                self.step = Step::Report;
                let _ = ctx.set_interval(Duration::from_millis(10), None, 0);
                return;
            }
            Step::Report => return self.finish(),
        };
        self.open(ctx);
    }

    fn on_timer(&mut self, ctx: &mut Context<'_>, timer: Timer) {
        if ctx.connection_count() == 0 {
            ctx.clear_timer(timer.id);
            self.open(ctx);
        }
    }
}

fn main() -> ExitCode {
    let base = std::env::var("AUTOBAHN_URL").unwrap_or_else(|_| "ws://127.0.0.1:9041".into());
    let agent = std::env::var("AUTOBAHN_AGENT").unwrap_or_else(|_| "wsloop".into());
    let config = Config {
        // Cases 9.* send messages of up to 16 MiB.
        max_message_size: 64 << 20,
        ..Config::default()
    };
    let failures = Arc::new(AtomicU32::new(0));
    let driver = Driver {
        base,
        agent,
        options: ConnectOptions::new()
            .deflate(true)
            .max_message_size(64 << 20),
        step: Step::Count(None),
        stop: None,
        failures: failures.clone(),
    };
    let result = Server::without_listener(config, driver).and_then(|mut server| {
        let stop = server.shutdown_handle();
        server.handler_mut().stop = Some(stop);
        server.run()
    });
    match result {
        Ok(()) if failures.load(Ordering::Relaxed) == 0 => ExitCode::SUCCESS,
        Ok(()) => ExitCode::FAILURE,
        Err(err) => {
            eprintln!("autobahn_client: {err}");
            ExitCode::FAILURE
        }
    }
}
