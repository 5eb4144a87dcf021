//! wsloop-load: a WebSocket load generator. See `wsloop-load --help` and BENCHMARKS.md.
//! `wsloop-load plot` compares runs from their --json reports; `wsloop-load agent` runs the
//! load of a controller (any mode given `--agents`) on another machine.

mod agent;
mod cli;
mod client;
mod compare;
mod hgrm;
mod live;
mod payload;
mod plot;
mod pool;
mod report;
mod run;
mod selfcheck;
mod share;
mod source;
mod stamp;
mod stats;
mod system;
mod target;
mod timer;
mod tls;
mod traffic;
mod units;
mod watch;
mod worker;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let result = match cli::Cli::parse().mode {
        cli::Mode::Plot(args) => compare::run(&args),
        cli::Mode::Agent(args) => agent::serve::run(&args),
        mode => cli::Cli { mode }.plan().and_then(|invocation| {
            if invocation.plan.insecure() {
                eprintln!(
                    "wsloop-load: warning: --insecure: server certificates are not verified \
                     (any certificate is accepted; only its handshake signature is checked)"
                );
            }
            if invocation.agents.is_empty() {
                run::run(invocation.plan, invocation.outputs)
            } else {
                agent::controller::run(invocation.plan, invocation.outputs, &invocation.agents)
            }
        }),
    };
    match result {
        Ok(code) => code,
        Err(message) => {
            eprintln!("wsloop-load: {message}");
            ExitCode::from(2)
        }
    }
}
