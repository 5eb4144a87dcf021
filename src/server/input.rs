//! What the loop does with bytes it has read: the opening handshake (the server reading a
//! request, or an outgoing connection reading the answer), then frames handed to
//! the handler as borrowed messages.

use std::time::Instant;

use super::access::Closer;
use super::app::App;
use super::conn::lookup;
use super::context::Context;
use super::core::Core;
use super::stats;
use super::token::ConnId;
use crate::client::OpenError;
use crate::handler::{Error, Handler, Message, Upgrade};
use crate::proto::handshake::{write_http_response, write_response};
use crate::proto::{
    parse_request, CloseCode, Event, OpCode, Parsed, ReadyState, SessionEvent, Status, MAX_HEADERS,
};

/// Handles bytes just read from connection `id`. `input` is the loop's receive buffer:
/// payloads are unmasked in it and lent to the handler.
pub(crate) fn on_input<H: Handler>(
    core: &mut Core,
    app: &mut App<H>,
    id: ConnId,
    input: &mut [u8],
) {
    let Some(conn) = core.get_mut(id) else { return };
    if conn.ws.is_client() && conn.ws.is_handshaking() {
        on_response_bytes(core, app, id, input);
    } else if conn.ws.is_handshaking() {
        if conn.ws.has_partial_request() {
            let mut request = conn.ws.take_request();
            request.extend_from_slice(input);
            on_request_bytes(core, app, id, &mut request);
        } else {
            on_request_bytes(core, app, id, input);
        }
    } else {
        // After the end, whatever arrives is read only to see the peer's EOF.
        on_frames(core, app, id, input);
    }
}

/// Parses the request bytes received so far and answers them when complete.
fn on_request_bytes<H: Handler>(core: &mut Core, app: &mut App<H>, id: ConnId, bytes: &mut [u8]) {
    // Copied (once per wss:// handshake) so the request can be lent while the core is.
    let server_name = core
        .get(id)
        .and_then(|conn| conn.tls.as_ref()?.server_name())
        .map(str::to_owned);
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let (mut parsed, len) = match parse_request(bytes, &mut headers) {
        Ok(Status::Complete(parsed)) => parsed,
        Ok(Status::Partial) => {
            if bytes.len() > core.config.max_handshake_bytes {
                respond(core, id, 431, &[], b"request headers too large\n");
            } else if let Some(conn) = core.get_mut(id) {
                // Keep the bytes until the rest of the request arrives.
                conn.ws.keep_request(bytes);
            }
            return;
        }
        Err(err) => {
            let mut out = Vec::new();
            err.write_response(&mut out);
            log::debug!("{id}: handshake refused: {err}");
            respond_raw(core, id, err.status(), &out);
            return;
        }
    };
    if len > core.config.max_handshake_bytes {
        respond(core, id, 431, &[], b"request headers too large\n");
        return;
    }
    match &mut parsed {
        Parsed::Upgrade(request) | Parsed::Plain(request) => {
            request.set_server_name(server_name.as_deref())
        }
    }
    if let Some(log) = &mut core.access {
        let path = match &parsed {
            Parsed::Upgrade(request) | Parsed::Plain(request) => request.path(),
        };
        log.requested(id.index(), path);
    }
    let request = match parsed {
        Parsed::Upgrade(request) => request,
        Parsed::Plain(request) => {
            let response = app
                .handler
                .on_request(&mut Context::new(core, &mut app.data), &request);
            let mut out = Vec::new();
            let status = if (200..=599).contains(&response.status) {
                // RFC 9110 section 9.3.2: HEAD is answered like GET, without the content.
                let with_body = request.method() != "HEAD";
                write_http_response(
                    &mut out,
                    response.status,
                    &response.headers,
                    &response.body,
                    with_body,
                );
                response.status
            } else {
                log::error!(
                    "{id}: on_request answered status {}, which is not a final status \
                     (200-599): answering 500",
                    response.status
                );
                write_response(&mut out, 500, &[], b"internal server error\n");
                500
            };
            respond_raw(core, id, status, &out);
            return;
        }
    };
    let (protocol, extra_headers, topics, data) = match app.handler.on_upgrade(&request) {
        Upgrade::Accept {
            protocol,
            headers,
            topics,
            data,
        } => (protocol, headers, topics, data),
        Upgrade::Reject {
            status,
            headers,
            body,
        } if (400..=599).contains(&status) => {
            let mut out = Vec::new();
            let mut headers = headers;
            if !headers
                .iter()
                .any(|(name, _)| name.eq_ignore_ascii_case("content-type"))
            {
                headers.push(("Content-Type".into(), "text/plain; charset=utf-8".into()));
            }
            write_http_response(&mut out, status, &headers, body.as_bytes(), true);
            respond_raw(core, id, status, &out);
            return;
        }
        Upgrade::Reject { status, .. } => {
            log::error!(
                "{id}: on_upgrade rejected with status {status}, which is not an error status \
                 (400-599): answering 500"
            );
            respond(core, id, 500, &[], b"internal server error\n");
            return;
        }
    };
    // RFC 6455 section 4.2.2: the subprotocol answered must be "one of the values provided
    // by the client" in Sec-WebSocket-Protocol.
    if let Some(chosen) = &protocol {
        if !request.protocols().any(|offered| offered == chosen) {
            log::error!(
                "{id}: on_upgrade chose subprotocol {chosen:?}, which the client did not offer: \
                 answering 500"
            );
            respond(core, id, 500, &[], b"internal server error\n");
            return;
        }
    }
    let Some(accepted) = core.accept(id, &request, protocol.as_deref(), &extra_headers) else {
        return;
    };
    core.stats.handshake_ns.observe_duration(accepted.handshake);
    core.stats.upgrades.inc();
    if let Some(log) = &mut core.access {
        log.answered(id.index(), 101, protocol.as_deref());
    }
    core.set_idle_deadline(id);
    core.mark_dirty(id);
    for topic in &topics {
        core.subscribe(id, topic);
    }
    app.data.set(id.index(), data);
    app.handler
        .on_open(&mut Context::new(core, &mut app.data), id);
    // A client may send its first frames right behind the request.
    if len < bytes.len() {
        on_frames(core, app, id, &mut bytes[len..]);
    }
}

/// Client: reads the server's answer; once it is a 101, the connection opens and the bytes
/// after it are its first frames.
fn on_response_bytes<H: Handler>(core: &mut Core, app: &mut App<H>, id: ConnId, bytes: &[u8]) {
    let Some(conn) = core.get_mut(id) else { return };
    let (opened, mut rest) = match conn.ws.handle_response(bytes, Instant::now()) {
        Ok(Status::Partial) => return,
        Ok(Status::Complete(answer)) => answer,
        Err(err) => return refused(core, app, id, err),
    };
    conn.opened = true;
    core.stats.handshake_ns.observe_duration(opened.handshake);
    core.stats.upgrades.inc();
    core.set_idle_deadline(id);
    // Frames sent while CONNECTING were refused, but the request may still be queued.
    core.mark_dirty(id);
    let App { handler, data } = app;
    handler.on_upgrade_response(&mut Context::new(core, data), id, &opened);
    // on_upgrade_response may have closed it already.
    if core.get(id).map(|c| c.ready_state()) != Some(ReadyState::Open) {
        return;
    }
    handler.on_open(&mut Context::new(core, data), id);
    if !rest.is_empty() {
        on_frames(core, app, id, &mut rest);
    }
}

/// Client: the handshake failed with `err`: the application hears of an answer other than
/// 101, then of the error; the connection is dropped at the end of the turn, with `on_close`.
pub(crate) fn refused<H: Handler>(core: &mut Core, app: &mut App<H>, id: ConnId, err: OpenError) {
    log::debug!("{id}: opening handshake failed: {err}");
    if let OpenError::Refused(response) = &err {
        app.handler
            .on_unexpected_response(&mut Context::new(core, &mut app.data), id, response);
    }
    if let Some((conn, pool)) = core.conn_and_pool(id) {
        conn.out.release(pool);
    }
    core.failed.push((id, Error::Handshake(err)));
}

/// Queues a complete HTTP answer and ends the connection after it.
fn respond(core: &mut Core, id: ConnId, status: u16, headers: &[(&str, &str)], body: &[u8]) {
    let mut out = Vec::new();
    write_response(&mut out, status, headers, body);
    respond_raw(core, id, status, &out);
}

/// Queues `response`, a complete HTTP answer with `status`, and ends the connection after it.
fn respond_raw(core: &mut Core, id: ConnId, status: u16, response: &[u8]) {
    core.stats.http_response(status);
    if let Some(log) = &mut core.access {
        log.answered(id.index(), status, None);
    }
    if let Some((conn, pool)) = core.conn_and_pool(id) {
        conn.out.writer(pool).extend_from_slice(response);
        core.finish(id);
    }
}

/// Decodes frames from `input` and delivers their events.
fn on_frames<H: Handler>(core: &mut Core, app: &mut App<H>, id: ConnId, input: &mut [u8]) {
    let mut pos = 0;
    core.set_idle_deadline(id);
    while pos < input.len() {
        let Some(conn) = lookup(&mut core.conns, id) else {
            return;
        };
        let queued = conn.out.len();
        // Protocol replies (pongs, close echoes) go straight into the send queue.
        let (used, event) = conn
            .ws
            .poll(&mut input[pos..], conn.out.raw_buf(), &mut core.zlib);
        let grown = conn.out.len() - queued;
        pos += used;
        if grown > 0 {
            count_reply(core, id, event.as_ref(), grown);
            core.mark_dirty(id);
        }
        if let Some(event) = event {
            deliver(core, app, id, event);
        }
        let done = core
            .get(id)
            .is_some_and(|conn| conn.ws.session().is_some_and(|s| !s.wants_input()));
        if done {
            core.finish(id);
            return;
        }
    }
}

/// Counts the reply the protocol queued by itself for `event`: a pong to a ping, the echo of
/// a close, the close that fails the connection. `grown` is the frame's size, header
/// included.
fn count_reply(core: &mut Core, id: ConnId, event: Option<&SessionEvent<'_>>, grown: usize) {
    let header_len = core.get(id).map_or(2, |conn| conn.ws.control_header_len());
    let grown = grown - header_len;
    let (opcode, failing) = match event {
        Some(SessionEvent::Frame(Event::Ping(_))) => (OpCode::Pong, false),
        Some(SessionEvent::Frame(Event::Close(..))) => (OpCode::Close, false),
        _ => (OpCode::Close, true),
    };
    core.sent.record(opcode, grown);
    if let Some(log) = &mut core.access {
        log.sent(id.index(), grown);
        if failing {
            log.closing(id.index(), Closer::Server);
        }
    }
}

/// Hands one event to the handler, counting it first.
fn deliver<H: Handler>(core: &mut Core, app: &mut App<H>, id: ConnId, event: SessionEvent<'_>) {
    let App { handler, data } = app;
    match event {
        SessionEvent::Frame(Event::Text(text)) => {
            count_received(core, id, OpCode::Text, text.len());
            handler.on_message(&mut Context::new(core, data), id, Message::Text(&text));
        }
        SessionEvent::Frame(Event::Binary(bytes)) => {
            count_received(core, id, OpCode::Binary, bytes.len());
            handler.on_message(&mut Context::new(core, data), id, Message::Binary(&bytes));
        }
        SessionEvent::Frame(Event::Ping(payload)) => {
            count_received(core, id, OpCode::Ping, payload.len());
            handler.on_ping(&mut Context::new(core, data), id, &payload);
        }
        SessionEvent::Frame(Event::Pong(payload)) => {
            count_received(core, id, OpCode::Pong, payload.len());
            handler.on_pong(&mut Context::new(core, data), id, &payload);
        }
        SessionEvent::Frame(Event::Close(code, reason)) => {
            count_received(
                core,
                id,
                OpCode::Close,
                code.map_or(0, |_| 2 + reason.len()),
            );
            if let Some(log) = &mut core.access {
                // Unless the server's close went first, this one starts the closing handshake.
                log.closing(id.index(), Closer::Peer);
            }
            let code = code.unwrap_or(CloseCode::NO_STATUS);
            if core.take_close_report(id, code) {
                handler.on_close(&mut Context::new(core, data), id, code, &reason);
            }
        }
        // `Connection::poll` hands compressed messages over inflated.
        SessionEvent::Frame(Event::Compressed { .. }) => {}
        SessionEvent::Failed(err) => {
            log::debug!("{id}: failing the connection: {err}");
            let error = Error::Protocol(err);
            core.stats.errors[stats::error_slot(&error)].inc();
            handler.on_error(&mut Context::new(core, data), id, &error);
            if core.take_close_report(id, CloseCode::ABNORMAL) {
                let reason = err.reason();
                handler.on_close(
                    &mut Context::new(core, data),
                    id,
                    CloseCode::ABNORMAL,
                    reason,
                );
            }
        }
    }
}

/// Counts a message or control frame received, of `len` payload bytes.
#[inline]
fn count_received(core: &mut Core, id: ConnId, opcode: OpCode, len: usize) {
    core.received.record(opcode, len);
    if let Some(log) = &mut core.access {
        log.received(id.index(), len);
    }
}
