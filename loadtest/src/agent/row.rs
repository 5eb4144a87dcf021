//! An agent's row in the report of a run split over agents: its share, its clock against the
//! controller's, its own figures and self-checks, or why it failed.

use std::time::Duration;

use serde::Serialize;

use crate::agent::clock::Offset;
use crate::agent::protocol::Outcome;
use crate::cli::ModeKind;
use crate::report::{check_text, main_distribution};
use crate::selfcheck::{self, SelfCheck};
use crate::units::{format_count, format_micros};

/// An agent whose workers started this long after the shared start time started late
/// against the others, which the report says.
const LATE_START: Duration = Duration::from_millis(10);

/// One agent of the run.
#[derive(Debug, Clone, Serialize)]
pub struct AgentRow {
    /// As given to --agents.
    pub addr: String,
    /// "ok", or "failed": its figures are then not in the run's.
    pub status: &'static str,
    /// Why it failed.
    pub failure: Option<String>,
    /// Its share of the run's connections.
    pub connections: u64,
    /// Its clock minus the controller's, in microseconds, and the round trip of the probe
    /// that measured it: the offset is right to within half of that.
    pub clock_offset_us: f64,
    pub rtt_us: f64,
    /// What it measured, when it reported.
    #[serde(flatten)]
    pub figures: Option<AgentFigures>,
}

/// What an agent that reported measured of its own share.
#[derive(Debug, Clone, Serialize)]
pub struct AgentFigures {
    /// How long after the shared start time its workers started.
    pub late_start_us: u64,
    pub open_file_limit: u64,
    pub connections_opened: u64,
    pub messages_sent: u64,
    pub messages_received: u64,
    pub behind_schedule: u64,
    pub errors_total: u64,
    /// Its process's CPU time, and that over the run's elapsed time (its cores kept busy).
    pub cpu_user_s: f64,
    pub cpu_system_s: f64,
    pub cores_busy: f64,
    /// The p99 of its own share of the distribution the run is judged by.
    pub latency_p99_us: Option<u64>,
    /// The p99 of how late its scheduled sends left (open loop, publishing).
    pub send_lag_p99_us: Option<u64>,
    /// Its threads' share of their cores and its event loops' lag.
    #[serde(flatten)]
    pub check: SelfCheck,
    /// Its own warnings (in the report's too, with its address in front).
    pub warnings: Vec<String>,
}

impl AgentRow {
    /// The row of an agent that reported `outcome` from a run in `mode`.
    pub fn reported(
        addr: &str,
        connections: u64,
        offset: Offset,
        mode: ModeKind,
        outcome: &Outcome,
    ) -> AgentRow {
        let stats = &outcome.stats;
        let p99 =
            |h: &hdrhistogram::Histogram<u64>| (!h.is_empty()).then(|| h.value_at_quantile(0.99));
        let cpu = outcome.cpu_user + outcome.cpu_system;
        let elapsed = outcome.elapsed.as_secs_f64();
        let mut warnings = selfcheck::warnings(mode, stats);
        if outcome.late_start >= LATE_START {
            warnings.push(format!(
                "started {} after the shared start time (its clock offset is known to {} only)",
                format_micros(outcome.late_start.as_micros() as u64),
                format_micros(offset.rtt_ns / 2000)
            ));
        }
        let figures = AgentFigures {
            late_start_us: outcome.late_start.as_micros() as u64,
            open_file_limit: outcome.open_file_limit,
            connections_opened: stats.opened,
            messages_sent: stats.sent,
            messages_received: stats.received,
            behind_schedule: stats.behind_schedule,
            errors_total: stats.error_count(),
            cpu_user_s: outcome.cpu_user.as_secs_f64(),
            cpu_system_s: outcome.cpu_system.as_secs_f64(),
            cores_busy: if elapsed > 0.0 {
                cpu.as_secs_f64() / elapsed
            } else {
                0.0
            },
            latency_p99_us: p99(main_distribution(mode, stats).0),
            send_lag_p99_us: p99(&stats.send_lag),
            check: SelfCheck::of(stats),
            warnings,
        };
        AgentRow::new(addr, connections, offset, Ok(figures))
    }

    /// The row of an agent that did not report, `failure` saying why.
    pub fn failed(addr: &str, connections: u64, offset: Offset, failure: String) -> AgentRow {
        AgentRow::new(addr, connections, offset, Err(failure))
    }

    fn new(
        addr: &str,
        connections: u64,
        offset: Offset,
        result: Result<AgentFigures, String>,
    ) -> AgentRow {
        let (figures, failure) = match result {
            Ok(figures) => (Some(figures), None),
            Err(failure) => (None, Some(failure)),
        };
        AgentRow {
            addr: addr.to_string(),
            status: if failure.is_some() { "failed" } else { "ok" },
            failure,
            connections,
            // To a tenth of a microsecond.
            clock_offset_us: (offset.offset_ns as f64 / 100.0).round() / 10.0,
            rtt_us: (offset.rtt_ns as f64 / 100.0).round() / 10.0,
            figures,
        }
    }

    /// Its warnings for the report, its address in front; a failure is one.
    pub fn report_warnings(&self) -> Vec<String> {
        if let Some(failure) = &self.failure {
            return vec![format!(
                "agent {} failed ({failure}): its {} connections are not in these figures",
                self.addr, self.connections
            )];
        }
        self.figures
            .iter()
            .flat_map(|f| &f.warnings)
            .map(|warning| format!("agent {}: {warning}", self.addr))
            .collect()
    }

    /// Its line in the report for people.
    pub fn text(&self) -> String {
        let clock = format!(
            "clock {:+.0}us (rtt {:.0}us)",
            self.clock_offset_us, self.rtt_us
        );
        match (&self.failure, &self.figures) {
            (None, Some(f)) => format!(
                "{}  {} of {} connections, {} sent, {} received, {} errors, {clock}, \
                 {:.2} cores busy, {}",
                self.addr,
                f.connections_opened,
                self.connections,
                format_count(f.messages_sent as f64),
                format_count(f.messages_received as f64),
                f.errors_total,
                f.cores_busy,
                check_text(&f.check)
            ),
            (failure, _) => format!(
                "{}  failed: {}; {} connections, {clock}",
                self.addr,
                failure.as_deref().unwrap_or("no figures"),
                self.connections
            ),
        }
    }
}
