//! What one worker thread measured; merged across threads (and agents, which ship it whole)
//! into the run's figures.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::agent::histogram as wire;

/// Why a connection or a message failed, as the report groups them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ErrorKind {
    /// The server refused the TCP connection (nothing listening, or its backlog full).
    Refused,
    /// Any other failure to connect (no route, no ports left, no file descriptors).
    ConnectFailed,
    /// wss://: the TLS handshake failed (a certificate not trusted, an alert from the server,
    /// the connection closed during it), or TLS broke later; its reason is kept.
    TlsFailed,
    /// The server's HTTP answer was not an acceptable `101` with the right accept key.
    HandshakeFailed,
    /// The server closed the connection with this close code.
    ClosedWithCode(u16),
    /// The server sent a close frame without a code.
    ClosedWithoutCode,
    /// The TCP connection ended (EOF or reset) without a closing handshake.
    Dropped,
    /// An echoed or delivered payload was not the one expected.
    PayloadMismatch,
    /// No answer within `--timeout` (connect, handshake, echo or pong).
    Timeout,
    /// The server broke RFC 6455.
    ProtocolError,
    /// Any other socket error.
    Io,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorKind::Refused => f.write_str("refused"),
            ErrorKind::ConnectFailed => f.write_str("connect_failed"),
            ErrorKind::TlsFailed => f.write_str("tls_failed"),
            ErrorKind::HandshakeFailed => f.write_str("handshake_failed"),
            ErrorKind::ClosedWithCode(code) => write!(f, "closed_with_code_{code}"),
            ErrorKind::ClosedWithoutCode => f.write_str("closed_without_code"),
            ErrorKind::Dropped => f.write_str("dropped"),
            ErrorKind::PayloadMismatch => f.write_str("payload_mismatch"),
            ErrorKind::Timeout => f.write_str("timeout"),
            ErrorKind::ProtocolError => f.write_str("protocol_error"),
            ErrorKind::Io => f.write_str("io_error"),
        }
    }
}

impl FromStr for ErrorKind {
    type Err = String;

    /// The inverse of `Display`: the report's name of the kind.
    fn from_str(name: &str) -> Result<ErrorKind, String> {
        let kind = match name {
            "refused" => ErrorKind::Refused,
            "connect_failed" => ErrorKind::ConnectFailed,
            "tls_failed" => ErrorKind::TlsFailed,
            "handshake_failed" => ErrorKind::HandshakeFailed,
            "closed_without_code" => ErrorKind::ClosedWithoutCode,
            "dropped" => ErrorKind::Dropped,
            "payload_mismatch" => ErrorKind::PayloadMismatch,
            "timeout" => ErrorKind::Timeout,
            "protocol_error" => ErrorKind::ProtocolError,
            "io_error" => ErrorKind::Io,
            _ => match name.strip_prefix("closed_with_code_").map(str::parse) {
                Some(Ok(code)) => ErrorKind::ClosedWithCode(code),
                _ => return Err(format!("unknown error kind {name:?}")),
            },
        };
        Ok(kind)
    }
}

/// By name, so that errors by kind are a JSON object keyed as in the report.
impl Serialize for ErrorKind {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ErrorKind {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<ErrorKind, D::Error> {
        let name = String::deserialize(deserializer)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

/// How many different reasons for errors are kept: the first ones met, enough to say what
/// went wrong without a list as long as the run.
pub const MAX_REASONS: usize = 5;

/// Why errors of a kind happened, as the system or rustls said it, and how often.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reason {
    pub kind: ErrorKind,
    pub reason: String,
    pub count: u64,
}

/// A histogram of microseconds from 1 us up, growing as needed, 3 significant digits.
pub fn new_histogram() -> Histogram<u64> {
    let mut histogram =
        Histogram::new_with_bounds(1, 60_000_000, 3).expect("constant bounds are valid");
    histogram.auto(true);
    histogram
}

/// Records `elapsed` in microseconds (at least 1, the histogram's lowest value).
pub fn record(histogram: &mut Histogram<u64>, elapsed: Duration) {
    let micros = (elapsed.as_micros() as u64).max(1);
    // With auto-resize on, recording only fails for values beyond u64 range.
    let _ = histogram.record(micros);
}

/// Everything one worker counted. An agent sends it to the controller as JSON, the
/// histograms in HdrHistogram's V2 format (see [`crate::agent::histogram`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Stats {
    /// Round-trip (echo, latency) or delivery (broadcast) latency; in open loop, measured
    /// from each message's intended send time.
    #[serde(with = "wire")]
    pub latency: Histogram<u64>,
    /// Open loop only: the same messages measured from when they actually left.
    #[serde(with = "wire")]
    pub latency_uncorrected: Histogram<u64>,
    /// Open loop and publishing: how late each message left against its schedule (the
    /// generator's own lag, or a full send window).
    #[serde(with = "wire")]
    pub send_lag: Histogram<u64>,
    /// From the start of the TCP connect to a checked `101` answer (over wss://, the TLS
    /// handshake included).
    #[serde(with = "wire")]
    pub handshake: Histogram<u64>,
    /// While the load ran (after the warm-up): how late a timer the event loop set itself
    /// every 10 ms fired (its lag, as Node's `monitorEventLoopDelay` measures it), a wait
    /// that every event met too and the server is not to blame for.
    #[serde(with = "wire")]
    pub loop_lag: Histogram<u64>,
    /// Each thread's CPU time over wall time while it generated load (the measured window;
    /// connect and idle modes: the ramp): near 1.0, the thread's core was saturated.
    pub thread_busy: Vec<f64>,
    /// Over the same time, the share each thread spent ready to run but waiting for a CPU
    /// (other work on its core); empty where the kernel does not say.
    pub thread_waiting: Vec<f64>,
    /// Data messages sent (all of them, warm-up included).
    pub sent: u64,
    /// Data messages received (echoes or deliveries), warm-up included.
    pub received: u64,
    /// Messages received inside the measured window.
    pub window_messages: u64,
    /// Payload bytes received inside the measured window.
    pub window_bytes: u64,
    /// Broadcast: messages this worker's publishers sent.
    pub published: u64,
    /// Broadcast: when, after the start, this worker first published.
    pub first_publish: Option<Duration>,
    /// Broadcast: deliveries of a connection's own messages back to it (an echo, or a
    /// fan-out that includes the sender) and of messages from other connections.
    pub own_deliveries: u64,
    pub other_deliveries: u64,
    /// Open loop: messages due before the end that never left (the server held every slot).
    pub behind_schedule: u64,
    /// Connections attempted, and those whose handshake succeeded.
    pub attempted: u64,
    pub opened: u64,
    /// Pings sent and pongs matched (idle mode).
    pub pings: u64,
    pub pongs: u64,
    /// Idle mode: connections that answered the final ping.
    pub alive_at_end: u64,
    /// How long after the start sending stopped (the end of the measured window).
    pub sending_time: Duration,
    /// Errors by kind.
    pub errors: BTreeMap<ErrorKind, u64>,
    /// The first [`MAX_REASONS`] different reasons given for errors (connect and socket
    /// failures, TLS), in the order met.
    pub error_reasons: Vec<Reason>,
}

impl Stats {
    pub fn new() -> Stats {
        Stats {
            latency: new_histogram(),
            latency_uncorrected: new_histogram(),
            send_lag: new_histogram(),
            handshake: new_histogram(),
            loop_lag: new_histogram(),
            thread_busy: Vec::new(),
            thread_waiting: Vec::new(),
            sent: 0,
            received: 0,
            window_messages: 0,
            window_bytes: 0,
            published: 0,
            first_publish: None,
            own_deliveries: 0,
            other_deliveries: 0,
            behind_schedule: 0,
            attempted: 0,
            opened: 0,
            pings: 0,
            pongs: 0,
            alive_at_end: 0,
            sending_time: Duration::ZERO,
            errors: BTreeMap::new(),
            error_reasons: Vec::new(),
        }
    }

    pub fn error(&mut self, kind: ErrorKind) {
        *self.errors.entry(kind).or_insert(0) += 1;
    }

    /// Counts an error of `kind`, and its reason when there is one.
    pub fn error_because(&mut self, kind: ErrorKind, reason: Option<String>) {
        self.error(kind);
        if let Some(reason) = reason {
            self.note_reason(kind, reason, 1);
        }
    }

    /// Adds `count` to a reason already kept, or keeps it while there is room.
    fn note_reason(&mut self, kind: ErrorKind, reason: String, count: u64) {
        let reasons = &mut self.error_reasons;
        match reasons
            .iter()
            .position(|r| r.kind == kind && r.reason == reason)
        {
            Some(i) => reasons[i].count += count,
            None if reasons.len() < MAX_REASONS => reasons.push(Reason {
                kind,
                reason,
                count,
            }),
            None => {}
        }
    }

    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    /// Adds another worker's figures to these.
    pub fn merge(&mut self, other: &Stats) {
        let add = |into: &mut Histogram<u64>, from: &Histogram<u64>| {
            into.add(from)
                .expect("auto-resizing histograms accept any values");
        };
        add(&mut self.latency, &other.latency);
        add(&mut self.latency_uncorrected, &other.latency_uncorrected);
        add(&mut self.send_lag, &other.send_lag);
        add(&mut self.handshake, &other.handshake);
        add(&mut self.loop_lag, &other.loop_lag);
        self.thread_busy.extend_from_slice(&other.thread_busy);
        self.thread_waiting.extend_from_slice(&other.thread_waiting);
        self.sent += other.sent;
        self.received += other.received;
        self.window_messages += other.window_messages;
        self.window_bytes += other.window_bytes;
        self.published += other.published;
        self.first_publish = match (self.first_publish, other.first_publish) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.own_deliveries += other.own_deliveries;
        self.other_deliveries += other.other_deliveries;
        self.behind_schedule += other.behind_schedule;
        self.attempted += other.attempted;
        self.opened += other.opened;
        self.pings += other.pings;
        self.pongs += other.pongs;
        self.alive_at_end += other.alive_at_end;
        self.sending_time = self.sending_time.max(other.sending_time);
        for (kind, count) in &other.errors {
            *self.errors.entry(*kind).or_insert(0) += count;
        }
        for r in &other.error_reasons {
            self.note_reason(r.kind, r.reason.clone(), r.count);
        }
    }
}

/// The percentiles every report shows, in microseconds.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Percentiles {
    pub count: u64,
    pub min: u64,
    pub mean: f64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p99_9: u64,
    pub p99_99: u64,
    pub max: u64,
}

impl Percentiles {
    pub fn of(histogram: &Histogram<u64>) -> Percentiles {
        let q = |quantile| histogram.value_at_quantile(quantile);
        Percentiles {
            count: histogram.len(),
            min: histogram.min(),
            mean: (histogram.mean() * 10.0).round() / 10.0,
            p50: q(0.5),
            p90: q(0.9),
            p99: q(0.99),
            p99_9: q(0.999),
            p99_99: q(0.9999),
            max: histogram.max(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merging_adds_counts_histograms_and_errors() {
        let mut a = Stats::new();
        let mut b = Stats::new();
        for v in 1..=100 {
            record(&mut a.latency, Duration::from_micros(v));
        }
        record(&mut b.latency, Duration::from_secs(120)); // beyond the initial bound
        a.error(ErrorKind::Timeout);
        b.error(ErrorKind::Timeout);
        b.error(ErrorKind::ClosedWithCode(1011));
        b.sent = 7;
        a.merge(&b);
        let p = Percentiles::of(&a.latency);
        assert_eq!((p.count, p.p50), (101, 51));
        assert!(p.max >= 119_000_000, "{}", p.max);
        assert_eq!(a.errors[&ErrorKind::Timeout], 2);
        assert_eq!(a.error_count(), 3);
        assert_eq!(a.sent, 7);
        assert_eq!(
            ErrorKind::ClosedWithCode(1011).to_string(),
            "closed_with_code_1011"
        );
    }

    #[test]
    fn error_kinds_read_back_from_their_names() {
        let kinds = [
            ErrorKind::Refused,
            ErrorKind::ConnectFailed,
            ErrorKind::TlsFailed,
            ErrorKind::HandshakeFailed,
            ErrorKind::ClosedWithCode(4000),
            ErrorKind::ClosedWithoutCode,
            ErrorKind::Dropped,
            ErrorKind::PayloadMismatch,
            ErrorKind::Timeout,
            ErrorKind::ProtocolError,
            ErrorKind::Io,
        ];
        for kind in kinds {
            assert_eq!(kind.to_string().parse(), Ok(kind));
        }
        assert!("closed_with_code_70000".parse::<ErrorKind>().is_err());
        assert!("on_fire".parse::<ErrorKind>().is_err());
    }

    #[test]
    fn the_first_few_reasons_are_kept_and_merged() {
        let mut a = Stats::new();
        let tls = |n: u32| Some(format!("TLS: invalid peer certificate {n}"));
        a.error_because(ErrorKind::TlsFailed, tls(0));
        a.error_because(ErrorKind::TlsFailed, tls(0));
        a.error_because(ErrorKind::Timeout, None);
        let mut b = Stats::new();
        for n in 0..(MAX_REASONS as u32 + 2) {
            b.error_because(ErrorKind::TlsFailed, tls(n));
        }
        a.merge(&b);
        assert_eq!(a.errors[&ErrorKind::TlsFailed], 2 + MAX_REASONS as u64 + 2);
        assert_eq!(a.error_reasons.len(), MAX_REASONS);
        assert_eq!(a.error_reasons[0].reason, tls(0).unwrap());
        assert_eq!(a.error_reasons[0].count, 3);
        assert_eq!(a.error_reasons[1].count, 1);
        let json = serde_json::to_string(&a).unwrap();
        let back: Stats = serde_json::from_str(&json).unwrap();
        assert_eq!(back.error_reasons, a.error_reasons);
        assert!(
            json.contains(
                r#"{"kind":"tls_failed","reason":"TLS: invalid peer certificate 0","count":3}"#
            ),
            "{json}"
        );
    }

    #[test]
    fn stats_survive_the_trip_to_the_controller() {
        let mut stats = Stats::new();
        record(&mut stats.latency, Duration::from_micros(250));
        record(&mut stats.loop_lag, Duration::from_micros(40));
        stats.error(ErrorKind::ClosedWithCode(1011));
        stats.thread_busy = vec![0.5, 0.87];
        stats.sent = 12;
        let json = serde_json::to_string(&stats).unwrap();
        let back: Stats = serde_json::from_str(&json).unwrap();
        assert_eq!(back.latency, stats.latency);
        assert_eq!(back.loop_lag, stats.loop_lag);
        assert_eq!(back.errors, stats.errors);
        assert_eq!((back.sent, back.thread_busy), (12, vec![0.5, 0.87]));
        assert!(
            json.contains(r#""errors":{"closed_with_code_1011":1}"#),
            "{json}"
        );
    }
}
