//! The `wsloop` binary's flags as a process sees them: the open-file limit, `--listen` with
//! names and IPv6, flag consistency errors, and timestamped log lines.

mod common;

use std::io::ErrorKind;
use std::net::{SocketAddr, TcpListener};
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::*;
use tungstenite::Message as TMessage;

use common::process::{Proc, BIN};

fn echo_once(addr: SocketAddr, text: &str) {
    let mut ws = ws_connect(addr);
    ws.send(TMessage::text(text)).unwrap();
    assert_eq!(ws_read_data(&mut ws), TMessage::text(text));
    ws_close(ws);
}

/// The binary under a soft open-file limit of 256 and a hard one of 512 (`prlimit` execs it,
/// so the PID is the server's).
fn spawn_with_nofile_256_512(args: &[&str]) -> Proc {
    let mut command = Command::new("prlimit");
    command.arg("--nofile=256:512").arg(BIN).args(args);
    Proc::spawn_command(command)
}

// ---------------------------------------------------------------------------------------
// The open-file limit
// ---------------------------------------------------------------------------------------

#[test]
fn max_connections_over_the_open_file_limit_is_warned_about_with_the_raised_limit() {
    let mut proc = spawn_with_nofile_256_512(&[
        "--listen",
        "127.0.0.1:0",
        "--max-connections",
        "100000",
        "--log-level",
        "warn",
    ]);
    let addr = proc.listening_addr();
    echo_once(addr, "still serves");
    let stderr = proc.stop();
    let warning = stderr
        .lines()
        .find(|line| line.contains(" WARN ") && line.contains("--max-connections"))
        .unwrap_or_else(|| panic!("no warning about --max-connections: {stderr:?}"));
    assert!(warning.contains("100000"), "{warning:?}");
    assert!(
        warning.contains("512"),
        "the warning does not give the raised limit: {warning:?}"
    );
    assert!(
        !warning.contains(" 256"),
        "the warning gives the old limit: {warning:?}"
    );
    assert!(!stderr.contains(" INFO "), "info lines at warn: {stderr:?}");
}

#[test]
fn the_soft_open_file_limit_is_raised_so_more_connections_than_it_are_held() {
    // 300 connections need more than the soft limit of 256 descriptors: they are held only
    // because the server raised it to the hard limit, 512.
    let mut proc = spawn_with_nofile_256_512(&[
        "--listen",
        "127.0.0.1:0",
        "--max-connections",
        "400",
        "--threads",
        "1",
    ]);
    let addr = proc.listening_addr();
    let mut clients: Vec<Ws> = (0..300).map(|_| ws_connect(addr)).collect();
    for (i, ws) in clients.iter_mut().enumerate().step_by(37) {
        let text = format!("client {i}");
        ws.send(TMessage::text(text.clone())).unwrap();
        assert_eq!(ws_read_data(ws), TMessage::text(text));
    }
    let last = clients.last_mut().unwrap();
    last.send(TMessage::text("the 300th")).unwrap();
    assert_eq!(ws_read_data(last), TMessage::text("the 300th"));
    drop(clients);
    let stderr = proc.stop();
    assert!(
        stderr.contains("open-file limit raised from 256 to 512"),
        "{stderr:?}"
    );
    assert!(
        !stderr.contains(" WARN "),
        "400 connections fit in 512 descriptors: {stderr:?}"
    );
}

// ---------------------------------------------------------------------------------------
// --listen
// ---------------------------------------------------------------------------------------

#[test]
fn listen_takes_a_host_name() {
    let mut proc = Proc::spawn(&["--listen", "localhost:0"]);
    let addr = proc.listening_addr();
    assert!(addr.ip().is_loopback(), "localhost resolved to {addr}");
    assert_ne!(addr.port(), 0);
    echo_once(addr, "by name");
    proc.stop();
}

/// Whether this machine can bind the IPv6 loopback; prints a note when it cannot.
fn have_ipv6_loopback(test: &str) -> bool {
    match TcpListener::bind("[::1]:0") {
        Ok(_) => true,
        Err(err)
            if matches!(
                err.kind(),
                ErrorKind::AddrNotAvailable | ErrorKind::Unsupported
            ) =>
        {
            eprintln!("{test}: skipped, no IPv6 loopback here ({err})");
            false
        }
        Err(err) if err.raw_os_error() == Some(libc::EAFNOSUPPORT) => {
            eprintln!("{test}: skipped, no IPv6 here ({err})");
            false
        }
        Err(err) => panic!("binding [::1]:0: {err}"),
    }
}

#[test]
fn listen_takes_the_ipv6_loopback() {
    if !have_ipv6_loopback("listen_takes_the_ipv6_loopback") {
        return;
    }
    let mut proc = Proc::spawn(&["--listen", "[::1]:0"]);
    let addr = proc.listening_addr();
    assert!(addr.is_ipv6() && addr.ip().is_loopback(), "{addr}");
    echo_once(addr, "over IPv6");
    proc.stop();
}

#[test]
fn listen_takes_the_ipv6_unspecified_address() {
    if !have_ipv6_loopback("listen_takes_the_ipv6_unspecified_address") {
        return;
    }
    let mut proc = Proc::spawn(&["--listen", "[::]:0"]);
    let addr = proc.listening_addr();
    assert!(addr.is_ipv6() && addr.ip().is_unspecified(), "{addr}");
    // Only ever the loopback address as a target.
    echo_once(
        SocketAddr::from(([0u16, 0, 0, 0, 0, 0, 0, 1], addr.port())),
        "via [::]",
    );
    proc.stop();
}

#[test]
fn listen_on_a_name_that_does_not_resolve_fails_with_one_line() {
    let mut proc = Proc::spawn(&["--listen", "nosuchhost.invalid:1"]);
    let status = proc.wait_within(Duration::from_secs(30));
    assert!(!status.success(), "exit status {status:?}");
    let stderr = proc.stderr();
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "stderr: {stderr:?}");
    assert!(
        lines[0].contains("--listen") && lines[0].contains("nosuchhost.invalid:1"),
        "the error does not name the flag and value: {stderr:?}"
    );
    assert!(
        lines[0].contains("resolve"),
        "not a clear error: {stderr:?}"
    );
    assert_eq!(proc.stdout_rest(), "", "it must not claim to listen");
}

#[test]
fn listen_without_a_port_or_with_bare_ipv6_is_a_usage_error() {
    for (value, says) in [("localhost", "port"), ("::1:9001", "brackets")] {
        let mut proc = Proc::spawn(&["--listen", value]);
        let status = proc.wait_within(Duration::from_secs(10));
        assert_eq!(status.code(), Some(2), "--listen {value}: {status:?}");
        let stderr = proc.stderr();
        assert!(
            stderr.contains("--listen") && stderr.contains(value) && stderr.contains(says),
            "--listen {value}: {stderr:?}"
        );
        assert_eq!(proc.stdout_rest(), "");
    }
}

// ---------------------------------------------------------------------------------------
// --backpressure-limit and --max-buffered
// ---------------------------------------------------------------------------------------

#[test]
fn backpressure_limit_above_max_buffered_is_a_usage_error() {
    let mut proc = Proc::spawn(&[
        "--listen",
        "127.0.0.1:0",
        "--backpressure-limit",
        "2MiB",
        "--max-buffered",
        "1MiB",
    ]);
    let status = proc.wait_within(Duration::from_secs(10));
    assert_eq!(status.code(), Some(2), "exit status {status:?}");
    let stderr = proc.stderr();
    assert!(
        stderr.starts_with("error: "),
        "not a clap-style error: {stderr:?}"
    );
    assert!(
        stderr.contains("--backpressure-limit") && stderr.contains("--max-buffered"),
        "the error does not name both flags: {stderr:?}"
    );
    assert!(
        stderr.contains("2097152") && stderr.contains("1048576"),
        "{stderr:?}"
    );
    assert_eq!(proc.stdout_rest(), "", "it must not claim to listen");

    // Equal is allowed.
    let mut proc = Proc::spawn(&[
        "--listen",
        "127.0.0.1:0",
        "--backpressure-limit",
        "1MiB",
        "--max-buffered",
        "1MiB",
    ]);
    let addr = proc.listening_addr();
    echo_once(addr, "equal limits");
    proc.stop();
}

// ---------------------------------------------------------------------------------------
// Log lines
// ---------------------------------------------------------------------------------------

/// Days from 1970-01-01 to a proleptic Gregorian date (Hinnant's `days_from_civil`), the
/// inverse of what the binary uses, to check its timestamps independently.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year.rem_euclid(400);
    let day_of_year = (153 * (month + if month > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// Parses `YYYY-MM-DDTHH:MM:SS.mmmZ` strictly into milliseconds since the epoch.
fn parse_timestamp(text: &str) -> Option<i64> {
    let bytes = text.as_bytes();
    let shape = "dddd-dd-ddTdd:dd:dd.dddZ";
    if bytes.len() != shape.len() {
        return None;
    }
    for (&b, s) in bytes.iter().zip(shape.bytes()) {
        let ok = if s == b'd' {
            b.is_ascii_digit()
        } else {
            b == s
        };
        if !ok {
            return None;
        }
    }
    let num = |range: std::ops::Range<usize>| text[range].parse::<i64>().unwrap();
    let (month, day) = (num(5..7), num(8..10));
    let (hour, minute, second) = (num(11..13), num(14..16), num(17..19));
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    let days = days_from_civil(num(0..4), month, day);
    Some(((days * 24 + hour) * 60 + minute) * 60_000 + second * 1000 + num(20..23))
}

fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[test]
fn the_timestamp_check_itself_knows_some_instants() {
    assert_eq!(parse_timestamp("1970-01-01T00:00:00.000Z"), Some(0));
    assert_eq!(
        parse_timestamp("2000-02-29T00:00:00.000Z"),
        Some(951_782_400_000)
    );
    assert_eq!(
        parse_timestamp("2026-12-01T16:20:05.123Z"),
        Some(1_796_142_005_123)
    );
    assert_eq!(parse_timestamp("2026-12-01 16:20:05.123Z"), None);
    assert_eq!(parse_timestamp("2026-12-01T16:20:05Z"), None);
}

#[test]
fn log_lines_start_with_a_utc_rfc3339_timestamp_in_milliseconds() {
    let before = now_millis();
    let mut proc = Proc::spawn(&["--listen", "127.0.0.1:0", "--threads", "2"]);
    let addr = proc.listening_addr();
    echo_once(addr, "log something");
    let stderr = proc.stop();
    let after = now_millis();
    let lines: Vec<&str> = stderr.lines().collect();
    assert!(
        lines
            .iter()
            .any(|line| line.contains(" INFO 2 event loop(s)")),
        "{stderr:?}"
    );
    assert!(
        lines.iter().any(|line| line.contains(" INFO signal ")),
        "no line for the signal: {stderr:?}"
    );
    let mut previous = i64::MIN;
    for line in &lines {
        let (stamp, rest) = line
            .split_once(' ')
            .unwrap_or_else(|| panic!("no timestamp in {line:?}"));
        let millis = parse_timestamp(stamp).unwrap_or_else(|| panic!("bad timestamp {line:?}"));
        // Allow for a coarse clock: the lines fall between the test's two readings.
        assert!(
            before - 1000 <= millis && millis <= after + 1000,
            "{stamp} is not now ({before}..{after} ms): {line:?}"
        );
        assert!(
            millis >= previous.saturating_sub(1000),
            "out of order: {stderr:?}"
        );
        previous = previous.max(millis);
        let level = rest.split(' ').next().unwrap();
        assert!(
            ["ERROR", "WARN", "INFO", "DEBUG", "TRACE"].contains(&level),
            "no level after the timestamp: {line:?}"
        );
    }
}

/// The subprotocol the binary answers to an offer of `offer` (None: no header).
fn answered_protocol(addr: SocketAddr, offer: &str) -> Option<String> {
    let mut raw = Raw::connect(addr);
    let response = raw.handshake(&upgrade_request("/", &[("Sec-WebSocket-Protocol", offer)]));
    let answer = response.header("sec-websocket-protocol").map(str::to_owned);
    raw.close_normally();
    answer
}

#[test]
fn by_default_the_first_offered_subprotocol_is_answered_as_ws_does() {
    let mut proc = Proc::spawn(&["--listen", "127.0.0.1:0", "--threads", "1"]);
    let addr = proc.listening_addr();
    assert_eq!(
        answered_protocol(addr, "chat, superchat").as_deref(),
        Some("chat")
    );
    proc.stop();
}

#[test]
fn protocol_flags_name_the_subprotocols_spoken() {
    let mut proc = Proc::spawn(&[
        "--listen",
        "127.0.0.1:0",
        "--threads",
        "1",
        "--protocol",
        "superchat",
        "--protocol",
        "v2.echo",
    ]);
    let addr = proc.listening_addr();
    // The client's order of preference among those the server speaks.
    assert_eq!(
        answered_protocol(addr, "chat, v2.echo, superchat").as_deref(),
        Some("v2.echo")
    );
    // None spoken: no header; the client decides whether to go on.
    assert_eq!(answered_protocol(addr, "chat"), None);
    proc.stop();
}

#[test]
fn a_protocol_that_is_not_a_token_is_a_usage_error() {
    let output = Command::new(BIN)
        .args(["--protocol", "two words"])
        .output()
        .expect("run wsloop");
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("not a valid subprotocol"));
}
