//! The `wsloop` binary: an echo server by default, with every limit on the command line.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use wsloop::proto::deflate::DeflateConfig;
use wsloop::rooms::EchoRooms;
use wsloop::units::{parse_duration, parse_size};
use wsloop::{Accept, Cluster, Config, MAX_LOOPS};

/// A WebSocket server (RFC 6455): one event loop per core. Echoes every message back;
/// connections to /chat/ROOM share their messages with the rest of the room, across loops.
#[derive(Debug, Parser)]
#[command(name = "wsloop", version)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9001")]
    listen: SocketAddr,
    /// Event loops, one thread each [default: the CPUs this process may run on, so
    /// `taskset -c 0 wsloop` runs one].
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=MAX_LOOPS as i64))]
    threads: Option<u16>,
    /// How loops share the port: `balanced` (loop 0 accepts and hands each connection to the
    /// loop holding the fewest) or `reuseport` (a listener per loop, the kernel picks).
    #[arg(long, default_value = "balanced", value_parser = parse_accept)]
    accept: Accept,
    /// Listen backlog (Linux caps it at net.core.somaxconn).
    #[arg(long, default_value_t = 1024)]
    backlog: u32,
    /// Largest message accepted (e.g. 16MiB); larger ones are closed with 1009.
    #[arg(long, default_value = "16MiB", value_parser = parse_size)]
    max_message_size: usize,
    /// Connections held at most; more are answered 503.
    #[arg(long, default_value_t = 100_000)]
    max_connections: usize,
    /// Buffered bytes per connection past which it is no longer read until it drains.
    #[arg(long, default_value = "1MiB", value_parser = parse_size)]
    backpressure_limit: usize,
    /// Buffered bytes per connection past which sends are dropped.
    #[arg(long, default_value = "64MiB", value_parser = parse_size)]
    max_buffered: usize,
    /// Largest opening handshake request (431 past it).
    #[arg(long, default_value = "8KiB", value_parser = parse_size)]
    max_handshake_size: usize,
    /// Time allowed for the opening handshake.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    handshake_timeout: Duration,
    /// Ping after this long without input, drop after as long again without an answer (0 = never).
    #[arg(long, default_value = "120s", value_parser = parse_duration)]
    idle_timeout: Duration,
    /// Time allowed for the peer to answer a close frame.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    close_timeout: Duration,
    /// Negotiate permessage-deflate (RFC 7692) with clients that offer it.
    #[arg(long)]
    deflate: bool,
    /// Messages shorter than this are sent uncompressed. Resetting the shared compressor
    /// costs about 4 µs a message (zlib clears its hash table): below ~512 B that buys too
    /// few bytes (see BENCHMARKS.md).
    #[arg(long, default_value = "512", value_parser = parse_size, requires = "deflate")]
    deflate_threshold: usize,
    /// zlib compression level, 0-9 (1 is fast and close to 6 on small messages).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(0..=9), requires = "deflate")]
    deflate_level: u32,
    /// Keep each connection's LZ77 windows between messages, both ways: better ratios on
    /// small similar messages, but about 330 KiB per connection that has used compression.
    /// Without it, messages are compressed independently by zlib streams shared across the
    /// loop, and connections hold no compression memory.
    #[arg(long, requires = "deflate")]
    deflate_context_takeover: bool,
    /// Largest LZ77 window (server_max_window_bits and client_max_window_bits), 8-15.
    #[arg(long, default_value_t = 15, value_parser = clap::value_parser!(u8).range(8..=15), requires = "deflate")]
    deflate_window_bits: u8,
    /// Log level: error, warn, info, debug or trace.
    #[arg(long, default_value = "info", value_parser = parse_level)]
    log_level: log::LevelFilter,
}

impl Args {
    fn config(&self) -> Config {
        Config {
            listen: self.listen,
            max_message_size: self.max_message_size,
            max_connections: self.max_connections,
            backpressure_limit: self.backpressure_limit,
            max_buffered: self.max_buffered,
            max_handshake_bytes: self.max_handshake_size,
            handshake_timeout: self.handshake_timeout,
            idle_timeout: (!self.idle_timeout.is_zero()).then_some(self.idle_timeout),
            close_timeout: self.close_timeout,
            deflate: self.deflate.then_some(DeflateConfig {
                server_no_context_takeover: !self.deflate_context_takeover,
                client_no_context_takeover: !self.deflate_context_takeover,
                server_max_window_bits: self.deflate_window_bits,
                client_max_window_bits: self.deflate_window_bits,
                threshold: self.deflate_threshold,
                level: self.deflate_level,
            }),
            accept: self.accept,
            backlog: self.backlog,
            ..Config::default()
        }
    }
}

fn parse_accept(text: &str) -> Result<Accept, String> {
    match text {
        "balanced" => Ok(Accept::Balanced),
        "reuseport" => Ok(Accept::ReusePort),
        _ => Err(format!(
            "unknown accept mode {text:?} (use balanced or reuseport)"
        )),
    }
}

fn parse_level(text: &str) -> Result<log::LevelFilter, String> {
    text.parse().map_err(|_| {
        format!("unknown log level {text:?} (use off, error, warn, info, debug or trace)")
    })
}

fn main() -> ExitCode {
    let args = Args::parse();
    StderrLogger::install(args.log_level);
    let threads = args
        .threads
        .map_or_else(wsloop::available_cores, usize::from);
    let server = match Cluster::bind(args.config(), threads, |_| EchoRooms) {
        Ok(server) => server,
        Err(err) => {
            eprintln!("wsloop: cannot listen on {}: {err}", args.listen);
            return ExitCode::FAILURE;
        }
    };
    let stop = server.shutdown_handle();
    let mut signals = match signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
    ]) {
        Ok(signals) => signals,
        Err(err) => {
            eprintln!("wsloop: cannot install signal handlers: {err}");
            return ExitCode::FAILURE;
        }
    };
    std::thread::spawn(move || {
        if let Some(signal) = signals.forever().next() {
            log::info!("signal {signal}: shutting down");
            stop.shutdown();
        }
    });
    log::info!("{threads} event loop(s), accept {:?}", args.accept);
    // Scripts and tests read the address from this first line.
    println!("listening on ws://{}", server.local_addr());
    match server.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("wsloop: event loop failed: {err}");
            ExitCode::FAILURE
        }
    }
}

/// Log lines to stderr as `LEVEL message`: enough for a server whose output is collected by
/// systemd or a container runtime, without a logging framework.
struct StderrLogger(log::LevelFilter);

impl StderrLogger {
    fn install(level: log::LevelFilter) {
        let logger = Box::leak(Box::new(StderrLogger(level)));
        if log::set_logger(logger).is_ok() {
            log::set_max_level(level);
        }
    }
}

impl log::Log for StderrLogger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= self.0
    }

    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            eprintln!("{} {}", record.level(), record.args());
        }
    }

    fn flush(&self) {}
}
