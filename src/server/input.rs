//! What the loop does with bytes it has read: the opening handshake, then frames handed to
//! the handler as borrowed messages.

use super::access::Closer;
use super::app::App;
use super::conn::{lookup, Stage};
use super::context::Context;
use super::core::Core;
use super::stats;
use super::token::ConnId;
use crate::handler::{Error, Handler, Message, Upgrade};
use crate::proto::deflate::{negotiate, PerMessageDeflate};
use crate::proto::handshake::{write_accept, write_http_response, write_response};
use crate::proto::{
    parse_request, CloseCode, Event, OpCode, Parsed, ProtocolError, Role, Session, SessionEvent,
    Status, MAX_HEADERS,
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
    match &mut conn.stage {
        Stage::Handshake { request, .. } if request.is_empty() => {
            on_request_bytes(core, app, id, input)
        }
        Stage::Handshake { request, .. } => {
            let mut request = std::mem::take(request);
            request.extend_from_slice(input);
            on_request_bytes(core, app, id, &mut request);
        }
        Stage::Open(_) => on_frames(core, app, id, input),
        // Whatever arrives after the end is read only to see the peer's EOF.
        Stage::Finishing => {}
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
                if let Stage::Handshake { request, .. } = &mut conn.stage {
                    *request = bytes.to_vec();
                }
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
    let (max_message_size, auto_pong) = (core.config.max_message_size, core.config.auto_pong);
    // RFC 7692 section 5: accept the first offer the server supports, or none.
    let deflate = core.config.deflate.as_ref().and_then(|config| {
        let params = negotiate(request.extension_offers(), config)?;
        let answer = params.to_string();
        Some((answer, PerMessageDeflate::new(Role::Server, params, config)))
    });
    let Some((conn, pool)) = core.conn_and_pool(id) else {
        return;
    };
    let mut session = Session::new(Role::Server, max_message_size);
    session.set_auto_pong(auto_pong);
    session.receiver_mut().allow_compressed(deflate.is_some());
    write_accept(
        conn.out.writer(pool),
        request.key(),
        protocol.as_deref(),
        deflate.as_ref().map(|(answer, _)| answer.as_str()),
        &extra_headers,
    );
    conn.deflate = deflate.map(|(_, state)| Box::new(state));
    let handshake = std::mem::replace(&mut conn.stage, Stage::Open(session));
    conn.opened = true;
    if let Stage::Handshake { accepted, .. } = handshake {
        core.stats.handshake_ns.observe_duration(accepted.elapsed());
    }
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
        let Some(conn) = core.get_mut(id) else { return };
        let Stage::Open(session) = &mut conn.stage else {
            return;
        };
        let queued = conn.out.len();
        // Protocol replies (pongs, close echoes) go straight into the send queue.
        let (used, event) = session.poll(&mut input[pos..], conn.out.raw_buf());
        let grown = conn.out.len() - queued;
        pos += used;
        if grown > 0 {
            count_reply(core, id, event.as_ref(), grown);
            core.mark_dirty(id);
        }
        if let Some(event) = event {
            deliver(core, app, id, event);
        }
        let done = core.get(id).is_some_and(|conn| match &conn.stage {
            Stage::Open(session) => !session.wants_input(),
            _ => false,
        });
        if done {
            core.finish(id);
            return;
        }
    }
}

/// Counts the reply the protocol queued by itself for `event`: a pong to a ping, the echo of
/// a close, the close that fails the connection. `grown` is the frame's size; a server's
/// control frame has a 2-byte header.
fn count_reply(core: &mut Core, id: ConnId, event: Option<&SessionEvent<'_>>, grown: usize) {
    let (opcode, failing) = match event {
        Some(SessionEvent::Frame(Event::Ping(_))) => (OpCode::Pong, false),
        Some(SessionEvent::Frame(Event::Close(..))) => (OpCode::Close, false),
        _ => (OpCode::Close, true),
    };
    core.sent.record(opcode, grown - 2);
    if let Some(log) = &mut core.access {
        log.sent(id.index(), grown - 2);
        if failing {
            log.closing(id.index(), Closer::Server);
        }
    }
}

/// Inflates a compressed message (RFC 7692 section 7.2.2); a message that does not inflate,
/// or inflates past the size limit, fails the connection.
fn inflate(core: &mut Core, id: ConnId, text: bool, data: &[u8]) -> SessionEvent<'static> {
    let max_message_size = core.config.max_message_size;
    let Some(conn) = lookup(&mut core.conns, id) else {
        return SessionEvent::Failed(ProtocolError::BadCompression);
    };
    let Stage::Open(session) = &mut conn.stage else {
        return SessionEvent::Failed(ProtocolError::BadCompression);
    };
    // The receiver yields compressed messages only when deflate was negotiated.
    let result = match conn.deflate.as_mut() {
        Some(deflate) => deflate.inflate_message(text, data, max_message_size, &mut core.zlib),
        None => Err(ProtocolError::ReservedBits),
    };
    match result {
        Ok(event) => SessionEvent::Frame(event),
        Err(err) => {
            let queued = conn.out.len();
            session.fail(conn.out.raw_buf(), err);
            let grown = conn.out.len() - queued;
            if grown > 0 {
                count_reply(core, id, None, grown);
            }
            core.mark_dirty(id);
            SessionEvent::Failed(err)
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
        // Counted once inflated, at its own size.
        SessionEvent::Frame(Event::Compressed { text, data }) => {
            let event = inflate(core, id, text, &data);
            deliver(core, app, id, event);
        }
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
