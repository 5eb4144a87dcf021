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
