//! Protocol violations, sent by the raw client: each must fail the connection with the close
//! code RFC 6455 asks for, after which the server closes TCP.

mod common;

use common::*;
use wsloop::Echo;

#[test]
fn unmasked_client_frame_is_1002() {
    let (addr, handle, join) = start(config(), Echo);
    assert_fails(
        addr,
        &frame(true, 0, OP_TEXT, None, b"hello"),
        1002,
        "unmasked text",
    );
    assert_fails(
        addr,
        &frame(true, 0, OP_PING, None, b""),
        1002,
        "unmasked ping",
    );
    stop(handle, join);
}

#[test]
fn reserved_bits_are_1002() {
    let (addr, handle, join) = start(config(), Echo);
    for (rsv, name) in [(4, "RSV1"), (2, "RSV2"), (1, "RSV3")] {
        assert_fails(
            addr,
            &frame(true, rsv, OP_TEXT, Some(MASK), b"hello"),
            1002,
            name,
        );
    }
    assert_fails(
        addr,
        &frame(true, 2, OP_PING, Some(MASK), b""),
        1002,
        "RSV2 on a ping",
    );
    stop(handle, join);
}

#[test]
fn reserved_opcodes_are_1002() {
    let (addr, handle, join) = start(config(), Echo);
    for opcode in (3..=7).chain(0xB..=0xF) {
        assert_fails(
            addr,
            &frame(true, 0, opcode, Some(MASK), b"x"),
            1002,
            &format!("opcode {opcode:#x}"),
        );
    }
    stop(handle, join);
}

#[test]
fn ping_with_126_byte_payload_is_1002() {
    let (addr, handle, join) = start(config(), Echo);
    assert_fails(
        addr,
        &frame(true, 0, OP_PING, Some(MASK), &[b'p'; 126]),
        1002,
        "126-byte ping",
    );
    assert_fails(
        addr,
        &frame(
            true,
            0,
            OP_CLOSE,
            Some(MASK),
            &close_payload(1000, &[b'r'; 124]),
        ),
        1002,
        "126-byte close",
    );
    stop(handle, join);
}

#[test]
fn fragmented_ping_is_1002() {
    let (addr, handle, join) = start(config(), Echo);
    assert_fails(
        addr,
        &frame(false, 0, OP_PING, Some(MASK), b"part"),
        1002,
        "ping without FIN",
    );
    stop(handle, join);
}

#[test]
fn continuation_without_a_message_is_1002() {
    let (addr, handle, join) = start(config(), Echo);
    assert_fails(
        addr,
        &frame(true, 0, OP_CONT, Some(MASK), b"orphan"),
        1002,
        "continuation first",
    );
    // Also after a complete message.
    let mut raw = Raw::open(addr);
    raw.send(OP_TEXT, b"complete");
    assert_eq!(raw.read_message(), (OP_TEXT, b"complete".to_vec()));
    raw.write(&frame(false, 0, OP_CONT, Some(MASK), b"orphan"));
    raw.expect_failed_with(1002);
    stop(handle, join);
}

#[test]
fn new_data_frame_inside_a_fragmented_message_is_1002() {
    let (addr, handle, join) = start(config(), Echo);
    let mut bytes = frame(false, 0, OP_TEXT, Some(MASK), b"start");
    bytes.extend(frame(true, 0, OP_TEXT, Some(MASK), b"intruder"));
    assert_fails(addr, &bytes, 1002, "text inside text");
    let mut bytes = frame(false, 0, OP_BINARY, Some(MASK), b"start");
    bytes.extend(frame(false, 0, OP_BINARY, Some(MASK), b"intruder"));
    assert_fails(addr, &bytes, 1002, "binary inside binary");
    stop(handle, join);
}

#[test]
fn invalid_utf8_text_is_1007() {
    let (addr, handle, join) = start(config(), Echo);
    assert_fails(
        addr,
        &client_frame(
            OP_TEXT,
            b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited",
        ),
        1007,
        "surrogate in text",
    );
    assert_fails(
        addr,
        &client_frame(OP_TEXT, b"ok then \xff"),
        1007,
        "0xff in text",
    );
    // Valid as far as it goes but cut inside a character at the end of the message.
    assert_fails(
        addr,
        &client_frame(OP_TEXT, b"crab \xf0\x9f\xa6"),
        1007,
        "truncated character",
    );
    stop(handle, join);
}

#[test]
fn invalid_utf8_fails_fast_before_the_last_fragment() {
    let (addr, handle, join) = start(config(), Echo);
    let mut raw = Raw::open(addr);
    // 0xf4 0x90 would encode a code point above U+10FFFF: no continuation can fix it.
    raw.write(&frame(
        false,
        0,
        OP_TEXT,
        Some(MASK),
        b"hello \xf4\x90\x80\x80",
    ));
    // The final fragment is never sent: the close must come on the first one alone.
    let close = raw.expect_close_frame();
    assert_eq!(
        close.close_code(),
        Some(1007),
        "reason {:?}",
        close.close_reason()
    );
    raw.expect_closed();
    drop(raw);

    // The same with the bad byte in the middle fragment of three.
    let mut raw = Raw::open(addr);
    raw.write(&frame(false, 0, OP_TEXT, Some(MASK), b"fine so far"));
    raw.write(&frame(false, 0, OP_CONT, Some(MASK), b" \xc0\xaf"));
    raw.expect_failed_with(1007);
    stop(handle, join);
}

#[test]
fn close_with_1_byte_payload_is_1002() {
    let (addr, handle, join) = start(config(), Echo);
    assert_fails(addr, &client_frame(OP_CLOSE, &[0x03]), 1002, "1-byte close");
    stop(handle, join);
}

#[test]
fn invalid_close_codes_are_1002() {
    let (addr, handle, join) = start(config(), Echo);
    for code in [
        0u16, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000, 65535,
    ] {
        assert_fails(
            addr,
            &client_frame(OP_CLOSE, &close_payload(code, b"")),
            1002,
            &format!("close code {code}"),
        );
    }
    stop(handle, join);
}

#[test]
fn close_reason_with_invalid_utf8_is_1007() {
    let (addr, handle, join) = start(config(), Echo);
    assert_fails(
        addr,
        &client_frame(OP_CLOSE, &close_payload(1000, b"bye \xff\xfe")),
        1007,
        "close reason",
    );
    stop(handle, join);
}

#[test]
fn valid_close_codes_are_echoed() {
    let (addr, handle, join) = start(config(), Echo);
    for code in [1000u16, 1001, 1003, 1011, 3000, 4000, 4999] {
        let mut raw = Raw::open(addr);
        raw.send(OP_CLOSE, &close_payload(code, b"see you"));
        let echo = raw.expect_close_frame();
        assert_eq!(echo.close_code(), Some(code), "echo of {code}");
        raw.expect_closed();
    }
    // A close with no body is answered (with no code, or 1000) and ends the connection.
    let mut raw = Raw::open(addr);
    raw.send(OP_CLOSE, b"");
    let echo = raw.expect_close_frame();
    assert!(
        matches!(echo.close_code(), None | Some(1000)),
        "echo of an empty close: {echo:?}"
    );
    raw.expect_closed();
    drop(raw);
    stop(handle, join);
}

#[test]
fn message_over_max_message_size_is_1009() {
    let mut cfg = config();
    cfg.max_message_size = 1000;
    let (addr, handle, join) = start(cfg, Echo);
    // Exactly the limit is fine.
    let mut raw = Raw::open(addr);
    raw.send(OP_BINARY, &[7; 1000]);
    assert_eq!(raw.read_message(), (OP_BINARY, vec![7; 1000]));
    raw.send(OP_BINARY, &[7; 1001]);
    raw.expect_failed_with(1009);
    // One frame over the limit.
    assert_fails(
        addr,
        &client_frame(OP_TEXT, &[b'a'; 1001]),
        1009,
        "1001 bytes",
    );
    // Fragments that add up to more than the limit.
    let mut bytes = frame(false, 0, OP_BINARY, Some(MASK), &[1; 600]);
    bytes.extend(frame(true, 0, OP_CONT, Some(MASK), &[2; 401]));
    assert_fails(addr, &bytes, 1009, "600 + 401 bytes in fragments");
    stop(handle, join);
}

#[test]
fn declared_length_of_2_pow_63_minus_1_is_1009() {
    let (addr, handle, join) = start(config(), Echo);
    // Only the header: the server must refuse it from the length alone.
    assert_fails(
        addr,
        &header(true, 0, OP_BINARY, Some(MASK), (1u64 << 63) - 1),
        1009,
        "length 2^63-1",
    );
    stop(handle, join);
}

#[test]
fn length_with_the_top_bit_set_is_1002() {
    let (addr, handle, join) = start(config(), Echo);
    assert_fails(
        addr,
        &header(true, 0, OP_BINARY, Some(MASK), 1u64 << 63),
        1002,
        "length 2^63",
    );
    assert_fails(
        addr,
        &header(true, 0, OP_BINARY, Some(MASK), u64::MAX),
        1002,
        "length 2^64-1",
    );
    stop(handle, join);
}
