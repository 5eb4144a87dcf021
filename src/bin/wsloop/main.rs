//! The `wsloop` binary: an echo server by default, with every limit on the command line,
//! the live page at `/` and Prometheus metrics at `/metrics`.

mod logger;
mod metrics_listener;

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{CommandFactory, Parser};
use wsloop::proto::deflate::DeflateConfig;
use wsloop::rooms::EchoRooms;
use wsloop::tls::ReloadableCert;
use wsloop::units::{parse_duration, parse_size};
use wsloop::{Accept, Cluster, Config, MAX_LOOPS};

/// A WebSocket server (RFC 6455): one event loop per core. Echoes every message back;
/// connections to /chat/ROOM share their messages with the rest of the room, across loops.
/// GET / serves a live page (echo, chat, the server's figures); GET /metrics the metrics.
#[derive(Debug, Parser)]
#[command(name = "wsloop", version)]
struct Args {
    /// Address to listen on: IP:PORT, [IPv6]:PORT (`[::]:9001` for every interface) or
    /// HOST:PORT (`localhost:9001`; the name's first address is used).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9001", value_parser = parse_listen)]
    listen: String,
    /// A subprotocol this server speaks (repeatable): the first the client offers of these
    /// is answered. Without it, the first the client offers is answered, as Node's `ws` does.
    #[arg(long = "protocol", value_name = "NAME", value_parser = parse_protocol)]
    protocols: Vec<String>,
    /// Event loops, one thread each [default: the CPUs this process may run on, so
    /// `taskset -c 0 wsloop` runs one].
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=MAX_LOOPS as i64))]
    threads: Option<u16>,
    /// How loops share the port: `balanced` (loop 0 accepts and hands each connection to the
    /// loop holding the fewest) or `reuseport` (a listener per loop, the kernel picks).
    #[arg(long, default_value = "balanced", value_parser = parse_accept)]
    accept: Accept,
    /// Listen backlog: connections the kernel queues until they are accepted. Linux silently
    /// caps it at `net.core.somaxconn` (`sysctl net.core.somaxconn`; 4096 since Linux 5.4,
    /// 128 before), so raise that too for larger bursts: mio's old default of 128 overflowed
    /// at 4,000 connects from 2 threads (clients then wait for SYN retransmits).
    #[arg(long, default_value_t = 1024)]
    backlog: u32,
    /// Largest message accepted (e.g. 16MiB); larger ones are closed with 1009.
    #[arg(long, default_value = "16MiB", value_parser = parse_size)]
    max_message_size: usize,
    /// Connections held at most; more are answered 503. Each needs an open file: the soft
    /// open-file limit is raised to the hard limit at start, with a warning if that is too few.
    #[arg(long, default_value_t = 100_000)]
    max_connections: usize,
    /// Buffered bytes per connection past which it is no longer read until it drains.
    #[arg(long, default_value = "1MiB", value_parser = parse_size)]
    backpressure_limit: usize,
    /// Buffered bytes per connection past which sends are dropped (at least
    /// --backpressure-limit).
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
    /// Log level: off, error, warn, info, debug or trace. Lines go to stderr as
    /// `2026-12-01T16:20:05.123Z LEVEL message` (UTC).
    #[arg(long, default_value = "info", value_parser = parse_level)]
    log_level: log::LevelFilter,
    /// Log lines as `text` or `json` (JSON Lines: ts, level, target, msg and the record's
    /// fields, numbers as numbers).
    #[arg(long, default_value = "text", value_parser = logger::parse_format)]
    log_format: logger::Format,
    /// Log a line per connection when it ends (peer, path, status, subprotocol, duration,
    /// messages and bytes each way, close code, who closed), target `wsloop::access` at
    /// info. Off by default: at high churn it is most of the log, and each connection keeps
    /// a record of at most 128 bytes (and its path) while it lives.
    #[arg(long)]
    access_log: bool,
    /// Serve /metrics on this address instead of the main port (e.g. 127.0.0.1:9101, for
    /// an internal network only).
    #[arg(long, value_name = "ADDR")]
    metrics_listen: Option<SocketAddr>,
    /// Do not serve the live page at / (nor its figures at /stats).
    #[arg(long)]
    no_page: bool,
    /// Serve wss:// (TLS 1.3 and 1.2) with this PEM certificate chain, the server's own
    /// certificate first. SIGHUP reads it and --tls-key again: new connections get the new
    /// certificate, open ones keep going; if the files are bad, the old one stays.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert (PKCS#8, PKCS#1 RSA or SEC1 EC).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
}

impl Args {
    /// Checks what clap cannot see flag by flag, with the library's own rules
    /// ([`Config::validate`]); exits with a usage error (code 2) as clap does, naming flags.
    fn validate(&self) {
        let unbound = SocketAddr::from(([127, 0, 0, 1], 0));
        if let Err(reason) = self.config(unbound).validate() {
            let reason = [
                ("backpressure_limit", "--backpressure-limit"),
                ("max_buffered", "--max-buffered"),
                ("max_connections", "--max-connections"),
            ]
            .iter()
            .fold(reason, |text, (field, flag)| text.replace(field, flag));
            Args::command()
                .error(clap::error::ErrorKind::ArgumentConflict, reason)
                .exit();
        }
    }

    fn config(&self, listen: SocketAddr) -> Config {
        Config {
            listen,
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
            access_log: self.access_log,
            ..Config::default()
        }
    }
}

/// Checks that `--listen` is `HOST:PORT` (a literal address, `[IPv6]:PORT` or a name);
/// resolving a name is left to `main`, after parsing, so that `--help` never waits on DNS.
fn parse_listen(text: &str) -> Result<String, String> {
    const EXPECTED: &str = "expected IP:PORT, [IPv6]:PORT or HOST:PORT, e.g. 127.0.0.1:9001, \
                            [::1]:9001 or localhost:9001";
    if text.parse::<SocketAddr>().is_ok() {
        return Ok(text.to_owned());
    }
    let Some((host, port)) = text.rsplit_once(':') else {
        return Err(format!("no port ({EXPECTED})"));
    };
    if port.parse::<u16>().is_err() {
        return Err(format!("bad port {port:?} ({EXPECTED})"));
    }
    if host.is_empty() {
        return Err(format!("no host ({EXPECTED})"));
    }
    if host.contains(':') {
        return Err(format!(
            "an IPv6 address goes in brackets, as [::1]:9001 ({EXPECTED})"
        ));
    }
    Ok(text.to_owned())
}

/// Resolves `--listen`: a literal address as it is, a name to its first address.
fn resolve_listen(text: &str) -> Result<SocketAddr, String> {
    let mut addrs = text.to_socket_addrs().map_err(|err| err.to_string())?;
    addrs
        .next()
        .ok_or_else(|| "the name has no address".to_owned())
}

/// Descriptors the process needs besides one per connection: stdio, logs, the listener(s),
/// and per loop its epoll instance and waker (and, with reuseport, its own listener).
fn reserved_descriptors(threads: usize) -> u64 {
    64 + 3 * threads as u64
}

/// Raises the soft open-file limit to the hard one. Returns the limit before and after, or
/// the error; either way the server starts.
fn raise_open_file_limit() -> std::io::Result<(u64, u64)> {
    let (before, _hard) = rlimit::getrlimit(rlimit::Resource::NOFILE)?;
    let after = rlimit::increase_nofile_limit(u64::MAX)?;
    Ok((before, after))
}

/// Logs the open-file limit and warns when `--max-connections` cannot be reached with it.
fn report_open_file_limit(limit: std::io::Result<(u64, u64)>, args: &Args, threads: usize) {
    let current = match limit {
        Ok((before, after)) => {
            if after != before {
                log::info!("open-file limit raised from {before} to {after} (the hard limit)");
            }
            after
        }
        Err(err) => {
            log::warn!("cannot raise the open-file limit: {err}");
            match rlimit::getrlimit(rlimit::Resource::NOFILE) {
                Ok((soft, _)) => soft,
                Err(_) => return,
            }
        }
    };
    let reserved = reserved_descriptors(threads);
    let needed = (args.max_connections as u64).saturating_add(reserved);
    if needed > current {
        log::warn!(
            "--max-connections {} needs about {needed} open files, but the open-file limit is \
             {current}: at most about {} connections can be held, past that accepts fail with \
             EMFILE; raise the hard limit (ulimit -Hn, systemd LimitNOFILE=) or lower \
             --max-connections",
            args.max_connections,
            current.saturating_sub(reserved),
        );
    }
}

/// A subprotocol name must be an HTTP token (RFC 6455 section 4.1).
fn parse_protocol(text: &str) -> Result<String, String> {
    if wsloop::proto::handshake::is_token(text) {
        Ok(text.to_owned())
    } else {
        Err(format!(
            "{text:?} is not a valid subprotocol name (an HTTP token)"
        ))
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
    args.validate();
    logger::StderrLogger::install(args.log_level, args.log_format);
    // Before anything opens a descriptor; reported once the server is bound, so that a bind
    // error stays the only line.
    let open_file_limit = raise_open_file_limit();
    let threads = args
        .threads
        .map_or_else(wsloop::available_cores, usize::from);
    let listen = match resolve_listen(&args.listen) {
        Ok(addr) => addr,
        Err(err) => {
            eprintln!("wsloop: cannot resolve --listen {}: {err}", args.listen);
            return ExitCode::FAILURE;
        }
    };
    let cert = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => match ReloadableCert::load(cert, key) {
            Ok(loaded) => Some(loaded),
            Err(err) => {
                eprintln!("wsloop: cannot load the TLS certificate: {err}");
                return ExitCode::FAILURE;
            }
        },
        _ => None,
    };
    let mut config = args.config(listen);
    config.tls = cert.as_ref().map(ReloadableCert::server_config);
    let mut handler = EchoRooms::speaking(args.protocols.clone());
    if !args.no_page {
        handler = handler.with_page();
    }
    if args.metrics_listen.is_none() {
        handler = handler.with_metrics_route();
    }
    let server = match Cluster::bind(config, threads, |_| handler.clone()) {
        Ok(server) => server,
        Err(err) => {
            eprintln!("wsloop: cannot listen on {listen}: {err}");
            return ExitCode::FAILURE;
        }
    };
    report_open_file_limit(open_file_limit, &args, threads);
    if let Some(addr) = args.metrics_listen {
        match metrics_listener::spawn(addr, server.metrics()) {
            Ok(bound) => log::info!("metrics on http://{bound}/metrics"),
            Err(err) => {
                eprintln!("wsloop: cannot listen on --metrics-listen {addr}: {err}");
                return ExitCode::FAILURE;
            }
        }
    }
    let stop = server.shutdown_handle();
    let mut signals = match signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGHUP,
    ]) {
        Ok(signals) => signals,
        Err(err) => {
            eprintln!("wsloop: cannot install signal handlers: {err}");
            return ExitCode::FAILURE;
        }
    };
    std::thread::spawn(move || {
        for signal in signals.forever() {
            if signal != signal_hook::consts::SIGHUP {
                log::info!("signal {signal}: shutting down");
                stop.shutdown();
                return;
            }
            match &cert {
                Some(cert) => match cert.reload() {
                    Ok(()) => log::info!("SIGHUP: TLS certificate reloaded"),
                    Err(err) => log::error!("SIGHUP: keeping the old TLS certificate: {err}"),
                },
                None => log::info!("SIGHUP: nothing to reload (no --tls-cert)"),
            }
        }
    });
    log::info!("{threads} event loop(s), accept {:?}", args.accept);
    // Scripts and tests read the address from this first line.
    let scheme = if args.tls_cert.is_some() { "wss" } else { "ws" };
    println!("listening on {scheme}://{}", server.local_addr());
    match server.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("wsloop: event loop failed: {err}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_syntax() {
        assert!(parse_listen("127.0.0.1:9001").is_ok());
        assert!(parse_listen("[::1]:0").is_ok());
        assert!(parse_listen("[::]:9001").is_ok());
        assert!(parse_listen("localhost:9001").is_ok());
        assert!(parse_listen("not-an-address").is_err());
        assert!(parse_listen("localhost:http").is_err());
        assert!(parse_listen(":9001").is_err());
        assert!(parse_listen("::1:9001").is_err());
    }

    #[test]
    fn the_flags_are_consistent() {
        Args::command().debug_assert();
    }
}
