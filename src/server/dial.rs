//! Outgoing connections, up to the TCP connect: the request is written, the host name is
//! resolved off the loop, addresses are tried in turn. From there the connection is like an
//! accepted one, but for its side of the handshake (`input.rs`) and masking what it sends.

use std::collections::VecDeque;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::Interest;
use rustls::pki_types::ServerName;

use super::command::Command;
use super::conn::{lookup, Conn};
use super::core::Core;
use super::hub::{Hub, PostError};
use super::outbound::OutQueue;
use super::tls::Tls;
use super::token::{ConnId, MAX_INDEX};
use crate::client::{ConnectError, ConnectOptions};
use crate::handler::Error;
use crate::proto::connection::{Offer, Settings};
use crate::proto::header::{is_sendable_field, is_token};
use crate::proto::url::{UrlError, WsUrl};
use crate::proto::{random_key, Connection};

/// Request headers the handshake writes itself; `ConnectOptions::header` cannot set them.
const HANDSHAKE_HEADERS: [&str; 7] = [
    "host",
    "upgrade",
    "connection",
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-protocol",
    "sec-websocket-extensions",
];

/// Where an outgoing connection is in reaching its server.
#[derive(Debug)]
pub(crate) struct Dial {
    /// Addresses not tried yet, in the resolver's order.
    addrs: VecDeque<SocketAddr>,
    /// Why the last address failed, reported when none is left.
    last_error: Option<io::Error>,
    /// How long the TLS and opening handshakes may take once connected.
    handshake_timeout: Duration,
}

/// What a readiness event on a connecting socket meant.
pub(crate) enum Connected {
    /// Connected: the request (or TLS's ClientHello) can go.
    Yes,
    /// Not yet (a spurious wake-up).
    Pending,
    /// This address failed and no other is left.
    Failed(Error),
}

impl Core {
    /// Opens an outgoing connection to `url`: see [`Context::connect`](super::Context::connect).
    pub(crate) fn connect(
        &mut self,
        url: &str,
        options: &ConnectOptions,
    ) -> Result<ConnId, ConnectError> {
        if self.hub.shutdown_requested() {
            return Err(ConnectError::Stopped);
        }
        let url = WsUrl::parse(url)?;
        check_request(options)?;
        let tls = match url.secure() {
            false => None,
            true => {
                let config = options.tls.as_ref().ok_or(ConnectError::NoTls)?;
                let name = match (url.ip(), url.server_name()) {
                    (Some(ip), _) => ServerName::IpAddress(ip.into()),
                    (None, name) => ServerName::try_from(name.unwrap_or_default().to_owned())
                        .map_err(|_| {
                            ConnectError::Url(UrlError::InvalidHost("not a TLS server name"))
                        })?,
                };
                let tls =
                    Tls::client(config, name).map_err(|err| ConnectError::Tls(err.to_string()))?;
                Some(Box::new(tls))
            }
        };
        let index = self.conns.vacant_key();
        if index >= MAX_INDEX || !self.hub.reserve(self.loop_index) {
            return Err(ConnectError::Full);
        }
        let generation = self.next_generation();
        let id = self.id(index, generation);
        let settings = Settings {
            max_message_size: options
                .max_message_size
                .unwrap_or(self.config.max_message_size),
            auto_pong: self.config.auto_pong,
            deflate: options.deflate,
        };
        let protocols: Vec<&str> = options.protocols.iter().map(String::as_str).collect();
        let headers: Vec<(&str, &str)> = options
            .headers
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str()))
            .collect();
        let offer = Offer {
            host: url.host_header(),
            path: url.resource(),
            protocols: &protocols,
            headers: &headers,
        };
        // The request waits in the send queue until the socket connects.
        let mut out = OutQueue::default();
        let ws = Connection::client(
            out.writer(&mut self.pool),
            &offer,
            random_key(),
            settings,
            Instant::now(),
        );
        let dial = Box::new(Dial {
            addrs: VecDeque::new(),
            last_error: None,
            handshake_timeout: options
                .handshake_timeout
                .unwrap_or(self.config.handshake_timeout),
        });
        self.conns
            .insert(Conn::client(generation, ws, out, tls, dial));
        let at = self.after(options.connect_timeout);
        self.set_deadline(id, at);
        match url.ip() {
            Some(ip) => self.resolved(id, Ok(vec![SocketAddr::new(ip, url.port())])),
            None => resolve(
                self.hub.clone(),
                self.loop_index,
                id,
                url.host().to_owned(),
                url.port(),
            ),
        }
        Ok(id)
    }

    /// The resolver's answer for connection `id`: tries the addresses in turn.
    pub(crate) fn resolved(&mut self, id: ConnId, addrs: io::Result<Vec<SocketAddr>>) {
        let Some(conn) = self.get_mut(id) else { return };
        let Some(dial) = conn.dial.as_mut() else {
            return;
        };
        match addrs {
            Ok(addrs) if !addrs.is_empty() => {
                dial.addrs = addrs.into();
                if let Err(err) = self.try_next_address(id) {
                    self.failed.push((id, err));
                }
            }
            Ok(_) => self.failed.push((
                id,
                Error::Resolve(io::Error::new(
                    io::ErrorKind::NotFound,
                    "the name has no addresses",
                )),
            )),
            Err(err) => self.failed.push((id, Error::Resolve(err))),
        }
    }

    /// Starts a non-blocking connect to the next address; the error once none is left.
    fn try_next_address(&mut self, id: ConnId) -> Result<(), Error> {
        let Core {
            conns, registry, ..
        } = self;
        let Some(conn) = lookup(conns, id) else {
            return Ok(());
        };
        if let Some(mut old) = conn.socket.take() {
            let _ = registry.deregister(&mut old);
        }
        let Some(dial) = conn.dial.as_mut() else {
            return Ok(());
        };
        while let Some(addr) = dial.addrs.pop_front() {
            let attempt = TcpStream::connect(addr).and_then(|mut socket| {
                registry.register(
                    &mut socket,
                    id.token(),
                    Interest::READABLE | Interest::WRITABLE,
                )?;
                Ok(socket)
            });
            match attempt {
                Ok(socket) => {
                    conn.socket = Some(socket);
                    return Ok(());
                }
                Err(err) => {
                    log::debug!("{id}: connect to {addr}: {err}");
                    dial.last_error = Some(err);
                }
            }
        }
        let err = dial.last_error.take().unwrap_or_else(|| {
            io::Error::new(io::ErrorKind::NotConnected, "no address to connect to")
        });
        Err(Error::Connect(err))
    }

    /// A readiness event on a socket still connecting: connected, not yet, or failed (then
    /// the next address is tried before giving up).
    pub(crate) fn on_connect_event(&mut self, id: ConnId) -> Connected {
        let Some(conn) = lookup(&mut self.conns, id) else {
            return Connected::Pending;
        };
        let Some(socket) = conn.socket.as_mut() else {
            return Connected::Pending;
        };
        // connect(2): "use getsockopt(2) to read the SO_ERROR option ... to determine
        // whether connect() completed successfully".
        let failure = match socket.take_error() {
            Ok(Some(err)) | Err(err) => Some(err),
            Ok(None) => match socket.peer_addr() {
                Ok(_) => None,
                Err(err) if err.kind() == io::ErrorKind::NotConnected => return Connected::Pending,
                Err(err) => Some(err),
            },
        };
        if let Some(err) = failure {
            log::debug!("{id}: connect: {err}");
            if let Some(dial) = conn.dial.as_mut() {
                dial.last_error = Some(err);
            }
            return match self.try_next_address(id) {
                Ok(()) => Connected::Pending,
                Err(err) => Connected::Failed(err),
            };
        }
        if let Err(err) = socket.set_nodelay(true) {
            log::debug!("{id}: set_nodelay: {err}");
        }
        // Registered for WRITABLE too: the first flush settles the interest.
        conn.write_blocked = true;
        let timeout = conn
            .dial
            .take()
            .map_or(self.config.handshake_timeout, |dial| dial.handshake_timeout);
        let at = self.after(timeout);
        self.set_deadline(id, at);
        self.mark_dirty(id);
        Connected::Yes
    }
}

/// Refuses request headers and subprotocols that cannot be sent as they are.
fn check_request(options: &ConnectOptions) -> Result<(), ConnectError> {
    for (name, value) in &options.headers {
        let reserved = HANDSHAKE_HEADERS
            .iter()
            .any(|h| h.eq_ignore_ascii_case(name));
        if reserved || !is_sendable_field(name, value) {
            return Err(ConnectError::Header(name.clone()));
        }
    }
    for (i, protocol) in options.protocols.iter().enumerate() {
        // RFC 6455 section 4.1: "The elements that comprise this value MUST be non-empty
        // strings with characters in the range U+0021 to U+007E not including separator
        // characters ... and MUST all be unique strings."
        if !is_token(protocol) || options.protocols[..i].contains(protocol) {
            return Err(ConnectError::Protocol(protocol.clone()));
        }
    }
    Ok(())
}

/// Name lookups at most in flight at once, each on its own thread: `getaddrinfo` blocks,
/// and one slow name must not hold up the others behind it.
const RESOLVER_THREADS: usize = 4;

/// A name to look up for connection `id` of loop `loop_index`.
struct Lookup {
    hub: Arc<Hub>,
    loop_index: usize,
    id: ConnId,
    host: String,
    port: u16,
}

/// Lookups waiting for a thread, and how many threads are at work. Threads start when
/// lookups come and end when none is left, so a server that never resolves holds none.
struct Resolver {
    queue: VecDeque<Lookup>,
    threads: usize,
}

static RESOLVER: Mutex<Resolver> = Mutex::new(Resolver {
    queue: VecDeque::new(),
    threads: 0,
});

/// Resolves `host` off the loop; the answer comes back through the loop's mailbox.
fn resolve(hub: Arc<Hub>, loop_index: usize, id: ConnId, host: String, port: u16) {
    let mut resolver = RESOLVER.lock().unwrap_or_else(PoisonError::into_inner);
    resolver.queue.push_back(Lookup {
        hub,
        loop_index,
        id,
        host,
        port,
    });
    if resolver.threads < RESOLVER_THREADS {
        let spawned = std::thread::Builder::new()
            .name("wsloop-resolver".into())
            .spawn(resolve_queued);
        match spawned {
            Ok(_) => resolver.threads += 1,
            // With no thread at all the lookup waits for the next one, or the connect
            // timeout ends it.
            Err(err) => log::error!("could not start a resolver thread: {err}"),
        }
    }
}

/// A resolver thread: looks names up until the queue is empty.
fn resolve_queued() {
    loop {
        let lookup = {
            let mut resolver = RESOLVER.lock().unwrap_or_else(PoisonError::into_inner);
            match resolver.queue.pop_front() {
                Some(lookup) => lookup,
                None => {
                    resolver.threads -= 1;
                    return;
                }
            }
        };
        let addrs = (lookup.host.as_str(), lookup.port)
            .to_socket_addrs()
            .map(Iterator::collect);
        let mut command = Command::Resolved {
            id: lookup.id,
            addrs,
        };
        // A full mailbox drains within a few loop turns; past a second the connect timeout
        // is the better judge.
        for _ in 0..100 {
            match lookup.hub.post(lookup.loop_index, command) {
                Ok(()) => {
                    lookup.hub.wake(lookup.loop_index);
                    break;
                }
                Err(PostError::Full(back)) => {
                    command = back;
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(PostError::Stopped(_)) => break,
            }
        }
    }
}
