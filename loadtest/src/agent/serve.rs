//! `wsloop-load agent`: serves controllers one at a time, each for one job, within the
//! agent's own rules (the loopback guard, its open-file limit); runs the job on the shared
//! start time and sends back its progress each second and its figures at the end.

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::agent::protocol::{
    greet, receive, send, Outcome, Progress, ToAgent, ToController, MAX_REQUEST, PROTOCOL_VERSION,
};
use crate::cli::{AgentArgs, Plan};
use crate::live::{Seconds, TICK_GRACE};
use crate::pool::Pool;
use crate::source::SourceRange;
use crate::stamp::Clock;
use crate::system;
use crate::worker::Shared;

/// How long a controller may keep the agent waiting for its next message before the run
/// starts (a silent peer must not hold the agent).
const SETUP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a write to the controller may block during the run before it counts as gone.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// After a failed accept (no descriptors left, say), before the next.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// What this agent allows, whatever its controllers ask.
struct Rules {
    allow_remote: bool,
    source: Option<SourceRange>,
    open_file_limit: u64,
}

/// Listens until killed. The first line on stdout gives the address it listens on.
pub fn run(args: &AgentArgs) -> Result<ExitCode, String> {
    let open_file_limit = system::raise_open_file_limit()
        .map_err(|e| format!("cannot read or raise the open-file limit: {e}"))?;
    let listener = TcpListener::bind(args.listen)
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    println!(
        "wsloop-load agent listening on {addr} (agent protocol {PROTOCOL_VERSION}, room for \
         about {} connections{})",
        system::connection_budget(open_file_limit),
        if args.allow_remote {
            ", remote targets allowed"
        } else {
            ", loopback targets only"
        }
    );
    // The tests and scripts that start an agent wait for that line.
    let _ = std::io::stdout().flush();
    let rules = Rules {
        allow_remote: args.allow_remote,
        source: args.source.clone(),
        open_file_limit,
    };
    for stream in listener.incoming() {
        match stream {
            Ok(stream) => {
                let peer = stream
                    .peer_addr()
                    .map_or_else(|_| "?".to_string(), |a| a.to_string());
                match serve(stream, &rules) {
                    Ok(summary) => eprintln!("wsloop-load agent: {peer}: {summary}"),
                    Err(e) => eprintln!("wsloop-load agent: {peer}: {e}"),
                }
            }
            Err(e) => {
                eprintln!("wsloop-load agent: accept failed: {e}");
                std::thread::sleep(ACCEPT_BACKOFF);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// One controller, from its greeting to the end of its job.
fn serve(mut stream: TcpStream, rules: &Rules) -> Result<String, String> {
    let _ = stream.set_nodelay(true);
    stream
        .set_read_timeout(Some(SETUP_TIMEOUT))
        .and_then(|()| stream.set_write_timeout(Some(WRITE_TIMEOUT)))
        .map_err(|e| e.to_string())?;
    let clock = Clock::new();
    greet(&mut stream)?;
    let lost = |e: std::io::Error| format!("controller gone: {e}");
    loop {
        match receive::<ToAgent>(&mut stream, MAX_REQUEST).map_err(lost)? {
            ToAgent::Probe => {
                let reading = ToController::Clock {
                    unix_ns: clock.unix_ns(Instant::now()),
                };
                send(&mut stream, &reading).map_err(lost)?;
            }
            ToAgent::Job(job) => {
                let plan = job
                    .plan(rules.allow_remote, rules.source.as_ref())
                    .and_then(|plan| fits(plan, rules.open_file_limit));
                let plan = match plan {
                    Ok(plan) => plan,
                    Err(reason) => {
                        let _ = send(
                            &mut stream,
                            &ToController::Refused {
                                reason: reason.clone(),
                            },
                        );
                        return Err(format!("refused a job: {reason}"));
                    }
                };
                send(&mut stream, &ToController::Accepted).map_err(lost)?;
                eprintln!(
                    "wsloop-load agent: accepted a job: {} {}, part {} of {} ({} connections){}",
                    plan.mode.name(),
                    plan.target.url(),
                    plan.share.index + 1,
                    plan.share.count,
                    plan.own_connections(),
                    if plan.insecure() {
                        "; warning: TLS certificates are not verified (--insecure)"
                    } else {
                        ""
                    }
                );
                let ToAgent::Start { at_unix_ns } =
                    receive::<ToAgent>(&mut stream, MAX_REQUEST).map_err(lost)?
                else {
                    return Err("expected the start time after accepting a job".into());
                };
                let clock = clock.shifted_back(job.clock_offset_ns);
                return run_job(stream, plan, clock, at_unix_ns, rules.open_file_limit);
            }
            ToAgent::Start { .. } => return Err("a start time before any job".into()),
        }
    }
}

/// `plan` if this agent's share fits its open-file limit.
fn fits(plan: Plan, open_file_limit: u64) -> Result<Plan, String> {
    let budget = system::connection_budget(open_file_limit);
    if plan.own_connections() > budget {
        return Err(format!(
            "{} connections need more file descriptors than this agent's limit of \
             {open_file_limit} allows",
            plan.own_connections()
        ));
    }
    Ok(plan)
}

/// Runs `plan` from `at_unix_ns` (on `clock`, which reads the controller's time), sending
/// progress each second and the figures at the end. The job runs to its end even if the
/// controller goes: the workers stop by themselves.
fn run_job(
    mut stream: TcpStream,
    plan: Plan,
    clock: Clock,
    at_unix_ns: u64,
    open_file_limit: u64,
) -> Result<String, String> {
    let start = clock.instant(at_unix_ns);
    std::thread::sleep(start.saturating_duration_since(Instant::now()));
    let late_start = start.elapsed();
    let plan = Arc::new(plan);
    let shared = Arc::new(Shared {
        start,
        clock,
        settled: AtomicU64::new(0),
    });
    let mut connected = true;
    let mut pool = match Pool::start(&plan, &shared, String::new()) {
        Ok(pool) => pool,
        Err(reason) => {
            let _ = send(
                &mut stream,
                &ToController::Failed {
                    reason: reason.clone(),
                },
            );
            return Err(reason);
        }
    };
    let mut seconds = Seconds::new(start, TICK_GRACE);
    while pool.wait(seconds.next()) {
        if seconds.due(Instant::now()).is_some() && connected {
            let progress = Progress {
                figures: pool.live.merged(),
                settled: shared.settled.load(Ordering::Relaxed),
            };
            connected = send(&mut stream, &ToController::Progress(progress)).is_ok();
        }
    }
    let (reply, summary) = match pool.finish() {
        Ok(finished) => {
            let stats = &finished.stats;
            let summary = format!(
                "job done: {} connections opened, {} sent, {} received, {} errors",
                stats.opened,
                stats.sent,
                stats.received,
                stats.error_count()
            );
            let outcome = Outcome {
                stats: finished.stats,
                elapsed: finished.elapsed,
                cpu_user: finished.cpu.0,
                cpu_system: finished.cpu.1,
                late_start,
                open_file_limit,
            };
            (ToController::Done(Box::new(outcome)), summary)
        }
        Err(reason) => {
            let summary = format!("job failed: {reason}");
            (ToController::Failed { reason }, summary)
        }
    };
    if !connected {
        return Err(format!("{summary}; the controller had gone"));
    }
    send(&mut stream, &reply).map_err(|e| format!("{summary}; cannot report it: {e}"))?;
    Ok(summary)
}
