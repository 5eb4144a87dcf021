//! The `wsloop` binary as a process: startup line, echo, SIGTERM, and its errors.

mod common;

use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use tungstenite::protocol::frame::coding::CloseCode as TCloseCode;
use tungstenite::Message as TMessage;

use common::process::{Proc, BIN};

#[test]
fn binary_echoes_and_exits_0_on_sigterm() {
    let mut proc = Proc::spawn(&["--listen", "127.0.0.1:0", "--close-timeout", "2s"]);
    let addr = proc.listening_addr();
    assert_ne!(addr.port(), 0);
    let mut ws = ws_connect(addr);
    ws.send(TMessage::text("hello binary")).unwrap();
    assert_eq!(ws_read_data(&mut ws), TMessage::text("hello binary"));
    let mut raw = Raw::open(addr);
    raw.send(OP_BINARY, &[1, 2, 3]);
    assert_eq!(raw.read_message(), (OP_BINARY, vec![1, 2, 3]));
    ws_close(ws);

    // SIGTERM with a connection open: it is closed with 1001, then the process exits 0.
    proc.sigterm();
    let close = raw.expect_close_frame();
    assert_eq!(close.close_code(), Some(1001));
    raw.send(OP_CLOSE, &close_payload(1001, b""));
    raw.expect_closed();
    drop(raw);
    let status = proc.wait_within(Duration::from_secs(5));
    assert!(
        status.success(),
        "exit status {status:?}, stderr {:?}",
        proc.stderr()
    );
}

#[test]
fn binary_with_four_loops_runs_rooms_across_them_and_closes_all_on_sigterm() {
    let mut proc = Proc::spawn(&["--listen", "127.0.0.1:0", "--threads", "4"]);
    let addr = proc.listening_addr();
    // Balanced accepting puts eight members on four loops, two each; a room spans them.
    let mut members: Vec<Ws> = (0..8).map(|_| ws_connect_path(addr, "/chat/all")).collect();
    members[0].send(TMessage::text("from 0")).unwrap();
    for member in &mut members[1..] {
        assert_eq!(ws_read_data(member), TMessage::text("from 0"));
    }
    members[7].send(TMessage::text("from 7")).unwrap();
    for member in &mut members[..7] {
        assert_eq!(ws_read_data(member), TMessage::text("from 7"));
    }
    let mut health = Raw::connect(addr);
    health.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(health.read_response().status, 200);
    drop(health);
    proc.sigterm();
    for member in &mut members {
        match member.read().unwrap() {
            TMessage::Close(Some(frame)) => assert_eq!(frame.code, TCloseCode::Away),
            other => panic!("expected close 1001, got {other:?}"),
        }
    }
    drop(members);
    let status = proc.wait_within(Duration::from_secs(5));
    let stderr = proc.stderr();
    assert!(
        status.success(),
        "exit status {status:?}, stderr {stderr:?}"
    );
    assert!(stderr.contains("4 event loop(s)"), "stderr {stderr:?}");
}

#[test]
fn binary_runs_one_loop_per_allowed_cpu_by_default() {
    // Pinned to one CPU, the default is one loop: one per CPU the process may run on.
    let child = Command::new("taskset")
        .args(["-c", "0", BIN, "--listen", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn taskset (util-linux)");
    let mut proc = Proc(child);
    let addr = proc.listening_addr();
    let mut ws = ws_connect(addr);
    ws.send(TMessage::text("one loop")).unwrap();
    assert_eq!(ws_read_data(&mut ws), TMessage::text("one loop"));
    drop(ws);
    proc.sigterm();
    let status = proc.wait_within(Duration::from_secs(5));
    let stderr = proc.stderr();
    assert!(status.success(), "exit status {status:?}");
    assert!(stderr.contains("1 event loop(s)"), "stderr {stderr:?}");
}

#[test]
fn binary_exits_0_on_sigterm_when_idle() {
    let mut proc = Proc::spawn(&["--listen", "127.0.0.1:0"]);
    let addr = proc.listening_addr();
    let mut ws = ws_connect(addr);
    ws.send(TMessage::Ping(b"x".to_vec())).unwrap();
    assert_eq!(ws.read().unwrap(), TMessage::Pong(b"x".to_vec()));
    // tungstenite answers the server's 1001 by itself.
    proc.sigterm();
    match ws.read().unwrap() {
        TMessage::Close(Some(frame)) => assert_eq!(frame.code, TCloseCode::Away),
        other => panic!("expected close 1001, got {other:?}"),
    }
    assert!(matches!(
        ws.read(),
        Err(tungstenite::Error::ConnectionClosed)
    ));
    drop(ws);
    let status = proc.wait_within(Duration::from_secs(5));
    assert!(status.success(), "exit status {status:?}");
}

#[test]
fn binary_on_a_taken_port_exits_nonzero_with_one_line() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let mut proc = Proc::spawn(&["--listen", &addr]);
    let status = proc.wait_within(Duration::from_secs(10));
    assert!(!status.success(), "exit status {status:?}");
    let stderr = proc.stderr();
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "stderr: {stderr:?}");
    assert!(
        lines[0].contains(&addr),
        "the error does not name the address: {stderr:?}"
    );
    assert!(
        lines[0].to_ascii_lowercase().contains("in use"),
        "the error does not say why: {stderr:?}"
    );
    assert_eq!(proc.stdout_rest(), "", "it must not claim to listen");
    drop(taken);
}

#[test]
fn binary_rejects_a_bad_flag_value() {
    let mut proc = Proc::spawn(&["--listen", "127.0.0.1:0", "--max-message-size", "ten"]);
    let status = proc.wait_within(Duration::from_secs(10));
    assert!(!status.success(), "exit status {status:?}");
    let stderr = proc.stderr();
    assert!(
        stderr.contains("--max-message-size") && stderr.contains("ten"),
        "the error does not name the flag and value: {stderr:?}"
    );
    assert!(
        stderr.contains("invalid value"),
        "not a clear error: {stderr:?}"
    );
    assert_eq!(proc.stdout_rest(), "");

    let mut proc = Proc::spawn(&["--listen", "not-an-address"]);
    let status = proc.wait_within(Duration::from_secs(10));
    assert!(!status.success(), "exit status {status:?}");
    let stderr = proc.stderr();
    assert!(
        stderr.contains("--listen") && stderr.contains("not-an-address"),
        "{stderr:?}"
    );

    let mut proc = Proc::spawn(&["--no-such-flag"]);
    let status = proc.wait_within(Duration::from_secs(10));
    assert!(!status.success());
    assert!(proc.stderr().contains("--no-such-flag"));
}

#[test]
fn binary_prints_its_version() {
    let mut proc = Proc::spawn(&["--version"]);
    let status = proc.wait_within(Duration::from_secs(10));
    assert!(status.success());
    assert_eq!(
        proc.stdout_rest().trim_end(),
        format!("wsloop {}", env!("CARGO_PKG_VERSION"))
    );
}
