//! The final report: every figure in one serializable struct, printed for people and written
//! as JSON, .hgrm and SVG on request.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::agent::row::AgentRow;
use crate::cli::{ModeKind, Plan};
use crate::plot;
use crate::selfcheck::{self, SelfCheck};
use crate::stats::{ErrorKind, Percentiles, Reason, Stats};
use crate::units::{format_bytes, format_count, format_micros};

/// Everything a run measured. Latencies are in microseconds, rates per second.
#[derive(Debug, Serialize)]
pub struct Report {
    pub mode: &'static str,
    pub url: String,
    /// The run's name (--label; by default the mode and URL), the legend in `plot`.
    pub label: String,
    pub connections: u64,
    pub threads: usize,
    pub duration_s: f64,
    pub warmup_s: f64,
    /// The measured window: sending time minus warm-up.
    pub window_s: f64,
    pub size: usize,
    pub text: bool,
    pub depth: usize,
    pub rate: Option<f64>,
    pub open_loop: bool,
    pub open_file_limit: u64,
    pub connections_attempted: u64,
    pub connections_opened: u64,
    /// Closed-loop modes: sent and received over the whole run (warm-up and drain included).
    pub messages_sent: u64,
    pub messages_received: u64,
    /// Messages received per second in the window (echoes, or deliveries in broadcast).
    pub messages_per_sec: f64,
    /// Payload bytes received per second in the window (the same amount was sent).
    pub bytes_per_sec: f64,
    pub payload_mismatches: u64,
    /// Open loop: messages due before the end that never left.
    pub behind_schedule: u64,
    pub latency_us: Option<Percentiles>,
    /// Open loop: latency measured from the actual send, hiding the server's stalls.
    pub latency_uncorrected_us: Option<Percentiles>,
    /// Open loop and publishing: how late messages left against their schedule.
    pub send_lag_us: Option<Percentiles>,
    pub handshake_us: Option<Percentiles>,
    /// The distribution --hgrm and --plot show (round trips, deliveries or, in connect and
    /// idle modes, handshakes) at its percentile steps, for `wsloop-load plot`; `None` when
    /// nothing was measured.
    pub latency_distribution: Option<Distribution>,
    /// Connect mode: successful handshakes per second over the ramp.
    pub handshakes_per_sec: Option<f64>,
    /// Broadcast: messages published and deliveries received.
    pub published: Option<u64>,
    pub deliveries: Option<u64>,
    pub deliveries_per_sec: Option<f64>,
    /// Broadcast: deliveries of a publisher's own messages back to it (an echo, or a fan-out
    /// that includes the sender).
    pub own_deliveries: Option<u64>,
    /// Idle mode.
    pub idle: Option<IdleFigures>,
    pub server: Option<ServerFigures>,
    pub errors: BTreeMap<String, u64>,
    pub errors_total: u64,
    /// The first few different reasons given for errors (a connect or socket failure as the
    /// system said it, a TLS failure as rustls did), each with its kind and count.
    pub error_reasons: Vec<Reason>,
    pub generator: Generator,
    /// With --agents: one row per agent, in the order given; `None` for a run on this
    /// machine.
    pub agents: Option<Vec<AgentRow>>,
    /// What makes the figures doubtful: a broadcast path that does not fan out, a generator
    /// that could be the cause of the tail (named by agent with --agents), an agent that
    /// failed.
    pub warnings: Vec<String>,
}

/// A latency distribution as the percentile spectrum: enough to draw it again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Distribution {
    /// What was timed: "round-trip latency", "delivery latency" or "handshake".
    pub of: String,
    /// The values at HdrHistogram's percentile steps (five per halving of the distance to
    /// 100%, as in .hgrm output), rising; the last is the maximum, at quantile 1.
    pub points: Vec<SpectrumPoint>,
}

/// One step of a [`Distribution`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SpectrumPoint {
    /// The fraction of values at or below `value_us` (0.999 is the 99.9th percentile).
    pub quantile: f64,
    pub value_us: u64,
}

impl Distribution {
    /// The spectrum of `histogram` (microseconds); `None` when it is empty.
    pub fn of(what: &str, histogram: &Histogram<u64>) -> Option<Distribution> {
        (!histogram.is_empty()).then(|| Distribution {
            of: what.to_string(),
            points: plot::spectrum(histogram)
                .into_iter()
                .map(|(quantile, value_us)| SpectrumPoint { quantile, value_us })
                .collect(),
        })
    }

    /// `(quantile, microseconds)` pairs, as [`plot::svg_spectra`] draws them.
    pub fn pairs(&self) -> Vec<(f64, u64)> {
        self.points
            .iter()
            .map(|p| (p.quantile, p.value_us))
            .collect()
    }
}

/// The distribution a mode is judged by, and what it times: handshakes in connect and idle
/// modes, message latency in the others.
pub fn main_distribution(mode: ModeKind, stats: &Stats) -> (&Histogram<u64>, &'static str) {
    match mode {
        ModeKind::Connect | ModeKind::Idle => (&stats.handshake, "handshake"),
        ModeKind::Broadcast => (&stats.latency, "delivery latency"),
        ModeKind::Echo | ModeKind::Latency => (&stats.latency, "round-trip latency"),
    }
}

/// Idle mode's memory and liveness figures.
#[derive(Debug, Serialize)]
pub struct IdleFigures {
    pub pings: u64,
    pub pongs: u64,
    pub alive_at_end: u64,
    /// Growth of the server's resident memory over the opening, per connection opened.
    /// Meaningful for a freshly started server only: memory kept from earlier connections
    /// (buffers, pools) is reused instead of grown, making the figure too low.
    pub bytes_per_connection: Option<f64>,
}

/// What --server-pid revealed about the server.
#[derive(Debug, Serialize)]
pub struct ServerFigures {
    pub pid: u32,
    /// CPU time over the run (connecting and closing included).
    pub cpu_user_s: Option<f64>,
    pub cpu_system_s: Option<f64>,
    /// CPU time over elapsed time: near 1.0, a single-threaded server is the bottleneck.
    pub cores_busy: Option<f64>,
    /// CPU time per message received by the generator (echoes, deliveries): one core's
    /// capacity is a million over this, whatever share of the core the server was given.
    pub cpu_us_per_message: Option<f64>,
    /// Resident memory before the first connection and once every connection had settled.
    pub rss_before_bytes: Option<u64>,
    pub rss_after_bytes: Option<u64>,
}

/// The generator's own cost, to tell when it, not the server, is the bottleneck. With
/// --agents: every agent's CPU time together, and every agent's threads.
#[derive(Debug, Serialize)]
pub struct Generator {
    pub elapsed_s: f64,
    pub cpu_user_s: f64,
    pub cpu_system_s: f64,
    /// CPU time over elapsed time: 1.0 is one core kept busy.
    pub cores_busy: f64,
    /// CPU time per message received (sending, checking and timing it included).
    pub cpu_us_per_message: Option<f64>,
    /// Each thread's share of its core, the busiest one, whether it saturated, and how late
    /// the event loops ran.
    #[serde(flatten)]
    pub check: SelfCheck,
}

/// Inputs to the report beyond the merged statistics.
pub struct Context {
    /// The run's name (--label, or its default).
    pub label: String,
    pub open_file_limit: u64,
    pub elapsed: Duration,
    pub cpu: (Duration, Duration),
    pub server_pid: Option<u32>,
    /// The server's CPU time (user, system) over the run.
    pub server_cpu: Option<(Duration, Duration)>,
    pub rss: (Option<u64>, Option<u64>),
    /// With --agents: their rows.
    pub agents: Option<Vec<AgentRow>>,
}

impl Report {
    pub fn new(plan: &Plan, stats: &Stats, ctx: &Context) -> Report {
        let mode = plan.mode;
        let sends = mode.sends_messages();
        let window = stats.sending_time.saturating_sub(plan.warmup);
        let window_s = window.as_secs_f64();
        let per_sec = |count: u64| {
            if window_s > 0.0 {
                count as f64 / window_s
            } else {
                0.0
            }
        };
        let open_loop = mode == ModeKind::Latency && plan.rate.is_some();
        let percentiles = |h: &Histogram<u64>| (!h.is_empty()).then(|| Percentiles::of(h));
        let elapsed = ctx.elapsed.as_secs_f64();
        let (user, system) = ctx.cpu;
        let idle = (mode == ModeKind::Idle).then(|| {
            let opened = stats.opened;
            let per_conn = match ctx.rss {
                (Some(before), Some(after)) if opened > 0 => {
                    Some((after as f64 - before as f64) / opened as f64)
                }
                _ => None,
            };
            IdleFigures {
                pings: stats.pings,
                pongs: stats.pongs,
                alive_at_end: stats.alive_at_end,
                bytes_per_connection: per_conn,
            }
        });
        let per_message = |cpu: Duration| {
            (stats.received > 0).then(|| cpu.as_secs_f64() * 1e6 / stats.received as f64)
        };
        let server = ctx.server_pid.map(|pid| ServerFigures {
            pid,
            cpu_user_s: ctx.server_cpu.map(|(user, _)| user.as_secs_f64()),
            cpu_system_s: ctx.server_cpu.map(|(_, system)| system.as_secs_f64()),
            cores_busy: ctx
                .server_cpu
                .filter(|_| elapsed > 0.0)
                .map(|(user, system)| (user + system).as_secs_f64() / elapsed),
            cpu_us_per_message: ctx
                .server_cpu
                .and_then(|(user, system)| per_message(user + system)),
            rss_before_bytes: ctx.rss.0,
            rss_after_bytes: ctx.rss.1,
        });
        let broadcast = mode == ModeKind::Broadcast;
        let publishing_for = stats
            .first_publish
            .map(|first| stats.sending_time.saturating_sub(first));
        let mut warnings: Vec<String> = broadcast
            .then(|| {
                fan_out_warning(
                    stats.opened,
                    stats.published,
                    stats.own_deliveries,
                    stats.other_deliveries,
                    publishing_for.unwrap_or_default(),
                )
            })
            .flatten()
            .into_iter()
            .collect();
        match &ctx.agents {
            // Each agent checked itself; its warnings name it.
            Some(rows) => warnings.extend(rows.iter().flat_map(AgentRow::report_warnings)),
            None => warnings.extend(selfcheck::warnings(mode, stats)),
        }
        Report {
            mode: mode.name(),
            url: plan.target.url(),
            label: ctx.label.clone(),
            connections: plan.connections,
            threads: plan.threads,
            duration_s: plan.duration.as_secs_f64(),
            warmup_s: plan.warmup.as_secs_f64(),
            window_s,
            size: plan.size,
            text: plan.text,
            depth: plan.depth,
            rate: plan.rate,
            open_loop,
            open_file_limit: ctx.open_file_limit,
            connections_attempted: stats.attempted,
            connections_opened: stats.opened,
            messages_sent: stats.sent,
            messages_received: stats.received,
            messages_per_sec: per_sec(stats.window_messages),
            bytes_per_sec: per_sec(stats.window_bytes),
            payload_mismatches: stats
                .errors
                .get(&ErrorKind::PayloadMismatch)
                .copied()
                .unwrap_or(0),
            behind_schedule: stats.behind_schedule,
            latency_us: sends.then(|| percentiles(&stats.latency)).flatten(),
            latency_uncorrected_us: open_loop
                .then(|| percentiles(&stats.latency_uncorrected))
                .flatten(),
            send_lag_us: (open_loop || broadcast)
                .then(|| percentiles(&stats.send_lag))
                .flatten(),
            handshake_us: percentiles(&stats.handshake),
            latency_distribution: {
                let (histogram, what) = main_distribution(mode, stats);
                Distribution::of(what, histogram)
            },
            // Connect mode's "sending time" is the ramp: until every handshake had ended.
            handshakes_per_sec: (mode == ModeKind::Connect && !stats.sending_time.is_zero())
                .then(|| stats.opened as f64 / stats.sending_time.as_secs_f64()),
            published: broadcast.then_some(stats.published),
            deliveries: broadcast.then_some(stats.received),
            deliveries_per_sec: broadcast.then(|| per_sec(stats.window_messages)),
            own_deliveries: broadcast.then_some(stats.own_deliveries),
            idle,
            server,
            errors: stats
                .errors
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect(),
            errors_total: stats.error_count(),
            error_reasons: stats.error_reasons.clone(),
            generator: Generator {
                elapsed_s: elapsed,
                cpu_user_s: user.as_secs_f64(),
                cpu_system_s: system.as_secs_f64(),
                cores_busy: if elapsed > 0.0 {
                    (user + system).as_secs_f64() / elapsed
                } else {
                    0.0
                },
                cpu_us_per_message: per_message(user + system),
                check: SelfCheck::of(stats),
            },
            agents: ctx.agents.clone(),
            warnings,
        }
    }

    /// The report for people.
    pub fn text(&self) -> String {
        let mut out = String::new();
        let _ = write!(
            out,
            "wsloop-load {} {}: {} connections, {} thread{}",
            self.mode,
            self.url,
            self.connections,
            self.threads,
            if self.threads == 1 { "" } else { "s" }
        );
        if matches!(self.mode, "echo" | "latency" | "broadcast") {
            let kind = if self.text { "text" } else { "binary" };
            let _ = write!(out, ", {} {kind}", format_bytes(self.size as f64));
            if self.mode != "broadcast" {
                let _ = write!(out, ", depth {}", self.depth);
            }
            if let Some(rate) = self.rate {
                let _ = write!(out, ", {}/s", format_count(rate));
            }
        }
        out.push('\n');
        let _ = writeln!(
            out,
            "  connections   {} opened of {} attempted (open-file limit {})",
            self.connections_opened, self.connections_attempted, self.open_file_limit
        );
        if let Some(h) = &self.handshake_us {
            let _ = writeln!(out, "  handshake     {}", percentile_line(h));
        }
        if let Some(rate) = self.handshakes_per_sec {
            let _ = writeln!(out, "  handshakes/s  {}", format_count(rate));
        }
        if matches!(self.mode, "echo" | "latency") {
            let _ = writeln!(
                out,
                "  messages      {} sent, {} echoed, {} mismatched",
                self.messages_sent, self.messages_received, self.payload_mismatches
            );
            let _ = writeln!(
                out,
                "  throughput    {} msg/s, {}/s payload each way, over {:.1} s after {:.1} s warm-up",
                format_count(self.messages_per_sec),
                format_bytes(self.bytes_per_sec),
                self.window_s,
                self.warmup_s
            );
        }
        if let (Some(published), Some(deliveries), Some(rate)) =
            (self.published, self.deliveries, self.deliveries_per_sec)
        {
            let _ = writeln!(
                out,
                "  broadcast     {published} published, {deliveries} delivered, {} deliveries/s, {} mismatched",
                format_count(rate),
                self.payload_mismatches
            );
        }
        if let Some(h) = &self.latency_us {
            let label = match self.mode {
                "broadcast" => "delivery",
                _ if self.open_loop => "latency (CO)",
                _ => "latency",
            };
            let _ = writeln!(out, "  {label:<13} {}", percentile_line(h));
        }
        if let Some(h) = &self.latency_uncorrected_us {
            let _ = writeln!(out, "  uncorrected   {}", percentile_line(h));
        }
        if let Some(h) = &self.send_lag_us {
            let _ = writeln!(out, "  send lag      {}", percentile_line(h));
        }
        if self.behind_schedule > 0 {
            let _ = writeln!(
                out,
                "  behind        {} scheduled messages never left (every slot held by the server)",
                self.behind_schedule
            );
        }
        if let Some(idle) = &self.idle {
            let _ = writeln!(
                out,
                "  alive         {} of {} answered the final ping ({} pings, {} pongs)",
                idle.alive_at_end, self.connections_opened, idle.pings, idle.pongs
            );
        }
        let errors = if self.errors.is_empty() {
            "none".to_string()
        } else {
            let parts: Vec<String> = self
                .errors
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect();
            parts.join(", ")
        };
        let _ = writeln!(out, "  errors        {errors}");
        for r in &self.error_reasons {
            let _ = writeln!(out, "  error reason  {} {}: {}", r.kind, r.count, r.reason);
        }
        if let Some(server) = &self.server {
            if let (Some(before), Some(after)) = (server.rss_before_bytes, server.rss_after_bytes) {
                let per_conn = self.idle.as_ref().and_then(|i| i.bytes_per_connection);
                let _ = writeln!(
                    out,
                    "  server RSS    {} before, {} with every connection open{}",
                    format_bytes(before as f64),
                    format_bytes(after as f64),
                    per_conn.map_or(String::new(), |b| format!(
                        ": {} per connection",
                        format_bytes(b)
                    ))
                );
                if per_conn.is_some() {
                    let _ = writeln!(
                        out,
                        "  note: per-connection memory assumes a freshly started server \
                         (buffers and pools kept from earlier connections make it too low)"
                    );
                }
            }
            if let Some(busy) = server.cores_busy {
                let _ = writeln!(
                    out,
                    "  server        {busy:.2} cores busy{} (pid {})",
                    per_message_text(server.cpu_us_per_message),
                    server.pid
                );
            }
        }
        let _ = writeln!(
            out,
            "  generator     {:.2} cores busy{} (user {:.1} s, system {:.1} s over {:.1} s)",
            self.generator.cores_busy,
            per_message_text(self.generator.cpu_us_per_message),
            self.generator.cpu_user_s,
            self.generator.cpu_system_s,
            self.generator.elapsed_s
        );
        let _ = writeln!(out, "  self-check    {}", check_text(&self.generator.check));
        if let Some(rows) = &self.agents {
            let ok = rows.iter().filter(|row| row.failure.is_none()).count();
            let _ = writeln!(out, "  agents        {ok} of {} reported", rows.len());
            for row in rows {
                let _ = writeln!(out, "    {}", row.text());
            }
        }
        for warning in &self.warnings {
            let _ = writeln!(out, "  warning: {warning}");
        }
        out
    }
}

/// How long publishing must have gone on before silence from the other connections, with
/// none of the publishers' own messages back either, counts as no fan-out.
const SILENCE_AFTER: Duration = Duration::from_secs(1);

/// Broadcast: the warning for a path that does not fan out, judged from whose messages
/// arrived. Every connection subscribes, so with two or more open, a fan-out delivers some
/// messages to connections other than their publisher; an echo only returns each publisher
/// its own. Nothing back at all is a verdict only after [`SILENCE_AFTER`] of publishing.
fn fan_out_warning(
    opened: u64,
    published: u64,
    own: u64,
    others: u64,
    publishing_for: Duration,
) -> Option<String> {
    if opened < 2 || published == 0 || others > 0 {
        return None;
    }
    const HINT: &str = "(the wsloop binary fans out under /chat/ROOM)";
    if own > 0 {
        Some(format!(
            "no subscriber received a published message and publishers got their own \
             messages back: the path looks like an echo, not a fan-out {HINT}"
        ))
    } else if publishing_for >= SILENCE_AFTER {
        Some(format!(
            "no connection received any of the {published} published messages: \
             the path does not look like a fan-out {HINT}"
        ))
    } else {
        None
    }
}

/// `busiest thread 45% of its core, waited for a CPU 2%, event loop late p99 120us` for a
/// self-check.
pub fn check_text(check: &SelfCheck) -> String {
    let mut text = format!(
        "busiest thread {:.0}% of its core{}",
        check.busiest_thread * 100.0,
        if check.saturated { " (saturated)" } else { "" }
    );
    if !check.thread_waiting.is_empty() {
        let _ = write!(
            text,
            ", waited for a CPU {:.0}%{}",
            check.most_waiting() * 100.0,
            if check.starved { " (starved)" } else { "" }
        );
    }
    if let Some(lag) = &check.loop_lag_us {
        let _ = write!(text, ", event loop late p99 {}", format_micros(lag.p99));
    }
    text
}

/// `, 0.45 us CPU per message` when there were messages.
fn per_message_text(micros: Option<f64>) -> String {
    micros.map_or(String::new(), |us| format!(", {us:.3} us CPU per message"))
}

/// `p50 45us  p90 ...  max 1.2ms` for one histogram.
pub fn percentile_line(p: &Percentiles) -> String {
    format!(
        "p50 {}  p90 {}  p99 {}  p99.9 {}  p99.99 {}  max {}  (n={})",
        format_micros(p.p50),
        format_micros(p.p90),
        format_micros(p.p99),
        format_micros(p.p99_9),
        format_micros(p.p99_99),
        format_micros(p.max),
        p.count
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echo_and_silence_are_told_from_a_fan_out() {
        let second = Duration::from_secs(1);
        let echo = fan_out_warning(10, 100, 100, 0, second).unwrap();
        assert!(echo.contains("looks like an echo"), "{echo}");
        // An echo answers even when the run is short.
        assert!(fan_out_warning(10, 5, 5, 0, Duration::from_millis(50)).is_some());
        let silent = fan_out_warning(10, 100, 0, 0, second).unwrap();
        assert!(silent.contains("any of the 100 published"), "{silent}");
        // Too soon to call silence.
        assert_eq!(
            fan_out_warning(10, 5, 0, 0, Duration::from_millis(50)),
            None
        );
        // Fan-outs, with and without the sender among the receivers.
        assert_eq!(fan_out_warning(10, 100, 100, 900, second), None);
        assert_eq!(fan_out_warning(10, 100, 0, 900, second), None);
        // One connection cannot tell; nothing published says nothing.
        assert_eq!(fan_out_warning(1, 100, 100, 0, second), None);
        assert_eq!(fan_out_warning(10, 0, 0, 0, second), None);
    }
}
