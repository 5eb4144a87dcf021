//! Echo over real sockets with independent clients: tungstenite, and the raw client for
//! fragmented messages.

mod common;

use common::*;
use tungstenite::protocol::frame::coding::{CloseCode, Data, OpCode};
use tungstenite::protocol::frame::Frame as TFrame;
use tungstenite::protocol::CloseFrame;
use tungstenite::Message;
use wsloop::Echo;

/// A payload where every position has a different byte than its neighbours (catches
/// reordering and masking mistakes).
fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(31).wrapping_add(u32::from(seed)) as u8)
        .collect()
}

#[test]
fn echoes_text_and_binary() {
    let (addr, handle, join) = start(config(), Echo);
    let mut ws = ws_connect(addr);
    ws.send(Message::text("hello, wsloop")).unwrap();
    assert_eq!(ws_read_data(&mut ws), Message::text("hello, wsloop"));
    ws.send(Message::text("κόσμε ✓ 🦀")).unwrap();
    assert_eq!(ws_read_data(&mut ws), Message::text("κόσμε ✓ 🦀"));
    ws.send(Message::text("")).unwrap();
    assert_eq!(ws_read_data(&mut ws), Message::text(""));
    ws.send(Message::binary(vec![0u8, 1, 2, 255, 254])).unwrap();
    assert_eq!(
        ws_read_data(&mut ws),
        Message::binary(vec![0u8, 1, 2, 255, 254])
    );
    // Payload lengths around the 7-bit / 16-bit length boundaries.
    for len in [125, 126, 127, 65535, 65536] {
        let payload = pattern(len, len as u8);
        ws.send(Message::binary(payload.clone())).unwrap();
        assert_eq!(ws_read_data(&mut ws), Message::binary(payload), "len {len}");
    }
    ws_close(ws);
    stop(handle, join);
}

#[test]
fn echoes_a_64_kib_message() {
    let (addr, handle, join) = start(config(), Echo);
    let mut ws = ws_connect(addr);
    let payload = pattern(64 << 10, 7);
    ws.send(Message::binary(payload.clone())).unwrap();
    assert_eq!(ws_read_data(&mut ws), Message::binary(payload));
    let text: String = (0..(64 << 10))
        .map(|i| (b'a' + (i % 26) as u8) as char)
        .collect();
    ws.send(Message::text(text.clone())).unwrap();
    assert_eq!(ws_read_data(&mut ws), Message::text(text));
    ws_close(ws);
    stop(handle, join);
}

#[test]
fn echoes_a_1_mib_message() {
    let (addr, handle, join) = start(config(), Echo);
    let mut ws = ws_connect(addr);
    let payload = pattern(1 << 20, 3);
    ws.send(Message::binary(payload.clone())).unwrap();
    match ws_read_data(&mut ws) {
        Message::Binary(got) => {
            assert_eq!(got.len(), payload.len());
            assert!(got == payload, "1 MiB echo differs");
        }
        other => panic!("expected binary, got {} bytes of {other:?}", other.len()),
    }
    ws_close(ws);
    stop(handle, join);
}

#[test]
fn ping_gets_a_pong_with_the_same_payload() {
    let (addr, handle, join) = start(config(), Echo);
    let mut ws = ws_connect(addr);
    ws.send(Message::Ping(b"are you there?".to_vec())).unwrap();
    assert_eq!(
        ws.read().unwrap(),
        Message::Pong(b"are you there?".to_vec())
    );
    // A ping with the largest allowed payload, and an empty one.
    let big = pattern(125, 9);
    ws.send(Message::Ping(big.clone())).unwrap();
    assert_eq!(ws.read().unwrap(), Message::Pong(big));
    ws.send(Message::Ping(Vec::new())).unwrap();
    assert_eq!(ws.read().unwrap(), Message::Pong(Vec::new()));
    ws_close(ws);
    stop(handle, join);
}

#[test]
fn normal_close_is_echoed_and_tcp_closes() {
    let (addr, handle, join) = start(config(), Echo);
    let mut ws = ws_connect(addr);
    ws.close(Some(CloseFrame {
        code: CloseCode::Normal,
        reason: "done".into(),
    }))
    .unwrap();
    match ws.read().unwrap() {
        Message::Close(Some(frame)) => assert_eq!(frame.code, CloseCode::Normal),
        other => panic!("expected the close echo, got {other:?}"),
    }
    // The closing handshake is complete: tungstenite reports the end of the connection
    // only when the server has closed TCP (EOF).
    match ws.read() {
        Err(tungstenite::Error::ConnectionClosed) => {}
        other => panic!("expected the TCP connection to end, got {other:?}"),
    }
    let mut byte = [0u8; 1];
    assert_eq!(
        std::io::Read::read(ws.get_mut(), &mut byte).unwrap(),
        0,
        "server did not close TCP"
    );
    drop(ws);
    stop(handle, join);
}

#[test]
fn tungstenite_fragments_are_echoed_as_one_message() {
    let (addr, handle, join) = start(config(), Echo);
    let mut ws = ws_connect(addr);
    let parts: [&[u8]; 3] = [b"frag", b"mented ", b"text"];
    ws.write(Message::Frame(TFrame::message(
        parts[0].to_vec(),
        OpCode::Data(Data::Text),
        false,
    )))
    .unwrap();
    ws.write(Message::Frame(TFrame::message(
        parts[1].to_vec(),
        OpCode::Data(Data::Continue),
        false,
    )))
    .unwrap();
    ws.write(Message::Frame(TFrame::message(
        parts[2].to_vec(),
        OpCode::Data(Data::Continue),
        true,
    )))
    .unwrap();
    ws.flush().unwrap();
    assert_eq!(ws_read_data(&mut ws), Message::text("fragmented text"));
    ws_close(ws);
    stop(handle, join);
}

#[test]
fn raw_fragmented_message_is_echoed_whole() {
    let (addr, handle, join) = start(config(), Echo);
    let mut raw = Raw::open(addr);
    raw.write(&frame(true, 0, OP_TEXT, Some(MASK), b"single"));
    assert_eq!(raw.read_message(), (OP_TEXT, b"single".to_vec()));
    // Text in three fragments, each written separately.
    raw.write(&frame(false, 0, OP_TEXT, Some(MASK), b"Hel"));
    raw.write(&frame(false, 0, OP_CONT, Some(MASK), b"lo, "));
    raw.write(&frame(true, 0, OP_CONT, Some(MASK), b"world"));
    assert_eq!(raw.read_message(), (OP_TEXT, b"Hello, world".to_vec()));
    // A multi-byte character split between two fragments is valid UTF-8 as a whole.
    let crab = "🦀".as_bytes();
    raw.write(&frame(false, 0, OP_TEXT, Some(MASK), &crab[..2]));
    raw.write(&frame(true, 0, OP_CONT, Some(MASK), &crab[2..]));
    assert_eq!(raw.read_message(), (OP_TEXT, crab.to_vec()));
    // Binary fragments with empty ones among them, all in one write.
    let mut bytes = frame(false, 0, OP_BINARY, Some(MASK), &[1, 2, 3]);
    bytes.extend(frame(false, 0, OP_CONT, Some(MASK), &[]));
    bytes.extend(frame(true, 0, OP_CONT, Some(MASK), &[4, 5]));
    raw.write(&bytes);
    assert_eq!(raw.read_message(), (OP_BINARY, vec![1, 2, 3, 4, 5]));
    raw.close_normally();
    stop(handle, join);
}

#[test]
fn ping_between_fragments_is_answered_before_the_message() {
    let (addr, handle, join) = start(config(), Echo);
    let mut raw = Raw::open(addr);
    raw.write(&frame(false, 0, OP_TEXT, Some(MASK), b"first "));
    raw.write(&frame(true, 0, OP_PING, Some(MASK), b"mid"));
    let pong = raw.frame();
    assert_eq!((pong.opcode, pong.fin), (OP_PONG, true));
    assert_eq!(pong.payload, b"mid");
    raw.write(&frame(true, 0, OP_CONT, Some(MASK), b"second"));
    assert_eq!(raw.read_message(), (OP_TEXT, b"first second".to_vec()));
    raw.close_normally();
    stop(handle, join);
}

#[test]
fn many_messages_in_one_write_are_echoed_in_order() {
    let (addr, handle, join) = start(config(), Echo);
    let mut raw = Raw::open(addr);
    let mut bytes = Vec::new();
    for i in 0..200u32 {
        bytes.extend(client_frame(OP_BINARY, &i.to_be_bytes()));
    }
    raw.write(&bytes);
    for i in 0..200u32 {
        assert_eq!(raw.read_message(), (OP_BINARY, i.to_be_bytes().to_vec()));
    }
    raw.close_normally();
    stop(handle, join);
}

#[test]
fn frames_split_into_one_byte_writes_are_reassembled() {
    let (addr, handle, join) = start(config(), Echo);
    let mut raw = Raw::open(addr);
    let mut bytes = client_frame(OP_PING, b"split ping");
    // A 16-bit and a 64-bit extended length, split inside the length and the mask.
    bytes.extend(client_frame(OP_BINARY, &pattern(300, 1)));
    bytes.extend(client_frame(OP_BINARY, &pattern(70_000, 2)));
    bytes.extend(client_frame(OP_TEXT, "split ✓".as_bytes()));
    let small_end = client_frame(OP_PING, b"split ping").len() + 308;
    for (i, byte) in bytes.iter().enumerate() {
        raw.write(&[*byte]);
        // Byte by byte through the headers and the small frames; the large payload in bulk.
        if i < small_end + 14 || i >= bytes.len() - 20 {
            std::thread::sleep(std::time::Duration::from_micros(200));
        }
    }
    let pong = raw.frame();
    assert_eq!(
        (pong.opcode, pong.payload.as_slice()),
        (OP_PONG, &b"split ping"[..])
    );
    assert_eq!(raw.read_message(), (OP_BINARY, pattern(300, 1)));
    assert_eq!(raw.read_message(), (OP_BINARY, pattern(70_000, 2)));
    assert_eq!(raw.read_message(), (OP_TEXT, "split ✓".as_bytes().to_vec()));
    raw.close_normally();
    stop(handle, join);
}

#[test]
fn replies_keep_the_order_of_requests_across_sizes() {
    // Small replies are queued, large ones may be written directly: the order must hold.
    let (addr, handle, join) = start(config(), Echo);
    let mut raw = Raw::open(addr);
    let sizes = [
        5usize,
        20 << 10,
        0,
        100 << 10,
        3,
        16 << 10,
        16 << 10,
        1,
        200 << 10,
        7,
    ];
    let mut bytes = Vec::new();
    for (i, &len) in sizes.iter().enumerate() {
        bytes.extend(client_frame(OP_BINARY, &pattern(len, i as u8)));
        if i % 3 == 1 {
            bytes.extend(client_frame(OP_PING, &[i as u8]));
        }
    }
    let writer = {
        let mut stream = raw.stream.try_clone().unwrap();
        std::thread::spawn(move || std::io::Write::write_all(&mut stream, &bytes).unwrap())
    };
    for (i, &len) in sizes.iter().enumerate() {
        assert_eq!(
            raw.read_message(),
            (OP_BINARY, pattern(len, i as u8)),
            "reply {i}"
        );
        if i % 3 == 1 {
            let pong = raw.frame();
            assert_eq!(
                (pong.opcode, pong.payload),
                (OP_PONG, vec![i as u8]),
                "pong {i}"
            );
        }
    }
    writer.join().unwrap();
    raw.close_normally();
    stop(handle, join);
}

#[test]
fn messages_before_a_violation_are_echoed_then_the_connection_fails() {
    let (addr, handle, join) = start(config(), Echo);
    let mut raw = Raw::open(addr);
    let mut bytes = client_frame(OP_TEXT, b"good one");
    bytes.extend(frame(true, 0, OP_TEXT, None, b"unmasked"));
    bytes.extend(client_frame(OP_TEXT, b"never echoed"));
    raw.write(&bytes);
    assert_eq!(raw.read_message(), (OP_TEXT, b"good one".to_vec()));
    raw.expect_failed_with(1002);
    stop(handle, join);
}

#[test]
fn frames_after_the_client_close_are_ignored() {
    let (addr, handle, join) = start(config(), Echo);
    let mut raw = Raw::open(addr);
    let mut bytes = client_frame(OP_TEXT, b"before");
    bytes.extend(client_frame(OP_CLOSE, &close_payload(1000, b"")));
    bytes.extend(client_frame(OP_TEXT, b"after"));
    bytes.extend(client_frame(OP_PING, b"after"));
    raw.write(&bytes);
    assert_eq!(raw.read_message(), (OP_TEXT, b"before".to_vec()));
    let close = raw.expect_close_frame();
    assert_eq!(close.close_code(), Some(1000));
    // Nothing after the close echo: no echo, no pong.
    raw.expect_closed();
    drop(raw);
    stop(handle, join);
}

#[test]
fn half_closed_client_still_gets_its_replies() {
    let (addr, handle, join) = start(config(), Echo);
    let mut raw = Raw::open(addr);
    raw.send(OP_TEXT, b"last words");
    raw.stream.shutdown(std::net::Shutdown::Write).unwrap();
    assert_eq!(raw.read_message(), (OP_TEXT, b"last words".to_vec()));
    raw.expect_closed();
    drop(raw);
    stop(handle, join);
}
