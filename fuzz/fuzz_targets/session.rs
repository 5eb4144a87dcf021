//! The server side of a whole connection, fed arbitrary bytes split at arbitrary points: the
//! opening handshake (`parse_request` over the bytes so far, as the reactor does), then
//! `Session::poll` in the server role over the rest, with an echo handler, permessage-deflate
//! when negotiated (inflate with the size limit, compress the echoes) and automatic pongs.
//!
//! Input layout: `flags`, `splits`, then `splits % 16` chunk-size bytes, then the stream.
//! - `flags` bit 0: start with the opening handshake (else the stream is frames from the
//!   first byte); bit 1: permessage-deflate configured on the server; bit 2: no context
//!   takeover either way; bit 3: 9-bit windows; bits 4-7: the maximum message size.
//! - `splits` bit 7: automatic pongs off.
//! - A chunk-size byte `b` is a read of `b + 1` bytes, or of `(b - 0xEF) * 4 KiB` from 0xF0
//!   up; the sizes repeat until the stream is used up.
//!
//! Checked on every input:
//! - nothing panics; every poll consumes at most its input and at least one byte, all of it
//!   when it returns no event; after a failure or a close frame no more events come and
//!   nothing more is written;
//! - every delivered message is within the maximum size;
//! - the events are the same as when the whole stream arrives in one read;
//! - the bytes the server wrote decode, in the client role, to exactly the replies owed:
//!   a pong per ping (while no close was sent), the echoes, one close frame last.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wsloop::proto::deflate::{negotiate, DeflateConfig, DeflateParams, SharedStreams};
use wsloop::proto::handshake::client::check_response;
use wsloop::proto::handshake::write_accept;
use wsloop::proto::{
    parse_request, Event, OpCode, Parsed, PerMessageDeflate, ProtocolError, Receiver, Role,
    Session, SessionEvent, Status, MAX_HEADERS,
};

/// The reactor's default handshake cap.
const MAX_HANDSHAKE_BYTES: usize = 8 << 10;

const MAX_SIZES: [usize; 16] = [
    0,
    1,
    2,
    3,
    4,
    125,
    126,
    127,
    1000,
    4096,
    65535,
    65536,
    65537,
    1 << 20,
    16 << 20,
    usize::MAX,
];

#[derive(Debug, Clone, PartialEq, Eq)]
enum Rec {
    Text(String),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    Close(Option<u16>, String),
    Failed(ProtocolError),
}

struct Setup {
    handshake: bool,
    deflate: Option<DeflateConfig>,
    max: usize,
    auto_pong: bool,
    chunks: Vec<usize>,
}

fn setup(data: &[u8]) -> Option<(Setup, &[u8])> {
    let (&flags, rest) = data.split_first()?;
    let (&splits, rest) = rest.split_first()?;
    let n = usize::from(splits % 16);
    if rest.len() < n {
        return None;
    }
    let (sizes, stream) = rest.split_at(n);
    let bits = if flags & 8 != 0 { 9 } else { 15 };
    let deflate = (flags & 2 != 0).then_some(DeflateConfig {
        server_no_context_takeover: flags & 4 != 0,
        client_no_context_takeover: flags & 4 != 0,
        server_max_window_bits: bits,
        client_max_window_bits: bits,
        // Compress every echo (`should_compress` still leaves empty ones alone), so the
        // compressor runs on every message.
        threshold: 0,
        level: 1,
    });
    let chunks = sizes
        .iter()
        .map(|&b| {
            if b >= 0xF0 {
                usize::from(b - 0xEF) * 4096
            } else {
                usize::from(b) + 1
            }
        })
        .collect();
    Some((
        Setup {
            handshake: flags & 1 != 0,
            deflate,
            max: MAX_SIZES[usize::from(flags >> 4)],
            auto_pong: splits & 0x80 == 0,
            chunks,
        },
        stream,
    ))
}

/// The stream cut into reads.
fn pieces(stream: &[u8], chunks: &[usize]) -> Vec<Vec<u8>> {
    if chunks.is_empty() {
        return vec![stream.to_vec()];
    }
    let mut out = Vec::new();
    let mut rest = stream;
    for &size in chunks.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (piece, tail) = rest.split_at(size.min(rest.len()));
        out.push(piece.to_vec());
        rest = tail;
    }
    out
}

/// The opening handshake as the reactor reads it. Returns the reads that follow the request
/// (the first one holding what came behind it in the same read) and the negotiated deflate
/// parameters, or `None` when the connection does not open.
fn handshake(
    reads: Vec<Vec<u8>>,
    config: Option<&DeflateConfig>,
) -> Option<(Vec<Vec<u8>>, Option<DeflateParams>)> {
    let mut request = Vec::new();
    let mut reads = reads.into_iter();
    for read in reads.by_ref() {
        request.extend_from_slice(&read);
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        match parse_request(&request, &mut headers) {
            Ok(Status::Partial) if request.len() > MAX_HANDSHAKE_BYTES => return None,
            Ok(Status::Partial) => continue,
            Err(_) => return None,
            Ok(Status::Complete((Parsed::Plain(_), len))) => {
                assert!(len <= request.len());
                return None;
            }
            Ok(Status::Complete((Parsed::Upgrade(req), len))) => {
                assert!(len <= request.len());
                if len > MAX_HANDSHAKE_BYTES {
                    return None;
                }
                let params = config.and_then(|c| negotiate(req.extension_offers(), c));
                let answer = params.map(|p| p.to_string());
                let mut response = Vec::new();
                write_accept(&mut response, req.key(), None, answer.as_deref(), &[]);
                let key = std::str::from_utf8(req.key()).expect("base64");
                assert_eq!(
                    check_response(&response, key),
                    Ok(Status::Complete(response.len()))
                );
                let mut rest = vec![request[len..].to_vec()];
                rest.extend(reads);
                return Some((rest, params));
            }
        }
    }
    None
}

/// What one run of the frame phase produced.
#[derive(Debug, PartialEq)]
struct Run {
    /// What the handler saw.
    events: Vec<Rec>,
    /// The replies the client is owed, in order.
    owed: Vec<Rec>,
    /// The bytes the server wrote.
    out: Vec<u8>,
}

fn owned_message(event: &Event<'_>) -> Option<Rec> {
    match event {
        Event::Text(text) => Some(Rec::Text(text.to_string())),
        Event::Binary(bytes) => Some(Rec::Binary(bytes.to_vec())),
        _ => None,
    }
}

/// The server's echo of a message, compressed when deflate is on, as `Core::send` writes it.
fn echo(
    session: &Session,
    pmd: Option<&mut PerMessageDeflate>,
    shared: &mut SharedStreams,
    opcode: OpCode,
    payload: &[u8],
    out: &mut Vec<u8>,
) -> bool {
    let mut compressed = Vec::new();
    let deflate = pmd.filter(|d| d.should_compress(payload.len()));
    let is_compressed = deflate.is_some();
    let body = match deflate {
        Some(d) => {
            d.deflate(payload, &mut compressed, shared);
            &compressed[..]
        }
        None => payload,
    };
    match session.header(opcode, body.len(), is_compressed) {
        Ok((header, len)) => {
            out.extend_from_slice(&header[..len]);
            out.extend_from_slice(body);
            true
        }
        Err(_) => false,
    }
}

fn run(reads: &[Vec<u8>], setup: &Setup, params: Option<DeflateParams>) -> Run {
    let config = setup.deflate.unwrap_or_default();
    let mut session = Session::new(Role::Server, setup.max);
    session.set_auto_pong(setup.auto_pong);
    let mut pmd = params.map(|p| PerMessageDeflate::new(Role::Server, p, &config));
    session.receiver_mut().allow_compressed(pmd.is_some());
    let mut shared = SharedStreams::default();
    let mut run = Run {
        events: Vec::new(),
        owed: Vec::new(),
        out: Vec::new(),
    };
    'reads: for read in reads {
        let mut buf = read.clone();
        let mut pos = 0;
        while pos < buf.len() {
            let close_was_sent = session.close_sent();
            let left = buf.len() - pos;
            let (used, event) = session.poll(&mut buf[pos..], &mut run.out);
            assert!(used <= left, "consumed {used} of {left}");
            assert!(used > 0, "a poll made no progress");
            if event.is_none() {
                assert_eq!(used, left, "no event, yet input left over");
            }
            pos += used;
            let failure = match event {
                None => None,
                Some(SessionEvent::Failed(err)) => Some(err),
                Some(SessionEvent::Frame(Event::Compressed { text, data })) => {
                    let pmd = pmd.as_mut().expect("compressed only when negotiated");
                    match pmd.inflate_message(text, &data, setup.max, &mut shared) {
                        Ok(event) => {
                            let rec = owned_message(&event).expect("a message");
                            deliver_message(
                                &mut run,
                                &session,
                                Some(pmd),
                                &mut shared,
                                rec,
                                setup.max,
                            );
                            None
                        }
                        Err(err) => {
                            session.fail(&mut run.out, err);
                            Some(err)
                        }
                    }
                }
                Some(SessionEvent::Frame(event)) => {
                    match &event {
                        Event::Text(_) | Event::Binary(_) => {
                            let rec = owned_message(&event).unwrap();
                            deliver_message(
                                &mut run,
                                &session,
                                pmd.as_mut(),
                                &mut shared,
                                rec,
                                setup.max,
                            );
                        }
                        Event::Ping(payload) => {
                            run.events.push(Rec::Ping(payload.to_vec()));
                            if setup.auto_pong && !close_was_sent {
                                run.owed.push(Rec::Pong(payload.to_vec()));
                            }
                        }
                        Event::Pong(payload) => run.events.push(Rec::Pong(payload.to_vec())),
                        Event::Close(code, reason) => {
                            assert!(!session.wants_input());
                            let code = code.map(|c| c.0);
                            run.events.push(Rec::Close(code, reason.to_string()));
                            if !close_was_sent {
                                run.owed.push(Rec::Close(code, String::new()));
                            }
                        }
                        Event::Compressed { .. } => unreachable!(),
                    }
                    None
                }
            };
            if let Some(err) = failure {
                assert!(!session.wants_input());
                run.events.push(Rec::Failed(err));
                if !close_was_sent {
                    run.owed.push(Rec::Close(
                        Some(err.close_code().0),
                        err.reason().to_owned(),
                    ));
                }
            }
            if !session.wants_input() {
                break 'reads;
            }
        }
    }
    if !session.wants_input() {
        // The reactor stops reading; a session asked anyway must stay silent.
        let before = run.out.len();
        let mut more = [0x89u8, 0x80, 1, 2, 3, 4];
        let (used, event) = session.poll(&mut more, &mut run.out);
        assert_eq!((used, event), (6, None));
        assert_eq!(run.out.len(), before);
    }
    run
}

fn deliver_message(
    run: &mut Run,
    session: &Session,
    pmd: Option<&mut PerMessageDeflate>,
    shared: &mut SharedStreams,
    rec: Rec,
    max: usize,
) {
    let (opcode, payload) = match &rec {
        Rec::Text(text) => (OpCode::Text, text.as_bytes()),
        Rec::Binary(bytes) => (OpCode::Binary, &bytes[..]),
        _ => unreachable!(),
    };
    assert!(
        payload.len() <= max,
        "{} bytes delivered over the limit {max}",
        payload.len()
    );
    if echo(session, pmd, shared, opcode, payload, &mut run.out) {
        run.owed.push(rec.clone());
    }
    run.events.push(rec);
}

/// Decodes what the server wrote as the client does and returns it.
fn client_view(out: &[u8], params: Option<DeflateParams>, config: &DeflateConfig) -> Vec<Rec> {
    let mut rx = Receiver::new(Role::Client, usize::MAX);
    rx.allow_compressed(params.is_some());
    let mut pmd = params.map(|p| PerMessageDeflate::new(Role::Client, p, config));
    let mut shared = SharedStreams::default();
    let mut buf = out.to_vec();
    let mut pos = 0;
    let mut seen = Vec::new();
    while pos < buf.len() {
        let decoded = rx
            .poll(&mut buf[pos..])
            .unwrap_or_else(|err| panic!("the server wrote bytes a client cannot read: {err}"));
        pos += decoded.consumed;
        let Some(event) = decoded.event else { break };
        seen.push(match event {
            Event::Text(t) => Rec::Text(t.into_owned()),
            Event::Binary(b) => Rec::Binary(b.into_owned()),
            Event::Ping(p) => Rec::Ping(p.into_owned()),
            Event::Pong(p) => Rec::Pong(p.into_owned()),
            Event::Close(code, reason) => Rec::Close(code.map(|c| c.0), reason.into_owned()),
            Event::Compressed { text, data } => {
                let pmd = pmd.as_mut().expect("negotiated");
                let event = pmd
                    .inflate_message(text, &data, usize::MAX, &mut shared)
                    .unwrap_or_else(|err| panic!("an echo does not inflate: {err}"));
                owned_message(&event).unwrap()
            }
        });
    }
    assert_eq!(pos, buf.len(), "the server's output ends inside a frame");
    assert!(
        !rx.is_mid_message(),
        "the server's output ends inside a message"
    );
    seen
}

fuzz_target!(|data: &[u8]| {
    let Some((setup, stream)) = setup(data) else {
        return;
    };
    let reads = pieces(stream, &setup.chunks);
    let (reads, params) = if setup.handshake {
        match handshake(reads, setup.deflate.as_ref()) {
            Some(opened) => opened,
            None => return,
        }
    } else {
        let params = setup
            .deflate
            .map(|c| negotiate(["permessage-deflate"], &c).unwrap());
        (reads, params)
    };

    let chunked = run(&reads, &setup, params);
    let whole = run(&[reads.concat()], &setup, params);
    assert_eq!(
        chunked.events, whole.events,
        "events depend on where reads end"
    );
    assert_eq!(chunked.owed, whole.owed);
    assert!(
        chunked.out == whole.out,
        "output depends on where reads end"
    );

    let config = setup.deflate.unwrap_or_default();
    let seen = client_view(&chunked.out, params, &config);
    assert_eq!(
        seen, chunked.owed,
        "the client does not see the replies owed"
    );
    let closes = seen.iter().filter(|r| matches!(r, Rec::Close(..))).count();
    assert!(closes <= 1);
    if closes == 1 {
        assert!(
            matches!(seen.last(), Some(Rec::Close(..))),
            "frames after the close"
        );
    }
});
