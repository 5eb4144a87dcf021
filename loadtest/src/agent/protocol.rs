//! The agent protocol: what a controller and an agent say to each other over TCP.
//!
//! Every message is one frame: a 4-byte big-endian length, then that many bytes of JSON, at
//! most [`MAX_REQUEST`] towards an agent and [`MAX_REPLY`] back. Each side first sends a
//! [`Hello`] with its [`PROTOCOL_VERSION`]. Its form never changes, so that peers of
//! different versions tell each other so instead of misreading what follows; both end the
//! connection on a mismatch. Then, one exchange after the other:
//!
//! | controller to agent                       | agent to controller                             |
//! |-------------------------------------------|-------------------------------------------------|
//! | `probe`, a few times                      | `clock`: the agent's time, for its offset       |
//! | `job`: mode, target, trust, share, offset | `accepted`, or `refused` and why                |
//! | `start`: the shared start time            | `progress` each second, then `done` or `failed` |
//!
//! `start` goes out once every agent of the run has accepted; a controller that hangs up
//! before sending it cancels the job.

use std::io::{self, Read, Write};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::cli::{ModeKind, Plan};
use crate::live::Figures;
use crate::share::Share;
use crate::source::SourceRange;
use crate::stats::Stats;
use crate::target::Target;
use crate::tls::{self, Trust};

/// Raised whenever a message changes meaning. 2: jobs carry the wss:// trust settings
/// (`ca_pem`, `insecure`), and figures the first reasons for errors.
pub const PROTOCOL_VERSION: u32 = 2;
/// The largest frame an agent reads: a job is well under a kilobyte, plus the --ca PEM it
/// carries for wss://.
pub const MAX_REQUEST: usize = 64 << 10;
/// The largest frame a controller reads: the figures carry five histograms, a few hundred
/// kilobytes each at worst.
pub const MAX_REPLY: usize = 32 << 20;
/// The most agents a run may be split over.
const MAX_AGENTS: usize = 4096;

/// The first message each way.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    pub protocol: u32,
    /// The sender's version, for the error message when protocols differ.
    pub wsloop_load: String,
}

/// Sends this side's [`Hello`] and reads the peer's; `Err` when it speaks another protocol.
pub fn greet(stream: &mut (impl Read + Write)) -> Result<(), String> {
    let ours = Hello {
        protocol: PROTOCOL_VERSION,
        wsloop_load: env!("CARGO_PKG_VERSION").to_string(),
    };
    send(stream, &ours).map_err(|e| format!("cannot greet: {e}"))?;
    let theirs: Hello = receive(stream, MAX_REQUEST).map_err(|e| match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
            "no greeting back in time (an agent serves one controller at a time)".to_string()
        }
        _ => format!("no greeting back: {e}"),
    })?;
    if theirs.protocol != ours.protocol {
        return Err(format!(
            "speaks agent protocol {} (wsloop-load {}), this side protocol {} (wsloop-load {}): \
             run the same version on both",
            theirs.protocol, theirs.wsloop_load, ours.protocol, ours.wsloop_load
        ));
    }
    Ok(())
}

/// From a controller to an agent.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ToAgent {
    /// Asks for the agent's clock.
    Probe,
    Job(Box<Job>),
    /// Start at this time, in the controller's clock (nanoseconds since the Unix epoch).
    Start {
        at_unix_ns: u64,
    },
}

/// From an agent to a controller.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ToController {
    /// The agent's clock when it answered a probe.
    Clock {
        unix_ns: u64,
    },
    Accepted,
    Refused {
        reason: String,
    },
    Progress(Progress),
    Done(Box<Outcome>),
    /// The job could not run to its end here.
    Failed {
        reason: String,
    },
}

/// An agent's part of a run: the whole run's plan, which part is the agent's, and its clock
/// offset. Schedules are the run's (see [`crate::share`]), so the agent needs all of it.
#[derive(Debug, Serialize, Deserialize)]
pub struct Job {
    pub mode: ModeKind,
    pub url: String,
    pub share: Share,
    /// Agent clock minus controller clock: the agent takes it off its own to read the
    /// controller's time.
    pub clock_offset_ns: i64,
    pub deflate: bool,
    /// wss://: the contents of the controller's --ca file (PEM), the roots the agent trusts
    /// (a path would name a file on the controller's machine).
    pub ca_pem: Option<String>,
    /// wss://: --insecure, every certificate accepted.
    pub insecure: bool,
    pub connections: u64,
    pub threads: usize,
    pub duration: Duration,
    pub warmup: Duration,
    pub timeout: Duration,
    pub connect_rate: Option<f64>,
    /// The agent's part of the controller's --source.
    pub source: Option<String>,
    pub size: usize,
    pub text: bool,
    pub depth: usize,
    pub rate: Option<f64>,
    pub publishers: u64,
    pub max_messages: Option<u64>,
    pub ping_interval: Option<Duration>,
}

impl Job {
    /// Part `share` of `plan`, for an agent whose clock is `clock_offset_ns` ahead.
    pub fn new(plan: &Plan, share: Share, clock_offset_ns: i64) -> Job {
        let trust = plan.tls.as_ref().map(|tls| &tls.trust);
        Job {
            mode: plan.mode,
            url: plan.target.url(),
            share,
            clock_offset_ns,
            deflate: plan.deflate,
            ca_pem: match trust {
                Some(Trust::Ca(pem)) => Some(pem.clone()),
                _ => None,
            },
            insecure: trust == Some(&Trust::Insecure),
            connections: plan.connections,
            threads: plan.threads,
            duration: plan.duration,
            warmup: plan.warmup,
            timeout: plan.timeout,
            connect_rate: plan.connect_rate,
            source: plan.source.as_ref().map(|s| s.part(share).to_string()),
            size: plan.size,
            text: plan.text,
            depth: plan.depth,
            rate: plan.rate,
            publishers: plan.publishers,
            max_messages: plan.max_messages,
            ping_interval: plan.ping_interval,
        }
    }

    /// The plan the job asks of an agent, under the agent's own rules: its `allow_remote`
    /// (the controller's does not count here), and its `own_source` in place of the
    /// controller's part. The target is resolved here, where the connections start.
    pub fn plan(
        &self,
        allow_remote: bool,
        own_source: Option<&SourceRange>,
    ) -> Result<Plan, String> {
        let share = self.share;
        if share.count == 0 || share.count > MAX_AGENTS || share.index >= share.count {
            return Err(format!(
                "part {} of {} is no part",
                share.index, share.count
            ));
        }
        let source = match (own_source, &self.source) {
            (Some(own), _) => Some(own.clone()),
            (None, Some(text)) => Some(SourceRange::parse(text)?),
            (None, None) => None,
        };
        let target = Target::parse(&self.url, allow_remote)?;
        let trust = match (&self.ca_pem, self.insecure) {
            (Some(_), true) => {
                return Err("a job with both a CA and insecure set: one or the other".into())
            }
            (Some(pem), false) => Some(Trust::Ca(pem.clone())),
            (None, insecure) => insecure.then_some(Trust::Insecure),
        };
        let plan = Plan {
            mode: self.mode,
            tls: tls::settings(&target, trust)?,
            target,
            share,
            deflate: self.deflate,
            connections: self.connections,
            threads: self.threads,
            duration: self.duration,
            warmup: self.warmup,
            timeout: self.timeout,
            connect_rate: self.connect_rate,
            source,
            size: self.size,
            text: self.text,
            depth: self.depth,
            rate: self.rate,
            publishers: self.publishers,
            max_messages: self.max_messages,
            ping_interval: self.ping_interval,
        };
        plan.check(allow_remote)?;
        Ok(plan)
    }
}

/// Whether `message` fits in a frame an agent reads: a --ca file can make a job too long.
pub fn fits_request(message: &ToAgent) -> Result<(), String> {
    let len = serde_json::to_vec(message)
        .map_err(|e| e.to_string())?
        .len();
    if len > MAX_REQUEST {
        return Err(format!(
            "the job would be a {len}-byte message, above the agent protocol's limit of \
             {MAX_REQUEST} bytes; a --ca file sent to agents must be smaller (only the roots the \
             server's certificate needs)"
        ));
    }
    Ok(())
}

/// An agent's figures so far, once a second: its live line's part, and a sign of life.
#[derive(Debug, Serialize, Deserialize)]
pub struct Progress {
    #[serde(flatten)]
    pub figures: Figures,
    /// Its connections whose connect has ended (for --server-pid's memory once all have).
    pub settled: u64,
}

/// Everything an agent measured, sent once its job has ended.
#[derive(Debug, Serialize, Deserialize)]
pub struct Outcome {
    /// Its workers' figures merged, histograms whole.
    pub stats: Stats,
    /// From the shared start to the end of its job.
    pub elapsed: Duration,
    /// Its process's CPU time over the job, user and system.
    pub cpu_user: Duration,
    pub cpu_system: Duration,
    /// How long after the shared start time its workers started.
    pub late_start: Duration,
    pub open_file_limit: u64,
}

/// Writes `message` as one frame.
pub fn send(writer: &mut impl Write, message: &impl Serialize) -> io::Result<()> {
    let json = serde_json::to_vec(message)?;
    let len = u32::try_from(json.len()).map_err(|_| invalid("message too long to frame"))?;
    let mut frame = Vec::with_capacity(4 + json.len());
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(&json);
    writer.write_all(&frame)
}

/// Reads one frame of at most `max` bytes (checked before anything is allocated) and parses
/// it.
pub fn receive<T: DeserializeOwned>(reader: &mut impl Read, max: usize) -> io::Result<T> {
    let mut len = [0u8; 4];
    reader.read_exact(&mut len)?;
    let len = u32::from_be_bytes(len) as usize;
    if len > max {
        return Err(invalid(&format!(
            "a {len}-byte message, above the limit of {max}"
        )));
    }
    let mut json = vec![0u8; len];
    reader.read_exact(&mut json)?;
    serde_json::from_slice(&json).map_err(|e| invalid(&format!("unreadable message: {e}")))
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Cli;
    use crate::tls::Tls;
    use clap::Parser;

    fn plan(args: &str) -> Plan {
        let argv = std::iter::once("wsloop-load").chain(args.split_whitespace());
        Cli::try_parse_from(argv).unwrap().plan().unwrap().plan
    }

    #[test]
    fn frames_round_trip_and_oversized_ones_are_refused_unread() {
        let mut wire = Vec::new();
        send(&mut wire, &ToAgent::Start { at_unix_ns: 42 }).unwrap();
        send(&mut wire, &ToAgent::Probe).unwrap();
        let mut reader = wire.as_slice();
        let first: ToAgent = receive(&mut reader, MAX_REQUEST).unwrap();
        assert!(matches!(first, ToAgent::Start { at_unix_ns: 42 }));
        assert!(matches!(
            receive(&mut reader, MAX_REQUEST).unwrap(),
            ToAgent::Probe
        ));
        // The frame as it goes on the wire: the length, then the JSON.
        let first = br#"{"type":"start","at_unix_ns":42}"#;
        assert_eq!(wire[..4], (first.len() as u32).to_be_bytes());
        assert_eq!(&wire[4..4 + first.len()], first);

        // A length of 4 GiB is refused before anything is allocated for it.
        let huge = [0xff, 0xff, 0xff, 0xff, b'{'];
        let err = receive::<ToAgent>(&mut huge.as_slice(), MAX_REQUEST).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(err.to_string().contains("above the limit"), "{err}");
        // Truncated, and not what was expected.
        assert!(receive::<ToAgent>(&mut &wire[..10], MAX_REQUEST).is_err());
        let mut other = Vec::new();
        send(&mut other, &ToController::Accepted).unwrap();
        assert!(receive::<ToAgent>(&mut other.as_slice(), MAX_REQUEST).is_err());
    }

    #[test]
    fn greetings_of_other_versions_are_refused_with_both_named() {
        /// A peer that has already said `hello` and records what it is sent.
        struct Peer {
            incoming: io::Cursor<Vec<u8>>,
            sent: Vec<u8>,
        }
        impl Read for Peer {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                self.incoming.read(buf)
            }
        }
        impl Write for Peer {
            fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
                self.sent.write(buf)
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let peer = |protocol| {
            let mut incoming = Vec::new();
            let hello = Hello {
                protocol,
                wsloop_load: "9.9.9".into(),
            };
            send(&mut incoming, &hello).unwrap();
            Peer {
                incoming: io::Cursor::new(incoming),
                sent: Vec::new(),
            }
        };
        let mut same = peer(PROTOCOL_VERSION);
        greet(&mut same).unwrap();
        let ours: Hello = receive(&mut same.sent.as_slice(), MAX_REQUEST).unwrap();
        assert_eq!(ours.protocol, PROTOCOL_VERSION);
        let err = greet(&mut peer(PROTOCOL_VERSION + 1)).unwrap_err();
        assert!(
            err.contains(&format!("speaks agent protocol {}", PROTOCOL_VERSION + 1))
                && err.contains("(wsloop-load 9.9.9)"),
            "{err}"
        );
    }

    #[test]
    fn a_job_carries_the_whole_plan_and_its_part() {
        let plan = plan(
            "latency --url ws://127.0.0.1:9001/x -c 1000 --rate 40k -t 2 --messages 500 \
             --source 127.0.0.1-127.0.0.8 --deflate",
        );
        let job = Job::new(&plan, Share { index: 1, count: 2 }, -1500);
        let json = serde_json::to_string(&ToAgent::Job(Box::new(job))).unwrap();
        let ToAgent::Job(back) = serde_json::from_str(&json).unwrap() else {
            panic!("not a job: {json}")
        };
        assert_eq!(back.source.as_deref(), Some("127.0.0.5-127.0.0.8"));
        let on_agent = back.plan(false, None).unwrap();
        assert_eq!(on_agent.share, Share { index: 1, count: 2 });
        assert_eq!(
            (on_agent.connections, on_agent.rate, on_agent.threads),
            (1000, Some(40_000.0), 2)
        );
        assert_eq!((on_agent.max_messages, on_agent.deflate), (Some(500), true));
        assert_eq!(on_agent.own_connections(), 500);
        assert_eq!(on_agent.target.url(), "ws://127.0.0.1:9001/x");
        // The agent's own --source replaces the controller's part.
        let own = SourceRange::parse("127.0.0.20-127.0.0.29").unwrap();
        let on_agent = back.plan(false, Some(&own)).unwrap();
        assert_eq!(on_agent.source, Some(own));
    }

    #[test]
    fn a_job_carries_the_trust_settings_not_a_path() {
        let mut secure = plan("connect --url wss://127.0.0.1:9443/ --insecure");
        let job = Job::new(&secure, Share::WHOLE, 0);
        assert!(job.insecure && job.ca_pem.is_none());
        assert!(job.plan(false, None).unwrap().insecure());

        let pem = rcgen::generate_simple_self_signed(vec!["localhost".into()])
            .unwrap()
            .cert
            .pem();
        secure.tls = Some(Tls::new(Trust::Ca(pem.clone()), "127.0.0.1").unwrap());
        let job = Job::new(&secure, Share::WHOLE, 0);
        let json = serde_json::to_string(&ToAgent::Job(Box::new(job))).unwrap();
        assert!(json.contains(r#""insecure":false"#), "{json}");
        let ToAgent::Job(back) = serde_json::from_str(&json).unwrap() else {
            panic!("not a job: {json}")
        };
        assert_eq!(back.ca_pem.as_deref(), Some(pem.as_str()));
        let on_agent = back.plan(false, None).unwrap();
        assert_eq!(on_agent.tls.unwrap().trust, Trust::Ca(pem.clone()));

        // A job that breaks the rules a command line would: both, neither, or on ws://.
        let mut bad = *back;
        bad.insecure = true;
        assert!(bad
            .plan(false, None)
            .unwrap_err()
            .contains("one or the other"));
        (bad.ca_pem, bad.insecure) = (None, false);
        let err = bad.plan(false, None).unwrap_err();
        assert!(
            err.contains("wss:// needs --ca FILE or --insecure"),
            "{err}"
        );
        let mut plain = Job::new(&plan("echo"), Share::WHOLE, 0);
        plain.ca_pem = Some(pem);
        assert!(plain.plan(false, None).unwrap_err().contains("ws://"));
        plain.ca_pem = Some("not PEM".into());
        plain.url = "wss://127.0.0.1/".into();
        assert!(plain.plan(false, None).unwrap_err().contains("--ca"));
    }

    #[test]
    fn an_agent_applies_its_own_rules() {
        let remote = plan("echo --url ws://192.0.2.1:9001/ --allow-remote");
        let job = Job::new(&remote, Share::WHOLE, 0);
        let err = job.plan(false, None).unwrap_err();
        assert!(err.contains("--allow-remote"), "{err}");
        assert!(job.plan(true, None).is_ok());

        let remote_source = plan("echo --source 10.0.0.1-10.0.0.4 --allow-remote");
        let job = Job::new(&remote_source, Share::WHOLE, 0);
        assert!(job.plan(false, None).unwrap_err().contains("--source"));

        let mut bad = Job::new(&plan("echo"), Share { index: 2, count: 2 }, 0);
        assert!(bad.plan(false, None).unwrap_err().contains("no part"));
        bad.share = Share::WHOLE;
        bad.threads = 1 << 20;
        assert!(bad.plan(false, None).unwrap_err().contains("--threads"));
        bad.threads = 1;
        bad.rate = Some(1e-300);
        assert!(bad.plan(false, None).unwrap_err().contains("--rate"));
        bad.rate = None;
        bad.duration = Duration::MAX;
        assert!(bad.plan(false, None).unwrap_err().contains("30 days"));
    }
}
