//! wsloop-load: a WebSocket load generator. See `wsloop-load --help` and BENCHMARKS.md.
//! `wsloop-load plot` compares runs from their --json reports.

mod cli;
mod client;
mod compare;
mod hgrm;
mod live;
mod payload;
mod plot;
mod report;
mod run;
mod source;
mod stamp;
mod stats;
mod system;
mod target;
mod timer;
mod traffic;
mod units;
mod worker;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let result = match cli::Cli::parse().mode {
        cli::Mode::Plot(args) => compare::run(&args),
        mode => cli::Cli { mode }
            .plan()
            .and_then(|(plan, outputs)| run::run(plan, outputs)),
    };
    match result {
        Ok(code) => code,
        Err(message) => {
            eprintln!("wsloop-load: {message}");
            ExitCode::from(2)
        }
    }
}
