//! A whole run on this machine: limits, workers, the live line, and the final report and
//! files (which a run over agents writes the same way).

use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::cli::{Outputs, Plan};
use crate::live::{self, Seconds, TICK_GRACE};
use crate::pool::Pool;
use crate::report::{main_distribution, Context, Report};
use crate::stamp::Clock;
use crate::stats::Stats;
use crate::units::{format_bytes, format_count};
use crate::watch::ServerWatch;
use crate::worker::Shared;
use crate::{hgrm, plot, system};

/// How often the server's memory is looked at until every connection has settled.
const SETTLE_POLL: Duration = Duration::from_millis(10);

/// Runs `plan` to the end. Exit status 0: the run completed with every payload intact and at
/// least one connection opened; 1: mismatched payloads or nothing connected.
pub fn run(plan: Plan, outputs: Outputs) -> Result<ExitCode, String> {
    let limit = system::raise_open_file_limit()
        .map_err(|e| format!("cannot read or raise the open-file limit: {e}"))?;
    let budget = system::connection_budget(limit);
    if !outputs.quiet {
        eprintln!("open-file limit {limit}: room for about {budget} connections");
        if let Some(source) = &plan.source {
            eprintln!("connections spread over {} source addresses", source.len());
        }
    }
    if plan.own_connections() > budget {
        return Err(format!(
            "{} connections need more file descriptors than the limit of {limit} allows; \
             raise the hard limit (ulimit -Hn) first",
            plan.own_connections()
        ));
    }
    let mut server = ServerWatch::start(outputs.server_pid)?;
    let plan = Arc::new(plan);
    let shared = Arc::new(Shared {
        start: Instant::now(),
        clock: Clock::new(),
        settled: AtomicU64::new(0),
    });
    let mut pool = Pool::start(&plan, &shared, outputs.label.clone())?;
    let mut seconds = Seconds::new(shared.start, TICK_GRACE);
    loop {
        // The server's memory once every connection is open (in idle mode, before the hold).
        if shared.settled.load(Ordering::Relaxed) >= plan.own_connections() {
            server.settled();
        }
        let until = if server.waiting() {
            Instant::now() + SETTLE_POLL
        } else {
            seconds.next()
        };
        if !pool.wait(until) {
            break;
        }
        if let Some((elapsed, period)) = seconds.due(Instant::now()) {
            if !outputs.quiet {
                live::print(&pool.live.sample(elapsed, period), outputs.live_json);
            }
        }
    }
    let finished = pool.finish()?;
    let (server_cpu, rss) = server.finish();
    let report = Report::new(
        &plan,
        &finished.stats,
        &Context {
            label: outputs.label.clone(),
            open_file_limit: limit,
            elapsed: finished.elapsed,
            cpu: finished.cpu,
            server_pid: outputs.server_pid,
            server_cpu,
            rss,
            agents: None,
        },
    );
    publish(&plan, &outputs, &finished.stats, &report)?;
    Ok(verdict(&report, &finished.stats))
}

/// The exit status the figures call for: 1 for mismatched payloads or nothing connected.
pub fn verdict(report: &Report, stats: &Stats) -> ExitCode {
    if report.payload_mismatches > 0 || stats.opened == 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// Prints the report and writes the files asked for.
pub fn publish(
    plan: &Plan,
    outputs: &Outputs,
    stats: &Stats,
    report: &Report,
) -> Result<(), String> {
    print!("{}", report.text());
    write_files(plan, outputs, stats, report)
}

fn write_files(
    plan: &Plan,
    outputs: &Outputs,
    stats: &Stats,
    report: &Report,
) -> Result<(), String> {
    let write = |path: &std::path::Path, text: String| {
        std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
    };
    if let Some(path) = &outputs.json {
        let json = serde_json::to_string_pretty(report).map_err(|e| e.to_string())?;
        write(path, json + "\n")?;
    }
    // Connect and idle modes measure handshakes; the others message latency.
    let (histogram, what) = main_distribution(plan.mode, stats);
    if let Some(path) = &outputs.hgrm {
        write(path, hgrm::format(histogram))?;
    }
    if let Some(path) = &outputs.plot {
        let mut title = format!(
            "wsloop-load {}: {what}, {} connections",
            plan.mode.name(),
            plan.connections
        );
        if plan.mode.sends_messages() {
            title += &format!(", {}", format_bytes(plan.size as f64));
        }
        if let Some(rate) = plan.rate {
            title += &format!(", {}/s", format_count(rate));
        }
        let svg = if report.open_loop {
            plot::svg(
                &title,
                &[
                    ("corrected (from intended send time)", histogram),
                    (
                        "uncorrected (from actual send time)",
                        &stats.latency_uncorrected,
                    ),
                ],
            )
        } else {
            plot::svg(&title, &[(what, histogram)])
        };
        write(path, svg)?;
    }
    Ok(())
}
