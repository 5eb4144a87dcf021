//! Server settings: limits, timeouts and buffer sizes, with defaults for a public server.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::proto::deflate::DeflateConfig;
use crate::proto::CloseCode;

/// Everything the server can be told. Every limit bounds memory or time that a client could
/// otherwise make the server spend.
///
/// ```
/// use std::time::Duration;
/// let mut config = wsloop::Config::default();
/// config.listen = "127.0.0.1:0".parse().unwrap();
/// config.idle_timeout = Some(Duration::from_secs(30));
/// assert_eq!(config.max_message_size, 16 << 20);
/// ```
#[derive(Debug, Clone)]
pub struct Config {
    /// The address to listen on.
    pub listen: SocketAddr,
    /// The largest message accepted (after inflating, when compressed); larger ones fail the
    /// connection with 1009. The Autobahn suite needs 16 MiB.
    pub max_message_size: usize,
    /// Open connections beyond this are answered `503` and closed at once.
    pub max_connections: usize,
    /// The largest opening handshake request; longer ones get `431`.
    pub max_handshake_bytes: usize,
    /// The buffered amount past which a connection stops being read until its queue drains
    /// to half of it, and sends report [`SendStatus::Backpressure`](crate::SendStatus).
    pub backpressure_limit: usize,
    /// The buffered amount past which sends are refused with
    /// [`SendStatus::Dropped`](crate::SendStatus): what a slow reader can cost at most.
    pub max_buffered: usize,
    /// Time allowed for the whole opening handshake (guards against slowloris clients).
    pub handshake_timeout: Duration,
    /// With no input for this long the server pings; with none for as long again after the
    /// ping, it drops the connection. `None` turns this off.
    pub idle_timeout: Option<Duration>,
    /// Time allowed for the peer to answer a close frame (and for the server's last bytes to
    /// drain) before the TCP connection is dropped.
    pub close_timeout: Duration,
    /// Size of the one receive buffer the event loop reads every socket into; with `tls`,
    /// at least 18,437 bytes (a whole TLS record of the largest size is decrypted in it).
    pub read_buffer_size: usize,
    /// Reads from one connection per wake-up before the others get their turn.
    pub max_reads_per_wakeup: usize,
    /// Answer pings with pongs automatically (the handler still sees them).
    pub auto_pong: bool,
    /// What a publish does for a subscriber whose buffered amount is over the backpressure
    /// limit (it cannot be paused like a reader).
    pub slow_subscriber: SlowSubscriber,
    /// permessage-deflate (RFC 7692), offered by every browser; `None` declines it.
    pub deflate: Option<DeflateConfig>,
    /// How a [`Cluster`](crate::Cluster) spreads new connections over its loops.
    pub accept: Accept,
    /// The listen backlog: connections the kernel completes and holds for `accept`. Linux
    /// caps it at `net.core.somaxconn` (4096 on kernels since 5.4, 128 before); raise that
    /// too for bursts of more connections than this.
    pub backlog: u32,
    /// Commands a loop's mailbox holds (publishes from other loops, sends and closes from
    /// other loops and threads, connections handed over); past it, see
    /// [`Published::loops_full`](crate::Published) and [`RemoteError::Full`](crate::RemoteError).
    pub mailbox_capacity: usize,
    /// Log a line per connection when it ends (peer, path, status, subprotocol, duration,
    /// messages and bytes each way, close code, who closed) at `info` under the target
    /// `wsloop::access`. Off by default: at high churn a line per connection is most of
    /// the log, and each connection then keeps a record of at most 128 bytes and its path.
    pub access_log: bool,
    /// TLS on every connection (wss://), or `None` for plain ws://.
    /// [`ReloadableCert`](crate::tls::ReloadableCert) builds it from PEM files; any rustls
    /// `ServerConfig` will do (offer ALPN `http/1.1` in it, as that one does).
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

/// How the loops of a [`Cluster`](crate::Cluster) share the listening port. With one loop
/// both are the same.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accept {
    /// Loop 0 accepts and hands each connection to the loop holding the fewest: the spread
    /// stays even for long-lived connections whatever the clients' addresses and whenever
    /// they close (BENCHMARKS.md, Every core). The default.
    Balanced,
    /// Every loop has its own listening socket (`SO_REUSEPORT`) and the kernel picks one by
    /// a hash of the client's address and port: no hand-off, but the spread is only as even
    /// as the hash, and it does not heal when connections close unevenly.
    ReusePort,
}

impl Config {
    /// Checks settings that contradict each other; `Server::bind` and `Cluster::bind` refuse
    /// a config that fails it.
    pub fn validate(&self) -> Result<(), String> {
        if self.backpressure_limit > self.max_buffered {
            return Err(format!(
                "backpressure_limit ({}) is above max_buffered ({}): sends would be dropped \
                 before reading pauses",
                self.backpressure_limit, self.max_buffered
            ));
        }
        if let SlowSubscriber::Close(code) = self.slow_subscriber {
            if !code.is_sendable() {
                return Err(format!(
                    "slow_subscriber closes with {code}, which may not be sent (RFC 6455 7.4)"
                ));
            }
        }
        if self.max_connections == 0 {
            return Err("max_connections must be at least 1".into());
        }
        if self.mailbox_capacity == 0 {
            return Err("mailbox_capacity must be at least 1".into());
        }
        Ok(())
    }
}

/// The policy for a subscriber too slow to keep up with what is published to it. Either way
/// the other subscribers are not held up.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlowSubscriber {
    /// Skip the message for that subscriber; the handler hears of it in
    /// [`Handler::on_publish_dropped`](crate::Handler::on_publish_dropped).
    Drop,
    /// Close the subscriber with this code (1008 policy violation or 1013 try again later).
    Close(CloseCode),
}

impl Default for Config {
    fn default() -> Config {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 9001)),
            max_message_size: 16 << 20,
            max_connections: 100_000,
            max_handshake_bytes: 8 << 10,
            backpressure_limit: 1 << 20,
            max_buffered: 64 << 20,
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Some(Duration::from_secs(120)),
            close_timeout: Duration::from_secs(5),
            read_buffer_size: 256 << 10,
            max_reads_per_wakeup: 8,
            auto_pong: true,
            slow_subscriber: SlowSubscriber::Drop,
            deflate: None,
            accept: Accept::Balanced,
            backlog: 1024,
            mailbox_capacity: 64 * 1024,
            access_log: false,
            tls: None,
        }
    }
}
