//! The controller of a run split over agents (--agents): greets each agent and measures its
//! clock offset, deals out the plan, starts every agent at one time, turns their progress into
//! the live line, and merges their figures, histograms whole, into one report with a row per
//! agent. An agent that fails or goes silent is reported as failed; the others still count.

use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::process::ExitCode;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use crate::agent::clock::{self, Offset, Probe};
use crate::agent::protocol::{
    fits_request, greet, receive, send, Job, Outcome, ToAgent, ToController, MAX_REPLY,
};
use crate::agent::row::AgentRow;
use crate::cli::{Outputs, Plan};
use crate::live::{self, Live, Seconds, Tick};
use crate::report::{Context, Report};
use crate::run::{publish, verdict};
use crate::share::Share;
use crate::stamp::Clock;
use crate::stats::Stats;
use crate::watch::ServerWatch;

/// How long to wait for an agent's TCP connection, and then for each of its answers before
/// the start.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const SETUP_TIMEOUT: Duration = Duration::from_secs(10);
/// Clock probes per agent; the one with the shortest round trip gives the offset.
const PROBES: usize = 8;
/// How far ahead the shared start is set once every agent has accepted: time for the start
/// message to reach them all, with room to spare.
const START_LEAD: Duration = Duration::from_millis(500);
/// How long after each second the agents' progress for it has arrived: they send it
/// [`crate::live::TICK_GRACE`] after the second, and it crosses the network.
const PROGRESS_GRACE: Duration = Duration::from_millis(300);
/// An agent that has sent nothing for this long (each sends its progress every second) has
/// failed.
const SILENCE: Duration = Duration::from_secs(5);

/// An agent that has accepted its job.
struct Agent {
    addr: String,
    stream: TcpStream,
    offset: Offset,
    /// Its share of the connections.
    connections: u64,
}

/// Where an agent is in the run.
enum State {
    Running { last_heard: Instant },
    Done(Box<Outcome>),
    Failed(String),
}

/// Runs `plan` on the agents at `addrs`. Exit status as for a run here, and 1 when an agent
/// failed; a setup that fails (an agent unreachable, of another version, or refusing the job)
/// is an error before anything starts.
pub fn run(plan: Plan, outputs: Outputs, addrs: &[String]) -> Result<ExitCode, String> {
    let clock = Clock::new();
    let count = addrs.len();
    // A job too long to send (a large --ca) stops the run before any agent is engaged.
    fits_request(&ToAgent::Job(Box::new(Job::new(
        &plan,
        Share { index: 0, count },
        0,
    ))))?;
    let mut agents = Vec::with_capacity(count);
    for (index, addr) in addrs.iter().enumerate() {
        let share = Share { index, count };
        let agent =
            Agent::engage(addr, &plan, share, &clock).map_err(|e| format!("agent {addr}: {e}"))?;
        agents.push(agent);
    }
    let mut server = ServerWatch::start(outputs.server_pid)?;
    let start = Instant::now() + START_LEAD;
    let go = ToAgent::Start {
        at_unix_ns: clock.unix_ns(start),
    };
    let mut states: Vec<State> = agents
        .iter_mut()
        .map(|agent| match send(&mut agent.stream, &go) {
            Ok(()) => State::Running { last_heard: start },
            Err(e) => State::Failed(format!("cannot send the start time: {e}")),
        })
        .collect();
    if !outputs.quiet {
        for agent in &agents {
            eprintln!(
                "agent {}: {} connections, clock {:+.1} us (probe round trip {:.1} us)",
                agent.addr,
                agent.connections,
                agent.offset.offset_ns as f64 / 1e3,
                agent.offset.rtt_ns as f64 / 1e3
            );
        }
    }

    // One reader thread per agent, its messages to this one.
    let (messages, inbox) = mpsc::channel();
    for (index, agent) in agents.iter().enumerate() {
        let mut stream = agent
            .stream
            .try_clone()
            .map_err(|e| format!("agent {}: {e}", agent.addr))?;
        stream
            .set_read_timeout(None)
            .map_err(|e| format!("agent {}: {e}", agent.addr))?;
        let messages = messages.clone();
        std::thread::spawn(move || loop {
            let message = receive::<ToController>(&mut stream, MAX_REPLY);
            let last = !matches!(message, Ok(ToController::Progress(_)));
            if messages.send((index, message)).is_err() || last {
                break;
            }
        });
    }
    drop(messages);

    let mut live = Live::new(count, plan.mode.name(), outputs.label.clone());
    let mut seconds = Seconds::new(start, PROGRESS_GRACE);
    let mut settled = vec![0; count];
    while states.iter().any(|s| matches!(s, State::Running { .. })) {
        let until = seconds
            .next()
            .min(Instant::now() + Duration::from_millis(100));
        let received = inbox.recv_timeout(until.saturating_duration_since(Instant::now()));
        let now = Instant::now();
        let into_run = now.saturating_duration_since(start).as_secs_f64();
        match received {
            Ok((index, message)) => {
                let State::Running { last_heard } = &mut states[index] else {
                    continue;
                };
                *last_heard = now;
                let next = match message {
                    Ok(ToController::Progress(progress)) => {
                        settled[index] = progress.settled;
                        live.update(Tick {
                            thread: index,
                            figures: progress.figures,
                        });
                        continue;
                    }
                    Ok(ToController::Done(outcome)) => State::Done(outcome),
                    Ok(ToController::Failed { reason }) => State::Failed(reason),
                    Ok(other) => State::Failed(format!("sent {other:?} during the run")),
                    Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                        State::Failed(format!("connection closed {into_run:.1} s into the run"))
                    }
                    Err(e) => State::Failed(format!("{e} ({into_run:.1} s into the run)")),
                };
                states[index] = next;
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        for (state, agent) in states.iter_mut().zip(&agents) {
            if let State::Running { last_heard } = *state {
                if now.saturating_duration_since(last_heard) >= SILENCE {
                    *state = State::Failed(format!(
                        "silent for {} s ({into_run:.1} s into the run)",
                        SILENCE.as_secs()
                    ));
                    // Wakes its reader, which then ends.
                    let _ = agent.stream.shutdown(Shutdown::Both);
                }
            }
        }
        if settled.iter().sum::<u64>() >= plan.connections {
            server.settled();
        }
        if let Some((elapsed, period)) = seconds.due(now) {
            if !outputs.quiet {
                live::print(&live.sample(elapsed, period), outputs.live_json);
            }
        }
    }
    let elapsed = start.elapsed();
    let (server_cpu, rss) = server.finish();

    let mut stats = Stats::new();
    let (mut user, mut system) = (Duration::ZERO, Duration::ZERO);
    // The lowest of the agents' that reported.
    let mut open_file_limit: Option<u64> = None;
    let mut failed = false;
    let mut rows = Vec::with_capacity(count);
    for (agent, state) in agents.iter().zip(states) {
        let row = match state {
            State::Done(outcome) => {
                stats.merge(&outcome.stats);
                user += outcome.cpu_user;
                system += outcome.cpu_system;
                let limit = outcome.open_file_limit;
                open_file_limit = Some(open_file_limit.map_or(limit, |l| l.min(limit)));
                AgentRow::reported(
                    &agent.addr,
                    agent.connections,
                    agent.offset,
                    plan.mode,
                    &outcome,
                )
            }
            State::Failed(why) => {
                failed = true;
                AgentRow::failed(&agent.addr, agent.connections, agent.offset, why)
            }
            // The inbox closed with the agent still running: its reader ended unheard.
            State::Running { .. } => {
                failed = true;
                let why = "its connection ended without a report".to_string();
                AgentRow::failed(&agent.addr, agent.connections, agent.offset, why)
            }
        };
        rows.push(row);
    }
    let report = Report::new(
        &plan,
        &stats,
        &Context {
            label: outputs.label.clone(),
            open_file_limit: open_file_limit.unwrap_or(0),
            elapsed,
            cpu: (user, system),
            server_pid: outputs.server_pid,
            server_cpu,
            rss,
            agents: Some(rows),
        },
    );
    publish(&plan, &outputs, &stats, &report)?;
    Ok(if failed {
        ExitCode::from(1)
    } else {
        verdict(&report, &stats)
    })
}

impl Agent {
    /// Connects to the agent at `addr`, greets it, measures its clock and offers it part
    /// `share` of `plan`; `Err` says what went wrong, or why it refused.
    fn engage(addr: &str, plan: &Plan, share: Share, clock: &Clock) -> Result<Agent, String> {
        let socket = addr
            .to_socket_addrs()
            .map_err(|e| format!("cannot resolve it: {e}"))?
            .next()
            .ok_or("it resolves to no address")?;
        let mut stream = TcpStream::connect_timeout(&socket, CONNECT_TIMEOUT)
            .map_err(|e| format!("cannot connect: {e}"))?;
        let _ = stream.set_nodelay(true);
        stream
            .set_read_timeout(Some(SETUP_TIMEOUT))
            .map_err(|e| e.to_string())?;
        let silent = |e: std::io::Error| format!("no answer: {e}");
        greet(&mut stream)?;
        let mut probes = Vec::with_capacity(PROBES);
        for _ in 0..PROBES {
            let sent_ns = clock.unix_ns(Instant::now());
            send(&mut stream, &ToAgent::Probe).map_err(silent)?;
            let ToController::Clock { unix_ns } =
                receive(&mut stream, MAX_REPLY).map_err(silent)?
            else {
                return Err("answered a clock probe with something else".into());
            };
            probes.push(Probe {
                sent_ns,
                agent_ns: unix_ns,
                received_ns: clock.unix_ns(Instant::now()),
            });
        }
        let offset = clock::estimate(&probes).expect("probes were taken");
        let job = ToAgent::Job(Box::new(Job::new(plan, share, offset.offset_ns)));
        fits_request(&job)?;
        send(&mut stream, &job).map_err(silent)?;
        match receive(&mut stream, MAX_REPLY).map_err(silent)? {
            ToController::Accepted => Ok(Agent {
                addr: addr.to_string(),
                stream,
                offset,
                connections: share.of(plan.connections),
            }),
            ToController::Refused { reason } => Err(format!("refused the job: {reason}")),
            other => Err(format!("answered the job with {other:?}")),
        }
    }
}
