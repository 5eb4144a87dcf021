//! Property tests of the codec: any sequence of frames, encoded, cut into reads at arbitrary
//! points and decoded, gives back exactly what was sent, in either role; the verdict on a
//! damaged stream does not depend on where the reads end; UTF-8 split anywhere inside text
//! fragments is accepted exactly when the text is valid; compressed messages round-trip.
//!
//! The seed is fixed, so every run checks the same cases (a failure prints the shrunk case;
//! to explore new ones, change `SEED`).

use std::borrow::Cow;

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, RngSeed};
use wsloop::proto::deflate::{negotiate, DeflateConfig, SharedStreams};
use wsloop::proto::{
    encode_frame, CloseCode, Event, FrameHeader, FrameSpec, OpCode, PerMessageDeflate,
    ProtocolError, Receiver, Role, Session, SessionEvent, Status, Utf8Stream, MAX_HEADER_LEN, RSV1,
};

const SEED: u64 = 0x5eed_2026_0006;

fn config(cases: u32) -> Config {
    Config {
        cases,
        rng_seed: RngSeed::Fixed(SEED),
        failure_persistence: None,
        ..Config::default()
    }
}

/// An event with its payload owned, to compare.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Ev {
    Text(String),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    Close(Option<u16>, String),
    Compressed(bool, Vec<u8>),
}

fn owned(event: Event<'_>) -> Ev {
    match event {
        Event::Text(t) => Ev::Text(t.into_owned()),
        Event::Binary(b) => Ev::Binary(b.into_owned()),
        Event::Ping(p) => Ev::Ping(p.into_owned()),
        Event::Pong(p) => Ev::Pong(p.into_owned()),
        Event::Close(code, reason) => Ev::Close(code.map(|c| c.0), reason.into_owned()),
        Event::Compressed { text, data } => Ev::Compressed(text, data.into_owned()),
    }
}

/// One thing sent: a control frame, or a data message cut into fragments with control frames
/// between them.
#[derive(Debug, Clone)]
enum Item {
    Control {
        opcode: OpCode,
        payload: Vec<u8>,
    },
    Message {
        text: bool,
        payload: Vec<u8>,
        /// Where the fragments end (byte offsets into the payload, sorted).
        cuts: Vec<usize>,
        /// A control frame after fragment i, when `interleaved[i]` is `Some`.
        interleaved: Vec<Option<(OpCode, Vec<u8>)>>,
    },
}

fn control() -> impl Strategy<Value = (OpCode, Vec<u8>)> {
    (
        prop_oneof![Just(OpCode::Ping), Just(OpCode::Pong)],
        vec(any::<u8>(), 0..=125),
    )
}

/// Payloads of every length form: up to 125, 16-bit, and (rarely) 64-bit lengths.
fn binary_payload() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        8 => vec(any::<u8>(), 0..200),
        2 => vec(any::<u8>(), 126..3000),
        1 => (65_536usize..70_000, any::<u8>())
            .prop_map(|(len, seed)| (0..len).map(|i| (i as u8).wrapping_mul(31) ^ seed).collect()),
    ]
}

fn text_payload() -> impl Strategy<Value = Vec<u8>> {
    vec(any::<char>(), 0..80).prop_map(|chars| chars.into_iter().collect::<String>().into_bytes())
}

fn message() -> impl Strategy<Value = Item> {
    (any::<bool>())
        .prop_flat_map(|text| {
            let payload = if text {
                text_payload().boxed()
            } else {
                binary_payload().boxed()
            };
            (
                Just(text),
                payload,
                vec(any::<Index>(), 0..4),
                vec(proptest::option::weighted(0.3, control()), 4),
            )
        })
        .prop_map(|(text, payload, cut_at, interleaved)| {
            let mut cuts: Vec<usize> = cut_at.iter().map(|i| i.index(payload.len() + 1)).collect();
            cuts.sort_unstable();
            Item::Message {
                text,
                payload,
                cuts,
                interleaved,
            }
        })
}

fn item() -> impl Strategy<Value = Item> {
    prop_oneof![
        1 => control().prop_map(|(opcode, payload)| Item::Control { opcode, payload }),
        3 => message(),
    ]
}

/// A close frame's code and reason (`None`: an empty close frame).
fn close() -> impl Strategy<Value = Option<(u16, String)>> {
    proptest::option::of((
        prop_oneof![Just(1000u16), Just(1001), Just(1011), 3000u16..5000],
        vec(any::<char>(), 0..30).prop_map(|c| {
            let mut s: String = c.into_iter().collect();
            while s.len() > 123 {
                s.pop();
            }
            s
        }),
    ))
}

/// Encodes the items (and a final close) as `role`'s peer sends them, returning the bytes
/// and the events the receiver must produce.
fn encode(
    items: &[Item],
    close: &Option<Option<(u16, String)>>,
    mask: Option<[u8; 4]>,
) -> (Vec<u8>, Vec<Ev>) {
    let mut wire = Vec::new();
    let mut expected = Vec::new();
    let mut n = 0u32;
    let mut spec = |fin: bool, opcode: OpCode| {
        n = n.wrapping_add(0x9e37_79b9);
        FrameSpec {
            fin,
            rsv: 0,
            opcode,
            mask: mask.map(|m| (u32::from_ne_bytes(m) ^ n).to_ne_bytes()),
        }
    };
    let control_event = |opcode: OpCode, payload: &[u8]| match opcode {
        OpCode::Ping => Ev::Ping(payload.to_vec()),
        _ => Ev::Pong(payload.to_vec()),
    };
    for item in items {
        match item {
            Item::Control { opcode, payload } => {
                encode_frame(&mut wire, spec(true, *opcode), payload);
                expected.push(control_event(*opcode, payload));
            }
            Item::Message {
                text,
                payload,
                cuts,
                interleaved,
            } => {
                let mut start = 0;
                let ends: Vec<usize> = cuts.iter().copied().chain([payload.len()]).collect();
                for (i, &end) in ends.iter().enumerate() {
                    let last = i + 1 == ends.len();
                    let opcode = match (i, text) {
                        (0, true) => OpCode::Text,
                        (0, false) => OpCode::Binary,
                        _ => OpCode::Continuation,
                    };
                    encode_frame(&mut wire, spec(last, opcode), &payload[start..end]);
                    start = end;
                    if !last {
                        if let Some(Some((op, p))) = interleaved.get(i) {
                            encode_frame(&mut wire, spec(true, *op), p);
                            expected.push(control_event(*op, p));
                        }
                    }
                }
                expected.push(if *text {
                    Ev::Text(String::from_utf8(payload.clone()).unwrap())
                } else {
                    Ev::Binary(payload.clone())
                });
            }
        }
    }
    if let Some(close) = close {
        let mut payload = Vec::new();
        if let Some((code, reason)) = close {
            payload.extend_from_slice(&code.to_be_bytes());
            payload.extend_from_slice(reason.as_bytes());
        }
        encode_frame(&mut wire, spec(true, OpCode::Close), &payload);
        expected.push(Ev::Close(
            close.as_ref().map(|(c, _)| *c),
            close.as_ref().map_or(String::new(), |(_, r)| r.clone()),
        ));
    }
    (wire, expected)
}

/// The stream cut at the given points (sorted, duplicates give empty reads).
fn cut<'a>(bytes: &'a [u8], at: &[Index]) -> Vec<&'a [u8]> {
    let mut points: Vec<usize> = at.iter().map(|i| i.index(bytes.len() + 1)).collect();
    points.sort_unstable();
    let mut pieces = Vec::new();
    let mut start = 0;
    for p in points {
        pieces.push(&bytes[start..p]);
        start = p;
    }
    pieces.push(&bytes[start..]);
    pieces
}

/// Feeds the reads to a receiver as the reactor does (each read in its own buffer, events
/// drained before the next read). Returns the events and the error that stopped it, if any.
fn decode(rx: &mut Receiver, reads: &[&[u8]]) -> (Vec<Ev>, Option<ProtocolError>) {
    let mut events = Vec::new();
    for read in reads {
        let mut buf = read.to_vec();
        let mut pos = 0;
        loop {
            let left = buf.len() - pos;
            match rx.poll(&mut buf[pos..]) {
                Ok(decoded) => {
                    assert!(decoded.consumed <= left);
                    pos += decoded.consumed;
                    match decoded.event {
                        Some(event) => events.push(owned(event)),
                        None => {
                            assert_eq!(pos, buf.len(), "no event but input left");
                            break;
                        }
                    }
                }
                Err(err) => return (events, Some(err)),
            }
        }
    }
    (events, None)
}

proptest! {
    #![proptest_config(config(192))]

    /// Client frames (masked, a fresh key each) to a server-role receiver, cut anywhere.
    #[test]
    fn client_frames_round_trip_through_any_reads(
        items in vec(item(), 0..8),
        close in proptest::option::of(close()),
        key in any::<[u8; 4]>(),
        at in vec(any::<Index>(), 0..12),
    ) {
        let (wire, expected) = encode(&items, &close, Some(key));
        let mut rx = Receiver::new(Role::Server, 1 << 20);
        let (events, err) = decode(&mut rx, &cut(&wire, &at));
        prop_assert_eq!(err, None);
        prop_assert_eq!(events, expected);
        prop_assert!(!rx.is_mid_message());
    }

    /// Server frames (unmasked) to a client-role receiver, cut anywhere, byte by byte too.
    #[test]
    fn server_frames_round_trip_through_any_reads(
        items in vec(item(), 0..6),
        close in proptest::option::of(close()),
        at in vec(any::<Index>(), 0..12),
    ) {
        let (wire, expected) = encode(&items, &close, None);
        let mut rx = Receiver::new(Role::Client, 1 << 20);
        let (events, err) = decode(&mut rx, &cut(&wire, &at));
        prop_assert_eq!(err, None);
        prop_assert_eq!(&events, &expected);
        if wire.len() < 4096 {
            let bytes: Vec<&[u8]> = wire.chunks(1).collect();
            let mut rx = Receiver::new(Role::Client, 1 << 20);
            prop_assert_eq!(decode(&mut rx, &bytes), (expected, None));
        }
    }

    /// A server session answers every ping with a pong of the same payload and echoes the
    /// close, whatever the reads; the replies decode in the client role.
    #[test]
    fn session_replies_decode_in_the_client_role(
        items in vec(item(), 0..6),
        close in proptest::option::of(close()),
        at in vec(any::<Index>(), 0..8),
    ) {
        let (wire, expected) = encode(&items, &close, Some([1, 2, 3, 4]));
        let mut session = Session::new(Role::Server, 1 << 20);
        let mut out = Vec::new();
        let mut events = Vec::new();
        for read in cut(&wire, &at) {
            let mut buf = read.to_vec();
            let mut pos = 0;
            while pos < buf.len() {
                let (used, event) = session.poll(&mut buf[pos..], &mut out);
                pos += used;
                match event {
                    Some(SessionEvent::Frame(event)) => events.push(owned(event)),
                    Some(SessionEvent::Failed(err)) => prop_assert!(false, "failed: {err}"),
                    None => {}
                }
            }
        }
        prop_assert_eq!(&events, &expected);
        let mut owed: Vec<Ev> = expected
            .iter()
            .filter_map(|e| match e {
                Ev::Ping(p) => Some(Ev::Pong(p.clone())),
                Ev::Close(code, _) => Some(Ev::Close(*code, String::new())),
                _ => None,
            })
            .collect();
        let mut rx = Receiver::new(Role::Client, 1 << 20);
        let (replies, err) = decode(&mut rx, &[&out]);
        prop_assert_eq!(err, None);
        prop_assert_eq!(replies, std::mem::take(&mut owed));
    }

    /// A damaged stream (bytes overwritten anywhere): the events and the error do not depend
    /// on where the reads end.
    #[test]
    fn verdict_on_a_damaged_stream_does_not_depend_on_the_reads(
        items in vec(item(), 1..6),
        damage in vec((any::<Index>(), any::<u8>()), 1..4),
        at in vec(any::<Index>(), 1..12),
        max in prop_oneof![Just(100usize), Just(1 << 20)],
    ) {
        let (mut wire, _) = encode(&items, &None, Some([9, 8, 7, 6]));
        for (i, byte) in &damage {
            let i = i.index(wire.len());
            wire[i] = *byte;
        }
        let mut whole = Receiver::new(Role::Server, max);
        let expected = decode(&mut whole, &[&wire]);
        let mut pieces = Receiver::new(Role::Server, max);
        prop_assert_eq!(decode(&mut pieces, &cut(&wire, &at)), expected);
    }

    /// Text fragmented at any byte (inside code points too) is accepted exactly when the
    /// whole is UTF-8, and fails with InvalidUtf8 otherwise.
    #[test]
    fn utf8_split_across_fragments_and_reads(
        chars in vec(any::<char>(), 0..20),
        corrupt in proptest::option::of((any::<Index>(), any::<u8>())),
        frag_at in vec(any::<Index>(), 0..5),
        at in vec(any::<Index>(), 0..6),
    ) {
        let mut payload = chars.into_iter().collect::<String>().into_bytes();
        if let Some((i, byte)) = corrupt {
            if !payload.is_empty() {
                let i = i.index(payload.len());
                payload[i] = byte;
            }
        }
        let valid = std::str::from_utf8(&payload).is_ok();
        let mut cuts: Vec<usize> = frag_at.iter().map(|i| i.index(payload.len() + 1)).collect();
        cuts.sort_unstable();
        let mut wire = Vec::new();
        let ends: Vec<usize> = cuts.iter().copied().chain([payload.len()]).collect();
        let mut start = 0;
        for (i, &end) in ends.iter().enumerate() {
            let opcode = if i == 0 { OpCode::Text } else { OpCode::Continuation };
            let spec = FrameSpec { fin: i + 1 == ends.len(), rsv: 0, opcode, mask: Some([5, 6, 7, 8]) };
            encode_frame(&mut wire, spec, &payload[start..end]);
            start = end;
        }
        // The streaming validator alone, fed the fragments, agrees with std.
        let mut stream = Utf8Stream::default();
        let mut ok = true;
        let mut start = 0;
        for &end in &ends {
            ok = ok && stream.feed(&payload[start..end]).is_ok();
            start = end;
        }
        ok = ok && stream.finish().is_ok();
        prop_assert_eq!(ok, valid);

        let mut rx = Receiver::new(Role::Server, 1 << 20);
        let (events, err) = decode(&mut rx, &cut(&wire, &at));
        if valid {
            prop_assert_eq!(err, None);
            prop_assert_eq!(events, vec![Ev::Text(String::from_utf8(payload).unwrap())]);
        } else {
            prop_assert_eq!(err, Some(ProtocolError::InvalidUtf8));
            prop_assert!(events.is_empty());
        }
    }

    /// Any valid header encodes in its shortest form and parses back, and every prefix of it
    /// is Partial.
    #[test]
    fn headers_round_trip(
        fin in any::<bool>(),
        rsv in 0u8..8,
        opcode in prop_oneof![
            Just(OpCode::Continuation), Just(OpCode::Text), Just(OpCode::Binary),
            Just(OpCode::Close), Just(OpCode::Ping), Just(OpCode::Pong)
        ],
        mask in proptest::option::of(any::<[u8; 4]>()),
        len in prop_oneof![0u64..126, 126u64..=0xFFFF, 0x1_0000u64..(1 << 63)],
    ) {
        let control = opcode.is_control();
        let header = FrameHeader {
            fin: fin || control,
            rsv: rsv << 4,
            opcode,
            mask,
            payload_len: if control { len % 126 } else { len },
        };
        let mut out = [0u8; MAX_HEADER_LEN];
        let n = header.encode(&mut out);
        prop_assert_eq!(n, header.encoded_len());
        prop_assert_eq!(FrameHeader::parse(&out[..n]), Ok(Status::Complete((header, n))));
        for k in 0..n {
            prop_assert_eq!(FrameHeader::parse(&out[..k]), Ok(Status::Partial));
        }
    }
}

proptest! {
    #![proptest_config(config(48))]

    /// permessage-deflate: messages a client compresses (context takeover or not) arrive,
    /// cut into any reads, as compressed events the server inflates back to the original.
    #[test]
    fn compressed_messages_round_trip(
        messages in vec((any::<bool>(), vec(any::<u8>(), 0..2000)), 1..6),
        no_context in any::<bool>(),
        at in vec(any::<Index>(), 0..10),
    ) {
        let config = DeflateConfig {
            server_no_context_takeover: no_context,
            client_no_context_takeover: no_context,
            threshold: 0,
            ..DeflateConfig::default()
        };
        let params = negotiate(["permessage-deflate; client_max_window_bits"], &config).unwrap();
        let mut client = PerMessageDeflate::new(Role::Client, params, &config);
        let mut server = PerMessageDeflate::new(Role::Server, params, &config);
        let (mut client_shared, mut server_shared) = (SharedStreams::default(), SharedStreams::default());
        let mut wire = Vec::new();
        let mut sent = Vec::new();
        for (text, bytes) in &messages {
            // Text messages carry printable ASCII (valid UTF-8) drawn from the bytes.
            let payload: Vec<u8> = if *text {
                bytes.iter().map(|b| b' ' + b % 95).collect()
            } else {
                bytes.clone()
            };
            let mut compressed = Vec::new();
            client.deflate(&payload, &mut compressed, &mut client_shared);
            let opcode = if *text { OpCode::Text } else { OpCode::Binary };
            let spec = FrameSpec { fin: true, rsv: RSV1, opcode, mask: Some([0xa, 0xb, 0xc, 0xd]) };
            encode_frame(&mut wire, spec, &compressed);
            sent.push((*text, payload));
        }
        let mut rx = Receiver::new(Role::Server, 1 << 20);
        rx.allow_compressed(true);
        let (events, err) = decode(&mut rx, &cut(&wire, &at));
        prop_assert_eq!(err, None);
        prop_assert_eq!(events.len(), sent.len());
        for (event, (text, payload)) in events.into_iter().zip(sent) {
            let Ev::Compressed(is_text, data) = event else {
                return Err(TestCaseError::fail(format!("not compressed: {event:?}")));
            };
            prop_assert_eq!(is_text, text);
            let inflated = server
                .inflate_message(text, &data, payload.len(), &mut server_shared)
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            let bytes = match inflated {
                Event::Text(Cow::Owned(t)) => t.into_bytes(),
                Event::Binary(Cow::Owned(b)) => b,
                other => return Err(TestCaseError::fail(format!("{other:?}"))),
            };
            prop_assert!(bytes == payload, "inflated message differs");
        }
    }
}

/// The limits hold at their edges whatever the reads: a message of exactly the maximum size
/// is delivered, one byte more (in one frame or spread over fragments) fails with 1009
/// before its payload is buffered.
#[test]
fn size_limit_at_the_edge_in_any_reads() {
    const MAX: usize = 1000;
    let spec = |fin, opcode| FrameSpec {
        fin,
        rsv: 0,
        opcode,
        mask: Some([1, 1, 2, 3]),
    };
    let mut exact = Vec::new();
    encode_frame(&mut exact, spec(false, OpCode::Binary), &[7; 600]);
    encode_frame(&mut exact, spec(true, OpCode::Continuation), &[7; 400]);
    let mut over = Vec::new();
    encode_frame(&mut over, spec(false, OpCode::Binary), &[7; 600]);
    encode_frame(&mut over, spec(true, OpCode::Continuation), &[7; 401]);
    for split in 0..=exact.len() {
        let mut rx = Receiver::new(Role::Server, MAX);
        let (events, err) = decode(&mut rx, &[&exact[..split], &exact[split..]]);
        assert_eq!((events, err), (vec![Ev::Binary(vec![7; MAX])], None));
        let mut rx = Receiver::new(Role::Server, MAX);
        let (events, err) = decode(&mut rx, &[&over[..split], &over[split..]]);
        assert_eq!(events, vec![]);
        assert_eq!(err, Some(ProtocolError::MessageTooBig), "split {split}");
        assert_eq!(ProtocolError::MessageTooBig.close_code(), CloseCode(1009));
    }
}

/// Regression (fuzz/regressions/*-deflate-empty-after-flush, found by the `session` and
/// `inflate` fuzz targets): with context takeover, zlib emits nothing for an empty message
/// after an earlier one, and `deflate` used to strip four bytes as the sync-flush tail anyway,
/// eating the caller's bytes (a panic in debug builds). Every message, empty ones between
/// others included, must compress to something that inflates back, leaving `out`'s earlier
/// contents alone.
#[test]
fn regression_empty_message_after_another_deflates_validly() {
    for no_context in [false, true] {
        let config = DeflateConfig {
            server_no_context_takeover: no_context,
            client_no_context_takeover: no_context,
            threshold: 0,
            ..DeflateConfig::default()
        };
        let params = negotiate(["permessage-deflate"], &config).unwrap();
        let mut server = PerMessageDeflate::new(Role::Server, params, &config);
        let mut client = PerMessageDeflate::new(Role::Client, params, &config);
        let (mut shared, mut client_shared) = (SharedStreams::default(), SharedStreams::default());
        for (i, message) in [&b"x"[..], b"", b"", b"y", b""].into_iter().enumerate() {
            let mut out = b"HEAD".to_vec();
            server.deflate(message, &mut out, &mut shared);
            assert!(
                out.starts_with(b"HEAD"),
                "message {i}: deflate ate the caller's bytes: {out:02x?}"
            );
            match client.inflate_message(false, &out[4..], 1000, &mut client_shared) {
                Ok(Event::Binary(bytes)) => assert_eq!(&bytes[..], message, "message {i}"),
                other => panic!("message {i} does not inflate back: {other:?}"),
            }
        }
    }
}
