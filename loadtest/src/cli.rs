//! The command line: one subcommand per mode, shared options flattened in, turned into the
//! [`Plan`] the workers follow.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use serde::{Deserialize, Serialize};

use crate::client::MAX_MESSAGE_BYTES;
use crate::share::Share;
use crate::source::SourceRange;
use crate::stamp::Stamper;
use crate::target::Target;
use crate::tls::{self, Tls, Trust};
use crate::units::{parse_duration, parse_rate, parse_size};

/// The most worker threads a run (or an agent's part of one) may ask for.
const MAX_THREADS: usize = 1024;
/// The longest --duration, --timeout or --ping-interval: schedules are instants that far on.
const MAX_DURATION: Duration = Duration::from_secs(30 * 24 * 3600);
/// The slowest --rate or --connect-rate (one per 1000 s): intervals are durations.
const MIN_RATE: f64 = 1e-3;

/// A WebSocket load generator: mio event loops driving wsloop's protocol core as a client,
/// over ws:// or wss:// (TLS, with --ca or --insecure). Every run stops by itself after
/// --duration (and, where given, --messages).
#[derive(Debug, Parser)]
#[command(name = "wsloop-load", version)]
pub struct Cli {
    #[command(subcommand)]
    pub mode: Mode,
}

#[derive(Debug, Subcommand)]
pub enum Mode {
    /// Throughput: each connection keeps --depth messages in flight and checks every echo.
    Echo {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        messages: Messages,
        /// Messages in flight per connection (pipelining).
        #[arg(long, default_value_t = 16)]
        depth: usize,
    },
    /// Round-trip latency: closed loop (one in flight per connection), or open loop at
    /// --rate messages per second in total, measured from each message's intended send time.
    Latency {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        messages: Messages,
        /// Open loop: total messages per second over all connections (e.g. 20k).
        #[arg(long, value_parser = parse_rate)]
        rate: Option<f64>,
        /// Messages in flight per connection: the closed loop keeps this many, the open
        /// loop holds back due messages at this many (1, as wrk2 does).
        #[arg(long, default_value_t = 1)]
        depth: usize,
    },
    /// Connection setup: opens --connections at --connect-rate, reports handshake latency
    /// (from the TCP connect to the `101`; over wss://, the TLS handshake included).
    Connect {
        #[command(flatten)]
        common: Common,
    },
    /// Memory per connection: opens --connections, holds them for --duration, checks each
    /// answers a ping at the end. The per-connection memory (--server-pid) assumes a freshly
    /// started server.
    ///
    /// With --server-pid, the server's resident memory before opening and once every
    /// connection is open, divided by the connections, is the memory each one costs. That
    /// holds only for a server that had no earlier connections: buffers and pools kept from
    /// earlier runs are reused instead of grown, and the figure comes out too low.
    Idle {
        #[command(flatten)]
        common: Common,
        /// Ping every connection this often while holding them.
        #[arg(long, value_parser = parse_duration)]
        ping_interval: Option<Duration>,
    },
    /// Fan-out: every connection subscribes to the URL's path; --publishers of them publish
    /// stamped messages at --rate in total; reports delivery latency and deliveries/s.
    Broadcast {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        messages: Messages,
        /// Connections that also publish (the first ones opened).
        #[arg(long, default_value_t = 1)]
        publishers: u64,
        /// Messages per second published in total.
        #[arg(long, value_parser = parse_rate, default_value = "1000")]
        rate: f64,
    },
    /// Compares runs: overlays the latency distributions of reports written by --json on
    /// one latency-by-percentile chart (SVG), one line per run, labelled with its --label.
    ///
    /// The horizontal axis is the percentile on a log scale of 1/(1 - percentile) (0%, 90%,
    /// 99%, 99.9%...), as in HdrHistogram's plotter. Each report's distribution is its
    /// `latency_distribution`: round trips (echo, latency), deliveries (broadcast) or
    /// handshakes (connect, idle).
    Plot(PlotArgs),
    /// Runs load for a controller: any mode run with --agents sends each agent its part of
    /// the connections and rate, and merges what they send back.
    ///
    /// One controller at a time: another one waits, and gives up after 10 s saying the agent
    /// may be busy. A job's target and source addresses must be on loopback unless this agent
    /// was started with --allow-remote, whatever the controller allows. The agent runs
    /// whatever job a controller that can reach it sends: listen on a private network only.
    Agent(AgentArgs),
}

/// The options of `agent`.
#[derive(Debug, Args)]
pub struct AgentArgs {
    /// Where to listen for controllers (port 0: any free port; the address is printed).
    #[arg(long, default_value = "127.0.0.1:9010")]
    pub listen: SocketAddr,
    /// Accept jobs whose target or source addresses are not on loopback.
    #[arg(long)]
    pub allow_remote: bool,
    /// This machine's source addresses to spread connections over, e.g.
    /// 10.0.0.10-10.0.0.40; replaces the part of the controller's --source it would get.
    #[arg(long, value_parser = SourceRange::parse)]
    pub source: Option<SourceRange>,
}

/// The options of `plot`.
#[derive(Debug, Args)]
pub struct PlotArgs {
    /// Reports written by --json, one line each on the chart.
    #[arg(required = true, value_name = "REPORT.json")]
    pub reports: Vec<PathBuf>,
    /// Where to write the chart (SVG).
    #[arg(long, short = 'o', value_name = "CHART.svg")]
    pub out: PathBuf,
    /// The chart's title (default: what the distributions measure).
    #[arg(long)]
    pub title: Option<String>,
}

/// Options every mode takes.
#[derive(Debug, Args)]
pub struct Common {
    /// The server: ws://HOST[:PORT]/PATH, or wss://HOST[:PORT]/PATH (TLS, port 443 by
    /// default) with --ca or --insecure.
    ///
    /// Over wss:// each connection makes a full TLS handshake (TLS 1.3 or 1.2, ALPN
    /// http/1.1, the URL's host as SNI, no session resumption) before the WebSocket one, and
    /// it counts in the handshake time the report gives (the connect time, in connect mode).
    #[arg(long, default_value = "ws://127.0.0.1:9001/")]
    pub url: String,
    /// wss://: trust the root certificates in this PEM file, and no others (not the
    /// system's). A certificate that does not chain to one of them fails the connection
    /// (error tls_failed, with the reason). With --agents, the file's contents are sent to
    /// the agents (at most about 60 KiB of it).
    #[arg(long, value_name = "FILE", conflicts_with = "insecure")]
    pub ca: Option<PathBuf>,
    /// wss://: accept any server certificate, unverified (the server's handshake signature
    /// is still checked against the certificate it sent). For test servers only; a warning
    /// says so.
    #[arg(long)]
    pub insecure: bool,
    /// Connections to open.
    #[arg(long, short = 'c', default_value_t = 10)]
    pub connections: u64,
    /// How long to send, counted from the start (connecting included); idle mode: how long
    /// to hold the connections once all are open.
    #[arg(long, short = 'd', value_parser = parse_duration, default_value = "10s")]
    pub duration: Duration,
    /// Worker threads, each with its own event loop and share of the connections (with
    /// --agents: on each agent).
    #[arg(long, short = 't', default_value_t = 1)]
    pub threads: usize,
    /// New connections per second in total (default: as fast as the server accepts, at most
    /// 128 handshakes pending per thread).
    #[arg(long, value_parser = parse_rate)]
    pub connect_rate: Option<f64>,
    /// Source addresses to spread connections over, e.g. 127.0.0.1-127.0.0.50. With
    /// --agents, each agent gets a consecutive part of the range (unless it was started with
    /// its own --source).
    #[arg(long, value_parser = SourceRange::parse)]
    pub source: Option<SourceRange>,
    /// Run the load on these agents (`wsloop-load agent` on each load machine) instead of
    /// here, e.g. 10.0.0.2:9010,10.0.0.3:9010.
    ///
    /// The connections, --rate, --connect-rate and --messages are split evenly (connection
    /// i goes to agent i modulo the number of agents, so their sends interleave); each agent
    /// runs --threads threads. All start at one time set by this controller, their clock
    /// offsets measured beforehand; the report merges their histograms exactly and has a row
    /// per agent. An agent that fails or goes silent is reported, and the exit status is 1.
    /// Broadcast publishers start once their own agent's connections are open.
    #[arg(long, value_delimiter = ',', value_name = "HOST:PORT,...")]
    pub agents: Vec<String>,
    /// Longest wait for a connect, handshake (over wss://, TLS and WebSocket together), echo or
    /// pong before it counts as a timeout.
    #[arg(long, value_parser = parse_duration, default_value = "5s")]
    pub timeout: Duration,
    /// The server's process id: its CPU time over the run and its resident memory before
    /// opening and once every connection is open are reported (idle mode: per connection).
    /// With --agents, the server runs on the controller's machine.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Offer permessage-deflate (as browsers do) and compress every message; a server that
    /// declines it fails the handshake.
    #[arg(long)]
    pub deflate: bool,
    /// Allow a target that is not on loopback.
    #[arg(long)]
    pub allow_remote: bool,
    /// No live line each second.
    #[arg(long, short = 'q')]
    pub quiet: bool,
    /// Write the live line as JSON Lines on stdout instead of text on stderr: one object a
    /// second, before the final report.
    ///
    /// Fields: elapsed_s (seconds since the start), mode, label (--label), open
    /// (connections open), interval_s (seconds since the previous line), sent and received
    /// (data messages in that interval; received counts echoes or deliveries), sent_per_sec
    /// and received_per_sec (the same per second), sent_total and received_total (since the
    /// start, warm-up included), errors (every kind, so far), latency_count (latencies
    /// measured so far, after the warm-up), p50_us and p99_us (their percentiles in
    /// microseconds, null while there are none and in connect and idle modes).
    #[arg(long, conflicts_with = "quiet")]
    pub live_json: bool,
    /// The run's name in the JSON report and the live JSON lines, and its legend in
    /// `wsloop-load plot` (default: the mode and URL, e.g. "echo ws://127.0.0.1:9001/").
    #[arg(long)]
    pub label: Option<String>,
    /// Write every figure as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write the latency distribution (handshakes in connect and idle modes) in
    /// HdrHistogram's .hgrm text format, in milliseconds.
    #[arg(long)]
    pub hgrm: Option<PathBuf>,
    /// Write a latency-by-percentile chart (SVG), the same distribution as --hgrm.
    #[arg(long)]
    pub plot: Option<PathBuf>,
}

/// Options of the modes that send messages.
#[derive(Debug, Args)]
pub struct Messages {
    /// Payload size (20, 1KiB, 16KiB, 1MiB).
    #[arg(long, short = 's', value_parser = parse_size, default_value = "32")]
    pub size: usize,
    /// Send text messages (the default is binary).
    #[arg(long)]
    pub text: bool,
    /// Time at the start left out of the figures (connecting, caches warming).
    #[arg(long, value_parser = parse_duration, default_value = "1s")]
    pub warmup: Duration,
    /// Stop after this many messages in total (sent), even before --duration.
    #[arg(long)]
    pub messages: Option<u64>,
}

/// Which mode a plan is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModeKind {
    Echo,
    Latency,
    Connect,
    Idle,
    Broadcast,
}

impl ModeKind {
    pub fn name(self) -> &'static str {
        match self {
            ModeKind::Echo => "echo",
            ModeKind::Latency => "latency",
            ModeKind::Connect => "connect",
            ModeKind::Idle => "idle",
            ModeKind::Broadcast => "broadcast",
        }
    }

    /// Whether the mode exchanges data messages.
    pub fn sends_messages(self) -> bool {
        matches!(
            self,
            ModeKind::Echo | ModeKind::Latency | ModeKind::Broadcast
        )
    }
}

/// Everything the workers need to know, checked.
#[derive(Debug, Clone)]
pub struct Plan {
    pub mode: ModeKind,
    pub target: Target,
    /// wss://: the TLS settings every connection shares.
    pub tls: Option<Tls>,
    /// This process's part of the run: all of it, or an agent's. The other figures are the
    /// whole run's (connections, rates, --messages).
    pub share: Share,
    /// Offer permessage-deflate and compress every message.
    pub deflate: bool,
    pub connections: u64,
    pub threads: usize,
    pub duration: Duration,
    pub warmup: Duration,
    pub timeout: Duration,
    pub connect_rate: Option<f64>,
    pub source: Option<SourceRange>,
    pub size: usize,
    pub text: bool,
    /// Messages in flight per connection (echo; latency in either loop).
    pub depth: usize,
    /// Open-loop latency: total messages per second; broadcast: total publish rate.
    pub rate: Option<f64>,
    pub publishers: u64,
    pub max_messages: Option<u64>,
    pub ping_interval: Option<Duration>,
}

impl Plan {
    /// The rules every plan must meet, here and on an agent (which has its own
    /// `allow_remote`); errors name the option at fault.
    pub fn check(&self, allow_remote: bool) -> Result<(), String> {
        if self.connections == 0 || self.threads == 0 {
            return Err("--connections and --threads must be at least 1".into());
        }
        if self.threads > MAX_THREADS {
            return Err(format!("--threads must be at most {MAX_THREADS}"));
        }
        if self.duration.is_zero() {
            return Err("--duration must be above zero".into());
        }
        let longest = [Some(self.duration), Some(self.timeout), self.ping_interval];
        if longest.into_iter().flatten().any(|d| d > MAX_DURATION) {
            return Err("--duration, --timeout and --ping-interval must be at most 30 days".into());
        }
        if let Some(source) = &self.source {
            if !source.is_loopback() && !allow_remote {
                return Err("--source addresses off loopback need --allow-remote".into());
            }
        }
        if matches!(self.mode, ModeKind::Echo | ModeKind::Latency) && self.depth == 0 {
            return Err("--depth must be at least 1".into());
        }
        if self.mode == ModeKind::Broadcast
            && (self.publishers == 0 || self.publishers > self.connections)
        {
            return Err("--publishers must be between 1 and --connections".into());
        }
        if self.size > MAX_MESSAGE_BYTES {
            return Err(format!("--size must be at most {MAX_MESSAGE_BYTES} bytes"));
        }
        if self.mode == ModeKind::Broadcast {
            Stamper::new(self.size, self.text)?;
        }
        let usable = |rate: Option<f64>| rate.is_none_or(|r| r >= MIN_RATE && r.is_finite());
        if !usable(self.rate) || !usable(self.connect_rate) {
            return Err(format!(
                "--rate and --connect-rate must be at least {MIN_RATE}"
            ));
        }
        if self.ping_interval.is_some_and(|every| every.is_zero()) {
            return Err("--ping-interval must be above zero".into());
        }
        if self.warmup >= self.duration {
            return Err(format!(
                "--warmup ({:?}) leaves nothing of --duration ({:?}) to measure",
                self.warmup, self.duration
            ));
        }
        Ok(())
    }

    /// wss:// with --insecure: server certificates are not verified.
    pub fn insecure(&self) -> bool {
        self.tls
            .as_ref()
            .is_some_and(|tls| tls.trust == Trust::Insecure)
    }

    /// The connections this process opens: its share of the run's.
    pub fn own_connections(&self) -> u64 {
        self.share.of(self.connections)
    }

    /// Worker `thread`'s part of the run.
    pub fn lane(&self, thread: usize) -> Share {
        self.share.split(thread, self.threads)
    }
}

/// A load command, checked: what to run, where the results go and which agents run it (none:
/// this process does).
#[derive(Debug)]
pub struct Invocation {
    pub plan: Plan,
    pub outputs: Outputs,
    pub agents: Vec<String>,
}

/// Where the results go.
#[derive(Debug, Clone)]
pub struct Outputs {
    pub quiet: bool,
    /// The live line as JSON Lines on stdout.
    pub live_json: bool,
    /// The run's name in the JSON report and the live lines.
    pub label: String,
    pub json: Option<PathBuf>,
    pub hgrm: Option<PathBuf>,
    pub plot: Option<PathBuf>,
    pub server_pid: Option<u32>,
}

impl Cli {
    /// Checks the options and resolves the target.
    pub fn plan(self) -> Result<Invocation, String> {
        let (mut messages, mut depth, mut rate, mut publishers, mut ping_interval) =
            (None, 0, None, 0, None);
        let (mode, common) = match self.mode {
            Mode::Echo {
                common,
                messages: m,
                depth: d,
            } => {
                (messages, depth) = (Some(m), d);
                (ModeKind::Echo, common)
            }
            Mode::Latency {
                common,
                messages: m,
                rate: r,
                depth: d,
            } => {
                (messages, depth, rate) = (Some(m), d, r);
                (ModeKind::Latency, common)
            }
            Mode::Connect { common } => (ModeKind::Connect, common),
            Mode::Idle {
                common,
                ping_interval: every,
            } => {
                ping_interval = every;
                (ModeKind::Idle, common)
            }
            Mode::Broadcast {
                common,
                messages: m,
                publishers: p,
                rate: r,
            } => {
                (messages, publishers, rate) = (Some(m), p, Some(r));
                (ModeKind::Broadcast, common)
            }
            Mode::Plot(_) => return Err("plot compares reports; it runs no load".into()),
            Mode::Agent(_) => return Err("an agent runs the load its controller sends".into()),
        };
        let target = Target::parse(&common.url, common.allow_remote)?;
        tls::check_scheme(&target, common.ca.is_some() || common.insecure)?;
        let trust = match common.ca {
            Some(path) => {
                Some(Trust::Ca(std::fs::read_to_string(&path).map_err(|e| {
                    format!("cannot read --ca {}: {e}", path.display())
                })?))
            }
            None => common.insecure.then_some(Trust::Insecure),
        };
        let tls = tls::settings(&target, trust)?;
        let (size, text, warmup, max_messages) = match &messages {
            Some(m) => (m.size, m.text, m.warmup, m.messages),
            None => (0, false, Duration::ZERO, None),
        };
        let plan = Plan {
            mode,
            target,
            tls,
            share: Share::WHOLE,
            deflate: common.deflate,
            connections: common.connections,
            threads: common.threads,
            duration: common.duration,
            warmup,
            timeout: common.timeout,
            connect_rate: common.connect_rate,
            source: common.source,
            size,
            text,
            depth,
            rate,
            publishers,
            max_messages,
            ping_interval,
        };
        plan.check(common.allow_remote)?;
        let label = common
            .label
            .unwrap_or_else(|| format!("{} {}", mode.name(), plan.target.url()));
        let outputs = Outputs {
            quiet: common.quiet,
            live_json: common.live_json,
            label,
            json: common.json,
            hgrm: common.hgrm,
            plot: common.plot,
            server_pid: common.server_pid,
        };
        Ok(Invocation {
            plan,
            outputs,
            agents: common.agents,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(args: &str) -> Result<Plan, String> {
        let argv = std::iter::once("wsloop-load").chain(args.split_whitespace());
        Cli::try_parse_from(argv)
            .map_err(|e| e.to_string())?
            .plan()
            .map(|invocation| invocation.plan)
    }

    #[test]
    fn parses_the_documented_shape() {
        let p = plan("echo --url ws://127.0.0.1:9001 --connections 100 --duration 10s --size 1KiB --depth 8 --threads 2").unwrap();
        assert_eq!(p.mode, ModeKind::Echo);
        assert_eq!(
            (p.connections, p.size, p.depth, p.threads),
            (100, 1024, 8, 2)
        );
        assert_eq!(p.duration, Duration::from_secs(10));
        let p = plan("latency --rate 20k -c 1000 -d 30s").unwrap();
        assert_eq!((p.rate, p.depth), (Some(20000.0), 1));
        let p =
            plan("idle -c 10000 --ping-interval 30s --server-pid 1 --source 127.0.0.1-127.0.0.50")
                .unwrap();
        assert_eq!(p.source.map(|s| s.len()), Some(50));
    }

    #[test]
    fn refuses_what_cannot_run() {
        assert!(plan("echo --url ws://192.0.2.1:9001")
            .unwrap_err()
            .contains("--allow-remote"));
        assert!(plan("echo -d 1s --warmup 1s").is_err());
        assert!(plan("echo --depth 0").is_err());
        assert!(plan("broadcast --size 8").is_err());
        assert!(plan("broadcast --publishers 11 -c 10").is_err());
        assert!(plan("connect -c 0").is_err());
        assert!(plan("echo --size 3parsecs").is_err());
        assert!(plan("echo --live-json --quiet").is_err());
        assert!(plan("echo --threads 5000").is_err());
        assert!(plan("echo --size 65MiB").is_err());
        assert!(plan("idle --ping-interval 0s").is_err());
        assert!(plan("echo -d 3000h").is_err());
        assert!(plan("latency --rate 0.0001").is_err());
    }

    #[test]
    fn wss_needs_trust_settings_and_ws_takes_none() {
        let p = plan("echo --url wss://127.0.0.1:9443/x --insecure").unwrap();
        assert!(p.target.secure && p.insecure());
        assert_eq!(p.target.url(), "wss://127.0.0.1:9443/x");
        assert!(plan("echo").unwrap().tls.is_none());
        assert_eq!(
            plan("echo --url wss://127.0.0.1/").unwrap_err(),
            "wss:// needs --ca FILE or --insecure"
        );
        let err = plan("idle --insecure").unwrap_err();
        assert!(
            err.contains("--ca and --insecure are for wss:// URLs"),
            "{err}"
        );
        let err = plan("echo --url ws://127.0.0.1/ --ca /nonexistent.pem").unwrap_err();
        assert!(err.contains("are for wss:// URLs"), "{err}");
        let err = plan("echo --url wss://127.0.0.1/ --ca /nonexistent.pem").unwrap_err();
        assert!(err.contains("cannot read --ca /nonexistent.pem"), "{err}");
        assert!(plan("echo --url wss://127.0.0.1/ --ca x.pem --insecure").is_err());
        let label = outputs("connect --url wss://127.0.0.1:9443/ --insecure").label;
        assert_eq!(label, "connect wss://127.0.0.1:9443/");
    }

    fn invocation(args: &str) -> Invocation {
        let argv = std::iter::once("wsloop-load").chain(args.split_whitespace());
        Cli::try_parse_from(argv).unwrap().plan().unwrap()
    }

    fn outputs(args: &str) -> Outputs {
        invocation(args).outputs
    }

    #[test]
    fn agents_are_a_list_and_the_agent_its_own_subcommand() {
        let i = invocation("latency --rate 40k --agents 10.0.0.2:9010,load3:9010");
        assert_eq!(i.agents, ["10.0.0.2:9010", "load3:9010"]);
        assert_eq!(i.plan.share, Share::WHOLE);
        assert!(invocation("echo").agents.is_empty());
        let argv = [
            "wsloop-load",
            "agent",
            "--listen",
            "0.0.0.0:7000",
            "--source",
            "10.0.0.1",
        ];
        let Mode::Agent(args) = Cli::try_parse_from(argv).unwrap().mode else {
            panic!("not agent")
        };
        assert_eq!(args.listen, "0.0.0.0:7000".parse().unwrap());
        assert!(!args.allow_remote && args.source.is_some());
    }

    #[test]
    fn label_defaults_to_mode_and_url() {
        let o = outputs("latency --url ws://127.0.0.1:9001/x --live-json");
        assert_eq!(o.label, "latency ws://127.0.0.1:9001/x");
        assert!(o.live_json && !o.quiet);
        assert_eq!(outputs("connect --label before").label, "before");
    }

    #[test]
    fn plot_takes_reports_and_an_output() {
        let argv = ["wsloop-load", "plot", "a.json", "b.json", "--out", "c.svg"];
        let cli = Cli::try_parse_from(argv).unwrap();
        let Mode::Plot(args) = cli.mode else {
            panic!("not plot: {cli:?}")
        };
        assert_eq!(args.reports, [PathBuf::from("a.json"), "b.json".into()]);
        assert_eq!((args.out, args.title), ("c.svg".into(), None));
        assert!(Cli::try_parse_from(["wsloop-load", "plot", "--out", "c.svg"]).is_err());
        assert!(Cli::try_parse_from(["wsloop-load", "plot", "a.json"]).is_err());
    }
}
