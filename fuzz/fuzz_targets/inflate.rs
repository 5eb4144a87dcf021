//! permessage-deflate's inflate path, the one a client controls: `PerMessageDeflate::inflate`
//! in the server role on arbitrary compressed messages, with small size limits.
//!
//! Input layout: `flags`, then messages, each a 2-byte little-endian length and that many
//! bytes (a short last one takes what is left).
//! - `flags` bits 0-3: the maximum message size; bit 4: no context takeover; bit 5: 9-bit
//!   windows; bit 6: round-trip mode (the messages are plain text that a client-role
//!   compressor deflates first); bit 7: text messages (`inflate_message`, UTF-8 checked).
//!
//! Checked:
//! - arbitrary bytes: never a panic; a success never exceeds the limit, and the output buffer
//!   never grows past `limit + 1` bytes beyond what it held (a deflate bomb costs no more
//!   than a message at the limit); a failure is `MessageTooBig` or `BadCompression` (or
//!   `InvalidUtf8` for text) and leaves the buffer as it was; the next message is still
//!   handled (the stream state after an error is sane);
//! - round trip: what a client compresses comes back byte for byte through the server's
//!   inflater with the limit set to its exact size, message after message (context takeover
//!   included), and one byte less of limit fails with `MessageTooBig`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wsloop::proto::deflate::{negotiate, DeflateConfig, SharedStreams};
use wsloop::proto::{Event, PerMessageDeflate, ProtocolError, Role};

const LIMITS: [usize; 16] = [
    0, 1, 2, 3, 16, 100, 125, 255, 256, 1000, 1024, 4096, 16384, 65535, 65536, 100_000,
];

fn messages(mut rest: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    while rest.len() >= 2 {
        let len = usize::from(u16::from_le_bytes([rest[0], rest[1]]));
        rest = &rest[2..];
        let (message, tail) = rest.split_at(len.min(rest.len()));
        out.push(message);
        rest = tail;
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let limit = LIMITS[usize::from(flags & 15)];
    let bits = if flags & 0x20 != 0 { 9 } else { 15 };
    let config = DeflateConfig {
        server_no_context_takeover: flags & 0x10 != 0,
        client_no_context_takeover: flags & 0x10 != 0,
        server_max_window_bits: bits,
        client_max_window_bits: bits,
        threshold: 0,
        level: 1,
    };
    let offer = "permessage-deflate; client_max_window_bits";
    let params = negotiate([offer], &config).expect("a valid offer");
    let mut server = PerMessageDeflate::new(Role::Server, params, &config);
    let mut shared = SharedStreams::default();
    let text = flags & 0x80 != 0;

    if flags & 0x40 == 0 {
        for message in messages(rest) {
            if text {
                match server.inflate_message(true, message, limit, &mut shared) {
                    Ok(Event::Text(t)) => assert!(t.len() <= limit),
                    Ok(other) => panic!("text came out as {other:?}"),
                    Err(err) => assert!(matches!(
                        err,
                        ProtocolError::MessageTooBig
                            | ProtocolError::BadCompression
                            | ProtocolError::InvalidUtf8
                    )),
                }
                continue;
            }
            let prefix = [0xAAu8, 0xBB, 0xCC];
            let mut out = prefix.to_vec();
            let result = server.inflate(message, limit, &mut out, &mut shared);
            assert!(
                out.capacity() <= prefix.len() + limit + 1,
                "inflating grew the buffer to {} for a limit of {limit}",
                out.capacity()
            );
            assert_eq!(&out[..prefix.len()], &prefix);
            match result {
                Ok(()) => assert!(out.len() - prefix.len() <= limit),
                Err(err) => {
                    assert!(
                        matches!(
                            err,
                            ProtocolError::MessageTooBig | ProtocolError::BadCompression
                        ),
                        "{err:?}"
                    );
                    assert_eq!(out, prefix, "a failed inflate left bytes behind");
                }
            }
        }
        return;
    }

    // Round trip through a client's compressor.
    let mut client = PerMessageDeflate::new(Role::Client, params, &config);
    let mut client_shared = SharedStreams::default();
    for message in messages(rest) {
        let mut compressed = Vec::new();
        client.deflate(message, &mut compressed, &mut client_shared);
        let mut out = Vec::new();
        server
            .inflate(&compressed, message.len(), &mut out, &mut shared)
            .unwrap_or_else(|err| panic!("a client's message does not inflate: {err}"));
        assert!(out == message, "the round trip changed the message");
    }
    if let Some(first) = messages(rest).into_iter().find(|m| !m.is_empty()) {
        let mut client = PerMessageDeflate::new(Role::Client, params, &config);
        let mut server = PerMessageDeflate::new(Role::Server, params, &config);
        let mut compressed = Vec::new();
        client.deflate(first, &mut compressed, &mut SharedStreams::default());
        let mut out = Vec::new();
        assert_eq!(
            server.inflate(
                &compressed,
                first.len() - 1,
                &mut out,
                &mut SharedStreams::default()
            ),
            Err(ProtocolError::MessageTooBig)
        );
        assert!(out.is_empty());
    }
});
