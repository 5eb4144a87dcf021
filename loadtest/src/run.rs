//! A whole run: limits, workers, the live line, and the final report and files.

use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use crate::cli::{Outputs, Plan};
use crate::live::Live;
use crate::report::{main_distribution, Context, Report};
use crate::stamp::Clock;
use crate::stats::Stats;
use crate::units::{format_bytes, format_count};
use crate::worker::{Shared, Worker};
use crate::{hgrm, plot, system};

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
    if plan.connections > budget {
        return Err(format!(
            "{} connections need more file descriptors than the limit of {limit} allows; \
             raise the hard limit (ulimit -Hn) first",
            plan.connections
        ));
    }
    let rss_before = outputs
        .server_pid
        .map(system::rss_bytes)
        .transpose()
        .map_err(|e| format!("cannot read the server's memory: {e}"))?;
    let server_cpu_before = outputs
        .server_pid
        .and_then(|pid| system::process_cpu_time(pid).ok());
    let cpu_before = system::cpu_time();
    let plan = Arc::new(plan);
    let shared = Arc::new(Shared {
        start: Instant::now(),
        clock: Clock::new(),
        settled: AtomicU64::new(0),
    });
    let (ticks, tick_rx) = mpsc::channel();
    let mut handles = Vec::new();
    for thread in 0..plan.threads {
        let worker = Worker::new(thread, plan.clone(), shared.clone(), ticks.clone())
            .map_err(|e| format!("cannot create an event loop: {e}"))?;
        let handle = std::thread::Builder::new()
            .name(format!("load-{thread}"))
            .spawn(move || worker.run())
            .map_err(|e| format!("cannot start a worker thread: {e}"))?;
        handles.push(handle);
    }
    drop(ticks);

    let mut rss_after = None;
    let mut live = Live::new(plan.threads, plan.mode.name(), outputs.label.clone());
    // A little after each second, so that the workers' ticks for it have arrived.
    let mut next_line = shared.start + Duration::from_millis(1050);
    let mut last_line = shared.start;
    loop {
        // The server's memory once every connection is open (in idle mode, before the hold).
        if rss_after.is_none()
            && outputs.server_pid.is_some()
            && shared.settled.load(Ordering::Relaxed) >= plan.connections
        {
            rss_after = outputs
                .server_pid
                .and_then(|pid| system::rss_bytes(pid).ok());
        }
        let wait = if outputs.server_pid.is_some() && rss_after.is_none() {
            Duration::from_millis(10)
        } else {
            next_line.saturating_duration_since(Instant::now())
        };
        match tick_rx.recv_timeout(wait) {
            Ok(tick) => live.update(tick),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
        let now = Instant::now();
        if now >= next_line {
            if !outputs.quiet {
                let sample = live.sample(now - shared.start, now - last_line);
                if outputs.live_json {
                    println!("{}", sample.json());
                } else {
                    eprintln!("{}", sample.text());
                }
            }
            last_line = now;
            next_line += Duration::from_secs(1);
        }
    }

    let mut stats = Stats::new();
    for handle in handles {
        let worker_stats = handle
            .join()
            .map_err(|_| "a worker thread panicked".to_string())?
            .map_err(|e| format!("event loop failed: {e}"))?;
        stats.merge(&worker_stats);
    }
    let elapsed = shared.start.elapsed();
    let cpu_after = system::cpu_time();
    let server_cpu_after = outputs
        .server_pid
        .and_then(|pid| system::process_cpu_time(pid).ok());
    let server_cpu = match (server_cpu_before, server_cpu_after) {
        (Some(before), Some(after)) => Some((after.0 - before.0, after.1 - before.1)),
        _ => None,
    };
    let report = Report::new(
        &plan,
        &stats,
        &Context {
            label: outputs.label.clone(),
            open_file_limit: limit,
            elapsed,
            cpu: (cpu_after.0 - cpu_before.0, cpu_after.1 - cpu_before.1),
            server_pid: outputs.server_pid,
            server_cpu,
            rss: (rss_before, rss_after),
        },
    );
    print!("{}", report.text());
    write_files(&plan, &outputs, &stats, &report)?;
    Ok(if report.payload_mismatches > 0 || stats.opened == 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
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
