//! A relay: both roles in one loop. Every browser connection accepted (server role) gets its
//! own upstream connection (client role) to another WebSocket server, and messages are piped
//! both ways, text as text and binary as binary.
//!
//! ```sh
//! cargo run --release                      # an echo server on ws://127.0.0.1:9001/
//! cargo run --example relay                # ws://127.0.0.1:9010/ -> ws://127.0.0.1:9001/
//! cargo run --example relay -- --listen 0.0.0.0:9010 --upstream ws://10.0.0.7:9001/app
//! # then, e.g.: websocat ws://127.0.0.1:9010/room/1?user=ada
//! ```
//!
//! The browser's path and query are appended to the upstream URL's path
//! (`/room/1?user=ada` above goes to `ws://10.0.0.7:9001/app/room/1?user=ada`); with
//! `--fixed` every browser goes to the upstream URL as given. The browser's first offered
//! subprotocol is chosen and offered upstream; an upstream that does not accept it closes the
//! pair with 1011.
//!
//! What a browser sends while its upstream is still connecting is queued (at most 64
//! messages or 1 MiB, past which the browser is closed with 1013) and sent once it opens.
//! When one side closes, the other is closed with the same code if it may be sent (1000,
//! 1001, 3000-4999; 1000 otherwise); an upstream that cannot be reached or refuses, or
//! drops without a close frame, closes its browser with 1011 and a reason that says why
//! (see [`UPSTREAM_FAILED`] for why not 1014).
//!
//! Backpressure: a slow reader on one side does not stop the loop from reading the other
//! side (the server pauses reading only the connection whose own send queue is full), so the
//! relay watches the far side's buffered amount itself and closes the pair with 1013 when it
//! passes [`SLOW_PEER_LIMIT`] instead of buffering without bound.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::process::ExitCode;

use wsloop::client::{ConnectOptions, Opened, Refused};
use wsloop::{
    CloseCode, Config, ConnId, Context, Error, Handler, Message, OwnedMessage, ReadyState, Request,
    SendStatus, Server, Upgrade,
};

/// Messages a browser may send before its upstream is open.
pub const MAX_PENDING_MESSAGES: usize = 64;
/// Bytes a browser may send before its upstream is open.
pub const MAX_PENDING_BYTES: usize = 1 << 20;
/// Bytes queued for one side past which the pair is closed with 1013: a relay that cannot
/// pause the fast side's socket must not hold an unbounded backlog for the slow one.
pub const SLOW_PEER_LIMIT: usize = 8 << 20;

/// The code a browser is closed with when its upstream cannot be reached, refuses, or
/// cannot speak the promised subprotocol: 1011, with a reason that starts "bad gateway:".
/// 1014 ("Bad Gateway") is in IANA's close code registry (and `CloseCode::is_sendable`
/// allows it), but endpoints written before it was registered may fail the connection on
/// it instead of reporting it: tungstenite 0.24 treats a received 1014 as a protocol error
/// and answers 1002, and Chromium's check of the codes a page may send stops at 1013. 1011
/// reaches every client as sent.
pub const UPSTREAM_FAILED: CloseCode = CloseCode::INTERNAL_ERROR;

/// Where the relay sends its browsers.
#[derive(Debug, Clone)]
pub struct Relay {
    /// The upstream URL, e.g. `ws://127.0.0.1:9001/`.
    pub upstream: String,
    /// Every browser goes to `upstream` as it is, instead of with its own path and query.
    pub fixed: bool,
}

/// What the relay keeps per connection: which side it is and who its peer is.
#[derive(Debug)]
pub enum Side {
    Browser {
        /// Its upstream connection, once `on_open` opened it.
        upstream: Option<ConnId>,
        /// The request target (path and query) to pass along.
        target: String,
        /// The subprotocol answered to the browser, to offer upstream.
        protocol: Option<String>,
        /// What it sent while the upstream was CONNECTING.
        pending: Pending,
    },
    Upstream {
        browser: ConnId,
        /// Why it failed, from `on_unexpected_response` / `on_error`, for the browser's
        /// close reason.
        failure: Option<String>,
    },
}

/// A bounded queue of messages waiting for an upstream to open.
#[derive(Debug, Default)]
pub struct Pending {
    messages: VecDeque<OwnedMessage>,
    bytes: usize,
}

impl Pending {
    /// Queues `msg`; false (and nothing queued) when the queue would pass its bounds.
    fn push(&mut self, msg: Message<'_>) -> bool {
        let len = msg.as_bytes().len();
        if self.messages.len() >= MAX_PENDING_MESSAGES || self.bytes + len > MAX_PENDING_BYTES {
            return false;
        }
        self.bytes += len;
        self.messages.push_back(match msg {
            Message::Text(text) => OwnedMessage::Text(text.to_owned()),
            Message::Binary(bytes) => OwnedMessage::Binary(bytes.to_vec()),
        });
        true
    }
}

impl Relay {
    /// The upstream URL for a browser that asked for `target`.
    fn upstream_url(&self, target: &str) -> String {
        if self.fixed {
            return self.upstream.clone();
        }
        // Only the base's path is extended: `ws://h/app/` + `/x?y` is `ws://h/app/x?y`. A
        // base with its own query (or a fragment) is used as it is.
        if self.upstream.contains(['?', '#']) {
            return self.upstream.clone();
        }
        let base = self.upstream.trim_end_matches('/');
        // `ws://host` has no path at all: the target supplies it.
        format!("{base}{target}")
    }

    /// Closes both sides of a pair (whichever are still open) with `code` and `reason`.
    fn close_pair(
        ctx: &mut Context<'_, Side>,
        a: ConnId,
        b: Option<ConnId>,
        code: CloseCode,
        reason: &str,
    ) {
        for id in std::iter::once(a).chain(b) {
            if matches!(
                ctx.ready_state(id),
                ReadyState::Open | ReadyState::Connecting
            ) && ctx.close(id, code, reason).is_err()
            {
                ctx.terminate(id);
            }
        }
    }

    /// Sends `msg` to `to` (the peer of `from`); a far side that reads too slowly, or a
    /// message that could not be queued, closes the pair with 1013.
    fn forward(ctx: &mut Context<'_, Side>, from: ConnId, to: ConnId, msg: Message<'_>) {
        let slow = match ctx.send(to, msg) {
            // Past the server's backpressure limit is fine for a while: the relay's own
            // limit below decides.
            Ok(SendStatus::Sent | SendStatus::Backpressure | SendStatus::Forwarded) => {
                ctx.buffered_amount(to) > SLOW_PEER_LIMIT
            }
            Ok(_) => true,
            // The far side is closing; its close reaches `from` through `on_close`.
            Err(_) => false,
        };
        if slow {
            Relay::close_pair(
                ctx,
                from,
                Some(to),
                CloseCode::TRY_AGAIN_LATER,
                "the other side reads too slowly",
            );
        }
    }
}

/// The code to pass on to the other side: the same if an endpoint may send it, else 1000.
fn pass_on(code: CloseCode) -> CloseCode {
    match code.0 {
        1000 | 1001 | 3000..=4999 => code,
        _ => CloseCode::NORMAL,
    }
}

/// An HTTP token (RFC 9110 section 5.6.2), as a subprotocol name must be.
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

impl Handler for Relay {
    type Data = Side;

    /// Only what can be checked before the upstream is asked: the rest is the upstream's to
    /// accept or refuse (its refusal closes the browser with 1011 and the upstream's status).
    fn on_upgrade(&mut self, req: &Request<'_, '_>) -> Upgrade<Side> {
        let target = req.target();
        if !target.starts_with('/') {
            return Upgrade::reject(400, "the request target must be a path");
        }
        let protocol = req.protocols().next().map(str::to_owned);
        if protocol.as_deref().is_some_and(|p| !is_token(p)) {
            return Upgrade::reject(400, "the subprotocol is not a token");
        }
        let upgrade = Upgrade::accept();
        let upgrade = match &protocol {
            Some(name) => upgrade.protocol(name),
            None => upgrade,
        };
        upgrade.data(Side::Browser {
            upstream: None,
            target: target.to_owned(),
            protocol,
            pending: Pending::default(),
        })
    }

    /// The browser is open: open its upstream now, in the same loop.
    /// An upstream opened: what its browser sent meanwhile goes first.
    fn on_open(&mut self, ctx: &mut Context<'_, Side>, id: ConnId) {
        let (target, protocol) = match ctx.data(id) {
            Some(Side::Browser {
                target, protocol, ..
            }) => (target, protocol),
            Some(Side::Upstream { .. }) => return Relay::flush_pending(ctx, id),
            None => return,
        };
        let url = self.upstream_url(target);
        let mut options = ConnectOptions::new();
        if let Some(name) = protocol {
            options = options.protocol(name);
        }
        match ctx.connect(&url, &options) {
            Ok(upstream) => {
                ctx.set_data(
                    upstream,
                    Side::Upstream {
                        browser: id,
                        failure: None,
                    },
                );
                if let Some(Side::Browser { upstream: slot, .. }) = ctx.data_mut(id) {
                    *slot = Some(upstream);
                }
            }
            Err(err) => {
                let reason = format!("bad gateway: {err}");
                let _ = ctx.close(id, UPSTREAM_FAILED, &reason);
            }
        }
    }

    /// The upstream's 101 came: it must have chosen the subprotocol promised to the browser.
    fn on_upgrade_response(&mut self, ctx: &mut Context<'_, Side>, id: ConnId, response: &Opened) {
        let Some(&Side::Upstream { browser, .. }) = ctx.data(id) else {
            return;
        };
        let promised = match ctx.data(browser) {
            Some(Side::Browser { protocol, .. }) => protocol.clone(),
            _ => None,
        };
        if promised.is_some() && response.protocol != promised {
            let reason = "bad gateway: the upstream did not accept the subprotocol";
            Relay::close_pair(ctx, browser, Some(id), UPSTREAM_FAILED, reason);
        }
    }

    fn on_message(&mut self, ctx: &mut Context<'_, Side>, id: ConnId, msg: Message<'_>) {
        match ctx.data(id) {
            Some(&Side::Upstream { browser, .. }) => Relay::forward(ctx, id, browser, msg),
            Some(&Side::Browser {
                upstream: Some(upstream),
                ..
            }) if ctx.ready_state(upstream) == ReadyState::Open => {
                Relay::forward(ctx, id, upstream, msg)
            }
            Some(&Side::Browser { upstream, .. }) => {
                // Not open yet: queue it. (An upstream that is closing will close this
                // browser; what it sends meanwhile is dropped, as a closing socket's would be.)
                let connecting =
                    upstream.is_some_and(|u| ctx.ready_state(u) == ReadyState::Connecting);
                if !connecting {
                    return;
                }
                let queued = match ctx.data_mut(id) {
                    Some(Side::Browser { pending, .. }) => pending.push(msg),
                    _ => false,
                };
                if !queued {
                    let reason = "try again later: too much sent before the upstream opened";
                    Relay::close_pair(ctx, id, upstream, CloseCode::TRY_AGAIN_LATER, reason);
                }
            }
            None => {}
        }
    }

    fn on_unexpected_response(
        &mut self,
        ctx: &mut Context<'_, Side>,
        id: ConnId,
        response: &Refused,
    ) {
        if let Some(Side::Upstream { failure, .. }) = ctx.data_mut(id) {
            *failure = Some(format!(
                "the upstream answered {} {}",
                response.status, response.reason
            ));
        }
    }

    fn on_error(&mut self, ctx: &mut Context<'_, Side>, id: ConnId, err: &Error) {
        if let Some(Side::Upstream { failure, .. }) = ctx.data_mut(id) {
            // The refusal's status says more than "handshake failed".
            failure.get_or_insert_with(|| err.to_string());
        }
    }

    fn on_close(&mut self, ctx: &mut Context<'_, Side>, id: ConnId, code: CloseCode, reason: &str) {
        match ctx.data(id) {
            // A CONNECTING upstream is abandoned (its own on_close follows).
            Some(&Side::Browser {
                upstream: Some(upstream),
                ..
            }) => Relay::close_pair(ctx, upstream, None, pass_on(code), reason),
            Some(Side::Browser { upstream: None, .. }) => {}
            Some(Side::Upstream { browser, failure }) => {
                let browser = *browser;
                let (code, reason) = match failure {
                    Some(why) => (UPSTREAM_FAILED, format!("bad gateway: {why}")),
                    None if code == CloseCode::ABNORMAL => (
                        CloseCode::INTERNAL_ERROR,
                        "the upstream connection dropped".to_owned(),
                    ),
                    None => (pass_on(code), reason.to_owned()),
                };
                Relay::close_pair(ctx, browser, None, code, &reason);
            }
            None => {}
        }
    }
}

impl Relay {
    /// Sends what `upstream`'s browser said while it was connecting, in order.
    fn flush_pending(ctx: &mut Context<'_, Side>, upstream: ConnId) {
        let Some(&Side::Upstream { browser, .. }) = ctx.data(upstream) else {
            return;
        };
        let pending = match ctx.data_mut(browser) {
            Some(Side::Browser { pending, .. }) => std::mem::take(pending),
            _ => Pending::default(),
        };
        for msg in &pending.messages {
            Relay::forward(ctx, browser, upstream, msg.as_message());
        }
    }
}

const USAGE: &str = "usage: relay [--listen ADDR] [--upstream URL] [--fixed]";

/// `--listen ADDR`, `--upstream URL`, `--fixed`.
fn parse_args() -> Result<(SocketAddr, Relay), String> {
    let mut listen: SocketAddr = "127.0.0.1:9010".parse().expect("a valid address");
    let mut relay = Relay {
        upstream: "ws://127.0.0.1:9001/".to_owned(),
        fixed: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--listen" => {
                let value = args.next().ok_or("--listen needs ADDR")?;
                listen = value
                    .parse()
                    .map_err(|err| format!("--listen {value}: {err}"))?;
            }
            "--upstream" => relay.upstream = args.next().ok_or("--upstream needs URL")?,
            "--fixed" => relay.fixed = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    // A bad URL would otherwise show only as every browser's close reason.
    wsloop::proto::url::WsUrl::parse(&relay.upstream)
        .map_err(|err| format!("--upstream {}: {err}", relay.upstream))?;
    Ok((listen, relay))
}

fn main() -> ExitCode {
    let (listen, relay) = match parse_args() {
        Ok(parsed) => parsed,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::FAILURE;
        }
    };
    let upstream = relay.upstream.clone();
    let config = Config {
        listen,
        ..Config::default()
    };
    let server = match Server::bind(config, relay) {
        Ok(server) => server,
        Err(err) => {
            eprintln!("error: bind {listen}: {err}");
            return ExitCode::FAILURE;
        }
    };
    println!("relay on ws://{} -> {upstream}", server.local_addr());
    match server.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}
